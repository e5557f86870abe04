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
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, table: &str, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.ops.push(BatchOp::Put {
            table: table.to_string(),
            key: key.into(),
            value: value.into(),
        });
    }
    pub fn remove(&mut self, table: &str, key: impl Into<Bytes>) {
        self.ops.push(BatchOp::Remove {
            table: table.to_string(),
            key: key.into(),
        });
    }
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
/// Contract (checked by the conformance suite in `tests/`):
/// - tables are created explicitly and survive close/reopen; an operation on
///   a missing table is `StorageError::NoSuchTable`;
/// - `write` is atomic and visible to every later read at once;
/// - a write is durable only after a `sync` that started after it returned;
///   `close` syncs;
/// - `scan` returns keys in ascending byte order.
pub trait Storage: Send + Sync + 'static {
    /// Creates a table; creating one that exists is not an error.
    fn create_table(&self, table: &str) -> StorageResult<()>;
    /// Drops a table and all its data; dropping a missing one is not an error.
    fn drop_table(&self, table: &str) -> StorageResult<()>;
    /// Names of all tables, sorted.
    fn tables(&self) -> StorageResult<Vec<String>>;
    fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>>;
    fn write(&self, batch: Batch) -> StorageResult<()>;
    /// Up to `limit` entries with keys in `(start, end)`, ascending.
    fn scan(
        &self,
        table: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<ScanItem>>;
    /// Makes every write that returned before this call durable (fsync).
    fn sync(&self) -> StorageResult<()>;
    fn stats(&self, table: &str) -> StorageResult<TableStats>;
}
