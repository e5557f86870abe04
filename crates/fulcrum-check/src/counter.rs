//! Counter bounds, after Jepsen's counter checker.
//!
//! For a read `r` of a key, split that key's increments (`Add`, not `Fail`):
//!
//! * *definite*: `Ok` increments that completed before `r` was invoked;
//! * *possible*: the others (`Ok` or `Info`) invoked no later than `r`
//!   completed — each may or may not be counted;
//! * increments invoked after `r` completed cannot be counted.
//!
//! With `D` the sum of definite deltas, `r` must lie in
//! `[D + Σ possible negative deltas, D + Σ possible positive deltas]`. With
//! only non-negative deltas that is Jepsen's `[Σ Ok before, Σ Ok + Info so
//! far]`.
//!
//! [`CounterMode::Linearizable`] applies these bounds to every `Ok` read.
//! [`CounterMode::Eventual`] lets a read miss any increment (every increment
//! invoked before it completed is merely *possible*), except the *final* read
//! of each key: the last `Ok` read, if it was invoked after every increment of
//! the key was invoked and every `Ok` increment completed. It gets the full
//! bounds, so it must count every acknowledged increment and nothing that was
//! never attempted. The workload must take final reads after the cluster has
//! healed and converged.
//!
//! Counterexample: the first violating read together with the increments
//! behind the bound it broke. It is not shrunk further: removing an increment
//! moves the bounds, so a smaller sub-history would prove nothing.

use crate::history::{History, Op, Operation, Outcome};
use crate::report::{count, CheckKind, Report, Verdict};

/// Which reads must respect real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterMode {
    /// Every read sees every increment acknowledged before it began.
    #[default]
    Linearizable,
    /// Reads may lag; only the final read of each key must be exact.
    Eventual,
}

/// Check counter reads against increment bounds (see the module docs).
pub fn check_counter(history: &History, mode: CounterMode) -> Report {
    let mut report = Report::new(CheckKind::Counter, Verdict::Valid, "");
    let mut keys_checked = 0usize;
    let mut reads_checked = 0usize;
    for (key, ops) in history.by_key() {
        let adds: Vec<(&Operation, i64)> = ops
            .iter()
            .filter(|op| op.outcome != Outcome::Fail)
            .filter_map(|op| match op.op {
                Op::Add(d) => Some((*op, d)),
                _ => None,
            })
            .collect();
        let reads: Vec<(&Operation, i64)> = ops
            .iter()
            .filter(|op| op.outcome == Outcome::Ok)
            .filter_map(|op| match op.op {
                Op::ReadCounter(v) => Some((*op, v)),
                _ => None,
            })
            .collect();
        if reads.is_empty() && adds.is_empty() {
            continue;
        }
        keys_checked += 1;
        let last_add_invoked = adds.iter().map(|(op, _)| op.invoke).max();
        let last_ok_done = adds
            .iter()
            .filter(|(op, _)| op.outcome == Outcome::Ok)
            .filter_map(|(op, _)| op.complete)
            .max();
        let final_read = reads
            .iter()
            .max_by_key(|(op, _)| (op.invoke, op.id))
            .filter(|(r, _)| {
                last_add_invoked.is_none_or(|t| r.invoke > t)
                    && last_ok_done.is_none_or(|t| r.invoke > t)
            })
            .map(|(r, _)| r.id);
        let sums = Sums::new(&adds);
        let mut key_bad = false;
        for &(read, value) in &reads {
            reads_checked += 1;
            let strict = mode == CounterMode::Linearizable || Some(read.id) == final_read;
            let (low, high) = sums.bounds(read, strict);
            let v = i128::from(value);
            if low <= v && v <= high {
                continue;
            }
            let which = if Some(read.id) == final_read {
                "final read"
            } else {
                "read"
            };
            report.findings.push(format!(
                "key {key:?}: {which} {} by client {} at [{}, {}] returned {value}, outside the possible range [{low}, {high}]",
                read.id,
                read.client,
                read.invoke,
                read.complete.unwrap_or(read.invoke),
            ));
            if report.counterexample.is_none() {
                let definite =
                    |add: &Operation| strict && add.outcome == Outcome::Ok && add.precedes(read);
                let possible = |add: &Operation| {
                    !definite(add) && read.complete.is_none_or(|c| add.invoke <= c)
                };
                let too_high = v > high;
                let behind = adds
                    .iter()
                    .filter(|&&(a, d)| definite(a) || (possible(a) && (d < 0) != too_high));
                report.counterexample = Some(History::subset(
                    behind.map(|&(a, _)| a).chain(std::iter::once(read)),
                ));
            }
            key_bad = true;
        }
        if key_bad {
            report.keys.push(key.to_string());
        }
    }
    if report.keys.is_empty() {
        report.summary = format!(
            "{} of {} within bounds",
            count(reads_checked, "read"),
            count(keys_checked, "counter")
        );
    } else {
        report.verdict = Verdict::Invalid;
        report.summary = format!(
            "{} out of bounds on {} of {}",
            count(report.findings.len(), "read"),
            report.keys.len(),
            count(keys_checked, "counter")
        );
    }
    report
}

/// Prefix sums of one key's increments, to bound each read in `O(log n)`.
struct Sums {
    /// Invocation times, ascending, with running (negative, positive) sums.
    by_invoke: Vec<(u64, i128, i128)>,
    /// Completion times of `Ok` increments, ascending, with running (all,
    /// negative, positive) sums.
    by_complete: Vec<(u64, i128, i128, i128)>,
}

impl Sums {
    fn new(adds: &[(&Operation, i64)]) -> Self {
        let mut invoked: Vec<(u64, i64)> = adds.iter().map(|(op, d)| (op.invoke, *d)).collect();
        invoked.sort_unstable();
        let (mut neg, mut pos) = (0i128, 0i128);
        let by_invoke = invoked
            .into_iter()
            .map(|(t, d)| {
                if d < 0 {
                    neg += i128::from(d);
                } else {
                    pos += i128::from(d);
                }
                (t, neg, pos)
            })
            .collect();
        let mut completed: Vec<(u64, i64)> = adds
            .iter()
            .filter(|(op, _)| op.outcome == Outcome::Ok)
            .filter_map(|(op, d)| op.complete.map(|c| (c, *d)))
            .collect();
        completed.sort_unstable();
        let (mut all, mut neg, mut pos) = (0i128, 0i128, 0i128);
        let by_complete = completed
            .into_iter()
            .map(|(t, d)| {
                all += i128::from(d);
                if d < 0 {
                    neg += i128::from(d);
                } else {
                    pos += i128::from(d);
                }
                (t, all, neg, pos)
            })
            .collect();
        Sums {
            by_invoke,
            by_complete,
        }
    }

    /// `[low, high]` for `read`; with `strict`, increments acknowledged
    /// before the read began are definite.
    fn bounds(&self, read: &Operation, strict: bool) -> (i128, i128) {
        let end = read.complete.unwrap_or(u64::MAX);
        let n = self.by_invoke.partition_point(|&(t, _, _)| t <= end);
        let (neg_all, pos_all) = n
            .checked_sub(1)
            .map_or((0, 0), |i| (self.by_invoke[i].1, self.by_invoke[i].2));
        if !strict {
            return (neg_all, pos_all);
        }
        let m = self.by_complete.partition_point(|&(t, ..)| t < read.invoke);
        let (d, neg_d, pos_d) = m.checked_sub(1).map_or((0, 0, 0), |i| {
            (
                self.by_complete[i].1,
                self.by_complete[i].2,
                self.by_complete[i].3,
            )
        });
        (d + neg_all - neg_d, d + pos_all - pos_d)
    }
}
