//! The peer listener: one task per peer connection reads request frames,
//! runs each request in its own task (a slow replica write does not hold
//! up a read behind it), and a writer task sends the responses back in
//! whatever order they finish.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;

use super::message::{Body, Envelope, PeerResponse};
use super::transport::codec;
use crate::cluster::Cluster;
use crate::netio::{TcpListener, TcpStream};

/// Serves peer requests until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((socket, peer)) => {
                let cluster = cluster.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(socket, cluster, shutdown).await {
                        tracing::debug!(%peer, error = %e, "peer connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    socket: TcpStream,
    cluster: Arc<Cluster>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    socket.set_nodelay(true)?;
    let (mut sink, mut frames) = Framed::new(socket, codec()).split();
    let (tx, mut rx) = mpsc::channel::<Envelope>(4096);
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            for env in batch {
                match env.encode() {
                    Ok(bytes) => {
                        if sink.feed(bytes).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode peer response"),
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    loop {
        let frame = tokio::select! {
            f = frames.next() => f,
            _ = shutdown.changed() => break,
        };
        let Some(frame) = frame else { break };
        let env = Envelope::decode(&frame?)?;
        let Body::Request(request) = env.body else {
            return Err("peer sent a response on a server connection".into());
        };
        let cluster = cluster.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let response = cluster.handle_peer(request).await;
            let _ = tx
                .send(Envelope {
                    id: env.id,
                    body: Body::Response(response),
                })
                .await;
        });
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// An error response carrying `message`.
pub fn error(message: impl std::fmt::Display) -> PeerResponse {
    PeerResponse::Error {
        message: message.to_string(),
    }
}
