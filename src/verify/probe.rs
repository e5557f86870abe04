//! After the cluster healed: the final reads that the lost-write and
//! counter checks judge, and the per-replica probes that the convergence
//! check compares.
//!
//! * **Final reads** go into the history as reads by client
//!   [`FINAL_CLIENT`], one `Ok` read per key (failed attempts are recorded
//!   as `Fail` reads and retried for up to 30 s): on strong keyspaces a
//!   plain `GET` (linearizable), on eventual keyspaces `VGET` at
//!   `READ ALL`, which returns every live sibling and repairs every replica
//!   before answering.
//! * **Convergence probes** read each key from each of its replicas at
//!   `READ ONE` with `VGET`. A replica node answers `READ ONE` from its own
//!   copy, so the answers are the replicas' states. Which nodes replicate a
//!   key comes from the same ring the nodes build from `/status`'s member
//!   list. Keys that differ are repaired again at `READ ALL` and re-probed,
//!   up to [`PROBE_ROUNDS`] rounds: convergence is an eventual property.
//!
//! All of them go to the final members only: after a membership change the
//! ring is the one `/status` lists (a node that left is no replica and
//! holds nothing; a node that joined holds its partitions).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use fulcrum_check::{ClientId, Op, Outcome, Value};
use fulcrum_client::{Client, Frame};
use fulcrum_core::level::Level;
use fulcrum_core::ring::{Ring, RingNode};

use super::backend::ClusterUnderTest;
use super::recorder::Recorder;
use super::workload::{connect, parse_value, set_elements, Plan};
use super::{Console, WorkloadKind};

/// The client id of final reads in the history.
pub const FINAL_CLIENT: ClientId = 1_000_000;

/// How long the final read of one key is retried.
const FINAL_READ_PATIENCE: Duration = Duration::from_secs(30);

/// Probe-and-repair rounds before convergence is judged.
pub const PROBE_ROUNDS: usize = 3;

/// Each key's replicas' final states: key → replica node id → sorted live
/// values (empty: absent). Only the key's replicas are listed.
pub type ReplicaStates = BTreeMap<String, BTreeMap<String, Vec<Value>>>;

/// Each ring partition's Merkle roots after healing: partition → replica
/// node id → root (hex), as each node reports the partitions it replicates.
pub type MerkleRoots = BTreeMap<u32, BTreeMap<String, String>>;

/// What [`await_merkle_agreement`] saw: the last roots and how long after
/// healing they were read.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MerkleProbe {
    pub roots: MerkleRoots,
    pub waited_ms: u64,
    pub patience_ms: u64,
}

/// Whether every partition's replicas report the same root.
pub fn roots_agree(roots: &MerkleRoots) -> bool {
    roots
        .values()
        .all(|by_node| by_node.values().collect::<BTreeSet<_>>().len() <= 1)
}

/// Polls every node's Merkle roots of the keyspace until all replicas of
/// every partition agree or `patience` runs out, without reading any key
/// (reads would repair replicas and hide what anti-entropy and hinted
/// handoff did on their own).
///
/// # Errors
/// A node's roots cannot be read within `patience`.
pub async fn await_merkle_agreement(
    cluster: &impl ClusterUnderTest,
    keyspace: &str,
    patience: Duration,
    console: &Console,
) -> anyhow::Result<MerkleProbe> {
    let started = Instant::now();
    loop {
        let mut roots = MerkleRoots::new();
        let mut failure = None;
        for i in cluster.members() {
            match cluster.anti_entropy(i, keyspace).await {
                Ok(ae) => {
                    for (p, root) in ae.roots {
                        roots
                            .entry(p)
                            .or_default()
                            .insert(cluster.nodes()[i].id.clone(), root);
                    }
                }
                Err(e) => {
                    failure = Some(e.context(format!("{}'s Merkle roots", cluster.nodes()[i].id)))
                }
            }
        }
        let waited = started.elapsed();
        let done = failure.is_none() && roots_agree(&roots);
        if done || waited >= patience {
            if let Some(e) = failure {
                return Err(e);
            }
            let differing = roots
                .values()
                .filter(|r| r.values().collect::<BTreeSet<_>>().len() > 1)
                .count();
            console.line(format!(
                "anti-entropy: {differing} of {} partitions differ after {} ms",
                roots.len(),
                waited.as_millis()
            ));
            return Ok(MerkleProbe {
                roots,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                patience_ms: u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads every key once more, after healing, into the history, through
/// the final members.
pub async fn final_reads(plan: &Plan, recorder: &Recorder) {
    let levels = plan.levels.map(|(_, write)| (Level::All, write));
    let mut conns: Vec<Option<Client>> = (0..plan.nodes.len()).map(|_| None).collect();
    let targets = plan.targets.active();
    if targets.is_empty() {
        return;
    }
    let mut turn = 0usize;
    for key in recorder.keys() {
        let started = Instant::now();
        while started.elapsed() < FINAL_READ_PATIENCE {
            let node = targets[turn % targets.len()];
            turn += 1;
            if conns[node].is_none() {
                match connect(plan.nodes[node], &plan.keyspace, levels).await {
                    Ok(c) => conns[node] = Some(c),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            let Some(conn) = conns[node].as_mut() else {
                continue;
            };
            if final_read(plan, recorder, conn, &key).await {
                break;
            }
            conns[node] = None;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One final read of `key`; whether it succeeded.
async fn final_read(plan: &Plan, recorder: &Recorder, conn: &mut Client, key: &str) -> bool {
    let placeholder = match (plan.workload, plan.strong) {
        (WorkloadKind::Counter, _) => Op::ReadCounter(0),
        (WorkloadKind::Register, true) => Op::Read(None),
        _ => Op::ReadSet(Vec::new()),
    };
    let command = if plan.strong { "GET" } else { "VGET" };
    let id = recorder.invoke(FINAL_CLIENT, key, placeholder.clone());
    let reply = conn.cmd(&[command, key]).await;
    let observed = match (&placeholder, reply) {
        (Op::Read(_), Ok(Frame::Null)) => Some(Op::Read(None)),
        (Op::Read(_), Ok(Frame::Bulk(b))) => Some(Op::Read(Some(parse_value(&b)))),
        (Op::ReadCounter(_), Ok(Frame::Null)) => Some(Op::ReadCounter(0)),
        (Op::ReadCounter(_), Ok(Frame::Bulk(b))) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Op::ReadCounter),
        (Op::ReadSet(_), Ok(frame)) => set_elements(&frame).map(Op::ReadSet),
        _ => None,
    };
    match observed {
        Some(op) => {
            recorder.complete_read(id, Outcome::Ok, op);
            true
        }
        None => {
            recorder.complete(id, Outcome::Fail);
            false
        }
    }
}

/// Reads every key from each of its replicas at `READ ONE`, repairing and
/// re-probing keys that differ (see the module docs).
///
/// # Errors
/// `/status` unreadable or a replica that cannot be read.
pub async fn probe_replicas(
    cluster: &impl ClusterUnderTest,
    plan: &Plan,
    recorder: &Recorder,
    console: &Console,
) -> anyhow::Result<ReplicaStates> {
    let status = cluster.status(0).await.context("cannot read /status")?;
    let ring = Ring::new(
        status
            .members
            .iter()
            .map(|m| RingNode::new(m.node_id.as_str(), m.dc.as_str(), m.rack.as_str())),
    )
    .map_err(|e| anyhow::anyhow!("cannot build the ring: {e}"))?;
    let n = 3.min(status.members.len());
    let placement: BTreeMap<String, Vec<usize>> = recorder
        .keys()
        .into_iter()
        .map(|key| {
            let nodes = ring
                .preference_list(ring.partition_of(key.as_bytes()), n)
                .iter()
                .filter_map(|id| cluster.nodes().iter().position(|s| s.id == id.as_str()))
                .collect();
            (key, nodes)
        })
        .collect();
    let mut one: Vec<Option<Client>> = (0..cluster.len()).map(|_| None).collect();
    let mut all: Option<Client> = None;
    let mut states = ReplicaStates::new();
    let mut todo: Vec<&String> = placement.keys().collect();
    for round in 1..=PROBE_ROUNDS {
        for key in &todo {
            for &node in &placement[*key] {
                let values = probe(cluster, plan, &mut one, node, key).await?;
                states
                    .entry(key.to_string())
                    .or_default()
                    .insert(cluster.nodes()[node].id.clone(), values.unwrap_or_default());
            }
        }
        todo.retain(|key| !agree(&states, key));
        if todo.is_empty() || round == PROBE_ROUNDS {
            break;
        }
        console.line(format!(
            "convergence probe round {round}: {} keys differ; repairing at READ ALL and probing again",
            todo.len()
        ));
        for key in &todo {
            repair(plan, &mut all, key).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(states)
}

/// Whether every replica of `key` holds the same state.
fn agree(states: &ReplicaStates, key: &str) -> bool {
    let seen: BTreeSet<&Vec<Value>> = states
        .get(key)
        .into_iter()
        .flat_map(BTreeMap::values)
        .collect();
    seen.len() <= 1
}

/// Node `node`'s own copy of `key` (`None`: absent or no live value).
async fn probe(
    cluster: &impl ClusterUnderTest,
    plan: &Plan,
    conns: &mut [Option<Client>],
    node: usize,
    key: &str,
) -> anyhow::Result<Option<Vec<Value>>> {
    let mut last_error = None;
    for _ in 0..10 {
        if conns[node].is_none() {
            let levels = Some((Level::One, Level::One));
            match connect(cluster.nodes()[node].resp, &plan.keyspace, levels).await {
                Ok(c) => conns[node] = Some(c),
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let Some(conn) = conns[node].as_mut() else {
            continue;
        };
        match conn.cmd(&["VGET", key]).await {
            Ok(frame) => match set_elements(&frame) {
                Some(mut values) => {
                    values.sort_unstable();
                    return Ok((!values.is_empty()).then_some(values));
                }
                None => last_error = Some(anyhow::anyhow!("VGET {key} answered {frame:?}")),
            },
            Err(e) => {
                conns[node] = None;
                last_error = Some(e.into());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no answer"))
        .context(format!(
            "cannot read {key} from replica {}",
            cluster.nodes()[node].id
        )))
}

/// A best-effort `VGET` at `READ ALL` (repairs every replica).
async fn repair(plan: &Plan, conn: &mut Option<Client>, key: &str) {
    if conn.is_none() {
        let levels = Some((Level::All, Level::Quorum));
        *conn = connect(plan.nodes[0], &plan.keyspace, levels).await.ok();
    }
    if let Some(c) = conn.as_mut() {
        if c.cmd(&["VGET", key]).await.is_err() {
            *conn = None;
        }
    }
}
