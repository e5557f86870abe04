//! Typed helpers for the common commands: error replies become
//! [`ClientError::ServerError`], wrong reply types
//! [`ClientError::UnexpectedReply`].

use bytes::Bytes;
use fulcrum_proto::Frame;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// `PING`; succeeds on `+PONG`.
    ///
    /// # Errors
    ///
    /// Transport errors as [`Client::cmd`], [`ClientError::ServerError`] on
    /// an error reply, [`ClientError::UnexpectedReply`] otherwise.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        match server_result(self.cmd(&["PING"]).await?)? {
            Frame::Simple(s) if s == "PONG" => Ok(()),
            reply => Err(unexpected("PING", reply)),
        }
    }

    /// `GET key`; `None` when the key does not exist.
    ///
    /// # Errors
    ///
    /// As [`Client::ping`].
    pub async fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, ClientError> {
        match server_result(self.cmd(&[b"GET".as_slice(), key.as_ref()]).await?)? {
            Frame::Bulk(b) => Ok(Some(b)),
            Frame::Null => Ok(None),
            reply => Err(unexpected("GET", reply)),
        }
    }

    /// `SET key value`; succeeds on `+OK`.
    ///
    /// # Errors
    ///
    /// As [`Client::ping`].
    pub async fn set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let reply = self
            .cmd(&[b"SET".as_slice(), key.as_ref(), value.as_ref()])
            .await?;
        match server_result(reply)? {
            Frame::Simple(s) if s == "OK" => Ok(()),
            reply => Err(unexpected("SET", reply)),
        }
    }

    /// `DEL key [key ...]`; the number of keys removed.
    ///
    /// # Errors
    ///
    /// As [`Client::ping`].
    pub async fn del<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<i64, ClientError> {
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"DEL");
        args.extend(keys.iter().map(AsRef::as_ref));
        match server_result(self.cmd(&args).await?)? {
            Frame::Integer(n) => Ok(n),
            reply => Err(unexpected("DEL", reply)),
        }
    }
}

/// Turns an error reply into [`ClientError::ServerError`].
fn server_result(reply: Frame) -> Result<Frame, ClientError> {
    match reply {
        Frame::Error(msg) => Err(ClientError::ServerError(msg)),
        other => Ok(other),
    }
}

fn unexpected(command: &'static str, reply: Frame) -> ClientError {
    ClientError::UnexpectedReply { command, reply }
}
