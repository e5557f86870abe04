//! HTTP on `--http-addr`: `/health`, `/status` (JSON), `/metrics`
//! (Prometheus text), `/anti-entropy/{keyspace}` (this node's Merkle roots).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::db::Db;
use crate::netio::TcpListener;

#[derive(Clone)]
struct AppState {
    db: Arc<Db>,
    cluster: Arc<Cluster>,
    config: Arc<NodeConfig>,
}

/// One member as `/status` reports it.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    pub node_id: String,
    pub peer_addr: String,
    pub resp_addr: String,
    pub http_addr: String,
    /// `up`, `suspect`, `down`, `joining` or `leaving` (see `gossip.rs`).
    pub state: &'static str,
    pub dc: String,
    pub rack: String,
    /// Milliseconds since this node last heard from the member (a newer
    /// gossip heartbeat); 0 for itself, `null` if never.
    pub last_heard_ms: Option<u64>,
}

/// The rings this node uses (see `cluster.rs`).
#[derive(Debug, Serialize)]
pub struct RingStatus {
    /// Nodes reads go to (`up` and `leaving`).
    pub nodes: Vec<String>,
    /// Nodes writes also go to while a node joins or leaves (`up` and
    /// `joining`); `null` when no node is on its way in or out.
    pub pending: Option<Vec<String>>,
    /// Older read rings writes still reach (until every live member
    /// gossips the new one).
    pub previous: usize,
}

#[derive(Debug, Serialize)]
pub struct KeyspaceStatus {
    pub name: String,
    pub mode: String,
    pub replicas: u32,
    pub read: String,
    pub write: String,
    pub conflict: String,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub node_id: String,
    pub version: &'static str,
    pub members: Vec<MemberStatus>,
    pub ring: RingStatus,
    pub keyspaces: Vec<KeyspaceStatus>,
    pub fsync: String,
    /// Worker threads of the runtime serving clients and peers.
    pub threads: usize,
    pub uptime_seconds: u64,
    /// Hints this node holds for replicas that were down.
    pub hints_pending: u64,
}

pub fn router(cluster: Arc<Cluster>, config: Arc<NodeConfig>) -> Router {
    let db = cluster.db.clone();
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/anti-entropy/{keyspace}", get(anti_entropy))
        .with_state(AppState {
            db,
            cluster,
            config,
        })
}

/// Serves HTTP until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    config: Arc<NodeConfig>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(
        crate::netio::http_listener(listener),
        router(cluster, config),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.changed().await;
    })
    .await
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    if s.db.group_commit().is_poisoned() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "fsync failed: refusing writes\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn status(State(s): State<AppState>) -> Json<Status> {
    let c = &s.config;
    let members = s
        .cluster
        .members()
        .into_iter()
        .map(|m| MemberStatus {
            state: member_state(&s.cluster, &m.node_id),
            last_heard_ms: s.cluster.last_heard_ms(&m.node_id),
            node_id: m.node_id,
            peer_addr: m.peer_addr,
            resp_addr: m.resp_addr,
            http_addr: m.http_addr,
            dc: m.dc,
            rack: m.rack,
        })
        .collect();
    let keyspaces =
        s.db.catalog
            .list()
            .iter()
            .map(|k| KeyspaceStatus {
                name: k.spec.name.clone(),
                mode: k.spec.mode.to_string(),
                replicas: k.spec.replicas,
                read: k.spec.read.to_string(),
                write: k.spec.write.to_string(),
                conflict: k.spec.conflict.to_string(),
            })
            .collect();
    let p = s.cluster.placement();
    let ring = RingStatus {
        nodes: p.read.ids.clone(),
        pending: p.pending.as_ref().map(|r| r.ids.clone()),
        previous: p
            .previous
            .iter()
            .filter(|(_, at)| at.elapsed() < crate::cluster::RING_GRACE)
            .count(),
    };
    Json(Status {
        node_id: c.node_id.clone(),
        version: crate::VERSION,
        members,
        ring,
        keyspaces,
        fsync: s.db.fsync.to_string(),
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        uptime_seconds: s.db.uptime().as_secs(),
        hints_pending: s.db.hint_backlog(),
    })
}

/// This node's anti-entropy state of one eventual keyspace.
#[derive(Debug, Serialize)]
pub struct AntiEntropyStatus {
    pub keyspace: String,
    /// Root hash (16 hex digits) of the Merkle tree of every ring partition
    /// this node replicates. Replicas of a partition that hold the same data
    /// have the same root.
    pub roots: std::collections::BTreeMap<u32, String>,
}

async fn anti_entropy(
    State(s): State<AppState>,
    Path(keyspace): Path<String>,
) -> Result<Json<AntiEntropyStatus>, (StatusCode, String)> {
    let ks = match s.db.catalog.get(&keyspace) {
        Some(ks) if ks.spec.mode == fulcrum_core::keyspace::Mode::Eventual => ks,
        Some(_) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("keyspace {keyspace} is strong: Raft keeps its replicas equal, it has no Merkle trees\n"),
            ))
        }
        None => {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no keyspace named {keyspace}\n"),
            ))
        }
    };
    let roots = s
        .cluster
        .replicated_roots(&ks)
        .into_iter()
        .map(|(p, r)| (p, format!("{r:016x}")))
        .collect();
    Ok(Json(AntiEntropyStatus { keyspace, roots }))
}

/// A member's state as `/status` shows it: `down` when unreachable, else
/// its ring state (`joining`, `leaving`), else `suspect` or `up`.
fn member_state(cluster: &Cluster, node: &str) -> &'static str {
    use crate::gossip::Liveness;
    use crate::net::MemberState;
    let live = cluster.liveness(node);
    if live == Liveness::Down {
        return "down";
    }
    match cluster.record(node).map(|r| r.state) {
        Some(MemberState::Joining) => "joining",
        Some(MemberState::Leaving) => "leaving",
        Some(MemberState::Left) => "left",
        _ if live == Liveness::Suspect => "suspect",
        _ => "up",
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let db = &s.db;
    for ks in db.catalog.list() {
        if let Ok(stats) = db.storage.stats(&ks.table) {
            db.metrics
                .set_keyspace_size(&ks.spec.name, stats.approximate_keys, stats.disk_bytes);
        }
    }
    db.metrics.hints_pending.set(db.hint_backlog() as i64);
    let gc = db.group_commit();
    db.metrics.fsyncs.set(gc.syncs() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        db.metrics.render(),
    )
}
