//! [`StateMachine`]: one group's key-value state on the [`Storage`] trait,
//! with snapshots.
//!
//! Layout: the `sm` table maps each user key to an encoded
//! [`StoredValue`]; the `meta` table holds `sm.applied` (last applied log
//! id, last membership, the state machine's clock) and `sm.snapshot` (the
//! current snapshot: its meta and data).
//!
//! Invariants and durability:
//! - **Applied state moves with the data.** Each batch of applied entries is
//!   one atomic storage batch holding the changed keys and the new
//!   `sm.applied`, so after a crash the state machine is exactly the result
//!   of applying a prefix of the log. Applying is not synced: the log is
//!   durable, and openraft re-applies from `sm.applied` (or from `committed`)
//!   at restart.
//! - **Responses go out after the write**, so a client that hears back can
//!   read its write, even with a serializable read on this node.
//! - **Snapshots are durable before logs are purged.** A snapshot is built
//!   from a copy of the `sm` table taken on the state machine's task (no
//!   apply runs meanwhile, so the copy matches `sm.applied`), serialized and
//!   stored under `sm.snapshot` by openraft's builder task, then synced;
//!   openraft purges logs only up to a snapshot it has been told about. At
//!   restart openraft reinstalls `sm.snapshot` if the `sm` table is older.
//! - **Installing** a snapshot (from the leader) replaces the `sm` table,
//!   `sm.applied` and `sm.snapshot` in one batch and syncs it.
//!
//! Snapshot data format (format version 1): the postcard encoding of the
//! state machine's clock and every `(key, encoded value)` pair in key order.
//! It is one storage value and one RPC, and the whole partition is held in
//! memory while it is built, sent or installed: fine for partitions of up
//! to a few hundred MB, and a snapshot can never exceed the storage's value
//! limit (1 GiB). Streaming snapshots are future work.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fulcrum_storage::{Batch, GroupCommit, ScanItem, Storage, StorageError};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::command::{execute, KvState, Response, StoredValue};
use crate::error::{storage_io, RaftError};
use crate::log_store::get_meta;
use crate::types::{GroupTables, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

const APPLIED: &[u8] = b"sm.applied";
const SNAPSHOT: &[u8] = b"sm.snapshot";

/// Entries applied per storage batch at most (bounds memory and latency of
/// one batch; each batch is atomic with its applied state).
const APPLY_BATCH_ENTRIES: usize = 256;
/// Keys read or written per scan while copying or clearing the `sm` table.
const SCAN_CHUNK: usize = 4096;

/// What the state machine has applied, stored atomically with the data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The largest `now_ms` applied so far: the state machine's clock.
    clock_ms: u64,
}

/// The snapshot data: the state machine's clock and its table's contents.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    clock_ms: u64,
    entries: Vec<(Bytes, Bytes)>,
}

/// The current snapshot as stored under `sm.snapshot`.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Bytes,
}

/// State shared between the state machine (owned by openraft) and readers.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// [`AppliedState::clock_ms`] of the latest applied batch.
    clock_ms: AtomicU64,
    /// Serializes writes of `sm.snapshot` (builders run on their own task).
    snapshot_lock: Mutex<()>,
}

/// One group's state machine.
pub struct StateMachine {
    storage: Arc<dyn Storage>,
    tables: Arc<GroupTables>,
    committer: Arc<GroupCommit>,
    applied: AppliedState,
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state machine of the group whose tables are `tables`
    /// (created by [`crate::LogStore::open`]).
    ///
    /// # Errors
    /// `RaftError::Storage` or `RaftError::Codec` if the applied state
    /// cannot be read.
    pub fn open(
        storage: Arc<dyn Storage>,
        tables: Arc<GroupTables>,
        committer: Arc<GroupCommit>,
    ) -> Result<StateMachine, RaftError> {
        let applied: AppliedState =
            get_meta(&*storage, &tables.meta, APPLIED, "applied state")?.unwrap_or_default();
        let shared = Arc::new(Shared::default());
        shared.clock_ms.store(applied.clock_ms, Ordering::Release);
        Ok(StateMachine {
            storage,
            tables,
            committer,
            applied,
            shared,
        })
    }

    /// A reader of this state machine's table for serving reads.
    pub(crate) fn reader(&self) -> SmReader {
        SmReader {
            storage: self.storage.clone(),
            tables: self.tables.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Writes the overlay and `next` in one batch, then answers `replies`.
    fn flush(
        &mut self,
        overlay: &mut Overlay<'_>,
        next: &AppliedState,
        replies: &mut Vec<(openraft::storage::ApplyResponder<TypeConfig>, Response)>,
    ) -> io::Result<()> {
        let mut batch = Batch::new();
        for (key, value) in std::mem::take(&mut overlay.changes) {
            match value {
                Some(v) => batch.put(&self.tables.sm, key, codec::encode("stored value", &v)?),
                None => batch.remove(&self.tables.sm, key),
            }
        }
        batch.put(
            &self.tables.meta,
            Bytes::from_static(APPLIED),
            codec::encode("applied state", next)?,
        );
        self.storage
            .write(batch)
            .map_err(storage_io("apply raft entries"))?;
        self.applied = next.clone();
        self.shared.clock_ms.store(next.clock_ms, Ordering::Release);
        for (responder, response) in replies.drain(..) {
            responder.send(response);
        }
        Ok(())
    }

    fn copy_table(&self) -> io::Result<Vec<(Bytes, Bytes)>> {
        scan_all(&*self.storage, &self.tables.sm)
    }
}

/// Scans `table` in chunks, in key order, until `visit` returns false.
fn scan_chunks(
    storage: &dyn Storage,
    table: &str,
    mut visit: impl FnMut(Vec<ScanItem>) -> bool,
) -> Result<(), StorageError> {
    let mut after: Option<Bytes> = None;
    loop {
        let start = match &after {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Unbounded,
        };
        let chunk = storage.scan(table, start, Bound::Unbounded, SCAN_CHUNK)?;
        let done = chunk.len() < SCAN_CHUNK;
        after = chunk.last().map(|(k, _)| k.clone());
        if !visit(chunk) || done {
            return Ok(());
        }
    }
}

/// Every item of `table`, in key order.
fn scan_all(storage: &dyn Storage, table: &str) -> io::Result<Vec<ScanItem>> {
    let mut all = Vec::new();
    scan_chunks(storage, table, |chunk| {
        all.extend(chunk);
        true
    })
    .map_err(storage_io("scan state machine"))?;
    Ok(all)
}

/// The changes of the batch being applied, over the stored state.
struct Overlay<'a> {
    storage: &'a dyn Storage,
    table: &'a str,
    changes: BTreeMap<Bytes, Option<StoredValue>>,
}

impl KvState for Overlay<'_> {
    type Error = io::Error;
    fn load(&mut self, key: &[u8]) -> io::Result<Option<StoredValue>> {
        if let Some(v) = self.changes.get(key) {
            return Ok(v.clone());
        }
        match self
            .storage
            .get(self.table, key)
            .map_err(storage_io("read state machine"))?
        {
            Some(bytes) => Ok(Some(codec::decode("stored value", &bytes)?)),
            None => Ok(None),
        }
    }
    fn store(&mut self, key: Bytes, value: Option<StoredValue>) {
        self.changes.insert(key, value);
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Bytes;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let storage = self.storage.clone();
        let tables = self.tables.clone();
        let mut overlay = Overlay {
            storage: &*storage,
            table: &tables.sm,
            changes: BTreeMap::new(),
        };
        let mut next = self.applied.clone();
        let mut replies = Vec::new();
        let mut pending = 0usize;
        while let Some((entry, responder)) = entries.try_next().await? {
            next.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Ok,
                EntryPayload::Normal(request) => {
                    next.clock_ms = next.clock_ms.max(request.now_ms);
                    execute(
                        &mut overlay,
                        entry.log_id.index(),
                        next.clock_ms,
                        request.command,
                    )?
                }
                EntryPayload::Membership(m) => {
                    next.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::Ok
                }
            };
            if let Some(responder) = responder {
                replies.push((responder, response));
            }
            pending += 1;
            if pending >= APPLY_BATCH_ENTRIES {
                self.flush(&mut overlay, &next, &mut replies)?;
                pending = 0;
            }
        }
        if pending > 0 {
            self.flush(&mut overlay, &next, &mut replies)?;
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let copy = self.copy_table().map(|entries| {
            let meta = SnapshotMeta {
                last_log_id: self.applied.last_applied,
                last_membership: self.applied.membership.clone(),
            };
            let body = SnapshotBody {
                clock_ms: self.applied.clock_ms,
                entries,
            };
            (meta, body)
        });
        SnapshotBuilder {
            storage: self.storage.clone(),
            tables: self.tables.clone(),
            committer: self.committer.clone(),
            shared: self.shared.clone(),
            copy: Some(copy),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: Bytes,
    ) -> Result<(), io::Error> {
        let body: SnapshotBody = codec::decode("snapshot data", &data)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let next = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            clock_ms: body.clock_ms,
        };
        let mut batch = Batch::new();
        for (key, _) in self.copy_table()? {
            batch.remove(&self.tables.sm, key);
        }
        for (key, value) in body.entries {
            batch.put(&self.tables.sm, key, value);
        }
        batch.put(
            &self.tables.meta,
            Bytes::from_static(APPLIED),
            codec::encode("applied state", &next)?,
        );
        batch.put(
            &self.tables.meta,
            Bytes::from_static(SNAPSHOT),
            codec::encode("snapshot", &stored)?,
        );
        {
            let _guard = self.shared.snapshot_lock.lock();
            self.storage
                .write(batch)
                .map_err(storage_io("install snapshot"))?;
        }
        self.applied = next;
        self.shared.clock_ms.store(body.clock_ms, Ordering::Release);
        self.committer
            .durable()
            .await
            .map_err(storage_io("sync installed snapshot"))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let stored: Option<StoredSnapshot> =
            get_meta(&*self.storage, &self.tables.meta, SNAPSHOT, "snapshot")
                .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: s.data,
        }))
    }
}

/// Builds a snapshot from a copy of the state taken on the state machine's
/// task; runs on openraft's builder task.
pub struct SnapshotBuilder {
    storage: Arc<dyn Storage>,
    tables: Arc<GroupTables>,
    committer: Arc<GroupCommit>,
    shared: Arc<Shared>,
    /// The copy (or why it failed); taken by the first build.
    copy: Option<io::Result<(SnapshotMeta, SnapshotBody)>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Bytes;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, body) = self
            .copy
            .take()
            .unwrap_or_else(|| Err(io::Error::other("snapshot builder used twice")))?;
        let data = Bytes::from(codec::encode("snapshot data", &body)?);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        {
            let _guard = self.shared.snapshot_lock.lock();
            let current: Option<StoredSnapshot> =
                get_meta(&*self.storage, &self.tables.meta, SNAPSHOT, "snapshot")
                    .map_err(|e| io::Error::other(e.to_string()))?;
            // A snapshot installed meanwhile may be newer: keep it.
            if current.is_none_or(|c| c.meta.last_log_id < meta.last_log_id) {
                let mut batch = Batch::new();
                batch.put(
                    &self.tables.meta,
                    Bytes::from_static(SNAPSHOT),
                    codec::encode("snapshot", &stored)?,
                );
                self.storage
                    .write(batch)
                    .map_err(storage_io("store snapshot"))?;
            }
        }
        self.committer
            .durable()
            .await
            .map_err(storage_io("sync snapshot"))?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

/// Reads of one group's state machine table, for [`crate::Groups::read`].
#[derive(Clone)]
pub(crate) struct SmReader {
    storage: Arc<dyn Storage>,
    tables: Arc<GroupTables>,
    shared: Arc<Shared>,
}

impl SmReader {
    /// The state machine's clock: the largest entry time applied.
    pub(crate) fn clock_ms(&self) -> u64 {
        self.shared.clock_ms.load(Ordering::Acquire)
    }

    /// The live value of `key` at `now_ms` (at least the state machine's
    /// clock), as applied so far on this node.
    pub(crate) fn get(&self, key: &[u8], now_ms: u64) -> Result<Option<StoredValue>, RaftError> {
        let now = now_ms.max(self.clock_ms());
        let Some(bytes) = self
            .storage
            .get(&self.tables.sm, key)
            .map_err(RaftError::storage("read state machine"))?
        else {
            return Ok(None);
        };
        let value: StoredValue = codec::decode("stored value", &bytes)?;
        Ok(value.is_live(now).then_some(value))
    }

    /// Up to `limit` keys that have expired by `now_ms`, in key order
    /// (a full scan of the table: O(keys)).
    /// Up to `limit` stored keys after `after` (exclusive), in key order,
    /// and whether each is live at `now_ms`; the last key examined is the
    /// position to resume from.
    pub(crate) fn scan_keys(
        &self,
        now_ms: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Bytes>, Option<Bytes>), RaftError> {
        let now = now_ms.max(self.clock_ms());
        let start = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let rows = self
            .storage
            .scan(&self.tables.sm, start, Bound::Unbounded, limit)
            .map_err(RaftError::storage("scan state machine"))?;
        let last = rows.last().map(|(k, _)| k.clone());
        let mut live = Vec::with_capacity(rows.len());
        for (key, bytes) in rows {
            if codec::decode::<StoredValue>("stored value", &bytes)?.is_live(now) {
                live.push(key);
            }
        }
        Ok((live, last))
    }

    /// Number of live keys in this node's applied state.
    pub(crate) fn count_live(&self, now_ms: u64) -> Result<u64, RaftError> {
        let now = now_ms.max(self.clock_ms());
        let mut n = 0u64;
        let mut failure = None;
        scan_chunks(&*self.storage, &self.tables.sm, |chunk| {
            for (_, bytes) in chunk {
                match codec::decode::<StoredValue>("stored value", &bytes) {
                    Ok(v) if v.is_live(now) => n += 1,
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
            }
            true
        })
        .map_err(RaftError::storage("scan state machine"))?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(n),
        }
    }

    pub(crate) fn expired_keys(&self, now_ms: u64, limit: usize) -> Result<Vec<Bytes>, RaftError> {
        let now = now_ms.max(self.clock_ms());
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut failure = None;
        scan_chunks(&*self.storage, &self.tables.sm, |chunk| {
            for (key, bytes) in chunk {
                match codec::decode::<StoredValue>("stored value", &bytes) {
                    Ok(v) if !v.is_live(now) => out.push(key),
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
                if out.len() >= limit {
                    return false;
                }
            }
            true
        })
        .map_err(RaftError::storage("scan state machine"))?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }
}
