//! Commands: bytes → arguments → a handler that applies them → a reply
//! frame. One file per command family; [`table`] lists every command with
//! its arity, flags and key positions (what `COMMAND` reports and what the
//! dispatcher checks before calling a handler).

mod args;
mod cluster;
mod config;
mod conn;
mod counter;
mod error;
mod fault;
mod forward;
mod glob;
mod info;
mod keys;
mod keyspace;
mod kv;
mod repair;
mod state;
mod strings;
mod strong;
pub mod table;
mod versioned;

use std::time::Instant;

use bytes::Bytes;
use fulcrum_proto::Frame;

pub use error::CmdError;
pub use state::ConnState;

use crate::cluster::Cluster;
use crate::db::Db;
use table::Spec;

/// What a handler gets: the node's database, its cluster view, and this
/// connection's state.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub cluster: &'a std::sync::Arc<Cluster>,
    pub conn: &'a mut ConnState,
}

pub type CmdResult = Result<Frame, CmdError>;

/// Runs one request and returns its reply. Never panics on input: every
/// problem becomes an error reply.
pub async fn execute(
    cluster: &std::sync::Arc<Cluster>,
    conn: &mut ConnState,
    args: Vec<Bytes>,
) -> Frame {
    let started = Instant::now();
    let db = &*cluster.db;
    let Some(name) = args.first() else {
        return Frame::error("ERR empty command");
    };
    let Some(spec) = table::lookup(name) else {
        return CmdError::unknown_command(&args).into_frame();
    };
    let mut ctx = Ctx { db, cluster, conn };
    let result = match check(spec, &args, db) {
        Ok(()) if strong::is_data(spec.handler) && ctx.keyspace_is_strong() => {
            strong::route(&mut ctx, spec, &args).await
        }
        Ok(()) => run(spec, &mut ctx, &args).await,
        Err(e) => Err(e),
    };
    let frame = match result {
        Ok(f) => f,
        Err(e) => e.into_frame(),
    };
    let error_word = match &frame {
        Frame::Error(msg) => Some(msg.split(' ').next().unwrap_or("ERR")),
        _ => None,
    };
    db.metrics
        .observe(spec.name, started.elapsed().as_secs_f64(), error_word);
    frame
}

/// Whether `args` touches nothing but this node's own storage: a data
/// command on an eventual keyspace whose every key has this node as its
/// only replica, in every ring a write must reach. Such a command runs on
/// the RESP event loop; any other runs on the main runtime (`resp/`).
/// Commands the dispatcher refuses (unknown, no keyspace) count as local:
/// their error reply needs nothing else.
pub fn is_local(cluster: &std::sync::Arc<Cluster>, conn: &ConnState, args: &[Bytes]) -> bool {
    let Some(spec) = args.first().and_then(|name| table::lookup(name)) else {
        return true;
    };
    if !strong::is_data(spec.handler) {
        return false;
    }
    let Some(ks) = cluster.db.catalog.get(&conn.keyspace) else {
        return true;
    };
    if ks.spec.mode == fulcrum_core::keyspace::Mode::Strong {
        return false;
    }
    if cluster.alone() {
        return true;
    }
    let me = &*cluster.me.node_id;
    args.iter()
        .enumerate()
        .filter(|(i, _)| spec.is_key_position(*i, args.len()))
        .all(|(_, key)| {
            cluster
                .write_sets(ks.spec.replicas, key)
                .iter()
                .all(|set| set.len() == 1 && *set[0] == *me)
        })
}

/// Whether `args` may run while writes are still staged (see
/// `write_group.rs`), without committing them first:
/// - a plain `SET key value`: a blind write, built on the staged record;
/// - a plain `GET key` whose key has no staged write (`key_staged` says,
///   `true` if it cannot tell): it reads the engine, which then holds the
///   key's newest record, so it sees every earlier write of its
///   connection and nothing a `kill -9` could take back.
///
/// Any other command (a GET of a staged key, scans, multi-key and
/// conditional commands) needs them committed first.
pub fn runs_beside_staged(args: &[Bytes], key_staged: impl FnOnce(&[u8]) -> bool) -> bool {
    match args {
        [name, _, _] => name.eq_ignore_ascii_case(b"SET"),
        [name, key] => name.eq_ignore_ascii_case(b"GET") && !key_staged(key),
        _ => false,
    }
}

/// Whether `key` of the connection's keyspace may have a staged write:
/// true if it has one, or the keyspace is strong or unknown.
pub fn key_staged(cluster: &Cluster, conn: &ConnState, key: &[u8]) -> bool {
    match cluster.db.catalog.get(&conn.keyspace) {
        Some(ks) if ks.spec.mode == fulcrum_core::keyspace::Mode::Eventual => {
            cluster.db.is_staged(&ks.table, key)
        }
        _ => true,
    }
}

/// Arity and size limits, checked before any handler runs.
fn check(spec: &Spec, args: &[Bytes], db: &Db) -> Result<(), CmdError> {
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(CmdError::WrongArity(spec.name));
    }
    let limits = &db.limits;
    for (i, a) in args.iter().enumerate() {
        if a.len() > limits.max_value_bytes {
            return Err(CmdError::TooLarge {
                what: "argument",
                len: a.len(),
                max: limits.max_value_bytes,
            });
        }
        if spec.is_key_position(i, args.len()) && a.len() > limits.max_key_bytes {
            return Err(CmdError::TooLarge {
                what: "key",
                len: a.len(),
                max: limits.max_key_bytes,
            });
        }
    }
    Ok(())
}

async fn run(spec: &Spec, ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    use table::Handler as H;
    let a = &args[1..];
    match spec.handler {
        H::Ping => conn::ping(a),
        H::Echo => conn::echo(a),
        H::Hello => conn::hello(ctx, a),
        H::Auth => conn::auth(a),
        H::Quit => conn::quit(ctx),
        H::Select => conn::select(a),
        H::Client => conn::client(ctx, a),
        H::Command => conn::command(a),
        H::Info => info::info(ctx, a),
        H::Config => config::config(ctx, a),
        H::DbSize => keys::dbsize(ctx),
        H::Get => strings::get(ctx, a).await,
        H::Set => strings::set(ctx, a).await,
        H::GetSet => strings::getset(ctx, a).await,
        H::GetDel => strings::getdel(ctx, a).await,
        H::MGet => strings::mget(ctx, a).await,
        H::MSet => strings::mset(ctx, a).await,
        H::Del => keys::del(ctx, a).await,
        H::Exists => keys::exists(ctx, a).await,
        H::Expire => keys::expire(ctx, a, 1000).await,
        H::PExpire => keys::expire(ctx, a, 1).await,
        H::Ttl => keys::ttl(ctx, a, 1000).await,
        H::PTtl => keys::ttl(ctx, a, 1).await,
        H::Persist => keys::persist(ctx, a).await,
        H::Type => keys::type_of(ctx, a).await,
        H::Scan => keys::scan(ctx, a),
        H::Incr => counter::incr_by(ctx, &a[0], 1, spec.name).await,
        H::Decr => counter::incr_by(ctx, &a[0], -1, spec.name).await,
        H::IncrBy => counter::incr_by_arg(ctx, a, 1, spec.name).await,
        H::DecrBy => counter::incr_by_arg(ctx, a, -1, spec.name).await,
        H::GetRev => counter::getrev(ctx, a),
        H::Keyspace => keyspace::keyspace(ctx, a).await,
        H::Use => keyspace::use_keyspace(ctx, a),
        H::Consistency => keyspace::consistency(ctx, a),
        H::VGet => versioned::vget(ctx, a).await,
        H::VSet => versioned::vset(ctx, a).await,
        H::VDel => versioned::vdel(ctx, a).await,
        H::Fault => fault::fault(ctx, a),
        H::Repair => repair::repair(ctx, a).await,
        H::Cluster => cluster::cluster(ctx, a).await,
    }
}

impl Ctx<'_> {
    /// Whether the connection's keyspace is strong.
    pub fn keyspace_is_strong(&self) -> bool {
        self.db
            .catalog
            .get(&self.conn.keyspace)
            .is_some_and(|k| k.spec.mode == fulcrum_core::keyspace::Mode::Strong)
    }

    /// The connection's current keyspace.
    ///
    /// # Errors
    /// [`CmdError::NoKeyspace`] if it was dropped since `USE`.
    pub fn keyspace(&self) -> Result<std::sync::Arc<crate::catalog::Keyspace>, CmdError> {
        self.db
            .catalog
            .get(&self.conn.keyspace)
            .ok_or_else(|| CmdError::NoKeyspace(self.conn.keyspace.clone()))
    }

    /// The current keyspace, which must be strong for `command`.
    ///
    /// # Errors
    /// [`CmdError::NotStrong`] on an eventual keyspace.
    pub fn strong_keyspace(
        &self,
        command: &str,
    ) -> Result<std::sync::Arc<crate::catalog::Keyspace>, CmdError> {
        let ks = self.keyspace()?;
        if ks.spec.mode != fulcrum_core::keyspace::Mode::Strong {
            return Err(CmdError::NotStrong {
                command: command.to_string(),
                keyspace: ks.spec.name.clone(),
            });
        }
        Ok(ks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn a_plain_set_runs_beside_staged_writes() {
        assert!(runs_beside_staged(&args(&["SET", "k", "v"]), |_| true));
        assert!(runs_beside_staged(&args(&["set", "k", "v"]), |_| true));
        assert!(!runs_beside_staged(&args(&["SET", "k", "v", "NX"]), |_| {
            false
        }));
    }

    #[test]
    fn a_get_runs_beside_staged_writes_only_when_its_key_has_none() {
        let mut asked = Vec::new();
        assert!(runs_beside_staged(&args(&["GET", "free"]), |k| {
            asked.push(k.to_vec());
            false
        }));
        assert_eq!(asked, vec![b"free".to_vec()]);
        assert!(!runs_beside_staged(&args(&["get", "busy"]), |_| true));
    }

    #[test]
    fn other_commands_wait_for_staged_writes() {
        for words in [
            &["MGET", "a", "b"][..],
            &["DEL", "a"],
            &["SCAN", "0"],
            &["GETDEL", "a"],
            &["INCR", "a"],
            &["GET"],
            &["GET", "a", "b"],
        ] {
            assert!(!runs_beside_staged(&args(words), |_| false), "{words:?}");
        }
    }
}
