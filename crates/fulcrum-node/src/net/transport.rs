//! The peer client: one TCP connection per peer, shared by every request
//! to it. A connection task owns the socket; callers hand it requests
//! through a bounded channel (backpressure) and wait on a oneshot for the
//! response matched by envelope id (many in flight, answered in any
//! order). A broken connection fails its waiters and is replaced on the
//! next call.
//!
//! Failure classes matter to the quorum logic: a request that never left
//! this node (connect refused, connection already dead) is `Unreachable`
//! — the peer surely did not apply it; one that was sent but not answered
//! is `Unknown`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::message::{Body, Envelope, PeerRequest, PeerResponse, MAX_FRAME};
use crate::netio::{HashMap, TcpStream};

/// Requests queued per peer before callers wait (backpressure).
const QUEUE: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("peer {addr} did not answer within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("connection to peer {addr} lost with the request in flight")]
    Lost { addr: String },
    #[error("peer {addr} answered an error: {message}")]
    Remote { addr: String, message: String },
}

impl CallError {
    /// Whether the peer certainly did not apply the request.
    pub fn surely_not_applied(&self) -> bool {
        matches!(self, CallError::Unreachable { .. })
    }
}

type Reply = oneshot::Sender<Result<PeerResponse, CallError>>;

struct Outgoing {
    request: PeerRequest,
    reply: Reply,
}

#[derive(Clone)]
struct Handle {
    tx: mpsc::Sender<Outgoing>,
    alive: Arc<AtomicBool>,
    /// When the connection last delivered a response (any request's).
    answered: Arc<Mutex<Option<Instant>>>,
}

/// Connections to every peer this node talks to.
pub struct PeerPool {
    conns: Mutex<HashMap<String, Handle>>,
    connect_timeout: Duration,
}

pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

impl PeerPool {
    pub fn new(connect_timeout: Duration) -> Self {
        PeerPool {
            conns: Mutex::new(HashMap::default()),
            connect_timeout,
        }
    }

    /// Sends `request` to the peer at `addr` and waits up to `timeout` for
    /// its response.
    ///
    /// # Errors
    /// [`CallError`]: unreachable, timed out, lost, or an error answer.
    pub async fn call(
        &self,
        addr: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, CallError> {
        let handle = self.handle(addr);
        let (tx, rx) = oneshot::channel();
        let unreachable = |reason: &str| CallError::Unreachable {
            addr: addr.to_string(),
            reason: reason.to_string(),
        };
        let send = handle.tx.send(Outgoing { request, reply: tx });
        match tokio::time::timeout(timeout, send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(unreachable("connection closed")),
            Err(_) => return Err(unreachable("send queue full")),
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(CallError::Timeout {
                addr: addr.to_string(),
                after: timeout,
            }),
            Ok(Err(_)) => Err(CallError::Lost {
                addr: addr.to_string(),
            }),
            Ok(Ok(Ok(PeerResponse::Error { message }))) => Err(CallError::Remote {
                addr: addr.to_string(),
                message,
            }),
            Ok(Ok(result)) => result,
        }
    }

    /// Whether the connection to `addr` delivered a response (to any
    /// request) after `since`: the peer answers over this link, if slowly.
    pub fn answered_since(&self, addr: &str, since: Instant) -> bool {
        self.conns
            .lock()
            .get(addr)
            .and_then(|h| *h.answered.lock())
            .is_some_and(|at| at > since)
    }

    /// Drops the connection to `addr` (the next call dials anew). For a
    /// link that stopped delivering without an error, e.g. black-holed.
    pub fn reset(&self, addr: &str) {
        if let Some(h) = self.conns.lock().remove(addr) {
            h.alive.store(false, Ordering::Release);
        }
    }

    fn handle(&self, addr: &str) -> Handle {
        let mut conns = self.conns.lock();
        if let Some(h) = conns.get(addr) {
            if h.alive.load(Ordering::Acquire) {
                return h.clone();
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let alive = Arc::new(AtomicBool::new(true));
        let answered = Arc::new(Mutex::new(None));
        let h = Handle {
            tx,
            alive: alive.clone(),
            answered: answered.clone(),
        };
        conns.insert(addr.to_string(), h.clone());
        tokio::spawn(run_connection(
            addr.to_string(),
            rx,
            alive,
            answered,
            self.connect_timeout,
        ));
        h
    }
}

async fn run_connection(
    addr: String,
    mut rx: mpsc::Receiver<Outgoing>,
    alive: Arc<AtomicBool>,
    answered: Arc<Mutex<Option<Instant>>>,
    connect_timeout: Duration,
) {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            fail_queued(&addr, &mut rx, &alive, &e.to_string());
            return;
        }
        Err(_) => {
            fail_queued(&addr, &mut rx, &alive, "connect timed out");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut sink, mut frames) = Framed::new(stream, codec()).split();
    let mut pending: HashMap<u64, Reply> = HashMap::default();
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(first) = out else { break };
                // Feed everything queued, then flush once.
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                let mut broken = false;
                for o in batch {
                    let id = next_id;
                    next_id += 1;
                    let env = Envelope { id, body: Body::Request(o.request) };
                    match env.encode() {
                        Ok(bytes) => {
                            pending.insert(id, o.reply);
                            if !broken && sink.feed(bytes).await.is_err() {
                                broken = true;
                            }
                        }
                        Err(e) => {
                            let _ = o.reply.send(Err(CallError::Unreachable {
                                addr: addr.clone(),
                                reason: format!("cannot encode request: {e}"),
                            }));
                        }
                    }
                }
                if broken || sink.flush().await.is_err() {
                    break;
                }
            }
            frame = frames.next() => {
                let Some(Ok(bytes)) = frame else { break };
                match Envelope::decode(&bytes) {
                    Ok(Envelope { id, body: Body::Response(resp) }) => {
                        *answered.lock() = Some(Instant::now());
                        if let Some(reply) = pending.remove(&id) {
                            let _ = reply.send(Ok(resp));
                        }
                    }
                    Ok(_) => {
                        tracing::warn!(peer = %addr, "peer sent a request on a client connection");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %addr, error = %e, "bad frame from peer");
                        break;
                    }
                }
            }
        }
    }
    alive.store(false, Ordering::Release);
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(CallError::Lost { addr: addr.clone() }));
    }
    fail_queued(&addr, &mut rx, &alive, "connection closed");
}

fn fail_queued(addr: &str, rx: &mut mpsc::Receiver<Outgoing>, alive: &AtomicBool, reason: &str) {
    alive.store(false, Ordering::Release);
    rx.close();
    while let Ok(o) = rx.try_recv() {
        let _ = o.reply.send(Err(CallError::Unreachable {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }));
    }
}
