//! `fulcrum verify --docker`: the cluster under test as containers of a
//! compose project, faults through the Docker engine.
//!
//! The run renders a compose file ([`compose_file`]: the same layout as the
//! repository's `docker/docker-compose.yml`, plus `--allow-faults`, a short
//! anti-entropy interval and free host ports) into its temporary directory and starts it as a project of
//! its own name, so runs never share containers, networks or volumes.
//!
//! Each node sits on two networks: `client`, which carries the published
//! RESP and HTTP ports (on 127.0.0.1; the verifier's clients use them), and
//! `peer` (internal), where the node is known as `peer-nodeN` and which
//! carries all node-to-node traffic (every node advertises
//! `peer-nodeN:7381`). The faults:
//!
//! * `kill`: `docker kill` (SIGKILL), then `docker start` on the same
//!   volume; the node rejoins through its seed (or, for `n1`, through the
//!   member list it persisted);
//! * `pause`: `docker pause` (the cgroup freezer), then `docker unpause`;
//! * `partition`: `docker network disconnect` from `peer`, then `docker
//!   network connect` with the alias again. The interface disappears, so
//!   bytes in flight are lost and new connections fail to resolve or
//!   connect; the nemesis's refuse/drop/black-hole choice does not apply.
//!   Clients still reach the node through `client`;
//! * `clock`: `FAULT CLOCK-OFFSET` over RESP, as for local processes;
//! * `join`: the held-back node is one more service of the compose file,
//!   under the compose profile `join` (so `up` leaves it out), seeded with
//!   every other node; it joins with `docker compose --profile join up -d
//!   nodeN`;
//! * `leave`: `CLUSTER LEAVE` over RESP; the node moves its data away and
//!   stops, and its container exits.
//!
//! The image must exist (`scripts/docker-build.sh` builds `fulcrum:dev`);
//! nothing is pulled.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::Command;

use super::backend::{ping, ClusterUnderTest, Membership, NodeAddrs, AAE_INTERVAL_MS};
use super::cluster::allocate_ports;
use super::proxy::Mode;

/// The image `scripts/docker-build.sh` builds.
pub const DEFAULT_IMAGE: &str = "fulcrum:dev";

/// Ports inside every container.
const RESP_PORT: u16 = 7379;
const HTTP_PORT: u16 = 7380;
const PEER_PORT: u16 = 7381;

/// How long a started container may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The compose profile of the services held back to join during a run.
pub const JOIN_PROFILE: &str = "join";

/// How long one `docker` or compose command may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// How the containerised cluster is laid out.
pub struct DockerOptions {
    /// Nodes started at the beginning.
    pub nodes: usize,
    /// Nodes held back to join during the run (numbered after `nodes`).
    pub held_back: usize,
    pub image: String,
    /// Compose project name; a fresh one per run if `None`.
    pub project: Option<String>,
    /// First of 2 consecutive host ports per node (RESP, HTTP); free ports
    /// if `None`.
    pub base_port: Option<u16>,
    /// Keep the volumes, the compose file and the node logs.
    pub keep_data: bool,
}

/// What [`compose_file`] needs to know.
pub struct ComposeLayout<'a> {
    /// Comment lines at the top (without `# `).
    pub header: &'a [&'a str],
    pub image: &'a str,
    /// Host ports (RESP, HTTP) of each node, published on 127.0.0.1.
    pub host_ports: &'a [(u16, u16)],
    /// How many of the last nodes are held back: services under the
    /// [`JOIN_PROFILE`] profile, seeded with every node started before.
    pub held_back: usize,
    /// Flags added to every node's command line (verify: fault injection
    /// and its short anti-entropy interval).
    pub extra_args: &'a [&'a str],
}

/// A compose file for `layout.host_ports.len()` nodes: `node1` starts the
/// cluster, the others join through `peer-node1`; held-back nodes (profile
/// [`JOIN_PROFILE`]) join later through every node started before them.
pub fn compose_file(layout: &ComposeLayout<'_>) -> String {
    let started = layout.host_ports.len().saturating_sub(layout.held_back);
    let mut out = String::new();
    for line in layout.header {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    out.push_str("\nservices:\n");
    for (i, (resp, http)) in layout.host_ports.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(out, "  node{n}:");
        if n > started {
            let _ = writeln!(out, "    profiles: [{JOIN_PROFILE}]");
        }
        let _ = writeln!(out, "    image: {}", layout.image);
        out.push_str("    command:\n");
        let mut args = vec![
            "server".to_string(),
            format!("--node-id=n{n}"),
            "--data-dir=/data".to_string(),
            format!("--resp-addr=0.0.0.0:{RESP_PORT}"),
            format!("--http-addr=0.0.0.0:{HTTP_PORT}"),
            format!("--peer-addr=0.0.0.0:{PEER_PORT}"),
            format!("--peer-advertise-addr=peer-node{n}:{PEER_PORT}"),
        ];
        if n > started {
            let seeds: Vec<String> = (1..=started)
                .map(|s| format!("peer-node{s}:{PEER_PORT}"))
                .collect();
            args.push(format!("--seeds={}", seeds.join(",")));
        } else if n > 1 {
            args.push(format!("--seeds=peer-node1:{PEER_PORT}"));
        }
        args.extend(layout.extra_args.iter().map(ToString::to_string));
        for arg in args {
            let _ = writeln!(out, "      - {arg}");
        }
        out.push_str("    ports:\n");
        let _ = writeln!(out, "      - \"127.0.0.1:{resp}:{RESP_PORT}\"");
        let _ = writeln!(out, "      - \"127.0.0.1:{http}:{HTTP_PORT}\"");
        out.push_str("    volumes:\n");
        let _ = writeln!(out, "      - node{n}-data:/data");
        out.push_str("    networks:\n");
        out.push_str("      client: {}\n");
        out.push_str("      peer:\n");
        let _ = writeln!(out, "        aliases: [peer-node{n}]");
        out.push_str("    healthcheck:\n");
        let _ = writeln!(
            out,
            "      test: [\"CMD\", \"/fulcrum\", \"cluster\", \"--http\", \"127.0.0.1:{HTTP_PORT}\", \"health\"]"
        );
        out.push_str("      interval: 2s\n      timeout: 2s\n      retries: 15\n");
        if n > 1 {
            out.push_str("    depends_on: [node1]\n");
        }
    }
    out.push_str("\nnetworks:\n  client: {}\n  peer:\n    internal: true\n");
    out.push_str("\nvolumes:\n");
    for n in 1..=layout.host_ports.len() {
        let _ = writeln!(out, "  node{n}-data: {{}}");
    }
    out
}

/// How to run compose here: `docker compose` (v2) or `docker-compose`.
struct Compose {
    program: &'static str,
    prefix: Vec<String>,
}

impl Compose {
    async fn detect(file: &std::path::Path, project: &str) -> anyhow::Result<Compose> {
        let file = file.display().to_string();
        let tail = [
            "-p".to_string(),
            project.to_string(),
            "-f".to_string(),
            file,
        ];
        if run("docker", &["compose", "version"]).await.is_ok() {
            let mut prefix = vec!["compose".to_string()];
            prefix.extend(tail);
            return Ok(Compose {
                program: "docker",
                prefix,
            });
        }
        run("docker-compose", &["version"])
            .await
            .context("neither `docker compose` nor `docker-compose` works")?;
        Ok(Compose {
            program: "docker-compose",
            prefix: tail.to_vec(),
        })
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run(self.program, &all).await
    }

    /// As [`Compose::run`], with the held-back services' profile active:
    /// to start one, and so that `down` and `ps` see them too.
    async fn run_all_profiles(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        all.extend_from_slice(&["--profile", JOIN_PROFILE]);
        all.extend_from_slice(args);
        run(self.program, &all).await
    }

    /// `run_all_profiles`, blocking (for `Drop`).
    fn run_blocking(&self, args: &[&str]) {
        let _ = std::process::Command::new(self.program)
            .args(&self.prefix)
            .args(["--profile", JOIN_PROFILE])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The running compose project.
pub struct DockerCluster {
    compose: Compose,
    project: String,
    nodes: Vec<NodeAddrs>,
    /// Container id of each node (stable across kill and start; empty
    /// while a node is held back).
    containers: Vec<String>,
    membership: Vec<Membership>,
    /// The `peer` network's Docker name.
    peer_network: String,
    running: Vec<bool>,
    paused: Vec<bool>,
    /// Nodes disconnected from `peer`.
    isolated: Vec<bool>,
    keep_data: bool,
    /// Compose file and, with `--keep-data`, the node logs.
    root: PathBuf,
    /// Set once the project is down; `Drop` takes it down otherwise.
    down: bool,
    /// Removes `root` on drop unless the run keeps it.
    _tempdir: Option<tempfile::TempDir>,
}

impl DockerCluster {
    /// Starts the project and waits until each node sees all members up.
    ///
    /// # Errors
    /// No Docker or compose, no image, a project that does not start, or a
    /// cluster that does not come up (the project is taken down again).
    pub async fn start(options: DockerOptions, timeout: Duration) -> anyhow::Result<DockerCluster> {
        run(
            "docker",
            &[
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                options.image.as_str(),
            ],
        )
        .await
        .with_context(|| {
            format!(
                "image {} is not available (build it with scripts/docker-build.sh)",
                options.image
            )
        })?;
        let project = match options.project {
            Some(p) => {
                check_project_name(&p)?;
                p
            }
            None => format!(
                "fulcrum-verify-{}-{:06x}",
                std::process::id(),
                rand::random::<u32>() & 0xff_ffff
            ),
        };
        let tempdir = tempfile::Builder::new()
            .prefix("fulcrum-verify-docker-")
            .tempdir()
            .context("cannot create a directory for the compose file")?;
        let (root, tempdir) = if options.keep_data {
            (tempdir.keep(), None)
        } else {
            (tempdir.path().to_path_buf(), Some(tempdir))
        };
        let total = options.nodes + options.held_back;
        let ports = allocate_ports(total, 2, options.base_port)?;
        let host_ports: Vec<(u16, u16)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
        let header =
            ["Rendered by `fulcrum verify --docker` for one run; see docker/docker-compose.yml."];
        let file = root.join("docker-compose.yml");
        let aae = format!("--aae-interval-ms={AAE_INTERVAL_MS}");
        let text = compose_file(&ComposeLayout {
            header: &header,
            image: &options.image,
            host_ports: &host_ports,
            held_back: options.held_back,
            extra_args: &[aae.as_str(), "--allow-faults"],
        });
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        let compose = Compose::detect(&file, &project).await?;
        let nodes = host_ports
            .iter()
            .enumerate()
            .map(|(i, (resp, http))| NodeAddrs {
                id: format!("n{}", i + 1),
                resp: ([127, 0, 0, 1], *resp).into(),
                http: ([127, 0, 0, 1], *http).into(),
            })
            .collect::<Vec<_>>();
        let count = nodes.len();
        let mut cluster = DockerCluster {
            compose,
            peer_network: format!("{project}_peer"),
            project,
            nodes,
            containers: vec![String::new(); count],
            membership: (0..count)
                .map(|i| Membership::at_start(i, options.nodes))
                .collect(),
            running: (0..count).map(|i| i < options.nodes).collect(),
            paused: vec![false; count],
            isolated: vec![false; count],
            keep_data: options.keep_data,
            root,
            down: false,
            _tempdir: tempdir,
        };
        // From here on, a failure takes the project down (Drop).
        cluster
            .compose
            .run(&["up", "-d", "--no-build"])
            .await
            .with_context(|| format!("cannot start compose project {}", cluster.project))?;
        for i in 0..options.nodes {
            cluster.find_container(i).await?;
        }
        run(
            "docker",
            &[
                "network",
                "inspect",
                "--format",
                "{{.Id}}",
                cluster.peer_network.as_str(),
            ],
        )
        .await
        .with_context(|| format!("no network {}", cluster.peer_network))?;
        for i in 0..options.nodes {
            cluster.wait_ready(i).await?;
        }
        cluster.wait_all_up(timeout).await?;
        Ok(cluster)
    }

    /// Looks up node `i`'s container id.
    async fn find_container(&mut self, i: usize) -> anyhow::Result<()> {
        let service = format!("node{}", i + 1);
        let id = self
            .compose
            .run_all_profiles(&["ps", "-q", service.as_str()])
            .await?;
        let id = id.trim().to_string();
        if id.is_empty() {
            bail!(
                "compose project {} has no container for {service}",
                self.project
            );
        }
        self.containers[i] = id;
        Ok(())
    }

    fn name(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// Waits until node `i` answers PING; fails early (with the node's
    /// last log lines) if its container stopped.
    async fn wait_ready(&self, i: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let container = self.containers[i].as_str();
        loop {
            if ping(self.nodes[i].resp).await {
                return Ok(());
            }
            let state = run(
                "docker",
                &["inspect", "--format", "{{.State.Status}}", container],
            )
            .await
            .unwrap_or_default();
            let state = state.trim();
            let stopped = matches!(state, "exited" | "dead");
            if stopped || Instant::now() > deadline {
                let why = if stopped {
                    format!("its container {} is {state}", short(container))
                } else {
                    format!("it did not answer PING within {READY_TIMEOUT:?}")
                };
                bail!(
                    "node {} is not serving: {why}; its last log lines:\n{}",
                    self.name(i),
                    self.log_tail(i).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines node `i` logged (both streams), for error messages.
    async fn log_tail(&self, i: usize) -> String {
        let out = Command::new("docker")
            .args(["logs", "--tail", "15", self.containers[i].as_str()])
            .stdin(Stdio::null())
            .output()
            .await;
        match out {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                text
            }
            Err(e) => format!("(docker logs failed: {e})"),
        }
    }

    /// `docker <verb> <container of node i>`.
    async fn docker_on(&self, verb: &[&str], i: usize) -> anyhow::Result<String> {
        let mut args = verb.to_vec();
        args.push(&self.containers[i]);
        let what = format!("docker {} {}", verb.join(" "), self.name(i));
        run("docker", &args).await.context(what.clone())?;
        Ok(what)
    }

    /// Saves every container's log as `<root>/nN.log`.
    async fn save_logs(&self) -> anyhow::Result<()> {
        for (i, id) in self.containers.iter().enumerate() {
            if id.is_empty() {
                continue;
            }
            let out = Command::new("docker")
                .args(["logs", id])
                .stdin(Stdio::null())
                .output()
                .await
                .context("cannot run docker logs")?;
            let mut text = out.stdout;
            text.extend_from_slice(&out.stderr);
            let path = self.root.join(format!("{}.log", self.name(i)));
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

impl ClusterUnderTest for DockerCluster {
    fn nodes(&self) -> &[NodeAddrs] {
        &self.nodes
    }

    fn location(&self) -> String {
        format!(
            "compose project {} ({})",
            self.project,
            self.root.join("docker-compose.yml").display()
        )
    }

    fn membership(&self, i: usize) -> Membership {
        self.membership[i]
    }

    fn is_running(&self, i: usize) -> bool {
        self.running[i]
    }

    /// `docker compose --profile join up -d nodeN`: the held-back service,
    /// seeded with every node started at the beginning.
    async fn join(&mut self, i: usize) -> anyhow::Result<String> {
        if self.membership[i] != Membership::HeldBack {
            bail!("{} is not held back", self.name(i));
        }
        let service = format!("node{}", i + 1);
        let started = Instant::now();
        self.compose
            .run_all_profiles(&["up", "-d", "--no-build", "--no-deps", service.as_str()])
            .await
            .with_context(|| format!("cannot start {service}"))?;
        self.membership[i] = Membership::Member;
        self.running[i] = true;
        self.find_container(i).await?;
        self.wait_ready(i).await?;
        Ok(format!(
            "docker compose --profile {JOIN_PROFILE} up -d {service}: {} joining (answering after {:.1} s)",
            self.name(i),
            started.elapsed().as_secs_f64()
        ))
    }

    /// `CLUSTER LEAVE`, then `docker wait` until the container exited.
    async fn leave(&mut self, i: usize) -> anyhow::Result<String> {
        self.send_leave(i).await?;
        let code = run("docker", &["wait", self.containers[i].as_str()])
            .await
            .map(|c| format!("exit code {}", c.trim()))
            .unwrap_or_else(|e| format!("docker wait failed: {e:#}"));
        self.running[i] = false;
        self.membership[i] = Membership::Left;
        Ok(format!(
            "CLUSTER LEAVE on {} answered OK; its container exited ({code})",
            self.name(i)
        ))
    }

    fn is_paused(&self, i: usize) -> bool {
        self.paused[i]
    }

    async fn kill(&mut self, i: usize) -> anyhow::Result<String> {
        let done = self.docker_on(&["kill"], i).await?;
        self.running[i] = false;
        self.paused[i] = false;
        Ok(done)
    }

    async fn restart(&mut self, i: usize) -> anyhow::Result<String> {
        let done = self.docker_on(&["start"], i).await?;
        self.running[i] = true;
        self.wait_ready(i).await?;
        Ok(done)
    }

    async fn pause(&mut self, i: usize) -> anyhow::Result<String> {
        let done = self.docker_on(&["pause"], i).await?;
        self.paused[i] = true;
        Ok(done)
    }

    async fn resume(&mut self, i: usize) -> anyhow::Result<String> {
        let done = self.docker_on(&["unpause"], i).await?;
        self.paused[i] = false;
        Ok(done)
    }

    async fn isolate(&mut self, i: usize, _mode: Mode) -> anyhow::Result<String> {
        let net = self.peer_network.clone();
        self.docker_on(&["network", "disconnect", "-f", net.as_str()], i)
            .await?;
        self.isolated[i] = true;
        Ok(format!(
            "docker network disconnect {} from the peer network",
            self.name(i)
        ))
    }

    async fn heal_partitions(&mut self) -> anyhow::Result<String> {
        let mut healed = Vec::new();
        for i in 0..self.len() {
            if !self.isolated[i] {
                continue;
            }
            let alias = format!("peer-node{}", i + 1);
            let net = self.peer_network.clone();
            self.docker_on(
                &[
                    "network",
                    "connect",
                    "--alias",
                    alias.as_str(),
                    net.as_str(),
                ],
                i,
            )
            .await?;
            self.isolated[i] = false;
            healed.push(self.name(i).to_string());
        }
        if healed.is_empty() {
            return Ok("no partition to heal".to_string());
        }
        Ok(format!(
            "docker network connect {} to the peer network",
            healed.join(", ")
        ))
    }

    async fn set_stale_reads(&mut self, _on: bool) -> anyhow::Result<()> {
        bail!("--stale-reads runs on local processes only, not with --docker")
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            if self.paused[i] {
                let _ = self.resume(i).await;
            }
        }
        let saved = if self.keep_data {
            self.save_logs().await
        } else {
            Ok(())
        };
        let down = if self.keep_data {
            self.compose.run_all_profiles(&["down"]).await
        } else {
            self.compose
                .run_all_profiles(&["down", "-v", "--remove-orphans"])
                .await
        };
        self.down = true;
        down.with_context(|| format!("cannot take compose project {} down", self.project))?;
        saved
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if !self.down {
            for (i, id) in self.containers.iter().enumerate() {
                if self.paused[i] && !id.is_empty() {
                    let _ = std::process::Command::new("docker")
                        .args(["unpause", id])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
            self.compose
                .run_blocking(&["down", "-v", "--remove-orphans"]);
        }
    }
}

/// Compose project names: lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit (what both compose versions accept
/// unchanged).
fn check_project_name(name: &str) -> anyhow::Result<()> {
    let ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        bail!(
            "--docker-project {name:?}: use lowercase letters, digits, '-' and '_', \
             starting with a letter or digit"
        );
    }
    Ok(())
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Runs `program args…`; returns its standard output.
///
/// # Errors
/// It could not start, took longer than [`DOCKER_TIMEOUT`], or failed (the
/// message carries its standard error).
async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(DOCKER_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("{program} {} timed out", args.join(" ")))?
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of the repository's `docker/docker-compose.yml`.
    const REPOSITORY_HEADER: &[&str] = &[
        "A five-node Fulcrum cluster. Build the image first: scripts/docker-build.sh",
        "",
        "  docker-compose -f docker/docker-compose.yml up -d      (or: docker compose ...)",
        "  redis-cli -p 7411                   node N's RESP port is 74N1 on 127.0.0.1",
        "  curl http://127.0.0.1:7412/status   node N's HTTP port is 74N2",
        "  docker-compose -f docker/docker-compose.yml --profile join down -v",
        "                                      (stop, delete the data; node6 included)",
        "",
        "Membership: node6 is held back (profile `join`); add it to the running cluster",
        "with `docker-compose -f docker/docker-compose.yml --profile join up -d node6`.",
        "A node leaves with `redis-cli -p 74N1 CLUSTER LEAVE`: it moves its data to",
        "the others, then stops.",
        "",
        "Networks: `client` carries the published ports; `peer` (internal) carries",
        "node-to-node traffic, where node N is peer-nodeN:7381. Disconnecting a node",
        "from `peer` partitions it from the others while clients still reach it.",
        "Data: one volume per node. `fulcrum verify --docker` renders this same file",
        "(plus fault injection, 1 s anti-entropy, free host ports); a test keeps them equal.",
    ];

    /// Host ports of the repository's compose file: node N publishes RESP on
    /// 74N1 and HTTP on 74N2.
    fn repository_ports(nodes: usize) -> Vec<(u16, u16)> {
        (1..=nodes)
            .map(|n| {
                let base = 7400 + 10 * u16::try_from(n).unwrap_or(0);
                (base + 1, base + 2)
            })
            .collect()
    }

    /// With `FULCRUM_UPDATE_COMPOSE=1` the test rewrites the file first
    /// (after a change to [`compose_file`]); the diff then shows in review.
    #[test]
    fn repository_compose_file_is_the_rendered_five_node_cluster() {
        let rendered = compose_file(&ComposeLayout {
            header: REPOSITORY_HEADER,
            image: DEFAULT_IMAGE,
            host_ports: &repository_ports(6),
            held_back: 1,
            extra_args: &[],
        });
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/docker-compose.yml");
        if std::env::var_os("FULCRUM_UPDATE_COMPOSE").is_some() {
            std::fs::write(path, &rendered).expect("write docker/docker-compose.yml");
        }
        let in_repo = std::fs::read_to_string(path).expect("read docker/docker-compose.yml");
        assert_eq!(
            rendered, in_repo,
            "docker/docker-compose.yml drifted from what `fulcrum verify --docker` runs; \
             regenerate it: FULCRUM_UPDATE_COMPOSE=1 cargo test -p fulcrum --bin fulcrum repository_compose_file"
        );
    }

    #[test]
    fn only_the_first_node_starts_without_seeds_and_faults_are_opt_in() {
        let text = compose_file(&ComposeLayout {
            header: &[],
            image: "img",
            host_ports: &[(1, 2), (3, 4), (5, 6)],
            held_back: 0,
            extra_args: &["--allow-faults"],
        });
        assert_eq!(text.matches("--seeds=peer-node1:7381").count(), 2);
        assert_eq!(text.matches("--allow-faults").count(), 3);
        assert!(!text.contains("profiles:"));
        assert!(text.contains("\"127.0.0.1:5:7379\""));
        assert!(text.contains("\"127.0.0.1:6:7380\""));
        assert!(text.contains("aliases: [peer-node3]"));
        assert!(text.contains("  node3-data: {}"));
        let quiet = compose_file(&ComposeLayout {
            header: &[],
            image: "img",
            host_ports: &[(1, 2)],
            held_back: 0,
            extra_args: &[],
        });
        assert!(!quiet.contains("--allow-faults"));
    }

    #[test]
    fn a_held_back_node_is_under_the_join_profile_seeded_with_every_started_node() {
        let text = compose_file(&ComposeLayout {
            header: &[],
            image: "img",
            host_ports: &[(1, 2), (3, 4), (5, 6), (7, 8)],
            held_back: 1,
            extra_args: &[],
        });
        let node4 = text.split("  node4:\n").nth(1).expect("a node4 service");
        assert!(node4.starts_with("    profiles: [join]\n"), "{node4}");
        assert!(
            node4.contains("--seeds=peer-node1:7381,peer-node2:7381,peer-node3:7381"),
            "{node4}"
        );
        assert_eq!(text.matches("profiles:").count(), 1);
        assert!(text.contains("  node4-data: {}"));
    }

    #[test]
    fn repository_ports_follow_the_74n1_pattern() {
        assert_eq!(
            repository_ports(3),
            vec![(7411, 7412), (7421, 7422), (7431, 7432)]
        );
    }

    #[test]
    fn project_names_are_checked() {
        assert!(check_project_name("fulcrum-verify-1_a").is_ok());
        assert!(check_project_name("Fulcrum").is_err());
        assert!(check_project_name("-x").is_err());
        assert!(check_project_name("").is_err());
    }
}
