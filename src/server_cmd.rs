//! `fulcrum server`: flags and environment → configuration → a running
//! node, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fulcrum_node::{ConfigOverrides, Node, NodeConfig};
use fulcrum_storage::FsyncPolicy;

/// Every flag is also a key of the `--config` TOML file (same name) and an
/// environment variable FULCRUM_<KEY>. Flags win over the environment,
/// which wins over the file.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// TOML configuration file (keys named like these flags).
    #[arg(long, env = "FULCRUM_CONFIG")]
    config: Option<PathBuf>,
    /// Stable name of this node [default: n1].
    #[arg(long, env = "FULCRUM_NODE_ID")]
    node_id: Option<String>,
    /// Directory for everything the node persists [default: ./fulcrum-data].
    #[arg(long, env = "FULCRUM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Client protocol (RESP) address [default: 127.0.0.1:7379].
    #[arg(long, env = "FULCRUM_RESP_ADDR")]
    resp_addr: Option<SocketAddr>,
    /// Health, status and metrics (HTTP) address [default: 127.0.0.1:7380].
    #[arg(long, env = "FULCRUM_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Node-to-node address [default: 127.0.0.1:7381].
    #[arg(long, env = "FULCRUM_PEER_ADDR")]
    peer_addr: Option<SocketAddr>,
    /// Peer address other members dial, if not --peer-addr (NAT, containers, proxies).
    #[arg(long, env = "FULCRUM_PEER_ADVERTISE_ADDR")]
    peer_advertise_addr: Option<String>,
    /// UDP address other members send gossip to, if not the peer port (NAT, proxies).
    #[arg(long, env = "FULCRUM_GOSSIP_ADVERTISE_ADDR")]
    gossip_advertise_addr: Option<SocketAddr>,
    /// Peer addresses of members to join, comma separated; empty starts a new cluster.
    #[arg(long, env = "FULCRUM_SEEDS", value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Data-center name for replica placement [default: dc1].
    #[arg(long, env = "FULCRUM_DC")]
    dc: Option<String>,
    /// Rack name for replica placement [default: r1].
    #[arg(long, env = "FULCRUM_RACK")]
    rack: Option<String>,
    /// When writes are acknowledged: always (after fsync, group commit), interval:MS, never [default: always].
    #[arg(long, env = "FULCRUM_FSYNC", value_parser = parse_fsync)]
    fsync: Option<FsyncPolicy>,
    /// Largest key in bytes [default: 64512].
    #[arg(long, env = "FULCRUM_MAX_KEY_BYTES")]
    max_key_bytes: Option<usize>,
    /// Largest value in bytes [default: 16777216].
    #[arg(long, env = "FULCRUM_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
    /// Most elements in one request [default: 1048576].
    #[arg(long, env = "FULCRUM_MAX_ARRAY_LEN")]
    max_array_len: Option<usize>,
    /// Storage block cache in MiB [default: 64].
    #[arg(long, env = "FULCRUM_CACHE_MB")]
    cache_mb: Option<u64>,
    /// How often expired keys are swept, in ms [default: 100].
    #[arg(long, env = "FULCRUM_SWEEP_INTERVAL_MS")]
    sweep_interval_ms: Option<u64>,
    /// Most concurrent client connections [default: 10000].
    #[arg(long, env = "FULCRUM_MAX_CLIENTS")]
    max_clients: Option<usize>,
    /// Worker threads serving peers, HTTP and the clients' cluster-wide commands (client connections and single-node data commands run on one RESP event-loop thread besides); 0 is one per CPU core but one, at least one [default: 0].
    #[arg(long, env = "FULCRUM_THREADS")]
    threads: Option<usize>,
    /// How often replicas compare Merkle trees (anti-entropy), in ms [default: 10000].
    #[arg(long, env = "FULCRUM_AAE_INTERVAL_MS")]
    aae_interval_ms: Option<u64>,
    /// Purge a tombstone once every replica holds it and it is older than this, in ms [default: 3600000].
    #[arg(long, env = "FULCRUM_TOMBSTONE_GRACE_MS")]
    tombstone_grace_ms: Option<u64>,
    /// Budget of partition streaming (join, leave, remove) in MiB/s; 0 is unlimited [default: 64].
    #[arg(long, env = "FULCRUM_STREAM_MB_PER_SEC")]
    stream_mb_per_sec: Option<u64>,
    /// Coordinated reads and writes answer TIMEOUT after this many ms [default: 2000].
    #[arg(long, env = "FULCRUM_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Accept FAULT commands (fault injection for tests); never in production [default: false].
    #[arg(long, env = "FULCRUM_ALLOW_FAULTS", num_args = 0..=1, default_missing_value = "true")]
    allow_faults: Option<bool>,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    s.parse().map_err(|e| format!("{e}"))
}

impl ServerArgs {
    pub fn into_config(self) -> anyhow::Result<NodeConfig> {
        let overrides = ConfigOverrides {
            node_id: self.node_id,
            data_dir: self.data_dir,
            resp_addr: self.resp_addr,
            http_addr: self.http_addr,
            peer_addr: self.peer_addr,
            peer_advertise_addr: self.peer_advertise_addr,
            gossip_advertise_addr: self.gossip_advertise_addr,
            seeds: self.seeds,
            dc: self.dc,
            rack: self.rack,
            fsync: self.fsync,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            max_array_len: self.max_array_len,
            cache_mb: self.cache_mb,
            sweep_interval_ms: self.sweep_interval_ms,
            max_clients: self.max_clients,
            threads: self.threads,
            request_timeout_ms: self.request_timeout_ms,
            aae_interval_ms: self.aae_interval_ms,
            tombstone_grace_ms: self.tombstone_grace_ms,
            stream_mb_per_sec: self.stream_mb_per_sec,
            allow_faults: self.allow_faults,
        };
        Ok(NodeConfig::load(self.config.as_deref(), overrides)?)
    }
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FULCRUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Serves `config` (resolved before the runtime starts: its `threads` sizes
/// the runtime) until Ctrl-C, SIGTERM or this node leaving the cluster.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    init_logging();
    let node = Node::start(config).await.context("cannot start the node")?;
    println!(
        "fulcrum node '{}' serving RESP on {} and HTTP on {}",
        node.db.node_id, node.resp_addr, node.http_addr
    );
    let mut left = node.cluster.stop.subscribe();
    tokio::select! {
        () = wait_for_signal() => {}
        _ = left.wait_for(|stop| *stop) => tracing::info!("this node left the cluster"),
    }
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
