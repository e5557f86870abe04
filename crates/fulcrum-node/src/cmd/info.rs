//! INFO: Redis-style sections plus a `# Fulcrum` section.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fulcrum_proto::Frame;

use super::{CmdResult, Ctx};

pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let wanted: Vec<String> = a
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let db = ctx.db;
    let mut out = String::new();
    // Writing to a String cannot fail; results are ignored below.
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:7.4.0\r\nfulcrum_version:{}\r\nredis_mode:cluster\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            crate::VERSION,
            std::env::consts::OS,
            std::process::id(),
            0,
            db.uptime().as_secs()
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            db.metrics.connections.get()
        );
    }
    if want("stats") {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nexpired_keys:{}\r\n\r\n",
            db.metrics.connections_total.get(),
            db.metrics.commands_processed.load(Ordering::Relaxed),
            db.metrics.expired_keys.get()
        );
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        if let Some(ks) = db.catalog.get(&ctx.conn.keyspace) {
            let keys = db.count_keys(&ks)?;
            let _ = write!(out, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
        }
        out.push_str("\r\n");
    }
    if want("fulcrum") {
        let gc = db.group_commit();
        let _ = write!(
            out,
            "# Fulcrum\r\nnode_id:{}\r\nfsync:{}\r\nfsyncs:{}\r\ndurable_waits:{}\r\nkeyspace:{}\r\nkeyspaces:{}\r\nmembers:1\r\n",
            db.node_id,
            db.fsync,
            gc.syncs(),
            gc.durable_requests(),
            ctx.conn.keyspace,
            db.catalog.list().len(),
        );
        for ks in db.catalog.list() {
            let s = &ks.spec;
            let _ = write!(
                out,
                "keyspace_{}:mode={},replicas={},read={},write={},conflict={}\r\n",
                s.name, s.mode, s.replicas, s.read, s.write, s.conflict
            );
        }
        out.push_str("\r\n");
    }
    Ok(Frame::Verbatim("txt".into(), Bytes::from(out)))
}
