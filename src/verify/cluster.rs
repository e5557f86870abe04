//! The cluster under test: `fulcrum server` child processes of the current
//! executable on loopback, each with its own data directory and log file,
//! peer traffic routed through a fault proxy per node ([`super::proxy`]).
//!
//! Node `i` (`n{i+1}`) listens for peers on its own port and advertises its
//! proxy's address, so every connection *to* node `i` crosses proxy `i`.
//! The first node starts without seeds; the others join through the first
//! node's advertised address; a restarted node joins through all the others.
//!
//! Faults on processes: [`TestCluster::kill9`] (SIGKILL; the node's proxy
//! stops listening too, so peers see refused connections as they would for
//! a dead host), [`TestCluster::restart`] (same data directory and ports),
//! [`TestCluster::pause`] / [`TestCluster::resume`] (SIGSTOP / SIGCONT).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fulcrum_client::{Client, Frame};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::proxy::FaultNet;

/// Process ids of the running nodes (`None`: not running), shared with the
/// proxies, which use them to tell which node opened a connection.
pub type Pids = Arc<RwLock<Vec<Option<u32>>>>;

/// How long a node may take to answer PING after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout of one admin request (PING, FAULT, KEYSPACE) or status probe.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Anti-entropy interval of the nodes under test: short, so that replicas
/// a partition left behind converge through Merkle exchange within seconds
/// of healing (the product default is 10 s).
pub const AAE_INTERVAL_MS: u64 = 1_000;

/// How the cluster is laid out.
pub struct ClusterOptions {
    pub nodes: usize,
    /// First of 4 consecutive ports per node; free ports if `None`.
    pub base_port: Option<u16>,
    /// Keep the data directory after the run.
    pub keep_data: bool,
}

/// One node's addresses and files.
pub struct NodeSpec {
    pub id: String,
    pub resp: SocketAddr,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    /// The proxy in front of `peer`: what the node advertises.
    pub advertise: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// The running cluster.
pub struct TestCluster {
    exe: PathBuf,
    pub nodes: Vec<NodeSpec>,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    pids: Pids,
    pub net: FaultNet,
    /// `FAULT STALE-READS` is on: a restarted node gets it again (runtime
    /// faults do not survive a restart).
    stale_reads: bool,
    root: PathBuf,
    /// Removes the data directory on drop unless the run keeps it.
    _tempdir: Option<tempfile::TempDir>,
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

impl TestCluster {
    /// Starts every node and waits until each one sees all members up.
    ///
    /// # Errors
    /// Ports, directories, spawning, or a cluster that does not come up.
    pub async fn start(options: ClusterOptions, timeout: Duration) -> anyhow::Result<TestCluster> {
        let exe = std::env::current_exe().context("cannot find the fulcrum executable")?;
        let tempdir = tempfile::Builder::new()
            .prefix("fulcrum-verify-")
            .tempdir()
            .context("cannot create a data directory")?;
        let (root, tempdir) = if options.keep_data {
            (tempdir.keep(), None)
        } else {
            (tempdir.path().to_path_buf(), Some(tempdir))
        };
        let ports = allocate_ports(options.nodes, options.base_port)?;
        let nodes: Vec<NodeSpec> = ports
            .chunks(4)
            .enumerate()
            .map(|(i, p)| NodeSpec {
                id: format!("n{}", i + 1),
                resp: loopback(p[0]),
                http: loopback(p[1]),
                peer: loopback(p[2]),
                advertise: loopback(p[3]),
                data_dir: root.join(format!("n{}", i + 1)),
                log: root.join(format!("n{}.log", i + 1)),
            })
            .collect();
        let pids: Pids = Arc::new(RwLock::new(vec![None; nodes.len()]));
        let routes = nodes.iter().map(|n| (n.advertise, n.peer)).collect();
        let net = FaultNet::start(routes, pids.clone())
            .await
            .context("cannot start the peer proxies")?;
        let mut cluster = TestCluster {
            exe,
            children: (0..nodes.len()).map(|_| None).collect(),
            paused: vec![false; nodes.len()],
            nodes,
            pids,
            net,
            stale_reads: false,
            root,
            _tempdir: tempdir,
        };
        for i in 0..cluster.len() {
            let seeds: Vec<SocketAddr> = if i == 0 {
                Vec::new()
            } else {
                vec![cluster.nodes[0].advertise]
            };
            cluster.spawn(i, &seeds)?;
            cluster.wait_ready(i, READY_TIMEOUT).await?;
        }
        cluster.wait_all_up(timeout).await?;
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn resp_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.resp).collect()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.paused[i]
    }

    fn spawn(&mut self, i: usize, seeds: &[SocketAddr]) -> anyhow::Result<()> {
        let n = &self.nodes[i];
        std::fs::create_dir_all(&n.data_dir)
            .with_context(|| format!("cannot create {}", n.data_dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .with_context(|| format!("cannot open {}", n.log.display()))?;
        let log_err = log.try_clone().context("cannot share the log file")?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("server")
            .arg("--node-id")
            .arg(&n.id)
            .arg("--data-dir")
            .arg(&n.data_dir)
            .arg("--resp-addr")
            .arg(n.resp.to_string())
            .arg("--http-addr")
            .arg(n.http.to_string())
            .arg("--peer-addr")
            .arg(n.peer.to_string())
            .arg("--peer-advertise-addr")
            .arg(n.advertise.to_string())
            .arg("--aae-interval-ms")
            .arg(AAE_INTERVAL_MS.to_string())
            .arg("--allow-faults");
        if !seeds.is_empty() {
            let list: Vec<String> = seeds.iter().map(ToString::to_string).collect();
            cmd.arg("--seeds").arg(list.join(","));
        }
        // The node reads FULCRUM_* variables as configuration; the caller's
        // environment must not change the cluster under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FULCRUM_") {
                cmd.env_remove(&key);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start node {}", n.id))?;
        self.set_pid(i, child.id());
        self.children[i] = Some(child);
        self.paused[i] = false;
        self.net.set_listening(i, true);
        Ok(())
    }

    fn set_pid(&self, i: usize, pid: Option<u32>) {
        let mut pids = self
            .pids
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pids[i] = pid;
    }

    /// Waits until node `i` answers PING.
    async fn wait_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.children[i].as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.children[i] = None;
                    self.set_pid(i, None);
                    bail!(
                        "node {} exited during startup ({status}); see {}",
                        self.nodes[i].id,
                        self.nodes[i].log.display()
                    );
                }
            }
            if ping(self.nodes[i].resp).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not answer PING within {timeout:?}; see {}",
                    self.nodes[i].id,
                    self.nodes[i].log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node's `/status` lists all nodes as up members.
    ///
    /// # Errors
    /// The deadline passed; the message says what the nodes last reported.
    pub async fn wait_all_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut problem = None;
            for (i, n) in self.nodes.iter().enumerate() {
                match self.status(i).await {
                    Ok(s) => {
                        let up = s.members.iter().filter(|m| m.state == "up").count();
                        if s.members.len() != self.len() || up != self.len() {
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

    /// Node `i`'s `/status`.
    ///
    /// # Errors
    /// Connection, HTTP or JSON failure.
    pub async fn status(&self, i: usize) -> anyhow::Result<Status> {
        let body = tokio::time::timeout(ADMIN_TIMEOUT, http_get(self.nodes[i].http, "/status"))
            .await
            .context("/status timed out")??;
        serde_json::from_str(&body).context("unreadable /status")
    }

    /// Node `i`'s Merkle roots of eventual keyspace `keyspace`.
    ///
    /// # Errors
    /// Connection, HTTP or JSON failure.
    pub async fn anti_entropy(&self, i: usize, keyspace: &str) -> anyhow::Result<AntiEntropy> {
        let path = format!("/anti-entropy/{keyspace}");
        let body = tokio::time::timeout(ADMIN_TIMEOUT, http_get(self.nodes[i].http, &path))
            .await
            .with_context(|| format!("{path} timed out"))??;
        serde_json::from_str(&body).with_context(|| format!("unreadable {path}"))
    }

    /// Sends one command to node `i` on a fresh connection.
    ///
    /// # Errors
    /// Transport failure or an error reply.
    pub async fn admin(&self, i: usize, args: &[&str]) -> anyhow::Result<Frame> {
        self.admin_within(i, args, ADMIN_TIMEOUT).await
    }

    /// As [`TestCluster::admin`], waiting up to `timeout` for the reply.
    ///
    /// # Errors
    /// As [`TestCluster::admin`].
    pub async fn admin_within(
        &self,
        i: usize,
        args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Frame> {
        let mut c = Client::connect_with_timeout(self.nodes[i].resp, Some(timeout))
            .await
            .with_context(|| format!("cannot connect to {}", self.nodes[i].id))?;
        let reply = c
            .cmd(args)
            .await
            .with_context(|| format!("{} on {}", args.join(" "), self.nodes[i].id))?;
        if let Frame::Error(e) = &reply {
            bail!("{} on {}: {e}", args.join(" "), self.nodes[i].id);
        }
        Ok(reply)
    }

    /// `FAULT DELAY-PUTS ms` on node `i` (0 turns it off).
    ///
    /// # Errors
    /// As [`TestCluster::admin`].
    pub async fn set_delay_puts(&self, i: usize, ms: u64) -> anyhow::Result<()> {
        self.admin(i, &["FAULT", "DELAY-PUTS", &ms.to_string()])
            .await
            .map(drop)
    }

    /// `FAULT STALE-READS on|off` on every node, and on every node
    /// restarted later while it is on.
    ///
    /// # Errors
    /// As [`TestCluster::admin`].
    pub async fn set_stale_reads(&mut self, on: bool) -> anyhow::Result<()> {
        self.stale_reads = on;
        let word = if on { "on" } else { "off" };
        for i in 0..self.len() {
            if self.is_running(i) {
                self.admin(i, &["FAULT", "STALE-READS", word]).await?;
            }
        }
        Ok(())
    }

    /// SIGKILL node `i` and close its proxy (peers see a dead host).
    ///
    /// # Errors
    /// The signal could not be delivered.
    pub async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        self.net.set_listening(i, false);
        if let Some(mut child) = self.children[i].take() {
            child
                .start_kill()
                .with_context(|| format!("cannot kill {}", self.nodes[i].id))?;
            let _ = child.wait().await;
        }
        self.set_pid(i, None);
        self.paused[i] = false;
        Ok(())
    }

    /// Starts node `i` again on its data directory and ports, joining
    /// through the other nodes, and waits until it answers PING.
    ///
    /// # Errors
    /// Spawning failed or the node did not come up.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let seeds: Vec<SocketAddr> = (0..self.len())
            .filter(|&j| j != i)
            .map(|j| self.nodes[j].advertise)
            .collect();
        self.spawn(i, &seeds)?;
        self.wait_ready(i, READY_TIMEOUT).await?;
        if self.stale_reads {
            self.admin(i, &["FAULT", "STALE-READS", "on"]).await?;
        }
        Ok(())
    }

    /// SIGSTOP node `i`.
    ///
    /// # Errors
    /// The node is not running or `kill` failed.
    pub async fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "STOP").await?;
        self.paused[i] = true;
        Ok(())
    }

    /// SIGCONT node `i`.
    ///
    /// # Errors
    /// As [`TestCluster::pause`].
    pub async fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "CONT").await?;
        self.paused[i] = false;
        Ok(())
    }

    async fn signal(&self, i: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self.children[i]
            .as_ref()
            .and_then(Child::id)
            .with_context(|| format!("node {} is not running", self.nodes[i].id))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .with_context(|| format!("cannot run kill -{signal}"))?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed: {status}");
        }
        Ok(())
    }

    /// Stops every node: SIGCONT if paused, SIGTERM, then SIGKILL after a
    /// grace period.
    ///
    /// # Errors
    /// A node could not be signalled.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        for i in 0..self.len() {
            if self.children[i].is_none() {
                continue;
            }
            if self.paused[i] {
                if let Err(e) = self.resume(i).await {
                    first_error.get_or_insert(e);
                }
            }
            if let Err(e) = self.signal(i, "TERM").await {
                first_error.get_or_insert(e);
            }
        }
        for i in 0..self.len() {
            if let Some(mut child) = self.children[i].take() {
                if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
            self.set_pid(i, None);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Ports for `nodes` nodes: 4 consecutive from `base`, or free ones.
fn allocate_ports(nodes: usize, base: Option<u16>) -> anyhow::Result<Vec<u16>> {
    let count = nodes * 4;
    if let Some(base) = base {
        let last = usize::from(base) + count - 1;
        if last > usize::from(u16::MAX) {
            bail!("--base-port {base} leaves no room for {count} ports");
        }
        return Ok((0..count).map(|k| base + k as u16).collect());
    }
    // Hold every listener until all ports are chosen, so they are distinct.
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<Result<Vec<u16>, std::io::Error>>()
        .context("cannot read a free port")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn ping(addr: SocketAddr) -> bool {
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

    #[test]
    fn base_port_layout_is_consecutive() {
        let ports = allocate_ports(2, Some(9000)).expect("ports");
        assert_eq!(ports, (9000..9008).collect::<Vec<_>>());
        assert!(allocate_ports(3, Some(u16::MAX - 2)).is_err());
    }
}
