//! Moving strong keyspaces' Raft voters when the ring changes (a member
//! joins, leaves or is removed).
//!
//! Where a group's voters belong is the placement rule of keyspace
//! creation ([`crate::strong::group_placement`]) applied to the ring of the
//! `up` members: `min(replicas, up members)` nodes, no joining, leaving or
//! left member. Every second, each node checks the groups it **leads**
//! ([`Cluster::move_voters_once`]); for a group whose voters differ from
//! that placement it
//! 0. hands leadership to a voter that stays, when it is not in the
//!    placement itself (that voter's leader then moves the group; a
//!    leader that removed itself would leave the group leaderless until
//!    an election timeout),
//! 1. asks each new node to open the group without initializing it
//!    (`PeerRequest::JoinGroup`),
//! 2. adds it as a learner and waits until it has caught up (openraft
//!    streams the log or a snapshot),
//! 3. changes the voters to the placement (openraft's joint consensus;
//!    voters left out are removed from the group),
//! 4. publishes the new voters in the keyspace spec under the same schema
//!    version with the membership's log index as the group's epoch
//!    (`KeyspaceSpec::group_epochs`), locally, to every member directly and
//!    through gossip; every node keeps the voters of the highest epoch per
//!    group (`schema.rs`).
//!
//! A node that learns a publication leaving it out of a group it holds
//! drops the group (its tables), unless its own log already has a newer
//! membership (it is being added again). A leader also republishes when
//! the spec lags its committed membership (e.g. a leader that crashed
//! between steps 3 and 4), so the spec converges on the group's log.
//!
//! `CLUSTER LEAVE` waits ([`Cluster::wait_strong_voters_moved`]) until no
//! group that can go elsewhere names the leaving node.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::keyspace::{KeyspaceSpec, Mode};
use fulcrum_raft::{GroupId, PeerNode, RaftError};

use crate::cluster::{Cluster, RingView};
use crate::net::{PeerRequest, PeerResponse};
use crate::schema::SchemaEntry;
use crate::strong::group_placement;

/// How long a new learner may take to catch up before the move is retried.
const CATCH_UP: Duration = Duration::from_secs(20);
/// How long the membership change may take.
const CHANGE: Duration = Duration::from_secs(10);

/// What the leader of a group should do about its voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterPlan {
    /// Voters and spec agree with the placement.
    Nothing,
    /// Republish `voters` (the committed membership, in placement order
    /// where possible) as of membership index `epoch`.
    Publish { voters: Vec<String>, epoch: u64 },
    /// This leader is not in the placement: hand leadership to `to`, a
    /// voter that stays, which then moves the voters (a leader that
    /// removed itself would leave the group leaderless until an election
    /// timeout).
    HandOver { to: String },
    /// Add `add` as learners, then make `target` the voters.
    Move {
        add: Vec<String>,
        target: Vec<String>,
    },
}

/// Decides a group's [`VoterPlan`] for its leader `me` from its
/// membership (`voters` by name, the membership's log `index`, whether it
/// is `settled`: committed and not joint), what the spec says
/// (`spec_voters` at `spec_epoch`) and the placement `target` (empty:
/// nowhere to place it, leave it alone).
pub fn plan_voters(
    me: &str,
    voters: &[String],
    index: u64,
    settled: bool,
    spec_voters: &[String],
    spec_epoch: u64,
    target: &[String],
) -> VoterPlan {
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
    if !target.is_empty() && set(voters) != set(target) {
        if settled && !target.iter().any(|t| t == me) {
            if let Some(to) = target.iter().find(|t| voters.contains(t)) {
                return VoterPlan::HandOver { to: to.clone() };
            }
        }
        let add = target
            .iter()
            .filter(|t| !voters.contains(t))
            .cloned()
            .collect();
        return VoterPlan::Move {
            add,
            target: target.to_vec(),
        };
    }
    if settled && (set(spec_voters) != set(voters) || spec_epoch < index) {
        let mut ordered: Vec<String> = target
            .iter()
            .filter(|t| voters.contains(t))
            .cloned()
            .collect();
        let rest: Vec<String> = voters
            .iter()
            .filter(|v| !target.contains(v))
            .cloned()
            .collect();
        ordered.extend(rest);
        return VoterPlan::Publish {
            voters: ordered,
            epoch: index,
        };
    }
    VoterPlan::Nothing
}

/// Every `every`, moves the voters of the groups this node leads.
pub async fn run_voter_mover(
    cluster: Arc<Cluster>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = crate::ticker::Ticker::new(every, shutdown);
    while ticker.next().await {
        cluster.move_voters_once().await;
    }
}

fn target_names(ring: &RingView, spec: &KeyspaceSpec, gid: &GroupId) -> Vec<String> {
    Cluster::voter_target(ring, spec.replicas, gid.partition)
}

fn names(peers: &[PeerNode]) -> Vec<String> {
    peers.iter().map(|p| p.name.clone()).collect()
}

impl Cluster {
    /// Where group `partition` of a keyspace of `replicas` copies belongs
    /// on `ring` (the ring of `up` members).
    pub fn voter_target(ring: &RingView, replicas: u32, partition: u32) -> Vec<String> {
        group_placement(&ring.ring, ring.n(replicas), partition)
    }

    /// One pass of the mover (see the module docs).
    pub async fn move_voters_once(self: &Arc<Self>) {
        let Some(ring) = self.up_ring() else {
            return;
        };
        for gid in self.groups.led_groups() {
            let Some(ks) = self.db.catalog.get(&gid.keyspace) else {
                continue;
            };
            if ks.spec.mode != Mode::Strong {
                continue;
            }
            let Ok(m) = self.groups.membership(&gid) else {
                continue;
            };
            // Learners no placement wants (a move that timed out, then the
            // ring changed again) would be replicated to forever.
            let stale: Vec<PeerNode> = m
                .learners
                .iter()
                .filter(|l| !m.joint && !target_names(&ring, &ks.spec, &gid).contains(&l.name))
                .cloned()
                .collect();
            if !stale.is_empty() && m.committed {
                if let Err(e) = self.groups.remove_learners(&gid, &stale, CHANGE).await {
                    tracing::warn!(group = %gid, error = %e, "cannot remove stale learners");
                }
                continue;
            }
            let p = gid.partition as usize;
            let target = Self::voter_target(&ring, ks.spec.replicas, gid.partition);
            // Every target must be a member this node can address.
            if target.iter().any(|t| self.member(t).is_none()) {
                continue;
            }
            let spec_voters = ks.spec.groups.get(p).cloned().unwrap_or_default();
            let plan = plan_voters(
                &self.me.node_id,
                &names(&m.voters),
                m.index,
                m.committed && !m.joint,
                &spec_voters,
                ks.spec.group_epoch(p),
                &target,
            );
            match plan {
                VoterPlan::Nothing => {}
                VoterPlan::Publish { voters, epoch } => {
                    self.publish_voters(&gid, voters, epoch).await;
                }
                VoterPlan::HandOver { to } => {
                    let Some(node) = self.member(&to) else {
                        continue;
                    };
                    tracing::info!(group = %gid, to = %to, "handing raft leadership to a voter that stays");
                    let to = PeerNode::new(node.node_id, node.peer_addr);
                    if let Err(e) = self.groups.transfer_leadership(&gid, &to).await {
                        tracing::warn!(group = %gid, error = %e, "cannot hand over raft leadership");
                    }
                }
                VoterPlan::Move { add, target } => {
                    tracing::info!(group = %gid, from = ?names(&m.voters), to = ?target, "moving raft voters");
                    match self.move_group(&gid, &add, &target).await {
                        Ok(epoch) => {
                            tracing::info!(group = %gid, voters = ?target, epoch, "raft voters moved");
                            self.publish_voters(&gid, target, epoch).await;
                        }
                        Err(e) => {
                            tracing::warn!(group = %gid, error = %e, "cannot move raft voters yet")
                        }
                    }
                }
            }
        }
    }

    /// Steps 1–3 of the module docs; returns the new membership's index.
    async fn move_group(
        &self,
        gid: &GroupId,
        add: &[String],
        target: &[String],
    ) -> Result<u64, String> {
        let peer = |id: &str| {
            self.member(id)
                .map(|x| PeerNode::new(x.node_id, x.peer_addr))
                .ok_or_else(|| format!("node {id} is not a member"))
        };
        for id in add {
            let node = peer(id)?;
            // Also to a learner added before: it may have restarted since
            // (a node reopens only the groups the spec names it in).
            let req = PeerRequest::JoinGroup {
                keyspace: gid.keyspace.clone(),
                partition: gid.partition,
            };
            match self.pool.call(&node.addr, req, self.request_timeout).await {
                Ok(PeerResponse::Done) => {}
                Ok(other) => return Err(format!("{id} did not open the group: {other:?}")),
                Err(e) => return Err(format!("{id} did not open the group: {e}")),
            }
            self.groups
                .add_learner(gid, node, CATCH_UP)
                .await
                .map_err(|e| format!("adding learner {id}: {e}"))?;
        }
        let voters = target
            .iter()
            .map(|t| peer(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.groups
            .change_voters(gid, &voters, CHANGE)
            .await
            .map_err(|e| format!("changing voters: {e}"))
    }

    /// Step 4 of the module docs: records `voters` as group `gid`'s as of
    /// membership `epoch`, here and on every member (in the background:
    /// gossip repairs what the push misses).
    async fn publish_voters(self: &Arc<Self>, gid: &GroupId, voters: Vec<String>, epoch: u64) {
        let Some(SchemaEntry {
            version,
            spec: Some(mut spec),
        }) = self.schema.get(&gid.keyspace)
        else {
            return;
        };
        spec.set_group(gid.partition as usize, voters, epoch);
        let entry = SchemaEntry {
            version,
            spec: Some(spec.clone()),
        };
        self.apply_schema(&gid.keyspace, entry).await;
        let this = self.clone();
        tokio::spawn(async move {
            let req = PeerRequest::CreateKeyspace { spec, version };
            for (node, e) in this.broadcast(req).await {
                tracing::debug!(%node, error = %e, "moved voters not pushed; gossip carries them");
            }
        });
    }

    /// A learned spec of an existing keyspace (maybe with moved voters):
    /// stores it, opens the groups this node was moved into, and drops the
    /// groups it was moved out of.
    pub(crate) async fn regroup(&self, spec: KeyspaceSpec) {
        let old = match self.db.catalog.update(spec.clone()) {
            Ok(old) => old,
            Err(e) => {
                tracing::error!(keyspace = %spec.name, error = %e, "cannot store moved voters");
                return;
            }
        };
        if spec.mode != Mode::Strong {
            return;
        }
        for (p, voters) in spec.groups.iter().enumerate() {
            let epoch = spec.group_epoch(p);
            if epoch <= old.spec.group_epoch(p) {
                continue;
            }
            let gid = GroupId::new(spec.name.as_str(), p as u32);
            let held = self.groups.groups().contains(&gid);
            if voters.contains(&self.me.node_id) {
                if !held {
                    if let Err(e) = self.groups.join_group(gid.clone()).await {
                        tracing::error!(group = %gid, error = %e, "cannot open a group this node was moved into");
                    }
                }
                continue;
            }
            // Not a voter as of `epoch`: drop the group, unless this
            // node's log has a newer membership (it is being added again).
            let newer = self.groups.membership(&gid).is_ok_and(|m| m.index > epoch);
            if held && !newer {
                tracing::info!(group = %gid, epoch, "moved out of the group; dropping it");
                if let Err(e) = self.groups.drop_group(&gid).await {
                    tracing::error!(group = %gid, error = %e, "cannot drop a group this node left");
                }
            }
        }
    }

    /// Answers `PeerRequest::JoinGroup`.
    ///
    /// # Errors
    /// The keyspace is unknown or not strong, or the group cannot open.
    pub(crate) async fn join_moved_group(
        &self,
        keyspace: &str,
        partition: u32,
    ) -> Result<(), String> {
        match self.db.catalog.get(keyspace) {
            Some(ks) if ks.spec.mode == Mode::Strong => {}
            _ => return Err(format!("no strong keyspace '{keyspace}' here")),
        }
        self.groups
            .join_group(GroupId::new(keyspace, partition))
            .await
            .map_err(|e: RaftError| e.to_string())
    }

    /// Groups (keyspace/partition) whose published voters still name this
    /// node although the ring of `up` members has somewhere else for them.
    pub fn strong_groups_to_leave(&self) -> Vec<String> {
        let Some(ring) = self.up_ring() else {
            return Vec::new();
        };
        let mut left = Vec::new();
        for ks in self.db.catalog.list() {
            if ks.spec.mode != Mode::Strong {
                continue;
            }
            for (p, voters) in ks.spec.groups.iter().enumerate() {
                let target = Self::voter_target(&ring, ks.spec.replicas, p as u32);
                let elsewhere = target.iter().any(|t| *t != self.me.node_id);
                if elsewhere && voters.contains(&self.me.node_id) {
                    left.push(format!("{}/{p}", ks.spec.name));
                }
            }
        }
        left
    }

    /// Waits until [`Cluster::strong_groups_to_leave`] is empty.
    ///
    /// # Errors
    /// A message for the client naming the groups still here after
    /// `timeout`.
    pub async fn wait_strong_voters_moved(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self.strong_groups_to_leave();
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "ERR strong keyspace groups did not move their voters off this node within {}s: {}",
                    timeout.as_secs(),
                    pending.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_group_off_its_placement_moves_to_it() {
        let plan = plan_voters(
            "a",
            &v(&["a", "b", "c"]),
            0,
            true,
            &v(&["a", "b", "c"]),
            0,
            &v(&["b", "d", "a"]),
        );
        assert_eq!(
            plan,
            VoterPlan::Move {
                add: v(&["d"]),
                target: v(&["b", "d", "a"])
            }
        );
    }

    #[test]
    fn a_spec_behind_the_committed_membership_is_republished() {
        let plan = plan_voters(
            "a",
            &v(&["d", "a", "b"]),
            42,
            true,
            &v(&["a", "b", "c"]),
            0,
            &v(&["b", "d", "a"]),
        );
        assert_eq!(
            plan,
            VoterPlan::Publish {
                voters: v(&["b", "d", "a"]),
                epoch: 42
            }
        );
        assert_eq!(
            plan_voters("a", &v(&["a"]), 42, false, &v(&["b"]), 0, &v(&["a"])),
            VoterPlan::Nothing,
            "not before the membership is committed and uniform"
        );
    }

    #[test]
    fn a_placed_group_or_one_with_nowhere_to_go_stays() {
        let same = v(&["a", "b", "c"]);
        assert_eq!(
            plan_voters("a", &same, 7, true, &same, 7, &v(&["c", "a", "b"])),
            VoterPlan::Nothing
        );
        assert_eq!(
            plan_voters("a", &same, 0, true, &same, 0, &[]),
            VoterPlan::Nothing
        );
    }

    #[test]
    fn a_leader_off_the_placement_hands_over_to_a_voter_that_stays() {
        let voters = v(&["a", "b", "c"]);
        assert_eq!(
            plan_voters("a", &voters, 5, true, &voters, 5, &v(&["c", "d", "b"])),
            VoterPlan::HandOver { to: "c".into() }
        );
        assert_eq!(
            plan_voters("a", &voters, 5, false, &voters, 5, &v(&["c", "d", "b"])),
            VoterPlan::Move {
                add: v(&["d"]),
                target: v(&["c", "d", "b"])
            },
            "not while a membership change is in flight"
        );
        assert_eq!(
            plan_voters("a", &voters, 5, true, &voters, 5, &v(&["d", "e", "f"])),
            VoterPlan::Move {
                add: v(&["d", "e", "f"]),
                target: v(&["d", "e", "f"])
            },
            "no voter stays: the leader moves the whole group"
        );
    }
}
