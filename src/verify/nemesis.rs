//! The nemesis: a seeded schedule of faults against the cluster under test.
//!
//! After a quiet start, the nemesis repeatedly picks a fault kind from the
//! `--nemesis` list and a random node, injects the fault, holds it for
//! 2–5 s, heals it, and rests for 1–3 s — one fault at a time, so each
//! healing restores a whole cluster. Every action is printed with its time
//! since the workload started and kept for the report.
//!
//! * `partition`: isolate the node from every other node, in a randomly
//!   chosen mode (refuse, drop or black-hole; see [`super::proxy`]) where
//!   the backend can choose (local processes; Docker disconnects the node
//!   from the peer network whatever the mode).
//! * `kill`: SIGKILL the node, then restart it on the same data.
//! * `pause`: freeze the node (SIGSTOP / `docker pause`), then thaw it.
//! * `clock`: skew one node's wall clock (the hybrid logical clock's
//!   physical source and TTLs) by up to ±5 s with `FAULT CLOCK-OFFSET`,
//!   then restore it.
//! * `join`: start the node held back at the beginning (`n<nodes+1>`),
//!   seeded with the members; once every member shows it up, the clients
//!   use it too. Once per run.
//! * `leave`: `CLUSTER LEAVE` to a random member other than `n1` (which
//!   stays, so every later seed list holds a member); once it answered and
//!   stopped, the clients no longer use it. Once per run, and only while
//!   at least 4 members are left to choose from (3 replicas stay).
//!
//! Membership changes come first, `join` before `leave` (so a 3-node run
//! with both has 4 members when one leaves), each on a healthy cluster
//! (every member up), and are not healed: the run ends with the new member
//! set, which the final checks use. Each change is logged when it starts
//! (`join` / `leave`) and when every member agrees on the new set
//! (`joined` / `left`), which delimits the availability check's windows.
//!
//! The faults themselves are the backend's ([`ClusterUnderTest`]); this
//! module only decides when and where.
//!
//! The same seed gives the same schedule (kinds, nodes, modes, durations);
//! the interleaving with client operations still varies from run to run.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::backend::ClusterUnderTest;
use super::proxy::Mode;
use super::recorder::Recorder;
use super::workload::Targets;
use super::Console;

/// How long a membership change may take until every member shows the new
/// member set up (a join streams partitions; a leave pushes them away).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

/// A fault kind of `--nemesis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// No faults.
    None,
    /// Isolate a random node from the others, then heal.
    Partition,
    /// SIGKILL a random node, then restart it on its data.
    Kill,
    /// SIGSTOP a random node, then SIGCONT.
    Pause,
    /// Clock skew of one node (`FAULT CLOCK-OFFSET`).
    Clock,
    /// Start a node held back at the beginning, joining the running cluster.
    Join,
    /// `CLUSTER LEAVE` to a random member other than n1.
    Leave,
}

impl Fault {
    /// Whether this changes the member set rather than hurting a node.
    pub fn is_membership(self) -> bool {
        matches!(self, Fault::Join | Fault::Leave)
    }
}

/// One nemesis action, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the workload started.
    pub at_ms: u64,
    /// `partition`, `kill`, `pause`, `clock` or `heal`; `join` / `joined`
    /// and `leave` / `left` when a membership change starts and ends.
    pub fault: String,
    /// What exactly was done.
    pub detail: String,
}

/// Checks and deduplicates the `--nemesis` list; `none` stands alone.
///
/// # Errors
/// `none` combined with real faults.
pub fn normalize(faults: &[Fault]) -> anyhow::Result<Vec<Fault>> {
    let mut out: Vec<Fault> = faults.to_vec();
    out.sort();
    out.dedup();
    if out.contains(&Fault::None) {
        if out.len() > 1 {
            bail!("--nemesis none cannot be combined with other faults");
        }
        return Ok(Vec::new());
    }
    Ok(out)
}

/// `partition,kill` or `none`.
pub fn describe(faults: &[Fault]) -> String {
    if faults.is_empty() {
        return "none".to_string();
    }
    faults
        .iter()
        .map(|f| super::enum_name(*f))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether these faults leave the cluster alone (nothing injected).
pub fn is_quiet(faults: &[Fault]) -> bool {
    faults.iter().all(|f| matches!(f, Fault::None))
}

/// Runs the schedule until `deadline`; every fault is healed before this
/// returns (membership changes stay). Returns what was done.
pub async fn run<C: ClusterUnderTest>(
    cluster: &mut C,
    faults: &[Fault],
    mut rng: StdRng,
    targets: &Targets,
    recorder: &Recorder,
    deadline: Instant,
    console: &Console,
) -> Vec<Event> {
    let mut log = EventLog {
        events: Vec::new(),
        recorder,
        console,
    };
    let kinds: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| {
            matches!(
                f,
                Fault::Partition | Fault::Kill | Fault::Pause | Fault::Clock
            )
        })
        .collect();
    // `normalize` sorted them: join before leave.
    let changes: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| f.is_membership())
        .collect();
    if kinds.is_empty() && changes.is_empty() {
        return log.events;
    }
    let total = deadline.saturating_duration_since(recorder.start());
    let quiet = (total / 5).min(Duration::from_secs(3));
    sleep_until(recorder.start() + quiet, deadline).await;
    for change in changes {
        if Instant::now() >= deadline {
            log.note(
                "note",
                &format!(
                    "{} skipped: the workload ended before its turn",
                    super::enum_name(change)
                ),
            );
            continue;
        }
        match change {
            Fault::Join => join(cluster, targets, &mut log).await,
            Fault::Leave => leave(cluster, &mut rng, targets, &mut log).await,
            _ => {}
        }
        let rest = Duration::from_millis(rng.random_range(1_000..=3_000));
        sleep_until(Instant::now() + rest, deadline).await;
    }
    if kinds.is_empty() {
        return log.events;
    }
    loop {
        let hold = Duration::from_millis(rng.random_range(2_000..=5_000));
        let rest = Duration::from_millis(rng.random_range(1_000..=3_000));
        let now = Instant::now();
        if now + hold + Duration::from_secs(1) > deadline {
            break;
        }
        let kind = kinds[rng.random_range(0..kinds.len())];
        let members = cluster.members();
        let node = members[rng.random_range(0..members.len())];
        let name = cluster.nodes()[node].id.clone();
        match kind {
            Fault::Partition => {
                let mode = [Mode::Refuse, Mode::Drop, Mode::BlackHole][rng.random_range(0..3)];
                let done = cluster.isolate(node, mode).await;
                log.outcome("partition", done);
                tokio::time::sleep(hold).await;
                let done = cluster.heal_partitions().await;
                log.outcome("heal", done);
            }
            Fault::Kill => {
                let done = cluster.kill(node).await;
                log.outcome("kill", done);
                tokio::time::sleep(hold).await;
                let started = Instant::now();
                let done = cluster.restart(node).await.map(|what| {
                    format!(
                        "{what} (answering after {:.1} s)",
                        started.elapsed().as_secs_f64()
                    )
                });
                log.outcome("heal", done);
            }
            Fault::Pause => {
                let done = cluster.pause(node).await;
                log.outcome("pause", done);
                tokio::time::sleep(hold).await;
                let done = cluster.resume(node).await;
                log.outcome("heal", done);
            }
            Fault::Clock => {
                // Skew one node's wall clock (FAULT CLOCK-OFFSET): up to
                // 5 s ahead or behind, then back.
                let magnitude = rng.random_range(100..=5_000i64);
                let offset = if rng.random_bool(0.5) {
                    magnitude
                } else {
                    -magnitude
                };
                let off = offset.to_string();
                match cluster
                    .admin(node, &["FAULT", "CLOCK-OFFSET", off.as_str()])
                    .await
                {
                    Ok(_) => log.note("clock", &format!("{name}'s clock {offset:+} ms")),
                    Err(e) => log.note("clock", &format!("skewing {name} failed: {e:#}")),
                }
                tokio::time::sleep(hold).await;
                match cluster.admin(node, &["FAULT", "CLOCK-OFFSET", "0"]).await {
                    Ok(_) => log.note("heal", &format!("{name}'s clock restored")),
                    Err(e) => log.note("heal", &format!("restoring {name}'s clock failed: {e:#}")),
                }
            }
            Fault::None | Fault::Join | Fault::Leave => {}
        }
        sleep_until(Instant::now() + rest, deadline).await;
    }
    log.events
}

/// The `join` change: the held-back node starts, joins, and once every
/// member shows it up the clients use it.
async fn join<C: ClusterUnderTest>(cluster: &mut C, targets: &Targets, log: &mut EventLog<'_>) {
    let Some(node) = cluster.held_back() else {
        log.note("note", "join skipped: no node is held back");
        return;
    };
    let name = cluster.nodes()[node].id.clone();
    if let Err(e) = cluster.wait_all_up(MEMBERSHIP_TIMEOUT).await {
        log.note(
            "note",
            &format!("join skipped: the cluster is not healthy: {e:#}"),
        );
        return;
    }
    let started = Instant::now();
    log.note("join", &format!("{name} joins the running cluster"));
    match cluster.join(node).await {
        Ok(what) => log.note("join", &what),
        Err(e) => {
            log.note("joined", &format!("failed: {e:#}"));
            return;
        }
    }
    match cluster.wait_all_up(MEMBERSHIP_TIMEOUT).await {
        Ok(()) => {
            targets.set(node, true);
            log.note(
                "joined",
                &format!(
                    "{name} is up on all {} members after {:.1} s; clients use it",
                    cluster.members().len(),
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        Err(e) => log.note("joined", &format!("failed: {e:#}")),
    }
}

/// The `leave` change: a random member other than n1 leaves; once it
/// stopped, the clients no longer use it.
async fn leave<C: ClusterUnderTest>(
    cluster: &mut C,
    rng: &mut StdRng,
    targets: &Targets,
    log: &mut EventLog<'_>,
) {
    let members = cluster.members();
    if members.len() < 4 {
        log.note(
            "note",
            &format!(
                "leave skipped: {} members; a leave needs 4 (3 replicas stay)",
                members.len()
            ),
        );
        return;
    }
    let candidates: Vec<usize> = members.into_iter().filter(|&i| i != 0).collect();
    let node = candidates[rng.random_range(0..candidates.len())];
    let name = cluster.nodes()[node].id.clone();
    if let Err(e) = cluster.wait_all_up(MEMBERSHIP_TIMEOUT).await {
        log.note(
            "note",
            &format!("leave skipped: the cluster is not healthy: {e:#}"),
        );
        return;
    }
    let started = Instant::now();
    log.note("leave", &format!("CLUSTER LEAVE to {name}"));
    let done = cluster.leave(node).await;
    if cluster.membership(node) != super::backend::Membership::Member {
        targets.set(node, false);
    }
    match done {
        Ok(what) => log.note("leave", &what),
        Err(e) => {
            log.note("left", &format!("failed: {e:#}"));
            return;
        }
    }
    match cluster.wait_all_up(MEMBERSHIP_TIMEOUT).await {
        Ok(()) => log.note(
            "left",
            &format!(
                "{name} is gone; the {} remaining members are up on each other after {:.1} s",
                cluster.members().len(),
                started.elapsed().as_secs_f64()
            ),
        ),
        Err(e) => log.note("left", &format!("failed: {e:#}")),
    }
}

/// Safety net after the run: resumes paused nodes, restarts dead ones, lifts
/// every proxy rule. Returns what it had to do.
pub async fn heal_all<C: ClusterUnderTest>(
    cluster: &mut C,
    recorder: &Recorder,
    console: &Console,
) -> Vec<Event> {
    let mut log = EventLog {
        events: Vec::new(),
        recorder,
        console,
    };
    if let Err(e) = cluster.heal_partitions().await {
        log.note("heal", &format!("failed: {e:#}"));
    }
    for i in cluster.members() {
        if cluster.is_paused(i) {
            let done = cluster.resume(i).await;
            log.outcome("heal", done);
        }
        if !cluster.is_running(i) {
            let done = cluster.restart(i).await;
            log.outcome("heal", done);
        }
    }
    for note in cluster.notes() {
        log.note("note", &note);
    }
    log.events
}

async fn sleep_until(at: Instant, deadline: Instant) {
    tokio::time::sleep_until(at.min(deadline).into()).await;
}

struct EventLog<'a> {
    events: Vec<Event>,
    recorder: &'a Recorder,
    console: &'a Console,
}

impl EventLog<'_> {
    /// Logs what a fault method did, or how it failed.
    fn outcome(&mut self, fault: &str, done: anyhow::Result<String>) {
        match done {
            Ok(what) => self.note(fault, &what),
            Err(e) => self.note(fault, &format!("failed: {e:#}")),
        }
    }

    fn note(&mut self, fault: &str, detail: &str) {
        let at = self.recorder.start().elapsed();
        self.console.line(format!(
            "[{:>7.2}s] nemesis {fault}: {detail}",
            at.as_secs_f64()
        ));
        self.events.push(Event {
            at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            fault: fault.to_string(),
            detail: detail.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_stands_alone() {
        assert!(normalize(&[Fault::None]).expect("none").is_empty());
        assert!(normalize(&[Fault::None, Fault::Kill]).is_err());
        assert_eq!(
            normalize(&[Fault::Kill, Fault::Partition, Fault::Kill]).expect("list"),
            vec![Fault::Partition, Fault::Kill]
        );
        assert_eq!(describe(&[Fault::Partition, Fault::Kill]), "partition,kill");
        assert!(is_quiet(&[Fault::None]));
        assert!(!is_quiet(&[Fault::Clock]));
        assert!(!is_quiet(&[Fault::Pause]));
        assert_eq!(
            normalize(&[Fault::Leave, Fault::Kill, Fault::Join]).expect("list"),
            vec![Fault::Kill, Fault::Join, Fault::Leave]
        );
        assert!(!is_quiet(&[Fault::Join]));
    }
}
