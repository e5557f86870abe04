//! Keyspace schema: a named set of keys with its own place on the
//! consistency lever (mode, replica count, default levels, conflict rule).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::level::{Level, LevelError, Op};

/// Where a keyspace sits on the CAP / PACELC lever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Leaderless Dynamo-style replication (PA/EL).
    Eventual,
    /// Raft-replicated partitions (PC/EC).
    Strong,
}

/// How concurrent writes to one key in an eventual keyspace are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conflict {
    /// Keep every concurrent version as a sibling (dotted version vectors).
    Siblings,
    /// Keep the version with the highest timestamp.
    Lww,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Eventual => "eventual",
            Mode::Strong => "strong",
        })
    }
}

impl FromStr for Mode {
    type Err = KeyspaceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "eventual" => Ok(Mode::Eventual),
            "strong" => Ok(Mode::Strong),
            _ => Err(KeyspaceError::BadMode(s.to_string())),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conflict::Siblings => "siblings",
            Conflict::Lww => "lww",
        })
    }
}

impl FromStr for Conflict {
    type Err = KeyspaceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "siblings" => Ok(Conflict::Siblings),
            "lww" => Ok(Conflict::Lww),
            _ => Err(KeyspaceError::BadConflict(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyspaceError {
    #[error("invalid keyspace name '{0}': use 1-64 characters of A-Z a-z 0-9 _ -")]
    BadName(String),
    #[error("unknown mode '{0}': expected eventual or strong")]
    BadMode(String),
    #[error("unknown conflict rule '{0}': expected siblings or lww")]
    BadConflict(String),
    #[error("replicas must be between 1 and {max}, got {got}")]
    BadReplicas { got: u32, max: u32 },
    #[error("{0}")]
    Level(#[from] LevelError),
    #[error("CONFLICT is only meaningful for eventual keyspaces")]
    ConflictOnStrong,
}

/// The most replicas a keyspace may ask for.
pub const MAX_REPLICAS: u32 = 7;

/// Name of the keyspace every connection starts in; it always exists.
pub const DEFAULT_KEYSPACE: &str = "default";

/// The stored definition of one keyspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyspaceSpec {
    pub name: String,
    pub mode: Mode,
    /// Copies of each key. A cluster with fewer members places
    /// `min(replicas, members)` copies.
    pub replicas: u32,
    /// Default read level; connections may override it with CONSISTENCY.
    pub read: Level,
    /// Default write level.
    pub write: Level,
    pub conflict: Conflict,
    /// Strong keyspaces: the voters (node ids) of each Raft group, placed
    /// when the keyspace is created and republished by the group's leader
    /// after each membership change, so every node knows where each group
    /// lives. (No `skip_serializing_if`: peer messages use a
    /// non-self-describing encoding in which every field must be present.)
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    /// Per group, the Raft log index of the membership `groups` names (0:
    /// as placed at creation). Of two specs of one keyspace version, each
    /// group's voters come from the one with the higher epoch
    /// ([`KeyspaceSpec::merge_groups`]). Missing entries read as 0.
    #[serde(default)]
    pub group_epochs: Vec<u64>,
}

impl KeyspaceSpec {
    /// A keyspace of `mode` with the defaults a user gets when naming
    /// nothing else: 3 replicas, quorum (or linearizable) levels, siblings.
    pub fn new(name: impl Into<String>, mode: Mode) -> Self {
        KeyspaceSpec {
            name: name.into(),
            mode,
            replicas: 3,
            read: Level::default_for(mode),
            write: Level::default_for(mode),
            conflict: Conflict::Siblings,
            groups: Vec::new(),
            group_epochs: Vec::new(),
        }
    }

    /// The epoch of group `partition`'s voters (0 if never moved).
    pub fn group_epoch(&self, partition: usize) -> u64 {
        self.group_epochs.get(partition).copied().unwrap_or(0)
    }

    /// Sets group `partition`'s voters as of membership `epoch`.
    pub fn set_group(&mut self, partition: usize, voters: Vec<String>, epoch: u64) {
        if self.groups.len() <= partition {
            self.groups.resize(partition + 1, Vec::new());
        }
        if self.group_epochs.len() < self.groups.len() {
            self.group_epochs.resize(self.groups.len(), 0);
        }
        self.groups[partition] = voters;
        self.group_epochs[partition] = epoch;
    }

    /// Takes from `other` (the same keyspace version) every group whose
    /// epoch is higher than ours; returns whether anything changed. The
    /// merge is commutative, associative and idempotent per group, so
    /// nodes that hear the same publications in any order agree.
    pub fn merge_groups(&mut self, other: &KeyspaceSpec) -> bool {
        let mut changed = false;
        for (p, voters) in other.groups.iter().enumerate() {
            let theirs = other.group_epoch(p);
            if p >= self.groups.len() || theirs > self.group_epoch(p) {
                self.set_group(p, voters.clone(), theirs);
                changed = true;
            }
        }
        changed
    }

    /// The `default` keyspace: eventual, 3 replicas (capped by members),
    /// quorum reads and writes.
    pub fn default_keyspace() -> Self {
        Self::new(DEFAULT_KEYSPACE, Mode::Eventual)
    }

    /// Checks name, replica count and levels against each other.
    ///
    /// # Errors
    /// [`KeyspaceError`] naming the first field that does not fit.
    pub fn validate(&self) -> Result<(), KeyspaceError> {
        validate_name(&self.name)?;
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(KeyspaceError::BadReplicas {
                got: self.replicas,
                max: MAX_REPLICAS,
            });
        }
        self.read.validate(self.mode, Op::Read, self.replicas)?;
        self.write.validate(self.mode, Op::Write, self.replicas)?;
        Ok(())
    }
}

/// Keyspace names are 1-64 characters of `A-Z a-z 0-9 _ -`.
///
/// # Errors
/// [`KeyspaceError::BadName`].
pub fn validate_name(name: &str) -> Result<(), KeyspaceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KeyspaceError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keyspace_is_eventual_quorum() {
        let ks = KeyspaceSpec::default_keyspace();
        assert_eq!(ks.mode, Mode::Eventual);
        assert_eq!(ks.read, Level::Quorum);
        assert!(ks.validate().is_ok());
    }

    #[test]
    fn strong_keyspace_defaults_to_linearizable() {
        let ks = KeyspaceSpec::new("bank", Mode::Strong);
        assert_eq!(ks.read, Level::Linearizable);
        assert!(ks.validate().is_ok());
    }

    #[test]
    fn rejects_bad_names_and_replica_counts() {
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
        assert!(validate_name("users_2024-eu").is_ok());
        let mut ks = KeyspaceSpec::new("k", Mode::Eventual);
        ks.replicas = 0;
        assert!(ks.validate().is_err());
        ks.replicas = 8;
        assert!(ks.validate().is_err());
    }

    #[test]
    fn merging_groups_keeps_the_newest_voters_of_each_group() {
        let mut a = KeyspaceSpec::new("k", Mode::Strong);
        a.groups = vec![vec!["n1".into(), "n2".into()], vec!["n1".into()]];
        let mut b = a.clone();
        b.set_group(0, vec!["n2".into(), "n3".into()], 7);
        let mut c = a.clone();
        c.set_group(1, vec!["n3".into()], 4);
        c.set_group(0, vec!["n4".into()], 5);

        let mut ab_c = a.clone();
        assert!(ab_c.merge_groups(&b));
        assert!(ab_c.merge_groups(&c));
        let mut c_ba = c.clone();
        assert!(c_ba.merge_groups(&b));
        assert!(!c_ba.merge_groups(&a), "nothing newer in the original");
        assert_eq!(ab_c, c_ba, "order does not matter");
        assert_eq!(ab_c.groups[0], ["n2", "n3"]);
        assert_eq!(ab_c.group_epochs, [7, 4]);
        assert!(!ab_c.clone().merge_groups(&ab_c), "idempotent");
    }

    #[test]
    fn rejects_levels_that_do_not_fit_the_mode() {
        let mut ks = KeyspaceSpec::new("k", Mode::Strong);
        ks.read = Level::One;
        assert!(ks.validate().is_err());
    }
}
