//! Fulcrum's history checker: given what test clients did and observed,
//! decide whether the store kept its consistency promises.
//!
//! Pure: no I/O, no threads, no clock. Time enters as caller-supplied `u64`s
//! in the history; histories serialize to and from JSON strings so that
//! `fulcrum verify` can save one and a user can re-check it later.
//!
//! # The model
//!
//! A [`History`] is a list of [`Operation`]s: client, key, [`Op`], invocation
//! time, completion time and [`Outcome`] (`Ok`: happened; `Fail`: definitely
//! did not; `Info`: unknown — may take effect at any time after invocation,
//! or never). Values are `u64`s, unique per key in a well-designed workload,
//! so a read names the write it saw. Build histories live with
//! [`History::invoke`] / [`History::complete`], from Jepsen-style event
//! streams with [`History::from_events`], or compactly with
//! [`History::builder`].
//!
//! # The checks
//!
//! Every check partitions by key and returns a [`Report`]: a [`Verdict`]
//! (`Valid`, `Invalid` or `Unknown` — never a guess), a summary, findings,
//! and on `Invalid` a small counterexample sub-history.
//!
//! * [`check_linearizable`] — registers with read, write and CAS: some
//!   total order of each key's operations respects real time and register
//!   semantics. Per key (P-compositionality), after removing `Info`
//!   operations that provably cannot matter: a polynomial reads-from check
//!   when every value has one writer, else the Wing–Gong / Lowe search with
//!   memoization of (linearized set, state) as in Porcupine. A step budget
//!   turns hard cases into `Unknown`. Counterexamples are shrunk by delta
//!   debugging over subsets closed under "a reader keeps its writers", so
//!   the shrunk history is real evidence (see [`linearizable`]).
//! * [`check_counter`] — every counter read lies between the increments that
//!   must and those that may have been counted (Jepsen's counter bounds),
//!   for every read or, for eventually consistent counters, the final read.
//! * [`check_lost_writes`] — every acknowledged write survives into the final
//!   read of its key (sets: every acknowledged element is present; registers:
//!   the final value is the last acknowledged write or one concurrent with or
//!   later than it).
//! * [`check_sessions`] — per client: read-your-writes and monotonic reads,
//!   using store-reported versions or value order ([`VersionOrder`]).
//! * [`check_convergence`] — replicas' final states are equal; the differing
//!   keys are listed.
//! * [`check_availability`] — no request overlapping a given window (a
//!   node joining or leaving) was refused with `UNAVAILABLE`; other error
//!   replies are counted by kind.
//!
//! Each module's docs state its claim precisely and its assumptions.
//!
//! # What the caller must provide
//!
//! * **Times** from one monotonic clock (or one logical clock) for all
//!   clients. `a` precedes `b` only if `a.complete < b.invoke`; equal times
//!   count as concurrent.
//! * **Unique values** per key for registers and sets. Linearizability is
//!   still exact without them, only slower; lost-write and session checks
//!   lose precision (a value then counts as written by any of its writers).
//! * **Honest outcomes**: `Fail` only when the store guarantees the request
//!   had no effect; anything uncertain (timeouts, dropped connections) is
//!   `Info`. A wrong `Fail` can produce a false `Invalid`.
//! * **Final reads** (lost writes, eventual counters) taken after the
//!   cluster has healed and converged, as the last reads of each key.
//! * **Versions** ([`Operation::version`]) for session checks, or a
//!   workload whose values increase in store order ([`VersionOrder`]).
//!
//! # Saved histories
//!
//! [`History::to_json`] / [`History::from_json`] (or serde directly) use
//! `{"format": 1, "ops": [...]}` with one object per operation, e.g.
//! `{"id": 3, "client": 2, "key": "x", "op": {"cas": {"expected": 1, "new": 2}},
//! "invoke": 40, "complete": 55, "outcome": "ok", "version": 1234}`
//! (`complete` and `version` may be absent). Loading re-validates; reports
//! serialize too.
//!
//! ```
//! use fulcrum_check::{check_linearizable, History, LinearizabilityOptions, Op, Verdict};
//!
//! // DDIA ch. 9: one client sees the new value, a later read sees the old.
//! let history = History::builder()
//!     .ok(1, "x", Op::Write(0), 0, 1)
//!     .ok(1, "x", Op::Write(1), 10, 50)
//!     .ok(2, "x", Op::Read(Some(1)), 12, 20)
//!     .ok(3, "x", Op::Read(Some(0)), 25, 30)
//!     .build()
//!     .unwrap();
//! let report = check_linearizable(&history, &LinearizabilityOptions::default());
//! assert_eq!(report.verdict, Verdict::Invalid);
//! println!("{report}");
//! ```

pub mod availability;
pub mod builder;
mod clusters;
pub mod convergence;
pub mod counter;
pub mod display;
pub mod error;
pub mod events;
pub mod history;
pub mod linearizable;
pub mod lost_writes;
mod register;
pub mod report;
pub mod session;
mod shrink;
mod wgl;

pub use availability::{check_availability, error_kind, error_kinds, Window};
pub use builder::HistoryBuilder;
pub use convergence::check_convergence;
pub use counter::{check_counter, CounterMode};
pub use error::HistoryError;
pub use events::{Event, EventKind};
pub use history::{
    ClientId, History, Key, Op, OpId, Operation, Outcome, Time, Value, FORMAT_VERSION,
};
pub use linearizable::{check_key_linearizable, check_linearizable, LinearizabilityOptions};
pub use lost_writes::check_lost_writes;
pub use report::{CheckKind, Report, Verdict};
pub use session::{check_sessions, VersionOrder};
