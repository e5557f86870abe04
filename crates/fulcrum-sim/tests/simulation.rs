//! Deterministic simulation of a three-node cluster (see the crate docs).
//!
//! - The CI seeds below run on every `cargo test`: a seed picks its
//!   scenario as `seed % 4` (0 calm, 1 partitions, 2 crashes, 3 mixed), so
//!   each list covers one scenario. Every run must keep the guarantees
//!   Fulcrum makes today: no acknowledged write lost (eventual keyspace at
//!   QUORUM/QUORUM; strong keyspace on Raft), eventual replicas converge
//!   after the heal, strong keyspace linearizable. A linearizability
//!   search that runs out of budget is reported as undecided, not failed
//!   (`FULCRUM_SIM_STRICT=1` fails it too).
//! - `same_seed_same_history`: a seed repeats exactly, strong keyspace
//!   (Raft elections and all) included; `another_seed_another_history`:
//!   the seed is what decides.
//! - `checkers_catch_writes_lost_without_fsync`: the harness notices when
//!   acknowledged writes are not durable.
//! - `FULCRUM_SIM_SEED=<n>` runs one seed with its full report
//!   (`FULCRUM_SIM_SCENARIO=<name>` forces the scenario,
//!   `FULCRUM_SIM_FSYNC=never` the nodes' fsync policy,
//!   `FULCRUM_SIM_STRONG=0` leaves out the strong keyspace,
//!   `FULCRUM_SIM_LOG` turns on node logs).
//! - `FULCRUM_SIM_SEEDS=<a>..<b>` runs many (`scripts/sim-many-seeds.sh`).
//!
//! A failing run prints its seed, how to reproduce it, the nemesis log and
//! the failing check's counterexample sub-history; the full history is
//! written to `$TMPDIR/fulcrum-sim-seed-<n>.json`.

use fulcrum_sim::{RunOutcome, Scenario, Sim, SimConfig};

/// Runs `config`; panics with the full report unless it passed.
fn run_and_check(config: SimConfig) -> RunOutcome {
    let seed = config.seed;
    let outcome = Sim::with_config(config)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", outcome.summary());
    for note in &outcome.undecided {
        eprintln!("  undecided check: {note}");
    }
    if !outcome.passed() {
        let path = std::env::temp_dir().join(format!("fulcrum-sim-seed-{seed}.json"));
        if let Ok(json) = outcome.history.to_json_pretty() {
            let _ = std::fs::write(&path, json);
        }
        panic!("{}\n  full history: {}", outcome.render(), path.display());
    }
    outcome
}

fn run_seeds(seeds: &[u64], scenario: Scenario) {
    for &seed in seeds {
        let config = SimConfig::from_seed(seed);
        assert_eq!(
            config.scenario, scenario,
            "seed {seed} is not a {scenario} seed"
        );
        run_and_check(config);
    }
}

#[test]
fn calm_seeds() {
    run_seeds(&[0], Scenario::Calm);
}

#[test]
fn partition_seeds() {
    run_seeds(&[1, 5], Scenario::Partitions);
}

#[test]
fn crash_seeds() {
    run_seeds(&[2, 6], Scenario::Crashes);
}

#[test]
fn mixed_seeds() {
    run_seeds(&[3, 7], Scenario::Mixed);
}

/// Runs `config` and panics with the report if the simulation broke.
fn run_ok(config: SimConfig) -> RunOutcome {
    Sim::with_config(config)
        .run()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The first operation where two histories differ, for the failure message.
fn first_difference(a: &RunOutcome, b: &RunOutcome) -> String {
    let first = a
        .history
        .ops()
        .iter()
        .zip(b.history.ops())
        .find(|(x, y)| x != y);
    format!(
        "{} vs {} ops; first difference:\n  {:?}\n  {:?}",
        a.history.len(),
        b.history.len(),
        first.map(|p| p.0),
        first.map(|p| p.1),
    )
}

/// How many recorded operations were on the strong keyspace.
fn strong_ops(o: &RunOutcome) -> usize {
    o.history
        .ops()
        .iter()
        .filter(|op| op.key.starts_with("st/"))
        .count()
}

/// The whole point: a seed is a reproducible run. Same seed, same history
/// (every operation, outcome, observed value and simulated time, on both
/// the eventual and the strong keyspace), same nemesis log — Raft elections
/// included: openraft's randomness is seeded from the simulation's seed and
/// Raft's fsyncs run on simulated time (see the crate docs).
#[test]
fn same_seed_same_history() {
    let seed = 15; // mixed: holds and crashes
    let a = run_ok(SimConfig::from_seed(seed));
    let b = run_ok(SimConfig::from_seed(seed));
    assert!(
        a.history.len() > 50,
        "too few operations: {}",
        a.history.len()
    );
    assert!(
        strong_ops(&a) > 20,
        "too few strong operations: {}",
        strong_ops(&a)
    );
    assert!(a.passed(), "{}", a.render());
    assert!(
        a.history == b.history,
        "seed {seed}: two runs recorded different histories ({})",
        first_difference(&a, &b)
    );
    assert_eq!(a.log, b.log, "seed {seed}: nemesis/client logs differ");
    assert_eq!(a.simulated, b.simulated, "seed {seed}: run lengths differ");
}

/// The converse, so the test above cannot pass by ignoring the seed:
/// another seed of the same scenario gives another strong history.
#[test]
fn another_seed_another_history() {
    let (a, b) = (
        run_ok(SimConfig::from_seed(15)),
        run_ok(SimConfig::from_seed(19)),
    );
    assert_eq!(a.config.scenario, b.config.scenario);
    let strong = |o: &RunOutcome| {
        fulcrum_check::History::subset(
            o.history
                .ops()
                .iter()
                .filter(|op| op.key.starts_with("st/")),
        )
    };
    assert!(
        strong(&a) != strong(&b),
        "seeds 15 and 19 recorded the same strong history"
    );
}

/// The harness has teeth: with `fsync never` an acknowledged write is not
/// durable, so a power loss of the whole cluster must make the checkers
/// report lost writes. (The first crash seed whose schedule has one.)
#[test]
fn checkers_catch_writes_lost_without_fsync() {
    let seed = (0..400u64)
        .map(|i| 2 + 4 * i)
        .find(|&s| {
            fulcrum_sim::nemesis::schedule(&SimConfig::from_seed(s))
                .iter()
                .any(|e| e.fault == fulcrum_sim::nemesis::Fault::CrashAll)
        })
        .expect("a crash seed with a whole-cluster power loss");
    let config = SimConfig {
        fsync: fulcrum_storage::FsyncPolicy::Never,
        strong: false,
        ..SimConfig::from_seed(seed)
    };
    let outcome = Sim::with_config(config)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{} (fsync never)", outcome.summary());
    assert!(
        outcome.eventual_lost_writes.is_invalid(),
        "seed {seed}: fsync never and a whole-cluster power loss, yet no acknowledged write \
         was lost: the harness is blind\n{}",
        outcome.render()
    );
}

/// `FULCRUM_SIM_SEED=<n>`: one seed, full report (nothing without it).
#[test]
fn one_seed_from_env() {
    let Ok(seed) = std::env::var("FULCRUM_SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.trim().parse().expect("FULCRUM_SIM_SEED: a number");
    let mut config = match std::env::var("FULCRUM_SIM_SCENARIO") {
        Ok(s) => SimConfig::with_scenario(seed, s.parse().expect("FULCRUM_SIM_SCENARIO")),
        Err(_) => SimConfig::from_seed(seed),
    };
    if std::env::var("FULCRUM_SIM_STRONG").is_ok_and(|v| v == "0") {
        config.strong = false;
    }
    if let Ok(policy) = std::env::var("FULCRUM_SIM_FSYNC") {
        config.fsync = policy
            .parse()
            .expect("FULCRUM_SIM_FSYNC: always, never or interval:MS");
    }
    let outcome = run_and_check(config);
    eprintln!("{}", outcome.render());
}

/// `FULCRUM_SIM_SEEDS=<a>..<b>` (end exclusive) or `<a>..=<b>`: many seeds,
/// one line each; fails at the end listing every failing seed (nothing
/// without the variable). `FULCRUM_SIM_TWICE=1` runs each seed twice (see
/// `same_seed_same_history`) and also fails seeds whose two runs differ.
#[test]
fn many_seeds_from_env() {
    let Ok(range) = std::env::var("FULCRUM_SIM_SEEDS") else {
        return;
    };
    let (a, b) = range
        .split_once("..")
        .expect("FULCRUM_SIM_SEEDS: <a>..<b> or <a>..=<b>");
    let start: u64 = a.trim().parse().expect("FULCRUM_SIM_SEEDS start");
    let end: u64 = match b.strip_prefix('=') {
        Some(b) => b.trim().parse::<u64>().expect("FULCRUM_SIM_SEEDS end") + 1,
        None => b.trim().parse().expect("FULCRUM_SIM_SEEDS end"),
    };
    let scenario: Option<Scenario> = std::env::var("FULCRUM_SIM_SCENARIO")
        .ok()
        .map(|s| s.parse().expect("FULCRUM_SIM_SCENARIO"));
    let twice = std::env::var("FULCRUM_SIM_TWICE").is_ok_and(|v| v == "1");
    let fsync: Option<fulcrum_storage::FsyncPolicy> =
        std::env::var("FULCRUM_SIM_FSYNC").ok().map(|p| {
            p.parse()
                .expect("FULCRUM_SIM_FSYNC: always, never or interval:MS")
        });
    let mut failed = Vec::new();
    let mut undecided = Vec::new();
    for seed in start..end {
        let mut config = match scenario {
            Some(s) => SimConfig::with_scenario(seed, s),
            None => SimConfig::from_seed(seed),
        };
        if let Some(policy) = &fsync {
            config.fsync = *policy;
        }
        let outcome = match Sim::with_config(config.clone()).run() {
            Ok(outcome) => outcome,
            Err(e) => {
                eprintln!("seed {seed:>5}: simulation broke\n{e}");
                failed.push(seed);
                continue;
            }
        };
        eprintln!("{}", outcome.summary());
        if twice {
            let same = Sim::with_config(config).run().is_ok_and(|b| {
                b.history == outcome.history
                    && b.log == outcome.log
                    && b.simulated == outcome.simulated
            });
            if !same {
                eprintln!("seed {seed:>5}: NOT DETERMINISTIC: a second run differs");
                failed.push(seed);
            }
        }
        if !outcome.undecided.is_empty() {
            undecided.push(seed);
        }
        if !outcome.passed() {
            let path = std::env::temp_dir().join(format!("fulcrum-sim-seed-{seed}.json"));
            if let Ok(json) = outcome.history.to_json_pretty() {
                let _ = std::fs::write(&path, json);
            }
            eprintln!("{}\n  full history: {}", outcome.render(), path.display());
            failed.push(seed);
        }
    }
    failed.dedup();
    eprintln!(
        "{} seeds: {} failed {:?}; {} with an undecided check {:?}",
        end.saturating_sub(start),
        failed.len(),
        failed,
        undecided.len(),
        undecided
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}
