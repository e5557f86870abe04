//! Cluster state of this node: the member records, the rings built from
//! them, connections to peers, and the handling of peer requests.
//!
//! Membership: every node announces itself and its state (`joining`, `up`,
//! `leaving`, `left`) through gossip (`gossip.rs`, chitchat). A node
//! started with `--seeds` also asks a seed directly (`Join`) for the member
//! records and the keyspaces, so it knows the cluster before it serves.
//! Of two records of one node the newer `(generation, state)` wins, so
//! records from gossip, joins and pushes converge in any order. The records
//! are persisted in the `meta` table so a restarted node knows its cluster.
//!
//! Rings (`Placement`): reads use the ring of the `up` and `leaving`
//! members; a write must also reach its level on the ring of the `up` and
//! `joining` members (the pending ring, where a joining node already takes
//! its partitions' writes), and, for [`RING_GRACE`] after the read ring
//! changed, on the previous read ring (other nodes may still read with it),
//! until every live member gossips the new one. So a read at R on any ring
//! a node may use meets every write acknowledged at W with R + W > N. A
//! member that left after handing its data off answers no replica reads,
//! so on a previous ring's set a write counts it as holding the write
//! (`Placement::departed`).
//!
//! Liveness: gossip's failure detector (`up`/`suspect`/`down`, see
//! `gossip.rs`), and a direct ping on every peer link (`run_prober`): a
//! member is routed to only when gossip says alive and its link answers.
//! Inside a simulation (no gossip) the ping alone decides and member lists
//! are pushed to every member on a join.
//!
//! Keyspace DDL is broadcast: `KEYSPACE CREATE`/`DROP` on any node is
//! applied locally, then sent to every live member before the client gets
//! its answer; members that were down learn it from gossip (`schema.rs`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::KeyspaceSpec;
use fulcrum_core::ring::{NodeId, Ring};
use fulcrum_storage::Batch;
use parking_lot::RwLock;
use tokio::time::Instant;

use crate::catalog::{CatalogError, META_TABLE};
use crate::config::NodeConfig;
use crate::db::Db;
use crate::gossip::Gossip;
use crate::net::{
    CallError, Member, MemberRecord, MemberState, PeerPool, PeerRequest, PeerResponse,
};
use crate::schema::Schema;

mod liveness;
mod peer;
mod rings;

use rings::{load_membership, Membership, MEMBERS_KEY};
pub use rings::{ring_agreed, Placement, RingReport, RingView, RING_GRACE};

/// Test and verification hooks, off unless `--allow-faults`.
#[derive(Debug, Default)]
pub struct Faults {
    /// Replica writes from peers are applied only after this delay.
    pub delay_puts_ms: std::sync::atomic::AtomicU64,
    /// Replica writes from peers are refused (the replica misses them; only
    /// read repair or anti-entropy bring them back).
    pub drop_puts: std::sync::atomic::AtomicBool,
    /// Strong keyspaces: `LINEARIZABLE` reads are served from this node's
    /// applied state, without a read index and without forwarding to the
    /// leader: the stale-follower-read bug, on purpose.
    pub stale_reads: std::sync::atomic::AtomicBool,
}

pub struct Cluster {
    pub me: Member,
    /// This run's start time (ms): the generation of this node's records.
    pub generation: u64,
    pub db: Arc<Db>,
    pub pool: Arc<PeerPool>,
    /// The Raft groups of strong keyspaces this node votes in.
    pub groups: crate::strong::NodeGroups,
    pub faults: Faults,
    pub allow_faults: bool,
    /// A tombstone everyone agrees on is purged only once it is older than
    /// this (ms).
    pub tombstone_grace_ms: u64,
    /// How long a coordinated request may take before `TIMEOUT`.
    pub request_timeout: Duration,
    /// Streaming budget in bytes per second (0: unlimited).
    pub stream_bytes_per_sec: u64,
    pub schema: Schema,
    /// The configuration this node started with (its bound addresses in
    /// place of port 0); `CONFIG GET` shows it.
    pub config: Arc<NodeConfig>,
    membership: RwLock<Membership>,
    placement: RwLock<Arc<Placement>>,
    /// Members whose peer link failed its last direct ping.
    link_down: RwLock<HashSet<String>>,
    gossip: OnceLock<Gossip>,
    /// Set by `CLUSTER LEAVE` once this node left: the process stops.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// A re-replication pass (after a removal) is running.
    pub(crate) rereplicating: AtomicBool,
    /// The generation of this node's previous run, from the persisted
    /// member list (0 for a new node).
    prev_generation: u64,
    /// This run already turned from `up` to `joining` because the cluster
    /// removed its previous run (see [`Cluster::rejoin_if_removed`]).
    rejoining: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot join through any seed ({seeds}): {last}")]
    JoinFailed { seeds: String, last: String },
    #[error("ring: {0}")]
    Ring(String),
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    #[error("raft: {0}")]
    Raft(#[from] fulcrum_raft::RaftError),
    #[error("gossip: {0}")]
    Gossip(String),
}

impl Cluster {
    /// Loads the persisted member records (or starts a new list with just
    /// this node) and decides this node's state: the persisted one (a
    /// joining node resumes its join; a node that left joins anew), else
    /// `up` for a new cluster (no seeds, or inside a simulation) and
    /// `joining` for a node joining a running one.
    ///
    /// # Errors
    /// Storage failure or an unreadable member list.
    pub fn open(
        db: Arc<Db>,
        config: &NodeConfig,
        me: Member,
        generation: u64,
    ) -> Result<Cluster, ClusterError> {
        let mut membership = load_membership(&db);
        let prev_generation = membership
            .members
            .get(&me.node_id)
            .map_or(0, |r| r.generation);
        let state = match membership.members.get(&me.node_id).map(|r| r.state) {
            Some(MemberState::Up | MemberState::Leaving) => MemberState::Up,
            Some(MemberState::Joining) => MemberState::Joining,
            Some(MemberState::Left) | None
                if !config.seeds.is_empty() && !crate::netio::in_simulation() =>
            {
                MemberState::Joining
            }
            Some(MemberState::Left) | None => MemberState::Up,
        };
        membership.members.insert(
            me.node_id.clone(),
            MemberRecord {
                member: me.clone(),
                state,
                generation,
            },
        );
        let placement = Placement::build(&membership, None, false)?;
        let pool = Arc::new(PeerPool::new(Duration::from_millis(1000)));
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let transport = Arc::new(crate::strong::PeerTransport {
            pool: pool.clone(),
            timeout: request_timeout.max(Duration::from_secs(5)),
        });
        let groups = fulcrum_raft::Groups::with_parts(
            fulcrum_raft::PeerNode::new(me.node_id.clone(), me.peer_addr.clone()),
            crate::netio::raft_committer(db.storage.clone()).map_err(|source| {
                fulcrum_raft::RaftError::Storage {
                    op: "start raft group commit",
                    source,
                }
            })?,
            transport,
            crate::netio::raft_clock(),
            fulcrum_raft::GroupsConfig {
                rng_seed: config.raft_seed,
                ..fulcrum_raft::GroupsConfig::default()
            },
        )?;
        let specs: Vec<KeyspaceSpec> = db.catalog.list().iter().map(|k| k.spec.clone()).collect();
        let schema = Schema::load(db.storage.as_ref(), &specs);
        let (stop, _) = tokio::sync::watch::channel(false);
        let cluster = Cluster {
            me,
            generation,
            db,
            pool,
            groups,
            faults: Faults::default(),
            allow_faults: config.allow_faults,
            request_timeout,
            tombstone_grace_ms: config.tombstone_grace_ms,
            stream_bytes_per_sec: config.stream_mb_per_sec * 1024 * 1024,
            schema,
            config: Arc::new(config.clone()),
            membership: RwLock::new(membership),
            placement: RwLock::new(Arc::new(placement)),
            link_down: RwLock::new(HashSet::new()),
            gossip: OnceLock::new(),
            stop,
            rereplicating: AtomicBool::new(false),
            prev_generation,
            rejoining: AtomicBool::new(false),
        };
        cluster.persist(&cluster.membership.read());
        Ok(cluster)
    }

    /// The rings in force.
    pub fn placement(&self) -> Arc<Placement> {
        self.placement.read().clone()
    }

    /// The read ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.placement.read().read.ring.clone()
    }

    /// Members in the ring or on their way in or out (not those that left).
    pub fn members(&self) -> Vec<Member> {
        self.membership
            .read()
            .members
            .values()
            .filter(|r| r.state != MemberState::Left)
            .map(|r| r.member.clone())
            .collect()
    }

    /// Every record, those that left included.
    pub fn records(&self) -> Vec<MemberRecord> {
        self.membership.read().members.values().cloned().collect()
    }

    pub fn record(&self, node_id: &str) -> Option<MemberRecord> {
        self.membership.read().members.get(node_id).cloned()
    }

    /// The DC of a member (without cloning the whole member).
    pub fn member_dc(&self, node_id: &str) -> Option<String> {
        self.membership
            .read()
            .members
            .get(node_id)
            .map(|r| r.member.dc.clone())
    }

    pub fn member(&self, node_id: &str) -> Option<Member> {
        self.record(node_id).map(|r| r.member)
    }

    pub fn my_state(&self) -> MemberState {
        self.record(&self.me.node_id)
            .map_or(MemberState::Up, |r| r.state)
    }

    /// The ring of the `up` members only (not joining, leaving or left):
    /// where strong keyspaces' voters belong. `None` when nobody is up.
    pub fn up_ring(&self) -> Option<RingView> {
        self.placement.read().up.clone()
    }

    /// Nodes on the read ring.
    pub fn member_count(&self) -> usize {
        self.placement.read().read.ids.len()
    }

    /// The nodes holding `key` for a keyspace of `replicas` copies:
    /// `min(replicas, members)` distinct nodes from the read ring.
    pub fn replicas(&self, replicas: u32, key: &[u8]) -> Vec<NodeId> {
        self.placement.read().read.replicas(replicas, key)
    }

    /// Whether this node is the only member of every ring in use, so the
    /// only replica of every key.
    pub fn alone(&self) -> bool {
        self.placement.read().sole_node() == Some(self.me.node_id.as_str())
    }

    /// The replica sets a write of `key` must reach its level on: the read
    /// ring's first, then the pending ring's and recent previous rings'
    /// when they differ (see [`Placement::write_sets`]).
    pub fn write_sets(&self, replicas: u32, key: &[u8]) -> Vec<Vec<NodeId>> {
        self.placement
            .read()
            .write_sets(replicas, key, Instant::now)
    }

    /// Merges member records into ours (the newer record of each node
    /// wins); persists and rebuilds the rings if anything changed. Returns
    /// whether anything did.
    pub fn merge_records(self: &Arc<Self>, records: Vec<MemberRecord>) -> bool {
        let (changed, departed, old) = {
            let mut m = self.membership.write();
            let mut changed = false;
            let mut departed = Vec::new();
            for r in records {
                let id = r.member.node_id.clone();
                if id == self.me.node_id && r.generation <= self.generation {
                    // Only this run speaks for this node.
                    continue;
                }
                let mut r = r;
                if let Some(cur) = m.members.get(&id) {
                    if cur.state == MemberState::Left
                        && r.generation > cur.generation
                        && matches!(r.state, MemberState::Up | MemberState::Leaving)
                    {
                        // A removed node restarted on its old data: it
                        // comes back through a join (it pulls what it
                        // missed before it is read from), never straight
                        // into the read ring. Every node applies the same
                        // rule, so they agree.
                        r.state = MemberState::Joining;
                    }
                }
                let newer = m.members.get(&id).is_none_or(|cur| r.supersedes(cur));
                let same_member = m.members.get(&id).is_some_and(|cur| {
                    cur.generation == r.generation && cur.state == r.state && cur.member != r.member
                });
                let material = m
                    .members
                    .get(&id)
                    .is_none_or(|cur| cur.state != r.state || cur.member != r.member);
                if newer && !material {
                    // A restarted run of a node in the same state: nothing
                    // the rings or the persisted list depend on.
                    m.members.insert(id, r);
                    continue;
                }
                if newer || same_member {
                    let was = m.members.get(&id).map(|c| c.state);
                    if r.state == MemberState::Left && was.is_some_and(|s| s != MemberState::Left) {
                        departed.push(id.clone());
                    }
                    tracing::info!(node = %id, state = r.state.as_str(), generation = r.generation, "member record");
                    m.members.insert(id, r);
                    changed = true;
                }
            }
            if !changed {
                return false;
            }
            m.epoch += 1;
            self.persist(&m);
            let old = self.placement.read().clone();
            match Placement::build(&m, Some(&old), self.gossips()) {
                Ok(p) => *self.placement.write() = Arc::new(p),
                Err(e) => tracing::error!(error = %e, "cannot rebuild the ring"),
            }
            (changed, departed, old)
        };
        if self.placement().read.ids != old.read.ids && self.gossips() {
            let this = self.clone();
            tokio::spawn(async move { this.announce().await });
        }
        // A member that left the ring: survivors pull what they gain from
        // the remaining replicas. After a removal that is the only copy
        // transfer; after a graceful leave the leaver already pushed its
        // data, so the roots match and nothing moves. (Deciding by this
        // node's own failure detector would race: another survivor may
        // not have seen the removed node die yet.)
        if !departed.is_empty() && self.my_state() == MemberState::Up {
            let this = self.clone();
            let old_read = old.read.clone();
            tokio::spawn(async move { this.rereplicate(old_read, departed).await });
        }
        changed
    }

    /// Sets this node's own state, persists and announces it.
    pub async fn set_my_state(self: &Arc<Self>, state: MemberState) {
        {
            let mut m = self.membership.write();
            if let Some(r) = m.members.get_mut(&self.me.node_id) {
                r.state = state;
            }
            m.epoch += 1;
            self.persist(&m);
            let old = self.placement.read().clone();
            match Placement::build(&m, Some(&old), self.gossips()) {
                Ok(p) => *self.placement.write() = Arc::new(p),
                Err(e) => tracing::error!(error = %e, "cannot rebuild the ring"),
            }
        }
        tracing::info!(state = state.as_str(), "this node's state");
        self.announce().await;
        if !self.gossips() {
            let (epoch, members) = self.snapshot();
            self.broadcast(PeerRequest::Members { epoch, members })
                .await;
        }
    }

    fn persist(&self, m: &Membership) {
        let Ok(json) = serde_json::to_vec(m) else {
            return;
        };
        let mut batch = Batch::new();
        batch.put(META_TABLE, Bytes::from_static(MEMBERS_KEY), json);
        if let Err(e) = self
            .db
            .storage
            .write(batch)
            .and_then(|()| self.db.storage.sync())
        {
            tracing::error!(error = %e, "cannot persist the member list");
        }
    }

    fn snapshot(&self) -> (u64, Vec<MemberRecord>) {
        let m = self.membership.read();
        (m.epoch, m.members.values().cloned().collect())
    }

    /// Asks the first seed that answers for the member records and the
    /// keyspaces, retrying for a while (seeds may still be starting).
    ///
    /// # Errors
    /// [`ClusterError::JoinFailed`] when no seed answered in time.
    /// Told that the cluster removed this node's run of `generation`
    /// (`CLUSTER REMOVE` while it was dead): if that is this node's
    /// previous run and this run came back `up` from the persisted list,
    /// turn `joining`, once, so the node pulls what it missed before it is
    /// read from again. Returns whether it turned (the caller starts the
    /// join).
    pub async fn rejoin_if_removed(self: &Arc<Self>, generation: u64) -> bool {
        if self.prev_generation == 0
            || generation < self.prev_generation
            || self.my_state() != MemberState::Up
            || self.rejoining.swap(true, Ordering::SeqCst)
        {
            return false;
        }
        tracing::warn!(
            removed_generation = generation,
            "the cluster removed this node while it was down; joining again"
        );
        self.set_my_state(MemberState::Joining).await;
        true
    }

    pub async fn join(self: &Arc<Self>, seeds: &[String]) -> Result<(), ClusterError> {
        let mut last = String::from("no seeds");
        for _attempt in 0..60 {
            for seed in seeds {
                if *seed == self.me.peer_addr {
                    continue;
                }
                let Some(me) = self.record(&self.me.node_id) else {
                    continue;
                };
                let req = PeerRequest::Join { member: me };
                match self.pool.call(seed, req, Duration::from_secs(5)).await {
                    Ok(PeerResponse::Joined {
                        epoch: _,
                        members,
                        keyspaces,
                    }) => {
                        if let Some(g) = self.gossip.get() {
                            for r in &members {
                                if let Ok(a) = r.member.gossip_addr.parse() {
                                    if r.member.node_id != self.me.node_id {
                                        g.contact(a);
                                    }
                                }
                            }
                        }
                        // How the cluster sees this node: a previous run
                        // that was removed, or this run turned `joining`
                        // by the rule in `merge_records`.
                        if let Some(r) =
                            members.iter().find(|r| r.member.node_id == self.me.node_id)
                        {
                            let removed = match r.state {
                                MemberState::Left => Some(r.generation),
                                MemberState::Joining if r.generation == self.generation => {
                                    Some(self.prev_generation)
                                }
                                _ => None,
                            };
                            if let Some(g) = removed {
                                // The caller starts the join (node.rs).
                                self.rejoin_if_removed(g).await;
                            }
                        }
                        self.merge_records(members);
                        for spec in keyspaces {
                            self.apply_create(spec);
                        }
                        tracing::info!(%seed, members = self.members().len(), "joined the cluster");
                        return Ok(());
                    }
                    Ok(other) => last = format!("unexpected answer from {seed}: {other:?}"),
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(ClusterError::JoinFailed {
            seeds: seeds.join(","),
            last,
        })
    }

    /// Sends `request` to every other member (not those that left) and
    /// waits for all answers. Returns the members that failed, with why.
    pub async fn broadcast(&self, request: PeerRequest) -> Vec<(String, CallError)> {
        let others: Vec<Member> = self
            .members()
            .into_iter()
            .filter(|m| m.node_id != self.me.node_id)
            .collect();
        let calls = others.iter().map(|m| {
            let req = request.clone();
            async move {
                (
                    m.node_id.clone(),
                    self.pool
                        .call(
                            &m.peer_addr,
                            req,
                            self.request_timeout.max(Duration::from_secs(10)),
                        )
                        .await,
                )
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|e| (id, e)))
            .collect()
    }

    fn apply_create(&self, spec: KeyspaceSpec) {
        match self.db.catalog.create(spec) {
            Ok(_) | Err(CatalogError::Exists(_)) => {}
            Err(e) => tracing::error!(error = %e, "cannot create a keyspace pushed by a peer"),
        }
    }
}
