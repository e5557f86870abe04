//! Member records and the rings built from them (see the parent module's
//! docs): the persisted member list, [`RingView`] (one ring and its node
//! ids) and [`Placement`] (the read ring, the pending ring, recent previous
//! read rings, members that left), with the pure rules built on them: the
//! replica sets a write must reach ([`Placement::write_sets`]) and when the
//! previous rings may be dropped ([`ring_agreed`]).

use std::collections::{BTreeMap, BTreeSet};
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
    /// Members that left after handing their data off, by their own word
    /// (their gossiped `state` is `left`; see [`Placement::with_departed`]).
    /// A node that left answers no replica reads, so a reader still using
    /// a previous ring reaches its level on that ring's other replicas:
    /// a write counts such a node as holding it on a previous ring's set
    /// (R + W > N on the ring still holds with the node's answer out of
    /// both sides). Only previous rings can name them (the read ring holds
    /// `up` and `leaving` members, the pending ring `up` and `joining`).
    pub departed: BTreeSet<String>,
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
        // A member stays departed while its record says it left (a node
        // that left and starts again comes back as a new `joining` run).
        let departed = old
            .map(|o| o.departed.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|id| {
                m.members
                    .get(id)
                    .is_some_and(|r| r.state == MemberState::Left)
            })
            .collect();
        Ok(Placement {
            read,
            pending,
            previous,
            departed,
            up,
        })
    }

    /// These rings with `left`: the members whose own gossip says they
    /// left, among those `m` records as `left`. `None` when that changes
    /// nothing.
    pub(super) fn with_departed(&self, m: &Membership, left: &[&str]) -> Option<Placement> {
        let departed: BTreeSet<String> = left
            .iter()
            .filter(|id| {
                m.members
                    .get(**id)
                    .is_some_and(|r| r.state == MemberState::Left)
            })
            .map(|id| id.to_string())
            .chain(self.departed.iter().cloned())
            .collect();
        (departed != self.departed).then(|| Placement {
            departed,
            ..self.clone()
        })
    }

    /// The replica sets a write of `key` (a keyspace of `replicas` copies)
    /// must reach its level on: the read ring's first, then the pending
    /// ring's and those of previous read rings replaced less than
    /// [`RING_GRACE`] before `now` (asked only when there are any), each
    /// once.
    pub fn write_sets(
        &self,
        replicas: u32,
        key: &[u8],
        now: impl FnOnce() -> Instant,
    ) -> Vec<Vec<NodeId>> {
        let first = self.read.replicas(replicas, key);
        let mut sets = vec![first];
        let now = (!self.previous.is_empty()).then(now);
        let others = self.pending.iter().chain(
            self.previous
                .iter()
                .filter(|(_, at)| now.is_some_and(|now| now.duration_since(*at) < RING_GRACE))
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

    /// The one node every ring in use consists of, if so: then it is
    /// every key's only replica in every write set (a single-node cluster).
    pub fn sole_node(&self) -> Option<&str> {
        let [only] = self.read.ids.as_slice() else {
            return None;
        };
        let same = |view: &RingView| view.ids == self.read.ids;
        (self.pending.as_ref().is_none_or(same) && self.previous.iter().all(|(v, _)| same(v)))
            .then_some(only.as_str())
    }

    /// Whether `node` left after handing its data off (see
    /// [`Placement::departed`]).
    pub fn is_departed(&self, node: &str) -> bool {
        self.departed.contains(node)
    }
}

/// What gossip says one other member reports about itself, for
/// [`ring_agreed`].
#[derive(Debug, Clone, Copy)]
pub struct RingReport<'a> {
    /// Gossip's failure detector holds it alive.
    pub alive: bool,
    /// Its own `state` key.
    pub state: Option<MemberState>,
    /// Its own `ring` key: the read ring it uses.
    pub ring: Option<&'a str>,
}

/// Whether no member may still read with a ring other than `mine` (this
/// node's read ring ids, as gossip carries them): every member gossip holds
/// alive reports reading with `mine`, except members that say they left
/// (a node turns `left` only after its data moved, with its read ring
/// rebuilt without itself, and it answers no replica reads from then on).
/// A dead member is skipped: it coordinates nothing.
pub fn ring_agreed<'a>(mine: &str, others: impl IntoIterator<Item = RingReport<'a>>) -> bool {
    others
        .into_iter()
        .filter(|r| r.alive && r.state != Some(MemberState::Left))
        .all(|r| r.ring == Some(mine))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Member;

    fn record(id: &str, state: MemberState) -> MemberRecord {
        MemberRecord {
            member: Member {
                node_id: id.to_string(),
                peer_addr: format!("{id}:1"),
                resp_addr: String::new(),
                http_addr: String::new(),
                dc: "dc1".to_string(),
                rack: "r1".to_string(),
                gossip_addr: String::new(),
            },
            state,
            generation: 1,
        }
    }

    fn membership(states: &[(&str, MemberState)]) -> Membership {
        Membership {
            epoch: 1,
            members: states
                .iter()
                .map(|(id, s)| (id.to_string(), record(id, *s)))
                .collect(),
        }
    }

    /// A key whose replicas (3 copies) on the ring of `ids` include `node`.
    fn key_on(ids: &[&str], node: &str) -> Vec<u8> {
        let m = membership(
            &ids.iter()
                .map(|id| (*id, MemberState::Up))
                .collect::<Vec<_>>(),
        );
        let view = RingView::build(&m, &[MemberState::Up]).expect("ring");
        (0..10_000)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| view.replicas(3, k).iter().any(|r| **r == *node))
            .expect("some key lands on the node")
    }

    use MemberState::{Joining, Leaving, Left, Up};

    /// n1..n4 up, then n4 leaving, then n4 left: the placements at each step.
    fn leave_of_n4() -> (Placement, Placement, Membership) {
        let ids = ["n1", "n2", "n3", "n4"];
        let all_up = membership(&ids.map(|id| (id, Up)));
        let start = Placement::build(&all_up, None, true).expect("placement");
        let leaving = membership(&[("n1", Up), ("n2", Up), ("n3", Up), ("n4", Leaving)]);
        let during = Placement::build(&leaving, Some(&start), true).expect("placement");
        let left = membership(&[("n1", Up), ("n2", Up), ("n3", Up), ("n4", Left)]);
        let after = Placement::build(&left, Some(&during), true).expect("placement");
        (during, after, left)
    }

    #[test]
    fn a_node_is_alone_only_while_every_ring_in_use_is_just_it() {
        let one = membership(&[("n1", Up)]);
        let alone = Placement::build(&one, None, true).expect("placement");
        assert_eq!(alone.sole_node(), Some("n1"));
        assert_eq!(
            alone.write_sets(3, b"k", Instant::now),
            vec![vec![NodeId::from("n1")]]
        );
        // A second node joining: the pending ring holds both.
        let joining = membership(&[("n1", Up), ("n2", Joining)]);
        let growing = Placement::build(&joining, Some(&alone), true).expect("placement");
        assert_eq!(growing.sole_node(), None);
        // Both up: n1's old ring is still a previous ring for a while.
        let both = membership(&[("n1", Up), ("n2", Up)]);
        let grown = Placement::build(&both, Some(&growing), true).expect("placement");
        assert_eq!(grown.sole_node(), None);
        // Back to n1 alone: the two-node ring is a previous ring now.
        let left = membership(&[("n1", Up), ("n2", Left)]);
        let shrunk = Placement::build(&left, Some(&grown), true).expect("placement");
        assert_eq!(shrunk.read.ids, vec!["n1".to_string()]);
        assert_eq!(
            shrunk.sole_node(),
            None,
            "writes still reach the previous ring"
        );
    }

    #[test]
    fn after_a_leave_writes_also_reach_the_previous_ring_until_the_grace_ends() {
        let (during, after, _) = leave_of_n4();
        let key = key_on(&["n1", "n2", "n3", "n4"], "n4");
        // Leaving: the read ring still holds n4, the pending ring not.
        let sets = during.write_sets(3, &key, Instant::now);
        assert_eq!(sets.len(), 2, "{sets:?}");
        assert!(sets[0].iter().any(|n| **n == *"n4"));
        assert!(!sets[1].iter().any(|n| **n == *"n4"));
        // Left: the previous read ring (with n4) is still written to...
        let now = Instant::now();
        let sets = after.write_sets(3, &key, || now);
        assert_eq!(sets.len(), 2, "{sets:?}");
        assert!(sets[1].iter().any(|n| **n == *"n4"));
        // ... for RING_GRACE at most.
        let sets = after.write_sets(3, &key, || now + RING_GRACE);
        assert_eq!(sets.len(), 1, "{sets:?}");
        assert!(!sets[0].iter().any(|n| **n == *"n4"));
    }

    #[test]
    fn a_member_is_departed_only_once_it_says_it_left_and_its_record_agrees() {
        let (during, after, left) = leave_of_n4();
        assert!(after.departed.is_empty(), "not before it says so");
        // Its gossip says `left` while this node's record still says
        // `leaving`: not yet.
        let leaving = membership(&[("n1", Up), ("n2", Up), ("n3", Up), ("n4", Leaving)]);
        assert!(during.with_departed(&leaving, &["n4"]).is_none());
        // Both agree: departed, and only the node that left.
        let p = after
            .with_departed(&left, &["n4", "n1"])
            .expect("n4 departed");
        assert!(p.is_departed("n4"));
        assert!(!p.is_departed("n1"));
        assert!(p.with_departed(&left, &["n4"]).is_none(), "no change");
        // Rebuilt rings keep it while its record says `left`...
        let again = Placement::build(&left, Some(&p), true).expect("placement");
        assert!(again.is_departed("n4"));
        // ... and drop it when it comes back (a new run joins).
        let back = membership(&[("n1", Up), ("n2", Up), ("n3", Up), ("n4", Joining)]);
        let rejoined = Placement::build(&back, Some(&again), true).expect("placement");
        assert!(!rejoined.is_departed("n4"));
    }

    #[test]
    fn only_previous_rings_can_name_a_departed_member() {
        let (_, after, left) = leave_of_n4();
        let p = after.with_departed(&left, &["n4"]).expect("n4 departed");
        assert!(!p.read.ids.iter().any(|id| id == "n4"));
        assert!(p.pending.iter().all(|r| !r.ids.iter().any(|id| id == "n4")));
        assert!(p
            .previous
            .iter()
            .any(|(r, _)| r.ids.iter().any(|id| id == "n4")));
    }

    fn report(alive: bool, state: MemberState, ring: Option<&str>) -> RingReport<'_> {
        RingReport {
            alive,
            state: Some(state),
            ring,
        }
    }

    #[test]
    fn the_ring_is_agreed_when_every_live_member_reports_reading_with_it() {
        let mine = "n1,n2,n3";
        assert!(ring_agreed(mine, [report(true, Up, Some(mine))]));
        assert!(!ring_agreed(mine, [report(true, Up, Some("n1,n2,n3,n4"))]));
        assert!(!ring_agreed(mine, [report(true, Joining, None)]));
        // A dead member coordinates nothing.
        assert!(ring_agreed(mine, [report(false, Up, Some("n1,n2,n3,n4"))]));
    }

    #[test]
    fn a_member_that_says_it_left_does_not_hold_the_previous_ring_up() {
        let mine = "n1,n2,n3";
        // Still alive for gossip, with the last ring it gossiped before it
        // turned `left`.
        let gone = report(true, Left, Some("n1,n2,n3,n4"));
        assert!(ring_agreed(mine, [report(true, Up, Some(mine)), gone]));
        // A member still leaving does hold it up: it reads with the old one.
        let leaving = report(true, Leaving, Some("n1,n2,n3,n4"));
        assert!(!ring_agreed(mine, [leaving]));
    }
}
