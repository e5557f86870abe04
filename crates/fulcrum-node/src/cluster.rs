//! Cluster state of this node: the member list, the ring built from it,
//! connections to peers, and the handling of peer requests.
//!
//! Membership (this stage): a node started with `--seeds` sends `Join` to
//! a seed; the seed adds it and pushes the merged member list to every
//! member. Member lists merge by union, so pushes in any order converge.
//! The list is persisted in the `meta` table so a restarted node knows its
//! cluster. Failure detection and gossip come with the membership layer.
//!
//! Keyspace DDL is broadcast: `KEYSPACE CREATE`/`DROP` on any node is
//! applied locally, then sent to every member before the client gets its
//! answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::KeyspaceSpec;
use fulcrum_core::record::Record;
use fulcrum_core::ring::{NodeId, Ring, RingNode};
use fulcrum_storage::Batch;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogError, META_TABLE};
use crate::config::NodeConfig;
use crate::db::Db;
use crate::net::server::error;
use crate::net::{CallError, Member, PeerPool, PeerRequest, PeerResponse};

const MEMBERS_KEY: &[u8] = b"cluster/members";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Membership {
    epoch: u64,
    members: BTreeMap<String, Member>,
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
    membership: RwLock<Membership>,
    ring: RwLock<Arc<Ring>>,
    /// Members whose last health probe failed (a minimal failure
    /// detector until gossip replaces it).
    down: RwLock<std::collections::HashSet<String>>,
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
}

fn build_ring(m: &Membership) -> Result<Ring, ClusterError> {
    Ring::new(
        m.members
            .values()
            .map(|x| RingNode::new(x.node_id.as_str(), x.dc.as_str(), x.rack.as_str())),
    )
    .map_err(|e| ClusterError::Ring(e.to_string()))
}

impl Cluster {
    /// Loads the persisted member list (or starts a new one with just this
    /// node).
    ///
    /// # Errors
    /// Storage failure or an unreadable member list.
    pub fn open(db: Arc<Db>, config: &NodeConfig, me: Member) -> Result<Cluster, ClusterError> {
        let mut membership: Membership = match db.storage.get(META_TABLE, MEMBERS_KEY) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_default(),
            _ => Membership::default(),
        };
        membership.members.insert(me.node_id.clone(), me.clone());
        let ring = build_ring(&membership)?;
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
        Ok(Cluster {
            me,
            db,
            pool,
            groups,
            faults: Faults::default(),
            allow_faults: config.allow_faults,
            request_timeout,
            tombstone_grace_ms: config.tombstone_grace_ms,
            membership: RwLock::new(membership),
            ring: RwLock::new(Arc::new(ring)),
            down: RwLock::new(std::collections::HashSet::new()),
        })
    }

    /// Whether `node_id` answered its last health probe (this node: yes).
    pub fn is_up(&self, node_id: &str) -> bool {
        !self.down.read().contains(node_id)
    }

    /// Probes every other member every `every`; marks them up or down.
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
                let was_up = self.is_up(&node);
                if ok && !was_up {
                    self.down.write().remove(&node);
                    tracing::info!(%node, "member is up");
                } else if !ok && was_up {
                    self.down.write().insert(node.clone());
                    tracing::warn!(%node, "member is down");
                }
            }
        }
    }

    pub fn ring(&self) -> Arc<Ring> {
        self.ring.read().clone()
    }

    pub fn members(&self) -> Vec<Member> {
        self.membership.read().members.values().cloned().collect()
    }

    pub fn member(&self, node_id: &str) -> Option<Member> {
        self.membership.read().members.get(node_id).cloned()
    }

    /// The DC of a member (without cloning the whole member).
    pub fn member_dc(&self, node_id: &str) -> Option<String> {
        self.membership
            .read()
            .members
            .get(node_id)
            .map(|m| m.dc.clone())
    }

    pub fn member_count(&self) -> usize {
        self.membership.read().members.len()
    }

    /// The nodes holding `key` for a keyspace of `replicas` copies:
    /// `min(replicas, members)` distinct nodes from the ring.
    pub fn replicas(&self, replicas: u32, key: &[u8]) -> Vec<NodeId> {
        let ring = self.ring();
        let n = (replicas as usize).min(self.member_count()).max(1);
        ring.preference_list(ring.partition_of(key), n).to_vec()
    }

    /// Merges a member list into ours; persists and rebuilds the ring if
    /// it grew. Returns whether anything changed.
    fn merge_members(&self, epoch: u64, members: Vec<Member>) -> bool {
        let mut m = self.membership.write();
        let mut changed = false;
        for member in members {
            if m.members.get(&member.node_id) != Some(&member) {
                m.members.insert(member.node_id.clone(), member);
                changed = true;
            }
        }
        if epoch > m.epoch {
            m.epoch = epoch;
        }
        if changed {
            m.epoch += 1;
            self.persist(&m);
            match build_ring(&m) {
                Ok(r) => *self.ring.write() = Arc::new(r),
                Err(e) => tracing::error!(error = %e, "cannot rebuild the ring"),
            }
            tracing::info!(
                members = m.members.len(),
                epoch = m.epoch,
                "membership changed"
            );
        }
        changed
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

    fn snapshot(&self) -> (u64, Vec<Member>) {
        let m = self.membership.read();
        (m.epoch, m.members.values().cloned().collect())
    }

    /// Joins the cluster through the first seed that answers, retrying
    /// for a while (seeds may still be starting).
    ///
    /// # Errors
    /// [`ClusterError::JoinFailed`] when no seed accepted us in time.
    pub async fn join(&self, seeds: &[String]) -> Result<(), ClusterError> {
        let mut last = String::from("no seeds");
        for _attempt in 0..60 {
            for seed in seeds {
                if *seed == self.me.peer_addr {
                    continue;
                }
                let req = PeerRequest::Join {
                    member: self.me.clone(),
                };
                match self.pool.call(seed, req, Duration::from_secs(5)).await {
                    Ok(PeerResponse::Joined {
                        epoch,
                        members,
                        keyspaces,
                    }) => {
                        self.merge_members(epoch, members);
                        for spec in keyspaces {
                            self.apply_create(spec);
                        }
                        tracing::info!(%seed, members = self.member_count(), "joined the cluster");
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

    /// Sends `request` to every other member and waits for all answers.
    /// Returns the members that failed, with why.
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
                let changed = self.merge_members(0, vec![member]);
                let (epoch, members) = self.snapshot();
                if changed {
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
            PeerRequest::Members { epoch, members } => {
                self.merge_members(epoch, members);
                PeerResponse::Done
            }
            PeerRequest::CreateKeyspace { spec } => match self.db.catalog.create(spec.clone()) {
                Ok(_) | Err(CatalogError::Exists(_)) => {
                    // Opening Raft groups takes a while (storage, fsyncs);
                    // the schema is durable now, the groups follow.
                    let this = self.clone();
                    tokio::spawn(async move { this.open_strong_groups(&spec).await });
                    PeerResponse::Done
                }
                Err(e) => error(e),
            },
            PeerRequest::DropKeyspace { name } => match self.db.catalog.drop_keyspace(&name) {
                Ok(()) | Err(CatalogError::Missing(_)) => {
                    self.close_strong_groups(&name).await;
                    PeerResponse::Done
                }
                Err(e) => error(e),
            },
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
                let delay = self
                    .faults
                    .delay_puts_ms
                    .load(std::sync::atomic::Ordering::Relaxed);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if self
                    .faults
                    .drop_puts
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
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
