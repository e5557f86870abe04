//! `fulcrum verify`: a Jepsen-style test. Starts a real cluster of
//! `fulcrum server` child processes on loopback (or, with `--docker`,
//! containers of a compose project), runs concurrent clients
//! against it while a nemesis injects faults, records every operation into a
//! [`fulcrum_check::History`], heals the cluster, takes final reads and
//! checks the history against what the keyspace's consistency level claims.
//!
//! * [`args`]: the flags and their validation;
//! * [`backend`]: the [`backend::ClusterUnderTest`] seam between a run and
//!   its cluster: fault primitives per backend, status and admin commands
//!   once for all;
//! * [`cluster`]: the local backend: spawning, killing, pausing and
//!   restarting child processes;
//! * [`docker`]: the Docker backend: a compose project per run, faults
//!   through `docker kill/start/pause/unpause/network disconnect`;
//! * [`proxy`]: one fault-injecting TCP proxy in front of each node's peer
//!   port (every node advertises its proxy), so partitions are real dropped,
//!   refused or black-holed connections between real processes;
//! * [`gossip_relay`]: the UDP relay beside each proxy that gossip crosses
//!   (every node advertises it as its gossip address), under the same rules;
//! * [`nemesis`]: the fault schedule (seeded);
//! * [`setup`]: the keyspace under test;
//! * [`workload`]: the clients (register, counter, set);
//! * [`recorder`]: the shared history and how replies become outcomes;
//! * [`probe`]: final reads and per-replica convergence probes;
//! * [`report`]: which claims a run makes, the checks that judge them, the
//!   verdicts, exit codes and saved histories.
//!
//! Exit codes: 0 every claim holds, 1 a claim is violated, 2 a claim could
//! not be decided, 3 the run itself failed (for example the cluster did not
//! start). `TESTING.md` at the repository root explains the claims.

mod args;
mod backend;
mod cluster;
mod docker;
mod gossip_relay;
mod nemesis;
mod probe;
mod proxy;
mod recorder;
mod report;
mod setup;
mod workload;

use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;

pub use args::{enum_name, ClaimArg, ModeArg, VerifyArgs, WorkloadKind};
use args::{reproduce_command, Settings};
use backend::ClusterUnderTest;
use cluster::{ClusterOptions, TestCluster};
use docker::{DockerCluster, DockerOptions};
use nemesis::Fault;
use recorder::Recorder;
use report::{Claims, RunMeta};
use workload::{Plan, Targets};

/// The keyspace every run creates and uses.
const KEYSPACE: &str = "verify";

/// How long the cluster may take to start and report every member up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the cluster may take to recover after the last fault is healed.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Extra time after recovery for in-flight requests (timed-out writes,
/// delayed replica puts) to land before the final reads.
const SETTLE: Duration = Duration::from_secs(3);

/// How long after healing the replicas of an eventual keyspace may take to
/// agree on their Merkle roots through hinted handoff and anti-entropy
/// alone (the nodes exchange trees every [`backend::AAE_INTERVAL_MS`]).
const MERKLE_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `fulcrum verify` and exits with its verdict's code.
///
/// # Errors
/// Never in practice: failures of the run are reported and turned into
/// exit code 3 here, so that every outcome has its own code.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let code = match execute(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            report::EXIT_RUN_FAILED
        }
    };
    if code == 0 {
        return Ok(());
    }
    // Everything (children, temporary directories, files) was released when
    // `execute` returned; only the exit code is left to deliver.
    std::process::exit(i32::from(code))
}

async fn execute(args: VerifyArgs) -> anyhow::Result<u8> {
    if let Some(path) = &args.check_history {
        return report::recheck(path, &args.offline_overrides(), args.json);
    }
    let settings = Settings::from_args(&args)?;
    run_cluster_test(&args, settings).await
}

/// Where human-readable lines go: above the progress bar, or nowhere with
/// `--json` (the JSON document carries everything).
#[derive(Clone)]
pub struct Console {
    bar: ProgressBar,
    quiet: bool,
}

impl Console {
    fn new(json: bool, duration: Duration) -> Console {
        let bar = if json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(duration.as_millis().try_into().unwrap_or(u64::MAX));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        };
        Console { bar, quiet: json }
    }

    /// Prints a line (suspending the bar so it stays intact; works when the
    /// bar is hidden because stderr is not a terminal).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet {
            self.bar.suspend(|| println!("{}", text.as_ref()));
        }
    }

    fn tick(&self, elapsed: Duration, message: String) {
        self.bar
            .set_position(elapsed.as_millis().try_into().unwrap_or(u64::MAX));
        self.bar.set_message(message);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

async fn run_cluster_test(args: &VerifyArgs, s: Settings) -> anyhow::Result<u8> {
    let console = Console::new(args.json, args.duration);
    let reproduce = reproduce_command(args, &s);
    console.line(format!(
        "fulcrum verify: workload {:?}, mode {:?}, {} nodes, nemesis {}, {:?}, {} clients, {} keys, seed {}",
        s.workload,
        s.mode,
        args.nodes,
        nemesis::describe(&s.faults),
        args.duration,
        args.clients,
        args.keys,
        s.seed
    )
    .to_lowercase());
    console.line(format!("reproduce: {reproduce}"));

    // One node held back to join during the run.
    let held_back = usize::from(s.faults.contains(&Fault::Join));
    if args.docker {
        let options = DockerOptions {
            nodes: usize::from(args.nodes),
            held_back,
            image: args.docker_image.clone(),
            project: args.docker_project.clone(),
            base_port: args.base_port,
            keep_data: args.keep_data,
        };
        let cluster = DockerCluster::start(options, STARTUP_TIMEOUT)
            .await
            .context("cannot start the containerised cluster under test")?;
        run_on(args, &s, cluster, &console, reproduce).await
    } else {
        let options = ClusterOptions {
            nodes: usize::from(args.nodes),
            held_back,
            base_port: args.base_port,
            keep_data: args.keep_data,
        };
        let cluster = TestCluster::start(options, STARTUP_TIMEOUT)
            .await
            .context("cannot start the cluster under test")?;
        run_on(args, &s, cluster, &console, reproduce).await
    }
}

/// Runs the test on a started cluster and stops it, whatever happens.
async fn run_on<C: ClusterUnderTest>(
    args: &VerifyArgs,
    s: &Settings,
    mut cluster: C,
    console: &Console,
    reproduce: String,
) -> anyhow::Result<u8> {
    let held_back = match cluster.held_back() {
        Some(i) => format!(" ({} held back to join)", cluster.nodes()[i].id),
        None => String::new(),
    };
    console.line(format!(
        "cluster: {} nodes up{held_back}, {}",
        cluster.members().len(),
        cluster.location()
    ));
    let outcome = drive(args, s, &mut cluster, console, reproduce).await;
    console.finish();
    let stopped = cluster.stop().await;
    if args.keep_data {
        console.line(format!("data and node logs kept: {}", cluster.location()));
    }
    let code = outcome?;
    stopped.context("cannot stop the cluster cleanly")?;
    Ok(code)
}

/// Everything between "cluster up" and "verdict", so the caller stops the
/// cluster whatever happens here.
async fn drive<C: ClusterUnderTest>(
    args: &VerifyArgs,
    s: &Settings,
    cluster: &mut C,
    console: &Console,
    reproduce: String,
) -> anyhow::Result<u8> {
    let plan = Plan {
        workload: s.workload,
        strong: s.mode == ModeArg::Strong,
        keyspace: KEYSPACE.to_string(),
        keys: args.keys,
        clients: args.clients,
        levels: s.levels,
        nodes: cluster.resp_addrs(),
        targets: Targets::new(cluster.len(), |i| {
            cluster.membership(i) == backend::Membership::Member
        }),
        session_keys: s.mode == ModeArg::Eventual && s.workload == WorkloadKind::Register,
    };
    setup::create_keyspace(cluster, &plan, console).await?;
    setup::wait_until_serving(&plan, console).await?;
    // The last node started at the beginning.
    let last = usize::from(args.nodes) - 1;
    if let Some(ms) = args.delay_puts {
        cluster
            .set_delay_puts(last, ms)
            .await
            .context("cannot set FAULT DELAY-PUTS")?;
        console.line(format!(
            "control: {} applies replica writes {ms} ms late (FAULT DELAY-PUTS)",
            cluster.nodes()[last].id
        ));
    }

    if args.stale_reads {
        cluster
            .set_stale_reads(true)
            .await
            .context("cannot set FAULT STALE-READS")?;
        console.line(
            "control: every node serves strong reads from its own applied state, \
             without a read index (FAULT STALE-READS)",
        );
    }

    let recorder = Recorder::new(Instant::now());
    let deadline = recorder.start() + args.duration;
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed);
    let nemesis_rng = rand::rngs::StdRng::from_rng(&mut rng);
    let clients = workload::run_clients(&plan, &recorder, deadline, &mut rng);
    let nemesis = nemesis::run(
        cluster,
        &s.faults,
        nemesis_rng,
        &plan.targets,
        &recorder,
        deadline,
        console,
    );
    let progress = progress(&recorder, deadline, console);
    let ((), events, ()) = tokio::join!(clients, nemesis, progress);
    let mut events = events;
    console.line("workload done; healing the cluster");
    events.extend(nemesis::heal_all(cluster, &recorder, console).await);
    if args.delay_puts.is_some() && cluster.membership(last) == backend::Membership::Member {
        cluster.set_delay_puts(last, 0).await?;
    }
    if args.stale_reads {
        cluster.set_stale_reads(false).await?;
    }
    cluster
        .wait_all_up(RECOVERY_TIMEOUT)
        .await
        .context("the cluster did not recover after healing")?;
    tokio::time::sleep(SETTLE).await;

    let merkle = if s.mode == ModeArg::Eventual {
        console
            .line("anti-entropy probe: every partition's replicas' Merkle roots, before any read");
        Some(probe::await_merkle_agreement(cluster, KEYSPACE, MERKLE_PATIENCE, console).await?)
    } else {
        None
    };

    console.line("final reads");
    probe::final_reads(&plan, &recorder).await;
    let replicas = if s.mode == ModeArg::Eventual {
        console.line("convergence probe: every replica of every key at READ ONE");
        Some(probe::probe_replicas(cluster, &plan, &recorder, console).await?)
    } else {
        None
    };

    let history = recorder.snapshot();
    let meta = RunMeta {
        workload: s.workload,
        mode: s.mode,
        claim: args.claim,
        levels: s.levels.map(|(r, w)| (r.to_string(), w.to_string())),
        nodes: usize::from(args.nodes),
        nemesis: s.faults.clone(),
        seed: s.seed,
        duration_ms: u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX),
        clients: args.clients,
        reproduce,
        events,
        replicas,
        merkle,
        errors: recorder.errors(),
    };
    if let Some(path) = &args.history_out {
        report::save(path, &history, &meta)
            .with_context(|| format!("cannot save the history to {}", path.display()))?;
        console.line(format!("history saved to {}", path.display()));
    }
    let claims = Claims::for_run(&meta);
    let verdicts = report::check(&history, &meta, &claims);
    Ok(report::print(&history, &meta, &verdicts, args.json))
}

/// Refreshes the progress bar until the deadline.
async fn progress(recorder: &Recorder, deadline: Instant, console: &Console) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let stats = recorder.stats();
        console.tick(
            now.saturating_duration_since(recorder.start()),
            format!(
                "{} ops: {} ok, {} fail, {} info",
                stats.total, stats.ok, stats.fail, stats.info
            ),
        );
        if now >= deadline {
            return;
        }
    }
}
