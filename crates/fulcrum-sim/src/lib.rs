//! Deterministic simulation of a Fulcrum cluster, FoundationDB style.
//!
//! [`Sim::new(seed)`](Sim::new) builds a [turmoil] simulation from one seed:
//! three real Fulcrum nodes (`Node::start_with_storage` on
//! [`MemoryStorage`]) as simulated hosts, client hosts that run register
//! workloads and record a [`fulcrum_check::History`], and a nemesis that
//! holds links, partitions, crashes and restarts nodes between simulation
//! steps. After the workload it heals everything, takes final reads and
//! checks:
//!
//! - eventual keyspace at QUORUM/QUORUM: no acknowledged write lost
//!   ([`fulcrum_check::check_lost_writes`], on a final QUORUM `VGET` of
//!   every key) and the replicas converge
//!   ([`fulcrum_check::check_convergence`] over each node's stored live
//!   siblings, after a read at ALL);
//! - strong keyspace (Raft groups): no acknowledged write lost, and
//!   linearizability ([`fulcrum_check::check_linearizable`]) of GET / SET /
//!   SET … IFEQ.
//!
//! The network (latency, holds, drops), the nemesis schedule, the workload,
//! the HLC's wall clock and Raft's election timeouts all come from the
//! seed; `FULCRUM_SIM_SEED=<n>` reruns one seed.
//!
//! # Determinism
//!
//! A run repeats exactly, the strong keyspace's Raft groups included: same
//! seed, same history, operation for operation, with the same simulated
//! times and the same nemesis log (`tests/simulation.rs` asserts it, and
//! that another seed gives another history). To get there, the node's
//! `sim` feature (`fulcrum_node::netio`) swaps in turmoil's sockets, a
//! fixed-hasher map for the peer pool, the simulated clock for the HLC and
//! for Raft proposals, an inline sync for `Db::durable` and for the Raft
//! log (`GroupCommit::inline`), and an inline TTL sweep; the harness cuts a
//! node's links while turmoil drops a crashed host (tokio drops tasks in
//! task-id order, which is process-global); and each node boot gets a Raft
//! seed from the simulation's seed (`NodeConfig::raft_seed`), from which
//! fulcrum-raft's runtime (`fulcrum_raft::rt`) draws openraft's election
//! timeouts and tick phases. That runtime also replaces tokio's `watch`
//! channel, whose receivers wake in a random order (tokio seeds its
//! per-runtime generator only under `--cfg tokio_unstable`), with one that
//! wakes them in the order they waited.
//!
//! What could still break it: tokio's per-runtime generator also picks the
//! first branch `tokio::select!` polls, so where two branches of a
//! `select!` without `biased;` are ready in the same poll, their order is
//! random. Most of the node's loops select between work and shutdown,
//! which are never both ready during a run; the exception is a peer
//! connection's loop (`net/transport.rs`: queued requests vs. arrived
//! replies), where handling one before the other changes only the order of
//! bytes on independent directions of one connection — not observed to
//! change a history (`scripts/sim-many-seeds.sh … --twice` checks). Running
//! the simulation under `RUSTFLAGS="--cfg tokio_unstable"` lets turmoil seed
//! that generator too.
//!
//! # What is simulated
//!
//! - The network between hosts: turmoil's TCP, with per-message latency
//!   (range from the seed), *holds* (packets wait on the link until the
//!   episode ends: a partition as TCP experiences it, retransmitting until
//!   it heals), *drops* (`partition` and random link failure, only in the
//!   opt-in `Lossy` scenario).
//! - Crashes: power loss of one node, or of all at once. Its storage loses
//!   every write not yet synced ([`MemoryStorage::crash`]); its tasks,
//!   sockets and memory are gone; it sends no FIN (peers find out by
//!   timeouts, or by an RST from the restarted node). A restart opens the
//!   same [`MemoryDisk`] and runs `Node::start_with_storage` again.
//! - Durability: nodes run `fsync always`. The group-commit OS thread
//!   cannot run deterministically under turmoil (it finishes in real time,
//!   so waiters would wake at a random simulated instant), so with the
//!   `sim` feature `Db::durable` and the Raft log and vote syncs run inline
//!   after a simulated 2 ms fsync: an acknowledged write is durable, as in
//!   production, and a write is visible but not yet durable for that window
//!   (at a coordinator: the whole replication round trip), where a crash
//!   loses it, as in production. (Each Raft sync is its own; they are not
//!   shared between concurrent waiters as the thread shares them.)
//! - Time: every host runs on simulated time (timeouts, probers, hinted
//!   handoff, anti-entropy, Raft timers); the HLC's wall clock is the
//!   simulation's clock.
//!
//! # What is not simulated
//!
//! - The real storage engine (fjall), torn or reordered writes inside a
//!   batch (a batch survives whole or not at all), fsync failures, disk
//!   full, bit rot.
//! - Clock skew between nodes (all read the same simulated clock).
//! - TCP retransmission: turmoil drops a packet on a failed link for good,
//!   and a stream that lost a segment never delivers again. Real TCP
//!   recovers after the heal, so partitions are modelled as holds; drops
//!   are only in `Lossy`, outside the seed rotation, where Fulcrum's peer
//!   pool keeps using such a wedged connection forever (it replaces a
//!   connection only after an I/O error, never after call timeouts).
//! - The HTTP server runs (axum over turmoil's listener) but nothing calls
//!   it; TTLs, counters, multi-key commands and keyspace DDL during faults
//!   are not in the workload.
//! - Membership changes after the start, overlapping fault episodes (other
//!   than a whole-cluster power loss), multi-threaded scheduling inside a
//!   node (each host is one thread).
//!
//! [`MemoryStorage`]: fulcrum_storage::MemoryStorage
//! [`MemoryStorage::crash`]: fulcrum_storage::MemoryStorage::crash
//! [`MemoryDisk`]: fulcrum_storage::MemoryDisk

pub mod config;
pub mod nemesis;
pub mod resp;
pub mod workload;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use fulcrum_check::{
    check_convergence, check_linearizable, check_lost_writes, History, LinearizabilityOptions,
    Report, Verdict,
};
use fulcrum_core::record::Record;
use fulcrum_node::{Node, NodeConfig};
use fulcrum_storage::{FsyncPolicy, MemoryDisk, MemoryStorage, Storage};

pub use config::{Scenario, SimConfig};
use nemesis::{Episode, Fault};
use workload::{node_name, Shared, SharedRef, EVENTUAL, HTTP_PORT, PEER_PORT, RESP_PORT, STRONG};

/// The simulation's wall-clock epoch (2025-06-15), fixed so HLC timestamps
/// repeat from run to run.
const EPOCH_SECS: u64 = 1_750_000_000;

/// One node's disk and the engine currently open on it.
#[derive(Default)]
struct Slot {
    disk: MemoryDisk,
    storage: Option<Arc<MemoryStorage>>,
    boots: u32,
}

type SlotRef = Rc<RefCell<Slot>>;

/// One seeded simulation run.
pub struct Sim {
    config: SimConfig,
}

/// What a run did and what the checkers concluded.
pub struct RunOutcome {
    pub config: SimConfig,
    /// Every client operation.
    pub history: History,
    /// Nemesis actions and client notes, with simulated times.
    pub log: Vec<String>,
    /// Lost writes on the eventual keyspace (QUORUM/QUORUM).
    pub eventual_lost_writes: Report,
    /// Replica convergence of the eventual keyspace after the final reads.
    pub convergence: Report,
    /// Lost writes on the strong keyspace.
    pub strong_lost_writes: Report,
    /// Linearizability of the strong keyspace.
    pub strong_linearizable: Report,
    /// Violations of guarantees Fulcrum makes today: the run fails.
    pub failures: Vec<String>,
    /// What the checks could not decide (the linearizability search
    /// budget): reported, not failed, unless `FULCRUM_SIM_STRICT=1`.
    pub undecided: Vec<String>,
    /// Simulated time the run took.
    pub simulated: Duration,
}

impl RunOutcome {
    /// No guarantee violated (and, under `FULCRUM_SIM_STRICT=1`, no check
    /// undecided either).
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && (self.undecided.is_empty() || !strict())
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let verdict = if !self.failures.is_empty() {
            "FAILED"
        } else if !self.undecided.is_empty() {
            "undecided"
        } else {
            "ok"
        };
        format!(
            "seed {:>5} {:<10} {:>4} ops, {:>2} faults, {:>6.1}s simulated: {verdict}",
            c.seed,
            c.scenario.to_string(),
            self.history.len(),
            self.log
                .iter()
                .filter(|l| l.contains("nemesis: begin"))
                .count(),
            self.simulated.as_secs_f64(),
        )
    }

    /// The full report: configuration, log, each non-valid check with its
    /// counterexample sub-history, and how to reproduce.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(out, "fulcrum-sim {}", self.summary());
        let _ = writeln!(out, "  {c}");
        let _ = writeln!(out, "  reproduce: {}", reproduce_command(c));
        for f in &self.failures {
            let _ = writeln!(out, "  FAILURE: {f}");
        }
        for g in &self.undecided {
            let _ = writeln!(out, "  UNDECIDED: {g}");
        }
        let _ = writeln!(out, "  log:");
        for l in &self.log {
            let _ = writeln!(out, "    {l}");
        }
        for (label, r) in [
            ("eventual keyspace", &self.eventual_lost_writes),
            ("eventual keyspace", &self.convergence),
            ("strong keyspace", &self.strong_lost_writes),
            ("strong keyspace", &self.strong_linearizable),
        ] {
            if r.verdict != Verdict::Valid || !self.passed() {
                for (i, line) in r.to_string().lines().enumerate() {
                    if i == 0 {
                        let _ = writeln!(out, "  [{label}] {line}");
                    } else {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
        }
        out
    }
}

/// The command that reruns exactly this configuration.
pub fn reproduce_command(cfg: &SimConfig) -> String {
    let mut env = format!("FULCRUM_SIM_SEED={}", cfg.seed);
    if cfg.scenario != SimConfig::from_seed(cfg.seed).scenario {
        env.push_str(&format!(" FULCRUM_SIM_SCENARIO={}", cfg.scenario));
    }
    if cfg.fsync != FsyncPolicy::Always {
        env.push_str(&format!(" FULCRUM_SIM_FSYNC={}", cfg.fsync));
    }
    if !cfg.strong {
        env.push_str(" FULCRUM_SIM_STRONG=0");
    }
    format!("{env} cargo test -p fulcrum-sim --test simulation one_seed_from_env -- --nocapture")
}

/// Whether undecided checks fail runs too (`FULCRUM_SIM_STRICT=1`).
pub fn strict() -> bool {
    std::env::var("FULCRUM_SIM_STRICT").is_ok_and(|v| v == "1")
}

/// Logs to stderr when `FULCRUM_SIM_LOG` holds a tracing filter (e.g.
/// `info` or `fulcrum_node=debug,turmoil=trace`).
fn init_logging() {
    if let Ok(filter) = std::env::var("FULCRUM_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

impl Sim {
    /// The run for `seed` ([`SimConfig::from_seed`]).
    pub fn new(seed: u64) -> Sim {
        Sim::with_config(SimConfig::from_seed(seed))
    }

    /// A run with an explicit configuration.
    pub fn with_config(config: SimConfig) -> Sim {
        Sim { config }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Runs the simulation and the checks.
    ///
    /// # Errors
    /// The simulation itself broke: a host's software returned an error
    /// (a node could not start) or the run exceeded its time limit (a
    /// liveness failure: the final reads never finished).
    pub fn run(&self) -> Result<RunOutcome, String> {
        init_logging();
        let cfg = self.config.clone();
        let mut builder = turmoil::Builder::new();
        builder
            .rng_seed(cfg.seed)
            .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .tick_duration(Duration::from_millis(1))
            .simulation_duration(cfg.workload + Duration::from_secs(120))
            .min_message_latency(cfg.min_latency)
            .max_message_latency(cfg.max_latency)
            .fail_rate(0.0)
            .repair_rate(cfg.repair_rate);
        let mut sim = builder.build();

        let shared: SharedRef = Rc::new(RefCell::new(Shared::default()));
        let slots: Vec<SlotRef> = (0..cfg.nodes).map(|_| SlotRef::default()).collect();
        for (i, slot) in slots.iter().enumerate() {
            let (slot, cfg) = (slot.clone(), cfg.clone());
            sim.host(node_name(i), move || {
                node_software(i, cfg.clone(), slot.clone())
            });
        }
        let mut clients = Vec::new();
        let mut id = 0u64;
        let strong_clients = if cfg.strong { cfg.strong_clients } else { 0 };
        for (count, keyspace) in [(cfg.eventual_clients, EVENTUAL), (strong_clients, STRONG)] {
            for c in 0..count {
                id += 1;
                let name = format!("{keyspace}-client{}", c + 1);
                clients.push(name.clone());
                sim.client(
                    name,
                    workload::worker(cfg.clone(), shared.clone(), id, keyspace),
                );
            }
        }
        id += 1;
        clients.push("admin".into());
        sim.client("admin", workload::admin(cfg.clone(), shared.clone(), id));

        let mut nemesis = NemesisRun {
            episodes: nemesis::schedule(&cfg),
            next: 0,
            active: None,
            healed: false,
            loss_on: false,
            log: Vec::new(),
            slots: slots.clone(),
            nodes: cfg.nodes,
            clients,
        };
        loop {
            match sim.step() {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    let mut log = nemesis.log.clone();
                    log.extend(shared.borrow().notes.iter().cloned());
                    log.sort();
                    let e = e.to_string();
                    let e = if e.starts_with("Ran for duration") {
                        format!("liveness: {e} (the final reads never all succeeded)")
                    } else {
                        e
                    };
                    return Err(format!(
                        "seed {} ({}): the simulation broke at {:?}: {e}\n  reproduce: {}\n  log:\n    {}",
                        cfg.seed,
                        cfg.scenario,
                        sim.elapsed(),
                        reproduce_command(&cfg),
                        log.join("\n    ")
                    ));
                }
            }
            let ready = shared.borrow().ready_at;
            if let Some(ready) = ready {
                let now = sim.elapsed();
                let t = now.saturating_sub(ready);
                nemesis.step(&mut sim, &cfg, t, now);
                if nemesis.healed && shared.borrow().healed_at.is_none() {
                    shared.borrow_mut().healed_at = Some(now);
                }
            }
        }
        let simulated = sim.elapsed();

        // Replica states, read from each node's open engine.
        let mut replicas: BTreeMap<String, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
        let table = format!("data.{EVENTUAL}");
        for (i, slot) in slots.iter().enumerate() {
            let mut state = BTreeMap::new();
            if let Some(storage) = slot.borrow().storage.clone() {
                let rows = storage
                    .scan(&table, Bound::Unbounded, Bound::Unbounded, usize::MAX)
                    .unwrap_or_default();
                for (k, v) in rows {
                    let key = format!("{EVENTUAL}/{}", String::from_utf8_lossy(&k));
                    let mut values: Vec<u64> = match Record::decode(&v) {
                        Ok(r) => r
                            .live(u64::MAX / 2)
                            .map(|v| {
                                std::str::from_utf8(&v.value)
                                    .ok()
                                    .and_then(|s| s.parse().ok())
                                    .unwrap_or(u64::MAX)
                            })
                            .collect(),
                        Err(_) => vec![u64::MAX],
                    };
                    values.sort_unstable();
                    state.insert(key, values);
                }
            }
            replicas.insert(node_name(i), state);
        }
        drop(sim);

        let (history, notes) = {
            let s = shared.borrow();
            (s.history.clone(), s.notes.clone())
        };
        let mut log = nemesis.log;
        log.extend(notes);
        log.sort();
        Ok(check(cfg, history, log, &replicas, simulated))
    }
}

/// Runs every check and sorts the results into failures and undecided checks.
fn check(
    config: SimConfig,
    history: History,
    log: Vec<String>,
    replicas: &BTreeMap<String, BTreeMap<String, Vec<u64>>>,
    simulated: Duration,
) -> RunOutcome {
    let part = |prefix: &str| {
        History::subset(
            history
                .ops()
                .iter()
                .filter(|op| op.key.starts_with(&format!("{prefix}/"))),
        )
    };
    let eventual = part(EVENTUAL);
    let strong = part(STRONG);
    let eventual_lost_writes = check_lost_writes(&eventual);
    let convergence = check_convergence(replicas);
    let strong_lost_writes = check_lost_writes(&strong);
    let strong_linearizable = check_linearizable(&strong, &LinearizabilityOptions::default());

    let mut failures = Vec::new();
    let mut undecided = Vec::new();
    let mut require = |r: &Report, what: &str| {
        if r.verdict != Verdict::Valid {
            failures.push(format!("{what}: {} — {}", r.verdict, r.summary));
        }
    };
    require(
        &eventual_lost_writes,
        "eventual keyspace, QUORUM/QUORUM: lost writes",
    );
    require(&convergence, "eventual keyspace: replica convergence");
    require(&strong_lost_writes, "strong keyspace: lost writes");
    match strong_linearizable.verdict {
        Verdict::Valid => {}
        Verdict::Invalid => failures.push(format!(
            "strong keyspace: linearizability INVALID — {}",
            strong_linearizable.summary
        )),
        // The search budget ran out: undecided, not a violation.
        Verdict::Unknown => undecided.push(format!(
            "strong keyspace: linearizability UNKNOWN (checker budget) — {}",
            strong_linearizable.summary
        )),
    }
    RunOutcome {
        config,
        history,
        log,
        eventual_lost_writes,
        convergence,
        strong_lost_writes,
        strong_linearizable,
        failures,
        undecided,
        simulated,
    }
}

/// The software of node `i`: open the engine on the node's disk and run a
/// Fulcrum node until the host is crashed.
async fn node_software(i: usize, cfg: SimConfig, slot: SlotRef) -> turmoil::Result {
    let ip = turmoil::lookup(node_name(i));
    let seed_ip = turmoil::lookup(node_name(0));
    let any = std::net::IpAddr::from([0, 0, 0, 0]);
    let storage = {
        let disk = slot.borrow().disk.clone();
        Arc::new(MemoryStorage::open(&disk)?)
    };
    let boots = {
        let mut s = slot.borrow_mut();
        s.storage = Some(storage.clone());
        s.boots += 1;
        s.boots
    };
    let config = NodeConfig {
        node_id: node_name(i),
        data_dir: "/nonexistent/fulcrum-sim".into(),
        // turmoil binds only the unspecified address; members dial the
        // host's own address.
        resp_addr: SocketAddr::new(any, RESP_PORT),
        http_addr: SocketAddr::new(any, HTTP_PORT),
        peer_addr: SocketAddr::new(any, PEER_PORT),
        peer_advertise_addr: Some(SocketAddr::new(ip, PEER_PORT).to_string()),
        seeds: if i == 0 {
            Vec::new()
        } else {
            vec![SocketAddr::new(seed_ip, PEER_PORT).to_string()]
        },
        fsync: cfg.fsync,
        // No TTLs in the workload; the sweeper's blocking-pool thread
        // would only scan an empty index.
        sweep_interval_ms: 3_600_000,
        request_timeout_ms: cfg.request_timeout_ms,
        allow_faults: true,
        // openraft's election timeouts: from the seed, different for each
        // node and each boot of it.
        raft_seed: Some(
            cfg.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add((u64::from(boots) << 8) | i as u64),
        ),
        ..NodeConfig::default()
    };
    let node = Node::start_with_storage(config, storage).await?;
    std::future::pending::<()>().await;
    drop(node);
    Ok(())
}

/// The nemesis as it runs: applies the schedule between steps.
struct NemesisRun {
    episodes: Vec<Episode>,
    next: usize,
    active: Option<Episode>,
    healed: bool,
    /// Random link failure (`Lossy`) is on.
    loss_on: bool,
    log: Vec<String>,
    slots: Vec<SlotRef>,
    nodes: usize,
    clients: Vec<String>,
}

impl NemesisRun {
    /// `t`: time since the workload started; `now`: simulated time.
    fn step(&mut self, sim: &mut turmoil::Sim<'_>, cfg: &SimConfig, t: Duration, now: Duration) {
        if self.healed {
            return;
        }
        if t >= cfg.workload {
            if let Some(ep) = self.active.take() {
                self.end(sim, ep.fault, now);
            }
            if cfg.fail_rate > 0.0 {
                sim.set_fail_rate(0.0);
                self.each_link(|a, b| sim.repair(a, b));
            }
            self.say(now, "heal: every fault ended, every node up".into());
            self.healed = true;
            return;
        }
        if !self.loss_on && cfg.fail_rate > 0.0 {
            self.loss_on = true;
            sim.set_fail_rate(cfg.fail_rate);
            self.say(
                now,
                format!("random link failure on, rate {}", cfg.fail_rate),
            );
        }
        if let Some(ep) = self.active {
            if t >= ep.end {
                self.active = None;
                self.end(sim, ep.fault, now);
            }
        }
        if self.active.is_none() {
            if let Some(ep) = self.episodes.get(self.next).copied() {
                if t >= ep.start {
                    self.next += 1;
                    self.begin(sim, ep.fault, now);
                    if matches!(ep.fault, Fault::Bounce(_)) {
                        // Over as soon as it began.
                    } else {
                        self.active = Some(ep);
                    }
                }
            }
        }
    }

    fn say(&mut self, now: Duration, what: String) {
        self.log
            .push(format!("{:>9.3}s nemesis: {what}", now.as_secs_f64()));
    }

    fn each_link(&self, mut f: impl FnMut(&str, &str)) {
        let mut hosts: Vec<String> = (0..self.nodes).map(node_name).collect();
        hosts.extend(self.clients.iter().cloned());
        for (i, a) in hosts.iter().enumerate() {
            for b in &hosts[i + 1..] {
                f(a, b);
            }
        }
    }

    fn others(&self, n: usize, with_clients: bool) -> Vec<String> {
        let mut v: Vec<String> = (0..self.nodes).filter(|&m| m != n).map(node_name).collect();
        if with_clients {
            v.extend(self.clients.iter().cloned());
        }
        v
    }

    /// Power loss. The engine loses its unsynced writes first, then the
    /// host's tasks are dropped (so nothing syncs on the way down). A
    /// machine that loses power sends no FIN or RST: its links are cut
    /// while turmoil drops the tasks (packets still in flight to or from it
    /// are lost) and repaired right after, so peers notice by timeouts, or
    /// by an RST from the restarted node. (The cut also keeps the run
    /// deterministic: tokio drops a runtime's tasks in an order that
    /// depends on process-global task ids, and every socket dropped on a
    /// healthy link would draw a latency from the simulation's RNG.)
    fn power_off(&self, sim: &mut turmoil::Sim<'_>, n: usize, restart: bool) {
        let everyone = self.others(n, true);
        for o in &everyone {
            sim.partition(node_name(n), o.as_str());
        }
        if let Some(storage) = self.slots[n].borrow().storage.clone() {
            storage.crash();
        }
        sim.crash(node_name(n));
        for o in &everyone {
            sim.repair(node_name(n), o.as_str());
        }
        if restart {
            sim.bounce(node_name(n));
        }
    }

    fn begin(&mut self, sim: &mut turmoil::Sim<'_>, fault: Fault, now: Duration) {
        self.say(now, format!("begin {fault}"));
        match fault {
            Fault::IsolateFromNodes(n) => {
                for o in self.others(n, false) {
                    sim.hold(node_name(n), o);
                }
            }
            Fault::IsolateFully(n) => {
                for o in self.others(n, true) {
                    sim.hold(node_name(n), o);
                }
            }
            Fault::Stall(a, b) => sim.hold(node_name(a), node_name(b)),
            Fault::Crash(n) => self.power_off(sim, n, false),
            Fault::Bounce(n) => self.power_off(sim, n, true),
            Fault::CrashAll => {
                for n in 0..self.nodes {
                    self.power_off(sim, n, false);
                }
            }
            Fault::DropFromNodes(n) => {
                for o in self.others(n, false) {
                    sim.partition(node_name(n), o);
                }
            }
        }
    }

    fn end(&mut self, sim: &mut turmoil::Sim<'_>, fault: Fault, now: Duration) {
        self.say(now, format!("end {fault}"));
        match fault {
            Fault::IsolateFromNodes(n) => {
                for o in self.others(n, false) {
                    sim.release(node_name(n), o);
                }
            }
            Fault::IsolateFully(n) => {
                for o in self.others(n, true) {
                    sim.release(node_name(n), o);
                }
            }
            Fault::Stall(a, b) => sim.release(node_name(a), node_name(b)),
            Fault::Crash(n) => sim.bounce(node_name(n)),
            Fault::CrashAll => {
                for n in 0..self.nodes {
                    sim.bounce(node_name(n));
                }
            }
            Fault::Bounce(_) => {}
            Fault::DropFromNodes(n) => {
                for o in self.others(n, false) {
                    sim.repair(node_name(n), o);
                }
            }
        }
    }
}
