//! The storage trait every engine implements.

use std::ops::Bound;

use bytes::Bytes;

use crate::error::StorageResult;

/// One change in a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        table: String,
        key: Bytes,
        value: Bytes,
    },
    /// Removes the key physically. Logical deletes are tombstone records
    /// written with `Put`; this is for purging them and for internal tables.
    Remove { table: String, key: Bytes },
}

/// Changes applied atomically: after a crash either all or none are there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<BatchOp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a put of `key` → `value` into `table`.
    pub fn put(&mut self, table: &str, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.ops.push(BatchOp::Put {
            table: table.to_string(),
            key: key.into(),
            value: value.into(),
        });
    }
    /// Adds a physical removal of `key` from `table`.
    pub fn remove(&mut self, table: &str, key: impl Into<Bytes>) {
        self.ops.push(BatchOp::Remove {
            table: table.to_string(),
            key: key.into(),
        });
    }
    /// True when the batch holds no ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value from a scan.
pub type ScanItem = (Bytes, Bytes);

/// Sizes of one table, for metrics and INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Approximate number of keys (may count overwritten and removed keys
    /// not yet compacted away).
    pub approximate_keys: u64,
    /// Bytes on disk (0 for the memory engine).
    pub disk_bytes: u64,
}

/// Named tables of byte keys and byte values, sorted by key.
///
/// Contract (checked by the conformance suite in `testkit::conformance`, run for
/// every engine by `cargo test -p fulcrum-storage`):
/// - tables are created explicitly and survive close/reopen; an operation on
///   a missing table is `StorageError::NoSuchTable`; table names are any
///   non-empty UTF-8 string up to [`crate::MAX_TABLE_NAME_LEN`] bytes
///   (`StorageError::BadTableName` otherwise);
/// - table creation and removal (DDL) are durable when the call returns, in
///   every engine; dropping a table also discards its unsynced writes;
/// - keys are any byte string from empty up to [`crate::MAX_KEY_LEN`] bytes,
///   values any byte string up to [`crate::MAX_VALUE_LEN`] bytes
///   (`KeyTooLarge` / `ValueTooLarge` otherwise);
/// - `write` is atomic (all ops or none, also across tables and across a
///   crash) and visible to every later read at once; when a batch touches one
///   key several times, the last op wins; a batch that fails validation
///   (missing table, oversized key or value) changes nothing;
/// - a write is durable only after a `sync` that started after it returned;
///   `close` syncs;
/// - `scan` returns keys in ascending byte order; an empty or inverted range
///   yields nothing;
/// - after `close` every operation fails with `StorageError::Closed`.
pub trait Storage: Send + Sync + 'static {
    /// Creates a table; creating one that exists is not an error.
    ///
    /// # Errors
    /// `BadTableName`, `Closed`, or the engine's `Io`/`Engine` failure.
    fn create_table(&self, table: &str) -> StorageResult<()>;
    /// Drops a table and all its data; dropping a missing one is not an error.
    ///
    /// # Errors
    /// `BadTableName`, `Closed`, or the engine's `Io`/`Engine` failure.
    fn drop_table(&self, table: &str) -> StorageResult<()>;
    /// Names of all tables, sorted.
    ///
    /// # Errors
    /// `Closed`.
    fn tables(&self) -> StorageResult<Vec<String>>;
    /// The value of `key` in `table`, if any.
    ///
    /// # Errors
    /// `NoSuchTable`, `KeyTooLarge`, `Closed`, or a read failure.
    fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>>;
    /// Applies the batch atomically; does not wait for durability.
    ///
    /// # Errors
    /// `NoSuchTable` (naming the first missing table in batch order),
    /// `KeyTooLarge`, `ValueTooLarge` — in these cases nothing was applied —
    /// `Closed`, `Poisoned`, or the engine's `Io`/`Engine` failure.
    fn write(&self, batch: Batch) -> StorageResult<()>;
    /// Up to `limit` entries with keys in `(start, end)`, ascending.
    ///
    /// # Errors
    /// `NoSuchTable`, `Closed`, or a read failure.
    fn scan(
        &self,
        table: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<ScanItem>>;
    /// Makes every write that returned before this call durable (fsync).
    ///
    /// # Errors
    /// `Closed`, `Poisoned`, or the fsync's `Io` failure. A failed sync is
    /// fatal (see [`crate::GroupCommit`]): do not retry it.
    fn sync(&self) -> StorageResult<()>;
    /// Approximate size of a table.
    ///
    /// # Errors
    /// `NoSuchTable`, `Closed`.
    fn stats(&self, table: &str) -> StorageResult<TableStats>;
    /// Syncs, then releases the engine's resources (files, directory lock,
    /// background threads) so the same directory or disk can be opened again
    /// in this process. Later calls on this handle fail with
    /// `StorageError::Closed`; closing twice is not an error.
    ///
    /// The default only syncs, for test doubles that hold no resources.
    ///
    /// # Errors
    /// The final sync's error; the handle is closed regardless.
    fn close(&self) -> StorageResult<()> {
        self.sync()
    }
}
