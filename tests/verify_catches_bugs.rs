//! `fulcrum verify` must catch a broken build, not just bless a good one.
//!
//! Strong keyspaces have no followers yet (a key lives on its partition's
//! first node until Raft lands), so "strong reads served from a stale
//! follower" cannot be built today. The known-bad control uses what exists
//! and is just as stale: an eventual keyspace read and written at ONE,
//! with one node applying replica writes a second late (`FAULT
//! DELAY-PUTS`), judged against a claim it does not make — linearizability
//! (`--claim linearizable`). The verifier must reject it (exit code 1) with
//! a counterexample, and must accept the same register workload on a strong
//! keyspace (exit code 0). Each run takes 5–6 s of workload plus cluster
//! start and final reads.

mod common;

use std::time::Duration;

use common::run;

/// Upper bound for one verify run (startup, workload, final reads, checks).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn show(r: &common::Run) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        r.status, r.stdout, r.stderr
    )
}

#[test]
fn strong_register_without_faults_is_linearizable() {
    let r = run(
        &[
            "verify",
            "--workload",
            "register",
            "--mode",
            "strong",
            "--nemesis",
            "none",
            "--duration",
            "5s",
            "--clients",
            "6",
            "--seed",
            "1",
        ],
        &[],
        RUN_TIMEOUT,
    );
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    assert!(r.stdout.contains("linearizability: VALID"), "{}", show(&r));
    assert!(
        r.stdout.contains("seed 1"),
        "the seed is printed\n{}",
        show(&r)
    );
}

#[test]
fn stale_reads_at_one_fail_the_linearizability_claim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("history.json");
    let saved = saved.to_str().expect("utf-8 path");
    let r = run(
        &[
            "verify",
            "--workload",
            "register",
            "--mode",
            "eventual",
            "--levels",
            "ONE,ONE",
            "--claim",
            "linearizable",
            "--delay-puts",
            "1000",
            "--nemesis",
            "none",
            "--duration",
            "6s",
            "--clients",
            "6",
            "--seed",
            "2",
            "--history-out",
            saved,
        ],
        &[],
        RUN_TIMEOUT,
    );
    assert_eq!(r.status.code(), Some(1), "{}", show(&r));
    assert!(
        r.stdout.contains("linearizability: INVALID"),
        "{}",
        show(&r)
    );
    assert!(r.stdout.contains("counterexample"), "{}", show(&r));
    // Convergence is what ONE/ONE does claim, and it holds.
    assert!(r.stdout.contains("convergence: VALID"), "{}", show(&r));

    // The saved history re-checks offline to the same verdict.
    let again = run(
        &["verify", "--check-history", saved, "--json"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    let doc: serde_json::Value =
        serde_json::from_str(again.stdout.trim()).expect("one JSON document");
    assert_eq!(doc["verdict"], "invalid", "{}", show(&again));
}
