//! The cluster under test: `fulcrum server` child processes of the current
//! executable on loopback, each with its own data directory and log file,
//! peer traffic routed through a fault proxy per node ([`super::proxy`]).
//!
//! Node `i` (`n{i+1}`) listens for peers on its own port and advertises its
//! proxy's address, for TCP and for gossip (UDP, [`super::gossip_relay`]),
//! so every connection and datagram *to* node `i` crosses proxy `i`.
//! The first node starts without seeds; the others join through the first
//! node's advertised address; a restarted node joins through all the others.
//! A node held back for the `join` nemesis gets its ports and proxy at the
//! start but is spawned only when it joins, with every member as a seed.
//!
//! The local backend of [`ClusterUnderTest`]: `kill` is SIGKILL (the node's
//! proxy stops listening too, so peers see refused connections as they
//! would for a dead host), `restart` reuses the data directory and ports,
//! `pause` / `resume` are SIGSTOP / SIGCONT, `isolate` sets proxy rules,
//! `leave` sends `CLUSTER LEAVE` and waits for the process to exit (its
//! proxy then stops listening, as for a dead host).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use super::backend::{ping, ClusterUnderTest, Membership, NodeAddrs};
use super::proxy::{FaultNet, Mode};

/// Process ids of the running nodes (`None`: not running), shared with the
/// proxies, which use them to tell which node opened a connection.
pub type Pids = Arc<RwLock<Vec<Option<u32>>>>;

/// How long a node may take to answer PING after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the cluster is laid out.
pub struct ClusterOptions {
    /// Nodes started at the beginning.
    pub nodes: usize,
    /// Nodes held back to join during the run (numbered after `nodes`).
    pub held_back: usize,
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
    /// `nodes` as the [`ClusterUnderTest`] seam shows them.
    addrs: Vec<NodeAddrs>,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    membership: Vec<Membership>,
    pids: Pids,
    pub net: FaultNet,
    /// `FAULT STALE-READS` is on: a restarted node gets it again.
    stale_reads: bool,
    root: PathBuf,
    /// Removes the data directory on drop unless the run keeps it.
    _tempdir: Option<tempfile::TempDir>,
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
        let total = options.nodes + options.held_back;
        let ports = allocate_ports(total, 4, options.base_port)?;
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
        let addrs = nodes
            .iter()
            .map(|n| NodeAddrs {
                id: n.id.clone(),
                resp: n.resp,
                http: n.http,
            })
            .collect();
        let mut cluster = TestCluster {
            exe,
            addrs,
            children: (0..nodes.len()).map(|_| None).collect(),
            paused: vec![false; nodes.len()],
            membership: (0..nodes.len())
                .map(|i| Membership::at_start(i, options.nodes))
                .collect(),
            nodes,
            pids,
            net,
            stale_reads: false,
            root,
            _tempdir: tempdir,
        };
        for i in options.nodes..total {
            // Nothing listens behind a held-back node's proxy yet.
            cluster.net.set_listening(i, false);
        }
        for i in 0..options.nodes {
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
            .arg("--gossip-advertise-addr")
            .arg(n.advertise.to_string())
            .arg("--aae-interval-ms")
            .arg(super::backend::AAE_INTERVAL_MS.to_string())
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
                        "node {} exited during startup ({status}); see {}{}",
                        self.nodes[i].id,
                        self.nodes[i].log.display(),
                        log_tail(&self.nodes[i].log)
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

    /// The advertised peer addresses of the members other than `i`.
    fn seeds_for(&self, i: usize) -> Vec<SocketAddr> {
        self.members()
            .into_iter()
            .filter(|&j| j != i)
            .map(|j| self.nodes[j].advertise)
            .collect()
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
}

impl ClusterUnderTest for TestCluster {
    fn nodes(&self) -> &[NodeAddrs] {
        &self.addrs
    }

    fn location(&self) -> String {
        format!("data in {}", self.root.display())
    }

    fn membership(&self, i: usize) -> Membership {
        self.membership[i]
    }

    fn is_running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    /// Spawns held-back node `i` with every member as a seed.
    async fn join(&mut self, i: usize) -> anyhow::Result<String> {
        if self.membership[i] != Membership::HeldBack {
            bail!("{} is not held back", self.nodes[i].id);
        }
        let seeds = self.seeds_for(i);
        let started = Instant::now();
        self.spawn(i, &seeds)?;
        self.membership[i] = Membership::Member;
        self.wait_ready(i, READY_TIMEOUT).await?;
        Ok(format!(
            "started {} with --seeds of the {} members (answering after {:.1} s)",
            self.nodes[i].id,
            seeds.len(),
            started.elapsed().as_secs_f64()
        ))
    }

    /// `CLUSTER LEAVE`, then waits for the process to exit (SIGKILL if it
    /// lingers after answering).
    async fn leave(&mut self, i: usize) -> anyhow::Result<String> {
        let name = self.nodes[i].id.clone();
        self.send_leave(i).await?;
        let mut how = "exited";
        if let Some(mut child) = self.children[i].take() {
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                how = "did not exit on its own and was killed";
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        self.set_pid(i, None);
        self.net.set_listening(i, false);
        self.membership[i] = Membership::Left;
        Ok(format!("CLUSTER LEAVE on {name} answered OK; it {how}"))
    }

    fn is_paused(&self, i: usize) -> bool {
        self.paused[i]
    }

    /// SIGKILL node `i` and close its proxy (peers see a dead host).
    async fn kill(&mut self, i: usize) -> anyhow::Result<String> {
        let name = self.nodes[i].id.clone();
        self.net.set_listening(i, false);
        if let Some(mut child) = self.children[i].take() {
            child
                .start_kill()
                .with_context(|| format!("kill -9 {name}"))?;
            let _ = child.wait().await;
        }
        self.set_pid(i, None);
        self.paused[i] = false;
        Ok(format!("kill -9 {name}"))
    }

    /// Starts node `i` again on its data directory and ports, joining
    /// through the other nodes.
    async fn restart(&mut self, i: usize) -> anyhow::Result<String> {
        let seeds = self.seeds_for(i);
        self.spawn(i, &seeds)?;
        self.wait_ready(i, READY_TIMEOUT).await?;
        if self.stale_reads {
            self.admin(i, &["FAULT", "STALE-READS", "on"]).await?;
        }
        Ok(format!("restarted {} on its data", self.nodes[i].id))
    }

    async fn set_stale_reads(&mut self, on: bool) -> anyhow::Result<()> {
        self.stale_reads = on;
        let word = if on { "on" } else { "off" };
        for i in 0..self.len() {
            if self.is_running(i) {
                self.admin(i, &["FAULT", "STALE-READS", word]).await?;
            }
        }
        Ok(())
    }

    /// SIGSTOP node `i`.
    async fn pause(&mut self, i: usize) -> anyhow::Result<String> {
        self.signal(i, "STOP").await?;
        self.paused[i] = true;
        Ok(format!("SIGSTOP {}", self.nodes[i].id))
    }

    /// SIGCONT node `i`.
    async fn resume(&mut self, i: usize) -> anyhow::Result<String> {
        self.signal(i, "CONT").await?;
        self.paused[i] = false;
        Ok(format!("SIGCONT {}", self.nodes[i].id))
    }

    /// Proxy rules on every link from and to node `i`.
    async fn isolate(&mut self, i: usize, mode: Mode) -> anyhow::Result<String> {
        self.net.isolate(i, mode);
        Ok(format!(
            "isolate {} from the other nodes ({})",
            self.nodes[i].id,
            mode.name()
        ))
    }

    async fn heal_partitions(&mut self) -> anyhow::Result<String> {
        self.net.heal();
        Ok("partition healed".to_string())
    }

    fn notes(&self) -> Vec<String> {
        let unknown = self.net.unknown_dialers();
        if unknown == 0 {
            return Vec::new();
        }
        vec![format!(
            "{unknown} peer connections could not be attributed to a node; \
             partitions applied to them only when unanimous"
        )]
    }

    /// Stops every node: SIGCONT if paused, SIGTERM, then SIGKILL after a
    /// grace period.
    async fn stop(&mut self) -> anyhow::Result<()> {
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

/// The last lines of a node's log, for an error that outlives the log
/// (the run's directory is removed when the run ends).
fn log_tail(log: &std::path::Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
    format!("; its log ends:\n  {tail}")
}

/// Ports for `nodes` nodes, `per_node` each: consecutive from `base`, or
/// free ones.
pub fn allocate_ports(
    nodes: usize,
    per_node: usize,
    base: Option<u16>,
) -> anyhow::Result<Vec<u16>> {
    let count = nodes * per_node;
    if let Some(base) = base {
        let last = usize::from(base) + count - 1;
        if last > usize::from(u16::MAX) {
            bail!("--base-port {base} leaves no room for {count} ports");
        }
        return Ok((0..count).map(|k| base + k as u16).collect());
    }
    if let Some(ports) = free_ports_below_ephemeral(count) {
        return Ok(ports);
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

/// Lowest port of the random picks in [`free_ports_below_ephemeral`].
const PICK_FLOOR: u16 = 10_000;

/// `count` distinct ports that are free for TCP and UDP on loopback, drawn
/// at random below the kernel's ephemeral range. A port taken with
/// `bind(0)` comes from that range, so between choosing it and the node
/// binding it, any outgoing connection on the machine (the nodes' own
/// peer links, other tests' clients) may be given it as its source port;
/// below the range only another explicit bind can take it. `None` when
/// the range is unknown or leaves too little room below it.
fn free_ports_below_ephemeral(count: usize) -> Option<Vec<u16>> {
    use rand::Rng;
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let low: u16 = range.split_whitespace().next()?.parse().ok()?;
    if usize::from(low.checked_sub(PICK_FLOOR)?) < count * 16 {
        return None;
    }
    let mut rng = rand::rng();
    // Held until all are chosen, so they are distinct.
    let mut held = Vec::with_capacity(count);
    for _ in 0..count * 64 {
        if held.len() == count {
            break;
        }
        let port = rng.random_range(PICK_FLOOR..low);
        let addr = loopback(port);
        if let (Ok(tcp), Ok(udp)) = (TcpListener::bind(addr), std::net::UdpSocket::bind(addr)) {
            held.push((port, tcp, udp));
        }
    }
    (held.len() == count).then(|| held.iter().map(|(port, ..)| *port).collect())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports = allocate_ports(3, 4, None).expect("ports");
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 12, "{ports:?}");
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        assert!(
            ports.iter().all(|p| (PICK_FLOOR..low).contains(p)),
            "{ports:?} not below {low}"
        );
        for port in ports {
            TcpListener::bind(loopback(port)).expect("a picked port is free");
        }
    }

    #[test]
    fn base_port_layout_is_consecutive() {
        let ports = allocate_ports(2, 4, Some(9000)).expect("ports");
        assert_eq!(ports, (9000..9008).collect::<Vec<_>>());
        assert!(allocate_ports(3, 4, Some(u16::MAX - 2)).is_err());
    }
}
