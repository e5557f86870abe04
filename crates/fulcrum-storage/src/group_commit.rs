//! [`GroupCommit`]: turns an [`FsyncPolicy`] into durability for many
//! concurrent async writers, sharing one fsync among all who wait for it.
//!
//! Protocol for a writer: call `storage.write(batch)`; once it returned, call
//! [`GroupCommit::durable`] and acknowledge the client after it returned
//! `Ok`. Call `durable` under every policy — it is what tells the committer
//! that there is something to sync.
//!
//! - `always`: `durable` returns once an fsync that *started after the call*
//!   has completed. A dedicated OS thread (fsync blocks; it must not run on
//!   a tokio worker) runs one sync at a time; every request that arrives
//!   while a sync runs is served by the next one, so N concurrent writers
//!   cost about two fsyncs, not N. In leader mode ([`GroupCommit::leader`],
//!   the node's data path) there is no thread: the first waiter that finds
//!   no sync running runs it on its own thread and the others wait for it,
//!   so a sync costs no thread hand-offs. On a runtime with a single
//!   worker the leader hands its sync to tokio's blocking pool instead, so
//!   that the one worker keeps serving meanwhile. On an event-loop thread
//!   marked with [`GroupCommit::sync_when_idle_on_this_thread`], waiters do
//!   not lead: the loop calls [`GroupCommit::sync_waiting`] each time it
//!   runs out of ready work, so that one sync covers every request the
//!   round read (Redis's "fsync before sleep"), and also after every few
//!   hundred units of work ([`GroupCommit::loop_tick_due`]) in case it never
//!   runs dry.
//! - `interval:MS`: `durable` returns at once; the thread syncs every MS
//!   milliseconds if there were requests since its last sync. A crash loses
//!   at most about MS milliseconds of acknowledged writes.
//! - `never`: `durable` returns at once; the committer syncs only at
//!   shutdown (the engine may still fsync on its own, see
//!   [`crate::FjallStorage`]).
//!
//! # Why a completed sync covers every waiter it wakes
//!
//! State: `requested` (under a mutex) counts `durable` calls under `always`;
//! each call takes the next value as its ticket `t`. `synced` (published
//! through a `tokio::sync::watch`) is the highest ticket covered by a
//! completed sync. The thread loops: wait until `requested > synced`; read
//! `target = requested` under the mutex; call `storage.sync()`; publish
//! `synced = target`. A waiter returns `Ok` once `synced >= t`.
//!
//! Take a writer W with ticket `t` that is woken by the sync S which
//! published `synced = target >= t`. S read `target` under the mutex, and
//! `target >= t` means W's increment (also under the mutex) came first. W
//! incremented only after its `storage.write` returned. So: W's write
//! returned → W took ticket `t` → S read `target` → S called
//! `storage.sync()`. S's sync therefore started after W's write returned, and
//! by the [`Storage`] contract it made that write durable. Since `synced`
//! only grows and only after a successful sync, no waiter is released by an
//! earlier sync or by a failed one.
//!
//! # Inline mode (simulation)
//!
//! [`GroupCommit::inline`] makes a committer without a thread: under
//! `always`, `durable` waits a modelled fsync latency on the caller's tokio
//! timer and then syncs on the caller's task. A deterministic simulation
//! needs it: an OS thread finishes in real time, so its waiters would wake
//! at an unrepeatable simulated instant. Each call syncs on its own (no
//! sharing); the sync still starts after the call, so the promise above
//! holds.
//!
//! # Failures
//!
//! A failed (or panicking) sync poisons the committer: every current and
//! later waiter gets `StorageError::Poisoned`, and the thread stops syncing.
//! fsync errors are not retryable — after a failed fsync the kernel may have
//! dropped the dirty pages and a retry can falsely succeed ("fsyncgate") —
//! so the node must stop acknowledging writes and restart into recovery.
//!
//! # Shutdown
//!
//! [`GroupCommit::shutdown`] (also run by `Drop`) refuses new requests,
//! lets the thread do a final sync (under every policy, so `never` still
//! syncs on a clean stop), wakes everyone still waiting and joins the
//! thread. It blocks for that fsync.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::error::{StorageError, StorageResult};

/// How many times a would-be leader yields (while each round brings more
/// tickets) before it syncs.
const MAX_LEADER_YIELDS: u32 = 4;

/// How many units of work (see [`GroupCommit::loop_tick_due`]) an event loop
/// does at most while tickets wait before it syncs them: the loop syncs
/// when it runs out of ready work, and a loop that never does must not
/// hold acknowledgements back forever.
const LOOP_PATIENCE_TICKS: u32 = 256;

thread_local! {
    /// Set on an event-loop thread that calls [`GroupCommit::sync_waiting`]
    /// whenever it runs out of ready work.
    static SYNCS_WHEN_IDLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Units of work this event loop did since it last called
    /// [`GroupCommit::sync_waiting`].
    static LOOP_TICKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

use crate::traits::Storage;

/// When a write is acknowledged relative to fsync.
///
/// Text form (config files, flags): `always`, `interval:MS` (whole
/// milliseconds, at least 1, e.g. `interval:5`), `never`. `Display` prints
/// the same form, so it round-trips (for `Interval`, whole milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FsyncPolicy {
    /// Acknowledge after an fsync that started after the write.
    #[default]
    Always,
    /// Acknowledge at once; fsync every so often.
    Interval(Duration),
    /// Acknowledge at once; fsync only at shutdown (and when the engine
    /// decides to).
    Never,
}

/// A text that is not an [`FsyncPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fsync policy '{value}': expected always, never or interval:<ms> \
     (whole milliseconds, at least 1, e.g. interval:5)"
)]
pub struct FsyncPolicyParseError {
    value: String,
}

impl FsyncPolicyParseError {
    /// The rejected text.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl FromStr for FsyncPolicy {
    type Err = FsyncPolicyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FsyncPolicyParseError {
            value: s.to_string(),
        };
        let text = s.trim().to_ascii_lowercase();
        match text.as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms = text.strip_prefix("interval:").ok_or_else(bad)?;
                let ms: u64 = ms.trim().parse().map_err(|_| bad())?;
                if ms == 0 {
                    return Err(bad());
                }
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(every) => write!(f, "interval:{}", every.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

/// Shares fsyncs among concurrent writers according to an [`FsyncPolicy`].
/// See the module docs for the protocol and its proof.
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    storage: Arc<dyn Storage>,
    policy: FsyncPolicy,
    requests: Mutex<Requests>,
    /// Signals the sync thread: new requests (`always`) or shutdown.
    wake: Condvar,
    progress: watch::Sender<Progress>,
    durable_requests: AtomicU64,
    syncs: AtomicU64,
    /// Inline mode: no thread; `durable` sleeps this long, then syncs.
    inline: Option<Duration>,
    /// Leader mode (`always` only): no thread; a waiting caller runs the
    /// sync itself when none is running (see [`GroupCommit::leader`]).
    leader: bool,
    /// Run before every sync, in the same step (leader and inline modes,
    /// `always` only).
    before_sync: Option<BeforeSync>,
}

/// Work run right before each sync, after the sync's target ticket was
/// read: a node moves its staged writes into the engine here, so that one
/// round of durability costs one engine commit as well as one fsync.
///
/// Why the sync still covers every ticket up to its target: a writer that
/// leaves its write to this hook must have made it visible to the hook
/// (staged it) *before* taking its ticket; the hook runs after the target
/// was read, so it moves that write into the engine before the sync
/// starts. A failure of the hook fails the sync: the committer is
/// poisoned, as when an fsync fails.
pub type BeforeSync = Arc<dyn Fn() -> StorageResult<()> + Send + Sync>;

#[derive(Debug, Default)]
struct Requests {
    /// Tickets handed out so far (every policy counts, so `interval` knows
    /// whether there is anything to sync).
    requested: u64,
    shutdown: bool,
    /// Leader mode: a caller is running a sync now.
    syncing: bool,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    /// Highest ticket covered by a completed, successful sync.
    synced: u64,
    /// Set when a sync failed; never cleared.
    failure: Option<Arc<str>>,
    /// The sync thread has exited.
    stopped: bool,
}

impl fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("policy", &self.shared.policy)
            .field("durable_requests", &self.durable_requests())
            .field("syncs", &self.syncs())
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

impl GroupCommit {
    /// Starts the committer and its sync thread (`fulcrum-fsync`).
    ///
    /// An `Interval` shorter than 1 ms is treated as 1 ms.
    ///
    /// # Errors
    /// `StorageError::Io` if the OS refuses to start the thread.
    pub fn new(storage: Arc<dyn Storage>, policy: FsyncPolicy) -> StorageResult<GroupCommit> {
        let shared = Arc::new(Shared::new(storage, policy, None));
        let thread = std::thread::Builder::new()
            .name("fulcrum-fsync".to_string())
            .spawn({
                let shared = shared.clone();
                move || sync_thread(&shared)
            })
            .map_err(|source| StorageError::Io {
                op: "start the group-commit thread",
                source,
            })?;
        Ok(GroupCommit {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A committer whose `always` syncs run on the waiting callers' own
    /// threads, leader/follower style, instead of on a sync thread: a
    /// caller of [`GroupCommit::durable`] that finds no sync running becomes
    /// the leader and runs one (blocking its thread for the fsync, as a
    /// single-threaded server's event loop would), covering every ticket
    /// taken before it started; callers arriving meanwhile wait for the
    /// next leader, one of themselves. This saves the hand-off to and from
    /// a sync thread (two thread wake-ups per sync) and lets the syncs
    /// follow the request load. For a multi-threaded async runtime whose
    /// other workers keep serving while one syncs. Under `interval` and
    /// `never` it is the same as [`GroupCommit::new`].
    ///
    /// # Errors
    /// As [`GroupCommit::new`].
    pub fn leader(storage: Arc<dyn Storage>, policy: FsyncPolicy) -> StorageResult<GroupCommit> {
        Self::leader_with(storage, policy, None)
    }

    /// As [`GroupCommit::leader`], with work that each sync's leader runs
    /// right before the sync, in the same step (see [`BeforeSync`]); only
    /// under `always` (see [`GroupCommit::runs_before_sync`]).
    ///
    /// # Errors
    /// As [`GroupCommit::new`].
    pub fn leader_with(
        storage: Arc<dyn Storage>,
        policy: FsyncPolicy,
        before_sync: Option<BeforeSync>,
    ) -> StorageResult<GroupCommit> {
        if policy != FsyncPolicy::Always {
            return Self::new(storage, policy);
        }
        let mut shared = Shared::new(storage, policy, None);
        shared.leader = true;
        shared.before_sync = before_sync;
        Ok(GroupCommit {
            shared: Arc::new(shared),
            thread: Mutex::new(None),
        })
    }

    /// A committer without a thread, for deterministic simulation (see the
    /// module docs): under `always`, [`GroupCommit::durable`] sleeps
    /// `latency` (a modelled fsync, on the caller's tokio timer) and then
    /// syncs `storage` on the caller's task. Under `interval`, nothing is
    /// synced before shutdown (as `never`). [`GroupCommit::shutdown`] does
    /// the final sync inline.
    pub fn inline(
        storage: Arc<dyn Storage>,
        policy: FsyncPolicy,
        latency: Duration,
    ) -> GroupCommit {
        Self::inline_with(storage, policy, latency, None)
    }

    /// As [`GroupCommit::inline`], with work that each sync runs right
    /// before it syncs (see [`BeforeSync`]); only under `always`, as for
    /// [`GroupCommit::leader_with`].
    pub fn inline_with(
        storage: Arc<dyn Storage>,
        policy: FsyncPolicy,
        latency: Duration,
        before_sync: Option<BeforeSync>,
    ) -> GroupCommit {
        let mut shared = Shared::new(storage, policy, Some(latency));
        if shared.policy == FsyncPolicy::Always {
            shared.before_sync = before_sync;
        }
        GroupCommit {
            shared: Arc::new(shared),
            thread: Mutex::new(None),
        }
    }

    /// Waits until every write that returned before this call is durable as
    /// the policy demands: under `always`, until a sync that started after
    /// this call completed; under `interval` and `never`, not at all.
    ///
    /// Cancel-safe: dropping the future leaves the committer consistent.
    ///
    /// # Errors
    /// `StorageError::Poisoned` if this or an earlier sync failed;
    /// `StorageError::Closed` after [`GroupCommit::shutdown`].
    pub async fn durable(&self) -> StorageResult<()> {
        self.shared.durable_requests.fetch_add(1, Ordering::Relaxed);
        if let Some(failure) = self.failure() {
            return Err(StorageError::Poisoned(failure.to_string()));
        }
        let ticket = {
            let mut requests = self.shared.requests.lock();
            if requests.shutdown {
                return Err(StorageError::Closed);
            }
            requests.requested += 1;
            requests.requested
        };
        if self.shared.policy != FsyncPolicy::Always {
            return Ok(());
        }
        if let Some(latency) = self.shared.inline {
            tokio::time::sleep(latency).await;
            return self.sync_inline(ticket);
        }
        if self.shared.leader {
            return self.lead_or_follow(ticket).await;
        }
        self.shared.wake.notify_one();

        let mut progress = self.shared.progress.subscribe();
        let outcome = progress
            .wait_for(|p| p.synced >= ticket || p.failure.is_some() || p.stopped)
            .await
            .map(|p| (p.synced >= ticket, p.failure.clone()));
        match outcome {
            Ok((true, _)) => Ok(()),
            Ok((false, Some(failure))) => Err(StorageError::Poisoned(failure.to_string())),
            // The thread stopped without covering this ticket, or the
            // channel is gone: only possible around shutdown.
            Ok((false, None)) | Err(_) => Err(StorageError::Closed),
        }
    }

    /// Refuses new requests, does a final sync (every policy), releases all
    /// waiters and joins the sync thread. Blocks for that fsync. Calling it
    /// again is a no-op returning `Ok`.
    ///
    /// # Errors
    /// `StorageError::Poisoned` if the final or an earlier sync failed;
    /// `StorageError::Engine` if the sync thread panicked.
    pub fn shutdown(&self) -> StorageResult<()> {
        if self.shared.inline.is_some() || self.shared.leader {
            return self.shutdown_inline();
        }
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        self.shared.requests.lock().shutdown = true;
        self.shared.wake.notify_all();
        if thread.join().is_err() {
            return Err(StorageError::Engine {
                op: "group commit shutdown",
                message: "the fsync thread panicked".to_string(),
            });
        }
        match self.failure() {
            Some(failure) => Err(StorageError::Poisoned(failure.to_string())),
            None => Ok(()),
        }
    }

    /// Leader mode: wait until a sync covers `ticket`, running it here
    /// when none is running.
    ///
    /// Why it is safe: a leader reads `target = requested` under the mutex
    /// and only then syncs, so as with the sync thread, every ticket up to
    /// `target` was taken after its write returned and before the sync
    /// started. The leader clears `syncing` before it publishes, so a
    /// follower woken by the publication and not covered by it finds no
    /// sync running and leads the next one; no follower waits for a sync
    /// nobody will run.
    async fn lead_or_follow(&self, ticket: u64) -> StorageResult<()> {
        let mut progress = self.shared.progress.subscribe();
        // Tickets seen before the last yield (`None`: not yielded yet).
        let mut seen: Option<u64> = None;
        let mut yields = 0;
        // On an event loop that syncs when idle (or after enough work, see
        // `loop_tick`): leave the sync to it.
        let on_loop = SYNCS_WHEN_IDLE.get();
        loop {
            {
                let p = progress.borrow_and_update();
                if p.synced >= ticket {
                    return Ok(());
                }
                if let Some(failure) = &p.failure {
                    return Err(StorageError::Poisoned(failure.to_string()));
                }
                if p.stopped {
                    return Err(StorageError::Closed);
                }
            }
            if on_loop {
                if progress.changed().await.is_err() {
                    return Err(StorageError::Closed);
                }
                continue;
            }
            let (syncing, requested) = {
                let r = self.shared.requests.lock();
                (r.syncing, r.requested)
            };
            if !syncing && yields < MAX_LEADER_YIELDS && seen.is_none_or(|s| requested > s) {
                // About to lead: first let every task that is ready to run
                // take its ticket, so that this sync covers them all (on
                // one thread, they could not do so during the sync); again
                // while each round brings more.
                seen = Some(requested);
                yields += 1;
                tokio::task::yield_now().await;
                continue;
            }
            let target = {
                let mut requests = self.shared.requests.lock();
                if requests.syncing {
                    None
                } else {
                    requests.syncing = true;
                    Some(requests.requested)
                }
            };
            match target {
                Some(target) if !on_loop && self.shared.offload() => {
                    // The sync and its publication run on the blocking
                    // pool (so they complete even if this task is
                    // dropped); this task waits for them as a follower.
                    let shared = self.shared.clone();
                    drop(tokio::task::spawn_blocking(move || shared.lead(target)));
                }
                Some(target) => return self.shared.lead(target),
                None => {
                    if progress.changed().await.is_err() {
                        return Err(StorageError::Closed);
                    }
                }
            }
        }
    }

    /// Marks the current thread as an event loop that calls
    /// [`GroupCommit::sync_waiting`] each time it runs out of ready work
    /// (for a tokio current-thread runtime: from `on_thread_park`). Leader
    /// mode's waiters on this thread then leave the sync to the loop
    /// instead of leading one, so it covers the whole round. The loop must
    /// also call [`GroupCommit::loop_tick_due`] for each unit of work it
    /// does, and sync when told, so that it syncs even if it never runs
    /// dry.
    pub fn sync_when_idle_on_this_thread() {
        SYNCS_WHEN_IDLE.set(true);
    }

    /// Counts one unit of work (a command, a read) of the event loop on
    /// this thread; true every [`LOOP_PATIENCE_TICKS`] units since the
    /// loop last called [`GroupCommit::sync_waiting`]: then the loop must
    /// call it. So waiters on a loop that never runs out of ready work
    /// (other clients' reads, say) still get their sync, after a bounded
    /// amount of work instead of after a timer per waiter (which cost
    /// about 3% of the loop's time).
    pub fn loop_tick_due() -> bool {
        let ticks = LOOP_TICKS.get() + 1;
        let due = ticks >= LOOP_PATIENCE_TICKS;
        LOOP_TICKS.set(if due { 0 } else { ticks });
        due
    }

    /// Whether the current thread was marked with
    /// [`GroupCommit::sync_when_idle_on_this_thread`].
    pub fn on_event_loop() -> bool {
        SYNCS_WHEN_IDLE.get()
    }

    /// Leader mode under `always`: if tickets are waiting and no sync is
    /// running, runs one here (blocking the thread for the fsync) and
    /// publishes it. Otherwise, and under other modes, does nothing. For
    /// an event loop that found no more ready work (see
    /// [`GroupCommit::sync_when_idle_on_this_thread`]).
    ///
    /// # Errors
    /// The sync failed: the committer is poisoned and every waiter gets
    /// the error.
    pub fn sync_waiting(&self) -> StorageResult<()> {
        LOOP_TICKS.set(0);
        if !self.shared.leader {
            return Ok(());
        }
        let target = {
            let mut requests = self.shared.requests.lock();
            let progress = self.shared.progress.borrow();
            if requests.syncing
                || requests.shutdown
                || progress.failure.is_some()
                || requests.requested <= progress.synced
            {
                return Ok(());
            }
            requests.syncing = true;
            requests.requested
        };
        self.shared.lead(target)
    }

    /// Inline mode: one sync on the caller's task covering `ticket`.
    fn sync_inline(&self, ticket: u64) -> StorageResult<()> {
        if let Some(failure) = self.failure() {
            return Err(StorageError::Poisoned(failure.to_string()));
        }
        publish(&self.shared, ticket, sync_once(&self.shared))
    }

    /// Inline mode's shutdown: refuse new requests, one final sync.
    fn shutdown_inline(&self) -> StorageResult<()> {
        let target = {
            let mut requests = self.shared.requests.lock();
            if requests.shutdown {
                return Ok(());
            }
            requests.shutdown = true;
            requests.requested
        };
        let outcome = self.sync_inline(target);
        self.shared.progress.send_modify(|p| p.stopped = true);
        outcome
    }

    /// Whether every sync first runs the [`BeforeSync`] work given to
    /// [`GroupCommit::leader_with`] or [`GroupCommit::inline_with`] (so a
    /// caller of [`GroupCommit::durable`] may leave that work to it).
    pub fn runs_before_sync(&self) -> bool {
        self.shared.before_sync.is_some()
    }

    /// The policy in force.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy
    }

    /// The storage this committer syncs.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared.storage
    }

    /// Number of [`GroupCommit::durable`] calls so far (metric).
    pub fn durable_requests(&self) -> u64 {
        self.shared.durable_requests.load(Ordering::Relaxed)
    }

    /// Number of successful `storage.sync()` calls so far (metric).
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// True once a sync has failed; every later `durable` fails.
    pub fn is_poisoned(&self) -> bool {
        self.failure().is_some()
    }

    fn failure(&self) -> Option<Arc<str>> {
        self.shared.progress.borrow().failure.clone()
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "group commit: final sync at shutdown failed");
        }
    }
}

impl Shared {
    fn new(storage: Arc<dyn Storage>, policy: FsyncPolicy, inline: Option<Duration>) -> Shared {
        let policy = match policy {
            FsyncPolicy::Interval(every) => {
                FsyncPolicy::Interval(every.max(Duration::from_millis(1)))
            }
            other => other,
        };
        Shared {
            storage,
            policy,
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            progress: watch::Sender::new(Progress::default()),
            durable_requests: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            inline,
            leader: false,
            before_sync: None,
        }
    }

    /// Leader mode: whether a leader on the current runtime hands its
    /// sync to the blocking pool: when the runtime has one worker. An
    /// inline sync would stop all its serving for the fsync (a mixed
    /// read/write load at `always` served about 35% more with the
    /// hand-off, BENCHMARKS.md); with more workers the others serve
    /// meanwhile and the hand-off (two thread wake-ups) is not worth it.
    fn offload(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().num_workers() == 1)
    }

    /// Leader mode: runs the sync that covers tickets up to `target`,
    /// clears `syncing` and publishes the outcome.
    fn lead(&self, target: u64) -> StorageResult<()> {
        let outcome = sync_once(self);
        self.requests.lock().syncing = false;
        publish(self, target, outcome)
    }
}

/// Publishes the outcome of a sync that covered tickets up to `target`.
fn publish(shared: &Shared, target: u64, outcome: Result<(), String>) -> StorageResult<()> {
    match outcome {
        Ok(()) => {
            shared
                .progress
                .send_modify(|p| p.synced = p.synced.max(target));
            Ok(())
        }
        Err(message) => {
            tracing::error!(
                error = %message,
                "fsync failed; refusing all further durability requests"
            );
            let failure: Arc<str> = Arc::from(message.as_str());
            shared
                .progress
                .send_modify(|p| p.failure = Some(failure.clone()));
            Err(StorageError::Poisoned(message))
        }
    }
}

/// Body of the `fulcrum-fsync` thread.
fn sync_thread(shared: &Shared) {
    // Highest ticket covered by a completed sync (mirrors `Progress::synced`).
    let mut synced = 0u64;
    loop {
        let (target, shutdown) = {
            let mut requests = shared.requests.lock();
            match shared.policy {
                FsyncPolicy::Always => {
                    while requests.requested == synced && !requests.shutdown {
                        shared.wake.wait(&mut requests);
                    }
                }
                FsyncPolicy::Interval(every) => {
                    let deadline = Instant::now() + every;
                    while !requests.shutdown {
                        if shared.wake.wait_until(&mut requests, deadline).timed_out() {
                            break;
                        }
                    }
                }
                FsyncPolicy::Never => {
                    while !requests.shutdown {
                        shared.wake.wait(&mut requests);
                    }
                }
            }
            (requests.requested, requests.shutdown)
        };
        // At shutdown, sync even without requests: writers under `never`
        // may not have asked, and a clean stop should leave nothing behind.
        if target == synced && !shutdown {
            continue;
        }
        match sync_once(shared) {
            Ok(()) => {
                synced = target;
                shared.progress.send_modify(|p| p.synced = target);
            }
            Err(message) => {
                tracing::error!(
                    error = %message,
                    "fsync failed; refusing all further durability requests"
                );
                shared
                    .progress
                    .send_modify(|p| p.failure = Some(Arc::from(message.as_str())));
                break;
            }
        }
        if shutdown {
            break;
        }
    }
    shared.progress.send_modify(|p| p.stopped = true);
}

fn sync_once(shared: &Shared) -> Result<(), String> {
    let work = || {
        if let Some(before) = &shared.before_sync {
            before()?;
        }
        shared.storage.sync()
    };
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(())) => {
            shared.syncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(format!("storage sync panicked: {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use bytes::Bytes;

    use super::*;
    use crate::traits::{Batch, ScanItem, TableStats};
    use crate::MemoryStorage;

    #[test]
    fn policy_parses_and_round_trips() {
        for text in ["always", "never", "interval:5", "interval:1000"] {
            let policy: FsyncPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!(
            "interval:5".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Interval(Duration::from_millis(5))
        );
        assert_eq!(
            " Always ".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Always
        );
        for bad in [
            "sometimes",
            "",
            "interval",
            "interval:",
            "interval:0",
            "interval:-1",
            "interval:5ms",
        ] {
            let err = bad.parse::<FsyncPolicy>().unwrap_err();
            assert_eq!(err.value(), bad);
            let msg = err.to_string();
            assert!(msg.contains(&format!("'{bad}'")), "{msg}");
            assert!(msg.contains("interval:<ms>"), "{msg}");
        }
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::Always);
    }

    /// A storage whose `sync` blocks until the test opens the gate.
    struct GatedSync {
        inner: Arc<MemoryStorage>,
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl GatedSync {
        /// A memory engine with table `t`, and the gated view of it.
        fn over_memory() -> (Arc<MemoryStorage>, Arc<GatedSync>) {
            let memory = Arc::new(MemoryStorage::new());
            memory.create_table("t").unwrap();
            let gated = Arc::new(GatedSync {
                inner: memory.clone(),
                open: Mutex::new(false),
                opened: Condvar::new(),
            });
            (memory, gated)
        }

        fn open_gate(&self) {
            *self.open.lock() = true;
            self.opened.notify_all();
        }
    }

    impl Storage for GatedSync {
        fn create_table(&self, table: &str) -> StorageResult<()> {
            self.inner.create_table(table)
        }
        fn drop_table(&self, table: &str) -> StorageResult<()> {
            self.inner.drop_table(table)
        }
        fn tables(&self) -> StorageResult<Vec<String>> {
            self.inner.tables()
        }
        fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>> {
            self.inner.get(table, key)
        }
        fn write(&self, batch: Batch) -> StorageResult<()> {
            self.inner.write(batch)
        }
        fn scan(
            &self,
            table: &str,
            start: Bound<&[u8]>,
            end: Bound<&[u8]>,
            limit: usize,
        ) -> StorageResult<Vec<ScanItem>> {
            self.inner.scan(table, start, end, limit)
        }
        fn sync(&self) -> StorageResult<()> {
            let mut open = self.open.lock();
            while !*open {
                self.opened.wait(&mut open);
            }
            drop(open);
            self.inner.sync()
        }
        fn stats(&self, table: &str) -> StorageResult<TableStats> {
            self.inner.stats(table)
        }
    }

    /// Delegates to memory, but `sync` fails (or panics).
    struct FailingSync {
        inner: MemoryStorage,
        panic: bool,
    }

    impl Storage for FailingSync {
        fn create_table(&self, table: &str) -> StorageResult<()> {
            self.inner.create_table(table)
        }
        fn drop_table(&self, table: &str) -> StorageResult<()> {
            self.inner.drop_table(table)
        }
        fn tables(&self) -> StorageResult<Vec<String>> {
            self.inner.tables()
        }
        fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>> {
            self.inner.get(table, key)
        }
        fn write(&self, batch: Batch) -> StorageResult<()> {
            self.inner.write(batch)
        }
        fn scan(
            &self,
            table: &str,
            start: Bound<&[u8]>,
            end: Bound<&[u8]>,
            limit: usize,
        ) -> StorageResult<Vec<ScanItem>> {
            self.inner.scan(table, start, end, limit)
        }
        fn sync(&self) -> StorageResult<()> {
            if self.panic {
                panic!("disk on fire");
            }
            Err(StorageError::Io {
                op: "sync",
                source: std::io::Error::other("EIO from the test double"),
            })
        }
        fn stats(&self, table: &str) -> StorageResult<TableStats> {
            self.inner.stats(table)
        }
    }

    fn put(storage: &dyn Storage, key: String) {
        let mut batch = Batch::new();
        batch.put("t", key, "v");
        storage.write(batch).unwrap();
    }

    /// Spawns `n` writers on the current runtime, each putting `k<i>` and
    /// then waiting for durability.
    fn spawn_writers(
        gc: &Arc<GroupCommit>,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<StorageResult<()>>> {
        (0..n)
            .map(|i| {
                let gc = gc.clone();
                tokio::spawn(async move {
                    put(gc.storage().as_ref(), format!("k{i}"));
                    gc.durable().await
                })
            })
            .collect()
    }

    /// An `always` committer: with a sync thread, or in leader mode (the
    /// waiting callers sync).
    fn always_committer(storage: Arc<dyn Storage>, leader: bool) -> GroupCommit {
        if leader {
            GroupCommit::leader(storage, FsyncPolicy::Always).unwrap()
        } else {
            GroupCommit::new(storage, FsyncPolicy::Always).unwrap()
        }
    }

    /// Polls (without asserting on time) until `cond` holds. Not on
    /// tokio's timer: a leader blocked at a closed gate holds a worker, and
    /// on a multi-thread runtime that worker may be the one left to turn
    /// the timer, so a tokio `sleep` here could never end (seen as a hang
    /// of `shutdown_releases_waiters_and_refuses_new_ones`). Yielding lets
    /// other tasks of a current-thread runtime run between polls.
    async fn eventually(mut cond: impl FnMut() -> bool) {
        while !cond() {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_share_fsyncs_and_survive_a_crash() {
        share_fsyncs_and_survive_a_crash().await;
    }

    /// The same on one worker: leaders sync on the blocking pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn concurrent_waiters_on_one_worker_share_fsyncs_and_survive_a_crash() {
        share_fsyncs_and_survive_a_crash().await;
    }

    async fn share_fsyncs_and_survive_a_crash() {
        for leader in [false, true] {
            let (memory, gated) = GatedSync::over_memory();
            let gc = Arc::new(always_committer(gated.clone(), leader));

            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let gc = gc.clone();
                    tokio::spawn(async move {
                        put(gc.storage().as_ref(), format!("k{i:02}"));
                        gc.durable().await.map(|()| i)
                    })
                })
                .collect();
            // Every writer holds a ticket; the first sync is stuck at the gate.
            eventually(|| gc.shared.requests.lock().requested == 50).await;
            gated.open_gate();

            let mut acked = Vec::new();
            for task in tasks {
                acked.push(task.await.unwrap().unwrap());
            }
            assert_eq!(acked.len(), 50);
            // The sync stuck at the gate covers some writers, one more covers
            // the rest.
            assert!(gc.syncs() <= 2, "{} syncs for 50 writes", gc.syncs());

            crash_and_find(&memory, &acked);
            // The final sync at drop fails on the crashed storage; that is fine.
            drop(gc);
        }
    }

    /// 50 writers each leave their write to the sync's `BeforeSync` work,
    /// then crash: every acknowledged write is there. `inline`: the
    /// simulation's committer (each call syncs on its own) instead of a
    /// leader (calls share syncs).
    async fn writes_left_to_before_sync_are_durable_when_acknowledged(inline: bool) {
        let memory = Arc::new(MemoryStorage::new());
        memory.create_table("t").unwrap();
        let staged: Arc<Mutex<Vec<String>>> = Arc::default();
        let before_sync: BeforeSync = {
            let (staged, memory) = (staged.clone(), memory.clone());
            Arc::new(move || {
                for key in std::mem::take(&mut *staged.lock()) {
                    put(memory.as_ref(), key);
                }
                Ok(())
            })
        };
        let gc = Arc::new(if inline {
            GroupCommit::inline_with(
                memory.clone(),
                FsyncPolicy::Always,
                Duration::from_millis(1),
                Some(before_sync),
            )
        } else {
            GroupCommit::leader_with(memory.clone(), FsyncPolicy::Always, Some(before_sync))
                .unwrap()
        });
        assert!(gc.runs_before_sync());
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (gc, staged) = (gc.clone(), staged.clone());
                tokio::spawn(async move {
                    staged.lock().push(format!("k{i:02}"));
                    gc.durable().await.map(|()| i)
                })
            })
            .collect();
        let mut acked = Vec::new();
        for task in tasks {
            acked.push(task.await.unwrap().unwrap());
        }
        assert_eq!(acked.len(), 50);
        if !inline {
            assert!(gc.syncs() < 50, "{} syncs for 50 writes", gc.syncs());
        }
        crash_and_find(&memory, &acked);
    }

    /// Crashes `memory` (unsynced writes are lost) and checks that the key
    /// `k<i>` of every acknowledged writer `i` is still there.
    fn crash_and_find(memory: &MemoryStorage, acked: &[i32]) {
        memory.crash();
        let reopened = MemoryStorage::open(&memory.disk()).unwrap();
        for i in acked {
            let key = format!("k{i:02}");
            assert!(
                reopened.get("t", key.as_bytes()).unwrap().is_some(),
                "{key} lost"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_left_to_the_leader_survive_a_crash_on_two_workers() {
        writes_left_to_before_sync_are_durable_when_acknowledged(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn writes_left_to_the_leader_survive_a_crash_on_one_worker() {
        writes_left_to_before_sync_are_durable_when_acknowledged(false).await;
    }

    #[tokio::test]
    async fn writes_left_to_an_inline_sync_survive_a_crash() {
        writes_left_to_before_sync_are_durable_when_acknowledged(true).await;
    }

    #[tokio::test]
    async fn a_failing_before_sync_poisons_like_a_failed_fsync() {
        let memory = Arc::new(MemoryStorage::new());
        memory.create_table("t").unwrap();
        let before_sync: BeforeSync = Arc::new(|| {
            Err(StorageError::Engine {
                op: "write",
                message: "disk full".to_string(),
            })
        });
        let gc = GroupCommit::leader_with(memory, FsyncPolicy::Always, Some(before_sync)).unwrap();
        let err = gc.durable().await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Poisoned(m) if m.contains("disk full")),
            "{err}"
        );
        assert!(matches!(gc.durable().await, Err(StorageError::Poisoned(_))));
        assert_eq!(gc.syncs(), 0);
    }

    #[test]
    fn only_always_committers_run_work_before_sync() {
        let hook: BeforeSync = Arc::new(|| Ok(()));
        for policy in [
            FsyncPolicy::Never,
            FsyncPolicy::Interval(Duration::from_millis(5)),
        ] {
            let gc = GroupCommit::leader_with(
                Arc::new(MemoryStorage::new()),
                policy,
                Some(hook.clone()),
            )
            .unwrap();
            assert!(!gc.runs_before_sync());
        }
        let gc = GroupCommit::leader(Arc::new(MemoryStorage::new()), FsyncPolicy::Always).unwrap();
        assert!(!gc.runs_before_sync());
        let inline = |policy| {
            GroupCommit::inline_with(
                Arc::new(MemoryStorage::new()),
                policy,
                Duration::ZERO,
                Some(hook.clone()),
            )
        };
        assert!(!inline(FsyncPolicy::Never).runs_before_sync());
        assert!(inline(FsyncPolicy::Always).runs_before_sync());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_write_survives_a_crash() {
        for leader in [false, true] {
            let memory = Arc::new(MemoryStorage::new());
            memory.create_table("t").unwrap();
            let gc = Arc::new(always_committer(memory.clone(), leader));
            let tasks: Vec<_> = (0..50)
                .map(|task| {
                    let gc = gc.clone();
                    tokio::spawn(async move {
                        let mut acked = Vec::new();
                        for n in 0..20 {
                            let key = format!("{task:02}-{n:02}");
                            put(gc.storage().as_ref(), key.clone());
                            gc.durable().await.unwrap();
                            acked.push(key);
                        }
                        acked
                    })
                })
                .collect();
            let mut acked = Vec::new();
            for task in tasks {
                acked.extend(task.await.unwrap());
            }
            // Crash with later, unacknowledged writes still buffered.
            put(memory.as_ref(), "unacked".to_string());
            memory.crash();

            assert_eq!(gc.durable_requests(), 1000);
            assert!(gc.syncs() <= 1000);
            let reopened = MemoryStorage::open(&memory.disk()).unwrap();
            for key in &acked {
                assert!(
                    reopened.get("t", key.as_bytes()).unwrap().is_some(),
                    "{key} lost"
                );
            }
            assert_eq!(reopened.get("t", b"unacked").unwrap(), None);
            drop(gc);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_poisons_every_waiter_and_later_call() {
        for leader in [false, true] {
            for panic in [false, true] {
                let storage = Arc::new(FailingSync {
                    inner: MemoryStorage::new(),
                    panic,
                });
                storage.create_table("t").unwrap();
                let gc = Arc::new(always_committer(storage.clone(), leader));
                for task in spawn_writers(&gc, 10) {
                    let err = task.await.unwrap().unwrap_err();
                    assert!(matches!(err, StorageError::Poisoned(_)), "{err}");
                }
                assert!(gc.is_poisoned());
                let err = gc.durable().await.unwrap_err();
                match (&err, panic) {
                    (StorageError::Poisoned(msg), false) => assert!(msg.contains("EIO"), "{msg}"),
                    (StorageError::Poisoned(msg), true) => {
                        assert!(msg.contains("disk on fire"), "{msg}")
                    }
                    _ => panic!("unexpected {err}"),
                }
                assert_eq!(gc.syncs(), 0);
                assert!(matches!(gc.shutdown(), Err(StorageError::Poisoned(_))));
            }
        }
    }

    #[tokio::test]
    async fn never_and_interval_acknowledge_at_once_and_sync_at_shutdown() {
        for policy in [
            FsyncPolicy::Never,
            FsyncPolicy::Interval(Duration::from_secs(3600)),
        ] {
            let memory = Arc::new(MemoryStorage::new());
            memory.create_table("t").unwrap();
            let gc = GroupCommit::new(memory.clone(), policy).unwrap();
            put(memory.as_ref(), "k".to_string());
            gc.durable().await.unwrap();
            assert_eq!(memory.disk().durable_get("t", b"k"), None, "{policy}");
            gc.shutdown().unwrap();
            assert_eq!(gc.syncs(), 1);
            assert!(memory.disk().durable_get("t", b"k").is_some(), "{policy}");
            assert!(matches!(gc.durable().await, Err(StorageError::Closed)));
            gc.shutdown().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interval_syncs_in_the_background() {
        let memory = Arc::new(MemoryStorage::new());
        memory.create_table("t").unwrap();
        let gc = GroupCommit::new(memory.clone(), "interval:1".parse().unwrap()).unwrap();
        put(memory.as_ref(), "k".to_string());
        gc.durable().await.unwrap();
        let disk = memory.disk();
        eventually(|| disk.durable_get("t", b"k").is_some()).await;
        assert!(gc.syncs() >= 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inline_mode_makes_writes_durable_and_syncs_at_shutdown() {
        let memory = Arc::new(MemoryStorage::new());
        memory.create_table("t").unwrap();
        let gc = GroupCommit::inline(
            memory.clone(),
            FsyncPolicy::Always,
            Duration::from_millis(2),
        );
        put(memory.as_ref(), "k".to_string());
        assert_eq!(memory.disk().durable_get("t", b"k"), None);
        gc.durable().await.unwrap();
        assert_eq!(gc.syncs(), 1);
        assert!(memory.disk().durable_get("t", b"k").is_some());

        // Shutdown syncs what is left, then refuses new requests.
        put(memory.as_ref(), "late".to_string());
        gc.shutdown().unwrap();
        assert!(memory.disk().durable_get("t", b"late").is_some());
        assert!(matches!(gc.durable().await, Err(StorageError::Closed)));
        gc.shutdown().unwrap();
        assert_eq!(gc.syncs(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inline_mode_poisons_after_a_failed_sync() {
        let storage = Arc::new(FailingSync {
            inner: MemoryStorage::new(),
            panic: false,
        });
        storage.create_table("t").unwrap();
        let gc = GroupCommit::inline(storage.clone(), FsyncPolicy::Always, Duration::ZERO);
        put(storage.as_ref(), "k".to_string());
        assert!(matches!(gc.durable().await, Err(StorageError::Poisoned(_))));
        assert!(gc.is_poisoned());
        assert!(matches!(gc.durable().await, Err(StorageError::Poisoned(_))));
        assert_eq!(gc.syncs(), 0);
    }

    #[tokio::test]
    async fn a_single_worker_keeps_serving_while_a_leader_sync_runs() {
        let (memory, gated) = GatedSync::over_memory();
        let gc = Arc::new(always_committer(gated.clone(), true));
        let waiter = {
            let gc = gc.clone();
            tokio::spawn(async move {
                put(gc.storage().as_ref(), "k".to_string());
                gc.durable().await
            })
        };
        eventually(|| gc.shared.requests.lock().syncing).await;
        // The sync is stuck behind the gate, yet other tasks still run.
        let other = tokio::spawn(async { 42 });
        assert_eq!(other.await.unwrap(), 42);
        assert!(!waiter.is_finished());
        assert!(memory.disk().durable_get("t", b"k").is_none());
        gated.open_gate();
        waiter.await.unwrap().unwrap();
        assert!(memory.disk().durable_get("t", b"k").is_some());
        assert!(!gc.shared.requests.lock().syncing);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_releases_waiters_and_refuses_new_ones() {
        for leader in [false, true] {
            let (memory, gated) = GatedSync::over_memory();
            let gc = Arc::new(always_committer(gated.clone(), leader));
            let waiter = {
                let gc = gc.clone();
                tokio::spawn(async move {
                    put(gc.storage().as_ref(), "k".to_string());
                    gc.durable().await
                })
            };
            eventually(|| gc.shared.requests.lock().requested == 1).await;
            let stopper = {
                let gc = gc.clone();
                std::thread::spawn(move || gc.shutdown())
            };
            eventually(|| gc.shared.requests.lock().shutdown).await;
            assert!(matches!(gc.durable().await, Err(StorageError::Closed)));
            gated.open_gate();
            waiter.await.unwrap().unwrap();
            stopper.join().unwrap().unwrap();
            assert!(memory.disk().durable_get("t", b"k").is_some());
        }
    }

    /// Runs `body` on a new thread marked as an event loop, inside a
    /// current-thread runtime that calls `gc.sync_waiting()` each time it
    /// runs out of ready work, as the RESP loop does.
    fn on_event_loop<F>(gc: &Arc<GroupCommit>, body: F)
    where
        F: FnOnce(Arc<GroupCommit>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            + Send
            + 'static,
    {
        let gc = gc.clone();
        std::thread::spawn(move || {
            GroupCommit::sync_when_idle_on_this_thread();
            let idle = gc.clone();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(move || {
                    let _ = idle.sync_waiting();
                })
                .build()
                .unwrap()
                .block_on(body(gc));
        })
        .join()
        .unwrap();
    }

    fn memory_with_table() -> Arc<MemoryStorage> {
        let memory = Arc::new(MemoryStorage::new());
        memory.create_table("t").unwrap();
        memory
    }

    #[test]
    fn an_event_loop_syncs_once_for_every_writer_of_its_round() {
        let memory = memory_with_table();
        let gc = Arc::new(always_committer(memory.clone(), true));
        on_event_loop(&gc, |gc| {
            Box::pin(async move {
                for w in spawn_writers(&gc, 50) {
                    w.await.unwrap().unwrap();
                }
            })
        });
        // All 50 took their tickets in the loop's first round; the loop
        // synced once when it ran dry, and that covered them all.
        assert_eq!(gc.syncs(), 1);
        for i in 0..50 {
            let key = format!("k{i}");
            assert!(
                memory.disk().durable_get("t", key.as_bytes()).is_some(),
                "{key}"
            );
        }
    }

    #[test]
    fn a_loop_that_never_runs_dry_syncs_after_a_bounded_amount_of_work() {
        let memory = memory_with_table();
        let gc = Arc::new(always_committer(memory.clone(), true));
        let ticks = Arc::new(AtomicU64::new(0));
        let busy_ticks = ticks.clone();
        // With the idle hook installed, a task that always has more work
        // keeps the loop from running dry: only its ticks can sync.
        on_event_loop(&gc, move |gc| {
            Box::pin(async move {
                let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let busy = tokio::task::spawn({
                    let (gc, done) = (gc.clone(), done.clone());
                    async move {
                        while !done.load(Ordering::SeqCst) {
                            if GroupCommit::loop_tick_due() {
                                gc.sync_waiting().unwrap();
                            }
                            busy_ticks.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                        }
                    }
                });
                tokio::task::yield_now().await;
                put(gc.storage().as_ref(), "k".to_string());
                gc.durable().await.unwrap();
                done.store(true, Ordering::SeqCst);
                busy.await.unwrap();
            })
        });
        assert_eq!(gc.syncs(), 1);
        assert!(memory.disk().durable_get("t", b"k").is_some());
        let ticks = ticks.load(Ordering::SeqCst);
        assert!(
            ticks >= u64::from(LOOP_PATIENCE_TICKS) - 1
                && ticks <= 2 * u64::from(LOOP_PATIENCE_TICKS) + 2,
            "synced after {ticks} ticks"
        );
    }

    #[test]
    fn sync_waiting_syncs_only_for_waiting_tickets_under_always() {
        let memory = memory_with_table();
        let leader = always_committer(memory.clone(), true);
        leader.sync_waiting().unwrap();
        assert_eq!(leader.syncs(), 0, "no ticket is waiting");
        let never = GroupCommit::leader(memory.clone(), FsyncPolicy::Never).unwrap();
        put(memory.as_ref(), "k".to_string());
        never.sync_waiting().unwrap();
        assert_eq!(never.syncs(), 0, "never: only shutdown syncs");
        assert!(memory.disk().durable_get("t", b"k").is_none());
    }
}
