//! No lost acknowledged writes, judged from each key's final read.
//!
//! The *final read* of a key is its last `Ok` read (`Read` or `ReadSet`, by
//! invocation time). The workload takes it after healing the cluster and
//! letting it converge; the history says nothing about that, so the caller
//! must make sure of it. Writes acknowledged after the final read began are
//! concurrent with it and not judged.
//!
//! **Sets** (keys with `AddElement`): every `Ok` add that completed before
//! the final read began must be in it. Elements of `Info` adds may or may not
//! be. An element no add attempted, or only a `Fail` add, must not be there.
//!
//! **Registers** (keys with `Write`/`Cas`; the final read may return several
//! siblings): every value in the final read must have been written by a
//! `Write` or `Cas` that is `Ok` or `Info`. An `Ok` write `w` that completed
//! before the final read began is *lost* unless the final read contains
//! `w`'s value or a value written by some operation that did not complete
//! before `w` was invoked — one concurrent with or later than `w`, which a
//! last-writer-wins store may legitimately have ordered after it. Values
//! should be unique per key; if not, a value counts as written by any of its
//! writers.
//!
//! A key with acknowledged writes but no final read is `Unknown`.

use std::collections::{BTreeSet, HashMap};

use crate::display::ValueSet;
use crate::history::{History, Op, Operation, Outcome, Value};
use crate::report::{count, CheckKind, Report, Verdict};

/// Check that no acknowledged write is missing from the final reads.
pub fn check_lost_writes(history: &History) -> Report {
    let mut report = Report::new(CheckKind::LostWrites, Verdict::Valid, "");
    let mut unknown = Vec::new();
    let mut keys_checked = 0usize;
    let mut writes_checked = 0usize;
    for (key, ops) in history.by_key() {
        let is_set = ops.iter().any(|op| matches!(op.op, Op::AddElement(_)));
        let writes: Vec<(&Operation, Value)> = ops
            .iter()
            .filter_map(|op| match op.op {
                Op::AddElement(v) if is_set => Some((*op, v)),
                Op::Write(v) | Op::Cas { new: v, .. } if !is_set => Some((*op, v)),
                _ => None,
            })
            .collect();
        if writes.is_empty() {
            continue;
        }
        let final_read = ops
            .iter()
            .filter(|op| op.outcome == Outcome::Ok)
            .filter_map(|op| match &op.op {
                Op::Read(v) => Some((*op, v.iter().copied().collect::<BTreeSet<Value>>())),
                Op::ReadSet(vs) => Some((*op, vs.iter().copied().collect())),
                _ => None,
            })
            .max_by_key(|(op, _)| (op.invoke, op.id));
        let Some((read, seen)) = final_read else {
            if writes.iter().any(|(w, _)| w.outcome == Outcome::Ok) {
                unknown.push(key.to_string());
                report.findings.push(format!(
                    "key {key:?}: acknowledged writes but no final read; not checked"
                ));
            }
            continue;
        };
        keys_checked += 1;
        let mut writers: HashMap<Value, Vec<&Operation>> = HashMap::new();
        for &(w, v) in &writes {
            if w.outcome != Outcome::Fail {
                writers.entry(v).or_default().push(w);
            }
        }
        let shown = ValueSet(&seen.iter().copied().collect::<Vec<_>>()).to_string();
        let mut bad: Vec<(String, Vec<&Operation>)> = Vec::new();
        for &v in &seen {
            if !writers.contains_key(&v) {
                let how = if writes.iter().any(|&(_, x)| x == v) {
                    "only a failed operation"
                } else {
                    "no operation"
                };
                let failed = writes.iter().filter(|&&(_, x)| x == v).map(|&(w, _)| w);
                bad.push((
                    format!(
                        "key {key:?}: final read {} contains {v}, which {how} wrote",
                        read.id
                    ),
                    failed.chain(std::iter::once(read)).collect(),
                ));
            }
        }
        for &(w, v) in &writes {
            if w.outcome != Outcome::Ok || !w.precedes(read) {
                continue;
            }
            writes_checked += 1;
            if seen.contains(&v) {
                continue;
            }
            let superseded = !is_set
                && seen
                    .iter()
                    .filter_map(|s| writers.get(s))
                    .flatten()
                    .any(|other| !other.precedes(w));
            if superseded {
                continue;
            }
            let what = if is_set { "add of" } else { "write of" };
            let mut evidence = vec![w, read];
            if !is_set {
                evidence.extend(seen.iter().filter_map(|s| writers.get(s)).flatten());
            }
            bad.push((
                format!(
                    "key {key:?}: acknowledged {what} {v} (operation {}, client {}, done at {}) is missing from final read {} = {shown}{}",
                    w.id,
                    w.client,
                    w.complete.unwrap_or(w.invoke),
                    read.id,
                    if is_set || seen.is_empty() { "" } else { ", and every write of those values completed before it began" }
                ),
                evidence,
            ));
        }
        if !bad.is_empty() {
            report.keys.push(key.to_string());
        }
        for (finding, evidence) in bad {
            report.findings.push(finding);
            if report.counterexample.is_none() {
                report.counterexample = Some(History::subset(evidence));
            }
        }
    }
    let lost = report.keys.len();
    report.verdict = if lost > 0 {
        Verdict::Invalid
    } else if !unknown.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    report.summary = match report.verdict {
        Verdict::Invalid => format!(
            "{} on {lost} of {}",
            count(report.findings.len() - unknown.len(), "problem"),
            count(keys_checked, "key")
        ),
        Verdict::Unknown => format!("{} without a final read", count(unknown.len(), "key")),
        Verdict::Valid => format!(
            "all {} on {} survive",
            count(writes_checked, "acknowledged write"),
            count(keys_checked, "key")
        ),
    };
    report.keys.extend(unknown);
    report.keys.sort();
    report
}
