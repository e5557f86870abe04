//! What the benchmark talks to. [`Target`] is one client connection to a
//! system under test with GET and SET (and optionally a pipelined batch);
//! [`RespTarget`] implements it over RESP with `fulcrum-client`, so it works
//! against Fulcrum and Redis alike; `etcd.rs` implements it for etcd. A
//! further system is another implementation and another `--target` value.

use std::future::Future;

use anyhow::{bail, Context};
use fulcrum_client::{Client, ClientError, Frame};

/// Where clients connect, and the keyspace they use.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address as the target understands it (`host:port` for RESP).
    pub addr: String,
    /// Keyspace every connection selects first (RESP: `USE name`).
    pub keyspace: Option<String>,
}

/// One operation of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// Read a key.
    Get(&'a [u8]),
    /// Write a key.
    Set(&'a [u8], &'a [u8]),
}

/// How one operation ended, as far as the server is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// GET returned a value, or SET was acknowledged.
    Done,
    /// GET found no value (still a success).
    Miss,
    /// The server answered with an error, or with a reply that does not
    /// fit the command. Never counted as a success.
    Failed {
        /// The error code: the first word of the error text (`ERR`,
        /// `NOTSTRONG`, `TOOLARGE`), or `client:unexpected-reply`.
        code: String,
        /// The whole message, kept as an example.
        message: String,
    },
}

impl Outcome {
    /// An outcome for an error reply `-<message>`.
    pub fn from_error_reply(message: &str) -> Outcome {
        let code = message
            .split_whitespace()
            .next()
            .unwrap_or("(empty-error)")
            .to_string();
        Outcome::Failed {
            code,
            message: message.to_string(),
        }
    }
}

/// The connection itself failed (I/O error, timeout, malformed reply,
/// closed by the server). The connection must be replaced; every
/// operation of the batch counts as failed with `client:<kind>`.
#[derive(Debug)]
pub struct TransportError {
    /// Short class of the failure: `io`, `timeout`, `protocol`, `closed`,
    /// `connect`.
    pub kind: &'static str,
    /// What happened, for the example shown in the summary.
    pub message: String,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for TransportError {}

impl From<ClientError> for TransportError {
    fn from(e: ClientError) -> Self {
        let kind = match &e {
            ClientError::Io { .. } => "io",
            ClientError::Timeout { .. } => "timeout",
            ClientError::Protocol(_) => "protocol",
            ClientError::Closed => "closed",
            _ => "other",
        };
        TransportError {
            kind,
            message: e.to_string(),
        }
    }
}

/// One connection to a system under test. Each benchmark client owns one.
///
/// The methods return `Send` futures so that clients run as tokio tasks;
/// implementations simply write `async fn`.
pub trait Target: Send + Sized + 'static {
    /// Short name, reported in the summary (`resp`).
    const NAME: &'static str;

    /// Checks an endpoint once before the clients start: reachable, and the
    /// keyspace usable. If the keyspace is missing and `create_mode` is
    /// given, creates it with that mode.
    fn prepare(
        endpoint: &Endpoint,
        create_mode: Option<&str>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Opens a connection, with the endpoint's keyspace selected.
    fn connect(endpoint: &Endpoint) -> impl Future<Output = Result<Self, TransportError>> + Send;

    /// Reads `key`.
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Outcome, TransportError>> + Send;

    /// Writes `value` under `key`.
    fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
    ) -> impl Future<Output = Result<Outcome, TransportError>> + Send;

    /// Runs `ops` and appends one outcome per operation, in order, to `out`.
    /// The default runs them one after the other; a target with pipelining
    /// sends them in one round trip.
    fn batch(
        &mut self,
        ops: &[Op<'_>],
        out: &mut Vec<Outcome>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        async move {
            for op in ops {
                let outcome = match *op {
                    Op::Get(key) => self.get(key).await?,
                    Op::Set(key, value) => self.set(key, value).await?,
                };
                out.push(outcome);
            }
            Ok(())
        }
    }
}

/// A RESP connection (Fulcrum or any Redis-compatible server).
#[derive(Debug)]
pub struct RespTarget {
    client: Client,
}

impl RespTarget {
    /// `USE keyspace`, requiring `+OK`; the error reply otherwise.
    async fn use_keyspace(client: &mut Client, keyspace: &str) -> Result<(), UseError> {
        match client.cmd(&["USE", keyspace]).await {
            Ok(Frame::Simple(s)) if s == "OK" => Ok(()),
            Ok(Frame::Error(e)) => Err(UseError::Refused(e)),
            Ok(other) => Err(UseError::Refused(format!("unexpected reply {other:?}"))),
            Err(e) => Err(UseError::Transport(e.into())),
        }
    }
}

/// Why `USE` failed.
enum UseError {
    /// The server said no (most likely: no such keyspace).
    Refused(String),
    /// The connection failed.
    Transport(TransportError),
}

impl Target for RespTarget {
    const NAME: &'static str = "resp";

    async fn prepare(endpoint: &Endpoint, create_mode: Option<&str>) -> anyhow::Result<()> {
        let addr = &endpoint.addr;
        let mut client = Client::connect(addr.as_str())
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let Some(keyspace) = &endpoint.keyspace else {
            return Ok(());
        };
        let refusal = match Self::use_keyspace(&mut client, keyspace).await {
            Ok(()) => return Ok(()),
            Err(UseError::Transport(e)) => {
                return Err(e).with_context(|| format!("{addr}: USE {keyspace}"))
            }
            Err(UseError::Refused(msg)) => msg,
        };
        let Some(mode) = create_mode else {
            bail!("{addr}: USE {keyspace} failed: {refusal} (--create-keyspace MODE creates it)");
        };
        let reply = client
            .cmd(&["KEYSPACE", "CREATE", keyspace.as_str(), "MODE", mode])
            .await
            .with_context(|| format!("{addr}: KEYSPACE CREATE {keyspace}"))?;
        match reply {
            Frame::Simple(s) if s == "OK" => {}
            // Another bench (or another address of the same cluster) won
            // the race; USE below tells whether it is usable.
            Frame::Error(e) if e.contains("exists") => {}
            other => bail!("{addr}: KEYSPACE CREATE {keyspace} MODE {mode}: {other:?}"),
        }
        match Self::use_keyspace(&mut client, keyspace).await {
            Ok(()) => Ok(()),
            Err(UseError::Refused(msg)) => bail!("{addr}: USE {keyspace} after creating it: {msg}"),
            Err(UseError::Transport(e)) => {
                Err(e).with_context(|| format!("{addr}: USE {keyspace}"))
            }
        }
    }

    async fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let mut client =
            Client::connect(endpoint.addr.as_str())
                .await
                .map_err(|e| TransportError {
                    kind: "connect",
                    message: format!("{}: {e}", endpoint.addr),
                })?;
        if let Some(keyspace) = &endpoint.keyspace {
            match Self::use_keyspace(&mut client, keyspace).await {
                Ok(()) => {}
                Err(UseError::Transport(e)) => return Err(e),
                Err(UseError::Refused(msg)) => {
                    return Err(TransportError {
                        kind: "connect",
                        message: format!("{}: USE {keyspace}: {msg}", endpoint.addr),
                    })
                }
            }
        }
        Ok(RespTarget { client })
    }

    async fn get(&mut self, key: &[u8]) -> Result<Outcome, TransportError> {
        let reply = self.client.cmd(&[b"GET".as_slice(), key]).await?;
        Ok(get_outcome(reply))
    }

    async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<Outcome, TransportError> {
        let reply = self.client.cmd(&[b"SET".as_slice(), key, value]).await?;
        Ok(set_outcome(reply))
    }

    async fn batch(
        &mut self,
        ops: &[Op<'_>],
        out: &mut Vec<Outcome>,
    ) -> Result<(), TransportError> {
        if let [op] = ops {
            let outcome = match *op {
                Op::Get(key) => self.get(key).await?,
                Op::Set(key, value) => self.set(key, value).await?,
            };
            out.push(outcome);
            return Ok(());
        }
        let args: Vec<[&[u8]; 3]> = ops
            .iter()
            .map(|op| match *op {
                Op::Get(key) => [b"GET".as_slice(), key, b""],
                Op::Set(key, value) => [b"SET".as_slice(), key, value],
            })
            .collect();
        let cmds: Vec<&[&[u8]]> = args
            .iter()
            .zip(ops)
            .map(|(a, op)| match op {
                Op::Get(_) => &a[..2],
                Op::Set(..) => &a[..],
            })
            .collect();
        let replies = self.client.pipeline(&cmds).await?;
        out.extend(ops.iter().zip(replies).map(|(op, reply)| match op {
            Op::Get(_) => get_outcome(reply),
            Op::Set(..) => set_outcome(reply),
        }));
        Ok(())
    }
}

/// GET: a bulk string is a hit, null a miss.
fn get_outcome(reply: Frame) -> Outcome {
    match reply {
        Frame::Bulk(_) | Frame::Verbatim(..) => Outcome::Done,
        Frame::Null => Outcome::Miss,
        Frame::Error(e) => Outcome::from_error_reply(&e),
        other => unexpected("GET", &other),
    }
}

/// SET: only `+OK` is a success.
fn set_outcome(reply: Frame) -> Outcome {
    match reply {
        Frame::Simple(s) if s == "OK" => Outcome::Done,
        Frame::Error(e) => Outcome::from_error_reply(&e),
        other => unexpected("SET", &other),
    }
}

fn unexpected(command: &str, reply: &Frame) -> Outcome {
    Outcome::Failed {
        code: "client:unexpected-reply".to_string(),
        message: format!("{command} answered {reply:?}"),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn error_code_is_the_first_word() {
        assert_eq!(
            Outcome::from_error_reply("NOTSTRONG INCR needs a strong keyspace"),
            Outcome::Failed {
                code: "NOTSTRONG".into(),
                message: "NOTSTRONG INCR needs a strong keyspace".into()
            }
        );
        let Outcome::Failed { code, .. } = Outcome::from_error_reply("") else {
            panic!("an error reply is a failure");
        };
        assert_eq!(code, "(empty-error)");
    }

    #[test]
    fn maps_get_replies() {
        assert_eq!(get_outcome(Frame::Bulk(Bytes::from("v"))), Outcome::Done);
        assert_eq!(get_outcome(Frame::Null), Outcome::Miss);
        assert!(matches!(
            get_outcome(Frame::Error("ERR boom".into())),
            Outcome::Failed { code, .. } if code == "ERR"
        ));
        assert!(matches!(
            get_outcome(Frame::Integer(1)),
            Outcome::Failed { code, .. } if code == "client:unexpected-reply"
        ));
    }

    #[test]
    fn maps_set_replies_and_never_counts_errors_as_success() {
        assert_eq!(set_outcome(Frame::ok()), Outcome::Done);
        assert!(matches!(
            set_outcome(Frame::Error("ERR write not durable: x".into())),
            Outcome::Failed { code, .. } if code == "ERR"
        ));
        // A SET that did not happen (conditional SET answering nil).
        assert!(matches!(set_outcome(Frame::Null), Outcome::Failed { .. }));
        assert!(matches!(
            set_outcome(Frame::Simple("QUEUED".into())),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn classifies_transport_errors() {
        assert_eq!(TransportError::from(ClientError::Closed).kind, "closed");
    }
}
