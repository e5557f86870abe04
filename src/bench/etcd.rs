//! [`EtcdTarget`]: the benchmark's GET and SET against etcd's v3 API (gRPC,
//! the `etcd-client` crate), so one load generator measures Fulcrum and
//! etcd alike.
//!
//! The mapping: SET is a `Put`, GET a `Range` of one key with etcd's
//! default `serializable = false`, that is a linearizable read (etcd's
//! leader confirms its leadership with a quorum: read index). Keys and
//! values are the same bytes the RESP target sends (`key:<n>`, a
//! `--value-size` value). Every benchmark client owns its own `Client`, one
//! HTTP/2 connection to its endpoint, as the RESP target owns one TCP
//! connection. etcd has no keyspaces, so `--keyspace` is refused.

use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions, Error, KvClient};

use super::target::{Endpoint, Outcome, Target, TransportError};

/// Bound on one request: a stuck request becomes an error instead of
/// stalling its client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One etcd connection.
pub struct EtcdTarget {
    kv: KvClient,
}

impl EtcdTarget {
    async fn open(addr: &str) -> Result<Client, Error> {
        let options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT);
        Client::connect([addr], Some(options)).await
    }
}

impl Target for EtcdTarget {
    const NAME: &'static str = "etcd";

    async fn prepare(endpoint: &Endpoint, create_mode: Option<&str>) -> anyhow::Result<()> {
        let addr = &endpoint.addr;
        if endpoint.keyspace.is_some() || create_mode.is_some() {
            bail!("etcd has no keyspaces: drop --keyspace and --create-keyspace for --target etcd");
        }
        let client = Self::open(addr)
            .await
            .with_context(|| format!("cannot connect to etcd at {addr}"))?;
        // A linearizable read: the endpoint is up and its cluster has a
        // leader and a quorum.
        client
            .kv_client()
            .get("fulcrum-bench-probe", None)
            .await
            .with_context(|| format!("etcd at {addr} does not answer a linearizable read"))?;
        Ok(())
    }

    async fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let client = Self::open(&endpoint.addr)
            .await
            .map_err(|e| TransportError {
                kind: "connect",
                message: format!("{}: {e}", endpoint.addr),
            })?;
        Ok(EtcdTarget {
            kv: client.kv_client(),
        })
    }

    async fn get(&mut self, key: &[u8]) -> Result<Outcome, TransportError> {
        match self.kv.get(key, None).await {
            Ok(resp) if resp.kvs().is_empty() => Ok(Outcome::Miss),
            Ok(_) => Ok(Outcome::Done),
            Err(e) => outcome_of_error(e),
        }
    }

    async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<Outcome, TransportError> {
        match self.kv.put(key, value, None).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => outcome_of_error(e),
        }
    }
}

/// A gRPC status is the server's answer (counted by its code, e.g.
/// `Unavailable`, `DeadlineExceeded`); anything else means the connection
/// itself failed and is replaced.
fn outcome_of_error(e: Error) -> Result<Outcome, TransportError> {
    match e {
        Error::GRpcStatus(status) => Ok(Outcome::Failed {
            code: format!("{:?}", status.code()),
            message: status.message().to_string(),
        }),
        Error::TransportError(e) => Err(TransportError {
            kind: "io",
            message: e.to_string(),
        }),
        Error::IoError(e) => Err(TransportError {
            kind: "io",
            message: e.to_string(),
        }),
        other => Err(TransportError {
            kind: "other",
            message: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_side_errors_replace_the_connection() {
        let io = Error::IoError(std::io::Error::other("reset"));
        assert_eq!(outcome_of_error(io).unwrap_err().kind, "io");
        let other = Error::InvalidArgs("bad".into());
        assert_eq!(outcome_of_error(other).unwrap_err().kind, "other");
    }

    #[tokio::test]
    async fn keyspaces_are_refused_before_connecting() {
        // Port 1 on loopback: nothing listens, but the refusal comes first.
        let endpoint = Endpoint {
            addr: "127.0.0.1:1".into(),
            keyspace: Some("ks".into()),
        };
        let err = EtcdTarget::prepare(&endpoint, None).await.unwrap_err();
        assert!(err.to_string().contains("no keyspaces"), "{err:#}");
    }
}
