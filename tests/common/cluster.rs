//! Clusters of real `fulcrum server` processes on loopback, and polling
//! their `/status` until membership converges.
//!
//! * [`Wait`]: how long to poll for something asynchronous, and how often;
//!   [`Wait::until`] runs a probe until it answers `Ok`.
//! * [`status_json`], [`members`], [`last_heard`]: a node's `/status`.
//! * [`start_node`], [`wait_members_up`], [`wait_member_state`],
//!   [`wait_ring_settled`]: one node at a time, for tests that grow and
//!   shrink a cluster; [`start_nodes`]: n1..nN at once.
//! * [`Cluster`]: three nodes n1..n3 joined through n1, with clients by
//!   node number.
//!
//! Nothing here asserts on timing: a [`Wait`] only bounds how long a test
//! waits before it fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fulcrum_client::Client;

use super::{cmd, ok, Node};

/// How long to poll for something asynchronous (failure detection, a
/// join, convergence), and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Fail once this has passed without an `Ok`.
    pub within: Duration,
    /// Pause between two probes.
    pub every: Duration,
}

impl Wait {
    /// Runs `probe` until it answers `Ok`, every [`Wait::every`], for at
    /// most [`Wait::within`]; then fails with `what` and the last `Err`.
    pub async fn until<T>(
        self,
        what: &str,
        mut probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + self.within;
        loop {
            match probe().await {
                Ok(v) => return v,
                Err(last) if Instant::now() > deadline => {
                    panic!(
                        "{what}: not reached within {:?}; last seen: {last}",
                        self.within
                    )
                }
                Err(_) => tokio::time::sleep(self.every).await,
            }
        }
    }
}

/// `node`'s `/status` as JSON; panics unless it answers 200 with JSON.
pub async fn status_json(node: &Node) -> serde_json::Value {
    let r = node.http_get("/status").await;
    assert_eq!(r.status, 200, "/status answered {}: {}", r.status, r.body);
    serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("/status is not JSON ({e}): {}", r.body))
}

/// One member as a node's `/status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub state: String,
    pub peer_addr: String,
    pub resp_addr: String,
}

/// The `members` array of a `/status`.
fn member_list(status: &serde_json::Value) -> &[serde_json::Value] {
    status["members"]
        .as_array()
        .unwrap_or_else(|| panic!("/status has no members array: {status}"))
}

/// A string field of one member of a `/status`.
fn member_field(m: &serde_json::Value, name: &str) -> String {
    m[name]
        .as_str()
        .unwrap_or_else(|| panic!("member without {name}: {m}"))
        .to_string()
}

/// The members of `node`'s `/status`, by node id.
pub async fn members(node: &Node) -> BTreeMap<String, Member> {
    let status = status_json(node).await;
    let mut out = BTreeMap::new();
    for m in member_list(&status) {
        let prev = out.insert(
            member_field(m, "node_id"),
            Member {
                state: member_field(m, "state"),
                peer_addr: member_field(m, "peer_addr"),
                resp_addr: member_field(m, "resp_addr"),
            },
        );
        assert!(prev.is_none(), "member listed twice in {status}");
    }
    out
}

/// node id → milliseconds since `node` last heard that member (0 for
/// itself, `None` if never), from its `/status`.
pub async fn last_heard(node: &Node) -> BTreeMap<String, Option<u64>> {
    let status = status_json(node).await;
    member_list(&status)
        .iter()
        .map(|m| (member_field(m, "node_id"), m["last_heard_ms"].as_u64()))
        .collect()
}

/// Starts a node `id` joining through `seed` (none: a new cluster), with
/// `extra` flags.
pub async fn start_node(id: &str, seed: Option<&Node>, extra: &[&str]) -> Node {
    let mut b = Node::builder().args(["--node-id", id]);
    if let Some(s) = seed {
        b = b.args(["--seeds", s.peer.to_string().as_str()]);
    }
    b.args(extra.iter().copied()).start().await
}

/// Polls `observer` until its members are exactly `ids`, all up.
pub async fn wait_members_up(wait: Wait, observer: &Node, ids: &[&str]) {
    wait.until(&format!("{ids:?} all up"), async || {
        let seen = members(observer).await;
        let ok = seen.len() == ids.len()
            && ids
                .iter()
                .all(|id| seen.get(*id).is_some_and(|m| m.state == "up"));
        if ok {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
}

/// Polls `observer` until it shows `member` in `state`; `what` names the
/// wait in the failure message.
pub async fn wait_member_state(wait: Wait, what: &str, observer: &Node, member: &str, state: &str) {
    wait.until(what, async || {
        let seen = members(observer).await;
        match seen.get(member) {
            Some(m) if m.state == state => Ok(()),
            _ => Err(format!("{seen:?}")),
        }
    })
    .await;
}

/// Polls `observer` until its rings settled: no node on its way in or out,
/// no older ring that writes must still reach.
pub async fn wait_ring_settled(wait: Wait, observer: &Node) {
    wait.until("ring settled", async || {
        let ring = status_json(observer).await["ring"].clone();
        if ring["pending"].is_null() && ring["previous"] == 0 {
            Ok(())
        } else {
            Err(format!("{ring}"))
        }
    })
    .await;
}

/// n1 .. n`count`, each joining through n1, all up and with settled
/// rings everywhere.
pub async fn start_nodes(count: usize, extra: &[&str], wait: Wait) -> Vec<Node> {
    let first = start_node("n1", None, extra).await;
    let mut nodes = vec![first];
    for i in 2..=count {
        let n = start_node(&format!("n{i}"), Some(&nodes[0]), extra).await;
        nodes.push(n);
    }
    let ids: Vec<String> = (1..=count).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for n in &nodes {
        wait_members_up(wait, n, &refs).await;
    }
    for n in &nodes {
        wait_ring_settled(wait, n).await;
    }
    nodes
}

/// The node ids of a [`Cluster`], n1 first.
pub const IDS: [&str; 3] = ["n1", "n2", "n3"];

/// Three nodes, n1..n3, n2 and n3 joined through n1.
pub struct Cluster {
    /// `nodes[0]` is n1 (the seed), `nodes[1]` n2, `nodes[2]` n3.
    pub nodes: Vec<Node>,
    /// How long membership may take to converge, and how often to look.
    wait: Wait,
    /// I/O timeout of the clients [`Cluster::client`] hands out (`None`:
    /// the client's default).
    client_timeout: Option<Duration>,
}

impl Cluster {
    /// Starts n1, waits until it answers PING, then starts n2 and n3 with
    /// n1 as their seed (a joining node serves RESP only once it joined),
    /// all with `extra` flags, and waits (polling with `wait`) until every
    /// node sees all three members up.
    pub async fn start_three(extra: &[&str], wait: Wait) -> Cluster {
        let first = start_node(IDS[0], None, extra).await;
        let mut nodes = vec![first];
        for id in &IDS[1..] {
            let node = start_node(id, Some(&nodes[0]), extra).await;
            nodes.push(node);
        }
        let cluster = Cluster {
            nodes,
            wait,
            client_timeout: None,
        };
        cluster.wait_all_up().await;
        cluster
    }

    /// Sets the I/O timeout of the clients [`Cluster::client`] hands out.
    pub fn with_client_timeout(mut self, timeout: Duration) -> Cluster {
        self.client_timeout = Some(timeout);
        self
    }

    /// Node `n` (1-based, as in the node ids).
    pub fn node(&self, n: usize) -> &Node {
        &self.nodes[n - 1]
    }

    /// A client of node `n` using keyspace `ks`.
    pub async fn client(&self, n: usize, ks: &str) -> Client {
        let mut c = self.node(n).client().await;
        if let Some(timeout) = self.client_timeout {
            c.set_timeout(Some(timeout));
        }
        assert_eq!(cmd(&mut c, &["USE", ks]).await, ok(), "USE {ks} on n{n}");
        c
    }

    /// One client per node, all using `ks`.
    pub async fn clients(&self, ks: &str) -> [Client; 3] {
        [
            self.client(1, ks).await,
            self.client(2, ks).await,
            self.client(3, ks).await,
        ]
    }

    /// Polls every node's `/status`, n1 first, until it lists n1..n3, all
    /// up, at the addresses the nodes run on now.
    pub async fn wait_all_up(&self) {
        let expected: BTreeMap<String, Member> = self
            .nodes
            .iter()
            .zip(IDS)
            .map(|(node, id)| {
                (
                    id.to_string(),
                    Member {
                        state: "up".into(),
                        peer_addr: node.peer.to_string(),
                        resp_addr: node.resp.to_string(),
                    },
                )
            })
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            self.wait
                .until(
                    &format!("n{} sees n1..n3 up at their current addresses", i + 1),
                    async || {
                        let seen = members(node).await;
                        if seen == expected {
                            Ok(())
                        } else {
                            Err(format!("{seen:?}"))
                        }
                    },
                )
                .await;
        }
    }

    /// Polls node `observer`'s `/status` until `member` has `state`.
    pub async fn wait_state(&self, observer: usize, member: &str, state: &str) {
        let what = format!("n{observer} sees {member} {state}");
        wait_member_state(self.wait, &what, self.node(observer), member, state).await;
    }
}
