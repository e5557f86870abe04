//! String commands: GET SET GETSET GETDEL MGET MSET.

use bytes::Bytes;
use fulcrum_proto::Frame;

use super::args::{int, is};
use super::{CmdError, CmdResult, Ctx};
use crate::db::{wall_ms, Change};

pub(super) fn value_frame(v: Option<Bytes>) -> Frame {
    v.map_or(Frame::Null, Frame::Bulk)
}

pub async fn get(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let v = ctx.read_visible(&ks, &a[0]).await?;
    Ok(value_frame(v.map(|v| v.value)))
}

/// When SET writes, relative to the current value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    Always,
    /// NX: only if the key does not exist.
    Missing,
    /// XX: only if it exists.
    Exists,
    /// IFEQ: only if the current value equals this.
    Equals(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Expiry {
    /// No expiry option: the new value has no TTL.
    None,
    /// KEEPTTL.
    Keep,
    /// EX/PX/EXAT/PXAT resolved to an absolute time.
    At(u64),
}

pub(super) struct SetOptions {
    pub(super) condition: Condition,
    pub(super) expiry: Expiry,
    pub(super) get: bool,
}

pub(super) fn parse_set_options(opts: &[Bytes], now_ms: u64) -> Result<SetOptions, CmdError> {
    let mut o = SetOptions {
        condition: Condition::Always,
        expiry: Expiry::None,
        get: false,
    };
    let mut i = 0;
    let mut expiry_given = false;
    while i < opts.len() {
        let arg = &opts[i];
        let next = opts.get(i + 1);
        if is(arg, "NX") && o.condition == Condition::Always {
            o.condition = Condition::Missing;
        } else if is(arg, "XX") && o.condition == Condition::Always {
            o.condition = Condition::Exists;
        } else if is(arg, "IFEQ") && o.condition == Condition::Always && next.is_some() {
            o.condition = Condition::Equals(next.cloned().unwrap_or_default());
            i += 1;
        } else if is(arg, "GET") {
            o.get = true;
        } else if is(arg, "KEEPTTL") && !expiry_given {
            o.expiry = Expiry::Keep;
            expiry_given = true;
        } else if !expiry_given
            && (is(arg, "EX") || is(arg, "PX") || is(arg, "EXAT") || is(arg, "PXAT"))
        {
            let Some(n) = next else {
                return Err(CmdError::Syntax);
            };
            let n = int(n)?;
            if n <= 0 {
                return Err(CmdError::InvalidExpire("set"));
            }
            let n = n as u64;
            let at = if is(arg, "EX") {
                n.checked_mul(1000).and_then(|ms| ms.checked_add(now_ms))
            } else if is(arg, "PX") {
                n.checked_add(now_ms)
            } else if is(arg, "EXAT") {
                n.checked_mul(1000)
            } else {
                Some(n)
            };
            // Redis caps at what fits in a signed 64-bit millisecond count.
            match at {
                Some(at) if at <= i64::MAX as u64 => o.expiry = Expiry::At(at),
                _ => return Err(CmdError::InvalidExpire("set")),
            }
            expiry_given = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

/// `SET key value [NX|XX|IFEQ old] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]`
pub async fn set(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, value) = (&a[0], &a[1]);
    // Options need the time only for a relative expiry; most SETs have none.
    let now_ms = if a.len() > 2 { wall_ms() } else { 0 };
    let opts = parse_set_options(&a[2..], now_ms)?;
    let ks = if matches!(opts.condition, Condition::Equals(_)) {
        ctx.strong_keyspace("SET IFEQ")?
    } else {
        ctx.keyspace()?
    };
    if opts.condition == Condition::Always && !opts.get && opts.expiry != Expiry::Keep {
        // Blind write: no read needed.
        let change = match opts.expiry {
            Expiry::At(at) if at <= wall_ms() => Change::Delete,
            Expiry::At(at) => Change::Put {
                value: value.clone(),
                expires_at_ms: Some(at),
            },
            _ => Change::Put {
                value: value.clone(),
                expires_at_ms: None,
            },
        };
        ctx.put(&ks, key, change).await?;
        return Ok(Frame::ok());
    }
    let old = ctx
        .update(&ks, key, |cur| {
            let old = cur.version.as_ref();
            let proceed = match &opts.condition {
                Condition::Always => true,
                Condition::Missing => old.is_none(),
                Condition::Exists => old.is_some(),
                Condition::Equals(want) => old.is_some_and(|v| v.value == *want),
            };
            let old_value = old.map(|v| v.value.clone());
            if !proceed {
                return (Change::Keep, (false, old_value));
            }
            let expires_at_ms = match opts.expiry {
                Expiry::None => None,
                Expiry::Keep => old.and_then(|v| v.expires_at_ms),
                Expiry::At(at) => Some(at),
            };
            let change = if expires_at_ms.is_some_and(|at| at <= cur.now_ms) {
                // An absolute expiry in the past deletes the key, as in Redis.
                Change::Delete
            } else {
                Change::Put {
                    value: value.clone(),
                    expires_at_ms,
                }
            };
            (change, (true, old_value))
        })
        .await?;
    let (done, old_value) = old;
    Ok(if opts.get {
        value_frame(old_value)
    } else if done {
        Frame::ok()
    } else {
        Frame::Null
    })
}

pub async fn getset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let value = a[1].clone();
    let old = ctx
        .update(&ks, &a[0], |cur| {
            (
                Change::Put {
                    value,
                    expires_at_ms: None,
                },
                cur.version.as_ref().map(|v| v.value.clone()),
            )
        })
        .await?;
    Ok(value_frame(old))
}

pub async fn getdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let old = ctx
        .update(&ks, &a[0], |cur| match &cur.version {
            Some(v) => (Change::Delete, Some(v.value.clone())),
            None => (Change::Keep, None),
        })
        .await?;
    Ok(value_frame(old))
}

pub async fn mget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    let mut out = Vec::with_capacity(a.len());
    for key in a {
        out.push(value_frame(
            ctx.read_visible(&ks, key).await?.map(|v| v.value),
        ));
    }
    Ok(Frame::Array(out))
}

/// `MSET k v [k v ...]`: on a strong keyspace all pairs in one atomic
/// batch; on an eventual one each pair is its own write.
pub async fn mset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity("MSET"));
    }
    let ks = ctx.keyspace()?;
    if ks.spec.mode == fulcrum_core::keyspace::Mode::Eventual {
        for pair in a.chunks(2) {
            let change = Change::Put {
                value: pair[1].clone(),
                expires_at_ms: None,
            };
            ctx.put(&ks, &pair[0], change).await?;
        }
        return Ok(Frame::ok());
    }
    let keys: Vec<&[u8]> = a.chunks(2).map(|p| &p[0][..]).collect();
    let (wrote, ()) = ctx.db.update_many(&ks, &keys, |_| {
        let changes = a
            .chunks(2)
            .map(|p| Change::Put {
                value: p[1].clone(),
                expires_at_ms: None,
            })
            .collect();
        (changes, ())
    })?;
    ctx.conn.wrote |= wrote;
    Ok(Frame::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> Result<SetOptions, CmdError> {
        let v: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
        parse_set_options(&v, 1_000)
    }

    #[test]
    fn set_options_parse_like_redis() {
        assert_eq!(opts(&["EX", "10"]).unwrap().expiry, Expiry::At(11_000));
        assert_eq!(opts(&["px", "5"]).unwrap().expiry, Expiry::At(1_005));
        assert!(opts(&["NX", "GET"]).unwrap().get);
        assert!(matches!(opts(&["NX", "XX"]), Err(CmdError::Syntax)));
        assert!(matches!(
            opts(&["EX", "1", "PX", "1"]),
            Err(CmdError::Syntax)
        ));
        assert!(matches!(
            opts(&["EX", "0"]),
            Err(CmdError::InvalidExpire(_))
        ));
        assert!(matches!(opts(&["EX", "x"]), Err(CmdError::NotInteger)));
        assert!(matches!(opts(&["EX"]), Err(CmdError::Syntax)));
        assert!(matches!(opts(&["IFEQ", "a", "NX"]), Err(CmdError::Syntax)));
        assert!(matches!(opts(&["BOGUS"]), Err(CmdError::Syntax)));
        assert!(matches!(
            opts(&["EX", "9223372036854775807"]),
            Err(CmdError::InvalidExpire(_))
        ));
    }
}
