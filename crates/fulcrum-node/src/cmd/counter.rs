//! Commands that need a strong keyspace: the INCR/DECR family and GETREV.
//! On an eventual keyspace they answer `NOTSTRONG`: a read-modify-write
//! counter over leaderless replicas would lose increments.

use bytes::Bytes;
use fulcrum_proto::Frame;

use super::args::int;
use super::{CmdError, CmdResult, Ctx};
use crate::db::{wall_ms, Change};

pub async fn incr_by_arg(ctx: &mut Ctx<'_>, a: &[Bytes], sign: i64, name: &str) -> CmdResult {
    let delta = int(&a[1])?;
    let delta = if sign < 0 {
        delta.checked_neg().ok_or(CmdError::Overflow)?
    } else {
        delta
    };
    incr_by(ctx, &a[0], delta, name).await
}

pub async fn incr_by(ctx: &mut Ctx<'_>, key: &Bytes, delta: i64, name: &str) -> CmdResult {
    let ks = ctx.strong_keyspace(name)?;
    let (wrote, result) = ctx.db.update(&ks, key, |cur| {
        let (old, expires_at_ms) = match &cur.version {
            None => (0, None),
            Some(v) => match int(&v.value) {
                Ok(n) => (n, v.expires_at_ms),
                Err(e) => return (Change::Keep, Err(e)),
            },
        };
        match old.checked_add(delta) {
            None => (Change::Keep, Err(CmdError::Overflow)),
            Some(new) => (
                Change::Put {
                    value: Bytes::from(new.to_string()),
                    // INCR keeps the key's TTL, as in Redis.
                    expires_at_ms,
                },
                Ok(new),
            ),
        }
    })?;
    ctx.conn.wrote |= wrote;
    Ok(Frame::Integer(result?))
}

/// `GETREV key`: `[value, revision]`, or nil if the key does not exist. On
/// one node the revision is the hybrid-logical-clock timestamp of the
/// key's last write: unique and increasing with every write on the node.
pub fn getrev(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.strong_keyspace("GETREV")?;
    Ok(match ctx.db.get(&ks, &a[0], wall_ms())? {
        None => Frame::NullArray,
        Some(v) => Frame::Array(vec![
            Frame::Bulk(v.value),
            Frame::Integer(v.timestamp.0 as i64),
        ]),
    })
}
