//! `REPAIR [keyspace]`: runs one full anti-entropy pass now (every
//! partition this node shares with each live peer) and reports what it
//! compared and transferred.

use bytes::Bytes;
use fulcrum_core::keyspace::Mode;
use fulcrum_proto::Frame;

use super::args::text;
use super::{CmdError, CmdResult, Ctx};

fn bulk(s: impl ToString) -> Frame {
    Frame::Bulk(Bytes::from(s.to_string()))
}

pub async fn repair(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let keyspaces = match a {
        [] => ctx
            .db
            .catalog
            .list()
            .into_iter()
            .filter(|k| k.spec.mode == Mode::Eventual)
            .collect(),
        [name] => {
            let name = text(name)?;
            let ks = ctx
                .db
                .catalog
                .get(name)
                .ok_or_else(|| CmdError::NoKeyspace(name.to_string()))?;
            if ks.spec.mode != Mode::Eventual {
                return Err(CmdError::Msg(format!(
                    "REPAIR is for eventual keyspaces; '{name}' is strong (Raft keeps its replicas equal)"
                )));
            }
            vec![ks]
        }
        _ => return Err(CmdError::WrongArity("REPAIR")),
    };
    let mut out = Vec::new();
    for ks in keyspaces {
        let s = ctx.cluster.aae_pass(&ks).await;
        out.push((
            bulk(&ks.spec.name),
            Frame::Map(vec![
                (
                    bulk("partitions_compared"),
                    Frame::Integer(s.partitions_compared as i64),
                ),
                (
                    bulk("partitions_differing"),
                    Frame::Integer(s.partitions_differing as i64),
                ),
                (bulk("keys_pushed"), Frame::Integer(s.keys_pushed as i64)),
                (bulk("keys_pulled"), Frame::Integer(s.keys_pulled as i64)),
            ]),
        ));
    }
    Ok(Frame::Map(out))
}
