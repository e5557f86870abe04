//! Property tests: simulated histories are linearizable, corrupted ones are
//! not, and the fast path, the WGL search and a brute-force oracle agree on
//! small random histories.

// Helpers outside #[test] fns build fixtures that are known to be well formed.
#![allow(clippy::unwrap_used)]

mod common;

use fulcrum_check::{
    check_key_linearizable, check_linearizable, check_lost_writes, check_sessions, History,
    LinearizabilityOptions, Op, Operation, Outcome, Verdict, VersionOrder,
};
use proptest::prelude::*;

fn spec() -> impl Strategy<Value = common::Spec> {
    (
        0u8..6,
        0u8..10,
        0u8..6,
        0u8..8,
        0u8..8,
        prop::sample::select(vec![0u8, 0, 0, 0, 0, 0, 1, 2]),
    )
        .prop_map(|(client, kind, gap, before, after, info)| common::Spec {
            client,
            kind,
            gap,
            before,
            after,
            info,
        })
}

fn engines() -> [LinearizabilityOptions; 2] {
    [
        LinearizabilityOptions::default(),
        LinearizabilityOptions {
            fast_path: false,
            ..Default::default()
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn simulated_register_histories_are_linearizable(specs in prop::collection::vec(spec(), 1..40)) {
        let h = common::simulate(&specs, "x", true);
        for options in engines() {
            let report = check_linearizable(&h, &options);
            prop_assert_eq!(report.verdict, Verdict::Valid, "{}\n{}", report, h);
        }
        // A linearizable register also keeps sessions (values increase in
        // linearization order) and loses no acknowledged write.
        let sessions = check_sessions(&h, VersionOrder::ValueOrder);
        prop_assert_eq!(sessions.verdict, Verdict::Valid, "{}\n{}", sessions, h);
        let lost = check_lost_writes(&h);
        prop_assert!(lost.verdict != Verdict::Invalid, "{}\n{}", lost, h);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught(
        specs in prop::collection::vec(spec(), 1..40),
        pick in any::<prop::sample::Index>(),
    ) {
        let h = common::simulate(&specs, "x", true);
        let reads = common::ok_reads(&h);
        let victim = reads[pick.index(reads.len())];
        let bad = common::corrupt(&h, victim, 1_000_000_007);
        for options in engines() {
            let report = check_linearizable(&bad, &options);
            prop_assert_eq!(report.verdict, Verdict::Invalid, "{}", report);
            let cx = report.counterexample.clone().unwrap();
            prop_assert_eq!(cx.ops().iter().map(|op| op.id).collect::<Vec<_>>(), vec![victim]);
        }
    }

    #[test]
    fn engines_agree_on_rewired_reads(
        specs in prop::collection::vec(spec(), 1..60),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..4),
    ) {
        // Point a few reads at arbitrary written values (or nil): sometimes
        // still linearizable, often not; both engines must agree.
        let h = common::simulate(&specs, "x", true);
        let reads = common::ok_reads(&h);
        let written: Vec<u64> = h.ops().iter().filter_map(|op| op.op.written_value()).collect();
        let mut bad = h.clone();
        for (read, value) in &picks {
            let victim = reads[read.index(reads.len())];
            let value = if written.is_empty() { 0 } else { written[value.index(written.len())] };
            bad = common::corrupt(&bad, victim, value);
        }
        let all: Vec<&Operation> = bad.ops().iter().collect();
        let [fast, wgl] = engines().map(|options| check_key_linearizable(&all, &options));
        prop_assert_eq!(fast, wgl, "{}", bad);
    }

    #[test]
    fn engines_agree_with_brute_force(ops in prop::collection::vec(small_op(), 1..8), unique in any::<bool>()) {
        let h = build(&ops, unique);
        let all: Vec<&Operation> = h.ops().iter().collect();
        let expected = if brute_force(&all, None) { Verdict::Valid } else { Verdict::Invalid };
        for options in engines() {
            prop_assert_eq!(check_key_linearizable(&all, &options), expected, "fast_path={}\n{}", options.fast_path, h);
        }
        // A counterexample is itself a non-linearizable history.
        let report = check_linearizable(&h, &LinearizabilityOptions::default());
        if let Some(cx) = &report.counterexample {
            let sub: Vec<&Operation> = cx.ops().iter().collect();
            prop_assert!(!brute_force(&sub, None), "{}", report);
        }
    }
}

/// (kind, value, invoke, duration, outcome) with small domains.
fn small_op() -> impl Strategy<Value = (u8, u8, u8, u8, u8, u8)> {
    (0u8..3, 0u8..5, 0u8..5, 0u8..20, 0u8..10, 0u8..10)
}

fn build(ops: &[(u8, u8, u8, u8, u8, u8)], unique: bool) -> History {
    let mut b = History::builder();
    for (i, &(kind, a, e, invoke, duration, outcome)) in ops.iter().enumerate() {
        let written = if unique {
            i as u64 + 1
        } else {
            u64::from(a % 3) + 1
        };
        let observed = (a > 0).then(|| u64::from(a));
        let op = match kind {
            0 => Op::Read(observed),
            1 => Op::Write(written),
            _ => Op::Cas {
                expected: (e > 0).then(|| u64::from(e)),
                new: written,
            },
        };
        let (invoke, complete) = (u64::from(invoke), u64::from(invoke) + u64::from(duration));
        let outcome = match outcome {
            0..=5 => Outcome::Ok,
            6 | 7 => Outcome::Info,
            _ => Outcome::Fail,
        };
        b = b.op(i as u64, "k", op, invoke, Some(complete), outcome);
    }
    b.build().unwrap()
}

/// Try every order: an operation may go next if no remaining operation
/// completed before it was invoked; `Info` operations may be left out.
fn brute_force(ops: &[&Operation], state: Option<u64>) -> bool {
    let live: Vec<&Operation> = ops
        .iter()
        .copied()
        .filter(|op| op.outcome != Outcome::Fail)
        .collect();
    search(&live, state)
}

fn search(remaining: &[&Operation], state: Option<u64>) -> bool {
    if remaining.iter().all(|op| op.outcome == Outcome::Info) {
        return true;
    }
    for (i, op) in remaining.iter().enumerate() {
        if remaining.iter().any(|other| other.precedes(op)) {
            continue;
        }
        let next = match &op.op {
            Op::Read(v) if op.outcome == Outcome::Info || *v == state => Some(state),
            Op::Write(v) => Some(Some(*v)),
            Op::Cas { expected, new } if *expected == state => Some(Some(*new)),
            _ => None,
        };
        if let Some(next) = next {
            let rest: Vec<&Operation> = remaining
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, op)| *op)
                .collect();
            if search(&rest, next) {
                return true;
            }
        }
    }
    false
}
