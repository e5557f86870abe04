//! Recording operations into a [`History`] from many client tasks, and the
//! rule that turns a reply into an [`Outcome`].
//!
//! Times are nanoseconds since the recorder's start on one monotonic clock
//! ([`Instant`]); an invocation is stamped before the request is sent and a
//! completion after the reply arrived, so real-time order in the history is
//! never tighter than it was.
//!
//! Outcomes (see [`write_error_outcome`]):
//!
//! * an acknowledgement is `Ok`;
//! * a write refused with `UNAVAILABLE` (and no "outcome unknown"), or a
//!   definite error such as a syntax error, is `Fail`: it had no effect;
//! * a write answered `TIMEOUT …`, any error saying "outcome unknown", any
//!   other error reply, a dropped connection or a client-side timeout is
//!   `Info`: it may take effect, now or later;
//! * a read that fails for any reason is `Fail`: reads have no effect.
//!
//! Every error reply is also kept with its operation's id ([`Recorder::errors`]),
//! so the report can say which requests failed and how (the availability
//! check looks for `UNAVAILABLE` among them).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use fulcrum_check::{ClientId, History, Op, OpId, Outcome, Value};

/// Error-reply prefixes that guarantee a write had no effect.
const DEFINITE_ERRORS: &[&str] = &[
    "UNAVAILABLE",
    "NOTSTRONG",
    "TOOLARGE",
    "CROSSSLOT",
    "WRONGTYPE",
    "ERR syntax error",
    "ERR wrong number of arguments",
    "ERR unknown command",
    "ERR value is not an integer",
    "ERR increment or decrement would overflow",
    "ERR keyspace '",
];

/// The outcome of a write answered with error `message`.
pub fn write_error_outcome(message: &str) -> Outcome {
    if message.contains("outcome unknown") {
        return Outcome::Info;
    }
    if DEFINITE_ERRORS.iter().any(|p| message.starts_with(p)) {
        Outcome::Fail
    } else {
        Outcome::Info
    }
}

/// Counts for the progress line and the report.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stats {
    pub total: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

struct Inner {
    start: Instant,
    history: Mutex<History>,
    /// The error reply of each operation that got one.
    errors: Mutex<BTreeMap<OpId, String>>,
    next_value: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
}

/// A shared, cloneable recorder.
#[derive(Clone)]
pub struct Recorder(Arc<Inner>);

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder(Arc::new(Inner {
            start,
            history: Mutex::new(History::new()),
            errors: Mutex::new(BTreeMap::new()),
            next_value: AtomicU64::new(1),
            ok: AtomicU64::new(0),
            fail: AtomicU64::new(0),
            info: AtomicU64::new(0),
        }))
    }

    /// The origin of every time in the history.
    pub fn start(&self) -> Instant {
        self.0.start
    }

    /// A value never written before in this run (unique across keys).
    pub fn unique_value(&self) -> Value {
        self.0.next_value.fetch_add(1, Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.0
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an invocation now; the operation is `Info` until completed.
    pub fn invoke(&self, client: ClientId, key: &str, op: Op) -> OpId {
        let mut history = self.history();
        let at = self.now();
        history.invoke(client, key, op, at)
    }

    /// Records the completion of `id` now.
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        let at = self.now();
        let result = self.history().complete(id, at, outcome);
        self.count(outcome);
        if let Err(e) = result {
            eprintln!("verify: internal error recording operation {id}: {e}");
        }
    }

    /// Records the completion of a read `id` now, with what it observed.
    pub fn complete_read(&self, id: OpId, outcome: Outcome, observed: Op) {
        let at = self.now();
        let result = self
            .history()
            .complete_with(id, at, outcome, observed, None);
        self.count(outcome);
        if let Err(e) = result {
            eprintln!("verify: internal error recording operation {id}: {e}");
        }
    }

    /// Keeps the error reply operation `id` got (the last one, if a
    /// client tried more than once).
    pub fn error_reply(&self, id: OpId, message: &str) {
        self.0
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, message.to_string());
    }

    /// Every error reply so far, by operation id.
    pub fn errors(&self) -> BTreeMap<OpId, String> {
        self.0
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Ok => &self.0.ok,
            Outcome::Fail => &self.0.fail,
            Outcome::Info => &self.0.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Stats {
        let ok = self.0.ok.load(Ordering::Relaxed);
        let fail = self.0.fail.load(Ordering::Relaxed);
        let info = self.0.info.load(Ordering::Relaxed);
        Stats {
            total: ok + fail + info,
            ok,
            fail,
            info,
        }
    }

    /// Every key an operation touched so far, sorted.
    pub fn keys(&self) -> Vec<String> {
        let history = self.history();
        history.by_key().keys().map(|k| k.to_string()).collect()
    }

    /// The history recorded so far (operations still pending stay `Info`).
    pub fn snapshot(&self) -> History {
        self.history().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_are_classified_conservatively() {
        assert_eq!(
            write_error_outcome("UNAVAILABLE not enough replicas: needed 2, reached 1"),
            Outcome::Fail
        );
        assert_eq!(
            write_error_outcome(
                "UNAVAILABLE not enough replicas: needed 2, reached 1; stored on 1, outcome unknown"
            ),
            Outcome::Info
        );
        assert_eq!(
            write_error_outcome(
                "TIMEOUT write after 2000 ms: 1 of 2 replicas answered; outcome unknown"
            ),
            Outcome::Info
        );
        assert_eq!(
            write_error_outcome("ERR write not durable: disk"),
            Outcome::Info
        );
        assert_eq!(write_error_outcome("ERR syntax error"), Outcome::Fail);
    }

    #[test]
    fn records_times_in_order() {
        let rec = Recorder::new(Instant::now());
        let id = rec.invoke(1, "x", Op::Write(rec.unique_value()));
        rec.complete(id, Outcome::Ok);
        let read = rec.invoke(1, "x", Op::Read(None));
        rec.complete_read(read, Outcome::Ok, Op::Read(Some(1)));
        let h = rec.snapshot();
        assert_eq!(h.len(), 2);
        assert!(h.ops()[0].precedes(&h.ops()[1]) || h.ops()[0].complete == Some(h.ops()[1].invoke));
        assert_eq!(rec.stats().ok, 2);
        assert_eq!(rec.keys(), vec!["x".to_string()]);
        rec.error_reply(read, "UNAVAILABLE needed 2, reached 1");
        assert_eq!(
            rec.errors().get(&read).map(String::as_str),
            Some("UNAVAILABLE needed 2, reached 1")
        );
    }
}
