//! Compact construction of whole histories, mostly for tests.
//!
//! ```
//! use fulcrum_check::{History, Op};
//!
//! let history = History::builder()
//!     .ok(1, "x", Op::Write(1), 0, 10)
//!     .ok(2, "x", Op::Read(Some(1)), 5, 15)
//!     .info(3, "x", Op::Write(2), 12)
//!     .build()
//!     .unwrap();
//! assert_eq!(history.len(), 3);
//! ```

use crate::error::HistoryError;
use crate::history::{ClientId, History, Key, Op, Operation, Outcome, Time};

/// Builds a [`History`] one finished operation at a time; ids are assigned in
/// call order. Mistakes (completion before invocation) surface from
/// [`HistoryBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct HistoryBuilder {
    ops: Vec<Operation>,
}

impl HistoryBuilder {
    /// Add any operation.
    pub fn op(
        mut self,
        client: ClientId,
        key: impl Into<Key>,
        op: Op,
        invoke: Time,
        complete: Option<Time>,
        outcome: Outcome,
    ) -> Self {
        let id = self.ops.len() as u64;
        self.ops.push(Operation {
            id,
            client,
            key: key.into(),
            op,
            invoke,
            complete,
            outcome,
            version: None,
        });
        self
    }

    /// Add an acknowledged operation.
    pub fn ok(
        self,
        client: ClientId,
        key: impl Into<Key>,
        op: Op,
        invoke: Time,
        complete: Time,
    ) -> Self {
        self.op(client, key, op, invoke, Some(complete), Outcome::Ok)
    }

    /// Add an operation that definitely did not happen.
    pub fn fail(
        self,
        client: ClientId,
        key: impl Into<Key>,
        op: Op,
        invoke: Time,
        complete: Time,
    ) -> Self {
        self.op(client, key, op, invoke, Some(complete), Outcome::Fail)
    }

    /// Add an operation with unknown outcome that never returned.
    pub fn info(self, client: ClientId, key: impl Into<Key>, op: Op, invoke: Time) -> Self {
        self.op(client, key, op, invoke, None, Outcome::Info)
    }

    /// Add an operation with unknown outcome that the client gave up on at
    /// `gave_up`.
    pub fn info_until(
        self,
        client: ClientId,
        key: impl Into<Key>,
        op: Op,
        invoke: Time,
        gave_up: Time,
    ) -> Self {
        self.op(client, key, op, invoke, Some(gave_up), Outcome::Info)
    }

    /// Set the store-reported version of the operation added last.
    pub fn version(mut self, version: u64) -> Self {
        if let Some(last) = self.ops.last_mut() {
            last.version = Some(version);
        }
        self
    }

    /// Check and finish.
    pub fn build(self) -> Result<History, HistoryError> {
        History::from_ops(self.ops)
    }
}
