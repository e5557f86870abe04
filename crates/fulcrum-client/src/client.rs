//! The connection: sending commands (one, pipelined, or raw bytes) and
//! reading replies, under an optional I/O timeout.
//!
//! Every operation is cancel-safe with respect to the byte stream: requests
//! are queued in a write buffer that is drained as it is sent, replies are
//! decoded incrementally from a read buffer, and the client counts replies
//! it still owes to earlier commands. So when an operation times out, the
//! next command first finishes sending what was queued and discards the
//! late replies, and replies never get matched to the wrong command.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use fulcrum_proto::{encode_command, Frame, ReplyDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::error::ClientError;

/// I/O timeout used by [`Client::connect`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Read in chunks of at least this much free buffer space.
const READ_CHUNK: usize = 16 * 1024;

/// A connection to a RESP server (Fulcrum or Redis).
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: ReplyDecoder,
    timeout: Option<Duration>,
    /// Replies not yet read for commands queued by `cmd`/`pipeline`.
    owed: usize,
}

impl Client {
    /// Connects with [`DEFAULT_TIMEOUT`] as the I/O timeout.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if the connection fails, [`ClientError::Timeout`]
    /// if it takes longer than the timeout.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        Client::connect_with_timeout(addr, Some(DEFAULT_TIMEOUT)).await
    }

    /// Connects with the given I/O timeout (`None`: wait forever). The
    /// timeout applies to connecting and to each later operation as a whole.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub async fn connect_with_timeout(
        addr: impl ToSocketAddrs,
        timeout: Option<Duration>,
    ) -> Result<Client, ClientError> {
        let stream = within(timeout, "connect", async {
            TcpStream::connect(addr)
                .await
                .map_err(ClientError::io("connect"))
        })
        .await?;
        stream
            .set_nodelay(true)
            .map_err(ClientError::io("connect"))?;
        Ok(Client {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::new(),
            decoder: ReplyDecoder::new(),
            timeout,
            owed: 0,
        })
    }

    /// The I/O timeout for each operation.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Changes the I/O timeout (`None`: wait forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends one command and returns its reply. Error replies (`-ERR ...`)
    /// are returned as [`Frame::Error`], not as `Err`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`], [`ClientError::Protocol`],
    /// [`ClientError::Timeout`] or [`ClientError::Closed`].
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ClientError> {
        encode_command(args, &mut self.wbuf);
        self.owed += 1;
        let mut replies = within(self.timeout, "cmd", self.exchange(1)).await?;
        replies.pop().ok_or(ClientError::Closed)
    }

    /// Sends all commands in one write, then reads one reply per command,
    /// in order.
    ///
    /// # Errors
    ///
    /// As [`Client::cmd`]; the timeout covers the whole pipeline.
    pub async fn pipeline<C, A>(&mut self, cmds: &[C]) -> Result<Vec<Frame>, ClientError>
    where
        C: AsRef<[A]>,
        A: AsRef<[u8]>,
    {
        for c in cmds {
            encode_command(c.as_ref(), &mut self.wbuf);
        }
        self.owed += cmds.len();
        within(self.timeout, "pipeline", self.exchange(cmds.len())).await
    }

    /// Sends bytes as they are (for tests that send garbage or partial
    /// requests). Replies to them are read with [`Client::read_frame`].
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] or [`ClientError::Timeout`].
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.wbuf.extend_from_slice(bytes);
        within(self.timeout, "write", self.flush()).await
    }

    /// Reads the next reply from the stream, whatever it answers. A
    /// timeout here is harmless: call again to keep waiting.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`], [`ClientError::Protocol`],
    /// [`ClientError::Timeout`] or [`ClientError::Closed`] (also when the
    /// server closes mid-reply).
    pub async fn read_frame(&mut self) -> Result<Frame, ClientError> {
        let frame = within(self.timeout, "read", self.next_frame()).await?;
        self.owed = self.owed.saturating_sub(1);
        Ok(frame)
    }

    /// Shuts down the write side, telling the server no more requests come.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] or [`ClientError::Timeout`].
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        within(self.timeout, "shutdown", async {
            self.flush().await?;
            self.stream
                .shutdown()
                .await
                .map_err(ClientError::io("write"))
        })
        .await
    }

    /// Sends everything queued, then reads the `n` newest owed replies,
    /// discarding older (late) ones first.
    async fn exchange(&mut self, n: usize) -> Result<Vec<Frame>, ClientError> {
        self.flush().await?;
        while self.owed > n {
            self.next_frame().await?;
            self.owed -= 1;
        }
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            let frame = self.next_frame().await?;
            self.owed = self.owed.saturating_sub(1);
            replies.push(frame);
        }
        Ok(replies)
    }

    /// Writes the queued bytes. Cancel-safe: on cancellation the unsent
    /// rest stays queued.
    async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.wbuf.is_empty() {
            self.stream
                .write_all_buf(&mut self.wbuf)
                .await
                .map_err(ClientError::io("write"))?;
        }
        Ok(())
    }

    /// Decodes the next reply, reading as needed. Cancel-safe.
    async fn next_frame(&mut self) -> Result<Frame, ClientError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.rbuf)? {
                return Ok(frame);
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(ClientError::io("read"))?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// Runs `fut`, failing with [`ClientError::Timeout`] after `limit`.
async fn within<T>(
    limit: Option<Duration>,
    op: &'static str,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match limit {
        None => fut.await,
        Some(after) => tokio::time::timeout(after, fut)
            .await
            .map_err(|_| ClientError::Timeout { op, after })?,
    }
}
