//! Strong keyspaces on Raft: each keyspace is split into
//! [`STRONG_PARTITIONS`] partitions; each partition is a Raft group
//! (`fulcrum-raft`, on openraft) whose voters are the N nodes the ring
//! places it on, fixed when the keyspace is created (`KeyspaceSpec::groups`).
//!
//! Raft RPCs travel over the peer protocol (`PeerRequest::Raft`). Group
//! state (log, vote, applied data) lives in this node's storage and is
//! fsynced before Raft counts it (its own group commit, policy `always`,
//! whatever `--fsync` says for eventual keyspaces).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::KeyspaceSpec;
use fulcrum_core::ring::{stable_hash, PartitionId, Ring, DEFAULT_PARTITIONS};
use fulcrum_raft::{GroupId, Groups, PeerNode, RaftTransport, TransportError};

use crate::cluster::Cluster;
use crate::net::{CallError, PeerPool, PeerRequest, PeerResponse};

/// Raft groups per strong keyspace.
pub const STRONG_PARTITIONS: u32 = 8;

/// Carries Raft RPCs to peers over the peer protocol.
pub struct PeerTransport {
    pub pool: Arc<PeerPool>,
    pub timeout: Duration,
}

impl RaftTransport for PeerTransport {
    async fn send(
        &self,
        target: &PeerNode,
        group: &GroupId,
        rpc: Bytes,
    ) -> Result<Bytes, TransportError> {
        let req = PeerRequest::Raft {
            keyspace: group.keyspace.clone(),
            partition: group.partition,
            rpc,
        };
        match self.pool.call(&target.addr, req, self.timeout).await {
            Ok(PeerResponse::Raft(b)) => Ok(b),
            Ok(other) => Err(TransportError::Failed {
                peer: target.name.clone(),
                message: format!("unexpected answer {other:?}"),
            }),
            Err(e @ CallError::Unreachable { .. }) => Err(TransportError::Unreachable {
                peer: target.name.clone(),
                message: e.to_string(),
            }),
            Err(e) => Err(TransportError::Failed {
                peer: target.name.clone(),
                message: e.to_string(),
            }),
        }
    }
}

pub type NodeGroups = Groups<PeerTransport>;

/// The `n` nodes `ring` places group `partition` on: those of ring
/// partition `partition · (partitions / STRONG_PARTITIONS)`, in preference
/// order.
pub fn group_placement(ring: &Ring, n: usize, partition: u32) -> Vec<String> {
    let step = DEFAULT_PARTITIONS / STRONG_PARTITIONS;
    ring.preference_list(PartitionId(partition * step), n)
        .iter()
        .map(|x| x.to_string())
        .collect()
}

/// The Raft group of `key` in strong keyspace `keyspace`.
pub fn group_of(keyspace: &str, key: &[u8]) -> GroupId {
    GroupId::new(
        keyspace,
        (stable_hash(hash_slot_key(key)) % u64::from(STRONG_PARTITIONS)) as u32,
    )
}

impl Cluster {
    /// Voters of each group of a new strong keyspace: group `g` sits where
    /// ring partition `g · (partitions / STRONG_PARTITIONS)` does.
    pub fn place_strong_groups(&self, replicas: u32) -> Vec<Vec<String>> {
        let ring = self.ring();
        let n = (replicas as usize).min(self.member_count()).max(1);
        (0..STRONG_PARTITIONS)
            .map(|g| group_placement(&ring, n, g))
            .collect()
    }

    /// The voters of `group` as peers, in placement order.
    pub fn group_voters(&self, spec: &KeyspaceSpec, partition: u32) -> Vec<PeerNode> {
        spec.groups
            .get(partition as usize)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.member(id))
                    .map(|m| PeerNode::new(m.node_id, m.peer_addr))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Opens every group of `spec` this node votes in. A group placed at
    /// creation (epoch 0) is initialized with its voters if pristine; a
    /// group this node was moved into only opens (its data comes from the
    /// leader, see `strong_move.rs`).
    pub async fn open_strong_groups(&self, spec: &KeyspaceSpec) {
        for (p, ids) in spec.groups.iter().enumerate() {
            if !ids.contains(&self.me.node_id) {
                continue;
            }
            let gid = GroupId::new(spec.name.as_str(), p as u32);
            let opened = if spec.group_epoch(p) > 0 {
                self.groups.join_group(gid).await
            } else {
                let voters = self.group_voters(spec, p as u32);
                if voters.len() != ids.len() {
                    tracing::warn!(keyspace = %spec.name, partition = p, "voters unknown to this node; group not opened");
                    continue;
                }
                self.groups.open_group(gid, voters).await
            };
            if let Err(e) = opened {
                tracing::error!(keyspace = %spec.name, partition = p, error = %e, "cannot open raft group");
            }
        }
    }

    /// Closes every group of a dropped keyspace.
    pub async fn close_strong_groups(&self, name: &str) {
        for p in 0..STRONG_PARTITIONS {
            self.groups.close_group(&GroupId::new(name, p)).await;
        }
    }
}

/// Live keys of a strong keyspace, summed over the groups this node holds
/// (from its applied state: a follower's count may lag the leader's).
/// Groups this node does not hold are not counted.
pub fn count_keys(cluster: &Cluster, keyspace: &str) -> u64 {
    (0..STRONG_PARTITIONS)
        .filter_map(|p| cluster.groups.count_live(&GroupId::new(keyspace, p)).ok())
        .sum()
}

/// The Raft group of `key`, honouring Redis hash tags: if the key has a
/// non-empty `{tag}`, only the tag is hashed, so `{user:1}:name` and
/// `{user:1}:email` share a group (and MSET over them is atomic).
pub fn hash_slot_key(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// Every `every`, on each group this node leads, proposes the removal of
/// keys that have expired (reads already hide them; this reclaims space
/// through the log, so every replica removes the same keys).
pub async fn run_sweeper(
    cluster: Arc<Cluster>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = crate::ticker::Ticker::new(every, shutdown);
    while ticker.next().await {
        for gid in cluster.groups.groups() {
            let leads =
                matches!(cluster.groups.leader(&gid), Ok(Some(l)) if l.name == cluster.me.node_id);
            if !leads {
                continue;
            }
            match cluster.groups.expired_keys(&gid, 256) {
                Ok(keys) if !keys.is_empty() => {
                    let n = keys.len() as u64;
                    match cluster
                        .groups
                        .propose(&gid, fulcrum_raft::Command::DeleteExpired { keys })
                        .await
                    {
                        Ok(_) => {
                            cluster.db.metrics.expired_keys.inc_by(n);
                        }
                        Err(e) => {
                            tracing::debug!(group = %gid, error = %e, "expiry proposal failed")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(group = %gid, error = %e, "cannot list expired keys"),
            }
        }
    }
}
