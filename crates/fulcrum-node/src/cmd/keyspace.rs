//! Fulcrum's own commands: KEYSPACE CREATE/LIST/INFO/DROP, USE,
//! CONSISTENCY.

use bytes::Bytes;
use fulcrum_core::keyspace::{KeyspaceSpec, Mode};
use fulcrum_core::level::{Level, Op};
use fulcrum_proto::Frame;

use super::args::{is, text};
use super::{CmdError, CmdResult, Ctx};
use crate::net::PeerRequest;

fn bulk(s: impl ToString) -> Frame {
    Frame::Bulk(Bytes::from(s.to_string()))
}

pub async fn keyspace(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = &a[0];
    let rest = &a[1..];
    if is(sub, "CREATE") {
        create(ctx, rest).await
    } else if is(sub, "LIST") {
        Ok(Frame::Array(
            ctx.db
                .catalog
                .list()
                .iter()
                .map(|k| bulk(&k.spec.name))
                .collect(),
        ))
    } else if is(sub, "INFO") {
        let [name] = rest else {
            return Err(CmdError::WrongArity("KEYSPACE|INFO"));
        };
        let name = text(name)?;
        let ks = ctx
            .db
            .catalog
            .get(name)
            .ok_or_else(|| CmdError::NoKeyspace(name.to_string()))?;
        let s = &ks.spec;
        let keys = match s.mode {
            Mode::Strong => crate::strong::count_keys(ctx.cluster, &s.name),
            Mode::Eventual => ctx.db.count_keys(&ks)?,
        };
        let mut fields = vec![
            (bulk("name"), bulk(&s.name)),
            (bulk("mode"), bulk(s.mode)),
            (bulk("replicas"), Frame::Integer(i64::from(s.replicas))),
            (bulk("read"), bulk(s.read)),
            (bulk("write"), bulk(s.write)),
            (bulk("conflict"), bulk(s.conflict)),
            (bulk("keys"), Frame::Integer(keys as i64)),
        ];
        if s.mode == Mode::Strong {
            // Each Raft group's voters as this node last learned them,
            // comma-separated, one entry per group.
            let voters = s.groups.iter().map(|g| bulk(g.join(","))).collect();
            fields.push((bulk("voters"), Frame::Array(voters)));
        }
        Ok(Frame::Map(fields))
    } else if is(sub, "DROP") {
        let [name] = rest else {
            return Err(CmdError::WrongArity("KEYSPACE|DROP"));
        };
        let name = text(name)?.to_string();
        // Staged writes of the keyspace go in first (or fail): none may land
        // in a table of the same name created later.
        let _ = ctx.db.commit_staged();
        ctx.db.catalog.drop_keyspace(&name)?;
        ctx.cluster.close_strong_groups(&name).await;
        let version = ctx.cluster.schema_changed(&name, None).await;
        everywhere(ctx, PeerRequest::DropKeyspace { name, version }).await
    } else {
        Err(CmdError::unknown_subcommand(
            sub,
            "KEYSPACE CREATE, LIST, INFO or DROP",
        ))
    }
}

/// `KEYSPACE CREATE name [MODE m] [REPLICAS n] [READ l] [WRITE l] [CONFLICT c]`
async fn create(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let Some((name, opts)) = a.split_first() else {
        return Err(CmdError::WrongArity("KEYSPACE|CREATE"));
    };
    if !opts.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let name = text(name)?;
    // Mode decides the default levels, so find it first.
    let mut mode = Mode::Eventual;
    for pair in opts.chunks(2) {
        if is(&pair[0], "MODE") {
            mode = text(&pair[1])?
                .parse()
                .map_err(|e: fulcrum_core::keyspace::KeyspaceError| CmdError::Msg(e.to_string()))?;
        }
    }
    let mut spec = KeyspaceSpec::new(name, mode);
    if mode == Mode::Strong && opts.chunks(2).any(|p| is(&p[0], "CONFLICT")) {
        return Err(CmdError::Msg(
            fulcrum_core::keyspace::KeyspaceError::ConflictOnStrong.to_string(),
        ));
    }
    for pair in opts.chunks(2) {
        let (opt, val) = (&pair[0], text(&pair[1])?);
        let bad = |e: &dyn std::fmt::Display| CmdError::Msg(e.to_string());
        if is(opt, "MODE") {
        } else if is(opt, "REPLICAS") {
            spec.replicas = val.parse().map_err(|_| CmdError::NotInteger)?;
        } else if is(opt, "READ") {
            spec.read = val.parse().map_err(|e| bad(&e))?;
        } else if is(opt, "WRITE") {
            spec.write = val.parse().map_err(|e| bad(&e))?;
        } else if is(opt, "CONFLICT") {
            spec.conflict = val.parse().map_err(|e| bad(&e))?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if spec.mode == Mode::Strong {
        spec.groups = ctx.cluster.place_strong_groups(spec.replicas);
    }
    ctx.db.catalog.create(spec.clone())?;
    ctx.cluster.open_strong_groups(&spec).await;
    let version = ctx
        .cluster
        .schema_changed(&spec.name, Some(spec.clone()))
        .await;
    everywhere(ctx, PeerRequest::CreateKeyspace { spec, version }).await
}

/// Sends a schema change to every other member; `+OK` when every live one
/// has it (a member that gossip says is down learns it from gossip when it
/// is back, see `schema.rs`).
async fn everywhere(ctx: &Ctx<'_>, request: PeerRequest) -> CmdResult {
    let mut failed = ctx.cluster.broadcast(request).await;
    if ctx.cluster.gossips() {
        failed.retain(|(n, _)| ctx.cluster.gossip_alive(n));
    }
    if failed.is_empty() {
        return Ok(Frame::ok());
    }
    let total = ctx.cluster.member_count();
    let names: Vec<String> = failed.iter().map(|(n, e)| format!("{n} ({e})")).collect();
    Err(CmdError::Raw(format!(
        "UNAVAILABLE schema change reached {} of {total} members; not reached: {}",
        total - failed.len(),
        names.join(", ")
    )))
}

/// `USE name`: switch this connection's keyspace. Level overrides from
/// CONSISTENCY are reset, since they belong to the old keyspace's mode.
pub fn use_keyspace(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let name = text(&a[0])?;
    if ctx.db.catalog.get(name).is_none() {
        return Err(CmdError::NoKeyspace(name.to_string()));
    }
    ctx.conn.keyspace = name.to_string();
    ctx.conn.read_level = None;
    ctx.conn.write_level = None;
    Ok(Frame::ok())
}

/// `CONSISTENCY [READ level] [WRITE level]`; with no argument, the levels
/// in force on this connection.
pub fn consistency(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ks = ctx.keyspace()?;
    if a.is_empty() {
        let read = ctx.conn.read_level.unwrap_or(ks.spec.read);
        let write = ctx.conn.write_level.unwrap_or(ks.spec.write);
        return Ok(Frame::Map(vec![
            (bulk("read"), bulk(read)),
            (bulk("write"), bulk(write)),
        ]));
    }
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let (mut read, mut write) = (ctx.conn.read_level, ctx.conn.write_level);
    for pair in a.chunks(2) {
        let level: Level = text(&pair[1])?
            .parse()
            .map_err(|e: fulcrum_core::level::LevelError| CmdError::Msg(e.to_string()))?;
        let op = if is(&pair[0], "READ") {
            Op::Read
        } else if is(&pair[0], "WRITE") {
            Op::Write
        } else {
            return Err(CmdError::Syntax);
        };
        level
            .validate(ks.spec.mode, op, ks.spec.replicas)
            .map_err(|e| CmdError::Msg(e.to_string()))?;
        match op {
            Op::Read => read = Some(level),
            Op::Write => write = Some(level),
        }
    }
    ctx.conn.read_level = read;
    ctx.conn.write_level = write;
    Ok(Frame::ok())
}
