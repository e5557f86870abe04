//! Member records and the rings built from them (see the parent module's
//! docs): the persisted member list, [`RingView`] (one ring and its node
//! ids) and [`Placement`] (the read ring, the pending ring, recent previous
//! read rings).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::ring::{NodeId, Ring, RingNode};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ClusterError;
use crate::catalog::META_TABLE;
use crate::db::Db;
use crate::net::{Member, MemberRecord, MemberState};

pub(super) const MEMBERS_KEY: &[u8] = b"cluster/members";

/// How long writes still also reach their level on the previous read ring
/// after this node saw the read ring change, at most: the previous ring is
/// dropped as soon as every live member gossips the same read ring as this
/// node (usually within a few gossip rounds).
pub const RING_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Membership {
    pub(super) epoch: u64,
    pub(super) members: BTreeMap<String, MemberRecord>,
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
    pub(super) fn build(m: &Membership, states: &[MemberState]) -> Result<RingView, ClusterError> {
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
    /// The ring of `up` members only, where strong keyspaces' voters
    /// belong (`strong_move.rs`); `None` while nobody is up. Usually the
    /// read ring itself.
    pub up: Option<RingView>,
}

impl Placement {
    /// The read ring's node ids, as gossip carries them (`ring` key).
    pub fn read_ids(&self) -> String {
        self.read.ids.join(",")
    }

    /// `track_previous`: keep replaced read rings for [`RING_GRACE`] (with
    /// gossip; a simulation's nodes all start `up`, rings only grow at its
    /// start, and it keeps the plain behaviour).
    pub(super) fn build(
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
        let up_ids: Vec<&String> = m
            .members
            .values()
            .filter(|r| r.state == Up)
            .map(|r| &r.member.node_id)
            .collect();
        let same = |v: &RingView| v.ids.iter().eq(up_ids.iter().copied());
        let up = if up_ids.is_empty() {
            None
        } else if same(&read) {
            Some(read.clone())
        } else if let Some(p) = pending.as_ref().filter(|p| same(p)) {
            Some(p.clone())
        } else {
            Some(RingView::build(m, &[Up])?)
        };
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
            up,
        })
    }
}

pub(super) fn load_membership(db: &Db) -> Membership {
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
