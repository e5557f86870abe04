//! Results of walking a ring: partition moves between rings and the lazy
//! clockwise walk of successors.

use super::{first_token_at, NodeId, PartitionId, Ring};

/// A partition whose replicas changed between two rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    pub partition: PartitionId,
    /// The preference list in the old ring.
    pub before: Vec<NodeId>,
    /// The preference list in the new ring.
    pub after: Vec<NodeId>,
}

impl PartitionMove {
    /// Whether the primary changed.
    pub fn primary_changed(&self) -> bool {
        self.before.first() != self.after.first()
    }

    /// Nodes among the first `n` replicas after the change that were not
    /// among the first `n` before: they must receive the partition's data.
    pub fn gained(&self, n: usize) -> Vec<&NodeId> {
        let before = &self.before[..n.min(self.before.len())];
        self.after
            .iter()
            .take(n)
            .filter(|id| !before.contains(id))
            .collect()
    }

    /// Nodes among the first `n` replicas before the change that are not
    /// among the first `n` after: they may drop the data once handed off.
    pub fn lost(&self, n: usize) -> Vec<&NodeId> {
        let after = &self.after[..n.min(self.after.len())];
        self.before
            .iter()
            .take(n)
            .filter(|id| !after.contains(id))
            .collect()
    }
}

/// Iterator of [`Ring::successors`].
#[derive(Debug)]
pub struct Successors<'a> {
    ring: &'a Ring,
    partition: PartitionId,
    prefix: (usize, usize),
    prefix_pos: usize,
    seen: Vec<bool>,
    seen_count: usize,
    /// Found when the walk first leaves the precomputed prefix.
    token_start: Option<usize>,
    token_step: usize,
}

impl<'a> Successors<'a> {
    pub(super) fn new(ring: &'a Ring, p: PartitionId) -> Self {
        let valid = p.0 < ring.config.partitions;
        Successors {
            ring,
            partition: p,
            prefix: ring.list_range(p, ring.stride),
            prefix_pos: 0,
            seen: vec![false; ring.nodes.len()],
            seen_count: 0,
            token_start: None,
            token_step: if valid { 0 } else { ring.tokens.len() },
        }
    }
}

impl<'a> Iterator for Successors<'a> {
    type Item = &'a NodeId;

    fn next(&mut self) -> Option<&'a NodeId> {
        let ring = self.ring;
        if self.prefix_pos < self.prefix.1 {
            let at = self.prefix.0 + self.prefix_pos;
            self.prefix_pos += 1;
            self.seen[ring.list_idx[at] as usize] = true;
            self.seen_count += 1;
            return Some(&ring.lists[at]);
        }
        let len = ring.tokens.len();
        let start = *self.token_start.get_or_insert_with(|| {
            first_token_at(&ring.tokens, ring.partition_start(self.partition))
        });
        while self.seen_count < self.seen.len() && self.token_step < len {
            let node = ring.tokens[(start + self.token_step) % len].node as usize;
            self.token_step += 1;
            if !self.seen[node] {
                self.seen[node] = true;
                self.seen_count += 1;
                return Some(&ring.nodes[node].id);
            }
        }
        None
    }
}
