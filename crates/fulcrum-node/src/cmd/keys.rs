//! Key commands: DEL EXISTS EXPIRE PEXPIRE TTL PTTL PERSIST TYPE SCAN
//! DBSIZE.

use bytes::Bytes;
use fulcrum_proto::Frame;

use super::args::{int, is, text};
use super::glob::glob_match;
use super::{CmdError, CmdResult, Ctx};
use crate::db::{wall_ms, Change};

pub async fn del(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    if ks.spec.mode == fulcrum_core::keyspace::Mode::Eventual {
        let mut n = 0;
        let mut seen = std::collections::HashSet::new();
        for key in a {
            if !seen.insert(key) {
                continue;
            }
            let existed = ctx
                .update(&ks, key, |cur| match cur.version {
                    Some(_) => (Change::Delete, true),
                    None => (Change::Keep, false),
                })
                .await?;
            n += i64::from(existed);
        }
        return Ok(Frame::Integer(n));
    }
    let keys: Vec<&[u8]> = a.iter().map(|k| &k[..]).collect();
    let (wrote, n) = ctx.db.update_many(&ks, &keys, |currents| {
        // A key named twice is deleted (and counted) once.
        let mut seen = std::collections::HashSet::new();
        let mut n = 0i64;
        let changes = keys
            .iter()
            .zip(currents)
            .map(|(k, cur)| {
                if cur.version.is_some() && seen.insert(*k) {
                    n += 1;
                    Change::Delete
                } else {
                    Change::Keep
                }
            })
            .collect();
        (changes, n)
    })?;
    ctx.conn.wrote |= wrote;
    Ok(Frame::Integer(n))
}

pub async fn exists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let mut n = 0;
    for key in a {
        if ctx.read_visible(&ks, key).await?.is_some() {
            n += 1;
        }
    }
    Ok(Frame::Integer(n))
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` (`unit_ms` = 1000) and PEXPIRE (1).
pub async fn expire(ctx: &mut Ctx<'_>, a: &[Bytes], unit_ms: i64) -> CmdResult {
    let command = if unit_ms == 1 { "pexpire" } else { "expire" };
    let amount = int(&a[1])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "GT") {
            gt = true;
        } else if is(opt, "LT") {
            lt = true;
        } else {
            return Err(CmdError::Msg(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::Msg(
            "NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if gt && lt {
        return Err(CmdError::Msg(
            "GT and LT options at the same time are not compatible".into(),
        ));
    }
    let now = wall_ms();
    let at = amount
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(now as i64))
        .ok_or(CmdError::InvalidExpire(command))?;
    let ks = ctx.keyspace()?;
    let applied = ctx
        .update(&ks, &a[0], |cur| {
            let Some(v) = &cur.version else {
                return (Change::Keep, false);
            };
            // No TTL counts as an infinite one for GT and LT.
            let current = v.expires_at_ms.map(|e| e as i64);
            let ok = (!nx || current.is_none())
                && (!xx || current.is_some())
                && (!gt || current.is_some_and(|c| at > c))
                && (!lt || current.is_none_or(|c| at < c));
            if !ok {
                return (Change::Keep, false);
            }
            if at <= cur.now_ms as i64 {
                return (Change::Delete, true);
            }
            (
                Change::Put {
                    value: v.value.clone(),
                    expires_at_ms: Some(at as u64),
                },
                true,
            )
        })
        .await?;
    Ok(Frame::Integer(i64::from(applied)))
}

/// TTL (`unit_ms` = 1000, rounded like Redis) and PTTL (1): -2 missing,
/// -1 no expiry.
pub async fn ttl(ctx: &mut Ctx<'_>, a: &[Bytes], unit_ms: u64) -> CmdResult {
    let ks = ctx.keyspace()?;
    let version = ctx.read_visible(&ks, &a[0]).await?;
    let now = wall_ms();
    Ok(Frame::Integer(match version {
        None => -2,
        Some(v) => match v.expires_at_ms {
            None => -1,
            Some(at) => {
                let left = at.saturating_sub(now);
                ((left + unit_ms / 2) / unit_ms) as i64
            }
        },
    }))
}

pub async fn persist(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let removed = ctx
        .update(&ks, &a[0], |cur| match &cur.version {
            Some(v) if v.expires_at_ms.is_some() => (
                Change::Put {
                    value: v.value.clone(),
                    expires_at_ms: None,
                },
                true,
            ),
            _ => (Change::Keep, false),
        })
        .await?;
    Ok(Frame::Integer(i64::from(removed)))
}

pub async fn type_of(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let found = ctx.read_visible(&ks, &a[0]).await?.is_some();
    Ok(Frame::Simple(
        if found { "string" } else { "none" }.to_string(),
    ))
}

pub fn dbsize(ctx: &mut Ctx<'_>) -> CmdResult {
    let ks = ctx.keyspace()?;
    Ok(Frame::Integer(ctx.db.count_keys(&ks)? as i64))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`. Cursors are numbers
/// this connection handed out, each standing for the last key it returned;
/// `0` starts and ends an iteration. Keys present for the whole iteration
/// are returned exactly once (the scan walks the keyspace in key order).
pub fn scan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let cursor: u64 = text(&a[0])?
        .parse()
        .map_err(|_| CmdError::Msg("invalid cursor".into()))?;
    let mut pattern: Option<Bytes> = None;
    let mut count = 10usize;
    let mut type_filter: Option<Bytes> = None;
    let mut i = 1;
    while i < a.len() {
        let Some(arg) = a.get(i + 1) else {
            return Err(CmdError::Syntax);
        };
        if is(&a[i], "MATCH") {
            pattern = Some(arg.clone());
        } else if is(&a[i], "COUNT") {
            let n = int(arg)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = (n as usize).min(100_000);
        } else if is(&a[i], "TYPE") {
            type_filter = Some(arg.clone());
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let after = match cursor {
        0 => None,
        c => Some(ctx.conn.cursor(c).ok_or_else(|| {
            CmdError::Msg("invalid cursor (unknown or expired on this connection)".into())
        })?),
    };
    let ks = ctx.keyspace()?;
    let (keys, last) = ctx.db.scan_keys(&ks, after.as_deref(), count)?;
    let next = match last {
        // Fewer rows than asked: the keyspace is exhausted.
        Some(k) if keys.len() == count || ctx.db.scan_keys(&ks, Some(&k), 1)?.1.is_some() => {
            ctx.conn.save_cursor(k)
        }
        _ => 0,
    };
    let wanted_type = type_filter.map(|t| is(&t, "string"));
    let keys: Vec<Frame> = keys
        .into_iter()
        .filter(|k| pattern.as_ref().is_none_or(|p| glob_match(p, k)))
        .filter(|_| wanted_type.unwrap_or(true))
        .map(Frame::Bulk)
        .collect();
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(keys),
    ]))
}
