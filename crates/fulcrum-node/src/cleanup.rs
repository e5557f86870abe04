//! Dropping the copies of partitions a node no longer replicates.
//!
//! When a node joins, the nodes that lose partitions to it keep their old
//! copies until the ring has settled: no member is joining or leaving and
//! every live member reads with the same ring (`Placement::pending` is
//! `None`, `Placement::previous` empty). Then, for each partition of an
//! eventual keyspace that this node holds records of but does not
//! replicate, it hands the copy off and drops it:
//!
//! 1. every replica of the partition on the read ring must be live; it
//!    asks each for its Merkle root of the partition;
//! 2. to each replica whose root differs from its own it pushes its records
//!    (`PutBatch`: merged like replica writes, acknowledged once durable);
//! 3. it removes each record it pushed (or that matched), under the key's
//!    lock and only if the stored record is still the one it had read; a
//!    record that changed meanwhile stays for the next round.
//!
//! Nothing is dropped while a replica is down or a push fails: the data is
//! on every current replica before this node lets go of it. A round runs
//! every [`EVERY`] and skips the scan when the ring has not changed since
//! the last complete round.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::Mode;
use fulcrum_core::merkle::PartitionTree;
use fulcrum_core::record::Record;
use fulcrum_core::ring::{PartitionId, DEFAULT_PARTITIONS};
use tokio::sync::watch;

use crate::catalog::Keyspace;
use crate::cluster::Cluster;
use crate::net::{MemberState, PeerRequest, PeerResponse};

/// How often a node looks for partitions to drop.
pub const EVERY: Duration = Duration::from_secs(2);
/// Records per pushed page.
const PAGE: usize = 256;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanupStats {
    /// Partitions whose copy this node dropped.
    pub partitions: u64,
    /// Records it removed.
    pub records: u64,
    /// Partitions it had to keep (a replica down, a push failed, a record
    /// changed meanwhile).
    pub kept: u64,
}

impl Cluster {
    /// Runs [`Cluster::cleanup_round`] every [`EVERY`] until shutdown.
    pub async fn run_cleanup(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut ticker = crate::ticker::Ticker::new(EVERY, shutdown);
        let mut done_for = String::new();
        while ticker.next().await {
            let p = self.placement();
            if p.pending.is_some()
                || !p.previous.is_empty()
                || self.my_state() != MemberState::Up
                || p.read.ids.len() < 2
            {
                continue;
            }
            let ring = p.read_ids();
            if ring == done_for {
                continue;
            }
            let stats = self.cleanup_round().await;
            if stats.records > 0 || stats.partitions > 0 {
                tracing::info!(
                    ?stats,
                    "dropped the copies of partitions this node no longer replicates"
                );
            }
            // Rings may have moved during the round: only a complete round
            // on an unchanged ring is remembered.
            if stats.kept == 0 && self.placement().read_ids() == ring {
                done_for = ring;
            }
        }
    }

    /// One pass over every eventual keyspace (see the module docs).
    pub async fn cleanup_round(self: &Arc<Self>) -> CleanupStats {
        let mut stats = CleanupStats::default();
        for ks in self.db.catalog.list() {
            if ks.spec.mode == Mode::Eventual {
                self.cleanup_keyspace(&ks, &mut stats).await;
            }
        }
        stats
    }

    async fn cleanup_keyspace(self: &Arc<Self>, ks: &Arc<Keyspace>, stats: &mut CleanupStats) {
        let me = self.me.node_id.as_str();
        let empty = PartitionTree::new().root();
        let read = self.placement().read.clone();
        let n = read.n(ks.spec.replicas);
        // Partition → its replicas, for partitions this node holds but
        // does not replicate.
        let mut lost: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for p in 0..DEFAULT_PARTITIONS {
            let list = read.ring.preference_list(PartitionId(p), n);
            if list.iter().any(|x| **x == *me) || self.db.trees.root(&ks.spec.name, p) == empty {
                continue;
            }
            lost.insert(p, list.iter().map(|x| x.to_string()).collect());
        }
        if lost.is_empty() {
            return;
        }
        // Ask each replica for its roots of the partitions in question.
        let mut by_owner: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (p, owners) in &lost {
            for o in owners {
                by_owner.entry(o.clone()).or_default().push(*p);
            }
        }
        let mut theirs: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for (owner, parts) in &by_owner {
            if !self.is_up(owner) {
                continue;
            }
            let Some(addr) = self.member(owner).map(|m| m.peer_addr) else {
                continue;
            };
            let req = PeerRequest::AaeRoots {
                keyspace: ks.spec.name.clone(),
                partitions: parts.clone(),
            };
            if let Ok(PeerResponse::Hashes(roots)) =
                self.pool.call(&addr, req, self.request_timeout).await
            {
                for (p, r) in parts.iter().zip(roots) {
                    theirs.insert((owner.clone(), *p), r);
                }
            }
        }
        for (p, owners) in lost {
            // Every replica answered (so it is live).
            let Some(roots) = owners
                .iter()
                .map(|o| theirs.get(&(o.clone(), p)).copied())
                .collect::<Option<Vec<u64>>>()
            else {
                stats.kept += 1;
                continue;
            };
            let mine = self.db.trees.root(&ks.spec.name, p);
            let targets: Vec<String> = owners
                .iter()
                .zip(roots)
                .filter(|(_, r)| *r != mine)
                .map(|(o, _)| o.clone())
                .collect();
            match self.hand_off_partition(ks, p, &targets).await {
                Ok((dropped, complete)) => {
                    stats.records += dropped;
                    if complete {
                        stats.partitions += 1;
                    } else {
                        stats.kept += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(keyspace = %ks.spec.name, partition = p, error = %e, "cannot hand off a partition this node no longer replicates; keeping it");
                    stats.kept += 1;
                }
            }
        }
        self.db.metrics.handoff_dropped.inc_by(stats.records);
    }

    /// Pushes this node's records of `partition` to `targets` page by page
    /// and removes each page once every target acknowledged it. Returns the
    /// records removed and whether the partition is now empty here.
    async fn hand_off_partition(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        partition: u32,
        targets: &[String],
    ) -> Result<(u64, bool), String> {
        let mut addrs = Vec::with_capacity(targets.len());
        for t in targets {
            let m = self
                .member(t)
                .ok_or_else(|| format!("unknown member {t}"))?;
            addrs.push((t, m.peer_addr));
        }
        let mut dropped = 0u64;
        let mut after: Option<Bytes> = None;
        loop {
            let (records, next) = self
                .db
                .partition_records(ks, partition, after.as_deref(), PAGE)
                .map_err(|e| e.to_string())?;
            for (t, addr) in &addrs {
                let req = PeerRequest::PutBatch {
                    keyspace: ks.spec.name.clone(),
                    records: records.clone(),
                };
                match self.pool.call(addr, req, self.request_timeout * 4).await {
                    Ok(PeerResponse::Done) => {}
                    Ok(other) => return Err(format!("{t}: unexpected answer {other:?}")),
                    Err(e) => return Err(format!("{t}: {e}")),
                }
            }
            for (key, bytes) in &records {
                let rec = Record::decode(bytes).map_err(|e| format!("undecodable record: {e}"))?;
                if self
                    .db
                    .drop_if_equal(ks, key, &rec)
                    .map_err(|e| e.to_string())?
                {
                    dropped += 1;
                }
            }
            // Removing rows does not move the index positions after them.
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        self.db.durable().await.map_err(|e| e.to_string())?;
        let empty = PartitionTree::new().root();
        Ok((
            dropped,
            self.db.trees.root(&ks.spec.name, partition) == empty,
        ))
    }
}
