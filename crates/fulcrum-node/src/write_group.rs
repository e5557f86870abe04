//! Write groups: record writes of eventual keyspaces are *staged* here under
//! their key's lock and reach the storage engine together, as one batch.
//!
//! Why: every storage commit costs a journal `write(2)`, a memtable insert
//! per op and a pass through the engine's journal lock. A connection's
//! pipelined SETs, and SETs that different connections send in the same
//! scheduler tick, need only one commit between them; when they hit the
//! same key, only the last record of that key is stored at all.
//!
//! Rules (what keeps staging invisible to clients):
//! - **Staging.** A writer stages its whole change (record, anti-entropy
//!   index entry, expiry-index entry) in one [`Staging`], holding the key's
//!   lock. Staged ops of one key replace the previous ones (the last op
//!   wins, as in a storage batch).
//! - **Writers see staged records.** Whoever decides a key's next record
//!   from its current one (coordinating a write, merging a replica's
//!   record, dropping a handed-off key, the expiry sweeper) reads it through
//!   [`WriteGroup::staged`] first, under the key's lock, so no staged write
//!   is lost or reordered.
//! - **Readers do not.** GET and the coordinator's reads see only committed
//!   records, never one a `kill -9` could take back. A connection commits
//!   before running any command other than a plain SET or a plain GET of
//!   a key with nothing staged (`cmd::runs_beside_staged`), so it reads its
//!   own writes (`resp/conn.rs`).
//! - **Acknowledgement.** [`WriteGroup::commit`] commits everything staged
//!   so far, or waits for the commit already carrying it; `Db::durable`
//!   calls it before it waits for the fsync policy (under `--fsync
//!   always` the sync's leader calls it instead, right before the fsync:
//!   `fulcrum_storage::BeforeSync`). So a write is
//!   acknowledged only after its batch returned from the engine (then the
//!   group commit covers it exactly as before: `--fsync always` still
//!   acknowledges only fsynced writes) and a `kill -9` cannot lose it.
//! - **Order.** Commits run one at a time (the commit lock), each taking
//!   every op staged before it, so the engine applies batches in staging
//!   order. A batch being committed stays readable by writers
//!   (`in_flight`) until the engine has it.
//! - **Failure.** A commit that fails for any reason other than a dropped
//!   table poisons the group: every later commit and staging fails, so no
//!   write staged before the failure is acknowledged. Ops for a table that
//!   no longer exists (a keyspace dropped meanwhile) are discarded, as if
//!   the write had happened just before the drop.

use std::sync::Arc;

use bytes::Bytes;
use fulcrum_storage::{Batch, Storage, StorageError, StorageResult};
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::watch;

/// The newest staged op of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    Put(Bytes),
    /// A put of an encoded record with its anti-entropy digest, so the
    /// next writer of the key need not digest it again.
    Record {
        bytes: Bytes,
        digest: u64,
    },
    Remove,
}

/// Ops staged per table; the last op of each key wins.
#[derive(Default)]
struct Pending {
    /// Few tables (the keyspaces' data tables, `aae`, `expiry`): a list.
    tables: Vec<(String, foldhash::HashMap<Bytes, Staged>)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, ops)| ops.is_empty())
    }

    fn get(&self, table: &str, key: &[u8]) -> Option<&Staged> {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .and_then(|(_, ops)| ops.get(key))
    }

    fn set(&mut self, table: &str, key: Bytes, op: Staged) {
        let ops = match self.tables.iter().position(|(t, _)| t == table) {
            Some(i) => &mut self.tables[i].1,
            None => {
                self.tables
                    .push((table.to_string(), foldhash::HashMap::default()));
                &mut self.tables.last_mut().expect("just pushed").1
            }
        };
        ops.insert(key, op);
    }

    fn batch(&self, skip: &[String]) -> Batch {
        let mut batch = Batch::new();
        for (table, ops) in self.tables.iter().filter(|(t, _)| !skip.contains(t)) {
            for (key, op) in ops {
                match op {
                    Staged::Put(value) | Staged::Record { bytes: value, .. } => {
                        batch.put(table, key.clone(), value.clone());
                    }
                    Staged::Remove => batch.remove(table, key.clone()),
                }
            }
        }
        batch
    }
}

#[derive(Default)]
struct State {
    /// Staged since the last commit started; carried by commit number
    /// `started + 1`.
    pending: Pending,
    /// What the running commit is writing (readable by writers until the
    /// engine has it).
    in_flight: Option<Arc<Pending>>,
    /// Commits started so far (the running one included).
    started: u64,
    /// Why an earlier commit failed.
    failure: Option<String>,
}

/// See the module docs.
pub struct WriteGroup {
    state: Mutex<State>,
    /// Held for a whole commit: batches reach the engine in staging order.
    commit: Mutex<()>,
    /// Commits finished so far (successful or not), for async waiters.
    finished: watch::Sender<u64>,
}

impl Default for WriteGroup {
    fn default() -> Self {
        WriteGroup {
            state: Mutex::new(State::default()),
            commit: Mutex::new(()),
            finished: watch::Sender::new(0),
        }
    }
}

/// One atomic change being staged (holds the group's state lock: a commit
/// takes all of it or none of it).
pub struct Staging<'a> {
    state: MutexGuard<'a, State>,
}

impl Staging<'_> {
    /// Stages a put of `key` → `value` into `table`.
    pub fn put(&mut self, table: &str, key: Bytes, value: Bytes) {
        self.state.pending.set(table, key, Staged::Put(value));
    }

    /// Stages a put of an encoded record whose anti-entropy digest is
    /// `digest`.
    pub fn put_record(&mut self, table: &str, key: Bytes, bytes: Bytes, digest: u64) {
        self.state
            .pending
            .set(table, key, Staged::Record { bytes, digest });
    }

    /// Stages a physical removal of `key` from `table`.
    pub fn remove(&mut self, table: &str, key: Bytes) {
        self.state.pending.set(table, key, Staged::Remove);
    }
}

impl WriteGroup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts staging one atomic change (call with the keys' locks held).
    ///
    /// # Errors
    /// Refused after a failed commit.
    pub fn stage(&self) -> StorageResult<Staging<'_>> {
        let state = self.state.lock();
        if let Some(failure) = &state.failure {
            return Err(poisoned(failure));
        }
        Ok(Staging { state })
    }

    /// The newest op staged for `key` in `table` and not yet in the engine
    /// (`None`: read the engine).
    pub fn staged(&self, table: &str, key: &[u8]) -> Option<Staged> {
        let state = self.state.lock();
        state
            .pending
            .get(table, key)
            .or_else(|| state.in_flight.as_ref().and_then(|p| p.get(table, key)))
            .cloned()
    }

    /// Whether `key` in `table` has an op staged or committing (not yet in
    /// the engine): [`WriteGroup::staged`] without the copy.
    pub fn holds(&self, table: &str, key: &[u8]) -> bool {
        let state = self.state.lock();
        state.pending.get(table, key).is_some()
            || state
                .in_flight
                .as_ref()
                .is_some_and(|p| p.get(table, key).is_some())
    }

    /// Whether anything is staged and not yet committing.
    pub fn has_pending(&self) -> bool {
        !self.state.lock().pending.is_empty()
    }

    /// Whether everything ever staged is in the engine (or failed): nothing
    /// staged, no commit running.
    pub fn is_idle(&self) -> bool {
        let state = self.state.lock();
        state.pending.is_empty() && state.in_flight.is_none()
    }

    /// Commits everything staged so far to `storage` as one batch; when
    /// another caller's commit is running, blocks until it is done first.
    /// On return every op staged before the call is in the engine (or the
    /// call failed). For callers that may block their thread; async callers
    /// use [`WriteGroup::committed`].
    ///
    /// # Errors
    /// The engine's write failed now or in an earlier commit (the group is
    /// poisoned: nothing staged since is committed).
    pub fn commit(&self, storage: &dyn Storage) -> StorageResult<()> {
        let guard = self.commit.lock();
        self.commit_locked(guard, storage)
    }

    /// As [`WriteGroup::commit`], but while another commit runs it waits
    /// without blocking the thread, so the thread keeps serving (and
    /// staging more writes for the next commit, which takes them all).
    ///
    /// # Errors
    /// As [`WriteGroup::commit`].
    pub async fn committed(&self, storage: &dyn Storage) -> StorageResult<()> {
        let mut finished = self.finished.subscribe();
        let Some(target) = self.carrier()? else {
            return Ok(());
        };
        loop {
            if *finished.borrow_and_update() >= target {
                return match &self.state.lock().failure {
                    Some(failure) => Err(poisoned(failure)),
                    None => Ok(()),
                };
            }
            let committing = match self.commit.try_lock() {
                Some(guard) => {
                    self.commit_locked(guard, storage)?;
                    false
                }
                None => true,
            };
            // Another commit runs; its end publishes `finished`.
            if committing && finished.changed().await.is_err() {
                return Err(StorageError::Closed);
            }
        }
    }

    /// Waits until everything staged before this call is in the engine,
    /// committed by someone else: an event loop that commits when it runs
    /// dry (`Db::loop_idle`). So every writer of one round of the loop
    /// shares one commit, instead of each committing its own.
    ///
    /// # Errors
    /// As [`WriteGroup::commit`].
    pub async fn committed_by_others(&self) -> StorageResult<()> {
        let mut finished = self.finished.subscribe();
        let Some(target) = self.carrier()? else {
            return Ok(());
        };
        if finished.wait_for(|done| *done >= target).await.is_err() {
            return Err(StorageError::Closed);
        }
        match &self.state.lock().failure {
            Some(failure) => Err(poisoned(failure)),
            None => Ok(()),
        }
    }

    /// The number of the commit that carries everything staged so far
    /// (`None`: everything is in the engine already).
    fn carrier(&self) -> StorageResult<Option<u64>> {
        let state = self.state.lock();
        if let Some(failure) = &state.failure {
            return Err(poisoned(failure));
        }
        Ok(if !state.pending.is_empty() {
            Some(state.started + 1)
        } else if state.in_flight.is_some() {
            Some(state.started)
        } else {
            None
        })
    }

    /// Commits what is pending, holding the commit lock.
    fn commit_locked(
        &self,
        _commit: MutexGuard<'_, ()>,
        storage: &dyn Storage,
    ) -> StorageResult<()> {
        let (taken, number) = {
            let mut state = self.state.lock();
            if let Some(failure) = &state.failure {
                return Err(poisoned(failure));
            }
            if state.pending.is_empty() {
                return Ok(());
            }
            let taken = Arc::new(std::mem::take(&mut state.pending));
            state.in_flight = Some(taken.clone());
            state.started += 1;
            (taken, state.started)
        };
        let mut dropped: Vec<String> = Vec::new();
        let written = loop {
            match storage.write(taken.batch(&dropped)) {
                // A keyspace dropped after its write was staged: that
                // write happened before the drop; commit the rest.
                Err(StorageError::NoSuchTable(t))
                    if !dropped.contains(&t) && taken.tables.iter().any(|(n, _)| *n == t) =>
                {
                    dropped.push(t);
                }
                other => break other,
            }
        };
        {
            let mut state = self.state.lock();
            state.in_flight = None;
            if let Err(e) = &written {
                state.failure = Some(e.to_string());
            }
        }
        self.finished.send_replace(number);
        written
    }
}

/// The error of every commit and staging after a failed commit.
fn poisoned(failure: &str) -> StorageError {
    StorageError::Engine {
        op: "write (an earlier batched write failed; the node refuses writes until restarted)",
        message: failure.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use fulcrum_storage::MemoryStorage;

    use super::*;

    fn storage() -> MemoryStorage {
        let s = MemoryStorage::new();
        s.create_table("data.t").unwrap();
        s.create_table("aae").unwrap();
        s
    }

    fn stage_put(group: &WriteGroup, table: &str, key: &str, value: &str) {
        let mut s = group.stage().unwrap();
        s.put(
            table,
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }

    #[test]
    fn staged_ops_are_seen_by_writers_and_reach_the_engine_on_commit() {
        let (engine, group) = (storage(), WriteGroup::new());
        stage_put(&group, "data.t", "k", "v1");
        stage_put(&group, "data.t", "k", "v2");
        stage_put(&group, "aae", "k", "d");
        assert_eq!(
            group.staged("data.t", b"k"),
            Some(Staged::Put(Bytes::from_static(b"v2")))
        );
        assert_eq!(engine.get("data.t", b"k").unwrap(), None);
        assert!(group.has_pending());
        assert!(group.holds("data.t", b"k") && group.holds("aae", b"k"));
        assert!(!group.holds("data.t", b"other") && !group.holds("data.u", b"k"));
        group.commit(&engine).unwrap();
        assert!(!group.has_pending());
        assert_eq!(group.staged("data.t", b"k"), None);
        assert!(!group.holds("data.t", b"k"));
        assert_eq!(
            engine.get("data.t", b"k").unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert_eq!(engine.get("aae", b"k").unwrap().as_deref(), Some(&b"d"[..]));
        // The last op of a key wins, removals included.
        group
            .stage()
            .unwrap()
            .remove("data.t", Bytes::from_static(b"k"));
        assert_eq!(group.staged("data.t", b"k"), Some(Staged::Remove));
        group.commit(&engine).unwrap();
        assert_eq!(engine.get("data.t", b"k").unwrap(), None);
    }

    #[tokio::test]
    async fn a_writer_left_to_another_committer_returns_once_its_write_is_in_the_engine() {
        let engine = Arc::new(storage());
        let group = Arc::new(WriteGroup::new());
        // Nothing staged: nothing to wait for.
        group.committed_by_others().await.unwrap();
        stage_put(&group, "data.t", "k", "v");
        let waiter = tokio::spawn({
            let (engine, group) = (engine.clone(), group.clone());
            async move {
                group.committed_by_others().await.unwrap();
                engine.get("data.t", b"k").unwrap()
            }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "nobody committed yet");
        group.commit(engine.as_ref()).unwrap();
        assert_eq!(waiter.await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_commit_with_nothing_staged_writes_nothing() {
        let (engine, group) = (storage(), WriteGroup::new());
        group.commit(&engine).unwrap();
        let rows = engine
            .scan("data.t", Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap();
        assert!(rows.is_empty());
    }

    #[test]
    fn writes_to_a_dropped_table_are_discarded_and_the_rest_committed() {
        let (engine, group) = (storage(), WriteGroup::new());
        engine.create_table("data.gone").unwrap();
        stage_put(&group, "data.gone", "k", "v");
        stage_put(&group, "data.t", "k", "v");
        engine.drop_table("data.gone").unwrap();
        group.commit(&engine).unwrap();
        assert_eq!(
            engine.get("data.t", b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        // Not poisoned.
        stage_put(&group, "data.t", "k2", "v");
        group.commit(&engine).unwrap();
    }

    #[test]
    fn a_failed_commit_fails_every_later_commit_and_staging() {
        let (engine, group) = (storage(), WriteGroup::new());
        stage_put(&group, "data.t", "k", "v");
        engine.close().unwrap();
        assert!(group.commit(&engine).is_err());
        assert!(matches!(
            group.commit(&engine),
            Err(StorageError::Engine { .. })
        ));
        assert!(matches!(group.stage(), Err(StorageError::Engine { .. })));
        assert_eq!(group.staged("data.t", b"k"), None);
    }

    #[tokio::test]
    async fn an_async_commit_takes_what_is_staged_and_returns_at_once_when_idle() {
        let (engine, group) = (storage(), WriteGroup::new());
        group.committed(&engine).await.unwrap();
        stage_put(&group, "data.t", "k", "v");
        group.committed(&engine).await.unwrap();
        assert!(group.is_idle());
        assert_eq!(
            engine.get("data.t", b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    /// Threads stage increasing values of their own key and of a shared
    /// key, each under a key lock as writers do, and commit (blocking or
    /// async) at random; a reader watches the engine. The engine never
    /// shows a key going back, and ends with every key's last value.
    #[test]
    fn racing_commits_reach_the_engine_in_staging_order() {
        const THREADS: usize = 4;
        const WRITES: u32 = 500;
        let engine = Arc::new(storage());
        let group = Arc::new(WriteGroup::new());
        let shared_lock = Arc::new(Mutex::new(0u32));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (engine, done) = (engine.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = [0u32; THREADS + 1];
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    for (i, last) in seen.iter_mut().enumerate() {
                        let key = if i == THREADS {
                            "shared".to_string()
                        } else {
                            format!("own{i}")
                        };
                        if let Some(v) = engine.get("data.t", key.as_bytes()).unwrap() {
                            let n = u32::from_be_bytes(v[..4].try_into().unwrap());
                            assert!(n >= *last, "{key}: {n} after {last}");
                            *last = n;
                        }
                    }
                }
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runtime = Arc::new(runtime);
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (engine, group, shared_lock, runtime) = (
                    engine.clone(),
                    group.clone(),
                    shared_lock.clone(),
                    runtime.clone(),
                );
                std::thread::spawn(move || {
                    for n in 1..=WRITES {
                        group.stage().unwrap().put(
                            "data.t",
                            Bytes::from(format!("own{t}")),
                            Bytes::copy_from_slice(&n.to_be_bytes()),
                        );
                        {
                            // The shared key's lock: its value only grows.
                            let mut last = shared_lock.lock();
                            *last += 1;
                            group.stage().unwrap().put(
                                "data.t",
                                Bytes::from_static(b"shared"),
                                Bytes::copy_from_slice(&last.to_be_bytes()),
                            );
                        }
                        match n % 3 {
                            0 => group.commit(engine.as_ref()).unwrap(),
                            1 => runtime.block_on(group.committed(engine.as_ref())).unwrap(),
                            _ => {}
                        }
                    }
                    group.commit(engine.as_ref()).unwrap();
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        reader.join().unwrap();
        for t in 0..THREADS {
            let v = engine
                .get("data.t", format!("own{t}").as_bytes())
                .unwrap()
                .unwrap();
            assert_eq!(v[..], WRITES.to_be_bytes());
        }
        let v = engine.get("data.t", b"shared").unwrap().unwrap();
        assert_eq!(v[..], (WRITES * THREADS as u32).to_be_bytes());
    }
}
