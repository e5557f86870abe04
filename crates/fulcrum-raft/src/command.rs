//! The replicated key-value state machine of one partition: its commands,
//! its responses, and the pure function that executes a command.
//!
//! Invariants:
//! - **Determinism.** `execute` depends only on the state, the entry's
//!   log index and the entry's time; every replica computes the same result.
//!   Time enters as `now_ms`, the leader's clock when it proposed (carried in
//!   the log entry as [`Request::now_ms`]), never a replica's clock at apply.
//!   The state machine also never lets time run backwards across entries
//!   (it applies `max(now_ms, previous now)`), so a new leader whose clock
//!   lags cannot resurrect a key that already expired.
//! - **Revisions.** Each stored value carries the log index of the last
//!   command that changed it (value or TTL): the key's `GETREV` and a
//!   fencing token that only grows.
//! - **Expiry** is lazy: a value whose `expires_at_ms <= now` reads as
//!   missing, and a command that touches it removes it. Untouched expired
//!   values stay on disk until [`Command::DeleteExpired`] removes them.
//! - **Limits** are checked in [`Command::validate`] (by the proposer) and
//!   again at apply, where a violation becomes a deterministic
//!   [`CommandError::TooLarge`] response instead of a storage failure that
//!   would stop the group.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a `SET` does with the key's time to live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ttl {
    /// No expiry (plain `SET`): an existing TTL is removed.
    #[default]
    Clear,
    /// Keep the TTL the key has (`KEEPTTL`).
    Keep,
    /// Expire at this Unix time in milliseconds (`EXAT`, `PXAT`).
    AtMs(u64),
    /// Expire this many milliseconds after the entry's time (`EX`, `PX`),
    /// computed at apply from the leader-assigned time.
    AfterMs(u64),
}

/// The precondition of a `SET`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// Set unconditionally.
    #[default]
    Always,
    /// Set only if the key is missing (`NX`).
    Missing,
    /// Set only if the key exists (`XX`).
    Exists,
    /// Set only if the current value equals these bytes (`IFEQ`).
    Equals(Bytes),
    /// Set only if the key's current revision is this one (compare-and-set
    /// on the fencing token).
    Revision(u64),
}

/// The new expiry of an `EXPIRE`-family command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireAt {
    /// At this Unix time in milliseconds (`EXPIREAT`, `PEXPIREAT`).
    AtMs(u64),
    /// This many milliseconds after the entry's time (`EXPIRE`, `PEXPIRE`).
    AfterMs(u64),
    /// Remove the TTL (`PERSIST`).
    Persist,
}

/// A change to the state machine, proposed through [`crate::Groups::propose`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `SET key value [NX|XX|IFEQ v] [GET] [EX…|KEEPTTL]`.
    /// Response: [`Response::Set`].
    Set {
        key: Bytes,
        value: Bytes,
        ttl: Ttl,
        condition: Condition,
        /// Return the previous value (`GET` option).
        get_old: bool,
    },
    /// `DEL key…`. Response: [`Response::Integer`], the number of live keys
    /// removed.
    Del { keys: Vec<Bytes> },
    /// `INCRBY key delta` (also `INCR`, `DECR`, `DECRBY`); a missing key
    /// counts as 0 and the TTL is kept. Response: [`Response::Integer`] (the
    /// new value) or [`Response::Error`] (`NotInteger`, `Overflow`).
    IncrBy { key: Bytes, delta: i64 },
    /// `EXPIRE`/`PEXPIRE`/`EXPIREAT`/`PEXPIREAT`/`PERSIST`. A time not after
    /// the entry's time deletes the key. Response: [`Response::Applied`]
    /// (`false`: key missing, or `PERSIST` on a key without TTL).
    Expire { key: Bytes, at: ExpireAt },
    /// `GETSET key value` (the TTL is cleared). Response:
    /// [`Response::Value`], the previous value.
    GetSet { key: Bytes, value: Bytes },
    /// `GETDEL key`. Response: [`Response::Value`], the removed value.
    GetDel { key: Bytes },
    /// `MSET key value …` (TTLs cleared). Response: [`Response::Ok`].
    MSet { pairs: Vec<(Bytes, Bytes)> },
    /// Removes those of `keys` that have expired by the entry's time (the
    /// node's expiry sweeper proposes this). Response: [`Response::Integer`],
    /// the number removed.
    DeleteExpired { keys: Vec<Bytes> },
}

/// The log payload: a command and the leader's clock when it was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unix time in milliseconds on the proposing leader.
    pub now_ms: u64,
    /// What to do.
    pub command: Command,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}ms", self.command.name(), self.now_ms)
    }
}

/// A command's deterministic failure (the command changed nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    /// The stored value is not a decimal 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// The increment would overflow a 64-bit integer.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// A key, value or the whole command exceeds the storage limits.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        what: Oversized,
        len: usize,
        max: usize,
    },
}

/// What broke a size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Oversized {
    /// A key ([`MAX_KEY_LEN`]).
    Key,
    /// A value ([`MAX_VALUE_LEN`]).
    Value,
    /// The whole command ([`MAX_COMMAND_LEN`]).
    Command,
}

impl fmt::Display for Oversized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Oversized::Key => "key",
            Oversized::Value => "value",
            Oversized::Command => "command",
        })
    }
}

/// What applying a command returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A `SET`: whether it was applied (its condition held), and the
    /// previous live value if `get_old` was asked.
    Set { applied: bool, old: Option<Bytes> },
    /// A value (previous value of `GETSET`/`GETDEL`).
    Value(Option<Bytes>),
    /// A count or a counter's new value.
    Integer(i64),
    /// Whether an `EXPIRE`-family command changed the key.
    Applied(bool),
    /// Done, nothing to report (`MSET`, and blank/membership entries).
    Ok,
    /// The command failed deterministically and changed nothing.
    Error(CommandError),
}

/// A stored value with its revision and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredValue {
    /// The value's bytes.
    pub value: Bytes,
    /// Log index of the last command that changed this key.
    pub revision: u64,
    /// Unix time in milliseconds from which the key reads as missing.
    pub expires_at_ms: Option<u64>,
}

impl StoredValue {
    /// True unless the value has expired at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// Room for the format byte, length prefix, revision and expiry around a
/// value, and for the entry header around a command.
const ENVELOPE: usize = 1024;
/// Largest user value: what the storage engines accept, less the envelope.
pub const MAX_VALUE_LEN: usize = fulcrum_storage::MAX_VALUE_LEN - ENVELOPE;
/// Largest user key (keys are stored as they are).
pub const MAX_KEY_LEN: usize = fulcrum_storage::MAX_KEY_LEN;
/// Largest command, counting key and value bytes: its log entry must fit in
/// one storage value.
pub const MAX_COMMAND_LEN: usize = fulcrum_storage::MAX_VALUE_LEN - ENVELOPE;

impl Command {
    /// The command's name for logs (`SET`, `DEL`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Set { .. } => "SET",
            Command::Del { .. } => "DEL",
            Command::IncrBy { .. } => "INCRBY",
            Command::Expire { .. } => "EXPIRE",
            Command::GetSet { .. } => "GETSET",
            Command::GetDel { .. } => "GETDEL",
            Command::MSet { .. } => "MSET",
            Command::DeleteExpired { .. } => "DELEXPIRED",
        }
    }

    /// Checks key, value and total sizes against the storage limits.
    ///
    /// # Errors
    /// `CommandError::TooLarge` naming the first violation.
    pub fn validate(&self) -> Result<(), CommandError> {
        let mut total = 0usize;
        let mut check = |what: Oversized, len: usize, max: usize| {
            total = total.saturating_add(len);
            if len > max {
                return Err(CommandError::TooLarge { what, len, max });
            }
            Ok(())
        };
        let key = Oversized::Key;
        let value = Oversized::Value;
        match self {
            Command::Set {
                key: k,
                value: v,
                condition,
                ..
            } => {
                check(key, k.len(), MAX_KEY_LEN)?;
                check(value, v.len(), MAX_VALUE_LEN)?;
                if let Condition::Equals(e) = condition {
                    check(value, e.len(), MAX_VALUE_LEN)?;
                }
            }
            Command::GetSet { key: k, value: v } => {
                check(key, k.len(), MAX_KEY_LEN)?;
                check(value, v.len(), MAX_VALUE_LEN)?;
            }
            Command::Del { keys } | Command::DeleteExpired { keys } => {
                for k in keys {
                    check(key, k.len(), MAX_KEY_LEN)?;
                }
            }
            Command::IncrBy { key: k, .. }
            | Command::Expire { key: k, .. }
            | Command::GetDel { key: k } => check(key, k.len(), MAX_KEY_LEN)?,
            Command::MSet { pairs } => {
                for (k, v) in pairs {
                    check(key, k.len(), MAX_KEY_LEN)?;
                    check(value, v.len(), MAX_VALUE_LEN)?;
                }
            }
        }
        if total > MAX_COMMAND_LEN {
            return Err(CommandError::TooLarge {
                what: Oversized::Command,
                len: total,
                max: MAX_COMMAND_LEN,
            });
        }
        Ok(())
    }
}

/// The state a command reads and writes: the applied state plus the
/// changes of earlier commands in the same batch.
pub(crate) trait KvState {
    /// Why a read failed (a storage failure stops the group).
    type Error;
    /// The stored value of `key`, expired or not.
    fn load(&mut self, key: &[u8]) -> Result<Option<StoredValue>, Self::Error>;
    /// Records the new value of `key` (`None` removes it).
    fn store(&mut self, key: Bytes, value: Option<StoredValue>);
}

/// The live value of `key` at `now_ms`; removes it if it has expired.
fn live<S: KvState>(s: &mut S, key: &Bytes, now_ms: u64) -> Result<Option<StoredValue>, S::Error> {
    match s.load(key)? {
        Some(v) if v.is_live(now_ms) => Ok(Some(v)),
        Some(_) => {
            s.store(key.clone(), None);
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Stores `value` at `key` unless `expires_at_ms` is already past, in
/// which case the key is removed.
fn put<S: KvState>(s: &mut S, key: Bytes, value: Bytes, index: u64, now: u64, exp: Option<u64>) {
    if exp.is_some_and(|at| at <= now) {
        s.store(key, None);
        return;
    }
    let stored = StoredValue {
        value,
        revision: index,
        expires_at_ms: exp,
    };
    s.store(key, Some(stored));
}

/// Executes `command` as the entry at log `index` with time `now_ms`.
///
/// # Errors
/// Only the state's read errors; command failures are
/// [`Response::Error`].
pub(crate) fn execute<S: KvState>(
    s: &mut S,
    index: u64,
    now: u64,
    command: Command,
) -> Result<Response, S::Error> {
    if let Err(e) = command.validate() {
        return Ok(Response::Error(e));
    }
    Ok(match command {
        Command::Set {
            key,
            value,
            ttl,
            condition,
            get_old,
        } => {
            let current = live(s, &key, now)?;
            let holds = match &condition {
                Condition::Always => true,
                Condition::Missing => current.is_none(),
                Condition::Exists => current.is_some(),
                Condition::Equals(want) => current.as_ref().is_some_and(|c| c.value == *want),
                Condition::Revision(rev) => current.as_ref().is_some_and(|c| c.revision == *rev),
            };
            let old = if get_old {
                current.as_ref().map(|c| c.value.clone())
            } else {
                None
            };
            if holds {
                let exp = match ttl {
                    Ttl::Clear => None,
                    Ttl::Keep => current.and_then(|c| c.expires_at_ms),
                    Ttl::AtMs(at) => Some(at),
                    Ttl::AfterMs(ms) => Some(now.saturating_add(ms)),
                };
                put(s, key, value, index, now, exp);
            }
            Response::Set {
                applied: holds,
                old,
            }
        }
        Command::Del { keys } => {
            let mut removed = 0i64;
            for key in keys {
                if live(s, &key, now)?.is_some() {
                    removed += 1;
                    s.store(key, None);
                }
            }
            Response::Integer(removed)
        }
        Command::IncrBy { key, delta } => {
            let current = live(s, &key, now)?;
            let base = match &current {
                None => 0,
                Some(c) => match parse_i64(&c.value) {
                    Some(n) => n,
                    None => return Ok(Response::Error(CommandError::NotInteger)),
                },
            };
            let Some(next) = base.checked_add(delta) else {
                return Ok(Response::Error(CommandError::Overflow));
            };
            let exp = current.and_then(|c| c.expires_at_ms);
            put(s, key, Bytes::from(next.to_string()), index, now, exp);
            Response::Integer(next)
        }
        Command::Expire { key, at } => match live(s, &key, now)? {
            None => Response::Applied(false),
            Some(c) => {
                let exp = match at {
                    ExpireAt::AtMs(at) => Some(at),
                    ExpireAt::AfterMs(ms) => Some(now.saturating_add(ms)),
                    ExpireAt::Persist if c.expires_at_ms.is_none() => {
                        return Ok(Response::Applied(false));
                    }
                    ExpireAt::Persist => None,
                };
                put(s, key, c.value, index, now, exp);
                Response::Applied(true)
            }
        },
        Command::GetSet { key, value } => {
            let old = live(s, &key, now)?.map(|c| c.value);
            put(s, key, value, index, now, None);
            Response::Value(old)
        }
        Command::GetDel { key } => {
            let old = live(s, &key, now)?.map(|c| c.value);
            if old.is_some() {
                s.store(key, None);
            }
            Response::Value(old)
        }
        Command::MSet { pairs } => {
            for (key, value) in pairs {
                put(s, key, value, index, now, None);
            }
            Response::Ok
        }
        Command::DeleteExpired { keys } => {
            let mut removed = 0i64;
            for key in keys {
                if s.load(&key)?.is_some_and(|v| !v.is_live(now)) {
                    removed += 1;
                    s.store(key, None);
                }
            }
            Response::Integer(removed)
        }
    })
}

/// Parses a value as Redis does for `INCR`: optional `-`, decimal digits
/// without leading zeros (or exactly `0`), within `i64`.
fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (neg, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let first = *digits.first()?;
    if digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if first == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
