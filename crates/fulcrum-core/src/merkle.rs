//! Tictac-style Merkle trees for anti-entropy: order-independent and
//! updated incrementally on every write.
//!
//! One tree per (keyspace, ring partition). A key falls in one of
//! [`SEGMENTS`] segments by its hash; a segment's hash is the XOR of
//! `entry_hash(key, digest)` over its keys, where `digest` hashes the
//! stored record. XOR makes the tree independent of insertion order and
//! lets a write update it in O(1): XOR the old entry out and the new one
//! in. Two replicas with the same records have the same tree; comparing
//! roots, then segments, narrows a difference down to the keys to send.

use crate::ring::{stable_hash, stable_hash_parts};

/// Segments per partition tree.
pub const SEGMENTS: usize = 64;

/// The segment of a key: the top bits of its hash (independent of the
/// partition, which uses the whole hash).
pub fn segment_of(key: &[u8]) -> u8 {
    segment_of_hash(stable_hash(key))
}

/// [`segment_of`] from the key's `stable_hash`, for a caller that has it.
pub fn segment_of_hash(key_hash: u64) -> u8 {
    (key_hash.rotate_left(17) % SEGMENTS as u64) as u8
}

/// The digest of a stored record's bytes.
pub fn digest(record_bytes: &[u8]) -> u64 {
    stable_hash(record_bytes)
}

/// What one (key, digest) contributes to its segment.
pub fn entry_hash(key: &[u8], digest: u64) -> u64 {
    stable_hash_parts(&[&digest.to_be_bytes(), key])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTree {
    segments: [u64; SEGMENTS],
}

impl Default for PartitionTree {
    fn default() -> Self {
        PartitionTree {
            segments: [0; SEGMENTS],
        }
    }
}

impl PartitionTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces `key`'s entry: `old` is the digest it had (if stored),
    /// `new` the digest it has now (if still stored).
    pub fn update(&mut self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        self.update_segment(segment_of(key), key, old, new);
    }

    /// [`PartitionTree::update`] with the key's segment already known.
    pub fn update_segment(&mut self, segment: u8, key: &[u8], old: Option<u64>, new: Option<u64>) {
        let seg = segment as usize;
        if let Some(d) = old {
            self.segments[seg] ^= entry_hash(key, d);
        }
        if let Some(d) = new {
            self.segments[seg] ^= entry_hash(key, d);
        }
    }

    pub fn segments(&self) -> &[u64; SEGMENTS] {
        &self.segments
    }

    /// The root: a hash over the segment hashes.
    pub fn root(&self) -> u64 {
        let mut buf = Vec::with_capacity(SEGMENTS * 8);
        for s in &self.segments {
            buf.extend_from_slice(&s.to_be_bytes());
        }
        stable_hash(&buf)
    }

    /// Whether no key is recorded (all segments zero).
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| *s == 0)
    }

    /// Segments whose hashes differ from `other`'s.
    pub fn diff(&self, other: &[u64]) -> Vec<u8> {
        self.segments
            .iter()
            .zip(other)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i as u8)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_writes_does_not_matter() {
        let mut a = PartitionTree::new();
        let mut b = PartitionTree::new();
        a.update(b"x", None, Some(1));
        a.update(b"y", None, Some(2));
        b.update(b"y", None, Some(2));
        b.update(b"x", None, Some(1));
        assert_eq!(a.root(), b.root());
    }

    #[test]
    fn updating_back_restores_the_root() {
        let mut t = PartitionTree::new();
        t.update(b"x", None, Some(1));
        let r1 = t.root();
        t.update(b"x", Some(1), Some(7));
        assert_ne!(t.root(), r1);
        t.update(b"x", Some(7), Some(1));
        assert_eq!(t.root(), r1);
        t.update(b"x", Some(1), None);
        assert!(t.is_empty());
    }

    #[test]
    fn diff_names_only_the_changed_segment() {
        let mut a = PartitionTree::new();
        for i in 0..100u32 {
            a.update(&i.to_be_bytes(), None, Some(u64::from(i)));
        }
        let mut b = a.clone();
        b.update(&5u32.to_be_bytes(), Some(5), Some(500));
        assert_eq!(a.diff(b.segments()), vec![segment_of(&5u32.to_be_bytes())]);
    }
}
