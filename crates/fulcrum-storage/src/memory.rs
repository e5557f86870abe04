//! [`MemoryStorage`]: an in-memory engine for tests and simulation (never
//! the product's default) that models a disk.
//!
//! Responsibilities and invariants:
//! - A [`MemoryDisk`] is the "disk": the durable state only. It is a cheap,
//!   cloneable handle, so a test can keep it while engines over it are
//!   opened, closed, crashed and reopened.
//! - A [`MemoryStorage`] is one open engine over a disk. It holds the live
//!   state (what reads see) and the log of batches written since the last
//!   `sync` — the unsynced writes. `sync` applies that log to the disk.
//! - DDL (`create_table`, `drop_table`) is durable on return, as in
//!   [`crate::FjallStorage`]; dropping a table also removes its ops from the
//!   unsynced log.
//! - `close` (and dropping the engine) is a clean shutdown: it syncs.
//!   [`MemoryStorage::crash`] is a power loss: the unsynced log is lost.
//!   [`MemoryStorage::crash_keeping`] keeps a prefix of it, as when the OS
//!   had already written some journal pages; either way whole batches
//!   survive or vanish, never parts of one.
//! - A disk can be open in one engine at a time, like a locked directory;
//!   `close`/`crash`/drop release it.
//! - Keys, values and table names obey the same limits as fjall, so
//!   simulations fail where production would.
//!
//! Lock order: the engine's state lock, then the disk's lock.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::error::{StorageError, StorageResult};
use crate::traits::{Batch, BatchOp, ScanItem, Storage, TableStats};
use crate::validate;

type Table = BTreeMap<Bytes, Bytes>;

/// The durable state of a simulated disk; clone it to keep a handle across
/// engine restarts.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    inner: Arc<Mutex<DiskState>>,
}

#[derive(Default)]
struct DiskState {
    tables: BTreeMap<String, Table>,
    /// An engine has this disk open.
    in_use: bool,
}

impl fmt::Debug for MemoryDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let disk = self.inner.lock();
        f.debug_struct("MemoryDisk")
            .field("tables", &disk.tables.len())
            .field("in_use", &disk.in_use)
            .finish()
    }
}

impl MemoryDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// True while an engine has this disk open.
    pub fn is_open(&self) -> bool {
        self.inner.lock().in_use
    }

    /// Names of the tables on the disk (durable state), sorted.
    pub fn durable_tables(&self) -> Vec<String> {
        self.inner.lock().tables.keys().cloned().collect()
    }

    /// The durable value of a key, bypassing any engine: what a crash right
    /// now would leave.
    pub fn durable_get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
        self.inner.lock().tables.get(table)?.get(key).cloned()
    }
}

/// In-memory [`Storage`] over a [`MemoryDisk`].
pub struct MemoryStorage {
    disk: MemoryDisk,
    /// `None` once closed or crashed.
    state: RwLock<Option<Live>>,
}

struct Live {
    tables: BTreeMap<String, Table>,
    /// Batches written since the last sync, oldest first (after "last op
    /// wins"), without ops on dropped tables.
    unsynced: Vec<Vec<BatchOp>>,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `try_read`: Debug may run while this thread holds the lock.
        let Some(state) = self.state.try_read() else {
            return f.debug_struct("MemoryStorage").finish_non_exhaustive();
        };
        f.debug_struct("MemoryStorage")
            .field("open", &state.is_some())
            .field("tables", &state.as_ref().map(|l| l.tables.len()))
            .field(
                "unsynced_batches",
                &state.as_ref().map(|l| l.unsynced.len()),
            )
            .finish()
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// Same key limit as [`crate::FjallStorage::MAX_KEY_LEN`].
    pub const MAX_KEY_LEN: usize = crate::MAX_KEY_LEN;
    /// Same value limit as [`crate::FjallStorage::MAX_VALUE_LEN`].
    pub const MAX_VALUE_LEN: usize = crate::MAX_VALUE_LEN;

    /// An engine over a new, empty disk (see [`MemoryStorage::disk`]).
    pub fn new() -> Self {
        let disk = MemoryDisk::new();
        disk.inner.lock().in_use = true;
        MemoryStorage {
            disk,
            state: RwLock::new(Some(Live {
                tables: BTreeMap::new(),
                unsynced: Vec::new(),
            })),
        }
    }

    /// Opens an engine over `disk`, seeing exactly its durable state.
    ///
    /// # Errors
    /// `StorageError::Engine` if another engine has the disk open (as a real
    /// engine's directory lock would refuse).
    pub fn open(disk: &MemoryDisk) -> StorageResult<MemoryStorage> {
        let tables = {
            let mut state = disk.inner.lock();
            if state.in_use {
                return Err(StorageError::Engine {
                    op: "open",
                    message: "the memory disk is already open in another engine".to_string(),
                });
            }
            state.in_use = true;
            state.tables.clone()
        };
        Ok(MemoryStorage {
            disk: disk.clone(),
            state: RwLock::new(Some(Live {
                tables,
                unsynced: Vec::new(),
            })),
        })
    }

    /// The disk under this engine.
    pub fn disk(&self) -> MemoryDisk {
        self.disk.clone()
    }

    /// Simulates a power loss: every write not yet synced is lost, the disk
    /// is released, and this engine is closed (later calls fail with
    /// `StorageError::Closed`). Reopen with [`MemoryStorage::open`].
    pub fn crash(&self) {
        self.crash_keeping(0);
    }

    /// Like [`MemoryStorage::crash`], but the oldest `batches` unsynced
    /// batches reached the disk anyway (the OS had written them); the rest
    /// are lost. Whole batches only: a batch is never split.
    pub fn crash_keeping(&self, batches: usize) {
        let mut state = self.state.write();
        if let Some(live) = state.take() {
            let mut disk = self.disk.inner.lock();
            for ops in live.unsynced.iter().take(batches) {
                apply(&mut disk.tables, ops);
            }
            disk.in_use = false;
        }
    }

    /// Number of batches written since the last sync (0 when closed).
    pub fn unsynced_batches(&self) -> usize {
        self.state.read().as_ref().map_or(0, |l| l.unsynced.len())
    }

    fn sync_locked(&self, live: &mut Live) {
        let mut disk = self.disk.inner.lock();
        for ops in live.unsynced.drain(..) {
            apply(&mut disk.tables, &ops);
        }
    }
}

fn apply(tables: &mut BTreeMap<String, Table>, ops: &[BatchOp]) {
    for op in ops {
        match op {
            BatchOp::Put { table, key, value } => {
                if let Some(t) = tables.get_mut(table) {
                    t.insert(key.clone(), value.clone());
                }
            }
            BatchOp::Remove { table, key } => {
                if let Some(t) = tables.get_mut(table) {
                    t.remove(key);
                }
            }
        }
    }
}

impl Live {
    fn table(&self, table: &str) -> StorageResult<&Table> {
        self.tables
            .get(table)
            .ok_or_else(|| StorageError::NoSuchTable(table.to_string()))
    }
}

impl Storage for MemoryStorage {
    fn create_table(&self, table: &str) -> StorageResult<()> {
        validate::table_name(table)?;
        let mut state = self.state.write();
        let live = state.as_mut().ok_or(StorageError::Closed)?;
        if !live.tables.contains_key(table) {
            live.tables.insert(table.to_string(), Table::new());
            self.disk
                .inner
                .lock()
                .tables
                .insert(table.to_string(), Table::new());
        }
        Ok(())
    }

    fn drop_table(&self, table: &str) -> StorageResult<()> {
        validate::table_name(table)?;
        let mut state = self.state.write();
        let live = state.as_mut().ok_or(StorageError::Closed)?;
        if live.tables.remove(table).is_some() {
            self.disk.inner.lock().tables.remove(table);
            for ops in &mut live.unsynced {
                ops.retain(|op| validate::op_table(op) != table);
            }
            live.unsynced.retain(|ops| !ops.is_empty());
        }
        Ok(())
    }

    fn tables(&self) -> StorageResult<Vec<String>> {
        let state = self.state.read();
        let live = state.as_ref().ok_or(StorageError::Closed)?;
        Ok(live.tables.keys().cloned().collect())
    }

    fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>> {
        let state = self.state.read();
        let live = state.as_ref().ok_or(StorageError::Closed)?;
        let table = live.table(table)?;
        validate::key(key)?;
        Ok(table.get(key).cloned())
    }

    fn write(&self, batch: Batch) -> StorageResult<()> {
        validate::batch_sizes(&batch)?;
        let mut state = self.state.write();
        let live = state.as_mut().ok_or(StorageError::Closed)?;
        for op in &batch.ops {
            live.table(validate::op_table(op))?;
        }
        let ops = validate::last_op_wins(batch.ops);
        if ops.is_empty() {
            return Ok(());
        }
        apply(&mut live.tables, &ops);
        live.unsynced.push(ops);
        Ok(())
    }

    fn scan(
        &self,
        table: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<ScanItem>> {
        let state = self.state.read();
        let live = state.as_ref().ok_or(StorageError::Closed)?;
        let table = live.table(table)?;
        // `BTreeMap::range` panics on inverted ranges.
        if limit == 0 || validate::range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        Ok(table
            .range::<[u8], _>((start, end))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn sync(&self) -> StorageResult<()> {
        let mut state = self.state.write();
        let live = state.as_mut().ok_or(StorageError::Closed)?;
        self.sync_locked(live);
        Ok(())
    }

    fn stats(&self, table: &str) -> StorageResult<TableStats> {
        let state = self.state.read();
        let live = state.as_ref().ok_or(StorageError::Closed)?;
        let table = live.table(table)?;
        Ok(TableStats {
            approximate_keys: u64::try_from(table.len()).unwrap_or(u64::MAX),
            disk_bytes: 0,
        })
    }

    fn close(&self) -> StorageResult<()> {
        let mut state = self.state.write();
        if let Some(mut live) = state.take() {
            self.sync_locked(&mut live);
            self.disk.inner.lock().in_use = false;
        }
        Ok(())
    }
}

impl Drop for MemoryStorage {
    /// Dropping an open engine is a clean shutdown, like fjall's (which
    /// syncs its journal on drop).
    fn drop(&mut self) {
        // Infallible for this engine.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(s: &MemoryStorage, key: &str) {
        let mut batch = Batch::new();
        batch.put("t", key.to_string(), "v");
        batch.put("u", key.to_string(), "v");
        s.write(batch).unwrap();
    }

    fn keys(s: &MemoryStorage, table: &str) -> Vec<Bytes> {
        s.scan(table, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn crash_keeping_keeps_a_prefix_of_whole_batches() {
        let s = MemoryStorage::new();
        s.create_table("t").unwrap();
        s.create_table("u").unwrap();
        put(&s, "a");
        s.sync().unwrap();
        for k in ["b", "c", "d"] {
            put(&s, k);
        }
        assert_eq!(s.unsynced_batches(), 3);
        let disk = s.disk();
        assert_eq!(disk.durable_get("t", b"b"), None);
        s.crash_keeping(2);
        assert!(!disk.is_open());
        assert_eq!(s.unsynced_batches(), 0);
        let s = MemoryStorage::open(&disk).unwrap();
        assert_eq!(keys(&s, "t"), vec!["a", "b", "c"]);
        assert_eq!(keys(&s, "u"), vec!["a", "b", "c"]);
    }

    #[test]
    fn a_disk_opens_in_one_engine_at_a_time() {
        let s = MemoryStorage::new();
        let disk = s.disk();
        assert!(disk.is_open());
        assert!(matches!(
            MemoryStorage::open(&disk),
            Err(StorageError::Engine { op: "open", .. })
        ));
        s.close().unwrap();
        let s = MemoryStorage::open(&disk).unwrap();
        s.crash();
        let s = MemoryStorage::open(&disk).unwrap();
        drop(s);
        assert!(!disk.is_open());
        MemoryStorage::open(&disk).unwrap();
    }

    #[test]
    fn drop_is_a_clean_shutdown() {
        let s = MemoryStorage::new();
        let disk = s.disk();
        s.create_table("t").unwrap();
        s.create_table("u").unwrap();
        put(&s, "a");
        drop(s);
        assert!(disk.durable_get("t", b"a").is_some());
        assert_eq!(disk.durable_tables(), vec!["t", "u"]);
    }

    #[test]
    fn dropping_a_table_forgets_its_unsynced_ops() {
        let s = MemoryStorage::new();
        s.create_table("t").unwrap();
        s.create_table("u").unwrap();
        put(&s, "a");
        let mut batch = Batch::new();
        batch.put("t", "only-t", "v");
        s.write(batch).unwrap();
        assert_eq!(s.unsynced_batches(), 2);
        s.drop_table("t").unwrap();
        // The batch that only touched `t` is gone; the other keeps its `u` op.
        assert_eq!(s.unsynced_batches(), 1);
        s.create_table("t").unwrap();
        let disk = s.disk();
        s.crash_keeping(usize::MAX);
        let s = MemoryStorage::open(&disk).unwrap();
        assert_eq!(keys(&s, "t"), Vec::<Bytes>::new());
        assert_eq!(keys(&s, "u"), vec!["a"]);
    }
}
