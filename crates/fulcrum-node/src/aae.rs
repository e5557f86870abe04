//! Active anti-entropy: Merkle-tree exchange between replicas, so that
//! replicas converge even for keys nobody reads.
//!
//! Local side (`Db`): every stored record of an eventual keyspace has an
//! entry `ks len ‖ ks ‖ partition (u32 BE) ‖ segment (u8) ‖ key → digest`
//! in the `aae` table, written in the same batch as the record, and the
//! in-memory tree of its (keyspace, partition) is updated by XOR
//! (`fulcrum_core::merkle`). Trees are rebuilt from the index at start.
//!
//! Exchange (`Cluster`): every `aae-interval-ms`, for each eventual
//! keyspace and each live peer, compare the roots of the partitions both
//! replicate; for partitions that differ, compare segment hashes; for
//! segments that differ, list (key, digest) on both sides; for each key
//! whose digests differ, push this node's record to the peer and pull the
//! peer's into this node (both merges are idempotent). The number of keys
//! transferred is proportional to the keys that differ, not to the data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fulcrum_core::keyspace::Mode;
use fulcrum_core::merkle::{self, PartitionTree};
use fulcrum_core::record::Record;
use fulcrum_core::ring::{stable_hash, DEFAULT_PARTITIONS};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::catalog::Keyspace;
use crate::cluster::Cluster;
use crate::db::{Db, DbError};
use crate::net::{PeerRequest, PeerResponse};
use crate::write_group::Staging;

pub const TABLE: &str = "aae";

/// The ring partition of a key (same formula as `Ring::partition_of` with
/// the default partition count; a test keeps them equal).
pub fn partition_of(key: &[u8]) -> u32 {
    partition_of_hash(stable_hash(key))
}

/// [`partition_of`] from the key's `stable_hash`.
fn partition_of_hash(key_hash: u64) -> u32 {
    let bits = DEFAULT_PARTITIONS.trailing_zeros();
    (key_hash >> (64 - bits)) as u32
}

/// Where `key`'s anti-entropy entry lives: its partition and segment, from
/// one hash of the key.
#[derive(Clone, Copy)]
struct Place {
    partition: u32,
    segment: u8,
}

impl Place {
    fn of(key: &[u8]) -> Place {
        let h = stable_hash(key);
        Place {
            partition: partition_of_hash(h),
            segment: merkle::segment_of_hash(h),
        }
    }
}

fn prefix(ks: &str) -> BytesMut {
    let mut b = BytesMut::with_capacity(1 + ks.len() + 5);
    b.put_u8(ks.len() as u8);
    b.put_slice(ks.as_bytes());
    b
}

fn index_key(ks: &str, key: &[u8], place: Place) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + ks.len() + 5 + key.len());
    b.put_u8(ks.len() as u8);
    b.put_slice(ks.as_bytes());
    b.put_u32(place.partition);
    b.put_u8(place.segment);
    b.put_slice(key);
    b.freeze()
}

/// In-memory trees of this node, per keyspace and partition.
#[derive(Default)]
pub struct Trees {
    /// Keyed by keyspace name, then partition: a write finds its tree
    /// without building an owned key.
    trees: Mutex<foldhash::HashMap<String, foldhash::HashMap<u32, PartitionTree>>>,
}

impl Trees {
    fn update(&self, ks: &str, key: &[u8], old: Option<u64>, new: Option<u64>) {
        self.update_at(ks, key, Place::of(key), old, new);
    }

    fn update_at(&self, ks: &str, key: &[u8], place: Place, old: Option<u64>, new: Option<u64>) {
        let mut t = self.trees.lock();
        let per_ks = match t.get_mut(ks) {
            Some(p) => p,
            None => t.entry(ks.to_string()).or_default(),
        };
        per_ks
            .entry(place.partition)
            .or_default()
            .update_segment(place.segment, key, old, new);
    }

    fn tree<T>(&self, ks: &str, partition: u32, f: impl FnOnce(Option<&PartitionTree>) -> T) -> T {
        f(self.trees.lock().get(ks).and_then(|p| p.get(&partition)))
    }

    pub fn root(&self, ks: &str, partition: u32) -> u64 {
        self.tree(ks, partition, |t| {
            t.map_or_else(|| PartitionTree::new().root(), PartitionTree::root)
        })
    }

    pub fn segments(&self, ks: &str, partition: u32) -> Vec<u64> {
        self.tree(ks, partition, |t| {
            t.map_or_else(|| vec![0; merkle::SEGMENTS], |t| t.segments().to_vec())
        })
    }
}

impl Db {
    /// Stages the AAE index change for `key` with the record's and updates
    /// the tree (call with the key locked, in the same [`Staging`] as the
    /// record).
    pub(crate) fn aae_stage(
        &self,
        staging: &mut Staging<'_>,
        ks: &Keyspace,
        key: &[u8],
        old_d: Option<u64>,
        new_d: Option<u64>,
    ) {
        if ks.spec.mode != Mode::Eventual || old_d == new_d {
            return;
        }
        let place = Place::of(key);
        let ik = index_key(&ks.spec.name, key, place);
        match new_d {
            Some(d) => staging.put(TABLE, ik, Bytes::copy_from_slice(&d.to_be_bytes())),
            None => staging.remove(TABLE, ik),
        }
        self.trees
            .update_at(&ks.spec.name, key, place, old_d, new_d);
    }

    /// Rebuilds every tree from the index (at start).
    ///
    /// # Errors
    /// Storage failure.
    pub fn aae_rebuild(&self) -> Result<(), DbError> {
        use std::ops::Bound;
        let mut after: Option<Bytes> = None;
        loop {
            let start = match &after {
                Some(k) => Bound::Excluded(&k[..]),
                None => Bound::Unbounded,
            };
            let rows = self.storage.scan(TABLE, start, Bound::Unbounded, 4096)?;
            let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
                return Ok(());
            };
            for (k, v) in rows {
                let Some((ks, key)) = parse(&k) else { continue };
                let Ok(d) = <[u8; 8]>::try_from(&v[..]) else {
                    continue;
                };
                self.trees
                    .update(ks, key, None, Some(u64::from_be_bytes(d)));
            }
            after = Some(last);
        }
    }

    /// (key, digest) of every stored key of `ks` in `partition`'s
    /// `segments`.
    ///
    /// # Errors
    /// Storage failure.
    pub fn aae_keys(
        &self,
        ks: &str,
        partition: u32,
        segments: &[u8],
    ) -> Result<Vec<(Bytes, u64)>, DbError> {
        use std::ops::Bound;
        let mut out = Vec::new();
        for seg in segments {
            let mut p = prefix(ks);
            p.put_u32(partition);
            p.put_u8(*seg);
            let start = p.clone().freeze();
            let mut end = p;
            end.put_u8(0xFF);
            // Keys may start with 0xFF: scan to the next segment instead.
            let mut stop = prefix(ks);
            let next = (u64::from(partition) << 8 | u64::from(*seg)) + 1;
            stop.put_u32((next >> 8) as u32);
            stop.put_u8((next & 0xFF) as u8);
            let rows = self.storage.scan(
                TABLE,
                Bound::Included(&start[..]),
                Bound::Excluded(&stop[..]),
                usize::MAX,
            )?;
            for (k, v) in rows {
                let (Some((_, key)), Ok(d)) = (parse(&k), <[u8; 8]>::try_from(&v[..])) else {
                    continue;
                };
                out.push((Bytes::copy_from_slice(key), u64::from_be_bytes(d)));
            }
        }
        Ok(out)
    }
}

/// A page of (key, encoded record) and where the next page starts.
pub type RecordPage = (Vec<(Bytes, Bytes)>, Option<Bytes>);

impl Db {
    /// Up to `limit` (key, encoded record) of `ks` in `partition`, in index
    /// order, after index position `after` (from the start if `None`); and
    /// the position to continue after, `None` once the partition is done.
    /// Streaming reads partitions this way.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn partition_records(
        &self,
        ks: &Keyspace,
        partition: u32,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, DbError> {
        use std::ops::Bound;
        let mut first = prefix(&ks.spec.name);
        first.put_u32(partition);
        let mut stop = prefix(&ks.spec.name);
        stop.put_u32(partition + 1);
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(&first[..]),
        };
        // Partition ids are below 2^16, so `partition + 1` is a bound.
        let rows = self
            .storage
            .scan(TABLE, start, Bound::Excluded(&stop[..]), limit.max(1))?;
        let next = (rows.len() >= limit.max(1))
            .then(|| rows.last().map(|(k, _)| k.clone()))
            .flatten();
        let mut out = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            let Some((_, key)) = parse(&k) else { continue };
            if let Some(rec) = self.read_record(ks, key)? {
                out.push((Bytes::copy_from_slice(key), rec.encode()));
            }
        }
        Ok((out, next))
    }
}

fn parse(k: &[u8]) -> Option<(&str, &[u8])> {
    let l = *k.first()? as usize;
    let ks = std::str::from_utf8(k.get(1..1 + l)?).ok()?;
    Some((ks, k.get(1 + l + 5..)?))
}

/// Counts of one exchange pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub partitions_compared: u64,
    pub partitions_differing: u64,
    pub keys_pushed: u64,
    pub keys_pulled: u64,
}

impl Cluster {
    /// Partitions of `ks` replicated by both this node and `peer`.
    fn shared_partitions(&self, ks: &Keyspace, peer: &str) -> Vec<u32> {
        let ring = self.ring();
        let n = (ks.spec.replicas as usize).min(self.member_count()).max(1);
        (0..DEFAULT_PARTITIONS)
            .filter(|p| {
                let list = ring.preference_list(fulcrum_core::ring::PartitionId(*p), n);
                list.iter().any(|x| **x == *self.me.node_id) && list.iter().any(|x| **x == *peer)
            })
            .collect()
    }

    /// Partitions of `ks` this node replicates, with this node's Merkle root
    /// of each (the empty tree's root where it holds none of its keys).
    pub fn replicated_roots(&self, ks: &Keyspace) -> Vec<(u32, u64)> {
        let ring = self.ring();
        let n = (ks.spec.replicas as usize).min(self.member_count()).max(1);
        (0..DEFAULT_PARTITIONS)
            .filter(|p| {
                ring.preference_list(fulcrum_core::ring::PartitionId(*p), n)
                    .iter()
                    .any(|x| **x == *self.me.node_id)
            })
            .map(|p| (p, self.db.trees.root(&ks.spec.name, p)))
            .collect()
    }

    /// One anti-entropy pass of keyspace `ks` with every live peer.
    pub async fn aae_pass(self: &Arc<Self>, ks: &Arc<Keyspace>) -> PassStats {
        let mut stats = PassStats::default();
        let peers: Vec<_> = self
            .members()
            .into_iter()
            .filter(|m| m.node_id != self.me.node_id && self.is_up(&m.node_id))
            .collect();
        for peer in peers {
            let partitions = self.shared_partitions(ks, &peer.node_id);
            let req = PeerRequest::AaeRoots {
                keyspace: ks.spec.name.clone(),
                partitions: partitions.clone(),
            };
            let Ok(PeerResponse::Hashes(roots)) = self
                .pool
                .call(&peer.peer_addr, req, self.request_timeout)
                .await
            else {
                continue;
            };
            stats.partitions_compared += partitions.len() as u64;
            for (p, theirs) in partitions.iter().zip(roots) {
                if self.db.trees.root(&ks.spec.name, *p) == theirs {
                    continue;
                }
                stats.partitions_differing += 1;
                let req = PeerRequest::AaeSegments {
                    keyspace: ks.spec.name.clone(),
                    partition: *p,
                };
                let Ok(PeerResponse::Hashes(segs)) = self
                    .pool
                    .call(&peer.peer_addr, req, self.request_timeout)
                    .await
                else {
                    continue;
                };
                let mine = self.db.trees.segments(&ks.spec.name, *p);
                let differing: Vec<u8> = mine
                    .iter()
                    .zip(&segs)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, _)| i as u8)
                    .collect();
                let req = PeerRequest::AaeKeys {
                    keyspace: ks.spec.name.clone(),
                    partition: *p,
                    segments: differing.clone(),
                };
                let Ok(PeerResponse::Digests(theirs)) = self
                    .pool
                    .call(&peer.peer_addr, req, self.request_timeout)
                    .await
                else {
                    continue;
                };
                let Ok(ours) = self.db.aae_keys(&ks.spec.name, *p, &differing) else {
                    continue;
                };
                let ours: BTreeMap<Bytes, u64> = ours.into_iter().collect();
                let theirs: BTreeMap<Bytes, u64> = theirs.into_iter().collect();
                for (key, d) in &ours {
                    if theirs.get(key) != Some(d) {
                        if let Ok(Some(rec)) = self.db.read_record(ks, key) {
                            let req = PeerRequest::Put {
                                keyspace: ks.spec.name.clone(),
                                key: key.clone(),
                                record: rec.encode(),
                            };
                            if self
                                .pool
                                .call(&peer.peer_addr, req, self.request_timeout)
                                .await
                                .is_ok()
                            {
                                stats.keys_pushed += 1;
                            }
                        }
                    }
                }
                for (key, d) in &theirs {
                    if ours.get(key) != Some(d) {
                        let req = PeerRequest::Read {
                            keyspace: ks.spec.name.clone(),
                            key: key.clone(),
                        };
                        if let Ok(PeerResponse::Record(Some(b))) = self
                            .pool
                            .call(&peer.peer_addr, req, self.request_timeout)
                            .await
                        {
                            if let Ok(rec) = Record::decode(&b) {
                                if self.db.replica_merge(ks, key, &rec).is_ok() {
                                    stats.keys_pulled += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        self.db
            .metrics
            .aae_keys_repaired
            .inc_by(stats.keys_pushed + stats.keys_pulled);
        stats
    }

    /// Runs a pass over every eventual keyspace every `every`.
    pub async fn run_aae(self: Arc<Self>, every: Duration, shutdown: watch::Receiver<bool>) {
        let mut ticker = crate::ticker::Ticker::new(every, shutdown);
        // The first tick is immediate: skip it.
        if !ticker.next().await {
            return;
        }
        while ticker.next().await {
            if self.member_count() < 2 {
                continue;
            }
            for ks in self.db.catalog.list() {
                if ks.spec.mode == Mode::Eventual {
                    let s = self.aae_pass(&ks).await;
                    if s.keys_pushed + s.keys_pulled > 0 {
                        tracing::info!(keyspace = %ks.spec.name, ?s, "anti-entropy repaired keys");
                    }
                }
            }
        }
    }

    /// Answers the AAE peer requests.
    pub fn handle_aae(&self, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::AaeRoots {
                keyspace,
                partitions,
            } => PeerResponse::Hashes(
                partitions
                    .iter()
                    .map(|p| self.db.trees.root(&keyspace, *p))
                    .collect(),
            ),
            PeerRequest::AaeSegments {
                keyspace,
                partition,
            } => PeerResponse::Hashes(self.db.trees.segments(&keyspace, partition)),
            PeerRequest::AaeKeys {
                keyspace,
                partition,
                segments,
            } => match self.db.aae_keys(&keyspace, partition, &segments) {
                Ok(v) => PeerResponse::Digests(v),
                Err(e) => crate::net::server::error(e),
            },
            _ => crate::net::server::error("not an anti-entropy request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_core::ring::{Ring, RingNode};

    #[test]
    fn partition_formula_matches_the_ring() {
        let ring = Ring::new([RingNode::new("a", "dc1", "r1")]).unwrap();
        for i in 0..1000u32 {
            let k = i.to_be_bytes();
            assert_eq!(partition_of(&k), ring.partition_of(&k).0);
        }
    }

    #[test]
    fn index_key_parses_back() {
        let k = index_key("default", b"user:1", Place::of(b"user:1"));
        assert_eq!(parse(&k), Some(("default", &b"user:1"[..])));
    }
}
