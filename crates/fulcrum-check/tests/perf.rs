//! Size and speed: run with
//! `cargo test --release -p fulcrum-check --test perf -- --ignored --nocapture`.
//! The non-ignored test is a small smoke version that stays fast in debug.

// Helpers outside #[test] fns build fixtures that are known to be well formed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use fulcrum_check::{check_linearizable, LinearizabilityOptions, Verdict};

fn run(ops: usize, clients: u8, seed: u64, fast_path: bool) {
    let options = LinearizabilityOptions {
        fast_path,
        ..Default::default()
    };
    let mut rng = common::Rng(seed);
    let h = common::simulate(&rng.specs(ops, clients), "x", false);
    let started = Instant::now();
    let report = check_linearizable(&h, &options);
    println!(
        "{ops} ops, {clients} clients, fast path {fast_path}: {} in {:?}",
        report.verdict,
        started.elapsed()
    );
    assert_eq!(report.verdict, Verdict::Valid, "{report}");

    // A late read turned stale: the first value written.
    let reads = common::ok_reads(&h);
    let first_write = h.ops().iter().find_map(|op| op.op.written_value()).unwrap();
    let bad = common::corrupt(&h, reads[reads.len() * 3 / 4], first_write);
    let started = Instant::now();
    let report = check_linearizable(&bad, &options);
    println!(
        "  stale read: {} in {:?} (with shrinking), counterexample of {}",
        report.verdict,
        started.elapsed(),
        report.counterexample.as_ref().map_or(0, |c| c.len())
    );
    assert_eq!(report.verdict, Verdict::Invalid, "{report}");
}

#[test]
fn smoke() {
    run(300, 10, 1, true);
    run(300, 10, 1, false);
}

#[test]
#[ignore = "timing; run in release"]
fn thousands_of_ops_per_key() {
    for seed in 0..3 {
        for clients in [10, 20] {
            run(5_000, clients, seed, true);
            run(5_000, clients, seed, false);
        }
    }
}

#[test]
#[ignore = "timing; run in release"]
fn many_unknown_outcomes() {
    for seed in 0..3 {
        let mut rng = common::Rng(seed);
        let mut specs = rng.specs(5_000, 10);
        for spec in &mut specs {
            // A fifth of the operations time out, half of those applied.
            if rng.below(5) == 0 {
                spec.info = 1 + rng.below(2);
            }
        }
        let h = common::simulate(&specs, "x", false);
        for fast_path in [true, false] {
            let options = LinearizabilityOptions {
                fast_path,
                ..Default::default()
            };
            let started = Instant::now();
            let report = check_linearizable(&h, &options);
            println!(
                "20% info, fast path {fast_path}: {} in {:?}",
                report.verdict,
                started.elapsed()
            );
            assert_eq!(report.verdict, Verdict::Valid, "{report}");
        }
    }
}
