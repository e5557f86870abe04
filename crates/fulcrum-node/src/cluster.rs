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
//! changed, on the previous read ring (other nodes may still read with it).
//! So a read at R on any ring a node may use meets every write acknowledged
//! at W with R + W > N.
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

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::KeyspaceSpec;
use fulcrum_core::record::Record;
use fulcrum_core::ring::{NodeId, Ring, RingNode};
use fulcrum_storage::Batch;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::catalog::{CatalogError, META_TABLE};
use crate::config::NodeConfig;
use crate::db::Db;
use crate::gossip::{Gossip, Liveness, NodeView};
use crate::net::server::error;
use crate::net::{
    CallError, Member, MemberRecord, MemberState, PeerPool, PeerRequest, PeerResponse,
};
use crate::schema::{Schema, SchemaEntry};

const MEMBERS_KEY: &[u8] = b"cluster/members";

/// How long writes still also reach their level on the previous read ring
/// after this node saw the read ring change, at most: the previous ring is
/// dropped as soon as every live member gossips the same read ring as this
/// node (usually within a few gossip rounds).
pub const RING_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Membership {
    epoch: u64,
    members: BTreeMap<String, MemberRecord>,
}

/// The member list as an earlier version persisted it.
#[derive(Deserialize)]
struct MembershipV1 {
    epoch: u64,
    members: BTreeMap<String, Member>,
}

/// A ring and the ids of its nodes.
#[derive(Clone)]
pub struct RingView {
    pub ring: Arc<Ring>,
    pub ids: Vec<String>,
}

impl RingView {
    fn build(m: &Membership, states: &[MemberState]) -> Result<RingView, ClusterError> {
        let ids: Vec<String> = m
            .members
            .values()
            .filter(|r| states.contains(&r.state))
            .map(|r| r.member.node_id.clone())
            .collect();
        let ring = Ring::new(
            m.members
                .values()
                .filter(|r| states.contains(&r.state))
                .map(|r| {
                    RingNode::new(
                        r.member.node_id.as_str(),
                        r.member.dc.as_str(),
                        r.member.rack.as_str(),
                    )
                }),
        )
        .map_err(|e| ClusterError::Ring(e.to_string()))?;
        Ok(RingView {
            ring: Arc::new(ring),
            ids,
        })
    }

    /// Copies of a keyspace of `replicas` on this ring.
    pub fn n(&self, replicas: u32) -> usize {
        (replicas as usize).min(self.ids.len()).max(1)
    }

    /// The replicas of `key` for a keyspace of `replicas` copies.
    pub fn replicas(&self, replicas: u32, key: &[u8]) -> Vec<NodeId> {
        self.ring
            .preference_list(self.ring.partition_of(key), self.n(replicas))
            .to_vec()
    }
}

/// The rings requests use (see the module docs).
#[derive(Clone)]
pub struct Placement {
    pub read: RingView,
    /// The ring of `up` and `joining` members, when it differs.
    pub pending: Option<RingView>,
    /// Read rings replaced less than [`RING_GRACE`] ago, with when.
    pub previous: Vec<(RingView, Instant)>,
}

impl Placement {
    /// The read ring's node ids, as gossip carries them (`ring` key).
    pub fn read_ids(&self) -> String {
        self.read.ids.join(",")
    }

    /// `track_previous`: keep replaced read rings for [`RING_GRACE`] (with
    /// gossip; a simulation's nodes all start `up`, rings only grow at its
    /// start, and it keeps the plain behaviour).
    fn build(
        m: &Membership,
        old: Option<&Placement>,
        track_previous: bool,
    ) -> Result<Placement, ClusterError> {
        use MemberState::{Joining, Leaving, Up};
        let has = |states: &[MemberState]| m.members.values().any(|r| states.contains(&r.state));
        let read = if has(&[Up, Leaving]) {
            RingView::build(m, &[Up, Leaving])?
        } else {
            // Nobody is up yet (a lone joining node): read from everyone.
            RingView::build(m, &[Up, Leaving, Joining])?
        };
        let pending = if has(&[Up, Joining]) {
            Some(RingView::build(m, &[Up, Joining])?)
        } else {
            None
        };
        let pending = pending.filter(|p| p.ids != read.ids);
        let now = Instant::now();
        let mut previous: Vec<(RingView, Instant)> = old
            .map(|o| o.previous.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, at)| now.duration_since(*at) < RING_GRACE)
            .collect();
        if let Some(o) = old.filter(|_| track_previous) {
            if o.read.ids != read.ids {
                previous.push((o.read.clone(), now));
            }
        }
        Ok(Placement {
            read,
            pending,
            previous,
        })
    }
}

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

fn load_membership(db: &Db) -> Membership {
    let Ok(Some(b)) = db.storage.get(META_TABLE, MEMBERS_KEY) else {
        return Membership::default();
    };
    if let Ok(m) = serde_json::from_slice::<Membership>(&b) {
        return m;
    }
    match serde_json::from_slice::<MembershipV1>(&b) {
        Ok(old) => Membership {
            epoch: old.epoch,
            members: old
                .members
                .into_iter()
                .map(|(id, member)| {
                    let r = MemberRecord {
                        member,
                        state: MemberState::Up,
                        generation: 0,
                    };
                    (id, r)
                })
                .collect(),
        },
        Err(e) => {
            tracing::error!(error = %e, "unreadable member list; starting without it");
            Membership::default()
        }
    }
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

    /// This node's gossip keys (see `gossip.rs`).
    fn my_keys(&self) -> Vec<(String, String)> {
        let state = self.my_state();
        let mut keys = vec![
            (
                "member".to_string(),
                serde_json::to_string(&self.me).unwrap_or_default(),
            ),
            ("state".to_string(), state.as_str().to_string()),
            ("weight".to_string(), "1".to_string()),
            ("ring".to_string(), self.placement().read_ids()),
            (
                "schema_version".to_string(),
                self.schema.version().to_string(),
            ),
        ];
        keys.extend(self.schema.gossip_keys());
        let m = self.membership.read();
        for r in m.members.values() {
            if r.state == MemberState::Left && r.member.node_id != self.me.node_id {
                keys.push((
                    format!("removed:{}", r.member.node_id),
                    r.generation.to_string(),
                ));
            }
        }
        keys
    }

    /// Starts gossip on `listen` (UDP), seeded with every known member's
    /// gossip address and `seeds`.
    ///
    /// # Errors
    /// The gossip socket cannot be bound.
    pub async fn start_gossip(
        &self,
        listen: std::net::SocketAddr,
        seeds: &[String],
    ) -> Result<(), ClusterError> {
        let advertise: std::net::SocketAddr = self
            .me
            .gossip_addr
            .parse()
            .map_err(|e| ClusterError::Gossip(format!("bad gossip address: {e}")))?;
        let mut all: Vec<String> = self
            .members()
            .into_iter()
            .filter(|m| m.node_id != self.me.node_id && !m.gossip_addr.is_empty())
            .map(|m| m.gossip_addr)
            .collect();
        all.extend(seeds.iter().cloned());
        let g = Gossip::start(
            &self.me.node_id,
            self.generation,
            listen,
            advertise,
            all,
            self.my_keys(),
        )
        .await
        .map_err(|e| ClusterError::Gossip(format!("{e:#}")))?;
        let _ = self.gossip.set(g);
        Ok(())
    }

    /// Re-announces this node's keys (after a state or schema change).
    pub async fn announce(&self) {
        if let Some(g) = self.gossip.get() {
            g.set(self.my_keys()).await;
        }
    }

    /// Stops gossiping (at shutdown).
    pub fn stop_gossip(&self) {
        if let Some(g) = self.gossip.get() {
            g.shutdown();
        }
    }

    /// Whether this node gossips (not inside a simulation).
    pub fn gossips(&self) -> bool {
        self.gossip.get().is_some()
    }

    /// Whether `node_id` can be routed to: gossip says it is alive and its
    /// peer link answered its last ping (this node: yes).
    pub fn is_up(&self, node_id: &str) -> bool {
        if node_id == self.me.node_id {
            return true;
        }
        if self.link_down.read().contains(node_id) {
            return false;
        }
        match self.gossip.get() {
            Some(g) => g.heard.read().get(node_id).is_some_and(|h| h.alive),
            None => true,
        }
    }

    /// Whether gossip says `node_id` is alive (whatever its link does).
    pub fn gossip_alive(&self, node_id: &str) -> bool {
        match self.gossip.get() {
            Some(g) => g.heard.read().get(node_id).is_some_and(|h| h.alive),
            None => !self.link_down.read().contains(node_id),
        }
    }

    /// `up`, `suspect` or `down`, as `/status` shows it.
    pub fn liveness(&self, node_id: &str) -> Liveness {
        if node_id == self.me.node_id {
            return Liveness::Up;
        }
        let link_down = self.link_down.read().contains(node_id);
        let gossip = match self.gossip.get() {
            Some(g) => g
                .heard
                .read()
                .get(node_id)
                .map_or(Liveness::Down, |h| h.liveness(Instant::now())),
            None if link_down => return Liveness::Down,
            None => Liveness::Up,
        };
        match gossip {
            Liveness::Up if link_down => Liveness::Suspect,
            other => other,
        }
    }

    /// Milliseconds since `node_id` was last heard (0 for this node;
    /// `None` if never).
    pub fn last_heard_ms(&self, node_id: &str) -> Option<u64> {
        if node_id == self.me.node_id {
            return Some(0);
        }
        let g = self.gossip.get()?;
        let at = g.heard.read().get(node_id)?.at;
        Some(Instant::now().duration_since(at).as_millis() as u64)
    }

    /// Pings every other member every `every`: a link that does not answer
    /// (or answers for another node) is down until it answers again.
    pub async fn run_prober(
        self: Arc<Self>,
        every: Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = crate::ticker::Ticker::new(every, shutdown);
        while ticker.next().await {
            let others: Vec<Member> = self
                .members()
                .into_iter()
                .filter(|m| m.node_id != self.me.node_id)
                .collect();
            let this = &self;
            let probes = others.iter().map(|m| async move {
                // The answer must come from the member we asked about, not
                // from whatever process now listens on its old address.
                let answer = this
                    .pool
                    .call(
                        &m.peer_addr,
                        PeerRequest::Ping,
                        every.max(Duration::from_millis(500)),
                    )
                    .await;
                if matches!(answer, Err(CallError::Timeout { .. })) {
                    // A silent link may be black-holed: dial afresh next time.
                    this.pool.reset(&m.peer_addr);
                }
                let ok =
                    matches!(answer, Ok(PeerResponse::Pong { node_id }) if node_id == m.node_id);
                (m.node_id.clone(), ok)
            });
            for (node, ok) in futures::future::join_all(probes).await {
                let was_down = self.link_down.read().contains(&node);
                if ok && was_down {
                    self.link_down.write().remove(&node);
                    tracing::info!(%node, "peer link is up");
                } else if !ok && !was_down {
                    self.link_down.write().insert(node.clone());
                    tracing::warn!(%node, "peer link is down");
                }
            }
        }
    }

    /// Reads the gossiped state every [`crate::gossip::POLL`] until
    /// shutdown.
    pub async fn run_gossip_poll(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = crate::ticker::Ticker::new(crate::gossip::POLL, shutdown);
        while ticker.next().await {
            let Some(g) = self.gossip.get() else { return };
            let views = g.views().await;
            self.apply_gossip(views).await;
        }
    }

    /// Merges what gossip says: member records (with removals) and schema.
    async fn apply_gossip(self: &Arc<Self>, views: Vec<NodeView>) {
        let mut records = Vec::new();
        let mut schema_keys = Vec::new();
        for v in &views {
            if let (Some(member), Some(state)) = (&v.member, v.state) {
                if member.node_id == v.node_id {
                    records.push(MemberRecord {
                        member: member.clone(),
                        state,
                        generation: v.generation,
                    });
                }
            }
            for (k, val) in &v.keys {
                if let Some(node) = k.strip_prefix("removed:") {
                    let (Ok(generation), Some(rec)) = (val.parse::<u64>(), self.record(node))
                    else {
                        continue;
                    };
                    if node != self.me.node_id {
                        records.push(MemberRecord {
                            state: MemberState::Left,
                            generation,
                            ..rec
                        });
                    } else if self.rejoin_if_removed(generation).await {
                        tokio::spawn(self.clone().run_join());
                    }
                } else if k.starts_with(crate::schema::GOSSIP_PREFIX) {
                    schema_keys.push((k.clone(), val.clone()));
                }
            }
        }
        self.merge_records(records);
        // Every live member reads with the same ring as this node: no one
        // reads with an older one any more.
        let p = self.placement();
        if !p.previous.is_empty() {
            let mine = p.read_ids();
            let agreed = views
                .iter()
                .filter(|v| v.alive)
                .all(|v| v.keys.iter().any(|(k, val)| k == "ring" && *val == mine));
            if agreed {
                let mut settled = (*p).clone();
                settled.previous.clear();
                let mut cur = self.placement.write();
                if cur.read.ids == settled.read.ids {
                    *cur = Arc::new(settled);
                    tracing::info!(ring = %mine, "every live member reads with this ring");
                }
            }
        }
        let newer = self.schema.newer_in(&schema_keys);
        for (name, entry) in newer {
            self.apply_schema(&name, entry).await;
        }
    }

    /// Applies a schema entry newer than ours: creates or drops the
    /// keyspace (and its Raft groups), records the version, re-announces.
    pub async fn apply_schema(&self, name: &str, entry: SchemaEntry) {
        if !self
            .schema
            .offer(self.db.storage.as_ref(), name, entry.clone())
        {
            return;
        }
        match entry.spec {
            Some(spec) => match self.db.catalog.create(spec.clone()) {
                Ok(_) => {
                    tracing::info!(keyspace = %name, version = entry.version, "keyspace learned from gossip");
                    self.open_strong_groups(&spec).await;
                }
                Err(CatalogError::Exists(_)) => {}
                Err(e) => tracing::error!(error = %e, "cannot create a gossiped keyspace"),
            },
            None => match self.db.catalog.drop_keyspace(name) {
                Ok(()) => {
                    tracing::info!(keyspace = %name, version = entry.version, "keyspace drop learned from gossip");
                    self.close_strong_groups(name).await;
                }
                Err(CatalogError::Missing(_) | CatalogError::DropDefault) => {}
                Err(e) => tracing::error!(error = %e, "cannot drop a gossiped keyspace"),
            },
        }
        self.announce().await;
    }

    /// Records a local DDL's schema version (see `schema.rs`) and returns it.
    pub async fn schema_changed(&self, name: &str, spec: Option<KeyspaceSpec>) -> u64 {
        let version = self.schema.next_version(name, crate::db::wall_ms());
        self.schema.offer(
            self.db.storage.as_ref(),
            name,
            SchemaEntry { version, spec },
        );
        self.announce().await;
        version
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

    /// Nodes on the read ring.
    pub fn member_count(&self) -> usize {
        self.placement.read().read.ids.len()
    }

    /// The nodes holding `key` for a keyspace of `replicas` copies:
    /// `min(replicas, members)` distinct nodes from the read ring.
    pub fn replicas(&self, replicas: u32, key: &[u8]) -> Vec<NodeId> {
        self.placement.read().read.replicas(replicas, key)
    }

    /// The replica sets a write of `key` must reach its level on: the read
    /// ring's first, then the pending ring's and recent previous rings'
    /// when they differ.
    pub fn write_sets(&self, replicas: u32, key: &[u8]) -> Vec<Vec<NodeId>> {
        let p = self.placement.read().clone();
        let first = p.read.replicas(replicas, key);
        let mut sets = vec![first];
        let now = Instant::now();
        let others = p.pending.iter().chain(
            p.previous
                .iter()
                .filter(|(_, at)| now.duration_since(*at) < RING_GRACE)
                .map(|(r, _)| r),
        );
        for ring in others {
            let s = ring.replicas(replicas, key);
            if !sets.contains(&s) {
                sets.push(s);
            }
        }
        sets
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

    /// Answers one request from a peer.
    pub async fn handle_peer(self: &Arc<Self>, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::Ping => PeerResponse::Pong {
                node_id: self.me.node_id.clone(),
            },
            PeerRequest::Join { member } => {
                let changed = self.merge_records(vec![member]);
                let (epoch, members) = self.snapshot();
                // With gossip the new member spreads by itself.
                if changed && !self.gossips() {
                    let failed = self
                        .broadcast(PeerRequest::Members {
                            epoch,
                            members: members.clone(),
                        })
                        .await;
                    for (node, e) in failed {
                        tracing::warn!(%node, error = %e, "member list not delivered");
                    }
                }
                PeerResponse::Joined {
                    epoch,
                    members,
                    keyspaces: self
                        .db
                        .catalog
                        .list()
                        .iter()
                        .map(|k| k.spec.clone())
                        .collect(),
                }
            }
            PeerRequest::Members { epoch: _, members } => {
                self.merge_records(members);
                PeerResponse::Done
            }
            PeerRequest::CreateKeyspace { spec, version } => {
                match self.db.catalog.create(spec.clone()) {
                    Ok(_) | Err(CatalogError::Exists(_)) => {
                        let entry = SchemaEntry {
                            version,
                            spec: Some(spec.clone()),
                        };
                        self.schema
                            .offer(self.db.storage.as_ref(), &spec.name, entry);
                        self.announce().await;
                        // Opening Raft groups takes a while (storage, fsyncs);
                        // the schema is durable now, the groups follow.
                        let this = self.clone();
                        tokio::spawn(async move { this.open_strong_groups(&spec).await });
                        PeerResponse::Done
                    }
                    Err(e) => error(e),
                }
            }
            PeerRequest::DropKeyspace { name, version } => {
                match self.db.catalog.drop_keyspace(&name) {
                    Ok(()) | Err(CatalogError::Missing(_)) => {
                        let entry = SchemaEntry {
                            version,
                            spec: None,
                        };
                        self.schema.offer(self.db.storage.as_ref(), &name, entry);
                        self.announce().await;
                        self.close_strong_groups(&name).await;
                        PeerResponse::Done
                    }
                    Err(e) => error(e),
                }
            }
            PeerRequest::Raft {
                keyspace,
                partition,
                rpc,
            } => PeerResponse::Raft(
                self.groups
                    .handle_rpc(&fulcrum_raft::GroupId::new(keyspace, partition), &rpc)
                    .await,
            ),
            PeerRequest::Read { keyspace, key } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                match self.db.read_record(&ks, &key) {
                    Ok(rec) => {
                        if let Some(r) = &rec {
                            self.db.observe(r.max_timestamp());
                        }
                        PeerResponse::Record(rec.map(|r| r.encode()))
                    }
                    Err(e) => error(e),
                }
            }
            PeerRequest::Put {
                keyspace,
                key,
                record,
            } => {
                let delay = self.faults.delay_puts_ms.load(Ordering::Relaxed);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if self.faults.drop_puts.load(Ordering::Relaxed) {
                    return error("replica write dropped by fault injection");
                }
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                let record = match Record::decode(&record) {
                    Ok(r) => r,
                    Err(e) => return error(format!("undecodable record: {e}")),
                };
                match self.db.replica_merge(&ks, &key, &record) {
                    Ok(false) => PeerResponse::Done,
                    Ok(true) => match self.db.durable().await {
                        Ok(()) => PeerResponse::Done,
                        Err(e) => error(e),
                    },
                    Err(e) => error(e),
                }
            }
            req @ (PeerRequest::AaeRoots { .. }
            | PeerRequest::AaeSegments { .. }
            | PeerRequest::AaeKeys { .. }) => self.handle_aae(req),
            PeerRequest::Purge {
                keyspace,
                key,
                record,
            } => {
                let (Some(ks), Ok(record)) =
                    (self.db.catalog.get(&keyspace), Record::decode(&record))
                else {
                    return error("unknown keyspace or undecodable record");
                };
                match self.db.purge_if_equal(&ks, &key, &record) {
                    Ok(_) => PeerResponse::Done,
                    Err(e) => error(e),
                }
            }
            PeerRequest::Hint {
                target,
                keyspace,
                key,
                record,
            } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                let record = match Record::decode(&record) {
                    Ok(r) => r,
                    Err(e) => return error(format!("undecodable record: {e}")),
                };
                match self.db.store_hint(&target, &ks, &key, &record) {
                    Ok(()) => match self.db.durable().await {
                        Ok(()) => PeerResponse::Done,
                        Err(e) => error(e),
                    },
                    Err(e) => error(e),
                }
            }
            PeerRequest::Write {
                keyspace,
                key,
                context,
                version,
                level,
            } => {
                crate::coord::handle_forwarded_write(self, keyspace, key, context, version, level)
                    .await
            }
            PeerRequest::StreamRecords {
                keyspace,
                partition,
                after,
                limit,
            } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                match self
                    .db
                    .partition_records(&ks, partition, after.as_deref(), limit as usize)
                {
                    Ok((records, next)) => PeerResponse::Records { records, next },
                    Err(e) => error(e),
                }
            }
            PeerRequest::PutBatch { keyspace, records } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                for (key, record) in records {
                    let record = match Record::decode(&record) {
                        Ok(r) => r,
                        Err(e) => return error(format!("undecodable record: {e}")),
                    };
                    if let Err(e) = self.db.replica_merge(&ks, &key, &record) {
                        return error(e);
                    }
                }
                match self.db.durable().await {
                    Ok(()) => PeerResponse::Done,
                    Err(e) => error(e),
                }
            }
            PeerRequest::Command {
                keyspace,
                args,
                read_level,
                write_level,
            } => {
                crate::coord::handle_forwarded_command(
                    self,
                    keyspace,
                    args,
                    read_level,
                    write_level,
                )
                .await
            }
        }
    }
}
