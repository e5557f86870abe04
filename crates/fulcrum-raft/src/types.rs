//! Identities and openraft's type configuration.
//!
//! - **Node ids.** openraft wants a totally ordered id per node; Fulcrum
//!   names nodes by strings (`node-id = "n1"`). [`node_id`] derives the
//!   Raft id from the name with 64-bit FNV-1a: stable across builds,
//!   platforms and restarts, and needs no id table to persist or agree on.
//!   Two names of one group that hash alike are refused when the group is
//!   opened ([`crate::RaftError::Config`]), so a collision (odds about
//!   n²/2⁶⁵) can never merge two voters silently.
//! - **Node info** ([`PeerNode`]) is the node's name and peer address; it is
//!   stored in the membership inside the Raft log, so a node learns where a
//!   leader is from the log itself.
//! - **Groups.** A [`GroupId`] is a keyspace name plus a partition number.
//!   Each group owns three storage tables (see [`GroupTables`]).

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::{Request, Response};
use crate::state_machine::StateMachine;

/// A node's id inside Raft: [`node_id`] of its name.
pub type NodeId = u64;

/// The Raft id of the node named `name`: 64-bit FNV-1a of its UTF-8 bytes.
///
/// Part of the on-disk and wire format: changing it re-identifies every
/// node.
pub fn node_id(name: &str) -> NodeId {
    fnv1a(name.as_bytes())
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// A voter of a group as Raft stores it: the node's name and the address
/// its peer protocol listens on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerNode {
    /// The node's configured id (`node-id`), e.g. `n1`.
    pub name: String,
    /// Where [`crate::RaftTransport::send`] reaches it, e.g. `10.0.0.1:7381`.
    pub addr: String,
}

impl PeerNode {
    /// A peer named `name` at `addr`.
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> Self {
        PeerNode {
            name: name.into(),
            addr: addr.into(),
        }
    }

    /// Its Raft id ([`node_id`] of the name).
    pub fn id(&self) -> NodeId {
        node_id(&self.name)
    }
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// One Raft group: a partition of a strong keyspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId {
    /// The keyspace's name.
    pub keyspace: String,
    /// The partition's number within the keyspace.
    pub partition: u32,
}

impl GroupId {
    /// Partition `partition` of `keyspace`.
    pub fn new(keyspace: impl Into<String>, partition: u32) -> Self {
        GroupId {
            keyspace: keyspace.into(),
            partition,
        }
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.keyspace, self.partition)
    }
}

/// The storage tables of one group.
///
/// Names are `raft.<keyspace>.<partition>.{log,meta,sm}`. The partition is
/// the last dot-separated part, so the mapping is injective even for
/// keyspace names with dots. When that would exceed the storage's table
/// name limit ([`fulcrum_storage::MAX_TABLE_NAME_LEN`]), the keyspace part
/// becomes `~` plus 16 hex digits of its FNV-1a hash (`~` never appears in a
/// keyspace name, so hashed and plain names cannot collide with each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTables {
    /// Log entries keyed by big-endian index.
    pub log: String,
    /// Vote, committed and purged log ids, applied state, current snapshot.
    pub meta: String,
    /// The state machine's keys and values.
    pub sm: String,
}

impl GroupTables {
    /// The tables of `group`.
    pub fn new(group: &GroupId) -> Self {
        const LONGEST_SUFFIX: usize = ".meta".len();
        let mut prefix = format!("raft.{}.{}", group.keyspace, group.partition);
        if prefix.len() + LONGEST_SUFFIX > fulcrum_storage::MAX_TABLE_NAME_LEN {
            prefix = format!(
                "raft.~{:016x}.{}",
                fnv1a(group.keyspace.as_bytes()),
                group.partition
            );
        }
        GroupTables {
            log: format!("{prefix}.log"),
            meta: format!("{prefix}.meta"),
            sm: format!("{prefix}.sm"),
        }
    }

    /// All three names.
    pub fn all(&self) -> [&str; 3] {
        [&self.log, &self.meta, &self.sm]
    }
}

openraft::declare_raft_types!(
    /// openraft's type configuration for Fulcrum's groups: log payloads are
    /// [`Request`]s, responses [`Response`]s, nodes [`PeerNode`]s with
    /// `u64` ids, on tokio with seedable randomness
    /// ([`crate::rt::FulcrumRuntime`]).
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = PeerNode,
        AsyncRuntime = crate::rt::FulcrumRuntime,
);

/// A log id (leader's term and node, index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A vote (term, candidate, committed flag).
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// One log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A membership with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// What a snapshot covers.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its meta and its data (see [`crate::state_machine`]).
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Bytes>;
/// One group's Raft handle.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;
/// openraft's view of a group (state, term, log positions, membership).
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(node_id(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(node_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(node_id("n1"), node_id("n2"));
        assert_eq!(PeerNode::new("n1", "x").id(), node_id("n1"));
    }

    #[test]
    fn table_names_fit_and_stay_distinct() {
        let t = GroupTables::new(&GroupId::new("inventory", 3));
        assert_eq!(t.log, "raft.inventory.3.log");
        assert_eq!(t.meta, "raft.inventory.3.meta");
        assert_eq!(t.sm, "raft.inventory.3.sm");

        let long = "k".repeat(64);
        let t = GroupTables::new(&GroupId::new(long.clone(), u32::MAX));
        for name in t.all() {
            assert!(name.len() <= fulcrum_storage::MAX_TABLE_NAME_LEN, "{name}");
            assert!(name.starts_with("raft.~"), "{name}");
        }
        let other = GroupTables::new(&GroupId::new(long, u32::MAX - 1));
        assert_ne!(t, other);
    }
}
