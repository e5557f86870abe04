//! Counter bounds, lost writes, session guarantees and convergence.

// Helpers outside #[test] fns build fixtures that are known to be well formed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use fulcrum_check::{
    check_convergence, check_counter, check_lost_writes, check_sessions, CounterMode, History, Op,
    Verdict, VersionOrder,
};

// ---- counters ----

fn counter_history(read: i64) -> History {
    History::builder()
        .ok(1, "c", Op::Add(1), 0, 1)
        .ok(2, "c", Op::Add(2), 2, 3)
        .info(3, "c", Op::Add(4), 4)
        .fail(4, "c", Op::Add(8), 4, 5)
        .ok(1, "c", Op::ReadCounter(read), 10, 11)
        .build()
        .unwrap()
}

#[test]
fn counter_reads_within_ok_and_ok_plus_info() {
    for read in [3, 7] {
        let report = check_counter(&counter_history(read), CounterMode::Linearizable);
        assert_eq!(report.verdict, Verdict::Valid, "{report}");
    }
    for read in [2, 8, 11, 15] {
        let report = check_counter(&counter_history(read), CounterMode::Linearizable);
        assert_eq!(report.verdict, Verdict::Invalid, "read {read}: {report}");
        assert_eq!(report.keys, vec!["c".to_string()]);
    }
    let text = check_counter(&counter_history(2), CounterMode::Linearizable).to_string();
    assert!(text.contains("outside the possible range [3, 7]"), "{text}");
}

#[test]
fn counter_bounds_follow_real_time() {
    let h = History::builder()
        .ok(1, "c", Op::Add(5), 0, 10)
        // Concurrent with the add: 0 and 5 are both fine.
        .ok(2, "c", Op::ReadCounter(0), 1, 2)
        .ok(3, "c", Op::ReadCounter(5), 3, 4)
        // After it: must count it.
        .ok(2, "c", Op::ReadCounter(0), 11, 12)
        // Before the next add was invoked: must not count it.
        .ok(3, "c", Op::ReadCounter(6), 13, 14)
        .ok(1, "c", Op::Add(1), 20, 21)
        .build()
        .unwrap();
    let report = check_counter(&h, CounterMode::Linearizable);
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(report.findings.len(), 2, "{report}");
    // Eventual mode forgives the lagging read but not the read from the future.
    let eventual = check_counter(&h, CounterMode::Eventual);
    assert_eq!(eventual.findings.len(), 1, "{eventual}");
    assert!(eventual.findings[0].contains("returned 6"), "{eventual}");
}

#[test]
fn eventual_counter_final_read_must_be_exact() {
    let base = History::builder()
        .ok(1, "c", Op::Add(1), 0, 1)
        .ok(2, "c", Op::Add(1), 0, 1)
        .ok(1, "c", Op::ReadCounter(0), 2, 3);
    let lagging = base
        .clone()
        .ok(3, "c", Op::ReadCounter(2), 50, 51)
        .build()
        .unwrap();
    assert_eq!(
        check_counter(&lagging, CounterMode::Eventual).verdict,
        Verdict::Valid
    );
    let lost = base.ok(3, "c", Op::ReadCounter(1), 50, 51).build().unwrap();
    let report = check_counter(&lost, CounterMode::Eventual);
    assert_eq!(report.verdict, Verdict::Invalid);
    assert!(report.findings[0].contains("final read"), "{report}");
    assert_eq!(report.counterexample.unwrap().len(), 3);
}

#[test]
fn counter_with_negative_deltas() {
    let h = History::builder()
        .ok(1, "c", Op::Add(10), 0, 1)
        .info(2, "c", Op::Add(-4), 2)
        .ok(1, "c", Op::ReadCounter(6), 5, 6)
        .ok(1, "c", Op::ReadCounter(10), 7, 8)
        .build()
        .unwrap();
    assert_eq!(
        check_counter(&h, CounterMode::Linearizable).verdict,
        Verdict::Valid
    );
}

// ---- lost writes ----

#[test]
fn set_lost_add_is_detected() {
    let h = History::builder()
        .ok(1, "s", Op::AddElement(1), 0, 1)
        .ok(2, "s", Op::AddElement(2), 0, 1)
        .info(3, "s", Op::AddElement(3), 0)
        .fail(4, "s", Op::AddElement(4), 0, 1)
        .ok(9, "s", Op::ReadSet(vec![1, 3]), 10, 11)
        .build()
        .unwrap();
    let report = check_lost_writes(&h);
    assert_eq!(report.verdict, Verdict::Invalid, "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
    assert!(report.findings[0].contains("add of 2"), "{report}");
    let ids: Vec<u64> = report
        .counterexample
        .unwrap()
        .ops()
        .iter()
        .map(|op| op.id)
        .collect();
    assert_eq!(ids, vec![1, 4]);
}

#[test]
fn set_with_unexpected_elements() {
    let h = History::builder()
        .ok(1, "s", Op::AddElement(1), 0, 1)
        .fail(4, "s", Op::AddElement(4), 0, 1)
        .ok(9, "s", Op::ReadSet(vec![1, 4, 5]), 10, 11)
        .build()
        .unwrap();
    let report = check_lost_writes(&h);
    assert_eq!(report.findings.len(), 2, "{report}");
    assert!(
        report
            .to_string()
            .contains("which only a failed operation wrote"),
        "{report}"
    );
    assert!(
        report.to_string().contains("which no operation wrote"),
        "{report}"
    );
}

#[test]
fn register_final_value_must_be_last_ack_or_later() {
    let writes = History::builder()
        .ok(1, "r", Op::Write(1), 0, 1)
        .ok(2, "r", Op::Write(2), 2, 10)
        .ok(3, "r", Op::Write(3), 5, 6) // concurrent with 2
        .info(4, "r", Op::Write(4), 20);
    let verdict = |final_values: Vec<u64>| {
        check_lost_writes(
            &writes
                .clone()
                .ok(9, "r", Op::ReadSet(final_values), 30, 31)
                .build()
                .unwrap(),
        )
        .verdict
    };
    assert_eq!(verdict(vec![2]), Verdict::Valid);
    assert_eq!(
        verdict(vec![3]),
        Verdict::Valid,
        "3 is concurrent with 2, LWW may order it last"
    );
    assert_eq!(
        verdict(vec![4]),
        Verdict::Valid,
        "an Info write may have landed last"
    );
    assert_eq!(verdict(vec![2, 3]), Verdict::Valid, "siblings");
    assert_eq!(
        verdict(vec![1]),
        Verdict::Invalid,
        "1 was overwritten by acknowledged later writes"
    );
    assert_eq!(verdict(vec![]), Verdict::Invalid);
    assert_eq!(verdict(vec![7]), Verdict::Invalid);
}

#[test]
fn register_lost_write_report() {
    let h = History::builder()
        .ok(1, "r", Op::Write(1), 0, 1)
        .ok(2, "r", Op::Write(2), 2, 3)
        .ok(9, "r", Op::Read(Some(1)), 30, 31)
        .build()
        .unwrap();
    let report = check_lost_writes(&h);
    assert_eq!(report.verdict, Verdict::Invalid);
    assert!(
        report.findings[0].contains("acknowledged write of 2"),
        "{report}"
    );
    assert_eq!(report.counterexample.unwrap().len(), 3);
}

#[test]
fn missing_final_read_is_unknown() {
    let h = History::builder()
        .ok(1, "r", Op::Write(1), 0, 1)
        .build()
        .unwrap();
    let report = check_lost_writes(&h);
    assert_eq!(report.verdict, Verdict::Unknown, "{report}");
    assert_eq!(report.keys, vec!["r".to_string()]);
}

// ---- sessions ----

#[test]
fn read_your_writes_violation() {
    let h = History::builder()
        .ok(1, "k", Op::Write(1), 0, 1)
        .ok(2, "k", Op::Write(2), 2, 3)
        .ok(2, "k", Op::Read(Some(1)), 4, 5)
        .build()
        .unwrap();
    let report = check_sessions(&h, VersionOrder::ValueOrder);
    assert_eq!(report.verdict, Verdict::Invalid);
    assert!(report.findings[0].contains("read-your-writes"), "{report}");
    let ids: Vec<u64> = report
        .counterexample
        .unwrap()
        .ops()
        .iter()
        .map(|op| op.id)
        .collect();
    assert_eq!(ids, vec![0, 1, 2]);
    // Another client reading the old value is no session violation.
    let other = History::builder()
        .ok(1, "k", Op::Write(1), 0, 1)
        .ok(2, "k", Op::Write(2), 2, 3)
        .ok(3, "k", Op::Read(Some(1)), 4, 5)
        .build()
        .unwrap();
    assert_eq!(
        check_sessions(&other, VersionOrder::ValueOrder).verdict,
        Verdict::Valid
    );
}

#[test]
fn monotonic_reads_violation_with_recorded_versions() {
    // Versions come from the store (e.g. HLC timestamps) and disagree with
    // value order: value 9 is older than value 5.
    let h = History::builder()
        .ok(1, "k", Op::Write(9), 0, 1)
        .version(100)
        .ok(2, "k", Op::Write(5), 0, 1)
        .version(200)
        .ok(3, "k", Op::Read(Some(5)), 2, 3)
        .ok(3, "k", Op::Read(Some(9)), 4, 5)
        .build()
        .unwrap();
    let report = check_sessions(&h, VersionOrder::Recorded);
    assert_eq!(report.verdict, Verdict::Invalid, "{report}");
    assert!(report.findings[0].contains("monotonic reads"), "{report}");
    // By value order the same reads look fine.
    assert_eq!(
        check_sessions(&h, VersionOrder::ValueOrder).verdict,
        Verdict::Valid
    );
    // And reading absent after a value is a regression too.
    let absent = History::builder()
        .ok(2, "k", Op::Write(5), 0, 1)
        .version(200)
        .ok(3, "k", Op::Read(Some(5)), 2, 3)
        .ok(3, "k", Op::Read(None), 4, 5)
        .build()
        .unwrap();
    assert_eq!(
        check_sessions(&absent, VersionOrder::Recorded).verdict,
        Verdict::Invalid
    );
}

#[test]
fn sessions_without_versions_are_unknown() {
    let h = History::builder()
        .ok(1, "k", Op::Write(1), 0, 1)
        .ok(1, "k", Op::Read(Some(1)), 2, 3)
        .build()
        .unwrap();
    let report = check_sessions(&h, VersionOrder::Recorded);
    assert_eq!(report.verdict, Verdict::Unknown, "{report}");
}

#[test]
fn sibling_reads_count_their_newest_version() {
    let h = History::builder()
        .ok(1, "k", Op::Write(1), 0, 1)
        .ok(2, "k", Op::Write(2), 0, 1)
        .ok(1, "k", Op::ReadSet(vec![2, 1]), 2, 3)
        .ok(1, "k", Op::ReadSet(vec![2]), 4, 5)
        .build()
        .unwrap();
    assert_eq!(
        check_sessions(&h, VersionOrder::ValueOrder).verdict,
        Verdict::Valid
    );
}

// ---- convergence ----

type ReplicaKeys<'a> = &'a [(&'a str, Vec<u64>)];

fn replicas(states: &[(&str, ReplicaKeys)]) -> BTreeMap<String, BTreeMap<String, Vec<u64>>> {
    states
        .iter()
        .map(|(name, keys)| {
            let keys = keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            (name.to_string(), keys)
        })
        .collect()
}

#[test]
fn convergence() {
    let same = replicas(&[
        ("a", &[("x", vec![1]), ("y", vec![2, 3])]),
        ("b", &[("x", vec![1]), ("y", vec![2, 3])]),
    ]);
    assert_eq!(check_convergence(&same).verdict, Verdict::Valid);

    let differ = replicas(&[
        ("a", &[("x", vec![1]), ("y", vec![2])]),
        ("b", &[("x", vec![1]), ("y", vec![3])]),
        ("c", &[("x", vec![1])]),
    ]);
    let report = check_convergence(&differ);
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(report.keys, vec!["y".to_string()]);
    assert_eq!(
        report.findings,
        vec![r#"key "y" differs: a = [2]; b = [3]; c = absent"#.to_string()]
    );
    assert!(report
        .to_string()
        .starts_with("convergence: INVALID — 1 of 2 keys differ across 3 replicas"));
}
