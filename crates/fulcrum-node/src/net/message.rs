//! Peer protocol messages.
//!
//! Wire format: each frame is a 4-byte big-endian length, then one byte of
//! protocol version ([`PROTOCOL_VERSION`]), then a postcard-encoded
//! [`Envelope`]. A request and its response share the envelope `id`, so
//! many requests can be in flight on one connection and answered out of
//! order.

use bytes::{BufMut, Bytes, BytesMut};
use fulcrum_core::keyspace::KeyspaceSpec;
use fulcrum_core::level::Level;
use serde::{Deserialize, Serialize};

use crate::replica::NewVersion;

/// Bumped on any incompatible change; a peer speaking another version is
/// refused with a clear error.
pub const PROTOCOL_VERSION: u8 = 3;

/// Largest frame accepted from a peer (a 16 MiB value plus headers and
/// sibling metadata).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// One cluster member as every node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: String,
    pub peer_addr: String,
    pub resp_addr: String,
    pub http_addr: String,
    pub dc: String,
    pub rack: String,
    /// Where this node's gossip (chitchat, UDP) listens; empty when the
    /// node does not gossip (inside a simulation).
    #[serde(default)]
    pub gossip_addr: String,
}

/// The part a node plays in the ring, as it announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Pulling the data of the partitions it gains; not yet read from.
    Joining,
    Up,
    /// Pushing its data to the partitions' next owners; still read from.
    Leaving,
    /// Gone from the ring (left, or removed while dead).
    Left,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Up => "up",
            MemberState::Leaving => "leaving",
            MemberState::Left => "left",
        }
    }

    pub fn parse(s: &str) -> Option<MemberState> {
        Some(match s {
            "joining" => MemberState::Joining,
            "up" => MemberState::Up,
            "leaving" => MemberState::Leaving,
            "left" => MemberState::Left,
            _ => return None,
        })
    }
}

/// A member with its announced state. `generation` is the start time (ms)
/// of the process that announced it: of two records of a node, the one
/// with the higher `(generation, state)` wins, so states only move forward
/// within one run and a restarted node supersedes its old run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member: Member,
    pub state: MemberState,
    pub generation: u64,
}

impl MemberRecord {
    /// Whether `self` supersedes `other` (a record of the same node).
    pub fn supersedes(&self, other: &MemberRecord) -> bool {
        (self.generation, self.state) > (other.generation, other.state)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerRequest {
    Ping,
    /// A node asks to join; the receiver adds it and tells everyone.
    Join {
        member: MemberRecord,
    },
    /// The sender's member list; the receiver merges it (newest record of
    /// each node wins).
    Members {
        epoch: u64,
        members: Vec<MemberRecord>,
    },
    /// `version`: the schema version of the change (see `schema.rs`).
    CreateKeyspace {
        spec: KeyspaceSpec,
        version: u64,
    },
    DropKeyspace {
        name: String,
        version: u64,
    },
    /// Replica read: the stored record of `key`, if any.
    Read {
        keyspace: String,
        key: Bytes,
    },
    /// Replica write: merge `record` into the stored one.
    Put {
        keyspace: String,
        key: Bytes,
        record: Bytes,
    },
    /// Remove `key` if its record is still exactly `record` (an agreed
    /// tombstone past its grace period).
    Purge {
        keyspace: String,
        key: Bytes,
        record: Bytes,
    },
    /// Keep `record` as a hint for `target`, which is down.
    Hint {
        target: String,
        keyspace: String,
        key: Bytes,
        record: Bytes,
    },
    /// Anti-entropy: the Merkle roots of these partitions.
    AaeRoots {
        keyspace: String,
        partitions: Vec<u32>,
    },
    /// Anti-entropy: the segment hashes of one partition.
    AaeSegments {
        keyspace: String,
        partition: u32,
    },
    /// Anti-entropy: (key, digest) of the keys in these segments.
    AaeKeys {
        keyspace: String,
        partition: u32,
        segments: Vec<u8>,
    },
    /// Open Raft group (`keyspace`, `partition`) without initializing it:
    /// its leader is about to add this node as a learner (`strong_move.rs`).
    JoinGroup {
        keyspace: String,
        partition: u32,
    },
    /// A Raft RPC for group (`keyspace`, `partition`); opaque bytes.
    Raft {
        keyspace: String,
        partition: u32,
        rpc: Bytes,
    },
    /// Coordinate a write at this replica (the sender is not one).
    /// `context`: an encoded version vector, or `None` for "what the
    /// coordinating replica has".
    Write {
        keyspace: String,
        key: Bytes,
        context: Option<Bytes>,
        version: NewVersion,
        level: Level,
    },
    /// Run a client command on this node (the receiver is the partition's
    /// coordinator for it). The reply is the RESP-encoded reply frame.
    Command {
        keyspace: String,
        args: Vec<Bytes>,
        read_level: Option<Level>,
        write_level: Option<Level>,
    },
    /// Streaming: up to `limit` records of `partition` of `keyspace`, in
    /// anti-entropy index order, after index position `after`.
    StreamRecords {
        keyspace: String,
        partition: u32,
        after: Option<Bytes>,
        limit: u32,
    },
    /// Streaming: merge every (key, record) into the stored ones.
    PutBatch {
        keyspace: String,
        records: Vec<(Bytes, Bytes)>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerResponse {
    Pong {
        node_id: String,
    },
    Joined {
        epoch: u64,
        members: Vec<MemberRecord>,
        keyspaces: Vec<KeyspaceSpec>,
    },
    /// A page of streamed records; `next` is the position to continue
    /// after, `None` at the partition's end.
    Records {
        records: Vec<(Bytes, Bytes)>,
        next: Option<Bytes>,
    },
    Done,
    Record(Option<Bytes>),
    Hashes(Vec<u64>),
    Raft(Bytes),
    Digests(Vec<(Bytes, u64)>),
    /// A RESP-encoded reply.
    Reply(Bytes),
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body {
    Request(PeerRequest),
    Response(PeerResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: u64,
    pub body: Body,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("peer speaks protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    Version(u8),
    #[error("empty frame")]
    Empty,
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
}

impl Envelope {
    /// Encodes version byte + body (the length prefix is the codec's).
    ///
    /// # Errors
    /// Serialization failure (not expected for these types).
    pub fn encode(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::with_capacity(64);
        out.put_u8(PROTOCOL_VERSION);
        let body = postcard::to_stdvec(self)?;
        out.put_slice(&body);
        Ok(out.freeze())
    }

    /// # Errors
    /// Wrong protocol version or undecodable bytes.
    pub fn decode(frame: &[u8]) -> Result<Envelope, WireError> {
        let (&version, rest) = frame.split_first().ok_or(WireError::Empty)?;
        if version != PROTOCOL_VERSION {
            return Err(WireError::Version(version));
        }
        Ok(postcard::from_bytes(rest)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let e = Envelope {
            id: 7,
            body: Body::Request(PeerRequest::Put {
                keyspace: "default".into(),
                key: Bytes::from_static(b"k"),
                record: Bytes::from_static(b"\x01\x02"),
            }),
        };
        let bytes = e.encode().unwrap();
        let back = Envelope::decode(&bytes).unwrap();
        assert_eq!(back.id, 7);
        assert!(matches!(back.body, Body::Request(PeerRequest::Put { .. })));
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        assert!(matches!(
            Envelope::decode(&[9, 1, 2]),
            Err(WireError::Version(9))
        ));
        assert!(Envelope::decode(&[]).is_err());
        assert!(Envelope::decode(&[PROTOCOL_VERSION, 0xFF, 0xFF, 0xFF]).is_err());
    }
}
