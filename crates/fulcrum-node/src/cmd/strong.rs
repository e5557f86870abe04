//! Commands on strong keyspaces, served by Raft groups (`crate::strong`).
//!
//! Routing: a command whose keys all fall in one group runs on that
//! group's leader. Any node accepts it: a node that does not lead the
//! group forwards the command to the leader it knows (or to a voter), and
//! the receiver, if it has lost leadership meanwhile, answers
//! `NOTLEADER <node>` so the origin retries there — until the request
//! deadline. A command over keys of several groups runs as one command per
//! key (MGET, EXISTS, DEL, MSET), each linearizable on its own.
//!
//! Writes are proposed to the group's log; reads at `LINEARIZABLE` (the
//! default) first confirm leadership with a quorum (read index); at
//! `SERIALIZABLE` any voter answers from its applied state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::level::Level;
use fulcrum_proto::Frame;
use fulcrum_raft::{
    Command, CommandError, ExpireAt, GroupId, RaftError, Response, StoredValue, Ttl,
};
use tokio::time::Instant;

use super::args::int;
use super::strings::{parse_set_options, value_frame, Condition, Expiry};
use super::table::{Handler as H, Spec};
use super::{CmdError, CmdResult, Ctx};
use crate::catalog::Keyspace;
use crate::db::wall_ms;
use crate::strong::group_of;

/// Whether `handler` reads or writes keys (and so goes through Raft).
pub fn is_data(h: H) -> bool {
    matches!(
        h,
        H::Get
            | H::Set
            | H::GetSet
            | H::GetDel
            | H::MGet
            | H::MSet
            | H::Del
            | H::Exists
            | H::Expire
            | H::PExpire
            | H::Ttl
            | H::PTtl
            | H::Persist
            | H::Type
            | H::Incr
            | H::Decr
            | H::IncrBy
            | H::DecrBy
            | H::GetRev
            | H::Scan
            | H::DbSize
    )
}

/// Why a local attempt did not produce a reply.
enum Miss {
    /// Another node leads (or may lead) the group; retry there.
    NotLeader(Option<String>),
    /// Transient (no leader yet, quorum not confirmed): retry shortly.
    Retry(String),
    Fail(CmdError),
}

impl From<CmdError> for Miss {
    fn from(e: CmdError) -> Self {
        Miss::Fail(e)
    }
}

fn from_raft(e: RaftError) -> Miss {
    match e {
        RaftError::NotLeader { leader_name, .. } => Miss::NotLeader(leader_name),
        RaftError::NoQuorum { .. } | RaftError::NoSuchGroup(_) => Miss::Retry(e.to_string()),
        RaftError::Timeout { .. } | RaftError::OutcomeUnknown { .. } => {
            Miss::Fail(CmdError::Raw(format!("TIMEOUT {e}; outcome unknown")))
        }
        RaftError::InvalidCommand(CommandError::TooLarge { what, len, max }) => {
            Miss::Fail(CmdError::Raw(format!(
                "TOOLARGE {what} of {len} bytes exceeds the limit of {max} bytes"
            )))
        }
        other => Miss::Fail(CmdError::Msg(other.to_string())),
    }
}

type BoxedReply<'a> = Pin<Box<dyn Future<Output = CmdResult> + Send + 'a>>;

/// Runs a data command on a strong keyspace.
pub fn route<'a>(ctx: &'a mut Ctx<'_>, spec: &'static Spec, args: &'a [Bytes]) -> BoxedReply<'a> {
    Box::pin(async move {
        let ks = ctx.keyspace()?;
        if spec.handler == H::DbSize {
            return Ok(Frame::Integer(
                crate::strong::count_keys(ctx.cluster, &ks.spec.name) as i64,
            ));
        }
        if spec.handler == H::Scan {
            return scan(ctx, &ks, &args[1..]);
        }
        let keys: Vec<&Bytes> = (1..args.len())
            .filter(|i| spec.is_key_position(*i, args.len()))
            .map(|i| &args[i])
            .collect();
        let Some(first) = keys.first() else {
            return Err(CmdError::Syntax);
        };
        let gid = group_of(&ks.spec.name, first);
        if keys.iter().any(|k| group_of(&ks.spec.name, k) != gid) {
            return split(ctx, spec, args).await;
        }
        one_group(ctx, &ks, spec, args, gid).await
    })
}

/// Runs a multi-key command as one command per key.
async fn split(ctx: &mut Ctx<'_>, spec: &'static Spec, args: &[Bytes]) -> CmdResult {
    let sub = |name: &str, rest: &[Bytes]| {
        let mut v = vec![Bytes::from(name.to_string())];
        v.extend(rest.iter().cloned());
        v
    };
    let get = super::table::lookup(b"GET").ok_or(CmdError::Syntax)?;
    let del = super::table::lookup(b"DEL").ok_or(CmdError::Syntax)?;
    let exists = super::table::lookup(b"EXISTS").ok_or(CmdError::Syntax)?;
    match spec.handler {
        H::MGet => {
            let mut out = Vec::new();
            for k in &args[1..] {
                out.push(route(ctx, get, &sub("GET", std::slice::from_ref(k))).await?);
            }
            Ok(Frame::Array(out))
        }
        H::Del | H::Exists => {
            let (name, s) = if spec.handler == H::Del {
                ("DEL", del)
            } else {
                ("EXISTS", exists)
            };
            let mut n = 0;
            for k in &args[1..] {
                if let Frame::Integer(i) =
                    route(ctx, s, &sub(name, std::slice::from_ref(k))).await?
                {
                    n += i;
                }
            }
            Ok(Frame::Integer(n))
        }
        // MSET promises atomicity, which Raft gives within one group only.
        H::MSet => Err(CmdError::Raw(
            "CROSSSLOT keys of an MSET on a strong keyspace must share a partition; \
             use a hash tag such as {user:1}:name and {user:1}:email"
                .into(),
        )),
        _ => Err(CmdError::Raw(
            "CROSSSLOT keys of this command must live in one partition".into(),
        )),
    }
}

async fn one_group(
    ctx: &mut Ctx<'_>,
    ks: &Arc<Keyspace>,
    spec: &'static Spec,
    args: &[Bytes],
    gid: GroupId,
) -> CmdResult {
    let cluster = ctx.cluster.clone();
    let deadline = Instant::now() + cluster.request_timeout.max(Duration::from_secs(5));
    // `FAULT STALE-READS`: reads skip the read index and the leader, as a
    // buggy follower would (fault injection; off unless `--allow-faults`).
    let stale = !is_write(spec.handler)
        && cluster
            .faults
            .stale_reads
            .load(std::sync::atomic::Ordering::Relaxed);
    let serializable = stale || ctx.read_level(ks) == Level::Serializable;
    // A learner (being added) or a node moved out forwards, like any node
    // that does not vote in the group.
    let voter = cluster.groups.is_voter(&gid);
    let mut hint: Option<String> = cluster.groups.leader(&gid).ok().flatten().map(|p| p.name);
    let mut last: String;
    loop {
        let local = ctx.conn.forwarded
            || (voter && (serializable || hint.as_deref().is_none_or(|h| h == cluster.me.node_id)));
        if local {
            match apply(ctx, ks, spec, args, &gid, serializable).await {
                Ok(frame) => return Ok(frame),
                Err(Miss::Fail(e)) => return Err(e),
                Err(Miss::NotLeader(leader)) if ctx.conn.forwarded => {
                    return Err(CmdError::Raw(format!(
                        "NOTLEADER {}",
                        leader.unwrap_or_else(|| "?".into())
                    )));
                }
                Err(Miss::NotLeader(leader)) => {
                    last = format!("leader moved to {leader:?}");
                    hint = leader.filter(|l| *l != cluster.me.node_id);
                    if hint.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(Miss::Retry(why)) => {
                    last = why;
                    if ctx.conn.forwarded {
                        return Err(CmdError::Raw(format!("NOTLEADER ? ({last})")));
                    }
                    hint = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        } else {
            let target = hint.clone().or_else(|| {
                ks.spec
                    .groups
                    .get(gid.partition as usize)
                    .and_then(|v| v.first().cloned())
            });
            let member = target.as_deref().and_then(|t| cluster.member(t));
            match member {
                Some(m) => match super::forward::run(ctx, &m, args.to_vec()).await {
                    Ok(Frame::Error(e)) if e.starts_with("NOTLEADER") => {
                        last = e.clone();
                        let named = e
                            .split_whitespace()
                            .nth(1)
                            .filter(|n| *n != "?")
                            .map(str::to_string);
                        // Try another voter if the answer names nobody.
                        hint = named.or_else(|| next_voter(ks, &gid, target.as_deref()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(frame) => return Ok(frame),
                    Err(CmdError::Raw(e)) if e.starts_with("UNAVAILABLE") => {
                        last = e;
                        hint = next_voter(ks, &gid, target.as_deref());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(e),
                },
                None => {
                    last = format!("voter {target:?} unknown");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    hint = None;
                }
            }
        }
        if Instant::now() >= deadline {
            let kind = if is_write(spec.handler) {
                "; outcome unknown"
            } else {
                ""
            };
            return Err(CmdError::Raw(format!(
                "TIMEOUT partition {gid} has no reachable leader ({last}){kind}"
            )));
        }
    }
}

fn next_voter(ks: &Keyspace, gid: &GroupId, after: Option<&str>) -> Option<String> {
    let voters = ks.spec.groups.get(gid.partition as usize)?;
    let i = after
        .and_then(|a| voters.iter().position(|v| v == a))
        .map_or(0, |i| i + 1);
    voters.get(i % voters.len().max(1)).cloned()
}

fn is_write(h: H) -> bool {
    !matches!(
        h,
        H::Get | H::MGet | H::Exists | H::Ttl | H::PTtl | H::Type | H::GetRev
    )
}

async fn read(
    ctx: &Ctx<'_>,
    gid: &GroupId,
    key: &[u8],
    serializable: bool,
) -> Result<Option<StoredValue>, Miss> {
    ctx.cluster
        .groups
        .read(gid, key, !serializable)
        .await
        .map_err(from_raft)
}

async fn propose(ctx: &Ctx<'_>, gid: &GroupId, command: Command) -> Result<Response, Miss> {
    let applied = ctx
        .cluster
        .groups
        .propose(gid, command)
        .await
        .map_err(from_raft)?;
    match applied.response {
        Response::Error(CommandError::NotInteger) => Err(Miss::Fail(CmdError::NotInteger)),
        Response::Error(CommandError::Overflow) => Err(Miss::Fail(CmdError::Overflow)),
        Response::Error(e) => Err(Miss::Fail(CmdError::Raw(format!("TOOLARGE {e}")))),
        other => Ok(other),
    }
}

/// Executes the command on this node's replica of `gid`.
async fn apply(
    ctx: &mut Ctx<'_>,
    ks: &Keyspace,
    spec: &'static Spec,
    args: &[Bytes],
    gid: &GroupId,
    serializable: bool,
) -> Result<Frame, Miss> {
    let a = &args[1..];
    let _ = ks;
    Ok(match spec.handler {
        H::Get => value_frame(read(ctx, gid, &a[0], serializable).await?.map(|v| v.value)),
        H::MGet => {
            let mut out = Vec::new();
            for k in a {
                out.push(value_frame(
                    read(ctx, gid, k, serializable).await?.map(|v| v.value),
                ));
            }
            Frame::Array(out)
        }
        H::Exists => {
            let mut n = 0;
            for k in a {
                n += i64::from(read(ctx, gid, k, serializable).await?.is_some());
            }
            Frame::Integer(n)
        }
        H::GetRev => match read(ctx, gid, &a[0], serializable).await? {
            None => Frame::NullArray,
            Some(v) => Frame::Array(vec![
                Frame::Bulk(v.value),
                Frame::Integer(v.revision as i64),
            ]),
        },
        H::Type => Frame::Simple(
            if read(ctx, gid, &a[0], serializable).await?.is_some() {
                "string"
            } else {
                "none"
            }
            .into(),
        ),
        H::Ttl | H::PTtl => {
            let unit = if spec.handler == H::Ttl { 1000 } else { 1 };
            Frame::Integer(match read(ctx, gid, &a[0], serializable).await? {
                None => -2,
                Some(StoredValue {
                    expires_at_ms: None,
                    ..
                }) => -1,
                Some(StoredValue {
                    expires_at_ms: Some(at),
                    ..
                }) => {
                    let left = at.saturating_sub(wall_ms());
                    ((left + unit / 2) / unit) as i64
                }
            })
        }
        H::Set => {
            let opts = parse_set_options(&a[2..], wall_ms())?;
            let condition = match opts.condition {
                Condition::Always => fulcrum_raft::Condition::Always,
                Condition::Missing => fulcrum_raft::Condition::Missing,
                Condition::Exists => fulcrum_raft::Condition::Exists,
                Condition::Equals(v) => fulcrum_raft::Condition::Equals(v),
            };
            let ttl = match opts.expiry {
                Expiry::None => Ttl::Clear,
                Expiry::Keep => Ttl::Keep,
                Expiry::At(at) => Ttl::AtMs(at),
            };
            let cmd = Command::Set {
                key: a[0].clone(),
                value: a[1].clone(),
                ttl,
                condition,
                get_old: opts.get,
            };
            match propose(ctx, gid, cmd).await? {
                Response::Set { old, .. } if opts.get => value_frame(old),
                Response::Set { applied: true, .. } => Frame::ok(),
                _ => Frame::Null,
            }
        }
        H::GetSet => value_of(
            propose(
                ctx,
                gid,
                Command::GetSet {
                    key: a[0].clone(),
                    value: a[1].clone(),
                },
            )
            .await?,
        ),
        H::GetDel => value_of(propose(ctx, gid, Command::GetDel { key: a[0].clone() }).await?),
        H::Del => int_of(propose(ctx, gid, Command::Del { keys: a.to_vec() }).await?),
        H::MSet => {
            if !a.len().is_multiple_of(2) {
                return Err(Miss::Fail(CmdError::WrongArity("MSET")));
            }
            let pairs = a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            propose(ctx, gid, Command::MSet { pairs }).await?;
            Frame::ok()
        }
        H::Incr | H::Decr | H::IncrBy | H::DecrBy => {
            let delta = match spec.handler {
                H::Incr => 1,
                H::Decr => -1,
                H::IncrBy => int(&a[1])?,
                _ => int(&a[1])?.checked_neg().ok_or(CmdError::Overflow)?,
            };
            int_of(
                propose(
                    ctx,
                    gid,
                    Command::IncrBy {
                        key: a[0].clone(),
                        delta,
                    },
                )
                .await?,
            )
        }
        H::Expire | H::PExpire => {
            if a.len() > 2 {
                return Err(Miss::Fail(CmdError::Msg(
                    "EXPIRE options NX, XX, GT and LT are not supported on strong keyspaces yet"
                        .into(),
                )));
            }
            let amount = int(&a[1])?;
            let unit: i64 = if spec.handler == H::Expire { 1000 } else { 1 };
            let ms = amount
                .checked_mul(unit)
                .ok_or(CmdError::InvalidExpire("expire"))?;
            let at = if ms <= 0 {
                ExpireAt::AtMs(0)
            } else {
                ExpireAt::AfterMs(ms as u64)
            };
            applied_of(
                propose(
                    ctx,
                    gid,
                    Command::Expire {
                        key: a[0].clone(),
                        at,
                    },
                )
                .await?,
            )
        }
        H::Persist => applied_of(
            propose(
                ctx,
                gid,
                Command::Expire {
                    key: a[0].clone(),
                    at: ExpireAt::Persist,
                },
            )
            .await?,
        ),
        _ => return Err(Miss::Fail(CmdError::Syntax)),
    })
}

fn value_of(r: Response) -> Frame {
    match r {
        Response::Value(v) => value_frame(v),
        _ => Frame::Null,
    }
}

fn int_of(r: Response) -> Frame {
    match r {
        Response::Integer(i) => Frame::Integer(i),
        _ => Frame::Integer(0),
    }
}

fn applied_of(r: Response) -> Frame {
    match r {
        Response::Applied(b) => Frame::Integer(i64::from(b)),
        _ => Frame::Integer(0),
    }
}

/// `SCAN cursor [MATCH p] [COUNT n]` over the groups this node holds, in
/// group then key order, from each group's applied state (serializable).
/// The cursor stands for (group, last key), kept per connection.
fn scan(ctx: &mut Ctx<'_>, ks: &Keyspace, a: &[Bytes]) -> CmdResult {
    let cursor: u64 = std::str::from_utf8(&a[0])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| CmdError::Msg("invalid cursor".into()))?;
    let mut pattern: Option<Bytes> = None;
    let mut count = 10usize;
    let mut i = 1;
    while i < a.len() {
        let Some(arg) = a.get(i + 1) else {
            return Err(CmdError::Syntax);
        };
        if super::args::is(&a[i], "MATCH") {
            pattern = Some(arg.clone());
        } else if super::args::is(&a[i], "COUNT") {
            count = usize::try_from(int(arg)?)
                .ok()
                .filter(|n| *n > 0)
                .ok_or(CmdError::Syntax)?
                .min(100_000);
        } else if !super::args::is(&a[i], "TYPE") {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let (mut partition, mut after): (u32, Option<Bytes>) = match cursor {
        0 => (0, None),
        c => {
            let saved = ctx.conn.cursor(c).ok_or_else(|| {
                CmdError::Msg("invalid cursor (unknown or expired on this connection)".into())
            })?;
            let p = u32::from(*saved.first().unwrap_or(&0));
            (p, Some(saved.slice(1..)))
        }
    };
    let mut keys = Vec::new();
    let mut next = 0;
    while partition < crate::strong::STRONG_PARTITIONS {
        let gid = GroupId::new(ks.spec.name.as_str(), partition);
        let (found, last) = match ctx.cluster.groups.scan_keys(&gid, after.as_deref(), count) {
            Ok(r) => r,
            Err(RaftError::NoSuchGroup(_)) => (Vec::new(), None),
            Err(e) => return Err(CmdError::Msg(e.to_string())),
        };
        keys.extend(found);
        match last {
            Some(k) if keys.len() >= count => {
                let mut saved = vec![partition as u8];
                saved.extend_from_slice(&k);
                next = ctx.conn.save_cursor(Bytes::from(saved));
                break;
            }
            Some(k) => after = Some(k),
            None => {
                partition += 1;
                after = None;
            }
        }
    }
    let keys: Vec<Frame> = keys
        .into_iter()
        .filter(|k| {
            pattern
                .as_ref()
                .is_none_or(|p| super::glob::glob_match(p, k))
        })
        .map(Frame::Bulk)
        .collect();
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(keys),
    ]))
}
