//! The RESP listener: accepts client connections and runs one task per
//! connection until the shutdown signal.

mod conn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::netio::TcpListener;

/// Serves RESP on `listener` until `shutdown` turns true. The listener is
/// passed in so tests can bind `127.0.0.1:0`.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    max_clients: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let next_id = Arc::new(AtomicU64::new(1));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and similar: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let cluster = cluster.clone();
        let db = cluster.db.clone();
        let shutdown = shutdown.clone();
        let too_many = db.metrics.connections.get() as usize >= max_clients;
        tokio::spawn(async move {
            if too_many {
                conn::refuse(socket).await;
                return;
            }
            db.metrics.connections.inc();
            db.metrics.connections_total.inc();
            if let Err(e) = conn::run(socket, cluster, id, shutdown).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
            db.metrics.connections.dec();
        });
    }
}
