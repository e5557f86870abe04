//! Causal commands of eventual keyspaces: VGET, VSET, VDEL. A client reads
//! every sibling with an opaque context, and writes back with that context
//! to supersede exactly the versions it saw (Riak-style).
//!
//! The context is a dotted-version-vector clock, base64url-encoded so it
//! can be copied from redis-cli.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use fulcrum_core::dvv::VersionVector;
use fulcrum_core::keyspace::Mode;
use fulcrum_proto::Frame;

use super::args::is;
use super::{CmdError, CmdResult, Ctx};
use crate::coord::context_of;
use crate::db::{wall_ms, Change};
use crate::replica::WriteContext;

fn eventual(
    ctx: &Ctx<'_>,
    command: &str,
) -> Result<std::sync::Arc<crate::catalog::Keyspace>, CmdError> {
    let ks = ctx.keyspace()?;
    if ks.spec.mode != Mode::Eventual {
        return Err(CmdError::Msg(format!(
            "{command} needs an eventual keyspace; '{}' is strong (use GETREV and SET … IFEQ)",
            ks.spec.name
        )));
    }
    Ok(ks)
}

fn encode_context(vv: &VersionVector) -> Bytes {
    Bytes::from(URL_SAFE_NO_PAD.encode(vv.encode()))
}

fn decode_context(text: &[u8]) -> Result<VersionVector, CmdError> {
    let raw = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CmdError::Msg("invalid CONTEXT: not a context returned by VGET".into()))?;
    VersionVector::decode(&raw).map_err(|e| CmdError::Msg(format!("invalid CONTEXT: {e}")))
}

/// Parses the optional `CONTEXT ctx` tail.
fn context_arg(rest: &[Bytes]) -> Result<Option<VersionVector>, CmdError> {
    match rest {
        [] => Ok(None),
        [word, ctx] if is(word, "CONTEXT") => Ok(Some(decode_context(ctx)?)),
        _ => Err(CmdError::Syntax),
    }
}

/// `VGET key` → `[context, [value, …]]`: every live sibling.
pub async fn vget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = eventual(ctx, "VGET")?;
    let merged = ctx.read_record(&ks, &a[0]).await?;
    let context = context_of(ks.spec.conflict, merged.as_ref());
    let now = wall_ms();
    let mut live: Vec<_> = merged
        .as_ref()
        .map(|r| r.live(now).cloned().collect())
        .unwrap_or_default();
    live.sort_by_key(|v| v.timestamp);
    Ok(Frame::Array(vec![
        Frame::Bulk(encode_context(&context)),
        Frame::Array(live.into_iter().map(|v| Frame::Bulk(v.value)).collect()),
    ]))
}

/// `VSET key value [CONTEXT ctx]`: supersedes the versions `ctx` saw;
/// without a context the value becomes a sibling of whatever is there.
pub async fn vset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = eventual(ctx, "VSET")?;
    let seen = context_arg(&a[2..])?.unwrap_or_default();
    let change = Change::Put {
        value: a[1].clone(),
        expires_at_ms: None,
    };
    ctx.apply(&ks, &a[0], WriteContext::Given(seen), change)
        .await?;
    Ok(Frame::ok())
}

/// `VDEL key [CONTEXT ctx]`: deletes the versions `ctx` saw (without a
/// context: what a read at the read level sees). 1 if a live value was
/// deleted, else 0.
pub async fn vdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = eventual(ctx, "VDEL")?;
    let given = context_arg(&a[1..])?;
    let merged = ctx.read_record(&ks, &a[0]).await?;
    let now = wall_ms();
    let live = merged
        .as_ref()
        .is_some_and(|r| r.live(now).next().is_some());
    let seen = given.unwrap_or_else(|| context_of(ks.spec.conflict, merged.as_ref()));
    if !live && seen.is_empty() {
        return Ok(Frame::Integer(0));
    }
    ctx.apply(&ks, &a[0], WriteContext::Given(seen), Change::Delete)
        .await?;
    Ok(Frame::Integer(i64::from(live)))
}
