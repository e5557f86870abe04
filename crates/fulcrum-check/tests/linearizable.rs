//! Known-good and known-bad register histories.

// Helpers outside #[test] fns build fixtures that are known to be well formed.
#![allow(clippy::unwrap_used)]

mod common;

use fulcrum_check::{check_linearizable, History, LinearizabilityOptions, Op, Verdict};

fn verdict(history: &History) -> Verdict {
    check_linearizable(history, &LinearizabilityOptions::default()).verdict
}

/// DDIA ch. 9 (fig. 9-1 style): B's read returns the new value, then A's
/// later read returns the old one while the write is still in flight.
#[test]
fn ddia_new_then_old_read_is_not_linearizable() {
    let h = History::builder()
        .ok(0, "x", Op::Write(0), 0, 1)
        .ok(3, "x", Op::Write(1), 10, 100)
        .ok(2, "x", Op::Read(Some(1)), 20, 30)
        .ok(1, "x", Op::Read(Some(0)), 40, 50)
        .build()
        .unwrap();
    let report = check_linearizable(&h, &LinearizabilityOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid, "{report}");
    assert_eq!(report.keys, vec!["x".to_string()]);
    let cx = report.counterexample.as_ref().unwrap();
    assert_eq!(cx.len(), 4, "every op is needed:\n{report}");
    assert_eq!(verdict(cx), Verdict::Invalid);
    let text = report.to_string();
    assert!(text.contains("linearizability: INVALID"), "{text}");
    assert!(text.contains("client"), "{text}");
}

#[test]
fn ddia_reads_in_either_order_while_concurrent_are_fine() {
    // Same, but the old read finishes before the new read begins.
    let h = History::builder()
        .ok(0, "x", Op::Write(0), 0, 1)
        .ok(3, "x", Op::Write(1), 10, 100)
        .ok(1, "x", Op::Read(Some(0)), 20, 30)
        .ok(2, "x", Op::Read(Some(1)), 40, 50)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Valid);
}

#[test]
fn overlapping_write_and_reads_are_linearizable() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 10)
        .ok(2, "x", Op::Read(None), 1, 3)
        .ok(3, "x", Op::Read(Some(1)), 2, 8)
        .ok(2, "x", Op::Read(Some(1)), 11, 12)
        .ok(4, "x", Op::Write(2), 9, 20)
        .ok(3, "x", Op::Read(Some(2)), 13, 14)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Valid);
}

#[test]
fn touching_intervals_count_as_concurrent() {
    let h = History::builder()
        .ok(1, "x", Op::Read(Some(1)), 0, 5)
        .ok(2, "x", Op::Write(1), 5, 9)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Valid);
}

#[test]
fn stale_read_after_completed_write_is_invalid() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .ok(1, "x", Op::Write(2), 2, 3)
        .ok(2, "x", Op::Read(Some(1)), 4, 5)
        .ok(3, "x", Op::Read(Some(2)), 6, 7)
        .build()
        .unwrap();
    let report = check_linearizable(&h, &LinearizabilityOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid);
    let ids: Vec<u64> = report
        .counterexample
        .unwrap()
        .ops()
        .iter()
        .map(|op| op.id)
        .collect();
    assert_eq!(ids, vec![0, 1, 2]);
}

#[test]
fn cas_success_and_failure() {
    let ok = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .ok(
            2,
            "x",
            Op::Cas {
                expected: Some(1),
                new: 2,
            },
            2,
            3,
        )
        .fail(
            3,
            "x",
            Op::Cas {
                expected: Some(1),
                new: 3,
            },
            4,
            5,
        )
        .ok(1, "x", Op::Read(Some(2)), 6, 7)
        .ok(
            2,
            "x",
            Op::Cas {
                expected: Some(2),
                new: 4,
            },
            8,
            9,
        )
        .ok(3, "x", Op::Read(Some(4)), 10, 11)
        .build()
        .unwrap();
    assert_eq!(verdict(&ok), Verdict::Valid);

    // Two sequential CASes from the same expected value cannot both succeed.
    let both = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .ok(
            2,
            "x",
            Op::Cas {
                expected: Some(1),
                new: 2,
            },
            2,
            3,
        )
        .ok(
            3,
            "x",
            Op::Cas {
                expected: Some(1),
                new: 3,
            },
            4,
            5,
        )
        .build()
        .unwrap();
    assert_eq!(verdict(&both), Verdict::Invalid);

    // Concurrent CASes: only one may succeed, and either order is fine.
    let racing = History::builder()
        .ok(
            1,
            "x",
            Op::Cas {
                expected: None,
                new: 1,
            },
            0,
            10,
        )
        .fail(
            2,
            "x",
            Op::Cas {
                expected: None,
                new: 2,
            },
            0,
            10,
        )
        .ok(3, "x", Op::Read(Some(1)), 11, 12)
        .build()
        .unwrap();
    assert_eq!(verdict(&racing), Verdict::Valid);
}

#[test]
fn failed_write_must_not_be_visible() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .fail(2, "x", Op::Write(2), 2, 3)
        .ok(3, "x", Op::Read(Some(2)), 4, 5)
        .build()
        .unwrap();
    let report = check_linearizable(&h, &LinearizabilityOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert!(
        report.findings[0].contains("which no operation wrote"),
        "{report}"
    );
}

#[test]
fn info_write_that_a_later_read_sees_was_applied() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .info(2, "x", Op::Write(2), 2)
        .ok(3, "x", Op::Read(Some(2)), 100, 101)
        .ok(3, "x", Op::Read(Some(2)), 102, 103)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Valid);
}

#[test]
fn info_write_that_no_read_sees_was_not_applied() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .info_until(2, "x", Op::Write(2), 2, 5)
        .ok(3, "x", Op::Read(Some(1)), 100, 101)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Valid);
}

#[test]
fn info_write_cannot_be_undone() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .info(2, "x", Op::Write(2), 2)
        .ok(3, "x", Op::Read(Some(2)), 10, 11)
        .ok(3, "x", Op::Read(Some(1)), 12, 13)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Invalid);
}

#[test]
fn info_write_cannot_take_effect_before_its_invocation() {
    let h = History::builder()
        .ok(3, "x", Op::Read(Some(2)), 0, 1)
        .info(2, "x", Op::Write(2), 5)
        .build()
        .unwrap();
    let report = check_linearizable(&h, &LinearizabilityOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert!(
        report
            .to_string()
            .contains("before any write of 2 was invoked"),
        "{report}"
    );
}

#[test]
fn info_cas_chain() {
    // An unknown CAS 1→2 that must have happened, then an unknown 2→3 that
    // did not: the read of 2 at the end is consistent.
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 1)
        .info(
            2,
            "x",
            Op::Cas {
                expected: Some(1),
                new: 2,
            },
            2,
        )
        .info(
            3,
            "x",
            Op::Cas {
                expected: Some(2),
                new: 3,
            },
            3,
        )
        .ok(4, "x", Op::Read(Some(2)), 50, 51)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Valid);
}

#[test]
fn siblings_are_not_a_register_value() {
    let h = History::builder()
        .ok(1, "x", Op::Write(1), 0, 10)
        .ok(2, "x", Op::Write(2), 0, 10)
        .ok(3, "x", Op::ReadSet(vec![1, 2]), 11, 12)
        .build()
        .unwrap();
    assert_eq!(verdict(&h), Verdict::Invalid);
}

#[test]
fn keys_are_checked_independently() {
    let h = History::builder()
        .ok(1, "good", Op::Write(1), 0, 1)
        .ok(1, "good", Op::Read(Some(1)), 2, 3)
        .ok(1, "bad", Op::Write(1), 0, 1)
        .ok(1, "bad", Op::Read(None), 2, 3)
        .ok(1, "counter", Op::Add(1), 0, 1)
        .build()
        .unwrap();
    let report = check_linearizable(&h, &LinearizabilityOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(report.keys, vec!["bad".to_string()]);
    assert!(report.summary.contains("1 of 2"), "{report}");
}

#[test]
fn initial_value_is_configurable() {
    let h = History::builder()
        .ok(1, "x", Op::Read(Some(7)), 0, 1)
        .build()
        .unwrap();
    let options = LinearizabilityOptions {
        initial: Some(7),
        ..Default::default()
    };
    assert_eq!(check_linearizable(&h, &options).verdict, Verdict::Valid);
    assert_eq!(verdict(&h), Verdict::Invalid);
}

#[test]
fn exhausted_budget_is_unknown_not_valid() {
    let mut rng = common::Rng(7);
    let h = common::simulate(&rng.specs(200, 8), "x", false);
    let options = LinearizabilityOptions {
        max_steps_per_key: 10,
        fast_path: false,
        ..Default::default()
    };
    let report = check_linearizable(&h, &options);
    assert_eq!(report.verdict, Verdict::Unknown, "{report}");
    assert_eq!(report.keys, vec!["x".to_string()]);
}

#[test]
fn larger_simulated_histories() {
    let mut rng = common::Rng(42);
    for _ in 0..3 {
        let h = common::simulate(&rng.specs(400, 10), "x", false);
        assert_eq!(verdict(&h), Verdict::Valid);
        let reads = common::ok_reads(&h);
        let victim = reads[reads.len() / 2];
        let bad = common::corrupt(&h, victim, 1_000_000);
        let report = check_linearizable(&bad, &LinearizabilityOptions::default());
        assert_eq!(report.verdict, Verdict::Invalid);
        let cx = report.counterexample.unwrap();
        assert_eq!(cx.len(), 1, "a read of a value nobody wrote is enough");
        assert_eq!(cx.ops()[0].id, victim);
    }
}

#[test]
fn shrinking_a_stale_read_in_a_long_history() {
    let mut rng = common::Rng(3);
    let h = common::simulate(&rng.specs(300, 5), "x", false);
    // Replace a late read with the value of the first write: stale (or
    // otherwise wrong) unless that value is still current.
    let first_write = h.ops().iter().find_map(|op| match op.op {
        Op::Write(v) if op.outcome == fulcrum_check::Outcome::Ok => Some(v),
        _ => None,
    });
    let reads = common::ok_reads(&h);
    let victim = *reads.last().unwrap();
    let bad = common::corrupt(&h, victim, first_write.unwrap());
    let report = check_linearizable(&bad, &LinearizabilityOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid, "{report}");
    let cx = report.counterexample.unwrap();
    assert!(cx.len() <= 6, "shrunk to {}:\n{cx}", cx.len());
    assert_eq!(verdict(&cx), Verdict::Invalid);
}
