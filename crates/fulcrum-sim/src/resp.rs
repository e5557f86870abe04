//! A minimal RESP client over turmoil's simulated TCP (fulcrum-client is
//! built on `tokio::net` and cannot dial a simulated host): requests are
//! encoded with fulcrum-proto's `encode_command`, replies parsed with its
//! `ReplyDecoder`. One request at a time; any I/O error or timeout leaves
//! the connection in an unknown state, so the caller drops it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use fulcrum_proto::{encode_command, Frame, ReplyDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

/// Why a request got no reply.
#[derive(Debug)]
pub enum ClientError {
    /// Connect, read or write failed, or the server closed the connection.
    Io(String),
    /// No reply within the timeout (the request may still take effect).
    Timeout,
    /// The reply bytes did not parse.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o: {e}"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

/// One connection to a node's RESP port.
pub struct SimClient {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: ReplyDecoder,
}

impl SimClient {
    /// Connects within `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Io`] or [`ClientError::Timeout`].
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<SimClient, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Io(e.to_string()))?;
        Ok(SimClient {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: BytesMut::with_capacity(1024),
            decoder: ReplyDecoder::new(),
        })
    }

    /// Sends one command and waits up to `timeout` for its reply. Error
    /// replies are `Ok(Frame::Error(..))`.
    ///
    /// # Errors
    /// As [`ClientError`]; drop the client afterwards.
    pub async fn cmd<A: AsRef<[u8]>>(
        &mut self,
        args: &[A],
        timeout: Duration,
    ) -> Result<Frame, ClientError> {
        self.wbuf.clear();
        encode_command(args, &mut self.wbuf);
        tokio::time::timeout(timeout, self.exchange())
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn exchange(&mut self) -> Result<Frame, ClientError> {
        self.stream
            .write_all(&self.wbuf)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            self.rbuf.reserve(4096);
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| ClientError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ClientError::Io("connection closed by the node".into()));
            }
        }
    }
}
