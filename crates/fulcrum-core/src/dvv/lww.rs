//! Last-write-wins resolution for `CONFLICT lww` keyspaces: one version per
//! key, the one with the highest hybrid-logical-clock timestamp, with ties
//! broken by a total order so that every replica keeps the same one.

use std::cmp::Ordering;

use crate::record::{Record, Version};

/// The last-write-wins order: higher timestamp wins; on a tie a tombstone
/// beats a value, then the larger value bytes, then the later expiry. A total
/// order, so that every replica picks the same winner.
pub fn lww_cmp(a: &Version, b: &Version) -> Ordering {
    a.timestamp
        .cmp(&b.timestamp)
        .then(a.tombstone.cmp(&b.tombstone))
        .then_with(|| a.value.cmp(&b.value))
        .then(a.expires_at_ms.cmp(&b.expires_at_ms))
}

/// The version last-write-wins keeps among `versions`.
pub fn lww_winner<'a>(versions: impl IntoIterator<Item = &'a Version>) -> Option<&'a Version> {
    versions.into_iter().max_by(|a, b| lww_cmp(a, b))
}

/// Merges two records of a `CONFLICT lww` keyspace: one version, the
/// [`lww_winner`] of both, and no causal metadata. Commutative, associative
/// and idempotent.
pub fn lww_merge(a: &Record, b: &Record) -> Record {
    match lww_winner(a.versions.iter().chain(&b.versions)) {
        Some(v) => Record::single(v.clone()),
        None => Record::default(),
    }
}
