//! Linearizability of registers (read, write, compare-and-set).
//!
//! Claim: for every key, there is a total order of the key's operations that
//! (1) contains every `Ok` operation and any subset of the `Info` ones,
//! (2) puts `a` before `b` whenever `a` completed before `b` was invoked
//! (`Info` operations never complete), and (3) is a legal sequential
//! execution of a register starting from the initial value. Linearizability
//! is compositional (Herlihy & Wing), so checking each key on its own is
//! exact.
//!
//! Each key goes through the `register` module's preparation. If then every
//! value has a single writer and no operation is optional — the normal case
//! for a workload writing unique values — the polynomial check of
//! the `clusters` module decides. Otherwise the WGL search of the `wgl` module
//! does; a key whose search exceeds the step budget is `Unknown`, never
//! `Valid`.
//!
//! Counterexamples: the first invalid key is shrunk with ddmin. Candidate
//! sub-histories are closed under "an operation that observes value `v`
//! (read, or CAS expecting `v`) keeps every writer of `v`". For such a closed
//! subset, any linearization of the full history restricted to the subset is
//! still a linearization (every observer still follows the same last writer),
//! so a closed subset that is not linearizable proves the full history is
//! not. Shrinking never invents a violation.

use std::collections::HashMap;

use crate::clusters::decide;
use crate::history::{History, Op, Operation, Value};
use crate::register::{for_search, prepare, relevant, RegOp, Register};
use crate::report::{count, CheckKind, Report, Verdict};
use crate::shrink::ddmin;
use crate::wgl::{search, SearchResult};

/// Settings for [`check_linearizable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearizabilityOptions {
    /// Every register's value before the history starts (`None`: absent).
    pub initial: Option<Value>,
    /// Search steps allowed per key (WGL only) before the key is `Unknown`.
    /// Memory grows with the steps taken, by up to about 100 bytes each; the
    /// default bounds one key to roughly 200 MB and a few hundred ms.
    pub max_steps_per_key: u64,
    /// Whether to shrink the first invalid key to a minimal counterexample.
    pub shrink: bool,
    /// Checker runs allowed while shrinking.
    pub max_shrink_checks: usize,
    /// Decide keys whose values are unique (after preparation) with the
    /// polynomial read-from check of the `clusters` module instead of the
    /// search. Turn off only to cross-check the search.
    pub fast_path: bool,
}

impl Default for LinearizabilityOptions {
    fn default() -> Self {
        LinearizabilityOptions {
            initial: None,
            max_steps_per_key: 2_000_000,
            shrink: true,
            max_shrink_checks: 2_000,
            fast_path: true,
        }
    }
}

/// Whether one key's operations are linearizable. Operations that are not
/// register operations are ignored; `ReadSet` counts as a register read
/// returning siblings (linearizable only with at most one value).
pub fn check_key_linearizable(ops: &[&Operation], options: &LinearizabilityOptions) -> Verdict {
    let prepared = prepare(ops, options.initial);
    if options.fast_path {
        match decide(&prepared, options.initial) {
            Some(true) => return Verdict::Valid,
            Some(false) => return Verdict::Invalid,
            None => {}
        }
    }
    let (prepared, unrepeatable) = for_search(prepared, options.initial);
    match search::<Register>(
        &prepared,
        options.initial,
        &unrepeatable,
        options.max_steps_per_key,
    ) {
        SearchResult::Linearizable => Verdict::Valid,
        SearchResult::NotLinearizable => Verdict::Invalid,
        SearchResult::BudgetExceeded => Verdict::Unknown,
    }
}

/// Check every key of `history` that has register operations (`Read`,
/// `Write`, `Cas`; keys with `AddElement` are sets and skipped).
pub fn check_linearizable(history: &History, options: &LinearizabilityOptions) -> Report {
    let mut checked = 0usize;
    let mut skipped = 0usize;
    let mut invalid = Vec::new();
    let mut unknown = Vec::new();
    let mut report = Report::new(CheckKind::Linearizability, Verdict::Valid, "");
    for (key, ops) in history.by_key() {
        let is_register = ops.iter().any(|op| op.op.is_register())
            && !ops.iter().any(|op| matches!(op.op, Op::AddElement(_)));
        if !is_register {
            skipped += 1;
            continue;
        }
        let ops: Vec<&Operation> = ops
            .into_iter()
            .filter(|op| RegOp::of(&op.op).is_some())
            .collect();
        checked += 1;
        match check_key_linearizable(&ops, options) {
            Verdict::Valid => {}
            Verdict::Unknown => {
                report.findings.push(format!(
                    "key {key:?}: undecided after {} search steps ({} operations)",
                    options.max_steps_per_key,
                    ops.len()
                ));
                unknown.push(key.to_string());
            }
            Verdict::Invalid => {
                if report.counterexample.is_none() {
                    let culprits = if options.shrink {
                        shrink_key(&ops, options)
                    } else {
                        ops.clone()
                    };
                    let mut finding = format!(
                        "key {key:?}: no linearization of its {} operations; the {} below already admit none",
                        ops.len(),
                        culprits.len()
                    );
                    for hint in diagnose(&ops, &culprits, options.initial) {
                        finding.push_str("; ");
                        finding.push_str(&hint);
                    }
                    report.findings.push(finding);
                    report.counterexample = Some(History::subset(culprits));
                } else {
                    report.findings.push(format!(
                        "key {key:?}: no linearization of its {} operations",
                        ops.len()
                    ));
                }
                invalid.push(key.to_string());
            }
        }
    }
    report.verdict = if !invalid.is_empty() {
        Verdict::Invalid
    } else if !unknown.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    let keys = count(checked, "register key");
    report.summary = match report.verdict {
        Verdict::Valid => format!("all {keys} linearizable"),
        Verdict::Invalid => format!("{} of {keys} not linearizable", invalid.len()),
        Verdict::Unknown => format!(
            "{} of {keys} undecided (search budget exhausted)",
            unknown.len()
        ),
    };
    if skipped > 0 {
        report.findings.push(format!(
            "{} without register operations not checked",
            count(skipped, "key")
        ));
    }
    report.keys = invalid.into_iter().chain(unknown).collect();
    report.keys.sort();
    report
}

/// Shrink one invalid key's operations to a small closed failing subset.
fn shrink_key<'a>(ops: &[&'a Operation], options: &LinearizabilityOptions) -> Vec<&'a Operation> {
    let mut candidates: Vec<&Operation> = ops.iter().copied().filter(|op| relevant(op)).collect();
    candidates.sort_by_key(|op| (op.invoke, op.id));
    let regs: Vec<RegOp> = candidates
        .iter()
        .filter_map(|op| RegOp::of(&op.op))
        .collect();
    let mut writers: HashMap<Value, Vec<usize>> = HashMap::new();
    for (i, reg) in regs.iter().enumerate() {
        if let Some(v) = reg.written() {
            writers.entry(v).or_default().push(i);
        }
    }
    let close = |subset: Vec<usize>| -> Vec<usize> {
        let mut present = vec![false; candidates.len()];
        subset.iter().for_each(|&i| present[i] = true);
        loop {
            let mut changed = false;
            for &i in &subset {
                let orphaned = regs[i]
                    .observed()
                    .and_then(|v| writers.get(&v))
                    .is_some_and(|ws| ws.iter().any(|&w| !present[w]));
                if present[i] && orphaned {
                    present[i] = false;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        subset.into_iter().filter(|&i| present[i]).collect()
    };
    let fails = |subset: &[usize]| {
        let sub: Vec<&Operation> = subset.iter().map(|&i| candidates[i]).collect();
        check_key_linearizable(&sub, options) == Verdict::Invalid
    };
    let all: Vec<usize> = (0..candidates.len()).collect();
    ddmin(all, options.max_shrink_checks, fails, close)
        .into_iter()
        .map(|i| candidates[i])
        .collect()
}

/// Plain-words hints about a counterexample: reads of values nobody wrote,
/// reads that finished before their value's write began.
fn diagnose(all: &[&Operation], culprits: &[&Operation], initial: Option<Value>) -> Vec<String> {
    let mut hints = Vec::new();
    for op in culprits {
        let Some(RegOp::Read(Some(v)) | RegOp::Cas(Some(v), _)) = RegOp::of(&op.op) else {
            if RegOp::of(&op.op) == Some(RegOp::Impossible) {
                hints.push(format!("operation {} returned several siblings", op.id));
            }
            continue;
        };
        if initial == Some(v) {
            continue;
        }
        let writers: Vec<&&Operation> = all
            .iter()
            .filter(|w| relevant(w) && RegOp::of(&w.op).and_then(RegOp::written) == Some(v))
            .collect();
        if writers.is_empty() {
            hints.push(format!(
                "operation {} observed {v}, which no operation wrote",
                op.id
            ));
        } else if writers.iter().all(|w| op.precedes(w)) {
            hints.push(format!(
                "operation {} observed {v} before any write of {v} was invoked",
                op.id
            ));
        }
    }
    hints
}
