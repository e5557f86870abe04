//! The seam between a run and the cluster it tests: [`ClusterUnderTest`].
//!
//! Two backends implement it: [`super::cluster::TestCluster`] (child
//! processes on loopback, peer traffic through fault proxies) and
//! [`super::docker::DockerCluster`] (`fulcrum verify --docker`: containers
//! of a compose project, faults through the Docker engine). The nemesis,
//! the setup and the probes only see this trait; the history checkers see
//! neither.
//!
//! A backend brings the fault primitives (kill, restart, pause, resume,
//! isolate, heal) and the membership changes (join a node held back at the
//! start, make a member leave); everything that talks to a node over its client or HTTP
//! port (PING, `/status`, admin commands such as `FAULT CLOCK-OFFSET`) is
//! provided here once, on top of [`ClusterUnderTest::nodes`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fulcrum_client::{Client, Frame};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy::Mode;

/// Timeout of one admin request (PING, FAULT, KEYSPACE) or status probe.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `CLUSTER LEAVE` may take to answer: the leaving node waits the
/// settle time, then pushes every partition it holds to its next owners.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Anti-entropy interval of the nodes under test, whatever the backend:
/// short, so that replicas a partition left behind converge through Merkle
/// exchange within seconds of healing (the product default is 10 s).
pub const AAE_INTERVAL_MS: u64 = 1_000;

/// A node as the verifier reaches it.
#[derive(Debug, Clone)]
pub struct NodeAddrs {
    /// The node's `--node-id` (`n1`, `n2`, …).
    pub id: String,
    /// Its client port as reachable from the verifier.
    pub resp: SocketAddr,
    /// Its HTTP port as reachable from the verifier.
    pub http: SocketAddr,
}

/// `/status` as far as the verifier reads it.
#[derive(Debug, Deserialize)]
pub struct Status {
    pub members: Vec<MemberStatus>,
    pub keyspaces: Vec<KeyspaceStatus>,
}

#[derive(Debug, Deserialize)]
pub struct MemberStatus {
    pub node_id: String,
    pub state: String,
    pub dc: String,
    pub rack: String,
}

#[derive(Debug, Deserialize)]
pub struct KeyspaceStatus {
    pub name: String,
}

/// `/anti-entropy/{keyspace}`: a node's Merkle root of each partition it
/// replicates.
#[derive(Debug, Deserialize)]
pub struct AntiEntropy {
    pub roots: std::collections::BTreeMap<u32, String>,
}

/// Where a node stands in the cluster under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Held back at the start, to join during the run.
    HeldBack,
    /// Started (running or not: a killed member is still a member).
    Member,
    /// Left with `CLUSTER LEAVE`; its process has stopped.
    Left,
}

impl Membership {
    /// Node `index`'s membership at the start of a run of `members`
    /// started nodes: the ones past them are held back to join.
    pub fn at_start(index: usize, members: usize) -> Membership {
        if index < members {
            Membership::Member
        } else {
            Membership::HeldBack
        }
    }
}

/// A running cluster that the nemesis can hurt and heal.
///
/// Fault methods return a line saying what was done (for the run's event
/// log); their errors say what failed. Node indexes are `0..len()`; the
/// nodes in the cluster now are [`ClusterUnderTest::members`].
pub trait ClusterUnderTest {
    /// Every node, in order (`n1` first), a node held back to join later
    /// and nodes that left included.
    fn nodes(&self) -> &[NodeAddrs];

    /// Where node `i` stands.
    fn membership(&self, i: usize) -> Membership;

    /// Starts held-back node `i`, joining the members (`--seeds`), and
    /// waits until it answers PING. It is a member from then on.
    async fn join(&mut self, i: usize) -> anyhow::Result<String>;

    /// Sends `CLUSTER LEAVE` to member `i` (it moves its data away), waits
    /// until its process stopped, and counts it as left.
    async fn leave(&mut self, i: usize) -> anyhow::Result<String>;

    /// Where the run's data and logs are, for messages.
    fn location(&self) -> String;

    /// Whether node `i` is running (not killed).
    fn is_running(&self, i: usize) -> bool;

    /// Whether node `i` is paused.
    fn is_paused(&self, i: usize) -> bool;

    /// Kills node `i` without warning (SIGKILL).
    async fn kill(&mut self, i: usize) -> anyhow::Result<String>;

    /// Starts a killed node `i` again on its data and waits until it
    /// answers PING.
    async fn restart(&mut self, i: usize) -> anyhow::Result<String>;

    /// Freezes node `i`.
    async fn pause(&mut self, i: usize) -> anyhow::Result<String>;

    /// Thaws node `i`.
    async fn resume(&mut self, i: usize) -> anyhow::Result<String>;

    /// Cuts node `i` off from every other node (clients still reach it
    /// where the backend allows; see its docs). `mode` is how the bytes
    /// of cut links behave, for backends that can choose.
    async fn isolate(&mut self, i: usize, mode: Mode) -> anyhow::Result<String>;

    /// Lifts every partition.
    async fn heal_partitions(&mut self) -> anyhow::Result<String>;

    /// `FAULT STALE-READS on|off` on every node, and on every node
    /// restarted later while it is on (runtime faults do not survive a
    /// restart).
    async fn set_stale_reads(&mut self, on: bool) -> anyhow::Result<()>;

    /// Anything the report should know about how faults were applied.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Stops every node and releases what the run holds (unless the data
    /// is to be kept).
    async fn stop(&mut self) -> anyhow::Result<()>;

    fn len(&self) -> usize {
        self.nodes().len()
    }

    /// The nodes in the cluster now (started, not left), in order.
    fn members(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.membership(i) == Membership::Member)
            .collect()
    }

    /// The node held back to join, if it has not joined yet.
    fn held_back(&self) -> Option<usize> {
        (0..self.len()).find(|&i| self.membership(i) == Membership::HeldBack)
    }

    fn resp_addrs(&self) -> Vec<SocketAddr> {
        self.nodes().iter().map(|n| n.resp).collect()
    }

    /// `CLUSTER LEAVE` on node `i`; `+OK` once its data moved away and it
    /// announced `left` (it stops right after).
    ///
    /// # Errors
    /// As [`ClusterUnderTest::admin`].
    async fn send_leave(&self, i: usize) -> anyhow::Result<()> {
        self.admin_within(i, &["CLUSTER", "LEAVE"], LEAVE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Node `i`'s `/status`.
    ///
    /// # Errors
    /// Connection, HTTP or JSON failure.
    async fn status(&self, i: usize) -> anyhow::Result<Status> {
        let body = tokio::time::timeout(ADMIN_TIMEOUT, http_get(self.nodes()[i].http, "/status"))
            .await
            .context("/status timed out")??;
        serde_json::from_str(&body).context("unreadable /status")
    }

    /// Node `i`'s Merkle roots of eventual keyspace `keyspace`.
    ///
    /// # Errors
    /// Connection, HTTP or JSON failure.
    async fn anti_entropy(&self, i: usize, keyspace: &str) -> anyhow::Result<AntiEntropy> {
        let path = format!("/anti-entropy/{keyspace}");
        let body = tokio::time::timeout(ADMIN_TIMEOUT, http_get(self.nodes()[i].http, &path))
            .await
            .with_context(|| format!("{path} timed out"))??;
        serde_json::from_str(&body).with_context(|| format!("unreadable {path}"))
    }

    /// Waits until every member's `/status` lists exactly the members, all
    /// up.
    ///
    /// # Errors
    /// The deadline passed; the message says what the nodes last reported.
    async fn wait_all_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut problem = None;
            let members = self.members();
            let ids: std::collections::BTreeSet<&str> = members
                .iter()
                .map(|&i| self.nodes()[i].id.as_str())
                .collect();
            for &i in &members {
                let n = &self.nodes()[i];
                match self.status(i).await {
                    Ok(s) => {
                        let up = s
                            .members
                            .iter()
                            .filter(|m| m.state == "up" && ids.contains(m.node_id.as_str()))
                            .count();
                        if s.members.len() != ids.len() || up != ids.len() {
                            problem = Some(format!(
                                "{} sees {} members, {up} up",
                                n.id,
                                s.members.len()
                            ));
                            break;
                        }
                    }
                    Err(e) => {
                        problem = Some(format!("{}: {e:#}", n.id));
                        break;
                    }
                }
            }
            let Some(problem) = problem else {
                return Ok(());
            };
            if Instant::now() > deadline {
                bail!("cluster not fully up after {timeout:?}: {problem}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends one command to node `i` on a fresh connection.
    ///
    /// # Errors
    /// Transport failure or an error reply.
    async fn admin(&self, i: usize, args: &[&str]) -> anyhow::Result<Frame> {
        self.admin_within(i, args, ADMIN_TIMEOUT).await
    }

    /// As [`ClusterUnderTest::admin`], waiting up to `timeout` for the reply.
    ///
    /// # Errors
    /// As [`ClusterUnderTest::admin`].
    async fn admin_within(
        &self,
        i: usize,
        args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Frame> {
        let node = &self.nodes()[i];
        let mut c = Client::connect_with_timeout(node.resp, Some(timeout))
            .await
            .with_context(|| format!("cannot connect to {}", node.id))?;
        let reply = c
            .cmd(args)
            .await
            .with_context(|| format!("{} on {}", args.join(" "), node.id))?;
        if let Frame::Error(e) = &reply {
            bail!("{} on {}: {e}", args.join(" "), node.id);
        }
        Ok(reply)
    }

    /// `FAULT DELAY-PUTS ms` on node `i` (0 turns it off).
    ///
    /// # Errors
    /// As [`ClusterUnderTest::admin`].
    async fn set_delay_puts(&self, i: usize, ms: u64) -> anyhow::Result<()> {
        self.admin(i, &["FAULT", "DELAY-PUTS", &ms.to_string()])
            .await
            .map(drop)
    }
}

/// Whether `addr` answers PING within a second.
pub async fn ping(addr: SocketAddr) -> bool {
    let Ok(mut c) = Client::connect_with_timeout(addr, Some(Duration::from_secs(1))).await else {
        return false;
    };
    c.ping().await.is_ok()
}

/// A minimal HTTP/1.1 GET; returns the body of a 200 answer.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("no status line")
        );
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

/// Decodes a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
