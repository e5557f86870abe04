//! A polynomial-time decision for the common case: every value of the key is
//! written by exactly one operation and every operation left after
//! preparation is required (in the spirit of Gibbons & Korach, "Testing
//! shared memories", 1997: with a known reads-from relation, register
//! linearizability is easy).
//!
//! With unique values, a read names its write, so any linearization is a
//! sequence of *clusters*: the write of `v` followed by the reads of `v`,
//! up to the next write. A successful CAS expecting `v` must be that next
//! write, so CAS links glue clusters into *chains* that sit contiguously in
//! the linearization; the chain holding the initial value's cluster comes
//! first. With `e(X)` the earliest return and `s(X)` the latest call among
//! the operations of `X`, some operation of `X` precedes one of `Y` exactly
//! when `e(X) < s(Y)`. The history is linearizable iff
//!
//! 1. every read and CAS expects a value that is initial or written, no two
//!    CASes expect the same value, and every chain starts at the initial
//!    value or a plain write (no CAS cycles);
//! 2. no read of a cluster returns before its write is invoked;
//! 3. within a chain, no operation of a later cluster precedes one of an
//!    earlier cluster;
//! 4. no chain precedes the initial chain; and
//! 5. no two chains each precede the other. (A cycle in "precedes" between
//!    chains always contains such a pair: take the chain in it with the
//!    smallest `e`.)
//!
//! Given these, placing the chains in a topological order, clusters in chain
//! order, and in each cluster the write first and then the reads by
//! invocation time respects real time and register semantics; conversely
//! every linearization has this shape. Everything else goes to the WGL
//! search.

use std::collections::HashMap;

use crate::history::Value;
use crate::register::RegOp;
use crate::wgl::SearchOp;

/// Earliest return and latest call of a group of operations; empty groups
/// constrain nothing.
#[derive(Clone, Copy)]
struct Span {
    e: u64,
    s: u64,
}

impl Span {
    const EMPTY: Span = Span { e: u64::MAX, s: 0 };

    fn add(&mut self, call: u64, ret: u64) {
        self.e = self.e.min(ret);
        self.s = self.s.max(call);
    }

    fn merge(&mut self, other: Span) {
        self.e = self.e.min(other.e);
        self.s = self.s.max(other.s);
    }
}

#[derive(Clone)]
struct Cluster {
    span: Span,
    /// The write's call time (0 for the initial value).
    write_call: u64,
    /// Earliest return among the reads.
    first_read_ret: u64,
    next: Option<usize>,
    has_prev: bool,
}

/// `Some(linearizable?)` if the fast path applies, `None` otherwise.
pub(crate) fn decide(ops: &[SearchOp<RegOp>], initial: Option<Value>) -> Option<bool> {
    // Cluster 0 holds the initial value; cluster i + 1 the i-th written value.
    let mut cluster_of: HashMap<Value, usize> = HashMap::new();
    for op in ops {
        op.ret?;
        if let Some(v) = op.op.written() {
            if initial == Some(v) || cluster_of.insert(v, cluster_of.len() + 1).is_some() {
                return None;
            }
        }
    }
    let blank = Cluster {
        span: Span::EMPTY,
        write_call: 0,
        first_read_ret: u64::MAX,
        next: None,
        has_prev: false,
    };
    let mut clusters = vec![blank; cluster_of.len() + 1];
    let find = |state: Option<Value>| -> Option<usize> {
        if state == initial {
            Some(0)
        } else {
            state.and_then(|v| cluster_of.get(&v).copied())
        }
    };
    for op in ops {
        let ret = op.ret.unwrap_or(u64::MAX);
        let (observed, written) = match op.op {
            RegOp::Impossible => return Some(false),
            RegOp::Read(s) => (Some(s), None),
            RegOp::Write(v) => (None, Some(v)),
            RegOp::Cas(e, v) => (Some(e), Some(v)),
        };
        let Some(target) = written.and_then(|v| cluster_of.get(&v).copied()) else {
            // A read: joins the cluster of the value it saw.
            let Some(c) = observed.and_then(find) else {
                return Some(false);
            };
            clusters[c].span.add(op.call, ret);
            clusters[c].first_read_ret = clusters[c].first_read_ret.min(ret);
            continue;
        };
        clusters[target].span.add(op.call, ret);
        clusters[target].write_call = op.call;
        if let Some(expected) = observed {
            let Some(from) = find(expected) else {
                return Some(false);
            };
            if clusters[from].next.replace(target).is_some() {
                return Some(false);
            }
            clusters[target].has_prev = true;
        }
    }
    // (2) reads after their write.
    if clusters
        .iter()
        .skip(1)
        .any(|c| c.first_read_ret < c.write_call)
    {
        return Some(false);
    }
    // (1), (3): walk the chains from their heads.
    let mut chains: Vec<Span> = Vec::new();
    let mut visited = 0usize;
    for head in (0..clusters.len()).filter(|&c| !clusters[c].has_prev) {
        let mut chain = Span::EMPTY;
        let mut cursor = Some(head);
        while let Some(c) = cursor {
            visited += 1;
            if visited > clusters.len() {
                return Some(false);
            }
            let span = clusters[c].span;
            if span.e < chain.s {
                return Some(false);
            }
            chain.merge(span);
            cursor = clusters[c].next;
        }
        chains.push(chain);
    }
    if visited < clusters.len() {
        return Some(false);
    }
    // (4): chain 0 starts at cluster 0, the initial value.
    let first = chains[0];
    if chains.iter().skip(1).any(|c| c.e < first.s) {
        return Some(false);
    }
    // (5): sort by e; for each chain T, look for another chain S with
    // e(S) < s(T) and s(S) > e(T) among the prefix with e(S) < s(T).
    chains.sort_unstable_by_key(|c| c.e);
    // Per prefix: the largest s and the largest s of any other chain.
    let mut best: Vec<((u64, usize), u64)> = Vec::with_capacity(chains.len());
    let mut top = (0u64, usize::MAX);
    let mut second = 0u64;
    for (i, c) in chains.iter().enumerate() {
        if c.s > top.0 {
            second = top.0;
            top = (c.s, i);
        } else {
            second = second.max(c.s);
        }
        best.push((top, second));
    }
    for (i, t) in chains.iter().enumerate() {
        let p = chains.partition_point(|c| c.e < t.s);
        let Some(&((max_s, holder), second)) = p.checked_sub(1).and_then(|j| best.get(j)) else {
            continue;
        };
        let other = if holder == i { second } else { max_s };
        if other > t.e {
            return Some(false);
        }
    }
    Some(true)
}
