//! `CLUSTER LEAVE` / `CLUSTER REMOVE node`: membership admin (see
//! `stream.rs`).
//!
//! - `CLUSTER LEAVE` (sent to the node that should go): streams this node's
//!   partitions to their next owners, announces `left`, answers `+OK`, and
//!   the process stops.
//! - `CLUSTER REMOVE node` (sent to any member): takes a node that gossip
//!   says is dead out of the ring; `+OK` at once, the survivors then
//!   re-replicate its partitions in the background.

use bytes::Bytes;
use fulcrum_proto::Frame;

use super::args::{is, text};
use super::{CmdError, CmdResult, Ctx};

pub async fn cluster(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let Some((sub, rest)) = a.split_first() else {
        return Err(CmdError::WrongArity("CLUSTER"));
    };
    if is(sub, "LEAVE") {
        if !rest.is_empty() {
            return Err(CmdError::WrongArity("CLUSTER|LEAVE"));
        }
        ctx.cluster.leave().await.map_err(CmdError::Raw)?;
        // Stop once the reply had time to go out.
        let cluster = ctx.cluster.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let _ = cluster.stop.send(true);
        });
        Ok(Frame::ok())
    } else if is(sub, "REMOVE") {
        let [node] = rest else {
            return Err(CmdError::WrongArity("CLUSTER|REMOVE"));
        };
        ctx.cluster
            .remove(text(node)?)
            .await
            .map_err(CmdError::Raw)?;
        Ok(Frame::ok())
    } else {
        Err(CmdError::unknown_subcommand(sub, "CLUSTER LEAVE or REMOVE"))
    }
}
