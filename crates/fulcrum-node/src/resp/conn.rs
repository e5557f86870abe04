//! One client connection: read bytes, decode every complete request,
//! execute them in order, wait once for durability if any of them wrote,
//! then write all replies in one go. Pipelined requests therefore share
//! one group-commit wait and one write syscall.
//!
//! Ordering rule: a reply to a write is sent only after the write is
//! durable by the node's fsync policy. If that fails, the writes' replies
//! become errors; reads in the same batch still answer.
//!
//! Batching: single-replica record writes are staged (`write_group.rs`),
//! not written one by one. A run of plain SETs stages them all; any other
//! command first commits what is staged, so it reads the connection's
//! earlier writes. Before waiting for durability the connection yields
//! once, so other connections with requests ready stage theirs into the
//! same storage commit.
//!
//! Where commands run: on the RESP event loop (`main` given, see the
//! module docs of `resp`), a command that touches only this node's
//! storage (`cmd::is_local`) runs on the connection's own task; any other
//! is spawned on the main runtime with the connection's state moved along
//! and back, and the connection waits for it before the next request, so
//! replies keep request order. On the loop the connection does not yield
//! before waiting for durability: the loop syncs only once it has run
//! every ready connection.

use std::sync::Arc;

use bytes::BytesMut;
use fulcrum_proto::{encode, Frame, ProtoError, RequestDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::cmd::{self, ConnState};
use crate::netio::TcpStream;

/// Most requests answered in one batch before replies are flushed.
const MAX_BATCH: usize = 1024;

/// Tells a client over the connection limit why it is refused.
pub async fn refuse(mut socket: TcpStream) {
    let mut out = BytesMut::new();
    encode(
        &Frame::error("ERR max number of clients reached"),
        fulcrum_proto::Protocol::Resp2,
        &mut out,
    );
    let _ = socket.write_all(&out).await;
}

pub async fn run(
    mut socket: TcpStream,
    cluster: Arc<Cluster>,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
    main: Option<Handle>,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let db = cluster.db.clone();
    let mut decoder = RequestDecoder::new(db.limits);
    let mut conn = ConnState::new(id);
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut outbuf = BytesMut::with_capacity(16 * 1024);
    let mut replies: Vec<(Frame, bool)> = Vec::new();
    loop {
        let mut close = false;
        let mut batch_full = false;
        loop {
            if replies.len() >= MAX_BATCH {
                batch_full = true;
                break;
            }
            if main.is_some() {
                // One unit of the event loop's work (a request or a read).
                db.loop_tick();
            }
            match decoder.decode(&mut inbuf) {
                Ok(Some(args)) => {
                    if !db.writes_idle()
                        && !cmd::runs_beside_staged(&args, |key| {
                            cmd::key_staged(&cluster, &conn, key)
                        })
                    {
                        // Reads after the staged writes must see them, and
                        // only once they are in the engine. A failure
                        // poisons the group: `durable` below turns the
                        // writes' replies into errors.
                        let _ = db.staged_committed().await;
                    }
                    conn.wrote = false;
                    let frame = match &main {
                        Some(main) if !cmd::is_local(&cluster, &conn, &args) => {
                            execute_on(main, &cluster, &mut conn, args).await?
                        }
                        _ => cmd::execute(&cluster, &mut conn, args).await,
                    };
                    replies.push((frame, conn.wrote));
                    if conn.quit {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if !e.is_fatal() => replies.push((e.to_frame(), false)),
                Err(e) => {
                    replies.push((fatal_frame(&e), false));
                    close = true;
                    break;
                }
            }
        }
        if !replies.is_empty() {
            if replies.iter().any(|(_, wrote)| *wrote) {
                if db.has_staged() && main.is_none() {
                    // Let connections with requests ready stage theirs:
                    // one storage commit for all of them. (On the event
                    // loop the sync waits for the loop to run dry anyway.)
                    tokio::task::yield_now().await;
                }
                db.metrics.durable_waits.inc();
                if let Err(e) = db.durable().await {
                    tracing::error!(error = %e, "durability failed; write replies become errors");
                    for (frame, wrote) in &mut replies {
                        if *wrote {
                            *frame = Frame::error(format!("ERR write not durable: {e}"));
                        }
                    }
                }
            }
            for (frame, _) in replies.drain(..) {
                encode(&frame, conn.protocol, &mut outbuf);
            }
            socket.write_all(&outbuf).await?;
            outbuf.clear();
            if outbuf.capacity() > 1024 * 1024 {
                outbuf = BytesMut::with_capacity(16 * 1024);
            }
        }
        if close {
            return Ok(());
        }
        if batch_full {
            // More requests may be buffered: decode them before reading.
            continue;
        }
        if inbuf.capacity() - inbuf.len() < 4096 {
            inbuf.reserve(16 * 1024);
        }
        let n = if main.is_some() {
            // On the event loop, shutdown drops the loop's runtime and this
            // task with it: no need to watch for it on every read.
            socket.read_buf(&mut inbuf).await?
        } else {
            tokio::select! {
                r = socket.read_buf(&mut inbuf) => r?,
                _ = shutdown.changed() => return Ok(()),
            }
        };
        if n == 0 {
            // Client closed; a half-received request is dropped unanswered.
            return Ok(());
        }
    }
}

/// Runs one command on the node's main runtime and waits for its reply,
/// moving the connection's state there and back. A command that panicked
/// (or a runtime shutting down) ends the connection, as a panic on the
/// connection's own task would.
async fn execute_on(
    main: &Handle,
    cluster: &Arc<Cluster>,
    conn: &mut ConnState,
    args: Vec<bytes::Bytes>,
) -> std::io::Result<Frame> {
    let mut state = std::mem::replace(conn, ConnState::new(conn.id));
    let cluster = cluster.clone();
    let ran = main
        .spawn(async move {
            let frame = cmd::execute(&cluster, &mut state, args).await;
            (frame, state)
        })
        .await;
    match ran {
        Ok((frame, state)) => {
            *conn = state;
            Ok(frame)
        }
        Err(e) => Err(std::io::Error::other(format!("command failed: {e}"))),
    }
}

fn fatal_frame(e: &ProtoError) -> Frame {
    e.to_frame()
}
