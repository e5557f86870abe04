//! Forwarding commands on strong keyspaces to the node that serves the
//! key's partition (the first node of its preference list). Any node
//! accepts the command; the client never sees which node leads.
//!
//! Until strong partitions run Raft, that node applies the command alone;
//! forwarding already makes every command on a key serialize at one node.

use bytes::{Bytes, BytesMut};
use fulcrum_core::keyspace::Mode;
use fulcrum_proto::ReplyDecoder;

use super::table::Spec;
use super::{CmdError, CmdResult, Ctx};
use crate::net::{Member, PeerRequest, PeerResponse};

/// The member to forward this command to, if it is not this node.
///
/// # Errors
/// A multi-key command whose keys live on different nodes.
pub fn target(ctx: &Ctx<'_>, spec: &Spec, args: &[Bytes]) -> Result<Option<Member>, CmdError> {
    if spec.first_key == 0 || ctx.conn.forwarded || ctx.cluster.member_count() < 2 {
        return Ok(None);
    }
    let Some(ks) = ctx.db.catalog.get(&ctx.conn.keyspace) else {
        return Ok(None);
    };
    if ks.spec.mode != Mode::Strong {
        return Ok(None);
    }
    let mut owner: Option<String> = None;
    for (i, key) in args.iter().enumerate() {
        if !spec.is_key_position(i, args.len()) {
            continue;
        }
        let replicas = ctx.cluster.replicas(ks.spec.replicas, key);
        let Some(primary) = replicas.first() else {
            continue;
        };
        match &owner {
            None => owner = Some(primary.to_string()),
            Some(o) if **o == **primary => {}
            Some(_) => {
                return Err(CmdError::Raw(
                    "CROSSSLOT keys of one command on a strong keyspace must live in one partition"
                        .into(),
                ))
            }
        }
    }
    match owner {
        Some(o) if o != ctx.cluster.me.node_id => Ok(ctx.cluster.member(&o)),
        _ => Ok(None),
    }
}

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
