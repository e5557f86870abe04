//! The Wing–Gong / Lowe linearizability search ("just-in-time
//! linearization"), as in Lowe's "Testing for linearizability" (2017) and
//! Porcupine.
//!
//! Call and return events sit in one doubly linked list sorted by time
//! (calls before returns at equal times, so touching intervals count as
//! concurrent). Scanning from the head, every call met before the first
//! return belongs to an operation that may take effect next: try it against
//! the model; if the model accepts it and the pair (set of linearized
//! operations, new state) has not been seen before, linearize it (unlink its
//! call and return) and restart from the head. Meeting a return means the
//! operation it closes has not been linearized in time: undo the most recent
//! choice and try the next call after it. An empty choice stack at a return
//! means no linearization exists.
//!
//! Operations without a return event are optional (`Info` operations that
//! may take effect at any time after invocation, or never): they may be
//! linearized but are never waited for, and the search succeeds once every
//! operation with a return is linearized.
//!
//! A pure operation (a read) that fits the current state and may go next is
//! a forced move: if any linearization exists from here, one exists that
//! takes it first (moving it to the front breaks neither real time nor any
//! later state). So backtracking never tries alternatives to it, and finding
//! its successor configuration already in the memo fails the current one.
//!
//! A state that no remaining operation can re-establish (a value with a
//! single writer, or an initial value nobody writes) must be observed by all
//! its required observers before anything changes it, so changing it earlier
//! is pruned at once instead of failing much later.
//!
//! The memo ("cache") stores each visited (set, state) pair. Sets are stored
//! compactly as (index of the first word that is not all ones, the words from
//! there to the last non-zero word), which for bounded concurrency is one or
//! two words however long the history; they are found through a Zobrist hash
//! maintained incrementally.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A sequential specification.
pub(crate) trait Model {
    /// The object's state; small and cheap to copy.
    type State: Copy + Eq + Hash;
    /// An operation with its observed result.
    type Op;
    /// The state after applying `op` in `state`, or `None` if the model
    /// forbids `op` there (e.g. a read that observed another value).
    fn step(state: Self::State, op: &Self::Op) -> Option<Self::State>;
    /// A well-mixed hash of a state.
    fn hash_state(state: &Self::State) -> u64;
    /// Whether `op` never changes the state (a read).
    fn is_pure(op: &Self::Op) -> bool;
    /// The state `op` requires, if it requires one.
    fn observes(op: &Self::Op) -> Option<Self::State>;
}

/// One operation to linearize: its call time, its return time (`None`:
/// optional, may also be left out) and what it did.
pub(crate) struct SearchOp<O> {
    pub call: u64,
    pub ret: Option<u64>,
    pub op: O,
}

/// The search's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchResult {
    Linearizable,
    NotLinearizable,
    /// More than the allowed number of steps; undecided.
    BudgetExceeded,
}

const HEAD: usize = 0;

/// One event of the linked list.
#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// Search for a linearization of `ops` from `initial`, giving up after
/// `max_steps` scan steps. `unrepeatable` lists states that, once left, no
/// operation can bring back: while the state is one of them, nothing may
/// change it before every required operation observing it has gone.
pub(crate) fn search<M: Model>(
    ops: &[SearchOp<M::Op>],
    initial: M::State,
    unrepeatable: &HashSet<M::State>,
    max_steps: u64,
) -> SearchResult {
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        // `false` sorts first: calls before returns at equal times.
        events.push((op.call, false, i));
        if let Some(ret) = op.ret {
            events.push((ret, true, i));
        }
    }
    events.sort_unstable();
    let mut nodes = Vec::with_capacity(events.len() + 1);
    nodes.push(Node {
        op: usize::MAX,
        is_call: false,
        prev: events.len(),
        next: 1 % (events.len() + 1),
    });
    let mut call_node = vec![0; ops.len()];
    let mut ret_node = vec![None; ops.len()];
    for (i, &(_, is_ret, op)) in events.iter().enumerate() {
        let index = i + 1;
        nodes.push(Node {
            op,
            is_call: !is_ret,
            prev: index - 1,
            next: (index + 1) % (events.len() + 1),
        });
        if is_ret {
            ret_node[op] = Some(index);
        } else {
            call_node[op] = index;
        }
    }
    let mut list = List { nodes };
    // Required observers of each unrepeatable state not yet linearized.
    let mut pending: HashMap<M::State, usize> = HashMap::new();
    let observed_unrepeatable = |op: &SearchOp<M::Op>| {
        M::observes(&op.op).filter(|s| op.ret.is_some() && unrepeatable.contains(s))
    };
    for s in ops.iter().filter_map(observed_unrepeatable) {
        *pending.entry(s).or_default() += 1;
    }
    let mut required = ops.iter().filter(|op| op.ret.is_some()).count();
    let mut bits = Bits::new(ops.len());
    let mut cache: Cache<M::State> = Cache::default();
    // (call node, state before, forced: no alternative worth trying).
    let mut stack: Vec<(usize, M::State, bool)> = Vec::new();
    let mut state = initial;
    let mut entry = list.nodes[HEAD].next;
    let mut steps = 0u64;
    while required > 0 {
        steps += 1;
        if steps > max_steps {
            return SearchResult::BudgetExceeded;
        }
        let node = list.nodes[entry];
        let mut backtrack = entry == HEAD || !node.is_call;
        if !backtrack {
            let op = &ops[node.op].op;
            let pure = M::is_pure(op);
            let blocked = !pure && unrepeatable.contains(&state) && {
                let own = observed_unrepeatable(&ops[node.op]) == Some(state);
                pending.get(&state).copied().unwrap_or(0) > usize::from(own)
            };
            if let Some(next_state) = M::step(state, op).filter(|_| !blocked) {
                bits.set(node.op);
                if cache.insert(&bits, next_state, M::hash_state(&next_state)) {
                    stack.push((entry, state, pure));
                    if let Some(count) =
                        observed_unrepeatable(&ops[node.op]).and_then(|s| pending.get_mut(&s))
                    {
                        *count -= 1;
                    }
                    state = next_state;
                    list.unlink(entry);
                    if let Some(ret) = ret_node[node.op] {
                        list.unlink(ret);
                        required -= 1;
                    }
                    entry = list.nodes[HEAD].next;
                    continue;
                }
                bits.clear(node.op);
                // A pure op that fits could go first in any linearization
                // from here; that configuration already failed, so this
                // one fails too.
                backtrack = pure;
            }
            entry = node.next;
        }
        if backtrack {
            // Undo choices; forced ones have no alternatives, keep undoing.
            loop {
                let Some((call, previous, forced)) = stack.pop() else {
                    return SearchResult::NotLinearizable;
                };
                let op = list.nodes[call].op;
                if let Some(count) =
                    observed_unrepeatable(&ops[op]).and_then(|s| pending.get_mut(&s))
                {
                    *count += 1;
                }
                bits.clear(op);
                if let Some(ret) = ret_node[op] {
                    list.relink(ret);
                    required += 1;
                }
                list.relink(call_node[op]);
                state = previous;
                entry = list.nodes[call].next;
                if !forced {
                    break;
                }
            }
        }
    }
    SearchResult::Linearizable
}

/// Dancing-links list: an unlinked node keeps its own pointers, so relinking
/// in reverse order of unlinking restores the list.
struct List {
    nodes: Vec<Node>,
}

impl List {
    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        self.nodes[next].prev = prev;
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        self.nodes[next].prev = n;
    }
}

/// The set of linearized operations, with its Zobrist hash and the bounds of
/// its interesting words kept up to date.
struct Bits {
    words: Vec<u64>,
    /// First word that is not all ones.
    lo: usize,
    /// One past the last non-zero word.
    hi: usize,
    hash: u64,
}

impl Bits {
    fn new(n: usize) -> Self {
        Bits {
            words: vec![0; n.div_ceil(64).max(1)],
            lo: 0,
            hi: 0,
            hash: 0,
        }
    }

    fn set(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] |= 1 << (i % 64);
        self.hash ^= zobrist(i);
        self.hi = self.hi.max(w + 1);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
    }

    fn clear(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] &= !(1 << (i % 64));
        self.hash ^= zobrist(i);
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    /// Canonical form: (first non-full word, words up to the last non-zero).
    fn window(&self) -> (usize, &[u64]) {
        (self.lo, &self.words[self.lo..self.hi.max(self.lo)])
    }
}

/// splitmix64: a fixed, well-mixed 64-bit value per operation index.
fn zobrist(i: usize) -> u64 {
    mix(i as u64 ^ 0x5851_f42d_4c95_7f2d)
}

/// splitmix64's finalizer.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes that are already well mixed go through unchanged.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// Visited (set, state) pairs: a hash → newest-entry map, entries chained by
/// `older`, set words in one flat arena.
struct Cache<S> {
    heads: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>,
    entries: Vec<Entry<S>>,
    arena: Vec<u64>,
}

struct Entry<S> {
    lo: usize,
    start: usize,
    len: usize,
    state: S,
    older: Option<usize>,
}

impl<S> Default for Cache<S> {
    fn default() -> Self {
        Cache {
            heads: HashMap::default(),
            entries: Vec::new(),
            arena: Vec::new(),
        }
    }
}

impl<S: Copy + Eq> Cache<S> {
    /// Insert; `false` if the pair was already there.
    fn insert(&mut self, bits: &Bits, state: S, state_hash: u64) -> bool {
        let hash = bits.hash ^ state_hash;
        let (lo, words) = bits.window();
        let mut cursor = self.heads.get(&hash).copied();
        while let Some(i) = cursor {
            let e = &self.entries[i];
            if e.state == state && e.lo == lo && self.arena[e.start..e.start + e.len] == *words {
                return false;
            }
            cursor = e.older;
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(words);
        let older = self.heads.insert(hash, self.entries.len());
        self.entries.push(Entry {
            lo,
            start,
            len: words.len(),
            state,
            older,
        });
        true
    }
}
