//! [`LogStore`]: one group's Raft log and vote on the [`Storage`] trait.
//!
//! Layout (see [`GroupTables`]): the `log` table maps the 8-byte big-endian
//! index to an encoded entry; the `meta` table holds `vote`, `committed` and
//! `purged` (the last purged log id). Every value carries the format version
//! (the `codec` module).
//!
//! Invariants and durability:
//! - The log is contiguous: entries exist for every index in
//!   `(purged, last]`. Appends add a suffix, `truncate_after` removes one,
//!   `purge` removes a prefix together with moving `purged` (one atomic
//!   batch). Since storage batches are atomic and become durable in write
//!   order, a crash leaves a state some prefix of these operations produced,
//!   so the invariant survives crashes. Opening relies on it to find the
//!   last entry with O(log n) point reads instead of a full scan.
//! - `save_vote` returns only once the vote is durable, and `append` reports
//!   its entries flushed only once they are durable: both wait for a sync
//!   through the shared [`GroupCommit`] (policy `always`), which batches the
//!   fsyncs of all groups on this node.
//! - `truncate_after`, `purge` and `save_committed` are not synced by
//!   themselves: losing them in a crash is harmless (truncated or purged
//!   entries reappear, which Raft tolerates; `committed` is a hint), and the
//!   next synced write makes them durable with it.
//! - The newest entries are also kept decoded in memory (`log_tail.rs`):
//!   openraft reads each entry back once per follower and once to apply
//!   it; those reads are served from there.
//! - Storage calls are synchronous and short (memtable writes, point reads,
//!   range scans); they run on the calling task. Only the fsync wait is
//!   asynchronous.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use fulcrum_storage::{Batch, GroupCommit, Storage};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, index_key, key_index};
use crate::error::{storage_io, RaftError};
use crate::log_tail::Tail;
use crate::types::{Entry, GroupTables, LogId, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

/// Keys removed per scan while purging or truncating.
const SCAN_CHUNK: usize = 4096;

/// One group's log storage. Clones share the same state (the clone handed
/// to openraft as the log reader sees every append at once).
#[derive(Clone)]
pub struct LogStore {
    storage: Arc<dyn Storage>,
    tables: Arc<GroupTables>,
    committer: Arc<GroupCommit>,
    cache: Arc<Mutex<Positions>>,
    /// The newest entries, decoded (see `log_tail.rs`).
    tail: Arc<Mutex<Tail>>,
}

/// The log's ends, kept in memory (read from storage at open).
#[derive(Debug, Clone, Default)]
struct Positions {
    /// The newest entry in the log table.
    last_entry: Option<LogId>,
    /// The newest purged log id.
    purged: Option<LogId>,
}

impl LogStore {
    /// Opens the log of the group whose tables are `tables`, creating the
    /// tables if needed. `committer` must sync `storage` with policy
    /// `always`.
    ///
    /// # Errors
    /// `RaftError::Storage` or `RaftError::Codec` if the tables cannot be
    /// created or read.
    pub fn open(
        storage: Arc<dyn Storage>,
        tables: Arc<GroupTables>,
        committer: Arc<GroupCommit>,
    ) -> Result<LogStore, RaftError> {
        for table in tables.all() {
            storage
                .create_table(table)
                .map_err(RaftError::storage("create raft table"))?;
        }
        let purged = get_meta::<LogId>(&*storage, &tables.meta, PURGED, "purged log id")?;
        let last_entry = find_last_entry(&*storage, &tables.log)?;
        Ok(LogStore {
            storage,
            tables,
            committer,
            cache: Arc::new(Mutex::new(Positions { last_entry, purged })),
            tail: Arc::new(Mutex::new(Tail::default())),
        })
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], what: &'static str, v: &T) -> io::Result<()> {
        let mut batch = Batch::new();
        batch.put(
            &self.tables.meta,
            Bytes::copy_from_slice(key),
            codec::encode(what, v)?,
        );
        self.storage
            .write(batch)
            .map_err(storage_io("write raft meta"))
    }

    /// Adds removals of every log key in `(start, end)` to `batch`.
    fn remove_range(
        &self,
        batch: &mut Batch,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> io::Result<()> {
        let end_key = end.map(index_key);
        let mut from = start.map(index_key);
        loop {
            let keys = self
                .storage
                .scan(
                    &self.tables.log,
                    from.as_ref().map(|k| k.as_slice()),
                    end_key.as_ref().map(|k| k.as_slice()),
                    SCAN_CHUNK,
                )
                .map_err(storage_io("scan raft log"))?;
            let Some((last, _)) = keys.last() else {
                return Ok(());
            };
            from = Bound::Excluded(index_key(key_index(last)?));
            let done = keys.len() < SCAN_CHUNK;
            for (key, _) in keys {
                batch.remove(&self.tables.log, key);
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// Reads and decodes one meta value.
pub(crate) fn get_meta<T: DeserializeOwned>(
    storage: &dyn Storage,
    table: &str,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, RaftError> {
    let Some(bytes) = storage
        .get(table, key)
        .map_err(RaftError::storage("read raft meta"))?
    else {
        return Ok(None);
    };
    Ok(Some(codec::decode(what, &bytes)?))
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, codec::CodecError> {
    codec::decode("log entry", bytes)
}

/// The newest entry of a contiguous log: the first key by a scan, then
/// galloping and binary search with point reads.
fn find_last_entry(storage: &dyn Storage, table: &str) -> Result<Option<LogId>, RaftError> {
    let present = |index: u64| {
        storage
            .get(table, &index_key(index))
            .map_err(RaftError::storage("read raft log"))
    };
    let first = storage
        .scan(table, Bound::Unbounded, Bound::Unbounded, 1)
        .map_err(RaftError::storage("scan raft log"))?;
    let Some((key, _)) = first.first() else {
        return Ok(None);
    };
    let mut lo = key_index(key)?;
    let mut step = 1u64;
    // `lo` is present; find an absent `hi` above it.
    let mut hi = loop {
        let probe = lo.saturating_add(step);
        if probe == lo || present(probe)?.is_none() {
            break probe;
        }
        lo = probe;
        step = step.saturating_mul(2);
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if present(mid)?.is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let bytes = present(lo)?.ok_or_else(|| {
        RaftError::Config(format!("raft log table {table} changed while opening"))
    })?;
    Ok(Some(decode_entry(&bytes)?.log_id()))
}

fn to_io(e: RaftError) -> io::Error {
    io::Error::other(e.to_string())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        if let Some(entries) = self.tail.lock().get(&range) {
            return Ok(entries);
        }
        let start = range.start_bound().map(|i| index_key(*i));
        let end = range.end_bound().map(|i| index_key(*i));
        let items = self
            .storage
            .scan(
                &self.tables.log,
                start.as_ref().map(|k| k.as_slice()),
                end.as_ref().map(|k| k.as_slice()),
                usize::MAX,
            )
            .map_err(storage_io("scan raft log"))?;
        items
            .iter()
            .map(|(_, v)| decode_entry(v).map_err(io::Error::from))
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        get_meta(&*self.storage, &self.tables.meta, VOTE, "vote").map_err(to_io)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let p = self.cache.lock().clone();
        let last_log_id = p.last_entry.max(p.purged);
        Ok(LogState {
            last_purged_log_id: p.purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.put_meta(VOTE, "vote", vote)?;
        self.committer
            .durable()
            .await
            .map_err(storage_io("sync raft vote"))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        match committed {
            Some(c) => self.put_meta(COMMITTED, "committed log id", &c),
            None => Ok(()),
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        get_meta(
            &*self.storage,
            &self.tables.meta,
            COMMITTED,
            "committed log id",
        )
        .map_err(to_io)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Batch::new();
        let mut last = None;
        let mut appended = Vec::new();
        for entry in entries {
            let id = entry.log_id();
            let bytes = codec::encode("log entry", &entry)?;
            appended.push((entry, bytes.len()));
            batch.put(&self.tables.log, index_key(id.index()).to_vec(), bytes);
            last = Some(id);
        }
        self.storage
            .write(batch)
            .map_err(storage_io("append raft log"))?;
        {
            let mut tail = self.tail.lock();
            for (entry, size) in appended {
                tail.push(entry, size);
            }
        }
        if let Some(last) = last {
            self.cache.lock().last_entry = Some(last);
        }
        let committer = self.committer.clone();
        tokio::spawn(async move {
            let flushed = committer.durable().await;
            callback.io_completed(flushed.map_err(storage_io("sync raft log")));
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let start = match &last_log_id {
            Some(id) => Bound::Excluded(id.index()),
            None => Bound::Unbounded,
        };
        self.tail
            .lock()
            .truncate_after(last_log_id.as_ref().map(|id| id.index()));
        let mut batch = Batch::new();
        self.remove_range(&mut batch, start, Bound::Unbounded)?;
        self.storage
            .write(batch)
            .map_err(storage_io("truncate raft log"))?;
        let mut cache = self.cache.lock();
        if cache.last_entry > last_log_id {
            cache.last_entry = last_log_id;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.tail.lock().purge(log_id.index());
        // Start after the previous purge: the keys below it are already
        // removed, and a scan from the log's start would walk their
        // tombstones again on every purge.
        let start = match self.cache.lock().purged {
            Some(prev) => Bound::Excluded(prev.index()),
            None => Bound::Unbounded,
        };
        let mut batch = Batch::new();
        batch.put(
            &self.tables.meta,
            Bytes::from_static(PURGED),
            codec::encode("purged log id", &log_id)?,
        );
        self.remove_range(&mut batch, start, Bound::Included(log_id.index()))?;
        self.storage
            .write(batch)
            .map_err(storage_io("purge raft log"))?;
        let mut cache = self.cache.lock();
        if cache
            .last_entry
            .as_ref()
            .is_some_and(|last| *last <= log_id)
        {
            cache.last_entry = None;
        }
        cache.purged = Some(log_id);
        Ok(())
    }
}
