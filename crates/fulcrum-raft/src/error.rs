//! Errors of the public API ([`RaftError`]) and conversions from openraft's
//! and the storage's errors.

use std::io;
use std::time::Duration;

use fulcrum_storage::StorageError;

use crate::codec::CodecError;
use crate::command::CommandError;
use crate::types::{GroupId, NodeId, PeerNode};

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the group's leader; forward to `leader_addr` if
    /// known (a write was not appended, so retrying elsewhere is safe).
    #[error("group {group}: not the leader; the leader is {}", leader_text(.leader_name, .leader_addr))]
    NotLeader {
        group: GroupId,
        /// The leader's Raft id, if this node knows one.
        leader_id: Option<NodeId>,
        /// The leader's node name, if known.
        leader_name: Option<String>,
        /// The leader's peer address, if known.
        leader_addr: Option<String>,
    },
    /// The group is not open on this node.
    #[error("group {0} is not open on this node")]
    NoSuchGroup(GroupId),
    /// The operation did not finish in time. For a write, the outcome is
    /// unknown: the entry may still commit.
    #[error("group {group}: {op} timed out after {after:?}")]
    Timeout {
        group: GroupId,
        op: &'static str,
        after: Duration,
    },
    /// A linearizable read could not confirm leadership with a quorum (this
    /// node may be partitioned away, or a new leader may exist).
    #[error("group {group}: leadership not confirmed by a quorum: {message}")]
    NoQuorum { group: GroupId, message: String },
    /// The write's entry was appended but then discarded by a leader
    /// change; it may or may not have committed elsewhere.
    #[error(
        "group {group}: write outcome unknown (its entry was replaced during a leader change)"
    )]
    OutcomeUnknown {
        group: GroupId,
        /// The new leader, if known.
        leader: Option<PeerNode>,
    },
    /// The command breaks a size limit; nothing was proposed.
    #[error("invalid command: {0}")]
    InvalidCommand(#[from] CommandError),
    /// The storage failed.
    #[error("storage failed during {op}: {source}")]
    Storage {
        op: &'static str,
        #[source]
        source: StorageError,
    },
    /// Stored or received bytes could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The group's Raft task stopped (shut down, or a storage failure,
    /// which is not retried).
    #[error("group {group}: raft stopped: {message}")]
    Fatal { group: GroupId, message: String },
    /// The arguments or configuration are invalid.
    #[error("invalid raft configuration: {0}")]
    Config(String),
}

fn leader_text(name: &Option<String>, addr: &Option<String>) -> String {
    match (name, addr) {
        (Some(n), Some(a)) => format!("{n} at {a}"),
        (Some(n), None) => n.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => "unknown".to_string(),
    }
}

impl RaftError {
    pub(crate) fn storage(op: &'static str) -> impl FnOnce(StorageError) -> RaftError {
        move |source| RaftError::Storage { op, source }
    }

    pub(crate) fn not_leader(group: &GroupId, leader: Option<(NodeId, Option<PeerNode>)>) -> Self {
        let (leader_id, node) = match leader {
            Some((id, node)) => (Some(id), node),
            None => (None, None),
        };
        RaftError::NotLeader {
            group: group.clone(),
            leader_id,
            leader_name: node.as_ref().map(|n| n.name.clone()),
            leader_addr: node.map(|n| n.addr),
        }
    }

    pub(crate) fn fatal(group: &GroupId, e: impl std::fmt::Display) -> Self {
        RaftError::Fatal {
            group: group.clone(),
            message: e.to_string(),
        }
    }
}

/// A storage failure as the `io::Error` openraft's storage traits return.
pub(crate) fn storage_io(op: &'static str) -> impl FnOnce(StorageError) -> io::Error {
    move |e| io::Error::other(format!("storage failed during {op}: {e}"))
}
