//! Moving partitions when the ring changes: join, leave, remove.
//!
//! - **Join.** A node joining a running cluster announces `joining`. The
//!   read ring keeps the old owners; writes also reach their level on the
//!   pending ring, where the new node already holds its partitions
//!   (`Cluster::write_sets`). After [`settle`] (every coordinator has seen
//!   `joining`, and writes begun before have ended), the node pulls every
//!   partition it gains from every live old replica of it ([`pull_gained`]:
//!   pages of records in anti-entropy index order, merged like replica
//!   writes, throttled to `stream-mb-per-sec`), recording each finished
//!   partition in the `meta` table (`stream/<keyspace>`), so a node that
//!   crashes while joining resumes where it was. Then it announces `up`:
//!   ownership moves.
//! - **Leave.** `CLUSTER LEAVE` announces `leaving` (still read from, no
//!   longer in the pending ring), waits [`settle`], pushes every partition
//!   it holds to the nodes that gain it, several partitions at a time
//!   ([`push_away`], `stream/push.rs`; a failed attempt is retried after
//!   the partitions already pushed), announces `left` and stops the
//!   process.
//! - **Remove.** `CLUSTER REMOVE node` on any member, for a node gossip
//!   says is dead, marks it `left`; every survivor then pulls the
//!   partitions it gains from the remaining replicas ([`Cluster::rereplicate`]).
//!   Survivors do this whenever a member turns `left`, whatever their own
//!   failure detector says of it; a partition whose Merkle root already
//!   equals the source's (after a graceful leave pushed it) is skipped.
//!
//! Anti-entropy repairs whatever a transfer missed later on.
//!
//! [`settle`]: Cluster::settle
//! [`pull_gained`]: Cluster::pull_gained
//! [`push_away`]: Cluster::push_away

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::Mode;
use fulcrum_core::merkle::PartitionTree;
use fulcrum_core::record::Record;
use fulcrum_core::ring::{PartitionId, DEFAULT_PARTITIONS};
use fulcrum_storage::Batch;

use crate::catalog::{Keyspace, META_TABLE};
use crate::cluster::{Cluster, RingView};
use crate::net::{MemberState, PeerRequest, PeerResponse};

mod push;

/// Records per streamed page.
const PAGE: u32 = 256;
/// How long `CLUSTER LEAVE` waits for strong groups to move their voters
/// off the leaving node.
const STRONG_LEAVE: Duration = Duration::from_secs(60);
/// Finished partitions between two progress writes.
const PROGRESS_EVERY: usize = 64;

fn progress_key(tag: &str, ks: &str) -> Bytes {
    Bytes::from(format!("stream/{tag}/{ks}"))
}

impl Cluster {
    /// How long ring changes wait before data moves: gossip reaches every
    /// member, and requests begun under the old rings end.
    pub fn settle(&self) -> Duration {
        Duration::from_secs(1) + self.request_timeout
    }

    fn load_progress(&self, tag: &str, ks: &str) -> BTreeSet<u32> {
        match self.db.storage.get(META_TABLE, &progress_key(tag, ks)) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_default(),
            _ => BTreeSet::new(),
        }
    }

    fn save_progress(&self, tag: &str, ks: &str, done: &BTreeSet<u32>) {
        let Ok(json) = serde_json::to_vec(done) else {
            return;
        };
        let mut b = Batch::new();
        b.put(META_TABLE, progress_key(tag, ks), json);
        if let Err(e) = self.db.storage.write(b) {
            tracing::warn!(error = %e, "cannot record streaming progress");
        }
    }

    fn clear_progress(&self, tag: &str) {
        let mut b = Batch::new();
        for ks in self.db.catalog.list() {
            b.remove(META_TABLE, progress_key(tag, &ks.spec.name));
        }
        let _ = self.db.storage.write(b);
    }

    /// Sleeps long enough that `bytes` fit the streaming budget.
    async fn throttle(&self, bytes: usize) {
        if self.stream_bytes_per_sec == 0 {
            return;
        }
        let secs = bytes as f64 / self.stream_bytes_per_sec as f64;
        if secs > 0.0005 {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
    }

    /// Joins: waits [`Cluster::settle`], pulls the partitions this node
    /// gains, then announces `up`. Retries until it succeeds or the node
    /// stops being `joining`.
    pub async fn run_join(self: Arc<Self>) {
        tokio::time::sleep(self.settle()).await;
        let mut attempt = 0u32;
        while self.my_state() == MemberState::Joining {
            let p = self.placement();
            let Some(pending) = p.pending.clone() else {
                // No ring to move into (nobody else is up): just come up.
                self.set_my_state(MemberState::Up).await;
                break;
            };
            match self.pull_gained(&p.read, &pending, "join").await {
                Ok(n) => {
                    if let Err(e) = self.db.storage.sync() {
                        tracing::error!(error = %e, "cannot sync streamed data");
                        continue;
                    }
                    // The rings may have moved while we pulled (another
                    // node came up): pull again for the new gains, if any.
                    let now = self.placement();
                    if now.read.ids != p.read.ids {
                        continue;
                    }
                    tracing::info!(records = n, "join streaming finished; this node is up");
                    self.clear_progress("join");
                    self.set_my_state(MemberState::Up).await;
                    break;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "join streaming failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Pulls every partition this node replicates on `new` but not on
    /// `old`, from each live replica of it on `old`. Partitions already
    /// recorded as done under `tag` are skipped. Returns the records merged.
    ///
    /// # Errors
    /// A live source that cannot be read.
    pub async fn pull_gained(
        self: &Arc<Self>,
        old: &RingView,
        new: &RingView,
        tag: &str,
    ) -> Result<u64, String> {
        let me = self.me.node_id.as_str();
        let empty = PartitionTree::new().root();
        let mut merged = 0u64;
        for ks in self.db.catalog.list() {
            if ks.spec.mode != Mode::Eventual {
                continue;
            }
            let (n_old, n_new) = (old.n(ks.spec.replicas), new.n(ks.spec.replicas));
            let mut done = self.load_progress(tag, &ks.spec.name);
            if !done.is_empty() {
                tracing::info!(keyspace = %ks.spec.name, partitions = done.len(), "resuming streaming after the partitions already done");
            }
            let mut gained = Vec::new();
            let mut by_source: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for p in 0..DEFAULT_PARTITIONS {
                if done.contains(&p) {
                    continue;
                }
                let now_list = new.ring.preference_list(PartitionId(p), n_new);
                let was_list = old.ring.preference_list(PartitionId(p), n_old);
                if !now_list.iter().any(|x| **x == *me) || was_list.iter().any(|x| **x == *me) {
                    continue;
                }
                gained.push(p);
                for s in was_list {
                    if **s != *me && self.is_up(s) {
                        by_source.entry(s.to_string()).or_default().push(p);
                    }
                }
            }
            // Ask each source which of these partitions hold anything.
            let mut work: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            for (source, parts) in &by_source {
                let addr = self
                    .member(source)
                    .ok_or_else(|| format!("unknown source {source}"))?
                    .peer_addr;
                let req = PeerRequest::AaeRoots {
                    keyspace: ks.spec.name.clone(),
                    partitions: parts.clone(),
                };
                match self.pool.call(&addr, req, self.request_timeout).await {
                    Ok(PeerResponse::Hashes(roots)) => {
                        for (p, root) in parts.iter().zip(roots) {
                            // Nothing to pull from an empty partition or
                            // one this node already holds identically.
                            if root != empty && root != self.db.trees.root(&ks.spec.name, *p) {
                                work.entry(*p).or_default().push(source.clone());
                            }
                        }
                    }
                    Ok(other) => return Err(format!("{source}: unexpected answer {other:?}")),
                    Err(e) => return Err(format!("{source}: {e}")),
                }
            }
            let mut since_save = 0;
            for p in gained {
                for source in work.get(&p).into_iter().flatten() {
                    merged += self.pull_partition(&ks, p, source).await?;
                }
                done.insert(p);
                since_save += 1;
                if since_save >= PROGRESS_EVERY {
                    self.save_progress(tag, &ks.spec.name, &done);
                    since_save = 0;
                }
            }
            self.save_progress(tag, &ks.spec.name, &done);
        }
        self.db.metrics.streamed_records.inc_by(merged);
        Ok(merged)
    }

    /// Pulls one partition of `ks` from `source`; returns records merged.
    async fn pull_partition(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        partition: u32,
        source: &str,
    ) -> Result<u64, String> {
        let addr = self
            .member(source)
            .ok_or_else(|| format!("unknown source {source}"))?
            .peer_addr;
        let mut after: Option<Bytes> = None;
        let mut merged = 0;
        loop {
            let req = PeerRequest::StreamRecords {
                keyspace: ks.spec.name.clone(),
                partition,
                after: after.clone(),
                limit: PAGE,
            };
            let (records, next) = match self.pool.call(&addr, req, self.request_timeout).await {
                Ok(PeerResponse::Records { records, next }) => (records, next),
                Ok(other) => return Err(format!("{source}: unexpected answer {other:?}")),
                Err(e) => return Err(format!("{source}: {e}")),
            };
            let mut bytes = 0;
            for (key, rec) in records {
                bytes += key.len() + rec.len();
                let rec = Record::decode(&rec).map_err(|e| format!("undecodable record: {e}"))?;
                self.db
                    .replica_merge(ks, &key, &rec)
                    .map_err(|e| e.to_string())?;
                merged += 1;
            }
            self.throttle(bytes).await;
            match next {
                Some(n) => after = Some(n),
                None => return Ok(merged),
            }
        }
    }

    /// `CLUSTER LEAVE`: see the module docs. Returns once this node's data
    /// is on the partitions' next owners and it announced `left`; the
    /// caller then stops the process (through [`Cluster::stop`]).
    ///
    /// # Errors
    /// A message for the client: this node is not `up`, is the last one,
    /// or the data could not be moved (the node then stays `up`).
    pub async fn leave(self: &Arc<Self>) -> Result<u64, String> {
        let state = self.my_state();
        if state != MemberState::Up {
            return Err(format!("ERR this node is {}, not up", state.as_str()));
        }
        if self.placement().read.ids.len() < 2 {
            return Err("ERR the last member of a cluster cannot leave".into());
        }
        self.set_my_state(MemberState::Leaving).await;
        tokio::time::sleep(self.settle()).await;
        // Strong keyspaces: the groups' leaders move their voters off this
        // node (`strong_move.rs`); it must not go while it still votes.
        if let Err(e) = self.wait_strong_voters_moved(STRONG_LEAVE).await {
            self.set_my_state(MemberState::Up).await;
            return Err(e);
        }
        let mut last = String::new();
        // A retry resumes after the partitions already pushed.
        let mut pushed = push::Pushed::new();
        for attempt in 0..5 {
            let p = self.placement();
            let Some(new) = p.pending.clone() else {
                last = "no ring without this node".into();
                break;
            };
            match self.push_away(&p.read, &new, &mut pushed).await {
                Ok(n) => {
                    if let Err(e) = self.db.storage.sync() {
                        last = e.to_string();
                        continue;
                    }
                    self.set_my_state(MemberState::Left).await;
                    // Tell every member directly too: gossip stops with
                    // the process.
                    if let Some(me) = self.record(&self.me.node_id) {
                        let req = PeerRequest::Members {
                            epoch: 0,
                            members: vec![me],
                        };
                        for (node, e) in self.broadcast(req).await {
                            tracing::warn!(%node, error = %e, "not told that this node left");
                        }
                    }
                    tracing::info!(records = n, "left the cluster");
                    return Ok(n);
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "leave streaming failed; retrying");
                    last = e;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        self.set_my_state(MemberState::Up).await;
        Err(format!("ERR cannot move this node's data: {last}"))
    }

    /// `CLUSTER REMOVE node`: takes a dead node out of the ring; survivors
    /// re-replicate its partitions.
    ///
    /// # Errors
    /// A message for the client: unknown node, this node, or a node gossip
    /// says is alive.
    pub async fn remove(self: &Arc<Self>, node: &str) -> Result<(), String> {
        if node == self.me.node_id {
            return Err("ERR this is the node itself; use CLUSTER LEAVE".into());
        }
        let Some(rec) = self.record(node) else {
            return Err(format!("ERR unknown node '{node}'"));
        };
        if rec.state == MemberState::Left {
            return Ok(());
        }
        if self.gossip_alive(node) {
            return Err(format!(
                "ERR node '{node}' is alive; run CLUSTER LEAVE on it instead"
            ));
        }
        let left = crate::net::MemberRecord {
            state: MemberState::Left,
            ..rec
        };
        self.merge_records(vec![left]);
        self.announce().await;
        if !self.gossips() {
            let members = self.records();
            self.broadcast(PeerRequest::Members { epoch: 0, members })
                .await;
        }
        Ok(())
    }

    /// After `dead` left the ring while dead: pulls the partitions this
    /// node gains from the remaining replicas, retrying until it worked.
    pub async fn rereplicate(self: Arc<Self>, old: RingView, dead: Vec<String>) {
        while self.rereplicating.swap(true, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tracing::info!(?dead, "re-replicating the partitions of removed members");
        let tag = format!("remove-{}", dead.join(","));
        for attempt in 0..60 {
            let new = self.placement().read.clone();
            match self.pull_gained(&old, &new, &tag).await {
                Ok(n) => {
                    let _ = self.db.storage.sync();
                    tracing::info!(records = n, "re-replication finished");
                    self.clear_progress(&tag);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "re-replication failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        self.rereplicating.store(false, Ordering::SeqCst);
    }
}
