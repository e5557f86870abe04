//! Size and speed: run with `cargo test --release -p fulcrum-check --test perf -- --ignored --nocapture`.
//! The non-ignored test is a small smoke version that stays fast in debug.

mod common;

use std::time::Instant;

use fulcrum_check::{check_linearizable, LinearizabilityOptions, Verdict};

fn run(ops: usize, clients: u8, seed: u64) {
    let mut rng = common::Rng(seed);
    let h = common::simulate(&rng.specs(ops, clients), "x", false);
    let started = Instant::now();
    let report = check_linearizable(&h, &LinearizabilityOptions::default());
    println!(
        "{ops} ops, {clients} clients: {} in {:?}",
        report.verdict,
        started.elapsed()
    );
    assert_eq!(report.verdict, Verdict::Valid, "{report}");

    let reads = common::ok_reads(&h);
    let first_write = h.ops().iter().find_map(|op| op.op.written_value()).unwrap();
    let bad = common::corrupt(&h, reads[reads.len() * 3 / 4], first_write);
    let started = Instant::now();
    let report = check_linearizable(&bad, &LinearizabilityOptions::default());
    println!(
        "  corrupted: {} in {:?}, counterexample of {}",
        report.verdict,
        started.elapsed(),
        report.counterexample.as_ref().map_or(0, |c| c.len())
    );
    assert_ne!(report.verdict, Verdict::Valid);
}

#[test]
fn smoke() {
    run(300, 10, 1);
}

#[test]
#[ignore = "timing; run in release"]
fn thousands_of_ops_per_key() {
    for seed in 0..3 {
        run(5_000, 10, seed);
        run(5_000, 20, seed);
    }
}
