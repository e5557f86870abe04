//! Starting and stopping a node: open storage, bind listeners, spawn the
//! RESP server, the HTTP server and the TTL sweeper; stop them all on
//! shutdown and sync storage last.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_storage::{FjallConfig, FjallStorage, Storage, StorageError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, ClusterError};
use crate::config::NodeConfig;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::net::Member;
use crate::netio::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot open storage in {dir}: {source}")]
    Storage {
        dir: String,
        #[source]
        source: StorageError,
    },
    #[error("cannot open the database: {0}")]
    Db(#[from] DbError),
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    pub db: Arc<Db>,
    pub cluster: Arc<Cluster>,
    /// The addresses actually bound (port 0 in the config picks one).
    pub resp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens the data directory and starts serving.
    ///
    /// # Errors
    /// Storage that cannot be opened, or an address that cannot be bound.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let dir = config.data_dir.join("storage");
        let storage: Arc<dyn Storage> = Arc::new(
            FjallStorage::open(
                &dir,
                FjallConfig {
                    cache_bytes: config.cache_mb * 1024 * 1024,
                    ..FjallConfig::default()
                },
            )
            .map_err(|source| NodeError::Storage {
                dir: dir.display().to_string(),
                source,
            })?,
        );
        Self::start_with_storage(config, storage).await
    }

    /// Starts on a given storage engine (tests and simulation pass the
    /// memory engine).
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_with_storage(
        config: NodeConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<Node, NodeError> {
        let metrics = Arc::new(
            Metrics::new().with_commands(crate::cmd::table::COMMANDS.iter().map(|s| s.name)),
        );
        let db = Arc::new(Db::open(
            config.node_id.clone(),
            storage,
            config.fsync,
            config.limits(),
            metrics,
        )?);
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind { what, addr, source })
        };
        let resp = bind("resp-addr", config.resp_addr).await?;
        let http = bind("http-addr", config.http_addr).await?;
        let peer = bind("peer-addr", config.peer_addr).await?;
        let peer_addr = peer.local_addr().map_err(|source| NodeError::Bind {
            what: "peer-addr",
            addr: config.peer_addr,
            source,
        })?;
        let resp_addr = resp.local_addr().map_err(|source| NodeError::Bind {
            what: "resp-addr",
            addr: config.resp_addr,
            source,
        })?;
        let http_addr = http.local_addr().map_err(|source| NodeError::Bind {
            what: "http-addr",
            addr: config.http_addr,
            source,
        })?;
        let mut shown = config.clone();
        shown.resp_addr = resp_addr;
        shown.http_addr = http_addr;
        shown.peer_addr = peer_addr;
        let config = Arc::new(shown);
        let me = Member {
            node_id: config.node_id.clone(),
            peer_addr: config
                .peer_advertise_addr
                .clone()
                .unwrap_or_else(|| peer_addr.to_string()),
            resp_addr: resp_addr.to_string(),
            http_addr: http_addr.to_string(),
            dc: config.dc.clone(),
            rack: config.rack.clone(),
            gossip_addr: if crate::netio::in_simulation() {
                String::new()
            } else {
                config
                    .gossip_advertise_addr
                    .unwrap_or_else(|| {
                        crate::gossip::gossip_addr(peer_addr, config.peer_advertise_addr.as_deref())
                    })
                    .to_string()
            },
        };
        let generation = crate::db::wall_ms();
        let cluster = Arc::new(Cluster::open(db.clone(), &config, me, generation)?);
        let (tx, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(crate::net::server::serve(
            peer,
            cluster.clone(),
            rx.clone(),
        )));
        if !crate::netio::in_simulation() {
            // Gossip: UDP on the peer port (see gossip.rs).
            cluster.start_gossip(peer_addr, &[]).await?;
            tasks.push(tokio::spawn(cluster.clone().run_gossip_poll(rx.clone())));
        }
        if !config.seeds.is_empty() {
            cluster.join(&config.seeds).await?;
        }
        if cluster.my_state() == crate::net::MemberState::Joining {
            // Not awaited at shutdown: a join may be cut short anywhere
            // (its progress is persisted per partition).
            tokio::spawn(cluster.clone().run_join());
        }
        for ks in db.catalog.list() {
            cluster.open_strong_groups(&ks.spec).await;
        }
        if crate::netio::in_simulation() {
            tasks.push(tokio::spawn(crate::resp::serve(
                resp,
                cluster.clone(),
                config.max_clients,
                rx.clone(),
                None,
            )));
        } else {
            let main = tokio::runtime::Handle::current();
            let resp_loop = crate::resp::spawn_loop(
                resp,
                cluster.clone(),
                config.max_clients,
                rx.clone(),
                main,
            )
            .map_err(|source| NodeError::Bind {
                what: "resp-addr",
                addr: resp_addr,
                source,
            })?;
            tasks.push(resp_loop);
        }
        let (db2, cfg2, rx2) = (cluster.clone(), config.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::http::serve(http, db2, cfg2, rx2).await {
                tracing::error!(error = %e, "http server failed");
            }
        }));
        tasks.push(tokio::spawn(
            cluster
                .clone()
                .run_prober(Duration::from_millis(250), rx.clone()),
        ));
        tasks.push(tokio::spawn(cluster.clone().run_aae(
            Duration::from_millis(config.aae_interval_ms),
            rx.clone(),
        )));
        if !crate::netio::in_simulation() {
            tasks.push(tokio::spawn(cluster.clone().run_cleanup(rx.clone())));
        }
        tasks.push(tokio::spawn(crate::hints::run_replay(
            cluster.clone(),
            Duration::from_millis(500),
            rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::strong::run_sweeper(
            cluster.clone(),
            Duration::from_millis(config.sweep_interval_ms.max(500)),
            rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::strong_move::run_voter_mover(
            cluster.clone(),
            Duration::from_secs(1),
            rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::expiry::run_sweeper(
            db.clone(),
            Duration::from_millis(config.sweep_interval_ms),
            rx,
        )));
        tracing::info!(node_id = %config.node_id, %resp_addr, %http_addr, fsync = %config.fsync, "node started");
        Ok(Node {
            db,
            cluster,
            resp_addr,
            http_addr,
            peer_addr,
            shutdown: tx,
            tasks,
        })
    }

    /// Stops serving, waits for the tasks, and syncs storage.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.cluster.stop_gossip();
        for t in self.tasks {
            let _ = t.await;
        }
        self.cluster.groups.shutdown().await;
        if let Err(e) = self.db.storage.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
    }
}
