//! The local database: what one node stores and how a write becomes
//! durable.
//!
//! Write path on this node (see ARCHITECTURE.md for the whole path):
//! 1. the command locks the key's stripe ([`KeyLocks`]);
//! 2. reads the current record, computes the new version with a fresh
//!    hybrid-logical-clock timestamp;
//! 3. writes record and expiry-index entry in one atomic storage batch
//!    (commit log + memtable; not yet fsynced) — or, for record writes of
//!    eventual keyspaces, stages them for a batch shared with other writes
//!    (`write_group.rs`);
//! 4. releases the lock;
//! 5. the connection awaits [`Db::durable`] (commit of staged writes, then
//!    group commit) before it sends the reply, so `--fsync always`
//!    acknowledges only durable writes.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fulcrum_core::hlc::{Hlc, HlcClock};
use fulcrum_core::limits::Limits;
use fulcrum_core::record::{DecodeError, Record, Version};
use fulcrum_storage::{
    Batch, BeforeSync, CacheConfig, CachedStorage, FsyncPolicy, GroupCommit, Storage, StorageError,
};
use parking_lot::Mutex;

use crate::catalog::{Catalog, CatalogError, Keyspace};
use crate::expiry;
use crate::locks::KeyLocks;
use crate::metrics::Metrics;
use crate::write_group::WriteGroup;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("corrupt record in keyspace '{keyspace}': {source}")]
    Corrupt {
        keyspace: String,
        #[source]
        source: DecodeError,
    },
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Replica(String),
}

/// What a read-modify-write decides to do with a key.
#[derive(Debug)]
pub enum Change {
    /// Leave the key as it is.
    Keep,
    /// Store this value with this expiry.
    Put {
        value: Bytes,
        expires_at_ms: Option<u64>,
    },
    /// Delete the key (writes a tombstone).
    Delete,
}

/// The state of one key as a command sees it.
#[derive(Debug, Clone)]
pub struct Current {
    /// The visible version: live, not expired.
    pub version: Option<Version>,
    /// Wall time of this operation, ms since the epoch.
    pub now_ms: u64,
}

pub struct Db {
    pub node_id: String,
    /// `node_id` as the dots of this node's writes name it.
    pub(crate) node: fulcrum_core::ring::NodeId,
    pub storage: Arc<dyn Storage>,
    pub catalog: Catalog,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub fsync: FsyncPolicy,
    commit: GroupCommit,
    clock: Mutex<HlcClock>,
    locks: KeyLocks,
    started: Instant,
    /// Anti-entropy Merkle trees of the eventual keyspaces' records.
    pub trees: crate::aae::Trees,
    /// Record writes of eventual keyspaces staged for the next shared
    /// storage commit (see `write_group.rs`).
    pub(crate) writes: Arc<WriteGroup>,
}

/// A deliberate offset added to this process's wall clock, in ms: the
/// clock-skew fault (`FAULT CLOCK-OFFSET`, only with `--allow-faults`).
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Sets the clock-skew fault's offset (0 turns it off).
pub fn set_clock_offset_ms(ms: i64) {
    CLOCK_OFFSET_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Milliseconds since the Unix epoch by the system clock (plus the
/// clock-skew fault's offset, normally 0).
pub fn wall_ms() -> u64 {
    // Inside a simulation: the simulated clock, so runs repeat exactly.
    #[cfg(feature = "sim")]
    if let Some(ms) = crate::netio::sim_wall_ms() {
        return ms;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now.saturating_add_signed(CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// The read cache over the keyspaces' data tables (`data.<name>`): records
/// of hot keys, so a write's read of the stored record (and a GET) skips the
/// LSM tree. Coherent by itself (see `CachedStorage`); every access to the
/// data tables goes through it because `Db::open` wraps the engine first.
fn record_cache_config() -> CacheConfig {
    CacheConfig {
        max_bytes: 32 * 1024 * 1024,
        max_entry_bytes: 4 * 1024,
        table_prefix: crate::catalog::DATA_TABLE_PREFIX.to_string(),
    }
}

impl Db {
    /// Opens the catalog on `storage` (behind the record cache) and starts
    /// group commit.
    ///
    /// # Errors
    /// Storage or catalog failures.
    pub fn open(
        node_id: String,
        storage: Arc<dyn Storage>,
        fsync: FsyncPolicy,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Result<Db, DbError> {
        let storage: Arc<dyn Storage> =
            Arc::new(CachedStorage::new(storage, record_cache_config()));
        let catalog = Catalog::open(storage.clone())?;
        storage.create_table(expiry::TABLE)?;
        storage.create_table(crate::hints::TABLE)?;
        storage.create_table(crate::aae::TABLE)?;
        let writes = Arc::new(WriteGroup::new());
        // Under `always`, each sync's leader first commits what is staged:
        // one engine commit per round of durability (see `Db::durable`).
        let before_sync: BeforeSync = {
            let (writes, storage) = (writes.clone(), storage.clone());
            Arc::new(move || writes.commit(storage.as_ref()))
        };
        let commit = crate::netio::db_committer(storage.clone(), fsync, before_sync)?;
        Ok(Db {
            node: fulcrum_core::ring::NodeId::from(node_id.as_str()),
            node_id,
            storage,
            catalog,
            metrics,
            limits,
            fsync,
            commit,
            clock: Mutex::new(HlcClock::new()),
            locks: KeyLocks::new(),
            started: Instant::now(),
            trees: crate::aae::Trees::default(),
            writes,
        })
        .and_then(|db: Db| {
            db.aae_rebuild()?;
            Ok(db)
        })
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Locks one key of a table against concurrent read-modify-writes.
    pub(crate) fn lock_key(&self, table: &str, key: &[u8]) -> parking_lot::MutexGuard<'_, ()> {
        self.locks.lock(table, key)
    }

    pub fn group_commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// A fresh timestamp for a local write.
    pub fn timestamp(&self, now_ms: u64) -> Hlc {
        self.clock.lock().now(now_ms)
    }

    /// Folds a timestamp seen from another node into the clock.
    pub fn observe(&self, remote: Hlc) {
        self.clock.lock().observe(remote);
    }

    /// Commits every staged record write to the engine (one batch), or
    /// waits for the commit already carrying it. A connection calls it
    /// before a command that may read what it staged.
    ///
    /// # Errors
    /// The engine's write failed, now or in an earlier commit.
    pub fn commit_staged(&self) -> Result<(), DbError> {
        Ok(self.writes.commit(self.storage.as_ref())?)
    }

    /// As [`Db::commit_staged`], waiting for a running commit without
    /// blocking the thread.
    ///
    /// # Errors
    /// As [`Db::commit_staged`].
    pub async fn staged_committed(&self) -> Result<(), DbError> {
        Ok(self.writes.committed(self.storage.as_ref()).await?)
    }

    /// Whether record writes are staged and not yet committing.
    pub fn has_staged(&self) -> bool {
        self.writes.has_pending()
    }

    /// Whether `key` of `table` has a write staged and not yet in the
    /// engine.
    pub fn is_staged(&self, table: &str, key: &[u8]) -> bool {
        self.writes.holds(table, key)
    }

    /// Whether every staged record write is in the engine (nothing staged,
    /// nothing committing).
    pub fn writes_idle(&self) -> bool {
        self.writes.is_idle()
    }

    /// Waits until every write this task made (staged ones included) is
    /// in the engine and durable by the fsync policy.
    ///
    /// # Errors
    /// The batched write or the fsync failed; the write must not be
    /// acknowledged.
    pub async fn durable(&self) -> Result<(), DbError> {
        // First into the engine: the group commit below covers only writes
        // that returned from it. Under `always` the sync's leader commits
        // what is staged right before it syncs (`BeforeSync`: this task
        // staged before taking its ticket), so writes that arrive while a
        // sync runs share one engine commit as well as the next fsync.
        // Under the other policies, on the RESP event loop, the loop
        // commits when it runs dry ([`Db::loop_idle`]), so the writes of
        // one round share one commit; elsewhere this task commits.
        if !self.commit.runs_before_sync() {
            if GroupCommit::on_event_loop() {
                self.writes.committed_by_others().await?;
            } else {
                self.staged_committed().await?;
            }
        }
        Ok(self.commit.durable().await?)
    }

    /// For an event loop that ran out of ready work: under `--fsync
    /// always` runs the waiting sync (`GroupCommit::sync_waiting`, which
    /// first commits what is staged); under the other policies commits
    /// what is staged. A failure poisons the group or the committer; the
    /// waiters report it.
    pub fn loop_idle(&self) {
        if self.commit.runs_before_sync() {
            let _ = self.commit.sync_waiting();
        } else if self.writes.has_pending() {
            let _ = self.commit_staged();
        }
    }

    /// Counts one unit of an event loop's work (a request, a read); every
    /// few hundred, runs [`Db::loop_idle`], so a loop that never runs dry
    /// still commits and syncs (`GroupCommit::loop_tick_due`).
    pub fn loop_tick(&self) {
        if GroupCommit::loop_tick_due() {
            self.loop_idle();
        }
    }

    /// The stored record of `key`, including tombstones and expired
    /// versions.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn read_record(&self, ks: &Keyspace, key: &[u8]) -> Result<Option<Record>, DbError> {
        match self.storage.get(&ks.table, key)? {
            None => Ok(None),
            Some(bytes) => Record::decode(&bytes)
                .map(Some)
                .map_err(|source| DbError::Corrupt {
                    keyspace: ks.spec.name.clone(),
                    source,
                }),
        }
    }

    /// The visible version of `key` at `now_ms` (lazy expiry: an expired
    /// value reads as missing even before the sweeper deletes it).
    ///
    /// # Errors
    /// As [`Db::read_record`].
    pub fn get(&self, ks: &Keyspace, key: &[u8], now_ms: u64) -> Result<Option<Version>, DbError> {
        Ok(self
            .read_record(ks, key)?
            .and_then(|r| r.visible(now_ms).cloned()))
    }

    /// Reads, decides and writes one key atomically with respect to other
    /// writers on this node. `decide` sees the current visible version and
    /// returns the change and the command's result. Returns whether
    /// anything was written (so the caller knows to await durability).
    ///
    /// # Errors
    /// As [`Db::read_record`], or the storage write failed.
    pub fn update<T>(
        &self,
        ks: &Keyspace,
        key: &[u8],
        decide: impl FnOnce(&Current) -> (Change, T),
    ) -> Result<(bool, T), DbError> {
        let _guard = self.locks.lock(&ks.table, key);
        let now_ms = wall_ms();
        let current = Current {
            version: self.get(ks, key, now_ms)?,
            now_ms,
        };
        let (change, out) = decide(&current);
        let mut batch = Batch::new();
        let wrote = self.stage(&mut batch, ks, key, change, now_ms);
        if wrote {
            self.storage.write(batch)?;
        }
        Ok((wrote, out))
    }

    /// Applies several changes to several keys in one atomic batch (MSET,
    /// multi-key DEL). `decide` sees each key's current version.
    ///
    /// # Errors
    /// As [`Db::update`].
    pub fn update_many<T>(
        &self,
        ks: &Keyspace,
        keys: &[&[u8]],
        decide: impl FnOnce(&[Current]) -> (Vec<Change>, T),
    ) -> Result<(bool, T), DbError> {
        let _guards = self.locks.lock_many(&ks.table, keys);
        let now_ms = wall_ms();
        let mut currents = Vec::with_capacity(keys.len());
        for key in keys {
            currents.push(Current {
                version: self.get(ks, key, now_ms)?,
                now_ms,
            });
        }
        let (changes, out) = decide(&currents);
        let mut batch = Batch::new();
        let mut wrote = false;
        for (key, change) in keys.iter().zip(changes) {
            wrote |= self.stage(&mut batch, ks, key, change, now_ms);
        }
        if wrote {
            self.storage.write(batch)?;
        }
        Ok((wrote, out))
    }

    fn stage(
        &self,
        batch: &mut Batch,
        ks: &Keyspace,
        key: &[u8],
        change: Change,
        now_ms: u64,
    ) -> bool {
        let version = match change {
            Change::Keep => return false,
            Change::Put {
                value,
                expires_at_ms,
            } => {
                if let Some(at) = expires_at_ms {
                    batch.put(
                        expiry::TABLE,
                        expiry::index_key(at, &ks.table, key),
                        Bytes::new(),
                    );
                }
                Version {
                    value,
                    tombstone: false,
                    timestamp: self.timestamp(now_ms),
                    expires_at_ms,
                }
            }
            Change::Delete => Version::tombstone(self.timestamp(now_ms)),
        };
        batch.put(
            &ks.table,
            Bytes::copy_from_slice(key),
            Record::single(version).encode(),
        );
        true
    }

    /// Up to `limit` live keys of `ks` after `after` (exclusive), in key
    /// order, and the last key examined (the scan position to resume from).
    ///
    /// # Errors
    /// Storage failure.
    pub fn scan_keys(
        &self,
        ks: &Keyspace,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Bytes>, Option<Bytes>), DbError> {
        use std::ops::Bound;
        let start = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let rows = self
            .storage
            .scan(&ks.table, start, Bound::Unbounded, limit)?;
        let now_ms = wall_ms();
        let last = rows.last().map(|(k, _)| k.clone());
        let mut keys = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let rec = Record::decode(&value).map_err(|source| DbError::Corrupt {
                keyspace: ks.spec.name.clone(),
                source,
            })?;
            if rec.visible(now_ms).is_some() {
                keys.push(key);
            }
        }
        Ok((keys, last))
    }

    /// Counts live keys of `ks` by scanning it (exact, O(keys)).
    ///
    /// # Errors
    /// Storage failure.
    pub fn count_keys(&self, ks: &Keyspace) -> Result<u64, DbError> {
        let mut after: Option<Bytes> = None;
        let mut count = 0u64;
        loop {
            let (keys, last) = self.scan_keys(ks, after.as_deref(), 4096)?;
            count += keys.len() as u64;
            match last {
                Some(k) => after = Some(k),
                None => return Ok(count),
            }
        }
    }
}
