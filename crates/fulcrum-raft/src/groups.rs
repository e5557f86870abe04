//! [`Groups`]: the Raft groups one node takes part in.
//!
//! Responsibilities:
//! - open a group (its storage tables, its openraft instance) and, when the
//!   group's storage is pristine, initialize it with the given voters;
//! - propose commands (leader only: a follower answers
//!   [`RaftError::NotLeader`] with the leader's address, and forwarding is
//!   the node's job), read keys linearizably (read-index on the leader) or
//!   serializably (this node's applied state);
//! - answer peers' RPCs ([`Groups::handle_rpc`]);
//! - report leaders and metrics, and shut groups down.
//!
//! Initialization: every voter of a new group calls openraft's `initialize`
//! with the same membership (keyed by node id), which openraft documents as
//! safe: each writes that membership at index 0 under its own term-0 leader
//! id, the voting protocol elects one leader, and the leader's log replaces
//! the others' uncommitted entry 0 (tested, also for a voter that opens
//! after the others have written). Nobody waits for a designated node, so a
//! group forms
//! as soon as a majority of its voters have opened it. `voters` is only
//! used for a pristine group: once a group has state, its membership comes
//! from its log. (A node whose storage was lost must not rejoin under its
//! old name: it would have forgotten its vote. Members are replaced through
//! membership changes: [`Groups::join_group`] on the new node,
//! [`Groups::add_learner`] and [`Groups::change_voters`] on the leader.)
//!
//! Durability: every group shares one [`GroupCommit`] (policy `always`),
//! so the log appends and votes of all groups share fsyncs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_storage::{FsyncPolicy, GroupCommit, Storage};
use openraft::errors::{ClientWriteError, InitializeError, LinearizableReadError};
use openraft::{ReadPolicy, ServerState};
use parking_lot::RwLock;

use crate::codec;
use crate::command::{Command, Request, Response, StoredValue};
use crate::config::{Clock, GroupsConfig, SystemClock};
use crate::error::RaftError;
use crate::log_store::LogStore;
use crate::network::{NetworkFactory, RaftTransport, Refusal, RpcReply, RpcRequest};
use crate::state_machine::{SmReader, StateMachine};
use crate::types::{GroupId, GroupTables, NodeId, PeerNode, Raft, RaftMetrics, Snapshot};

/// The result of an applied proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The entry's log index: the revision of every key it wrote.
    pub index: u64,
    /// What the state machine answered.
    pub response: Response,
}

/// A summary of one group's Raft state on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetrics {
    /// Leader, follower, candidate, …
    pub state: ServerState,
    /// The current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// Index of the last entry this node knows committed.
    pub committed_index: Option<u64>,
    /// Index of the last entry applied to the state machine.
    pub applied_index: Option<u64>,
    /// Index covered by the current snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which the log has been purged.
    pub purged_index: Option<u64>,
    /// The voters' ids.
    pub voters: Vec<NodeId>,
}

/// What openraft answers a membership change.
type WriteResult = Result<
    openraft::raft::ClientWriteResponse<crate::types::TypeConfig>,
    openraft::errors::RaftError<
        crate::types::TypeConfig,
        ClientWriteError<crate::types::TypeConfig>,
    >,
>;

/// A group's membership as one node's log has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Log index of the membership entry (0 for the initial one).
    pub index: u64,
    /// Whether this node knows that entry committed.
    pub committed: bool,
    /// Whether it is a joint membership (a change in progress).
    pub joint: bool,
    /// The voters (of every config, if joint).
    pub voters: Vec<PeerNode>,
    /// The learners.
    pub learners: Vec<PeerNode>,
}

struct Group {
    raft: Raft,
    reader: SmReader,
}

/// Initializes a pristine group with `members`; returns whether the group
/// had state already (then nothing is done).
async fn initialize(
    raft: &Raft,
    members: BTreeMap<NodeId, PeerNode>,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    if raft.is_initialized().await? {
        return Ok(true);
    }
    match raft.initialize(members).await {
        Ok(()) => Ok(false),
        // Initialized meanwhile, by a vote request from a peer.
        Err(openraft::errors::RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

struct Inner<T> {
    local: PeerNode,
    local_id: NodeId,
    storage: Arc<dyn Storage>,
    committer: Arc<GroupCommit>,
    transport: Arc<T>,
    clock: Arc<dyn Clock>,
    config: GroupsConfig,
    raft_config: Arc<openraft::Config>,
    groups: RwLock<HashMap<GroupId, Arc<Group>>>,
    /// Serializes opening and closing groups.
    lifecycle: tokio::sync::Mutex<()>,
}

/// The Raft groups of one node. Cheap to clone (shared state).
pub struct Groups<T: RaftTransport> {
    inner: Arc<Inner<T>>,
}

impl<T: RaftTransport> Clone for Groups<T> {
    fn clone(&self) -> Self {
        Groups {
            inner: self.inner.clone(),
        }
    }
}

impl<T: RaftTransport> Groups<T> {
    /// Groups of node `local` over `storage`, sending RPCs with `transport`,
    /// stamping proposals with the system clock. Starts a group committer
    /// (its own fsync thread, policy `always`) over `storage`.
    ///
    /// # Errors
    /// `RaftError::Config` for an invalid `config`; `RaftError::Storage` if
    /// the committer's thread cannot start.
    pub fn new(
        local: PeerNode,
        storage: Arc<dyn Storage>,
        transport: Arc<T>,
        config: GroupsConfig,
    ) -> Result<Self, RaftError> {
        let committer = GroupCommit::new(storage, FsyncPolicy::Always)
            .map_err(RaftError::storage("start raft group commit"))?;
        Self::with_parts(
            local,
            Arc::new(committer),
            transport,
            Arc::new(SystemClock),
            config,
        )
    }

    /// Like [`Groups::new`], with a committer shared with other users of the
    /// same storage, and a clock of the caller's choice.
    ///
    /// # Errors
    /// `RaftError::Config` for an invalid `config` or a committer whose
    /// policy is not `always` (Raft's votes and log must be durable before
    /// they are acknowledged).
    pub fn with_parts(
        local: PeerNode,
        committer: Arc<GroupCommit>,
        transport: Arc<T>,
        clock: Arc<dyn Clock>,
        config: GroupsConfig,
    ) -> Result<Self, RaftError> {
        if committer.policy() != FsyncPolicy::Always {
            return Err(RaftError::Config(format!(
                "raft needs fsync policy 'always', the committer has '{}'",
                committer.policy()
            )));
        }
        let raft_config = config.to_openraft()?;
        Ok(Groups {
            inner: Arc::new(Inner {
                local_id: local.id(),
                local,
                storage: committer.storage().clone(),
                committer,
                transport,
                clock,
                config,
                raft_config,
                groups: RwLock::new(HashMap::new()),
                lifecycle: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// This node.
    pub fn local(&self) -> &PeerNode {
        &self.inner.local
    }

    /// The open groups, sorted.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut ids: Vec<GroupId> = self.inner.groups.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Opens `group` on this node (a no-op if it is open). A pristine
    /// group is initialized with `voters`, which must include this node.
    ///
    /// # Errors
    /// `RaftError::Config` for bad voters (empty, without this node,
    /// duplicate names, or two names with the same [`crate::node_id`]);
    /// `Storage`/`Codec` if the group's state cannot be read; `Fatal` if
    /// openraft refuses to start.
    pub async fn open_group(&self, group: GroupId, voters: Vec<PeerNode>) -> Result<(), RaftError> {
        let members = self.check_voters(&group, voters)?;
        self.open_inner(group, Some(members)).await
    }

    /// Opens `group` on this node without initializing it (a no-op if it
    /// is open): a node a leader is about to add as a learner (a moved
    /// group) waits, pristine, for the leader's log or snapshot instead of
    /// proposing a membership of its own.
    ///
    /// # Errors
    /// As [`Groups::open_group`], minus the voter checks.
    pub async fn join_group(&self, group: GroupId) -> Result<(), RaftError> {
        self.open_inner(group, None).await
    }

    /// Opens `group`; initializes a pristine one with `members` if given.
    async fn open_inner(
        &self,
        group: GroupId,
        members: Option<BTreeMap<NodeId, PeerNode>>,
    ) -> Result<(), RaftError> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        if self.inner.groups.read().contains_key(&group) {
            return Ok(());
        }
        let inner = &self.inner;
        let tables = Arc::new(GroupTables::new(&group));
        let log = LogStore::open(
            inner.storage.clone(),
            tables.clone(),
            inner.committer.clone(),
        )?;
        let sm = StateMachine::open(inner.storage.clone(), tables, inner.committer.clone())?;
        let reader = sm.reader();
        let network = NetworkFactory::new(
            inner.transport.clone(),
            group.clone(),
            inner.local_id,
            inner.config.rpc_timeout,
        );
        // With a seed, openraft's tasks for this group (core, ticker,
        // replication) draw their randomness from it (`crate::rt`).
        let seed = inner
            .config
            .rng_seed
            .map(|s| crate::rt::splitmix64(s, crate::types::fnv1a(group.to_string().as_bytes())));
        let raft = crate::rt::seeded(
            seed,
            Raft::new(inner.local_id, inner.raft_config.clone(), network, log, sm),
        )
        .await
        .map_err(|e| RaftError::fatal(&group, e))?;
        let initialized = match members {
            Some(members) => crate::rt::seeded(seed, initialize(&raft, members)).await,
            None => Ok(true),
        };
        let existing = match initialized {
            Ok(existing) => existing,
            Err(e) => {
                if let Err(stop) = raft.shutdown().await {
                    tracing::warn!(%group, error = %stop, "raft group did not stop cleanly");
                }
                return Err(RaftError::fatal(&group, e));
            }
        };
        tracing::info!(%group, node = %inner.local, existing, "opened raft group");
        let handle = Arc::new(Group { raft, reader });
        inner.groups.write().insert(group, handle);
        Ok(())
    }

    fn check_voters(
        &self,
        group: &GroupId,
        voters: Vec<PeerNode>,
    ) -> Result<BTreeMap<NodeId, PeerNode>, RaftError> {
        let mut members = BTreeMap::new();
        for voter in voters {
            let id = voter.id();
            if let Some(other) = members.insert(id, voter.clone()) {
                return Err(RaftError::Config(format!(
                    "group {group}: voters {other} and {voter} have the same raft id {id}"
                )));
            }
        }
        if !members.contains_key(&self.inner.local_id) {
            return Err(RaftError::Config(format!(
                "group {group}: this node ({}) is not among the voters",
                self.inner.local
            )));
        }
        Ok(members)
    }

    /// Stops `group` on this node (its data stays; open it again to resume).
    /// Closing a group that is not open is a no-op.
    pub async fn close_group(&self, group: &GroupId) {
        let _lifecycle = self.inner.lifecycle.lock().await;
        self.stop_locked(group).await;
    }

    /// Stops `group` and deletes its data on this node (its tables), for a
    /// dropped keyspace. A group of the same id opened later starts
    /// pristine. The other voters must drop it too: a voter that keeps it
    /// would keep campaigning for a group without a quorum.
    ///
    /// # Errors
    /// `RaftError::Storage` if a table cannot be dropped (the group is
    /// stopped regardless).
    pub async fn drop_group(&self, group: &GroupId) -> Result<(), RaftError> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        self.stop_locked(group).await;
        for table in GroupTables::new(group).all() {
            self.inner
                .storage
                .drop_table(table)
                .map_err(RaftError::storage("drop raft table"))?;
        }
        Ok(())
    }

    /// Stops `group`; the caller holds the lifecycle lock.
    async fn stop_locked(&self, group: &GroupId) {
        let removed = self.inner.groups.write().remove(group);
        if let Some(g) = removed {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(%group, error = %e, "raft group did not stop cleanly");
            }
        }
    }

    /// Stops every group. Call it before dropping the last handle: groups
    /// left open keep running. Durable state is already durable; the group
    /// committer does a final (blocking) sync when its last handle drops.
    pub async fn shutdown(&self) {
        for group in self.groups() {
            self.close_group(&group).await;
        }
    }

    fn group(&self, group: &GroupId) -> Result<Arc<Group>, RaftError> {
        self.inner
            .groups
            .read()
            .get(group)
            .cloned()
            .ok_or_else(|| RaftError::NoSuchGroup(group.clone()))
    }

    /// Proposes `command` to `group` and waits until it is applied here.
    ///
    /// The entry carries this node's clock ([`Request::now_ms`]): only the
    /// leader accepts proposals, so that is the leader's time.
    ///
    /// # Errors
    /// `InvalidCommand` (nothing proposed); `NotLeader` (nothing proposed;
    /// forward to the leader); `Timeout` or `OutcomeUnknown` (the entry may
    /// or may not commit: retry only idempotent commands); `NoSuchGroup`;
    /// `Fatal`.
    pub async fn propose(&self, group: &GroupId, command: Command) -> Result<Applied, RaftError> {
        command.validate()?;
        let g = self.group(group)?;
        let request = Request {
            now_ms: self.inner.clock.now_ms(),
            command,
        };
        let after = self.inner.config.propose_timeout;
        let written = tokio::time::timeout(after, g.raft.client_write(request)).await;
        match written {
            Err(_) => Err(RaftError::Timeout {
                group: group.clone(),
                op: "propose",
                after,
            }),
            Ok(Ok(resp)) => Ok(Applied {
                index: resp.log_id.index(),
                response: resp.data,
            }),
            Ok(Err(openraft::errors::RaftError::APIError(e))) => Err(match e {
                ClientWriteError::ForwardToLeader(f) => {
                    RaftError::not_leader(group, f.leader_id.map(|id| (id, f.leader_node)))
                }
                ClientWriteError::LogEntryDiscarded(f) => RaftError::OutcomeUnknown {
                    group: group.clone(),
                    leader: f.leader_node,
                },
                other => RaftError::fatal(group, other),
            }),
            Ok(Err(openraft::errors::RaftError::Fatal(f))) => Err(RaftError::fatal(group, f)),
        }
    }

    /// Waits until this node, as leader, has confirmed its leadership with
    /// a quorum and applied everything committed before the call (Raft's
    /// read index). Reads of this node's state after it returns are
    /// linearizable.
    ///
    /// # Errors
    /// `NotLeader`; `NoQuorum` (e.g. this node is partitioned from a
    /// majority); `Timeout`; `NoSuchGroup`; `Fatal`.
    pub async fn barrier(&self, group: &GroupId) -> Result<(), RaftError> {
        let g = self.group(group)?;
        let after = self.inner.config.read_timeout;
        let ensured =
            tokio::time::timeout(after, g.raft.ensure_linearizable(ReadPolicy::ReadIndex));
        match ensured.await {
            Err(_) => Err(RaftError::Timeout {
                group: group.clone(),
                op: "linearizable read",
                after,
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(openraft::errors::RaftError::APIError(e))) => Err(match e {
                LinearizableReadError::ForwardToLeader(f) => {
                    RaftError::not_leader(group, f.leader_id.map(|id| (id, f.leader_node)))
                }
                LinearizableReadError::QuorumNotEnough(q) => RaftError::NoQuorum {
                    group: group.clone(),
                    message: q.to_string(),
                },
            }),
            Ok(Err(openraft::errors::RaftError::Fatal(f))) => Err(RaftError::fatal(group, f)),
        }
    }

    /// The live value of `key` in `group`, with its revision and expiry.
    ///
    /// `linearizable`: on the leader after a [`Groups::barrier`]; otherwise
    /// this node's applied state, which may lag (serializable).
    ///
    /// # Errors
    /// Those of [`Groups::barrier`]; `Storage`/`Codec` for a failed read.
    pub async fn read(
        &self,
        group: &GroupId,
        key: &[u8],
        linearizable: bool,
    ) -> Result<Option<StoredValue>, RaftError> {
        if linearizable {
            self.barrier(group).await?;
        }
        self.group(group)?
            .reader
            .get(key, self.inner.clock.now_ms())
    }

    /// Up to `limit` keys of `group` that have expired on this node's
    /// applied state, for the expiry sweeper to propose
    /// [`Command::DeleteExpired`] with. Scans the group's whole table.
    ///
    /// # Errors
    /// `NoSuchGroup`, `Storage`, `Codec`.
    pub fn expired_keys(&self, group: &GroupId, limit: usize) -> Result<Vec<Bytes>, RaftError> {
        self.group(group)?
            .reader
            .expired_keys(self.inner.clock.now_ms(), limit)
    }

    /// Live keys of `group` after `after` in this node's applied state
    /// (serializable), up to `limit` examined, and the resume position.
    ///
    /// # Errors
    /// `NoSuchGroup`, `Storage`, `Codec`.
    pub fn scan_keys(
        &self,
        group: &GroupId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Bytes>, Option<Bytes>), RaftError> {
        self.group(group)?
            .reader
            .scan_keys(self.inner.clock.now_ms(), after, limit)
    }

    /// Number of live keys in this node's applied state of `group`
    /// (serializable: a follower may lag).
    ///
    /// # Errors
    /// `NoSuchGroup`, `Storage`, `Codec`.
    pub fn count_live(&self, group: &GroupId) -> Result<u64, RaftError> {
        self.group(group)?
            .reader
            .count_live(self.inner.clock.now_ms())
    }

    /// The leader of `group` as this node knows it (possibly stale).
    ///
    /// # Errors
    /// `NoSuchGroup`.
    pub fn leader(&self, group: &GroupId) -> Result<Option<PeerNode>, RaftError> {
        let m = self.raft_metrics(group)?;
        Ok(m.current_leader.map(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .cloned()
                .unwrap_or_else(|| PeerNode::new(format!("#{id}"), String::new()))
        }))
    }

    /// Waits until `group` has a leader (as seen from this node).
    ///
    /// # Errors
    /// `Timeout` after `timeout`; `NoSuchGroup`.
    pub async fn wait_for_leader(
        &self,
        group: &GroupId,
        timeout: Duration,
    ) -> Result<PeerNode, RaftError> {
        let g = self.group(group)?;
        let waited = g
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await;
        if waited.is_err() {
            return Err(RaftError::Timeout {
                group: group.clone(),
                op: "wait for a leader",
                after: timeout,
            });
        }
        self.leader(group)?.ok_or_else(|| RaftError::Timeout {
            group: group.clone(),
            op: "wait for a leader",
            after: timeout,
        })
    }

    /// openraft's full metrics of `group`.
    ///
    /// # Errors
    /// `NoSuchGroup`.
    pub fn raft_metrics(&self, group: &GroupId) -> Result<RaftMetrics, RaftError> {
        use openraft::async_runtime::watch::WatchReceiver;
        Ok(self.group(group)?.raft.metrics().borrow_watched().clone())
    }

    /// A summary of `group`'s state on this node.
    ///
    /// # Errors
    /// `NoSuchGroup`.
    pub fn metrics(&self, group: &GroupId) -> Result<GroupMetrics, RaftError> {
        let m = self.raft_metrics(group)?;
        Ok(GroupMetrics {
            state: m.state,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed_index: m.local_committed.map(|l| l.index()),
            applied_index: m.last_applied.map(|l| l.index()),
            snapshot_index: m.snapshot.map(|l| l.index()),
            purged_index: m.purged.map(|l| l.index()),
            voters: m.membership_config.membership().voter_ids().collect(),
        })
    }

    /// The open groups this node leads (as far as it knows), sorted.
    pub fn led_groups(&self) -> Vec<GroupId> {
        use openraft::async_runtime::watch::WatchReceiver;
        let local = self.inner.local_id;
        let mut ids: Vec<GroupId> = self
            .inner
            .groups
            .read()
            .iter()
            .filter(|(_, g)| g.raft.metrics().borrow_watched().current_leader == Some(local))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Whether this node is a voter of `group` (an open group whose
    /// membership, as this node's log has it, names it a voter).
    pub fn is_voter(&self, group: &GroupId) -> bool {
        use openraft::async_runtime::watch::WatchReceiver;
        let Ok(g) = self.group(group) else {
            return false;
        };
        let metrics = g.raft.metrics();
        let m = metrics.borrow_watched();
        let local = self.inner.local_id;
        let voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == local);
        voter
    }

    /// Removes `learners` from `group` (this node must lead it).
    ///
    /// # Errors
    /// `NotLeader`; `Timeout`; `NoSuchGroup`; `Fatal` (e.g. one of them is
    /// a voter).
    pub async fn remove_learners(
        &self,
        group: &GroupId,
        learners: &[PeerNode],
        timeout: Duration,
    ) -> Result<(), RaftError> {
        let g = self.group(group)?;
        let ids = learners.iter().map(PeerNode::id).collect();
        let change = openraft::ChangeMembers::RemoveNodes(ids);
        let removed = tokio::time::timeout(timeout, g.raft.change_membership(change, false)).await;
        self.membership_result(group, "remove learners", timeout, removed)
            .map(|_| ())
    }

    /// `group`'s membership as this node's log has it (see [`Membership`]).
    ///
    /// # Errors
    /// `NoSuchGroup`.
    pub fn membership(&self, group: &GroupId) -> Result<Membership, RaftError> {
        let m = self.raft_metrics(group)?;
        let config = m.membership_config.membership();
        let node = |id: NodeId| {
            config
                .get_node(&id)
                .cloned()
                .unwrap_or_else(|| PeerNode::new(format!("#{id}"), String::new()))
        };
        let index = m
            .membership_config
            .log_id()
            .as_ref()
            .map_or(0, |l| l.index());
        Ok(Membership {
            index,
            committed: m.local_committed.is_some_and(|c| c.index() >= index),
            joint: config.get_joint_config().len() > 1,
            voters: config.voter_ids().map(node).collect(),
            learners: config.learner_ids().map(node).collect(),
        })
    }

    /// Adds `node` to `group` as a learner (this node must lead it) and
    /// waits until it has caught up with the log (openraft streams the log
    /// or a snapshot to it).
    ///
    /// # Errors
    /// `NotLeader`; `Timeout` after `timeout` (the learner stays added and
    /// keeps catching up); `NoSuchGroup`; `Fatal`.
    pub async fn add_learner(
        &self,
        group: &GroupId,
        node: PeerNode,
        timeout: Duration,
    ) -> Result<(), RaftError> {
        let g = self.group(group)?;
        let added = tokio::time::timeout(timeout, g.raft.add_learner(node.id(), node, true)).await;
        self.membership_result(group, "add learner", timeout, added)
            .map(|_| ())
    }

    /// Changes `group`'s voters to exactly `voters` (each already a
    /// learner or voter) through openraft's joint consensus; voters left
    /// out are removed from the group. Returns the log index of the final
    /// membership once it is committed.
    ///
    /// # Errors
    /// `NotLeader`; `Timeout` after `timeout` (the change may still
    /// complete, or leave the group in the joint membership until the next
    /// change); `NoSuchGroup`; `Fatal` (e.g. a voter is not a learner).
    pub async fn change_voters(
        &self,
        group: &GroupId,
        voters: &[PeerNode],
        timeout: Duration,
    ) -> Result<u64, RaftError> {
        let g = self.group(group)?;
        let ids: std::collections::BTreeSet<NodeId> = voters.iter().map(PeerNode::id).collect();
        let changed = tokio::time::timeout(timeout, g.raft.change_membership(ids, false)).await;
        self.membership_result(group, "change voters", timeout, changed)
    }

    fn membership_result(
        &self,
        group: &GroupId,
        op: &'static str,
        after: Duration,
        result: Result<WriteResult, tokio::time::error::Elapsed>,
    ) -> Result<u64, RaftError> {
        match result {
            Err(_) => Err(RaftError::Timeout {
                group: group.clone(),
                op,
                after,
            }),
            Ok(Ok(resp)) => Ok(resp.log_id.index()),
            Ok(Err(openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(
                f,
            )))) => Err(RaftError::not_leader(
                group,
                f.leader_id.map(|id| (id, f.leader_node)),
            )),
            Ok(Err(e)) => Err(RaftError::fatal(group, e)),
        }
    }

    /// Asks `group` to build a snapshot now (and compact its log); returns
    /// without waiting for it.
    ///
    /// # Errors
    /// `NoSuchGroup`, `Fatal`.
    pub async fn trigger_snapshot(&self, group: &GroupId) -> Result<(), RaftError> {
        let g = self.group(group)?;
        g.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| RaftError::fatal(group, e))
    }

    /// Asks this node, if it leads `group`, to hand leadership to `to` (a
    /// voter), e.g. before a planned restart or to spread leaders; returns
    /// without waiting. Ignored by a follower.
    ///
    /// # Errors
    /// `NoSuchGroup`, `Fatal`.
    pub async fn transfer_leadership(
        &self,
        group: &GroupId,
        to: &PeerNode,
    ) -> Result<(), RaftError> {
        let g = self.group(group)?;
        g.raft
            .trigger()
            .transfer_leader(to.id())
            .await
            .map_err(|e| RaftError::fatal(group, e))
    }

    /// The openraft handle of `group`, for what this API does not cover.
    ///
    /// # Errors
    /// `NoSuchGroup`.
    pub fn raft(&self, group: &GroupId) -> Result<Raft, RaftError> {
        Ok(self.group(group)?.raft.clone())
    }

    /// Handles one RPC a peer sent for `group` through its
    /// [`RaftTransport`]; returns the reply to send back. Never fails: a
    /// request that cannot be served gets a refusal reply, which the
    /// sender treats as an unreachable peer.
    pub async fn handle_rpc(&self, group: &GroupId, rpc: &[u8]) -> Bytes {
        let reply = match self.dispatch(group, rpc).await {
            Ok(reply) => reply,
            Err(refusal) => {
                tracing::debug!(%group, %refusal, "refused a raft rpc");
                RpcReply::Refused(refusal)
            }
        };
        match codec::encode("raft rpc reply", &reply) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                tracing::error!(%group, error = %e, "cannot encode a raft rpc reply");
                Bytes::new()
            }
        }
    }

    async fn dispatch(&self, group: &GroupId, rpc: &[u8]) -> Result<RpcReply, Refusal> {
        let request: RpcRequest =
            codec::decode("raft rpc", rpc).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let g = self
            .group(group)
            .map_err(|_| Refusal::NoSuchGroup(group.clone()))?;
        let stopped = |e: &dyn std::fmt::Display| Refusal::Stopped(e.to_string());
        Ok(match request {
            RpcRequest::AppendEntries(r) => {
                RpcReply::AppendEntries(g.raft.append_entries(r).await.map_err(|e| stopped(&e))?)
            }
            RpcRequest::Vote(r) => RpcReply::Vote(g.raft.vote(r).await.map_err(|e| stopped(&e))?),
            RpcRequest::PreVote(r) => {
                RpcReply::Vote(g.raft.pre_vote(r).await.map_err(|e| stopped(&e))?)
            }
            RpcRequest::Snapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: data,
                };
                let installed = g.raft.install_full_snapshot(vote, snapshot).await;
                RpcReply::Snapshot(installed.map_err(|e| stopped(&e))?)
            }
            RpcRequest::TransferLeader(r) => {
                let handled = g.raft.handle_transfer_leader(r).await;
                RpcReply::TransferLeader(handled.map_err(|e| stopped(&e))?)
            }
        })
    }
}
