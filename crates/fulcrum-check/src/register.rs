//! The register model and the preparation of one key's operations for the
//! search.
//!
//! Preparation removes what cannot matter and bounds what can:
//!
//! * `Fail` operations did not happen: dropped.
//! * `Info` reads change nothing and may be omitted: dropped.
//! * An `Info` write (or CAS) whose value no remaining operation observes
//!   (reads it, or expects it in a CAS) is dropped: a linearization that
//!   includes it stays a linearization without it, because nothing between
//!   it and the next write can have depended on its value. Dropping an `Info`
//!   CAS may leave its expected value unobserved in turn, so this runs to a
//!   fixpoint.
//! * An `Info` write that is the only writer of a value some `Ok` operation
//!   observes must be linearized before that observer completes, so it gets
//!   the earliest such completion as its return time and becomes required.
//!   (Not when the initial value equals that value: the observer could have
//!   seen the initial state.)
//!
//! Each step keeps the set of linearizable histories exactly the same, and
//! together they remove almost every `Info` operation, which is what keeps
//! the search from going exponential in the number of unknown outcomes.

use std::collections::{HashMap, HashSet};

use crate::history::{Op, Operation, Outcome, Value};
use crate::wgl::{mix, Model, SearchOp};

/// A register operation as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegOp {
    Read(Option<Value>),
    Write(Value),
    Cas(Option<Value>, Value),
    /// A read that returned several siblings: no register can do that.
    Impossible,
}

impl RegOp {
    /// The register view of an op, if it is a register op. `ReadSet` counts
    /// as a register read returning its siblings.
    pub(crate) fn of(op: &Op) -> Option<RegOp> {
        Some(match op {
            Op::Read(v) => RegOp::Read(*v),
            Op::Write(v) => RegOp::Write(*v),
            Op::Cas { expected, new } => RegOp::Cas(*expected, *new),
            Op::ReadSet(values) => match values.as_slice() {
                [] => RegOp::Read(None),
                [v] => RegOp::Read(Some(*v)),
                _ => RegOp::Impossible,
            },
            Op::Add(_) | Op::ReadCounter(_) | Op::AddElement(_) => return None,
        })
    }

    /// The value whose presence this op depends on.
    pub(crate) fn observed(self) -> Option<Value> {
        match self {
            RegOp::Read(v) | RegOp::Cas(v, _) => v,
            RegOp::Write(_) | RegOp::Impossible => None,
        }
    }

    /// The value this op writes.
    pub(crate) fn written(self) -> Option<Value> {
        match self {
            RegOp::Write(v) | RegOp::Cas(_, v) => Some(v),
            RegOp::Read(_) | RegOp::Impossible => None,
        }
    }

    fn is_read(self) -> bool {
        matches!(self, RegOp::Read(_) | RegOp::Impossible)
    }
}

/// A single register holding an optional value.
pub(crate) struct Register;

impl Model for Register {
    type State = Option<Value>;
    type Op = RegOp;

    fn step(state: Self::State, op: &RegOp) -> Option<Self::State> {
        match *op {
            RegOp::Read(v) => (state == v).then_some(state),
            RegOp::Write(v) => Some(Some(v)),
            RegOp::Cas(expected, new) => (state == expected).then_some(Some(new)),
            RegOp::Impossible => None,
        }
    }

    fn is_pure(op: &RegOp) -> bool {
        op.is_read()
    }

    fn observes(op: &RegOp) -> Option<Self::State> {
        match *op {
            RegOp::Read(s) | RegOp::Cas(s, _) => Some(s),
            RegOp::Write(_) | RegOp::Impossible => None,
        }
    }

    fn hash_state(state: &Self::State) -> u64 {
        match state {
            Some(v) => mix(*v),
            None => mix(0x6e69_6c00_dead_beef),
        }
    }
}

/// Whether an operation can matter to linearizability at all: not `Fail`,
/// and not an `Info` read.
pub(crate) fn relevant(op: &Operation) -> bool {
    match (op.outcome, RegOp::of(&op.op)) {
        (_, None) | (Outcome::Fail, _) => false,
        (Outcome::Info, Some(reg)) => !reg.is_read(),
        (Outcome::Ok, Some(_)) => true,
    }
}

/// Turn one key's register operations into search input (see the module
/// docs). Non-register and irrelevant operations are ignored.
pub(crate) fn prepare(ops: &[&Operation], initial: Option<Value>) -> Vec<SearchOp<RegOp>> {
    let live: Vec<(&Operation, RegOp)> = ops
        .iter()
        .filter(|op| relevant(op))
        .filter_map(|op| RegOp::of(&op.op).map(|reg| (*op, reg)))
        .collect();
    let mut observers: HashMap<Value, usize> = HashMap::new();
    let mut info_writers: HashMap<Value, Vec<usize>> = HashMap::new();
    for (i, (op, reg)) in live.iter().enumerate() {
        if let Some(v) = reg.observed() {
            *observers.entry(v).or_default() += 1;
        }
        if let (Outcome::Info, Some(v)) = (op.outcome, reg.written()) {
            info_writers.entry(v).or_default().push(i);
        }
    }
    let mut kept = vec![true; live.len()];
    let mut queue: Vec<usize> = info_writers.values().flatten().copied().collect();
    while let Some(i) = queue.pop() {
        let reg = live[i].1;
        let Some(v) = reg.written() else { continue };
        if !kept[i] || observers.get(&v).copied().unwrap_or(0) > 0 {
            continue;
        }
        kept[i] = false;
        if let Some(e) = reg.observed() {
            if let Some(count) = observers.get_mut(&e) {
                *count -= 1;
                if *count == 0 {
                    queue.extend(info_writers.get(&e).into_iter().flatten());
                }
            }
        }
    }
    // Per value: how many kept writers, and the earliest completion of an
    // `Ok` observer.
    let mut writer_count: HashMap<Value, usize> = HashMap::new();
    let mut first_observer_done: HashMap<Value, u64> = HashMap::new();
    for (i, (op, reg)) in live.iter().enumerate() {
        if !kept[i] {
            continue;
        }
        if let Some(v) = reg.written() {
            *writer_count.entry(v).or_default() += 1;
        }
        if let (Outcome::Ok, Some(v), Some(done)) = (op.outcome, reg.observed(), op.complete) {
            let slot = first_observer_done.entry(v).or_insert(done);
            *slot = (*slot).min(done);
        }
    }
    live.iter()
        .zip(kept)
        .filter(|(_, kept)| *kept)
        .map(|((op, reg), _)| {
            let ret = match op.outcome {
                // Validated histories always have it; +∞ keeps a malformed
                // op required without inventing a deadline.
                Outcome::Ok | Outcome::Fail => Some(op.complete.unwrap_or(u64::MAX)),
                Outcome::Info => reg
                    .written()
                    .filter(|v| writer_count.get(v) == Some(&1) && initial != Some(*v))
                    .and_then(|v| first_observer_done.get(&v))
                    .map(|&done| done.max(op.invoke)),
            };
            SearchOp {
                call: op.invoke,
                ret,
                op: *reg,
            }
        })
        .collect()
}

/// Final touches for the search: values nobody observes are all renamed to
/// one unused value (they are interchangeable, and merging them lets the
/// memo merge the orders in which they were written), and the states that
/// can never come back once left are listed.
pub(crate) fn for_search(
    mut ops: Vec<SearchOp<RegOp>>,
    initial: Option<Value>,
) -> (Vec<SearchOp<RegOp>>, HashSet<Option<Value>>) {
    let observed: HashSet<Option<Value>> = ops
        .iter()
        .filter_map(|op| Register::observes(&op.op))
        .collect();
    let used: HashSet<Value> = ops
        .iter()
        .flat_map(|op| [op.op.written(), op.op.observed()])
        .flatten()
        .chain(initial)
        .collect();
    // At most `used.len()` values are taken, so one of the first
    // `used.len() + 1` candidates is free.
    let dead = (0..=u64::MAX)
        .rev()
        .find(|v| !used.contains(v))
        .unwrap_or(u64::MAX);
    for op in &mut ops {
        op.op = match op.op {
            RegOp::Write(v) if !observed.contains(&Some(v)) => RegOp::Write(dead),
            RegOp::Cas(e, v) if !observed.contains(&Some(v)) => RegOp::Cas(e, dead),
            other => other,
        };
    }
    let mut writers: HashMap<Option<Value>, usize> = HashMap::new();
    for v in ops.iter().filter_map(|op| op.op.written()) {
        *writers.entry(Some(v)).or_default() += 1;
    }
    let unrepeatable = observed
        .into_iter()
        .filter(|s| {
            let count = writers.get(s).copied().unwrap_or(0);
            count == 0 || (count == 1 && *s != initial)
        })
        .collect();
    (ops, unrepeatable)
}
