//! Carrying Raft RPCs over the node's own peer protocol.
//!
//! The node implements [`RaftTransport`]: deliver one serialized request to
//! a peer for a group and return the peer's serialized reply. This crate
//! implements openraft's network traits on top of it (`NetworkFactory`,
//! `Connection`), and the receiving side hands the bytes to
//! [`crate::Groups::handle_rpc`], which answers with the reply bytes.
//!
//! Wire format (format version 1, see the `codec` module): a request is an
//! `RpcRequest`, a reply an `RpcReply`; a snapshot travels whole in one
//! request. A refusal (group not open on the peer, Raft stopped, bad bytes)
//! is a reply too, so the transport only reports transport failures.
//!
//! Timeouts: each call is bounded by the larger of openraft's soft TTL for
//! it (¾ of the heartbeat interval for appends and votes, of
//! `install_snapshot_timeout` for snapshots) and
//! [`crate::GroupsConfig::rpc_timeout`], plus 1 s per 32 MiB of request, so
//! a large entry or a slow fsync on the follower does not time out on every
//! retry. openraft sends heartbeats on separate connections, so a slow
//! append does not delay them. The transport needs no timeout of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::RPCTypes;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::types::{GroupId, NodeId, PeerNode, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// Sends Raft RPCs to peers; implemented by the node over its peer
/// protocol (and by `testkit::MemNetwork` in tests).
///
/// The request and reply are opaque bytes: deliver `rpc` to `target`'s
/// [`crate::Groups::handle_rpc`] with `group`, and return what it returned.
/// The implementation may run requests to one peer concurrently; it need
/// not retry (openraft retries with backoff) and need not time out (the
/// caller does).
pub trait RaftTransport: Send + Sync + 'static {
    /// Delivers `rpc` for `group` to `target` and returns its reply.
    ///
    /// # Errors
    /// [`TransportError::Unreachable`] when the peer cannot be reached
    /// (openraft backs off), [`TransportError::Failed`] for other transport
    /// failures.
    fn send(
        &self,
        target: &PeerNode,
        group: &GroupId,
        rpc: Bytes,
    ) -> impl Future<Output = Result<Bytes, TransportError>> + Send;
}

/// A transport failure (not a Raft-level rejection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (connection refused, no route, down).
    #[error("peer {peer} is unreachable: {message}")]
    Unreachable { peer: String, message: String },
    /// The exchange failed midway (connection reset, bad frame).
    #[error("rpc to {peer} failed: {message}")]
    Failed { peer: String, message: String },
}

/// A Raft RPC as sent on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // Built once per RPC and serialized.
pub(crate) enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Bytes,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

/// The reply to an [`RpcRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcReply {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    Refused(Refusal),
}

/// Why a peer did not process a request.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("group {0} is not open on the peer")]
    NoSuchGroup(GroupId),
    #[error("raft stopped on the peer: {0}")]
    Stopped(String),
    #[error("the peer could not decode the request: {0}")]
    BadRequest(String),
}

/// Creates openraft's per-peer clients for one group.
pub(crate) struct NetworkFactory<T> {
    transport: Arc<T>,
    group: GroupId,
    local: NodeId,
    min_timeout: Duration,
}

impl<T> NetworkFactory<T> {
    pub(crate) fn new(
        transport: Arc<T>,
        group: GroupId,
        local: NodeId,
        min_timeout: Duration,
    ) -> Self {
        NetworkFactory {
            transport,
            group,
            local,
            min_timeout,
        }
    }
}

/// Bytes an RPC may carry per second of timeout beyond the minimum.
const BYTES_PER_SECOND: u64 = 32 << 20;

impl<T: RaftTransport> RaftNetworkFactory<TypeConfig> for NetworkFactory<T> {
    type Network = Connection<T>;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> Connection<T> {
        Connection {
            transport: self.transport.clone(),
            group: self.group.clone(),
            local: self.local,
            min_timeout: self.min_timeout,
            target,
            peer: node.clone(),
        }
    }
}

/// openraft's client for one peer of one group.
pub(crate) struct Connection<T> {
    transport: Arc<T>,
    group: GroupId,
    local: NodeId,
    min_timeout: Duration,
    target: NodeId,
    peer: PeerNode,
}

fn network_error(e: &(impl std::error::Error + 'static)) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(e))
}

impl<T: RaftTransport> Connection<T> {
    async fn call(
        &self,
        request: &RpcRequest,
        action: RPCTypes,
        ttl: Duration,
    ) -> Result<RpcReply, RPCError<TypeConfig>> {
        let bytes = codec::encode("raft rpc", request).map_err(|e| network_error(&e))?;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let ttl = ttl.max(self.min_timeout)
            + Duration::from_millis(size.saturating_mul(1000) / BYTES_PER_SECOND);
        let sent = self
            .transport
            .send(&self.peer, &self.group, Bytes::from(bytes));
        let reply = match tokio::time::timeout(ttl, sent).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.local,
                    target: self.target,
                    timeout: ttl,
                }))
            }
            Ok(Err(e @ TransportError::Unreachable { .. })) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Ok(Err(e)) => return Err(network_error(&e)),
            Ok(Ok(reply)) => reply,
        };
        match codec::decode::<RpcReply>("raft rpc reply", &reply) {
            Ok(RpcReply::Refused(refusal)) => {
                Err(RPCError::Unreachable(Unreachable::new(&refusal)))
            }
            Ok(reply) => Ok(reply),
            Err(e) => Err(network_error(&e)),
        }
    }
}

/// A reply of the wrong kind: the peer runs an incompatible build.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply to {0}")]
struct UnexpectedReply(&'static str);

impl<T: RaftTransport> RaftNetworkV2<TypeConfig> for Connection<T> {
    type SnapshotData = Bytes;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let request = RpcRequest::AppendEntries(rpc);
        match self
            .call(&request, RPCTypes::AppendEntries, option.soft_ttl())
            .await?
        {
            RpcReply::AppendEntries(r) => Ok(r),
            _ => Err(network_error(&UnexpectedReply("append entries"))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&RpcRequest::Vote(rpc), RPCTypes::Vote, option.soft_ttl())
            .await?
        {
            RpcReply::Vote(r) => Ok(r),
            _ => Err(network_error(&UnexpectedReply("vote"))),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&RpcRequest::PreVote(rpc), RPCTypes::Vote, option.soft_ttl())
            .await?
        {
            RpcReply::Vote(r) => Ok(r),
            _ => Err(network_error(&UnexpectedReply("pre-vote"))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = RpcRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let ttl = option.soft_ttl();
        let reply = tokio::select! {
            reply = self.call(&request, RPCTypes::InstallSnapshot, ttl) => reply?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match reply {
            RpcReply::Snapshot(r) => Ok(r),
            _ => Err(StreamingError::Network(NetworkError::new(
                &UnexpectedReply("snapshot"),
            ))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let request = RpcRequest::TransferLeader(req);
        match self
            .call(&request, RPCTypes::TransferLeader, option.soft_ttl())
            .await?
        {
            RpcReply::TransferLeader(r) => Ok(r),
            _ => Err(network_error(&UnexpectedReply("transfer leader"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::{EntryPayload, StoredMembership};

    use super::*;
    use crate::command::{Command, Request};
    use crate::types::{Entry, LogId};

    fn round_trip(request: RpcRequest) {
        let bytes = codec::encode("rpc", &request).unwrap();
        let back: RpcRequest = codec::decode("rpc", &bytes).unwrap();
        assert_eq!(format!("{request:?}"), format!("{back:?}"));
    }

    #[test]
    fn every_rpc_survives_the_wire() {
        let log_id = LogId::new(
            LeaderId {
                term: 3,
                node_id: 7,
            },
            42,
        );
        let vote = Vote::new_committed(3, 7);
        let entry = Entry {
            log_id,
            payload: EntryPayload::Normal(Request {
                now_ms: 9,
                command: Command::GetDel {
                    key: Bytes::from_static(b"k"),
                },
            }),
        };
        round_trip(RpcRequest::AppendEntries(AppendEntriesRequest {
            vote,
            prev_log_id: Some(log_id),
            leader_commit: Some(log_id),
            entries: vec![entry],
        }));
        round_trip(RpcRequest::Vote(VoteRequest::new(vote, Some(log_id))));
        round_trip(RpcRequest::PreVote(VoteRequest::new(vote, None)));
        let mut nodes = std::collections::BTreeMap::new();
        nodes.insert(7u64, PeerNode::new("n7", "h:1"));
        let membership = openraft::Membership::new_with_defaults(vec![[7u64].into()], []);
        round_trip(RpcRequest::Snapshot {
            vote,
            meta: SnapshotMeta {
                last_log_id: Some(log_id),
                last_membership: StoredMembership::new(Some(log_id), membership),
            },
            data: Bytes::from_static(b"\x01snapshot"),
        });
        round_trip(RpcRequest::TransferLeader(TransferLeaderRequest::new(
            vote,
            8,
            Some(log_id),
        )));

        let reply = RpcReply::Refused(Refusal::NoSuchGroup(GroupId::new("ks", 1)));
        let bytes = codec::encode("reply", &reply).unwrap();
        let back: RpcReply = codec::decode("reply", &bytes).unwrap();
        assert_eq!(format!("{reply:?}"), format!("{back:?}"));
    }
}
