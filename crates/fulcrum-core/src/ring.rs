//! Consistent hashing with virtual nodes: which nodes hold which keys.
//!
//! The hash space is the 64-bit circle. It is cut into a fixed number of
//! equal partitions (a power of two); a key belongs to the partition named by
//! the top bits of its [`stable_hash`]. Partition `p` owns the range
//! `[p·2⁶⁴/P, (p+1)·2⁶⁴/P)` and sits on the circle at the start of that
//! range.
//!
//! Every node places `weight × vnodes_per_weight` tokens on the circle at
//! `stable_hash(len(id) ‖ id ‖ index)`. A partition's replicas come from
//! walking the tokens clockwise from the partition's position:
//!
//! * the **primary** (first replica) is the owner of the first token at or
//!   after the position, so adding a node only ever moves partitions *to*
//!   the new node, and removing one only moves its own partitions away;
//! * the next replicas are chosen greedily, like Cassandra's
//!   `NetworkTopologyStrategy`: each pick is the first node on the walk
//!   whose datacenter, then rack, is least used by the picks so far
//!   (lexicographically by `(replicas in its DC, replicas in its rack)`).
//!   So with enough DCs or racks a list spans them all, and otherwise the
//!   copies are spread as evenly as the topology allows;
//! * the preference list for `n` is always a prefix of the list for `n + 1`.
//!
//! Invariants:
//! * a ring is a pure function of the *set* of nodes and its config: input
//!   order does not matter (nodes are sorted by id, tokens by position then
//!   node), and the hash is stable across processes and builds;
//! * every preference list holds distinct nodes;
//! * lists are precomputed for up to `max_n` replicas at build time, so
//!   [`Ring::preference_list`] is a slice lookup on the hot path.

mod hash;
mod node;
mod placement;
#[cfg(test)]
mod tests;
mod walk;

pub use hash::{stable_hash, stable_hash_parts};
pub use node::{NodeId, RingNode};
pub use walk::{PartitionMove, Successors};

use std::fmt;

use serde::{Deserialize, Serialize};

use placement::Topology;

use crate::keyspace::MAX_REPLICAS;

/// Partitions of a ring unless configured otherwise.
pub const DEFAULT_PARTITIONS: u32 = 4096;
/// Tokens per unit of node weight unless configured otherwise. Large because
/// the spread of a node's share of the circle shrinks only as `1/√tokens`
/// (2048 tokens: about 2.2% standard deviation). Tokens cost 16 bytes each
/// and are walked only at build time and by [`Ring::successors`].
pub const DEFAULT_VNODES_PER_WEIGHT: u32 = 2048;
/// The most partitions a ring may have.
pub const MAX_PARTITIONS: u32 = 1 << 16;
/// The most tokens a ring may have in total (64 MiB of tokens).
pub const MAX_TOKENS: u64 = 1 << 22;

/// The shape of a ring. Every node of a cluster must use the same config, or
/// they disagree about placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingConfig {
    /// Number of partitions: a power of two in `1..=MAX_PARTITIONS`.
    /// Changing it re-partitions every key.
    pub partitions: u32,
    /// Tokens per unit of node weight, at least 1.
    pub vnodes_per_weight: u32,
    /// Longest precomputed preference list, at least 1.
    pub max_n: usize,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            partitions: DEFAULT_PARTITIONS,
            vnodes_per_weight: DEFAULT_VNODES_PER_WEIGHT,
            max_n: MAX_REPLICAS as usize,
        }
    }
}

/// Index of a partition, `0..partitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("a ring needs at least one node")]
    Empty,
    #[error("node ids must not be empty")]
    EmptyNodeId,
    #[error("node '{0}' appears more than once")]
    DuplicateNode(NodeId),
    #[error("node '{0}' has weight 0; remove it from the ring instead")]
    ZeroWeight(NodeId),
    #[error("partition count {0} is not a power of two in 1..={MAX_PARTITIONS}")]
    BadPartitionCount(u32),
    #[error("vnodes_per_weight must be at least 1")]
    ZeroVnodes,
    #[error("max_n must be at least 1")]
    ZeroMaxN,
    #[error("the nodes would place {0} tokens, more than {MAX_TOKENS}")]
    TooManyTokens(u64),
    #[error("cannot diff rings of {old} and {new} partitions")]
    PartitionCountMismatch { old: u32, new: u32 },
}

impl RingConfig {
    /// Checks the config's fields.
    ///
    /// # Errors
    /// [`RingError`] naming the first field that does not fit.
    pub fn validate(&self) -> Result<(), RingError> {
        if !self.partitions.is_power_of_two() || self.partitions > MAX_PARTITIONS {
            return Err(RingError::BadPartitionCount(self.partitions));
        }
        if self.vnodes_per_weight == 0 {
            return Err(RingError::ZeroVnodes);
        }
        if self.max_n == 0 {
            return Err(RingError::ZeroMaxN);
        }
        Ok(())
    }
}

/// One virtual node: a position on the circle and the index of its node.
/// Ordered by position, then node, so ties break the same way everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Token {
    pos: u64,
    node: u32,
}

/// An immutable placement of partitions on nodes. Cheap to query; rebuilt
/// (not mutated) when membership changes.
#[derive(Clone, PartialEq)]
pub struct Ring {
    config: RingConfig,
    /// log2 of the partition count.
    bits: u32,
    /// Sorted by id; a node's index is its position here.
    nodes: Vec<RingNode>,
    /// Sorted by (position, node).
    tokens: Vec<Token>,
    /// Preference lists, `stride` entries per partition.
    lists: Vec<NodeId>,
    /// The same lists as node indices.
    list_idx: Vec<u32>,
    /// `min(max_n, nodes)`.
    stride: usize,
    /// Partitions per node as primary, by node index.
    primaries: Vec<u32>,
}

impl Ring {
    /// A ring of `nodes` with the default config.
    ///
    /// # Errors
    /// See [`Ring::with_config`].
    pub fn new(nodes: impl IntoIterator<Item = RingNode>) -> Result<Ring, RingError> {
        Ring::with_config(nodes, RingConfig::default())
    }

    /// A ring of `nodes` shaped by `config`. Costs
    /// `O(tokens·log tokens + partitions·max_n·walk)`; meant to run on
    /// membership changes, not per request.
    ///
    /// # Errors
    /// [`RingError`] for an invalid config, no nodes, an empty or duplicate
    /// node id, a zero weight, or too many tokens.
    pub fn with_config(
        nodes: impl IntoIterator<Item = RingNode>,
        config: RingConfig,
    ) -> Result<Ring, RingError> {
        config.validate()?;
        let mut nodes: Vec<RingNode> = nodes.into_iter().collect();
        if nodes.is_empty() {
            return Err(RingError::Empty);
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut total = 0u64;
        for (i, n) in nodes.iter().enumerate() {
            if n.id.is_empty() {
                return Err(RingError::EmptyNodeId);
            }
            if i > 0 && nodes[i - 1].id == n.id {
                return Err(RingError::DuplicateNode(n.id.clone()));
            }
            if n.weight == 0 {
                return Err(RingError::ZeroWeight(n.id.clone()));
            }
            total += u64::from(n.weight) * u64::from(config.vnodes_per_weight);
        }
        if total > MAX_TOKENS {
            return Err(RingError::TooManyTokens(total));
        }

        let mut tokens = Vec::with_capacity(total as usize);
        let mut buf = Vec::new();
        for (idx, n) in nodes.iter().enumerate() {
            // Bounded by MAX_TOKENS above, so both fit in u32.
            let count = n.weight * config.vnodes_per_weight;
            let idx = idx as u32;
            // Token `i` sits at stable_hash(len(id) as u64 BE ‖ id ‖ i as u32 BE).
            buf.clear();
            buf.extend_from_slice(&(n.id.len() as u64).to_be_bytes());
            buf.extend_from_slice(n.id.as_bytes());
            let prefix = buf.len();
            for i in 0..count {
                buf.truncate(prefix);
                buf.extend_from_slice(&i.to_be_bytes());
                tokens.push(Token {
                    pos: stable_hash(&buf),
                    node: idx,
                });
            }
        }
        tokens.sort_unstable();
        tokens.dedup();

        let bits = config.partitions.trailing_zeros();
        let stride = config.max_n.min(nodes.len());
        let topology = Topology::new(&nodes);
        let parts = config.partitions as usize;
        let mut lists = Vec::with_capacity(parts * stride);
        let mut list_idx = Vec::with_capacity(parts * stride);
        let mut primaries = vec![0u32; nodes.len()];
        let mut picks = Vec::with_capacity(stride);
        for p in 0..config.partitions {
            let start = first_token_at(&tokens, partition_start(bits, p));
            topology.place(&tokens, start, stride, &mut picks);
            primaries[picks[0] as usize] += 1;
            lists.extend(picks.iter().map(|&i| nodes[i as usize].id.clone()));
            list_idx.extend_from_slice(&picks);
        }

        Ok(Ring {
            config,
            bits,
            nodes,
            tokens,
            lists,
            list_idx,
            stride,
            primaries,
        })
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.config.partitions
    }

    /// Every partition id, in order.
    pub fn partition_ids(&self) -> impl Iterator<Item = PartitionId> {
        (0..self.config.partitions).map(PartitionId)
    }

    /// The nodes, sorted by id.
    pub fn nodes(&self) -> &[RingNode] {
        &self.nodes
    }

    pub fn node(&self, id: &str) -> Option<&RingNode> {
        self.index_of(id).map(|i| &self.nodes[i])
    }

    /// Total number of tokens (virtual nodes) on the circle.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The partition a key belongs to: the top bits of its stable hash.
    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        partition_of_hash(self.bits, stable_hash(key))
    }

    /// Where partition `p`'s range starts on the circle.
    pub fn partition_start(&self, p: PartitionId) -> u64 {
        partition_start(self.bits, p.0)
    }

    /// The first `n` replicas of partition `p`, primary first: distinct
    /// nodes, spread over DCs and racks as described in the module docs.
    /// Shorter than `n` when the ring has fewer nodes or `n > max_n`; empty
    /// for a partition id out of range. A slice lookup.
    pub fn preference_list(&self, p: PartitionId, n: usize) -> &[NodeId] {
        let (start, len) = self.list_range(p, n);
        self.lists.get(start..start + len).unwrap_or(&[])
    }

    /// The primary (first replica) of partition `p`; `None` if out of range.
    pub fn primary(&self, p: PartitionId) -> Option<&NodeId> {
        self.preference_list(p, 1).first()
    }

    /// Every node in the order a sloppy quorum tries them for partition
    /// `p`: the precomputed preference list (up to `max_n`), then every other
    /// node in clockwise order of first appearance. Lazy: a caller looking for
    /// the next healthy node after the first `n` takes `.skip(n)` and stops
    /// at the first good one.
    pub fn successors(&self, p: PartitionId) -> Successors<'_> {
        Successors::new(self, p)
    }

    /// The whole clockwise walk of distinct nodes for partition `p`, as
    /// [`Ring::successors`] (collected). Walks up to every token; not for the
    /// hot path.
    pub fn extended_list(&self, p: PartitionId) -> Vec<NodeId> {
        self.successors(p).cloned().collect()
    }

    /// Fraction of partitions whose primary is `node` (0 for a stranger).
    pub fn owned_share(&self, node: &str) -> f64 {
        self.index_of(node).map_or(0.0, |i| {
            f64::from(self.primaries[i]) / f64::from(self.config.partitions)
        })
    }

    /// Partitions per node as primary, in node id order.
    pub fn primary_counts(&self) -> Vec<(NodeId, u32)> {
        self.nodes
            .iter()
            .zip(&self.primaries)
            .map(|(n, &c)| (n.id.clone(), c))
            .collect()
    }

    /// Partitions per node among the first `n` replicas, in node id order.
    pub fn replica_counts(&self, n: usize) -> Vec<(NodeId, u32)> {
        let n = n.min(self.stride);
        let mut counts = vec![0u32; self.nodes.len()];
        for list in self.list_idx.chunks_exact(self.stride.max(1)) {
            for &i in &list[..n] {
                counts[i as usize] += 1;
            }
        }
        self.nodes
            .iter()
            .zip(counts)
            .map(|(n, c)| (n.id.clone(), c))
            .collect()
    }

    /// Fraction of the hash circle `node`'s tokens own, i.e. the arcs
    /// `(previous token, token]` of its tokens. This is the primary share an
    /// infinitely fine partitioning would give: it measures the token
    /// layout alone, without the sampling noise of finitely many
    /// partitions.
    pub fn range_share(&self, node: &str) -> f64 {
        let Some(idx) = self.index_of(node) else {
            return 0.0;
        };
        if self.tokens.len() == 1 {
            return 1.0;
        }
        let mut owned: u128 = 0;
        for (i, t) in self.tokens.iter().enumerate() {
            if t.node as usize == idx {
                let prev = self.tokens[(i + self.tokens.len() - 1) % self.tokens.len()].pos;
                owned += u128::from(t.pos.wrapping_sub(prev));
            }
        }
        owned as f64 / 2f64.powi(64)
    }

    /// Partitions whose preference list differs between `old` and `new`,
    /// comparing the first `min(old.max_n, new.max_n)` replicas.
    ///
    /// # Errors
    /// [`RingError::PartitionCountMismatch`] when the rings partition the
    /// keys differently, so that partitions cannot be compared.
    pub fn diff(old: &Ring, new: &Ring) -> Result<Vec<PartitionMove>, RingError> {
        if old.config.partitions != new.config.partitions {
            return Err(RingError::PartitionCountMismatch {
                old: old.config.partitions,
                new: new.config.partitions,
            });
        }
        let n = old.config.max_n.min(new.config.max_n);
        Ok(old
            .partition_ids()
            .filter_map(|p| {
                let before = old.preference_list(p, n);
                let after = new.preference_list(p, n);
                (before != after).then(|| PartitionMove {
                    partition: p,
                    before: before.to_vec(),
                    after: after.to_vec(),
                })
            })
            .collect())
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.id.as_str().cmp(id)).ok()
    }

    /// Start and length in `lists` of partition `p`'s first `n` replicas.
    fn list_range(&self, p: PartitionId, n: usize) -> (usize, usize) {
        if p.0 >= self.config.partitions {
            return (0, 0);
        }
        (p.0 as usize * self.stride, n.min(self.stride))
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("config", &self.config)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.id).collect::<Vec<_>>(),
            )
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

fn partition_start(bits: u32, p: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        u64::from(p) << (64 - bits)
    }
}

fn partition_of_hash(bits: u32, h: u64) -> PartitionId {
    if bits == 0 {
        PartitionId(0)
    } else {
        // At most 16 bits remain after the shift.
        PartitionId((h >> (64 - bits)) as u32)
    }
}

/// Index of the first token at or after `pos`, wrapping to 0.
fn first_token_at(tokens: &[Token], pos: u64) -> usize {
    let i = tokens.partition_point(|t| t.pos < pos);
    if i == tokens.len() {
        0
    } else {
        i
    }
}
