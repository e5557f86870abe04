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
