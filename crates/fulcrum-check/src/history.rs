//! The history model: what a test client did, when, and what it learned.
//!
//! A [`History`] is a list of [`Operation`]s. Each operation is one request by
//! one client against one key, with the time it was invoked, the time the
//! client learned its outcome (if it ever did) and the [`Outcome`] itself.
//!
//! Times are plain `u64`s chosen by the caller (nanoseconds from a monotonic
//! clock, or logical ticks); the checkers only compare them. Two operations
//! are ordered in real time only if one *completes strictly before* the other
//! is invoked; equal times count as concurrent, which never makes a checker
//! stricter than the evidence allows.

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;

/// A register value, set element or written datum.
///
/// Values are `u64`s: the checkers compare them and need nothing else, and
/// workloads write unique integers (Jepsen-style) so that a read names the
/// write it observed. A workload that stores byte strings encodes the integer
/// (for example as decimal ASCII) and maps anything it cannot decode to a
/// value it never writes, which the checkers then report as never written.
pub type Value = u64;

/// A test client (Jepsen's "process"). A client issues one operation at a
/// time.
pub type ClientId = u64;

/// A key. Keys are independent: every checker partitions the history per key.
pub type Key = String;

/// A caller-supplied instant: monotonic nanoseconds or logical ticks.
pub type Time = u64;

/// An operation's identity inside its history. Sub-histories (counterexamples)
/// keep the ids of the history they were cut from.
pub type OpId = u64;

/// What an operation asked for and, for reads, what it observed.
///
/// The observed part of a read (`Read`, `ReadCounter`, `ReadSet`) is
/// meaningful only when the outcome is [`Outcome::Ok`]; at invocation time
/// record any placeholder (`Read(None)`, `ReadCounter(0)`, `ReadSet(vec![])`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Register read; `None` means the key was absent.
    Read(Option<Value>),
    /// Register write (put).
    Write(Value),
    /// Register compare-and-set: if the value is `expected` (`None`: the key
    /// is absent), set it to `new`. A CAS whose comparison failed did not
    /// happen and is recorded with [`Outcome::Fail`].
    Cas {
        /// The value the register must hold; `None` means absent.
        expected: Option<Value>,
        /// The value written if the comparison holds.
        new: Value,
    },
    /// Counter increment by a signed delta.
    Add(i64),
    /// Counter read.
    ReadCounter(i64),
    /// Add an element to a grow-only set.
    AddElement(Value),
    /// Read of a set, or a register read that returned several siblings. The
    /// elements are in any order.
    ReadSet(Vec<Value>),
}

impl Op {
    /// The value this operation writes if it takes effect (register ops).
    pub fn written_value(&self) -> Option<Value> {
        match self {
            Op::Write(v) | Op::Cas { new: v, .. } => Some(*v),
            _ => None,
        }
    }

    /// Whether this is a register operation (`Read`, `Write`, `Cas`).
    pub fn is_register(&self) -> bool {
        matches!(self, Op::Read(_) | Op::Write(_) | Op::Cas { .. })
    }

    /// Whether the two ops make the same request (reads may differ in what
    /// they observed). Used to pair completions with invocations.
    pub fn same_request(&self, other: &Op) -> bool {
        match (self, other) {
            (Op::Read(_), Op::Read(_))
            | (Op::ReadCounter(_), Op::ReadCounter(_))
            | (Op::ReadSet(_), Op::ReadSet(_)) => true,
            (a, b) => a == b,
        }
    }
}

/// How an operation ended, as far as the client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: it took effect between invocation and completion.
    Ok,
    /// Definitely did not take effect (a refused request, a failed CAS).
    Fail,
    /// Unknown (timeout, lost connection, crash, never completed): it may
    /// take effect at any time after invocation, or never.
    Info,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Identity inside the history.
    pub id: OpId,
    /// The client that issued it.
    pub client: ClientId,
    /// The key it touched.
    pub key: Key,
    /// The request and, for reads, what was observed.
    pub op: Op,
    /// When the client sent it.
    pub invoke: Time,
    /// When the client learned the outcome. Required for `Ok` and `Fail`; for
    /// `Info` it is when the client gave up (informational: the operation may
    /// still take effect later), or absent if it never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<Time>,
    /// How it ended. An operation that was invoked and has not completed yet
    /// is `Info` without a completion time.
    pub outcome: Outcome,
    /// Optional store-assigned version: for a write, the version its
    /// acknowledgement reported (for example the hybrid-logical-clock
    /// timestamp); for a read, the version of the value it returned (the
    /// greatest, for siblings). Only the session checker uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl Operation {
    /// Completion time as seen by a checker that must allow the operation to
    /// take effect late: `Info` operations never complete (`None` = +∞).
    pub fn effective_complete(&self) -> Option<Time> {
        match self.outcome {
            Outcome::Info => None,
            Outcome::Ok | Outcome::Fail => self.complete,
        }
    }

    /// Whether `self` completed strictly before `other` was invoked.
    pub fn precedes(&self, other: &Operation) -> bool {
        self.effective_complete().is_some_and(|c| c < other.invoke)
    }

    fn validate(&self) -> Result<(), HistoryError> {
        match (self.outcome, self.complete) {
            (Outcome::Ok | Outcome::Fail, None) => Err(HistoryError::MissingCompletion {
                id: self.id,
                outcome: self.outcome,
            }),
            (_, Some(complete)) if complete < self.invoke => {
                Err(HistoryError::CompletionBeforeInvocation {
                    id: self.id,
                    invoke: self.invoke,
                    complete,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The current JSON format of a saved history.
pub const FORMAT_VERSION: u32 = 1;

/// A well-formed list of operations: ids strictly increasing, every `Ok` and
/// `Fail` operation completed, no completion before its invocation.
///
/// JSON form: `{"format": 1, "ops": [ {"id": 0, "client": 1, "key": "x",
/// "op": {"write": 5}, "invoke": 10, "complete": 20, "outcome": "ok"}, … ]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HistoryFile")]
pub struct History {
    ops: Vec<Operation>,
}

#[derive(Deserialize)]
struct HistoryFile {
    format: u32,
    ops: Vec<Operation>,
}

#[derive(Serialize)]
struct HistoryFileRef<'a> {
    format: u32,
    ops: &'a [Operation],
}

impl TryFrom<HistoryFile> for History {
    type Error = HistoryError;

    fn try_from(file: HistoryFile) -> Result<Self, Self::Error> {
        if file.format != FORMAT_VERSION {
            return Err(HistoryError::UnsupportedFormat(file.format));
        }
        History::from_ops(file.ops)
    }
}

impl Serialize for History {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        HistoryFileRef {
            format: FORMAT_VERSION,
            ops: &self.ops,
        }
        .serialize(serializer)
    }
}

impl History {
    /// An empty history, ready for [`History::invoke`] / [`History::complete`].
    pub fn new() -> Self {
        History::default()
    }

    /// A builder for histories written out in full (mostly for tests).
    pub fn builder() -> crate::builder::HistoryBuilder {
        crate::builder::HistoryBuilder::default()
    }

    /// Check and wrap a list of operations.
    pub fn from_ops(ops: Vec<Operation>) -> Result<Self, HistoryError> {
        for pair in ops.windows(2) {
            if pair[1].id <= pair[0].id {
                return Err(HistoryError::UnorderedIds {
                    previous: pair[0].id,
                    id: pair[1].id,
                });
            }
        }
        ops.iter().try_for_each(Operation::validate)?;
        Ok(History { ops })
    }

    /// Record an invocation. Until completed, the operation counts as `Info`
    /// (pending): if the recorder stops early, that is what it was.
    pub fn invoke(&mut self, client: ClientId, key: impl Into<Key>, op: Op, at: Time) -> OpId {
        let id = self.ops.last().map_or(0, |last| last.id + 1);
        self.ops.push(Operation {
            id,
            client,
            key: key.into(),
            op,
            invoke: at,
            complete: None,
            outcome: Outcome::Info,
            version: None,
        });
        id
    }

    /// Record the completion of a pending operation.
    pub fn complete(&mut self, id: OpId, at: Time, outcome: Outcome) -> Result<(), HistoryError> {
        let op = self.pending_mut(id, at)?;
        op.complete = Some(at);
        op.outcome = outcome;
        Ok(())
    }

    /// Record the completion of a pending operation together with what it
    /// observed (`observed` must make the same request, e.g. `Op::Read(Some(3))`
    /// for a read) and the version the store reported, if any.
    pub fn complete_with(
        &mut self,
        id: OpId,
        at: Time,
        outcome: Outcome,
        observed: Op,
        version: Option<u64>,
    ) -> Result<(), HistoryError> {
        let op = self.pending_mut(id, at)?;
        if !op.op.same_request(&observed) {
            return Err(HistoryError::CompletionMismatch {
                id,
                invoked: op.op.clone(),
                completed: observed,
            });
        }
        op.op = observed;
        op.complete = Some(at);
        op.outcome = outcome;
        op.version = version;
        Ok(())
    }

    fn pending_mut(&mut self, id: OpId, at: Time) -> Result<&mut Operation, HistoryError> {
        let index = self
            .ops
            .binary_search_by_key(&id, |op| op.id)
            .map_err(|_| HistoryError::UnknownOperation { id })?;
        let op = &mut self.ops[index];
        if op.outcome != Outcome::Info || op.complete.is_some() {
            return Err(HistoryError::AlreadyCompleted { id });
        }
        if at < op.invoke {
            return Err(HistoryError::CompletionBeforeInvocation {
                id,
                invoke: op.invoke,
                complete: at,
            });
        }
        Ok(op)
    }

    /// The operations, in id order.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// The operations, in id order.
    pub fn into_ops(self) -> Vec<Operation> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations grouped by key, each group in id order.
    pub fn by_key(&self) -> std::collections::BTreeMap<&str, Vec<&Operation>> {
        let mut map: std::collections::BTreeMap<&str, Vec<&Operation>> = Default::default();
        for op in &self.ops {
            map.entry(op.key.as_str()).or_default().push(op);
        }
        map
    }

    /// A sub-history of some of these operations (kept in id order).
    pub fn subset<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> History {
        let mut ops: Vec<Operation> = ops.into_iter().cloned().collect();
        ops.sort_by_key(|op| op.id);
        ops.dedup_by_key(|op| op.id);
        History { ops }
    }

    /// Serialize to compact JSON.
    pub fn to_json(&self) -> Result<String, HistoryError> {
        Ok(serde_json::to_string(self)?)
    }

    /// Serialize to indented JSON.
    pub fn to_json_pretty(&self) -> Result<String, HistoryError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parse and check a history saved by [`History::to_json`].
    pub fn from_json(json: &str) -> Result<Self, HistoryError> {
        let file: HistoryFile = serde_json::from_str(json)?;
        History::try_from(file)
    }
}
