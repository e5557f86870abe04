//! Claims, checks, verdicts and saved histories.
//!
//! A run *claims* what its keyspace's consistency level promises (see
//! `TESTING.md`); each claim is judged by one `fulcrum_check` checker.
//! Checks that the level does not promise still run and are printed as
//! informational: they never change the exit code.
//!
//! | run | claim (enforced) | checker |
//! |---|---|---|
//! | strong register | linearizability | `check_linearizable` |
//! | strong counter | every read within the increment bounds | `check_counter` (linearizable) |
//! | strong set | no acknowledged add lost | `check_lost_writes` |
//! | eventual, W+R>N | no acknowledged write lost | `check_lost_writes` |
//! | eventual, any level | replicas converge after healing | `check_convergence` |
//! | eventual register, W+R>N, no faults | read-your-writes, monotonic reads | `check_sessions` |
//! | eventual, W+R>N, nemesis `join` or `leave` | no request refused with `UNAVAILABLE` while a node joins or leaves | `check_availability` |
//! | `--claim linearizable` | linearizability (known-bad control) | `check_linearizable` |
//!
//! Saved histories are `fulcrum_check`'s JSON (`{"format": 1, "ops": …}`)
//! plus a `"verify"` object with the run's settings, nemesis events and
//! replica states, so `--check-history` can re-run every check offline.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use fulcrum_check::{
    check_availability, check_convergence, check_counter, check_linearizable, check_lost_writes,
    check_sessions, error_kinds, CheckKind, CounterMode, History, LinearizabilityOptions, Op, OpId,
    Outcome, Report, Value, Verdict, VersionOrder, Window,
};
use fulcrum_core::level::Level;
use serde::{Deserialize, Serialize};

use super::nemesis::{self, Event, Fault};
use super::probe::{roots_agree, MerkleProbe, ReplicaStates};
use super::{enum_name, ClaimArg, ModeArg, WorkloadKind};

/// Exit code: a claim is violated.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: a claim could not be decided.
pub const EXIT_UNKNOWN: u8 = 2;
/// Exit code: the run itself failed.
pub const EXIT_RUN_FAILED: u8 = 3;

/// Prefix of the single-writer keys of the eventual register workload.
pub const SESSION_KEY_PREFIX: &str = "session:";

/// How long after a membership change ended (every member shows the new
/// member set) the availability claim still holds: members may keep
/// writing to the previous ring as well until they all read with the same
/// one (at most 10 s).
const RING_SETTLE_MS: u64 = 10_000;

/// What a run was, as saved next to its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub workload: WorkloadKind,
    pub mode: ModeArg,
    #[serde(default)]
    pub claim: Option<ClaimArg>,
    /// Eventual keyspaces: the clients' (read, write) levels.
    #[serde(default)]
    pub levels: Option<(String, String)>,
    pub nodes: usize,
    #[serde(default)]
    pub nemesis: Vec<Fault>,
    pub seed: u64,
    pub duration_ms: u64,
    pub clients: u32,
    #[serde(default)]
    pub reproduce: String,
    #[serde(default)]
    pub events: Vec<Event>,
    /// Eventual keyspaces: every replica's final state.
    #[serde(default)]
    pub replicas: Option<ReplicaStates>,
    /// Eventual keyspaces: the replicas' Merkle roots after healing, before
    /// any read.
    #[serde(default)]
    pub merkle: Option<MerkleProbe>,
    /// The error reply of every operation that got one.
    #[serde(default)]
    pub errors: BTreeMap<OpId, String>,
}

/// Flags that override a saved run's settings when re-checking.
pub struct Overrides {
    pub workload: Option<WorkloadKind>,
    pub mode: Option<ModeArg>,
    pub claim: Option<ClaimArg>,
    pub levels: Option<Vec<String>>,
    pub nemesis: Option<Vec<Fault>>,
}

/// One property a run is judged on.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub check: CheckKind,
    /// Whether the verdict counts toward the exit code.
    pub enforced: bool,
    /// Why it is (or is not) claimed.
    pub why: String,
}

/// The claims of one run.
pub struct Claims(pub Vec<Claim>);

impl Claims {
    /// What a run with these settings claims (see the module docs).
    pub fn for_run(meta: &RunMeta) -> Claims {
        let mut claims = Vec::new();
        let mut claim = |check, enforced, why: &str| {
            claims.push(Claim {
                check,
                enforced,
                why: why.to_string(),
            });
        };
        match (meta.mode, meta.workload) {
            (ModeArg::Strong, WorkloadKind::Register) => claim(
                CheckKind::Linearizability,
                true,
                "strong keyspaces are linearizable",
            ),
            (ModeArg::Strong, WorkloadKind::Counter) => claim(
                CheckKind::Counter,
                true,
                "strong counters: every read counts every increment acknowledged before it began, and none never attempted",
            ),
            (ModeArg::Strong, WorkloadKind::Set) => claim(
                CheckKind::LostWrites,
                true,
                "strong keyspaces lose no acknowledged add (a compare-and-set append)",
            ),
            (ModeArg::Eventual, workload) => {
                let strict = strict_quorum(meta);
                let levels = meta
                    .levels
                    .as_ref()
                    .map_or("QUORUM/QUORUM".to_string(), |(r, w)| format!("READ {r} / WRITE {w}"));
                if strict {
                    claim(
                        CheckKind::LostWrites,
                        true,
                        &format!("{levels} has W+R>N: no acknowledged write is lost"),
                    );
                } else {
                    claim(
                        CheckKind::LostWrites,
                        false,
                        &format!("{levels} has W+R<=N: not claimed (informational)"),
                    );
                }
                claim(
                    CheckKind::AntiEntropy,
                    true,
                    "after healing, hinted handoff and Merkle-tree anti-entropy make every partition's replicas equal without any read",
                );
                claim(
                    CheckKind::Convergence,
                    true,
                    "replicas of an eventual keyspace converge after healing and repair",
                );
                if meta.nemesis.iter().any(|f| f.is_membership()) {
                    let why = if strict {
                        "W+R>N: no request is refused with UNAVAILABLE while a node joins or leaves, nor in the 10 s after (while every member adopts the new ring)"
                    } else {
                        "W+R<=N: not claimed (informational)"
                    };
                    claim(CheckKind::Availability, strict, why);
                }
                if workload == WorkloadKind::Register {
                    let quiet = nemesis::is_quiet(&meta.nemesis);
                    let why = match (strict, quiet) {
                        (true, true) => "W+R>N and no failures: read-your-writes and monotonic reads through any coordinator, on single-writer keys",
                        (true, false) => "claimed only while no failures (informational under this nemesis)",
                        (false, _) => "W+R<=N: not claimed (informational)",
                    };
                    claim(CheckKind::Session, strict && quiet, why);
                }
            }
        }
        let claims_linearizability =
            meta.mode == ModeArg::Strong && meta.workload == WorkloadKind::Register;
        if meta.claim == Some(ClaimArg::Linearizable) && !claims_linearizability {
            claim(
                CheckKind::Linearizability,
                true,
                "known-bad control: linearizability claimed by --claim linearizable",
            );
        }
        Claims(claims)
    }
}

/// Whether the eventual levels have W+R > N (N = min(3, nodes)).
fn strict_quorum(meta: &RunMeta) -> bool {
    let n = 3.min(meta.nodes) as u32;
    let (read, write) = match &meta.levels {
        None => (Level::Quorum, Level::Quorum),
        Some((r, w)) => match (r.parse::<Level>(), w.parse::<Level>()) {
            (Ok(r), Ok(w)) => (r, w),
            _ => return false,
        },
    };
    read.required(n) + write.required(n) > n
}

/// A claim with its checker's report.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    #[serde(flatten)]
    pub claim: Claim,
    pub report: Report,
}

/// Runs the checker of every claim.
pub fn check(history: &History, meta: &RunMeta, claims: &Claims) -> Vec<Judged> {
    claims
        .0
        .iter()
        .map(|claim| Judged {
            claim: claim.clone(),
            report: run_check(claim.check, history, meta),
        })
        .collect()
}

fn run_check(kind: CheckKind, history: &History, meta: &RunMeta) -> Report {
    match kind {
        CheckKind::Linearizability => {
            check_linearizable(history, &LinearizabilityOptions::default())
        }
        CheckKind::Counter => check_counter(history, CounterMode::Linearizable),
        CheckKind::LostWrites => check_lost_writes(history),
        CheckKind::Convergence => match &meta.replicas {
            Some(states) => convergence_check(states),
            None => Report::new(
                CheckKind::Convergence,
                Verdict::Unknown,
                "no replica states were recorded",
            ),
        },
        CheckKind::Session => session_check(history),
        CheckKind::Availability => {
            check_availability(history, &meta.errors, &membership_windows(meta))
        }
        CheckKind::AntiEntropy => match &meta.merkle {
            Some(probe) => merkle_check(probe),
            None => Report::new(
                CheckKind::AntiEntropy,
                Verdict::Unknown,
                "no Merkle roots were recorded",
            ),
        },
    }
}

/// The stretches of the run in which a node joined or left: from the
/// change's start (`join` / `leave` event) to its end (`joined` / `left`)
/// plus [`RING_SETTLE_MS`], cut short by the next fault (a partition or a
/// kill may refuse requests legitimately) and by the end of the workload.
/// A change that never ended lasts until the end of the workload. Times in
/// nanoseconds since the start, as in the history.
fn membership_windows(meta: &RunMeta) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut open: Option<(&str, u64)> = None;
    let close = |windows: &mut Vec<Window>, label: &str, start: u64, end: u64| {
        windows.push(Window {
            label: label.to_string(),
            start: start.saturating_mul(1_000_000),
            end: end.min(meta.duration_ms).saturating_mul(1_000_000),
        });
    };
    for (i, e) in meta.events.iter().enumerate() {
        match e.fault.as_str() {
            "join" | "leave" if open.is_none() => open = Some((e.fault.as_str(), e.at_ms)),
            "joined" | "left" => {
                if let Some((kind, start)) = open.take() {
                    let next_fault = meta.events[i + 1..]
                        .iter()
                        .find(|n| {
                            matches!(n.fault.as_str(), "partition" | "kill" | "pause" | "clock")
                        })
                        .map_or(u64::MAX, |n| n.at_ms);
                    let end = (e.at_ms + RING_SETTLE_MS).min(next_fault);
                    let label = if kind == "join" { "a join" } else { "a leave" };
                    close(&mut windows, label, start, end);
                }
            }
            _ => {}
        }
    }
    if let Some((kind, start)) = open {
        let label = if kind == "join" { "a join" } else { "a leave" };
        close(&mut windows, label, start, meta.duration_ms);
    }
    windows
}

/// Merkle roots of each partition among its replicas (`check_convergence`
/// over partitions, grouped by replica set as in [`convergence_check`]).
fn merkle_check(probe: &MerkleProbe) -> Report {
    let mut groups: BTreeMap<Vec<&String>, Vec<u32>> = BTreeMap::new();
    for (p, by_node) in &probe.roots {
        groups.entry(by_node.keys().collect()).or_default().push(*p);
    }
    let mut merged = Report::new(CheckKind::AntiEntropy, Verdict::Valid, "");
    for partitions in groups.values() {
        let mut by_node: BTreeMap<String, BTreeMap<String, &String>> = BTreeMap::new();
        for p in partitions {
            for (node, root) in &probe.roots[p] {
                by_node
                    .entry(node.clone())
                    .or_default()
                    .insert(format!("partition {p}"), root);
            }
        }
        let report = check_convergence(&by_node);
        merged.verdict = merged.verdict.worst(report.verdict);
        merged.findings.extend(report.findings);
        merged.keys.extend(report.keys);
    }
    merged.summary = if roots_agree(&probe.roots) {
        format!(
            "every replica of all {} partitions has the same Merkle root {} ms after healing, before any read",
            probe.roots.len(),
            probe.waited_ms
        )
    } else {
        format!(
            "{} of {} partitions still differ among their replicas {} ms after healing (anti-entropy did not converge them)",
            merged.keys.len(),
            probe.roots.len(),
            probe.patience_ms
        )
    };
    merged
}

/// A replica's state of a key, shown as `absent` when empty.
#[derive(PartialEq, Eq)]
struct State<'a>(&'a [Value]);

impl std::fmt::Debug for State<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("absent")
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// Convergence of each key among its own replicas: keys are grouped by
/// their replica set, each group is checked with `check_convergence`, and
/// the reports are merged.
fn convergence_check(states: &ReplicaStates) -> Report {
    let mut groups: BTreeMap<Vec<&String>, Vec<&String>> = BTreeMap::new();
    for (key, replicas) in states {
        groups
            .entry(replicas.keys().collect())
            .or_default()
            .push(key);
    }
    let mut merged = Report::new(CheckKind::Convergence, Verdict::Valid, "");
    for keys in groups.values() {
        let mut by_node: BTreeMap<String, BTreeMap<String, State<'_>>> = BTreeMap::new();
        for &key in keys {
            for (node, values) in &states[key] {
                by_node
                    .entry(node.clone())
                    .or_default()
                    .insert(key.clone(), State(values));
            }
        }
        let report = check_convergence(&by_node);
        merged.verdict = merged.verdict.worst(report.verdict);
        merged.findings.extend(report.findings);
        merged.keys.extend(report.keys);
    }
    let nodes: BTreeSet<&String> = states.values().flat_map(BTreeMap::keys).collect();
    merged.summary = if merged.keys.is_empty() {
        format!(
            "the replicas of all {} keys agree ({} nodes probed)",
            states.len(),
            nodes.len()
        )
    } else {
        format!(
            "{} of {} keys differ among their replicas",
            merged.keys.len(),
            states.len()
        )
    };
    merged
}

/// Sessions on single-writer keys whose writes all have a known outcome
/// (an `Info` write may land after the client's next write and break the
/// value order the check relies on).
fn session_check(history: &History) -> Report {
    let by_key = history.by_key();
    let mut skipped = 0usize;
    let mut keep = BTreeSet::new();
    for (key, ops) in &by_key {
        if !key.starts_with(SESSION_KEY_PREFIX) {
            continue;
        }
        let uncertain = ops
            .iter()
            .any(|op| op.outcome == Outcome::Info && matches!(op.op, Op::Write(_)));
        if uncertain {
            skipped += 1;
        } else {
            keep.insert(*key);
        }
    }
    let subset = History::subset(
        history
            .ops()
            .iter()
            .filter(|op| keep.contains(op.key.as_str())),
    );
    let mut report = check_sessions(&subset, VersionOrder::ValueOrder);
    if keep.is_empty() && report.verdict == Verdict::Valid {
        report.verdict = Verdict::Unknown;
        report.summary = "no single-writer key to check".to_string();
    }
    if skipped > 0 {
        report.findings.push(format!(
            "{skipped} session keys skipped: a write's outcome was unknown"
        ));
    }
    report
}

/// The exit code for these verdicts: only enforced claims count.
pub fn exit_code(judged: &[Judged]) -> u8 {
    let worst = judged
        .iter()
        .filter(|j| j.claim.enforced)
        .map(|j| j.report.verdict)
        .fold(Verdict::Valid, Verdict::worst);
    match worst {
        Verdict::Valid => 0,
        Verdict::Unknown => EXIT_UNKNOWN,
        Verdict::Invalid => EXIT_INVALID,
    }
}

#[derive(Serialize)]
struct Counts {
    operations: usize,
    ok: usize,
    fail: usize,
    info: usize,
    /// Error replies by kind (`UNAVAILABLE`, `TIMEOUT`, …).
    errors: BTreeMap<String, usize>,
}

fn counts(history: &History, meta: &RunMeta) -> Counts {
    let of = |o: Outcome| history.ops().iter().filter(|op| op.outcome == o).count();
    Counts {
        operations: history.len(),
        ok: of(Outcome::Ok),
        fail: of(Outcome::Fail),
        info: of(Outcome::Info),
        errors: error_kinds(meta.errors.values()),
    }
}

/// Prints the verdicts (text or one JSON document); returns the exit code.
pub fn print(history: &History, meta: &RunMeta, judged: &[Judged], json: bool) -> u8 {
    let code = exit_code(judged);
    let verdict = match code {
        0 => "valid",
        EXIT_INVALID => "invalid",
        _ => "unknown",
    };
    let c = counts(history, meta);
    if json {
        let mut meta = meta.clone();
        meta.replicas = None;
        meta.errors = BTreeMap::new();
        let doc = serde_json::json!({
            "verdict": verdict,
            "exit_code": code,
            "run": meta,
            "history": c,
            "checks": judged,
        });
        println!("{doc}");
        return code;
    }
    println!(
        "history: {} operations ({} ok, {} fail, {} info); error replies: {}",
        c.operations,
        c.ok,
        c.fail,
        c.info,
        fulcrum_check::availability::describe_kinds(&c.errors)
    );
    println!("checks:");
    for j in judged {
        let tag = if j.claim.enforced { "claim" } else { "info " };
        println!("  [{tag}] {} ({})", j.claim.check, j.claim.why);
        for line in j.report.to_string().lines() {
            println!("    {line}");
        }
    }
    match code {
        0 => println!("verdict: VALID — every claim holds"),
        _ => {
            let failed: Vec<String> = judged
                .iter()
                .filter(|j| j.claim.enforced && j.report.verdict != Verdict::Valid)
                .map(|j| format!("{} {}", j.claim.check, j.report.verdict))
                .collect();
            println!(
                "verdict: {} — {}",
                verdict.to_uppercase(),
                failed.join(", ")
            );
            println!("seed {}; reproduce: {}", meta.seed, meta.reproduce);
        }
    }
    code
}

/// Saves `history` with the run's settings as JSON.
///
/// # Errors
/// Serialization or I/O failure.
pub fn save(path: &Path, history: &History, meta: &RunMeta) -> anyhow::Result<()> {
    let mut doc = serde_json::to_value(history)?;
    let serde_json::Value::Object(map) = &mut doc else {
        bail!("a history did not serialize to a JSON object");
    };
    map.insert("verify".to_string(), serde_json::to_value(meta)?);
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut out, &doc)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// `--check-history`: re-runs the checks of a saved history.
///
/// # Errors
/// Unreadable file, or settings neither saved nor given.
pub fn recheck(path: &Path, overrides: &Overrides, json: bool) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let history = History::from_json(&text)
        .with_context(|| format!("{} is not a history", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let saved: Option<RunMeta> = match doc.get("verify") {
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .with_context(|| format!("unreadable run settings in {}", path.display()))?,
        ),
        None => None,
    };
    let mut meta = match saved {
        Some(m) => m,
        None => RunMeta {
            workload: overrides
                .workload
                .context("the file has no run settings: give --workload and --mode")?,
            mode: overrides
                .mode
                .context("the file has no run settings: give --workload and --mode")?,
            claim: None,
            levels: None,
            nodes: 3,
            nemesis: Vec::new(),
            seed: 0,
            duration_ms: 0,
            clients: 0,
            reproduce: String::new(),
            events: Vec::new(),
            replicas: None,
            merkle: None,
            errors: BTreeMap::new(),
        },
    };
    if let Some(w) = overrides.workload {
        meta.workload = w;
    }
    if let Some(m) = overrides.mode {
        meta.mode = m;
    }
    if overrides.claim.is_some() {
        meta.claim = overrides.claim;
    }
    if let Some([r, w]) = overrides.levels.as_deref() {
        meta.levels = Some((r.clone(), w.clone()));
    }
    if let Some(n) = &overrides.nemesis {
        meta.nemesis = nemesis::normalize(n)?;
    }
    if !json {
        println!(
            "re-checking {}: workload {}, mode {}, nemesis {}, recorded with seed {}",
            path.display(),
            enum_name(meta.workload),
            enum_name(meta.mode),
            nemesis::describe(&meta.nemesis),
            meta.seed
        );
    }
    let claims = Claims::for_run(&meta);
    let judged = check(&history, &meta, &claims);
    Ok(print(&history, &meta, &judged, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: ModeArg, workload: WorkloadKind) -> RunMeta {
        RunMeta {
            workload,
            mode,
            claim: None,
            levels: None,
            nodes: 3,
            nemesis: Vec::new(),
            seed: 1,
            duration_ms: 1000,
            clients: 2,
            reproduce: String::new(),
            events: Vec::new(),
            replicas: None,
            merkle: None,
            errors: BTreeMap::new(),
        }
    }

    fn enforced(claims: &Claims) -> Vec<CheckKind> {
        claims
            .0
            .iter()
            .filter(|c| c.enforced)
            .map(|c| c.check)
            .collect()
    }

    #[test]
    fn claims_follow_the_level() {
        let strong = Claims::for_run(&meta(ModeArg::Strong, WorkloadKind::Register));
        assert_eq!(enforced(&strong), vec![CheckKind::Linearizability]);
        let quorum = Claims::for_run(&meta(ModeArg::Eventual, WorkloadKind::Register));
        assert_eq!(
            enforced(&quorum),
            vec![
                CheckKind::LostWrites,
                CheckKind::AntiEntropy,
                CheckKind::Convergence,
                CheckKind::Session
            ]
        );
        let mut one = meta(ModeArg::Eventual, WorkloadKind::Register);
        one.levels = Some(("ONE".into(), "ONE".into()));
        one.claim = Some(ClaimArg::Linearizable);
        assert_eq!(
            enforced(&Claims::for_run(&one)),
            vec![
                CheckKind::AntiEntropy,
                CheckKind::Convergence,
                CheckKind::Linearizability
            ]
        );
        let mut faulty = meta(ModeArg::Eventual, WorkloadKind::Register);
        faulty.nemesis = vec![Fault::Partition];
        assert_eq!(
            enforced(&Claims::for_run(&faulty)),
            vec![
                CheckKind::LostWrites,
                CheckKind::AntiEntropy,
                CheckKind::Convergence
            ]
        );
    }

    fn event(at_ms: u64, fault: &str) -> Event {
        Event {
            at_ms,
            fault: fault.to_string(),
            detail: String::new(),
        }
    }

    #[test]
    fn membership_changes_claim_availability_in_their_windows_only() {
        let mut m = meta(ModeArg::Eventual, WorkloadKind::Register);
        m.nemesis = vec![Fault::Kill, Fault::Join, Fault::Leave];
        m.duration_ms = 60_000;
        assert!(enforced(&Claims::for_run(&m)).contains(&CheckKind::Availability));
        m.events = vec![
            event(3_000, "join"),
            event(4_000, "join"),
            event(9_000, "joined"),
            event(11_000, "leave"),
            event(16_000, "left"),
            event(20_000, "kill"),
            event(23_000, "heal"),
        ];
        let windows = membership_windows(&m);
        let ms = |w: &Window| (w.start / 1_000_000, w.end / 1_000_000);
        // The join's window runs 10 s past its end; the leave's is cut
        // short by the kill.
        assert_eq!(
            windows.iter().map(ms).collect::<Vec<_>>(),
            vec![(3_000, 19_000), (11_000, 20_000)]
        );
        let history = History::builder()
            .fail(1, "reg:0", Op::Write(1), 12_000_000_000, 12_100_000_000)
            .fail(2, "reg:0", Op::Write(2), 21_000_000_000, 21_100_000_000)
            .build()
            .expect("history");
        m.errors = BTreeMap::from([
            (
                0,
                "UNAVAILABLE not enough replicas: needed 2, reached 1".to_string(),
            ),
            (
                1,
                "UNAVAILABLE not enough replicas: needed 2, reached 1".to_string(),
            ),
        ]);
        let report = run_check(CheckKind::Availability, &history, &m);
        assert_eq!(report.verdict, Verdict::Invalid, "{report}");
        assert_eq!(
            report.counterexample.expect("refused").ops()[0].id,
            0,
            "only the write during the leave counts"
        );
        m.levels = Some(("ONE".into(), "ONE".into()));
        assert!(!enforced(&Claims::for_run(&m)).contains(&CheckKind::Availability));
    }

    #[test]
    fn anti_entropy_compares_each_partition_among_its_own_replicas() {
        let roots = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut probe = MerkleProbe {
            waited_ms: 1200,
            patience_ms: 30_000,
            ..MerkleProbe::default()
        };
        probe
            .roots
            .insert(7, roots(&[("n1", "aa"), ("n2", "aa"), ("n3", "aa")]));
        probe
            .roots
            .insert(9, roots(&[("n2", "bb"), ("n4", "bb"), ("n5", "bb")]));
        let report = merkle_check(&probe);
        assert_eq!(report.verdict, Verdict::Valid, "{report:?}");
        assert!(report.summary.contains("1200 ms"), "{}", report.summary);

        probe
            .roots
            .insert(11, roots(&[("n1", "cc"), ("n2", "cc"), ("n3", "dd")]));
        let report = merkle_check(&probe);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(report.keys, vec!["partition 11".to_string()]);
        assert!(report.findings[0].contains("n3"), "{:?}", report.findings);
    }

    #[test]
    fn convergence_compares_each_key_among_its_own_replicas() {
        let mut states = ReplicaStates::new();
        let replicas = |pairs: &[(&str, Vec<Value>)]| {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        states.insert(
            "a".into(),
            replicas(&[("n1", vec![1]), ("n2", vec![1]), ("n3", vec![1])]),
        );
        states.insert(
            "b".into(),
            replicas(&[("n3", vec![2]), ("n4", vec![2]), ("n5", vec![2])]),
        );
        assert_eq!(convergence_check(&states).verdict, Verdict::Valid);
        states.insert(
            "c".into(),
            replicas(&[("n2", vec![]), ("n4", vec![3]), ("n5", vec![3])]),
        );
        let report = convergence_check(&states);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(report.keys, vec!["c".to_string()]);
        assert!(report.findings[0].contains("absent"), "{report}");
    }

    #[test]
    fn stale_read_fails_the_control_and_saved_histories_recheck() {
        let history = History::builder()
            .ok(1, "reg:0", Op::Write(1), 0, 10)
            .ok(1, "reg:0", Op::Write(2), 20, 30)
            .ok(2, "reg:0", Op::Read(Some(1)), 40, 50)
            .build()
            .expect("history");
        let mut m = meta(ModeArg::Strong, WorkloadKind::Register);
        let judged = check(&history, &m, &Claims::for_run(&m));
        assert_eq!(exit_code(&judged), EXIT_INVALID);
        m.replicas = Some(ReplicaStates::new());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.json");
        save(&path, &history, &m).expect("save");
        let overrides = Overrides {
            workload: None,
            mode: None,
            claim: None,
            levels: None,
            nemesis: None,
        };
        assert_eq!(
            recheck(&path, &overrides, true).expect("recheck"),
            EXIT_INVALID
        );
    }
}
