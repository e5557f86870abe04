//! Availability: no request is refused for lack of replicas while the
//! cluster changes shape (a node joining or leaving).
//!
//! Input: the history, the error reply of every operation that got one
//! (operation id → the reply's text), and the *windows* in which the claim
//! holds, in the history's time. Claim: no operation that overlaps a window
//! was answered with an error starting with [`UNAVAILABLE`] (the store's
//! refusal when fewer replicas than the level needs are reachable). Other
//! error replies (timeouts, unknown outcomes) are not refusals; they are
//! counted by kind in the findings, so the report says what did fail.
//!
//! An operation overlaps a window when it was invoked before the window
//! ended and completed (or gave up) after it began; one that never
//! completed counts from its invocation. With no window to judge (the
//! change never happened) the verdict is `Unknown`, never a vacuous
//! `Valid`.

use std::collections::BTreeMap;

use crate::history::{History, OpId, Operation, Time};
use crate::report::{count, CheckKind, Report, Verdict};

/// Prefix of the error reply that refuses a request for lack of replicas.
pub const UNAVAILABLE: &str = "UNAVAILABLE";

/// The most refused operations spelled out in the findings.
const MAX_SHOWN: usize = 10;

/// A stretch of the run during which the claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// What happened then, for the report (`n4 joining`).
    pub label: String,
    pub start: Time,
    pub end: Time,
}

impl Window {
    fn overlaps(&self, op: &Operation) -> bool {
        let done = op.complete.unwrap_or(op.invoke);
        op.invoke <= self.end && done >= self.start
    }
}

/// The kind of an error reply: its first word (`UNAVAILABLE`, `TIMEOUT`,
/// `ERR`, …).
pub fn error_kind(message: &str) -> &str {
    message.split_whitespace().next().unwrap_or("(empty)")
}

/// Error replies counted by [`error_kind`].
pub fn error_kinds<'a>(messages: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for m in messages {
        *kinds.entry(error_kind(m).to_string()).or_insert(0) += 1;
    }
    kinds
}

/// `TIMEOUT 3, UNAVAILABLE 1`, or `none`.
pub fn describe_kinds(kinds: &BTreeMap<String, usize>) -> String {
    if kinds.is_empty() {
        return "none".to_string();
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check that no operation overlapping one of `windows` was refused with
/// `UNAVAILABLE`. `errors` holds the error reply of each operation that got
/// one.
pub fn check_availability(
    history: &History,
    errors: &BTreeMap<OpId, String>,
    windows: &[Window],
) -> Report {
    if windows.is_empty() {
        return Report::new(
            CheckKind::Availability,
            Verdict::Unknown,
            "no window to judge (the membership change did not happen)",
        );
    }
    let mut report = Report::new(CheckKind::Availability, Verdict::Valid, "");
    let mut judged = 0usize;
    let mut in_windows: Vec<&String> = Vec::new();
    let mut refused: Vec<(&Operation, &Window, &String)> = Vec::new();
    for op in history.ops() {
        let Some(window) = windows.iter().find(|w| w.overlaps(op)) else {
            continue;
        };
        judged += 1;
        if let Some(message) = errors.get(&op.id) {
            in_windows.push(message);
            if message.starts_with(UNAVAILABLE) {
                refused.push((op, window, message));
            }
        }
    }
    let labels: Vec<&str> = windows.iter().map(|w| w.label.as_str()).collect();
    let during = format!("{} ({})", count(windows.len(), "window"), labels.join(", "));
    for (op, window, message) in refused.iter().take(MAX_SHOWN) {
        report.findings.push(format!(
            "operation {} (client {}, {:?} on {:?}, invoked at {}) during {}: {message}",
            op.id, op.client, op.op, op.key, op.invoke, window.label
        ));
    }
    if refused.len() > MAX_SHOWN {
        report.findings.push(format!(
            "… and {} more refused operations",
            refused.len() - MAX_SHOWN
        ));
    }
    report.findings.push(format!(
        "error replies during these windows by kind: {}",
        describe_kinds(&error_kinds(in_windows))
    ));
    if refused.is_empty() {
        report.summary = format!(
            "none of the {} overlapping {during} was refused with {UNAVAILABLE}",
            count(judged, "operation")
        );
        return report;
    }
    report.verdict = Verdict::Invalid;
    report.summary = format!(
        "{} of {judged} operations overlapping {during} were refused with {UNAVAILABLE}",
        refused.len()
    );
    let mut keys: Vec<String> = refused.iter().map(|(op, _, _)| op.key.clone()).collect();
    keys.sort();
    keys.dedup();
    report.keys = keys;
    report.counterexample = Some(History::subset(refused.iter().map(|(op, _, _)| *op)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn window(start: Time, end: Time) -> Window {
        Window {
            label: "n4 joining".to_string(),
            start,
            end,
        }
    }

    fn history() -> History {
        History::builder()
            .ok(1, "a", Op::Write(1), 0, 10)
            .fail(2, "a", Op::Write(2), 20, 30)
            .fail(3, "b", Op::Read(None), 40, 50)
            .info_until(4, "b", Op::Write(3), 60, 70)
            .build()
            .expect("history")
    }

    #[test]
    fn unavailable_inside_a_window_is_invalid_and_named() {
        let h = history();
        let errors = BTreeMap::from([
            (
                1,
                "UNAVAILABLE not enough replicas: needed 2, reached 1".to_string(),
            ),
            (
                3,
                "TIMEOUT write after 2000 ms; outcome unknown".to_string(),
            ),
        ]);
        let report = check_availability(&h, &errors, &[window(15, 65)]);
        assert_eq!(report.verdict, Verdict::Invalid, "{report}");
        assert_eq!(report.keys, vec!["a".to_string()]);
        assert!(report.findings[0].contains("needed 2"), "{report}");
        assert!(
            report
                .findings
                .last()
                .expect("kinds")
                .contains("TIMEOUT 1, UNAVAILABLE 1"),
            "{report}"
        );
        let ce = report.counterexample.expect("counterexample");
        assert_eq!(ce.ops().iter().map(|o| o.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn unavailable_outside_every_window_and_other_errors_are_not_refusals() {
        let h = history();
        let errors = BTreeMap::from([
            (
                1,
                "UNAVAILABLE not enough replicas: needed 2, reached 1".to_string(),
            ),
            (
                3,
                "TIMEOUT write after 2000 ms; outcome unknown".to_string(),
            ),
        ]);
        let report = check_availability(&h, &errors, &[window(35, 80)]);
        assert_eq!(report.verdict, Verdict::Valid, "{report}");
        assert!(report.summary.contains("2 operations"), "{report}");
        assert!(report.findings[0].contains("TIMEOUT 1"), "{report}");
    }

    #[test]
    fn no_window_is_unknown_not_valid() {
        let report = check_availability(&history(), &BTreeMap::new(), &[]);
        assert_eq!(report.verdict, Verdict::Unknown);
    }

    #[test]
    fn kinds_are_first_words() {
        assert_eq!(error_kind("UNAVAILABLE x"), "UNAVAILABLE");
        assert_eq!(error_kind(""), "(empty)");
        let msgs = [
            "ERR a".to_string(),
            "ERR b".to_string(),
            "TIMEOUT".to_string(),
        ];
        assert_eq!(describe_kinds(&error_kinds(&msgs)), "ERR 2, TIMEOUT 1");
        assert_eq!(describe_kinds(&BTreeMap::new()), "none");
    }
}
