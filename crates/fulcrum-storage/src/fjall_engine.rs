//! [`FjallStorage`]: the on-disk engine, a thin layer over a fjall 3
//! database (journal → memtables → SSTables, one LSM tree per keyspace).
//!
//! Responsibilities and invariants:
//! - **One table = one fjall keyspace.** Table names are escaped into fjall's
//!   keyspace-name alphabet (see [`encode_table_name`]); the escaping is part
//!   of the on-disk format.
//! - **Keys are encoded order-preservingly** so that the empty key works
//!   (fjall rejects it): keys that are empty or start with `0x00` get one
//!   extra `0x00` in front, all others are stored as they are (see
//!   [`encode_key`]). Bounds of scans go through the same encoding.
//! - **`write` = one fjall write batch**, committed with
//!   `PersistMode::Buffer`: the batch is a single checksummed journal entry
//!   (all or nothing after a crash) and its bytes are handed to the OS
//!   (`write(2)` out of fjall's 8 KiB `BufWriter`) before `write` returns, so
//!   a process crash loses nothing; only a power loss or OS crash can lose
//!   writes not yet synced. `write` never fsyncs.
//! - **`sync` = `fdatasync` of the active journal, outside fjall's journal
//!   lock.** fjall's own `persist(SyncData)` holds the journal writer mutex
//!   for the whole `fdatasync`, and every batch commit takes that mutex: all
//!   writers (tokio workers) would stall for the length of each fsync. So
//!   `sync` instead finds the active journal — the `<id>.jnl` file with the
//!   highest id in the data directory, as fjall names and recovers them —
//!   and `fdatasync`s its own descriptor of that file, while commits go on.
//!   Why that covers every write that returned before `sync` started: a
//!   returned write's bytes were handed to the OS (`write(2)`) in the
//!   journal that was active then. If that is still the newest file, the
//!   `fdatasync` (per inode, whatever descriptor) makes them durable. If a
//!   newer file exists, fjall created it in `rotate`, which first fsyncs the
//!   sealed journal (`SyncAll`) and, after creating the new file, fsyncs the
//!   directory — all under the journal lock, before any write can reach the
//!   new file. Journal files are preallocated, and `fdatasync` also flushes
//!   the block allocation a write needed.
//!   fjall's layout is pinned by the exact fjall version in `Cargo.toml`;
//!   `sync_follows_journal_rotation` checks it.
//! - **`sync` zero-fills the active journal ahead of fjall's writer**
//!   (`journal_zero.rs`), so that most `fdatasync`s flush data only, not
//!   the inode's block map; the zeros are written holding the snapshot
//!   fence exclusively, past the journal's data and below its length.
//! - **Reads use a fjall snapshot** (the highest *published* sequence number),
//!   so a concurrent reader sees a batch entirely or not at all.
//! - **DDL is durable on return**: fjall records keyspace creation and
//!   deletion by writing and fsyncing SSTables of its meta keyspace, not
//!   through the journal. Journal entries of a dropped keyspace are skipped
//!   at recovery, so dropping a table also discards its unsynced writes.
//! - **Keyspace ids are never reused** (works around a fjall 3.1 bug): after
//!   a reopen fjall restarts its id counter at the highest keyspace folder
//!   present + 1, so the id of a dropped keyspace can be handed out again,
//!   and the dropped keyspace's tombstones in fjall's meta keyspace then hide
//!   the new keyspace at the next reopen (its folder is deleted as
//!   unreferenced: data loss). `drop_table` therefore keeps a *fence*: an
//!   empty internal keyspace (`#fence-N`, invisible to callers) that is
//!   re-created before every drop, so its id is above every dropped id and
//!   its folder keeps fjall's counter above them after any restart. Order:
//!   create fence N+1, delete the table, delete fence N — a crash anywhere
//!   in between leaves a fence above every dropped id.
//! - A `parking_lot::RwLock` guards the table map: data operations share it,
//!   DDL and `close` take it exclusively, so no write can target a keyspace
//!   that is being deleted and `close` waits for in-flight operations.
//! - Scans see whole batches because of a second lock (`snapshot_fence`):
//!   a write holds it shared while fjall commits the batch, a scan takes it
//!   exclusively just to open its snapshot. Without it, fjall 3.1 (3.1.13)
//!   now and then let a snapshot opened while a batch was being applied
//!   see part of that batch: the conformance test
//!   `concurrent_readers_see_whole_batches` failed 9 times in 400 runs on
//!   two busy cores, and never in 700 with the lock. Point reads need no
//!   fence (one key is never half a batch, and a batch's keys appear in
//!   order).
//!
//! Not fully controllable here: fjall fsyncs the journal by itself before
//! each memtable flush, on journal rotation and when the database is
//! dropped. Under the `never` fsync policy the node therefore still fsyncs
//! now and then; it only never waits for an fsync on the write path.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fjall::{
    Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode, Readable, Slice,
};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{StorageError, StorageResult};
use crate::journal_zero::{self, ZeroFill};
use crate::traits::{Batch, BatchOp, ScanItem, Storage, TableStats};
use crate::validate;

/// Tunables of [`FjallStorage`].
///
/// The per-table settings (`memtable_bytes`, `blob_threshold`,
/// `blob_file_target_bytes`, `table_target_bytes`,
/// `l0_compaction_threshold`) are stored by fjall when a table is created
/// and apply to that table for good; changing them affects tables created
/// later. `cache_bytes`, `worker_threads` and `journal_compression` apply
/// at every open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FjallConfig {
    /// Block cache shared by all tables, in bytes. fjall recommends 20–25 %
    /// of RAM for a dedicated server. Default 64 MiB (the node sets it from
    /// `cache-mb`).
    pub cache_bytes: u64,
    /// Size a table's memtable may reach before it is sealed and flushed to
    /// an SSTable. Default 32 MiB.
    pub memtable_bytes: u64,
    /// Key-value separation: values of at least this many bytes are moved
    /// into blob files at flush, so compactions do not rewrite them. `None`
    /// keeps every value inline. Default 4 KiB.
    pub blob_threshold: Option<u32>,
    /// Target size of one blob file. Default 64 MiB.
    pub blob_file_target_bytes: u64,
    /// Target size of one SSTable. Default 64 MiB.
    pub table_target_bytes: u64,
    /// Number of L0 runs that triggers a compaction into L1. Default 4.
    pub l0_compaction_threshold: u8,
    /// Background flush/compaction threads; `None` means fjall's default,
    /// min(CPU cores, 4). Must be at least 1.
    pub worker_threads: Option<usize>,
    /// LZ4-compress values of 4 KiB and more in the journal. Default on.
    pub journal_compression: bool,
}

impl Default for FjallConfig {
    fn default() -> Self {
        FjallConfig {
            cache_bytes: 64 * 1024 * 1024,
            memtable_bytes: 32 * 1024 * 1024,
            blob_threshold: Some(4 * 1024),
            blob_file_target_bytes: 64 * 1024 * 1024,
            table_target_bytes: 64 * 1024 * 1024,
            l0_compaction_threshold: 4,
            worker_threads: None,
            journal_compression: true,
        }
    }
}

impl FjallConfig {
    /// Tiny buffers for tests: 32 KiB memtables, 64 KiB SSTables, blob files
    /// from 512-byte values, compaction after 2 L0 runs. Flushes, blob
    /// separation and compactions happen after a few hundred small writes.
    pub fn tiny() -> Self {
        FjallConfig {
            cache_bytes: 1024 * 1024,
            memtable_bytes: 32 * 1024,
            blob_threshold: Some(512),
            blob_file_target_bytes: 1024 * 1024,
            table_target_bytes: 64 * 1024,
            l0_compaction_threshold: 2,
            worker_threads: Some(2),
            journal_compression: true,
        }
    }

    fn keyspace_options(&self) -> KeyspaceCreateOptions {
        let compaction = fjall::compaction::Leveled::default()
            .with_l0_threshold(self.l0_compaction_threshold.max(1))
            .with_table_target_size(self.table_target_bytes.max(1));
        KeyspaceCreateOptions::default()
            .max_memtable_size(self.memtable_bytes)
            .compaction_strategy(Arc::new(compaction))
            .with_kv_separation(self.blob_threshold.map(|threshold| {
                KvSeparationOptions::default()
                    .separation_threshold(threshold)
                    .file_target_size(self.blob_file_target_bytes)
            }))
    }
}

/// The fjall-backed [`Storage`]. Open one per data directory; fjall locks
/// the directory against a second opener.
pub struct FjallStorage {
    path: PathBuf,
    config: FjallConfig,
    /// `None` once closed.
    state: RwLock<Option<Open>>,
    /// The journal file `sync` last fsynced (id, own descriptor, its
    /// zero-filling); also serializes syncs.
    journal: Mutex<Option<(std::fs::File, ZeroFill)>>,
    /// Estimated journal bytes written since open, for zero-filling
    /// (`journal_zero.rs`).
    journal_progress: AtomicU64,
    /// Writes hold it shared while fjall commits a batch; a scan holds it
    /// exclusively while it opens its snapshot, so the snapshot never
    /// lands inside a batch (see the module docs).
    snapshot_fence: RwLock<()>,
}

struct Open {
    db: Database,
    /// Caller-visible table name → keyspace handle.
    tables: BTreeMap<String, Keyspace>,
    /// The newest fence keyspace and its number (see the module docs).
    fence: Option<(u64, Keyspace)>,
}

/// Name prefix of fence keyspaces; `#` never appears in an encoded table
/// name, so fences cannot collide with tables.
const FENCE_PREFIX: &str = "#fence-";

impl fmt::Debug for FjallStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStorage")
            .field("path", &self.path)
            // `try_read`: Debug may run while this thread holds the lock.
            .field("open", &self.state.try_read().map(|s| s.is_some()))
            .finish()
    }
}

impl FjallStorage {
    /// Largest key in bytes (65 534); see [`crate::MAX_KEY_LEN`].
    pub const MAX_KEY_LEN: usize = crate::MAX_KEY_LEN;
    /// Largest value in bytes (1 GiB); see [`crate::MAX_VALUE_LEN`].
    pub const MAX_VALUE_LEN: usize = crate::MAX_VALUE_LEN;

    /// Opens the database in `path`, creating the directory and an empty
    /// database if there is none, and recovering tables and journaled writes
    /// if there is one.
    ///
    /// # Errors
    /// `StorageError::Io` if the directory cannot be created or read;
    /// `StorageError::Engine` if the directory is locked by another open
    /// instance, holds a database of another format version, or recovery
    /// fails.
    pub fn open(path: impl AsRef<Path>, config: FjallConfig) -> StorageResult<FjallStorage> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| StorageError::Io {
            op: "open (create data directory)",
            source,
        })?;
        let mut builder = Database::builder(&path)
            .cache_size(config.cache_bytes)
            .journal_compression(if config.journal_compression {
                fjall::CompressionType::Lz4
            } else {
                fjall::CompressionType::None
            })
            // Flush every committed batch out of fjall's buffer to the OS.
            .manual_journal_persist(false);
        if let Some(n) = config.worker_threads {
            // fjall panics on 0 threads.
            builder = builder.worker_threads(n.max(1));
        }
        let db = builder.open().map_err(|e| fjall_error("open", e))?;

        let mut tables = BTreeMap::new();
        let mut fences = Vec::new();
        for name in db.list_keyspace_names() {
            if let Some(n) = name.strip_prefix(FENCE_PREFIX) {
                if let Ok(n) = n.parse::<u64>() {
                    let fence = db
                        .keyspace(&name, KeyspaceCreateOptions::default)
                        .map_err(|e| fjall_error("open (recover fence)", e))?;
                    fences.push((n, fence));
                    continue;
                }
            }
            let Some(table) = decode_table_name(&name) else {
                tracing::warn!(
                    keyspace = &*name,
                    path = %path.display(),
                    "ignoring a fjall keyspace whose name Fulcrum did not create"
                );
                continue;
            };
            let keyspace = db
                .keyspace(&name, KeyspaceCreateOptions::default)
                .map_err(|e| fjall_error("open (recover table)", e))?;
            tables.insert(table, keyspace);
        }
        // Several fences exist only after a crash in `drop_table`; the
        // newest one (highest number, highest id) suffices.
        fences.sort_by_key(|(n, _)| *n);
        let fence = fences.pop();
        for (_, stale) in fences {
            db.delete_keyspace(stale)
                .map_err(|e| fjall_error("open (delete stale fence)", e))?;
        }
        tracing::debug!(path = %path.display(), tables = tables.len(), "opened fjall storage");
        Ok(FjallStorage {
            path,
            config,
            state: RwLock::new(Some(Open { db, tables, fence })),
            journal: Mutex::new(None),
            journal_progress: AtomicU64::new(0),
            snapshot_fence: RwLock::new(()),
        })
    }

    /// Whether journal `id` (opened as `file`), the active one at an
    /// earlier sync, is still the active one: `<id+1>.jnl` is missing
    /// (checked first) and `file` is still linked, i.e. `<id>.jnl` was not
    /// deleted (checked second, by `statx` on the open descriptor asking
    /// for the link count alone: asking for its times would make the next
    /// journal write dirty the inode again, see `journal_zero.rs`). Two
    /// cheap checks instead of listing the directory on every sync. Why
    /// that suffices: fjall names the journal it rotates to `<id+1>.jnl`,
    /// and deletes sealed journals oldest first (its journal
    /// manager evicts the front of a FIFO queue). Had a rotation away from
    /// `id` happened before the first check, `<id+1>.jnl` would exist then
    /// unless already deleted, and deleting it would have required
    /// deleting `<id>.jnl` first, which the second check would notice. Ids
    /// are never reused. Any doubt (an error) falls back to listing.
    fn still_active(&self, id: u64, file: &std::fs::File) -> bool {
        use rustix::fs::{access, statx, Access, AtFlags, StatxFlags};
        let next = self.path.join(format!("{}.jnl", id + 1));
        matches!(access(&next, Access::EXISTS), Err(rustix::io::Errno::NOENT))
            && statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::NLINK)
                .is_ok_and(|st| st.stx_nlink > 0)
    }

    /// Id of the active journal: the highest `<id>.jnl` in the data
    /// directory (how fjall itself finds it at recovery).
    fn active_journal_id(&self) -> StorageResult<u64> {
        let io = |source| StorageError::Io {
            op: "sync (list journals)",
            source,
        };
        let mut newest = None;
        for entry in std::fs::read_dir(&self.path).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jnl"))
                .and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(id);
        }
        newest.ok_or_else(|| StorageError::Engine {
            op: "sync",
            message: format!("no journal file in {}", self.path.display()),
        })
    }

    /// `fdatasync` of the active journal through this instance's own
    /// descriptor, without fjall's journal lock (see the module docs).
    ///
    /// Before it syncs, it zero-fills the journal ahead of fjall's writer
    /// when due (`journal_zero.rs`), holding the snapshot fence
    /// exclusively so that no batch is being written meanwhile.
    fn sync_active_journal(&self) -> StorageResult<()> {
        let mut journal = self.journal.lock();
        let id = match journal.as_ref() {
            Some((file, zero)) if self.still_active(zero.id(), file) => zero.id(),
            _ => self.active_journal_id()?,
        };
        let progress = self.journal_progress.load(Ordering::Relaxed);
        if journal.as_ref().map(|(_, zero)| zero.id()) != Some(id) {
            let path = self.path.join(format!("{id}.jnl"));
            // Writable for the zeros; never `append` (see `journal_zero`).
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| StorageError::Io {
                    op: "sync (open journal)",
                    source,
                })?;
            *journal = Some((file, ZeroFill::new(id, progress)));
        }
        let (file, zero) = journal.as_mut().expect("set above");
        if zero.due(progress) {
            let _fence = self.snapshot_fence.write();
            zero.fill(file);
        }
        file.sync_data().map_err(|source| StorageError::Io {
            op: "sync (fdatasync journal)",
            source,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration this instance was opened with.
    pub fn config(&self) -> &FjallConfig {
        &self.config
    }
}

impl Open {
    fn table(&self, table: &str) -> StorageResult<&Keyspace> {
        self.tables
            .get(table)
            .ok_or_else(|| StorageError::NoSuchTable(table.to_string()))
    }
}

fn closed<T>() -> StorageResult<T> {
    Err(StorageError::Closed)
}

impl Storage for FjallStorage {
    fn create_table(&self, table: &str) -> StorageResult<()> {
        validate::table_name(table)?;
        let mut state = self.state.write();
        let Some(open) = state.as_mut() else {
            return closed();
        };
        if open.tables.contains_key(table) {
            return Ok(());
        }
        let options = self.config.keyspace_options();
        let keyspace = open
            .db
            .keyspace(&encode_table_name(table), || options)
            .map_err(|e| fjall_error("create_table", e))?;
        open.tables.insert(table.to_string(), keyspace);
        Ok(())
    }

    fn drop_table(&self, table: &str) -> StorageResult<()> {
        validate::table_name(table)?;
        let mut state = self.state.write();
        let Some(open) = state.as_mut() else {
            return closed();
        };
        let Some(keyspace) = open.tables.get(table).cloned() else {
            return Ok(());
        };
        // A new fence first: its id is above the table's (see module docs).
        let number = open.fence.as_ref().map_or(1, |(n, _)| n + 1);
        let new_fence = open
            .db
            .keyspace(&format!("{FENCE_PREFIX}{number}"), || {
                KeyspaceCreateOptions::default().max_memtable_size(64 * 1024)
            })
            .map_err(|e| fjall_error("drop_table (create fence)", e))?;
        let old_fence = open.fence.replace((number, new_fence));
        // fjall deletes the folder once the last handle is gone; the name is
        // unmapped (durably) right away.
        open.db
            .delete_keyspace(keyspace)
            .map_err(|e| fjall_error("drop_table", e))?;
        open.tables.remove(table);
        if let Some((_, old_fence)) = old_fence {
            open.db
                .delete_keyspace(old_fence)
                .map_err(|e| fjall_error("drop_table (delete old fence)", e))?;
        }
        Ok(())
    }

    fn tables(&self) -> StorageResult<Vec<String>> {
        let state = self.state.read();
        let Some(open) = state.as_ref() else {
            return closed();
        };
        Ok(open.tables.keys().cloned().collect())
    }

    fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>> {
        let state = self.state.read();
        let Some(open) = state.as_ref() else {
            return closed();
        };
        let keyspace = open.table(table)?;
        validate::key(key)?;
        let value = open
            .db
            .snapshot()
            .get(keyspace, encode_key(key))
            .map_err(|e| fjall_error("get", e))?;
        Ok(value.map(value_bytes))
    }

    fn write(&self, batch: Batch) -> StorageResult<()> {
        validate::batch_sizes(&batch)?;
        let state = self.state.read();
        let Some(open) = state.as_ref() else {
            return closed();
        };
        // Check every table before dropping overridden ops, so the error
        // names the first missing table in batch order (as in every engine).
        for op in &batch.ops {
            open.table(validate::op_table(op))?;
        }
        let ops = validate::last_op_wins(batch.ops);
        // `Database::batch` commits with `PersistMode::Buffer` because
        // `manual_journal_persist` is off: the batch reaches the OS, unsynced.
        let mut fjall_batch = open.db.batch();
        let mut payload = 0;
        for op in &ops {
            let keyspace = open.table(validate::op_table(op))?;
            match op {
                BatchOp::Put { key, value, .. } => {
                    // Copies the value: a `Bytes` may be a slice of a larger
                    // buffer (a network read), which the memtable must not
                    // pin.
                    fjall_batch.insert(keyspace, &*encode_key(key), Slice::from(&value[..]));
                    payload += key.len() + value.len();
                }
                BatchOp::Remove { key, .. } => {
                    fjall_batch.remove(keyspace, &*encode_key(key));
                    payload += key.len();
                }
            }
        }
        self.journal_progress.fetch_add(
            journal_zero::estimate(ops.len(), payload),
            Ordering::Relaxed,
        );
        let _fence = self.snapshot_fence.read();
        fjall_batch.commit().map_err(|e| fjall_error("write", e))
    }

    fn scan(
        &self,
        table: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<ScanItem>> {
        let state = self.state.read();
        let Some(open) = state.as_ref() else {
            return closed();
        };
        let keyspace = open.table(table)?;
        if limit == 0 || validate::range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let range = (encode_bound(start), encode_bound(end));
        let snapshot = {
            let _fence = self.snapshot_fence.write();
            open.db.snapshot()
        };
        let mut items = Vec::new();
        for guard in snapshot.range::<Slice, _>(keyspace, range).take(limit) {
            let (key, value) = guard.into_inner().map_err(|e| fjall_error("scan", e))?;
            items.push((decode_key(&key), value_bytes(value)));
        }
        Ok(items)
    }

    fn sync(&self) -> StorageResult<()> {
        {
            // Not held during the fsync: DDL and `close` need the lock
            // exclusively, and a waiting exclusive locker blocks new writes.
            let state = self.state.read();
            if state.is_none() {
                return closed();
            }
        }
        self.sync_active_journal()
    }

    fn stats(&self, table: &str) -> StorageResult<TableStats> {
        let state = self.state.read();
        let Some(open) = state.as_ref() else {
            return closed();
        };
        let keyspace = open.table(table)?;
        Ok(TableStats {
            approximate_keys: u64::try_from(keyspace.approximate_len()).unwrap_or(u64::MAX),
            disk_bytes: keyspace.disk_space(),
        })
    }

    fn close(&self) -> StorageResult<()> {
        let mut state = self.state.write();
        let Some(open) = state.take() else {
            return Ok(());
        };
        let synced = open
            .db
            .persist(PersistMode::SyncData)
            .map_err(|e| fjall_error("close", e));
        // Dropping the last handles stops fjall's workers (waiting for a
        // running flush) and unlocks the directory.
        drop(open);
        tracing::debug!(path = %self.path.display(), "closed fjall storage");
        synced
    }
}

fn fjall_error(op: &'static str, error: fjall::Error) -> StorageError {
    match error {
        fjall::Error::Io(source) => StorageError::Io { op, source },
        fjall::Error::Poisoned => StorageError::Poisoned(format!(
            "fjall refused {op} because an earlier journal write or fsync failed"
        )),
        fjall::Error::Locked => StorageError::Engine {
            op,
            message: "the data directory is locked by another open instance".to_string(),
        },
        other => StorageError::Engine {
            op,
            message: other.to_string(),
        },
    }
}

/// Stored form of a key: keys that are empty or start with `0x00` get one
/// `0x00` prepended; all others are unchanged.
///
/// This is an order-preserving injection from all byte strings into
/// non-empty ones: `""` ↦ `[0]` sorts below every `[0, 0, ..]` (the images of
/// keys starting with `0x00`, in their original order), which sort below
/// every key starting with `0x01..=0xFF` (unchanged). So a range over the
/// stored keys between encoded bounds holds exactly the encoded keys of the
/// original range.
fn encode_key(key: &[u8]) -> Cow<'_, [u8]> {
    match key.first() {
        Some(&first) if first != 0 => Cow::Borrowed(key),
        _ => {
            let mut stored = Vec::with_capacity(key.len() + 1);
            stored.push(0);
            stored.extend_from_slice(key);
            Cow::Owned(stored)
        }
    }
}

/// Inverse of [`encode_key`].
fn decode_key(stored: &[u8]) -> Bytes {
    match stored.split_first() {
        Some((0, rest)) => Bytes::copy_from_slice(rest),
        _ => Bytes::copy_from_slice(stored),
    }
}

fn encode_bound(bound: Bound<&[u8]>) -> Bound<Slice> {
    match bound {
        Bound::Included(key) => Bound::Included(Slice::from(&*encode_key(key))),
        Bound::Excluded(key) => Bound::Excluded(Slice::from(&*encode_key(key))),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Hands a fjall value out as `Bytes` without copying it.
fn value_bytes(value: Slice) -> Bytes {
    Bytes::from_owner(value)
}

fn is_plain_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// fjall keyspace name of a table: bytes of `[A-Za-z0-9_.-]` stay, every
/// other byte becomes `$` and two upper-case hex digits. At most
/// 3 × [`crate::MAX_TABLE_NAME_LEN`] = 240 bytes, under fjall's 255.
fn encode_table_name(table: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut name = String::with_capacity(table.len());
    for &b in table.as_bytes() {
        if is_plain_name_byte(b) {
            name.push(char::from(b));
        } else {
            name.push('$');
            name.push(char::from(HEX[usize::from(b >> 4)]));
            name.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    name
}

/// Inverse of [`encode_table_name`]; `None` for names it cannot produce.
fn decode_table_name(name: &str) -> Option<String> {
    fn hex(d: u8) -> Option<u8> {
        match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'A'..=b'F' => Some(d - b'A' + 10),
            _ => None,
        }
    }
    let mut bytes = Vec::with_capacity(name.len());
    let mut input = name.as_bytes().iter().copied();
    while let Some(b) = input.next() {
        if is_plain_name_byte(b) {
            bytes.push(b);
        } else if b == b'$' {
            let byte = hex(input.next()?)? << 4 | hex(input.next()?)?;
            if is_plain_name_byte(byte) {
                return None; // not canonical
            }
            bytes.push(byte);
        } else {
            return None;
        }
    }
    let table = String::from_utf8(bytes).ok()?;
    validate::table_name(&table).ok()?;
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_round_trip() {
        for table in [
            "data.default",
            "meta",
            "expiry",
            "a b/c",
            "$x#",
            "ключ",
            "_-.",
        ] {
            let name = encode_table_name(table);
            assert!(name.len() <= 255);
            assert!(name.bytes().all(|b| is_plain_name_byte(b) || b == b'$'));
            assert_eq!(decode_table_name(&name).as_deref(), Some(table));
        }
        assert_eq!(encode_table_name("data.default"), "data.default");
        assert_eq!(encode_table_name("a b"), "a$20b");
        let longest = "€".repeat(crate::MAX_TABLE_NAME_LEN / 3);
        assert!(encode_table_name(&longest).len() <= 255);
        assert_eq!(decode_table_name("$61"), None, "non-canonical");
        assert_eq!(decode_table_name("#internal"), None);
        assert_eq!(decode_table_name("$4"), None);
    }

    #[test]
    fn key_encoding_preserves_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\x01",
            b"\x00\xff",
            b"\x01",
            b"a",
            b"\xff",
            b"\xff\x00",
        ];
        for w in keys.windows(2) {
            assert!(encode_key(w[0]) < encode_key(w[1]), "{:?}", w);
        }
        for k in keys {
            assert!(!encode_key(k).is_empty());
            assert_eq!(&decode_key(&encode_key(k))[..], k);
        }
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;

    fn raw_keyspace_names(dir: &Path) -> Vec<String> {
        let db = Database::builder(dir).open().unwrap();
        let mut names: Vec<String> = db
            .list_keyspace_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn one_hidden_fence_remains_after_drops() {
        let dir = tempfile::tempdir().unwrap();
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        for round in 0..3 {
            s.create_table("a").unwrap();
            s.create_table("b").unwrap();
            s.drop_table("a").unwrap();
            assert_eq!(s.tables().unwrap(), vec!["b"], "round {round}");
        }
        s.close().unwrap();
        assert_eq!(raw_keyspace_names(dir.path()), vec!["#fence-3", "b"]);
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        assert_eq!(s.tables().unwrap(), vec!["b"]);
        s.drop_table("b").unwrap();
        s.close().unwrap();
        assert_eq!(raw_keyspace_names(dir.path()), vec!["#fence-4"]);
    }

    #[test]
    fn stale_fences_and_foreign_keyspaces_are_handled_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As left by a crash inside `drop_table`, plus a keyspace some
            // other program created.
            let db = Database::builder(dir.path()).open().unwrap();
            for name in ["#fence-1", "#fence-2", "not a table!", "t"] {
                db.keyspace(name, KeyspaceCreateOptions::default).unwrap();
            }
        }
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        assert_eq!(s.tables().unwrap(), vec!["t"]);
        s.close().unwrap();
        assert_eq!(
            raw_keyspace_names(dir.path()),
            vec!["#fence-2", "not a table!", "t"]
        );
    }

    #[test]
    fn a_deleted_journal_is_not_active_even_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        let path = dir.path().join("50.jnl");
        let held = std::fs::File::create(&path).unwrap();
        assert!(s.still_active(50, &held));
        std::fs::remove_file(&path).unwrap();
        assert!(
            !s.still_active(50, &held),
            "51.jnl is missing, but 50.jnl is gone too"
        );
        s.close().unwrap();
    }

    /// `sync` relies on fjall's journal layout: `<id>.jnl` files in the
    /// data directory, the active one with the highest id, a new one per
    /// rotation. If a fjall upgrade changes that, this fails.
    #[test]
    fn sync_follows_journal_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        s.create_table("t").unwrap();
        s.sync().unwrap();
        let first = s.journal.lock().as_ref().map(|(_, zero)| zero.id());
        assert_eq!(first, Some(0), "a fresh database journals into 0.jnl");
        let journal0 = std::fs::File::open(dir.path().join("0.jnl")).unwrap();
        assert!(s.still_active(0, &journal0));
        // fjall rotates the journal at a flush once it holds over 64 MB:
        // write incompressible 512 KiB values until it did.
        let mut n = 0u32;
        while s.active_journal_id().unwrap() == 0 {
            let value = incompressible(512 * 1024, u64::from(n));
            let mut batch = Batch::new();
            batch.put("t", n.to_be_bytes().to_vec(), value);
            s.write(batch).unwrap();
            n += 1;
            assert!(n < 1000, "the journal never rotated");
        }
        assert!(!s.still_active(0, &journal0), "0.jnl was rotated away from");
        s.sync().unwrap();
        let synced = s
            .journal
            .lock()
            .as_ref()
            .map(|(_, zero)| zero.id())
            .unwrap();
        assert!(synced > 0);
        assert_eq!(synced, s.active_journal_id().unwrap());
        let active = std::fs::File::open(dir.path().join(format!("{synced}.jnl"))).unwrap();
        assert!(s.still_active(synced, &active));
        assert!(dir.path().join(format!("{synced}.jnl")).is_file());
        s.close().unwrap();
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        assert_eq!(
            s.scan("t", Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .unwrap()
                .len(),
            n as usize
        );
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        match FjallStorage::open(dir.path(), FjallConfig::tiny()) {
            Err(StorageError::Engine { message, .. }) => assert!(message.contains("locked")),
            other => panic!("expected a lock error, got {other:?}"),
        }
        s.close().unwrap();
        FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
    }

    /// Asserts that keys `first + i` of table `t` hold `values[i]`.
    fn assert_reads_back(s: &FjallStorage, first: u32, values: &[Vec<u8>]) {
        for (i, v) in (first..).zip(values) {
            assert_eq!(
                s.get("t", &i.to_be_bytes()).unwrap().as_deref(),
                Some(&v[..])
            );
        }
    }

    fn incompressible(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_busy_journal_is_zero_filled_ahead_of_its_writer_and_reads_back_intact() {
        use rustix::fs::{seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("0.jnl");
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        s.create_table("t").unwrap();
        s.sync().unwrap();
        let len = std::fs::metadata(&journal).unwrap().len();
        // 1.5 MiB of journal, synced now and then as a node would.
        let values: Vec<Vec<u8>> = (0..48).map(|i| incompressible(32 * 1024, i)).collect();
        for (i, v) in values.iter().enumerate() {
            let mut batch = Batch::new();
            batch.put("t", (i as u32).to_be_bytes().to_vec(), v.clone());
            s.write(batch).unwrap();
            if i % 8 == 7 {
                s.sync().unwrap();
            }
        }
        let file = std::fs::File::open(&journal).unwrap();
        let zeroed_to = seek(&file, SeekFrom::Hole(0)).unwrap();
        assert!(
            zeroed_to >= 1536 * 1024 + journal_zero::CHUNK / 2,
            "zeros ahead of the data: first hole at {zeroed_to}"
        );
        assert_eq!(
            std::fs::metadata(&journal).unwrap().len(),
            len,
            "the journal keeps its preallocated length"
        );
        s.close().unwrap();
        // Recovery reads the zeros as the end of the journal, as it did
        // the holes; writes after the reopen land and read back too.
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        assert_reads_back(&s, 0, &values);
        let more: Vec<Vec<u8>> = (0..48)
            .map(|i| incompressible(32 * 1024, 100 + i))
            .collect();
        for (i, v) in more.iter().enumerate() {
            let mut batch = Batch::new();
            batch.put("t", (1000 + i as u32).to_be_bytes().to_vec(), v.clone());
            s.write(batch).unwrap();
            s.sync().unwrap();
        }
        s.close().unwrap();
        let s = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        assert_reads_back(&s, 0, &values);
        assert_reads_back(&s, 1000, &more);
    }
}
