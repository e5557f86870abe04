//! A cluster of in-process nodes over [`MemNetwork`], each with a
//! [`MemoryStorage`] whose disk outlives crashes and restarts.
//!
//! Waiting uses deadlines only; nothing asserts on how long anything took.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_storage::{FsyncPolicy, GroupCommit, MemoryDisk, MemoryStorage, Storage};

use crate::command::{Command, Condition, Ttl};
use crate::config::Clock;
use crate::testkit::{ManualClock, MemNetwork, MemTransport};
use crate::{
    Applied, GroupId, Groups, GroupsConfig, PeerNode, RaftError, ServerState, StoredValue,
};

/// How long any wait may last before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Fast timing for tests (elections still randomized).
pub fn test_config() -> GroupsConfig {
    GroupsConfig {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout_min: Duration::from_millis(300),
        election_timeout_max: Duration::from_millis(600),
        propose_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(3),
        ..GroupsConfig::default()
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

pub fn set(key: &str, value: &str) -> Command {
    set_if(key, value, Condition::Always)
}

pub fn set_if(key: &str, value: &str, condition: Condition) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        ttl: Ttl::Clear,
        condition,
        get_old: false,
    }
}

/// Polls `probe` until it returns `Some`, failing the test after
/// [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Node {
    pub peer: PeerNode,
    pub disk: MemoryDisk,
    pub storage: Option<Arc<MemoryStorage>>,
    pub groups: Option<Groups<MemTransport>>,
}

pub struct Cluster {
    pub net: Arc<MemNetwork>,
    pub nodes: Vec<Node>,
    pub group: GroupId,
    pub config: GroupsConfig,
    pub clock: Arc<ManualClock>,
}

impl Cluster {
    /// `n` nodes, all running and opening one group of all of them, once
    /// they agree on a leader (a first election can be followed by a
    /// second when votes split; tests start after that).
    pub async fn start(n: usize, config: GroupsConfig) -> Cluster {
        let mut cluster = Cluster::new(n, config);
        for i in 0..n {
            cluster.restart(i).await;
        }
        cluster.settled().await;
        cluster
    }

    /// Waits until every running node names the same leader in the same
    /// term, and that leader says it leads.
    pub async fn settled(&self) {
        eventually("the nodes to agree on a leader", || async {
            let metrics: Vec<_> = self
                .running()
                .map(|i| self.groups(i).metrics(&self.group).ok())
                .collect::<Option<_>>()?;
            let first = metrics.first()?;
            let leader = first.leader?;
            let agree = metrics
                .iter()
                .all(|m| m.leader == Some(leader) && m.term == first.term);
            let leads = metrics.iter().any(|m| m.state == ServerState::Leader);
            (agree && leads).then_some(())
        })
        .await;
    }

    /// `n` nodes with empty disks, none running yet.
    pub fn new(n: usize, config: GroupsConfig) -> Cluster {
        let nodes = (0..n)
            .map(|i| Node {
                peer: PeerNode::new(format!("n{i}"), format!("mem:{i}")),
                disk: MemoryDisk::new(),
                storage: None,
                groups: None,
            })
            .collect();
        Cluster {
            net: MemNetwork::new(),
            nodes,
            group: GroupId::new("strong", 0),
            config,
            clock: ManualClock::new(1_000_000),
        }
    }

    pub fn voters(&self) -> Vec<PeerNode> {
        self.nodes.iter().map(|n| n.peer.clone()).collect()
    }

    /// Starts node `i` from its disk and opens the group.
    pub async fn restart(&mut self, i: usize) {
        let voters = self.voters();
        let node = &mut self.nodes[i];
        assert!(node.groups.is_none(), "node {i} is running");
        let storage = Arc::new(MemoryStorage::open(&node.disk).unwrap());
        let dyn_storage: Arc<dyn Storage> = storage.clone();
        let committer = Arc::new(GroupCommit::new(dyn_storage, FsyncPolicy::Always).unwrap());
        let clock: Arc<dyn Clock> = self.clock.clone();
        let groups = Groups::with_parts(
            node.peer.clone(),
            committer,
            self.net.transport(&node.peer.addr),
            clock,
            self.config.clone(),
        )
        .unwrap();
        self.net.register(&node.peer.addr, Arc::new(groups.clone()));
        groups.open_group(self.group.clone(), voters).await.unwrap();
        node.storage = Some(storage);
        node.groups = Some(groups);
    }

    /// Stops node `i`: with `crash`, its unsynced writes are lost first (a
    /// power loss); otherwise a clean shutdown.
    pub async fn stop(&mut self, i: usize, crash: bool) {
        let node = &mut self.nodes[i];
        self.net.unregister(&node.peer.addr);
        let storage = node.storage.take().unwrap();
        let groups = node.groups.take().unwrap();
        if crash {
            storage.crash();
        }
        groups.shutdown().await;
        drop(groups);
        storage.close().unwrap();
    }

    pub fn groups(&self, i: usize) -> &Groups<MemTransport> {
        self.nodes[i].groups.as_ref().unwrap()
    }

    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].groups.is_some())
    }

    /// A node that considers itself leader, among `candidates`.
    pub async fn leader_among(&self, candidates: &[usize]) -> usize {
        eventually("a leader", || async {
            candidates.iter().copied().find(|i| {
                self.nodes[*i].groups.as_ref().is_some_and(|g| {
                    g.metrics(&self.group)
                        .is_ok_and(|m| m.state == ServerState::Leader)
                })
            })
        })
        .await
    }

    pub async fn leader(&self) -> usize {
        let all: Vec<usize> = self.running().collect();
        self.leader_among(&all).await
    }

    /// Proposes on whichever node leads, retrying only where nothing was
    /// proposed (`NotLeader`) or the write is idempotent.
    pub async fn propose(&self, command: Command, idempotent: bool) -> Applied {
        let all: Vec<usize> = self.running().collect();
        self.propose_among(&all, command, idempotent).await
    }

    pub async fn propose_among(
        &self,
        nodes: &[usize],
        command: Command,
        idempotent: bool,
    ) -> Applied {
        self.at_leader(nodes, "a proposal to be applied", idempotent, |g| {
            g.propose(&self.group, command.clone())
        })
        .await
    }

    /// A linearizable read at whichever node leads, retrying when
    /// leadership moved between finding the leader and asking it.
    pub async fn read(&self, key: &str) -> Option<StoredValue> {
        let all: Vec<usize> = self.running().collect();
        self.read_among(&all, key).await
    }

    pub async fn read_among(&self, nodes: &[usize], key: &str) -> Option<StoredValue> {
        self.at_leader(nodes, "a linearizable read", true, |g| {
            g.read(&self.group, key.as_bytes(), true)
        })
        .await
    }

    /// Runs `op` at the node among `nodes` that leads, again wherever the
    /// leader is then if it refused (`NotLeader`), and also after a
    /// `Timeout` or `OutcomeUnknown` if `op` may run twice (`repeatable`).
    /// Any other error fails the test.
    async fn at_leader<'a, T, F, Fut>(
        &'a self,
        nodes: &[usize],
        what: &str,
        repeatable: bool,
        op: F,
    ) -> T
    where
        F: Fn(&'a Groups<MemTransport>) -> Fut,
        Fut: Future<Output = Result<T, RaftError>>,
    {
        eventually(what, || async {
            let leader = self.leader_among(nodes).await;
            match op(self.groups(leader)).await {
                Ok(done) => Some(done),
                Err(RaftError::NotLeader { .. }) => None,
                Err(RaftError::Timeout { .. } | RaftError::OutcomeUnknown { .. }) if repeatable => {
                    None
                }
                Err(e) => panic!("{what}: {e}"),
            }
        })
        .await
    }

    /// Waits until node `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: usize, index: u64) {
        eventually("a node to apply", || async {
            let m = self.groups(i).metrics(&self.group).unwrap();
            m.applied_index.is_some_and(|a| a >= index).then_some(())
        })
        .await;
    }

    /// A serializable read on node `i`.
    pub async fn local_read(&self, i: usize, key: &str) -> Option<StoredValue> {
        self.groups(i)
            .read(&self.group, key.as_bytes(), false)
            .await
            .unwrap()
    }

    pub async fn shutdown(mut self) {
        let running: Vec<usize> = self.running().collect();
        for i in running {
            self.stop(i, false).await;
        }
    }
}
