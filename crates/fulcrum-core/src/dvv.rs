//! Dotted version vectors: per-key causality for eventual keyspaces
//! (Preguiça et al., "Dotted Version Vectors"; the `DvvSet` form of Almeida
//! et al. used by Riak).
//!
//! A key's state is a [`DvvSet`]: a causal *context* (a version vector,
//! replica node → counter) and *siblings*, each a value tagged with the
//! *dot* `(node, counter)` of the write that made it. Dots are issued by the
//! coordinating replica node, never by clients, so the vector has at most one
//! entry per replica that ever coordinated a write to the key, and siblings
//! only ever hold truly concurrent writes (no sibling explosion).
//!
//! Invariants of every `DvvSet` (checked on decode and by
//! [`DvvSet::from_parts`]):
//! * every sibling's dot is covered by the context
//!   (`dot.counter <= context[dot.node]`);
//! * dots are unique and siblings are sorted by dot, so equal states are
//!   equal structurally;
//! * counters are in `1..=MAX_COUNTER`; zero entries are never stored.
//!
//! And of every *reachable* state, which the algorithms rely on:
//! * a dot names exactly one write, so two states holding the same dot hold
//!   the same value; this needs each node to keep, durably, the highest
//!   counter it issued for the key (see "Tombstones" for what a purge does
//!   to that);
//! * a context is downward closed: `context[n] = c` means the state has seen
//!   every write `n` coordinated for this key with a counter `<= c`. It holds
//!   because a coordinator issues `c` only from a state that has seen `c - 1`.
//!
//! Operations:
//! * [`DvvSet::update`]: a client write. The client sends back the context of
//!   its last read (opaque, see [`VersionVector::encode`]); the coordinator
//!   drops the siblings that context covers, keeps the concurrent ones, and
//!   adds the new value under dot `(coordinator, max(local, client) + 1)`.
//! * [`DvvSet::merge`]: the join of two replicas' states. A sibling survives
//!   unless the other side's context covers its dot without holding it. The
//!   join is commutative, associative and idempotent.
//!
//! After any history of updates and merges, a state's siblings are exactly
//! the writes it has seen that no write it has seen was issued after reading
//! (the property test in `tests.rs` checks this against a ground-truth
//! model).
//!
//! Tombstones: a delete is an update whose value is a tombstone
//! [`Version`]. The tombstone stays a sibling so that it wins over older
//! values on replicas that have not seen it. A replica may drop a
//! tombstone-only state when every replica of the key (including holders of
//! hints) reports a context that descends the state's context
//! ([`purgeable`]): then no replica holds a value the tombstone supersedes,
//! so none can resurrect it. Purging forgets the key's counters, so the next
//! write must not reuse an old dot (a context a client kept from before the
//! delete would otherwise cover the new write and discard it, Riak's
//! "KV679"): issue post-purge writes with [`DvvSet::update_with_floor`] and
//! a floor at least the purged context's largest counter (for example the
//! coordinator's hybrid-logical-clock reading, which only grows).
//!
//! Contexts are trusted: a forged context with inflated counters would make
//! a coordinator discard writes it has not seen. The encoding carries a
//! checksum against corruption, not against forgery.

mod codec;
mod lww;
#[cfg(test)]
mod tests;

pub use codec::{from_record, overwrite_record, to_record, CAUSAL_FORMAT, CONTEXT_FORMAT};
pub use lww::{lww_cmp, lww_merge, lww_winner};

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::record::Version;
use crate::ring::NodeId;

/// The pseudo node that owns the dots of legacy records (written without
/// causal tracking). Real node ids are never empty.
pub const LEGACY_NODE: &str = "";

/// The largest counter a decoded vector may hold: far above any counter
/// increments or hybrid-logical-clock floors reach, and far enough below
/// `u64::MAX` that incrementing never overflows.
pub const MAX_COUNTER: u64 = 1 << 62;

/// One write event: the `counter`-th write to a key coordinated by `node`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

impl Dot {
    pub fn new(node: impl Into<NodeId>, counter: u64) -> Self {
        Dot {
            node: node.into(),
            counter,
        }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.node, self.counter)
    }
}

/// A version vector: for each node, the highest counter seen. Missing
/// nodes count as 0. Used as a state's causal context and as the opaque
/// context a read hands to the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionVector(BTreeMap<NodeId, u64>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `node`, 0 when absent.
    pub fn get(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// Raises `node`'s counter to at least `counter`.
    pub fn advance(&mut self, node: &NodeId, counter: u64) {
        if counter == 0 {
            return;
        }
        let entry = self.0.entry(node.clone()).or_insert(0);
        *entry = (*entry).max(counter);
    }

    /// Whether the write `dot` is in the history this vector describes.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.counter <= self.get(&dot.node)
    }

    /// Whether this vector has seen everything `other` has (`self >= other`
    /// pointwise).
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(n, &c)| self.get(n) >= c)
    }

    /// Whether neither vector descends the other.
    pub fn concurrent(&self, other: &VersionVector) -> bool {
        !self.descends(other) && !other.descends(self)
    }

    /// Pointwise maximum, in place.
    pub fn join(&mut self, other: &VersionVector) {
        for (n, &c) in &other.0 {
            self.advance(n, c);
        }
    }

    /// Pointwise maximum.
    pub fn joined(&self, other: &VersionVector) -> VersionVector {
        let mut v = self.clone();
        v.join(other);
        v
    }

    /// Entries in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, u64)> {
        self.0.iter().map(|(n, &c)| (n, c))
    }

    /// Number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The largest counter, 0 for an empty vector.
    pub fn max_counter(&self) -> u64 {
        self.0.values().copied().max().unwrap_or(0)
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    /// Builds a vector keeping the largest counter per node; zero counters
    /// are dropped.
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut v = VersionVector::new();
        for (n, c) in iter {
            v.advance(&n, c);
        }
        v
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, c)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}:{c}")?;
        }
        f.write_str("}")
    }
}

/// A value and the dot of the write that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sibling<T> {
    pub dot: Dot,
    pub value: T,
}

/// One key's causal state: a context and the concurrent values (siblings)
/// it has not seen superseded. See the module docs for the invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvvSet<T> {
    context: VersionVector,
    /// Sorted by dot, dots unique and covered by `context`.
    siblings: Vec<Sibling<T>>,
}

impl<T> Default for DvvSet<T> {
    fn default() -> Self {
        DvvSet {
            context: VersionVector::new(),
            siblings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DvvError {
    #[error("causal data is truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("{what} format version {found} is not supported (this build reads {supported})")]
    UnknownFormat {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("{0} trailing bytes after the causal data")]
    Trailing(usize),
    #[error("malformed varint at offset {0}")]
    BadVarint(usize),
    #[error("a length or count at offset {offset} is {value}, more than the data holds")]
    BadLength { offset: usize, value: u64 },
    #[error("node id at offset {0} is not UTF-8")]
    BadNodeId(usize),
    #[error("version vector entries are not strictly sorted by node id at offset {0}")]
    Unsorted(usize),
    #[error("counter {counter} of node '{node}' is outside 1..={MAX_COUNTER}")]
    BadCounter { node: NodeId, counter: u64 },
    #[error("dot {0} is not covered by the causal context")]
    DotNotCovered(Dot),
    #[error("dot refers to context entry {index}, but the context has {len}")]
    BadDotNode { index: u64, len: usize },
    #[error("dot {0} is duplicated or out of order")]
    DuplicateDot(Dot),
    #[error("causal data has {dots} dots for {versions} versions")]
    SiblingCountMismatch { dots: usize, versions: usize },
    #[error(
        "context checksum mismatch: the context is corrupt or was not issued by this database"
    )]
    Checksum,
}

impl<T> DvvSet<T> {
    /// The state of a key nobody has written.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state from its parts, checking the invariants; siblings may come in
    /// any order.
    ///
    /// # Errors
    /// [`DvvError::DotNotCovered`], [`DvvError::DuplicateDot`] or
    /// [`DvvError::BadCounter`].
    pub fn from_parts(
        context: VersionVector,
        mut siblings: Vec<Sibling<T>>,
    ) -> Result<Self, DvvError> {
        for (node, counter) in context.iter() {
            if counter > MAX_COUNTER {
                return Err(DvvError::BadCounter {
                    node: node.clone(),
                    counter,
                });
            }
        }
        siblings.sort_by(|a, b| a.dot.cmp(&b.dot));
        for (i, s) in siblings.iter().enumerate() {
            if s.dot.counter == 0 {
                return Err(DvvError::BadCounter {
                    node: s.dot.node.clone(),
                    counter: 0,
                });
            }
            if !context.covers(&s.dot) {
                return Err(DvvError::DotNotCovered(s.dot.clone()));
            }
            if i > 0 && siblings[i - 1].dot == s.dot {
                return Err(DvvError::DuplicateDot(s.dot.clone()));
            }
        }
        Ok(DvvSet { context, siblings })
    }

    /// The causal context: what a read returns to the client (encoded with
    /// [`VersionVector::encode`]) and what the client sends with its next
    /// write.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// The siblings, sorted by dot.
    pub fn siblings(&self) -> &[Sibling<T>] {
        &self.siblings
    }

    /// The sibling values, in dot order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.siblings.iter().map(|s| &s.value)
    }

    pub fn into_parts(self) -> (VersionVector, Vec<Sibling<T>>) {
        (self.context, self.siblings)
    }

    /// Number of siblings.
    pub fn len(&self) -> usize {
        self.siblings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }
}

impl<T: Clone> DvvSet<T> {
    /// A client write of `value` coordinated by `coordinator`, the client
    /// having read `context` (empty for a blind write). Siblings the context
    /// covers are superseded and dropped; the others are concurrent and
    /// stay. The new value's dot is `(coordinator, max(self, context) + 1)`.
    ///
    /// This must run on the coordinator's own latest state of the key, so
    /// that its counter is the highest it issued.
    pub fn update(&self, context: &VersionVector, coordinator: &NodeId, value: T) -> Self {
        self.update_with_floor(context, coordinator, value, 0)
    }

    /// [`DvvSet::update`] with the new counter also above `floor`. Use after
    /// a purge so that new dots cannot collide with forgotten ones (see the
    /// module docs). Counters then skip values; a context covering a
    /// skipped counter is harmless, since counters only grow and a skipped
    /// one is never issued later.
    pub fn update_with_floor(
        &self,
        context: &VersionVector,
        coordinator: &NodeId,
        value: T,
        floor: u64,
    ) -> Self {
        let counter = self
            .context
            .get(coordinator)
            .max(context.get(coordinator))
            .max(floor)
            .saturating_add(1);
        let mut ctx = self.context.joined(context);
        ctx.advance(coordinator, counter);
        let mut siblings: Vec<Sibling<T>> = self
            .siblings
            .iter()
            .filter(|s| !context.covers(&s.dot))
            .cloned()
            .collect();
        let dot = Dot {
            node: coordinator.clone(),
            counter,
        };
        // The counter is above every dot of `coordinator` in this state, so
        // the new dot is unique.
        let at = siblings.partition_point(|s| s.dot < dot);
        siblings.insert(at, Sibling { dot, value });
        DvvSet {
            context: ctx,
            siblings,
        }
    }

    /// A blind overwrite at the coordinator: [`DvvSet::update_with_floor`]
    /// with this state's own context, so every sibling it holds is
    /// superseded. The same result, without copying the context or the
    /// superseded siblings.
    pub fn overwrite_with_floor(mut self, coordinator: &NodeId, value: T, floor: u64) -> Self {
        let counter = self.context.get(coordinator).max(floor).saturating_add(1);
        self.context.advance(coordinator, counter);
        // Every sibling's dot is covered by the context (an invariant).
        self.siblings.clear();
        self.siblings.push(Sibling {
            dot: Dot {
                node: coordinator.clone(),
                counter,
            },
            value,
        });
        self
    }

    /// The join of two replicas' states of one key: the contexts' pointwise
    /// maximum and the siblings neither side has seen superseded.
    /// Commutative, associative and idempotent on reachable states.
    pub fn merge(&self, other: &Self) -> Self {
        let (a, b) = (&self.siblings, &other.siblings);
        let mut siblings = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let order = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.dot.cmp(&y.dot),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Equal => {
                    // Same dot, same write: keep one copy.
                    siblings.push(a[i].clone());
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    if !other.context.covers(&a[i].dot) {
                        siblings.push(a[i].clone());
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if !self.context.covers(&b[j].dot) {
                        siblings.push(b[j].clone());
                    }
                    j += 1;
                }
            }
        }
        DvvSet {
            context: self.context.joined(&other.context),
            siblings,
        }
    }
}

/// Whether a replica may delete its state of a key for good: every sibling
/// is a tombstone, and every replica's context (`replica_contexts`, one per
/// replica of the key, hint holders included; none means no evidence)
/// descends the state's context, so no replica still holds a value the
/// tombstones supersede. After purging, issue new writes to the key with
/// [`DvvSet::update_with_floor`].
pub fn purgeable<T>(
    state: &DvvSet<T>,
    is_tombstone: impl Fn(&T) -> bool,
    replica_contexts: &[VersionVector],
) -> bool {
    !replica_contexts.is_empty()
        && state.values().all(is_tombstone)
        && replica_contexts.iter().all(|c| c.descends(state.context()))
}

/// [`purgeable`] for stored versions.
pub fn purgeable_record(state: &DvvSet<Version>, replica_contexts: &[VersionVector]) -> bool {
    purgeable(state, |v| v.tombstone, replica_contexts)
}
