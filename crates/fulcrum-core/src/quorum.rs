//! The quorum state machine of one coordinated request: feed it each
//! replica's outcome, and it says when the request is decided.
//!
//! Pure: the node crate sends the messages and feeds the replies in.
//! A request needs `needed` successes out of `total` replicas. It succeeds
//! as soon as `needed` replicas succeeded; it fails as soon as so many
//! replicas failed that `needed` can no longer be reached. Failures are of
//! two kinds, which decide the error a client sees:
//! - *unreachable* (connection refused, node known down): the replica
//!   surely did not apply the request → `UNAVAILABLE`;
//! - *timed out / unknown*: it may have applied it → `TIMEOUT`, outcome
//!   unknown for writes.

/// Why a replica did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaFailure {
    /// The replica certainly did not apply the request.
    Unreachable,
    /// The replica may or may not have applied it.
    Unknown,
}

/// Where a quorum request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not decided yet: wait for more replies.
    Pending,
    /// Enough replicas succeeded.
    Reached,
    /// Too many replicas failed. `unknown` says whether any failure left
    /// the outcome unknown (then the error is TIMEOUT, else UNAVAILABLE).
    Failed { reached: u32, unknown: bool },
}

#[derive(Debug, Clone)]
pub struct Quorum {
    needed: u32,
    total: u32,
    ok: u32,
    unreachable: u32,
    unknown: u32,
}

impl Quorum {
    /// A request needing `needed` of `total` replicas. `needed` above
    /// `total` fails at once (the caller reports UNAVAILABLE).
    pub fn new(needed: u32, total: u32) -> Quorum {
        Quorum {
            needed,
            total,
            ok: 0,
            unreachable: 0,
            unknown: 0,
        }
    }

    pub fn needed(&self) -> u32 {
        self.needed
    }

    /// Successes so far.
    pub fn reached(&self) -> u32 {
        self.ok
    }

    /// Replicas that have not answered yet.
    pub fn outstanding(&self) -> u32 {
        self.total - self.ok - self.unreachable - self.unknown
    }

    pub fn success(&mut self) -> Decision {
        self.ok += 1;
        self.decision()
    }

    pub fn failure(&mut self, why: ReplicaFailure) -> Decision {
        match why {
            ReplicaFailure::Unreachable => self.unreachable += 1,
            ReplicaFailure::Unknown => self.unknown += 1,
        }
        self.decision()
    }

    /// The deadline passed: every outstanding replica counts as unknown.
    pub fn deadline(&mut self) -> Decision {
        self.unknown += self.outstanding();
        self.decision()
    }

    pub fn decision(&self) -> Decision {
        if self.ok >= self.needed {
            Decision::Reached
        } else if self.ok + self.outstanding() < self.needed {
            Decision::Failed {
                reached: self.ok,
                unknown: self.unknown > 0,
            }
        } else {
            Decision::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_after_needed_successes() {
        let mut q = Quorum::new(2, 3);
        assert_eq!(q.success(), Decision::Pending);
        assert_eq!(q.success(), Decision::Reached);
    }

    #[test]
    fn fails_as_soon_as_quorum_is_impossible() {
        let mut q = Quorum::new(3, 3);
        assert_eq!(
            q.failure(ReplicaFailure::Unreachable),
            Decision::Failed {
                reached: 0,
                unknown: false
            }
        );
        let mut q = Quorum::new(2, 3);
        assert_eq!(q.failure(ReplicaFailure::Unreachable), Decision::Pending);
        assert_eq!(q.success(), Decision::Pending);
        assert_eq!(q.success(), Decision::Reached);
    }

    #[test]
    fn unknown_failures_make_the_outcome_unknown() {
        let mut q = Quorum::new(2, 3);
        q.success();
        q.failure(ReplicaFailure::Unreachable);
        assert_eq!(
            q.failure(ReplicaFailure::Unknown),
            Decision::Failed {
                reached: 1,
                unknown: true
            }
        );
    }

    #[test]
    fn deadline_turns_outstanding_into_unknown() {
        let mut q = Quorum::new(2, 3);
        q.success();
        assert_eq!(
            q.deadline(),
            Decision::Failed {
                reached: 1,
                unknown: true
            }
        );
    }

    #[test]
    fn more_needed_than_replicas_fails_immediately() {
        let q = Quorum::new(4, 3);
        assert_eq!(
            q.decision(),
            Decision::Failed {
                reached: 0,
                unknown: false
            }
        );
    }
}

/// The quorum of one request at any consistency level, datacenter-aware:
/// `LOCAL_QUORUM` counts only replicas in the coordinator's DC (a majority
/// of them), `EACH_QUORUM` needs a majority in every DC holding a replica,
/// every other level counts all replicas.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// (dc or `None` for "all replicas", quorum of that group).
    groups: Vec<(Option<String>, Quorum)>,
}

impl Tracker {
    /// `replica_dcs`: the DC of each replica of the key.
    pub fn new(level: crate::level::Level, replica_dcs: &[&str], local_dc: &str) -> Tracker {
        use crate::level::Level;
        let n = replica_dcs.len() as u32;
        let mut dcs: Vec<&str> = replica_dcs.to_vec();
        dcs.sort_unstable();
        dcs.dedup();
        let count = |dc: &str| replica_dcs.iter().filter(|d| **d == dc).count() as u32;
        let groups = match level {
            Level::LocalQuorum if count(local_dc) > 0 => {
                let k = count(local_dc);
                vec![(Some(local_dc.to_string()), Quorum::new(k / 2 + 1, k))]
            }
            Level::EachQuorum => dcs
                .iter()
                .map(|dc| {
                    let k = count(dc);
                    (Some((*dc).to_string()), Quorum::new(k / 2 + 1, k))
                })
                .collect(),
            other => vec![(None, Quorum::new(other.required(n), n))],
        };
        Tracker { groups }
    }

    fn groups_of<'a>(&'a mut self, dc: &'a str) -> impl Iterator<Item = &'a mut Quorum> + 'a {
        self.groups
            .iter_mut()
            .filter(move |(g, _)| g.as_deref().is_none_or(|g| g == dc))
            .map(|(_, q)| q)
    }

    pub fn success(&mut self, dc: &str) -> Decision {
        for q in self.groups_of(dc) {
            q.success();
        }
        self.decision()
    }

    pub fn failure(&mut self, dc: &str, why: ReplicaFailure) -> Decision {
        for q in self.groups_of(dc) {
            q.failure(why);
        }
        self.decision()
    }

    pub fn deadline(&mut self) -> Decision {
        for (_, q) in &mut self.groups {
            q.deadline();
        }
        self.decision()
    }

    /// Total successes needed (summed over groups), for messages.
    pub fn needed(&self) -> u32 {
        self.groups.iter().map(|(_, q)| q.needed()).sum()
    }

    /// Whether replicas that are up (by DC) could satisfy this request.
    pub fn possible(&self, up_dcs: &[&str]) -> bool {
        self.groups.iter().all(|(g, q)| {
            let up = up_dcs
                .iter()
                .filter(|d| g.as_deref().is_none_or(|g| g == **d))
                .count() as u32;
            up >= q.needed()
        })
    }

    /// Reached when every group reached; failed when any group failed.
    pub fn decision(&self) -> Decision {
        let mut reached = 0;
        let mut unknown = false;
        let mut failed = false;
        let mut pending = false;
        for (_, q) in &self.groups {
            reached += q.reached();
            match q.decision() {
                Decision::Reached => {}
                Decision::Pending => pending = true,
                Decision::Failed { unknown: u, .. } => {
                    failed = true;
                    unknown |= u;
                }
            }
        }
        if failed {
            Decision::Failed { reached, unknown }
        } else if pending {
            Decision::Pending
        } else {
            Decision::Reached
        }
    }
}

#[cfg(test)]
mod dc_tests {
    use super::*;
    use crate::level::Level;

    #[test]
    fn one_replica_reaches_a_level_exactly_when_it_requires_at_most_one_copy() {
        // The coordinator's single-node shortcut (`required(1) <= 1`)
        // must agree with a tracker over that one replica.
        let levels = [
            Level::One,
            Level::Two,
            Level::Three,
            Level::Quorum,
            Level::All,
            Level::LocalQuorum,
            Level::EachQuorum,
            Level::Any,
            Level::Count(1),
            Level::Count(2),
            Level::Linearizable,
            Level::Serializable,
        ];
        for level in levels {
            let mut t = Tracker::new(level, &["east"], "east");
            let reached = matches!(t.success("east"), Decision::Reached);
            assert_eq!(reached, level.required(1) <= 1, "{level:?}");
        }
    }

    #[test]
    fn local_quorum_counts_only_the_local_dc() {
        let dcs = ["east", "east", "west", "west"];
        let mut t = Tracker::new(Level::LocalQuorum, &dcs, "east");
        assert_eq!(t.success("west"), Decision::Pending);
        assert_eq!(t.success("west"), Decision::Pending);
        assert_eq!(t.success("east"), Decision::Pending);
        assert_eq!(t.success("east"), Decision::Reached);
    }

    #[test]
    fn each_quorum_needs_a_majority_everywhere() {
        let dcs = ["east", "east", "east", "west", "west", "west"];
        let mut t = Tracker::new(Level::EachQuorum, &dcs, "east");
        t.success("east");
        t.success("east");
        assert_eq!(t.decision(), Decision::Pending);
        t.success("west");
        assert_eq!(t.success("west"), Decision::Reached);
        let mut t = Tracker::new(Level::EachQuorum, &dcs, "east");
        t.failure("west", ReplicaFailure::Unreachable);
        assert!(matches!(
            t.failure("west", ReplicaFailure::Unreachable),
            Decision::Failed { .. }
        ));
    }

    #[test]
    fn plain_levels_count_every_replica() {
        let dcs = ["a", "b", "c"];
        let mut t = Tracker::new(Level::Quorum, &dcs, "a");
        t.success("b");
        assert_eq!(t.success("c"), Decision::Reached);
        assert!(Tracker::new(Level::All, &dcs, "a").possible(&["a", "b", "c"]));
        assert!(!Tracker::new(Level::All, &dcs, "a").possible(&["a", "b"]));
        assert!(Tracker::new(Level::LocalQuorum, &dcs, "a").possible(&["a"]));
    }
}
