//! Verdicts and reports shared by every checker.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::display::write_table;
use crate::history::{History, Key};

/// A checker's conclusion. Ordered by severity: `Valid < Unknown < Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The property holds for this history.
    Valid,
    /// The checker could not decide (search budget exhausted, missing final
    /// reads or versions). Never a disguised "valid".
    Unknown,
    /// The property is violated; the report carries the evidence.
    Invalid,
}

impl Verdict {
    /// The more severe of two verdicts, for combining per-key results.
    pub fn worst(self, other: Verdict) -> Verdict {
        self.max(other)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Valid => "VALID",
            Verdict::Unknown => "UNKNOWN",
            Verdict::Invalid => "INVALID",
        })
    }
}

/// Which property a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Linearizability of registers ([`crate::check_linearizable`]).
    Linearizability,
    /// Counter bounds ([`crate::check_counter`]).
    Counter,
    /// No lost acknowledged writes ([`crate::check_lost_writes`]).
    LostWrites,
    /// Read-your-writes and monotonic reads ([`crate::check_sessions`]).
    Session,
    /// Replica convergence ([`crate::check_convergence`]).
    Convergence,
    /// Replicas' Merkle roots agree without reads (anti-entropy and hinted
    /// handoff; judged with [`crate::check_convergence`] over partitions).
    AntiEntropy,
    /// No request refused with `UNAVAILABLE` while the cluster changed
    /// shape ([`crate::check_availability`]).
    Availability,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            CheckKind::Linearizability => "linearizability",
            CheckKind::Counter => "counter",
            CheckKind::LostWrites => "lost writes",
            CheckKind::Session => "session guarantees",
            CheckKind::Convergence => "convergence",
            CheckKind::AntiEntropy => "anti-entropy",
            CheckKind::Availability => "availability",
        })
    }
}

/// A checker's result: the verdict, why, and on `Invalid` a small sub-history
/// that shows the violation on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The property checked.
    pub check: CheckKind,
    /// The conclusion.
    pub verdict: Verdict,
    /// One line saying what was concluded.
    pub summary: String,
    /// One line per violation or undecided item (or a note when valid).
    pub findings: Vec<String>,
    /// The keys with violations or undecided results, sorted.
    pub keys: Vec<Key>,
    /// On `Invalid`: operations (with their original ids) that violate the
    /// property by themselves, for the first violation found.
    pub counterexample: Option<History>,
}

/// The most findings a report prints before eliding the rest.
const MAX_FINDINGS_SHOWN: usize = 20;

impl Report {
    /// A report with no findings.
    pub fn new(check: CheckKind, verdict: Verdict, summary: impl Into<String>) -> Self {
        Report {
            check,
            verdict,
            summary: summary.into(),
            findings: Vec::new(),
            keys: Vec::new(),
            counterexample: None,
        }
    }

    /// Whether the verdict is `Valid`.
    pub fn is_valid(&self) -> bool {
        self.verdict == Verdict::Valid
    }

    /// Whether the verdict is `Invalid`.
    pub fn is_invalid(&self) -> bool {
        self.verdict == Verdict::Invalid
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} — {}", self.check, self.verdict, self.summary)?;
        for finding in self.findings.iter().take(MAX_FINDINGS_SHOWN) {
            writeln!(f, "  * {finding}")?;
        }
        if self.findings.len() > MAX_FINDINGS_SHOWN {
            writeln!(
                f,
                "  * … and {} more",
                self.findings.len() - MAX_FINDINGS_SHOWN
            )?;
        }
        if let Some(history) = &self.counterexample {
            writeln!(f, "  counterexample ({} operations):", history.len())?;
            write_table(f, history.ops(), "    ")?;
        }
        Ok(())
    }
}

/// `1 read`, `2 reads`: a count with its noun, for summaries.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
