//! Forwarding a command to another node (a strong keyspace's group
//! leader, see `cmd/strong.rs`) and bringing its reply back. The receiver
//! runs it with `forwarded` set, so it never forwards again.

use bytes::{Bytes, BytesMut};
use fulcrum_proto::ReplyDecoder;

use super::{CmdError, CmdResult, Ctx};
use crate::net::{Member, PeerRequest, PeerResponse};

/// Runs the command on `member` and returns its reply.
///
/// # Errors
/// `UNAVAILABLE` when the member cannot be reached, `TIMEOUT` when it does
/// not answer in time (a write's outcome is then unknown).
pub async fn run(ctx: &Ctx<'_>, member: &Member, args: Vec<Bytes>) -> CmdResult {
    let req = PeerRequest::Command {
        keyspace: ctx.conn.keyspace.clone(),
        args,
        read_level: ctx.conn.read_level,
        write_level: ctx.conn.write_level,
    };
    let cluster = ctx.cluster;
    match cluster
        .pool
        .call(&member.peer_addr, req, cluster.request_timeout)
        .await
    {
        Ok(PeerResponse::Reply(bytes)) => {
            let mut buf = BytesMut::from(&bytes[..]);
            match ReplyDecoder::new().decode(&mut buf) {
                Ok(Some(frame)) => Ok(frame),
                _ => Err(CmdError::Msg(format!(
                    "undecodable reply from {}",
                    member.node_id
                ))),
            }
        }
        Ok(other) => Err(CmdError::Msg(format!(
            "unexpected answer from {}: {other:?}",
            member.node_id
        ))),
        Err(e) if e.surely_not_applied() => Err(CmdError::Raw(format!(
            "UNAVAILABLE partition owner {} unreachable: {e}",
            member.node_id
        ))),
        Err(e) => Err(CmdError::Raw(format!(
            "TIMEOUT partition owner {} did not answer: {e}; outcome unknown",
            member.node_id
        ))),
    }
}
