//! The RESP listener: accepts client connections and runs one task per
//! connection until the shutdown signal.
//!
//! Outside a simulation the listener and its connections run on their own
//! thread, an event loop ([`spawn_loop`]): a current-thread runtime that,
//! each time it runs out of ready work (and every few hundred requests if
//! it never does), commits the staged writes and, under `--fsync always`,
//! runs the pending sync inline (`Db::loop_idle`). One round of the loop
//! therefore reads every ready request, stages the writes, commits and
//! syncs them once, and answers them all, as Redis's event loop does.
//! Commands that touch only this node's storage run on the
//! loop; every other command runs on the node's main runtime (see
//! `conn.rs`), so nothing long-lived is spawned on the loop and no sync
//! there holds up the cluster's work.

mod conn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::netio::TcpListener;

/// Tasks the event loop runs between two looks for ready sockets under
/// `--fsync always` (tokio's default, kept for the other policies, is 61).
/// Looking more often lets requests that arrive while a round runs join
/// it, so the round's one fsync covers more of them: at
/// 50 clients doing `--fsync always` SETs, 8 gave about 37 requests per
/// fsync against 25 with the default, and 10–15% more SETs per second;
/// 1 and 2 cost more in polls than they saved (BENCHMARKS.md).
const LOOP_EVENT_INTERVAL: u32 = 8;

/// Starts the RESP event-loop thread (`fulcrum-resp`) serving `listener`
/// until `shutdown` turns true; commands that are not local run on `main`.
/// The returned task finishes when the thread has stopped.
///
/// # Errors
/// The listener cannot be moved to the thread, or the thread or its
/// runtime cannot start.
pub fn spawn_loop(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    max_clients: usize,
    shutdown: watch::Receiver<bool>,
    main: tokio::runtime::Handle,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = listener.into_std()?;
    let db = cluster.db.clone();
    let event_interval = if db.fsync == fulcrum_storage::FsyncPolicy::Always {
        LOOP_EVENT_INTERVAL
    } else {
        // Nothing to share: tokio's default polls less.
        61
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .event_interval(event_interval)
        .enable_all()
        .on_thread_park(move || db.loop_idle())
        .build()?;
    let (done, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("fulcrum-resp".to_string())
        .spawn(move || {
            fulcrum_storage::GroupCommit::sync_when_idle_on_this_thread();
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        serve(listener, cluster, max_clients, shutdown, Some(main)).await;
                    }
                    Err(e) => tracing::error!(error = %e, "RESP listener lost"),
                }
            });
            // Dropping the runtime ends the connections' tasks.
            drop(runtime);
            drop(done);
        })?;
    Ok(tokio::spawn(async move {
        let _ = stopped.await;
    }))
}

/// Serves RESP on `listener` until `shutdown` turns true. The listener is
/// passed in so tests can bind `127.0.0.1:0`. Commands that are not local
/// run on `main` when given, else on the caller's runtime.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    max_clients: usize,
    mut shutdown: watch::Receiver<bool>,
    main: Option<tokio::runtime::Handle>,
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
        let main = main.clone();
        let too_many = db.metrics.connections.get() as usize >= max_clients;
        tokio::spawn(async move {
            if too_many {
                conn::refuse(socket).await;
                return;
            }
            db.metrics.connections.inc();
            db.metrics.connections_total.inc();
            if let Err(e) = conn::run(socket, cluster, id, shutdown, main).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
            db.metrics.connections.dec();
        });
    }
}
