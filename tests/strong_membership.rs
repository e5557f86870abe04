//! Strong keyspaces' Raft voters follow the ring across real `fulcrum
//! server` processes: a joining node becomes a voter where the ring places
//! it, a leaving node hands its votes over before it stops, and the
//! survivors of `CLUSTER REMOVE` replace a dead voter. Every group stays
//! writable and every acknowledged write reads back linearizably.
//!
//! Every test starts its own cluster on fresh ports and temporary data
//! directories. Nothing asserts on timing: deadlines only bound waiting.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::*;
use common::*;
use fulcrum_client::{Client, Frame};
use fulcrum_core::ring::{Ring, RingNode};
use fulcrum_node::strong::{group_of, group_placement, STRONG_PARTITIONS};

/// How long convergence (membership, voter moves, elections) may take.
const CONVERGE: Duration = Duration::from_secs(60);

/// Waiting for convergence: up to [`CONVERGE`], looking every 100 ms.
const WAIT: Wait = Wait {
    within: CONVERGE,
    every: Duration::from_millis(100),
};

/// Client I/O timeout: above the server's strong-request deadline (5 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// `CLUSTER LEAVE` waits for the voters to move and the data to stream.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(120);

const KS: &str = "bank";

/// A client of `node` using keyspace `ks`, timing out after `timeout`.
async fn client(node: &Node, ks: &str, timeout: Duration) -> Client {
    let mut c = node.client().await;
    c.set_timeout(Some(timeout));
    assert_eq!(cmd(&mut c, &["USE", ks]).await, ok(), "USE {ks}");
    c
}

/// Creates strong keyspace [`KS`] with 3 replicas through `node`.
async fn create_strong(node: &Node) {
    let mut c = node.client().await;
    assert_eq!(
        cmd(
            &mut c,
            &["KEYSPACE", "CREATE", KS, "MODE", "strong", "REPLICAS", "3"]
        )
        .await,
        ok()
    );
}

/// Each group's voters as `node`'s `KEYSPACE INFO` lists them.
async fn voters(node: &Node) -> Vec<BTreeSet<String>> {
    let mut c = node.client().await;
    let info = cmd(&mut c, &["KEYSPACE", "INFO", KS]).await;
    items(&field(&info, "voters"))
        .iter()
        .map(|g| {
            text(g)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Where each group's voters belong on a ring of `ids` (3 replicas).
fn placement(ids: &[&str]) -> Vec<BTreeSet<String>> {
    let ring = Ring::new(ids.iter().map(|id| RingNode::new(*id, "dc1", "r1"))).expect("ring");
    (0..STRONG_PARTITIONS)
        .map(|g| {
            group_placement(&ring, ids.len().min(3), g)
                .into_iter()
                .collect()
        })
        .collect()
}

/// Polls each of `nodes` until its `KEYSPACE INFO` lists `expected`.
async fn wait_voters(nodes: &[&Node], expected: &[BTreeSet<String>]) {
    for (i, n) in nodes.iter().enumerate() {
        WAIT.until(
            &format!("node #{i} lists the voters {expected:?}"),
            async || {
                let seen = voters(n).await;
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

/// Polls until `node`'s process has exited.
async fn wait_exit(node: &mut Node, what: &str) {
    WAIT.until(what, async || {
        if node.is_alive() {
            Err("still running".to_string())
        } else {
            Ok(())
        }
    })
    .await;
}

/// `CLUSTER LEAVE` on `node`, then waits until its process exits.
async fn leave(node: &mut Node, name: &str) {
    let mut c = node.client().await;
    c.set_timeout(Some(LEAVE_TIMEOUT));
    assert_eq!(
        cmd(&mut c, &["CLUSTER", "LEAVE"]).await,
        ok(),
        "CLUSTER LEAVE on {name}"
    );
    wait_exit(node, &format!("{name} exits after leaving")).await;
}

/// One key per group, `prefix`-named.
fn key_per_group(prefix: &str) -> Vec<String> {
    let mut keys: BTreeMap<u32, String> = BTreeMap::new();
    for i in 0.. {
        let key = format!("{prefix}{i}");
        keys.entry(group_of(KS, key.as_bytes()).partition)
            .or_insert(key);
        if keys.len() == STRONG_PARTITIONS as usize {
            break;
        }
    }
    keys.into_values().collect()
}

/// `SET key value` through `addr`, retried while the group has no leader
/// (an election after a failure); fails the test if it never succeeds.
async fn set_eventually(addr: SocketAddr, key: &str, value: &str) {
    WAIT.until(&format!("SET {key} through {addr}"), async || {
        let mut c = Client::connect_with_timeout(addr, Some(CLIENT_TIMEOUT))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match c.cmd(&["USE", KS]).await {
            Ok(Frame::Simple(s)) if s == "OK" => {}
            other => return Err(format!("USE: {other:?}")),
        }
        match c.cmd(&["SET", key, value]).await {
            Ok(Frame::Simple(s)) if s == "OK" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Reads every key of `acked` through `addr` (linearizable, the strong
/// default), retrying only while no leader answers, and checks its value.
async fn check_reads(addr: SocketAddr, acked: &BTreeMap<String, String>) {
    let mut c = Client::connect_with_timeout(addr, Some(CLIENT_TIMEOUT))
        .await
        .expect("connect");
    assert_eq!(c.cmd(&["USE", KS]).await.expect("USE"), ok());
    for (k, v) in acked {
        let got = WAIT
            .until(&format!("GET {k} through {addr}"), async || {
                match c.cmd(&["GET", k.as_str()]).await {
                    Ok(Frame::Error(e)) if e.starts_with("TIMEOUT") => Err(e),
                    Ok(f) => Ok(f),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        assert_eq!(got, bulk(v), "acknowledged {k} read back through {addr}");
    }
}

/// Writes `w0`, `w1`, … through `addr` until `stop`; returns what was
/// acknowledged (a failed write's outcome is unknown, so it is not kept).
fn start_writer(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<String, String>> {
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let Ok(mut c) = Client::connect_with_timeout(addr, Some(CLIENT_TIMEOUT)).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if !matches!(c.cmd(&["USE", KS]).await, Ok(Frame::Simple(_))) {
                continue;
            }
            while !stop.load(Ordering::SeqCst) {
                let (k, v) = (format!("w{i}"), format!("v{i}"));
                i += 1;
                match c.cmd(&["SET", k.as_str(), v.as_str()]).await {
                    Ok(Frame::Simple(s)) if s == "OK" => {
                        acked.lock().expect("acked").insert(k, v);
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => break,
                }
            }
        }
        let acked = acked.lock().expect("acked").clone();
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_move_to_a_joined_node_and_off_a_leaving_one_without_losing_writes() {
    let mut nodes = start_nodes(3, &[], WAIT).await;
    create_strong(&nodes[0]).await;
    let all: Vec<&Node> = nodes.iter().collect();
    wait_voters(&all, &placement(&["n1", "n2", "n3"])).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(nodes[0].resp, stop.clone());

    // A fourth node joins: the groups the ring places on it move there.
    let n4 = start_node("n4", Some(&nodes[0]), &[]).await;
    for n in nodes.iter().chain([&n4]) {
        wait_members_up(WAIT, n, &["n1", "n2", "n3", "n4"]).await;
    }
    let four = placement(&["n1", "n2", "n3", "n4"]);
    assert!(
        four.iter().any(|g| g.contains("n4")),
        "the ring places some group on n4: {four:?}"
    );
    let all: Vec<&Node> = nodes.iter().chain([&n4]).collect();
    wait_voters(&all, &four).await;

    // n2 leaves: it stops only once no group votes with it.
    leave(&mut nodes[1], "n2").await;
    let three = placement(&["n1", "n3", "n4"]);
    assert!(three.iter().all(|g| !g.contains("n2") && g.len() == 3));
    wait_voters(&[&nodes[0], &nodes[2], &n4], &three).await;

    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.expect("writer");
    assert!(!acked.is_empty(), "some writes were acknowledged");
    check_reads(nodes[2].resp, &acked).await;
    check_reads(n4.resp, &acked).await;
    // n4, a voter that joined late, holds the data itself.
    let mut c4 = client(&n4, KS, CLIENT_TIMEOUT).await;
    assert_eq!(
        cmd(&mut c4, &["CONSISTENCY", "READ", "SERIALIZABLE"]).await,
        ok()
    );
    let (k, v) = acked.iter().next_back().expect("a write");
    assert_eq!(cmd(&mut c4, &["GET", k.as_str()]).await, bulk(v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_stays_writable_after_two_successive_leaves_of_five_nodes() {
    let mut nodes = start_nodes(5, &[], WAIT).await;
    create_strong(&nodes[0]).await;
    let before = key_per_group("a");
    let mut acked = BTreeMap::new();
    for k in &before {
        set_eventually(nodes[0].resp, k, &format!("{k}-1")).await;
        acked.insert(k.clone(), format!("{k}-1"));
    }

    leave(&mut nodes[4], "n5").await;
    leave(&mut nodes[3], "n4").await;

    let rest = [&nodes[0], &nodes[1], &nodes[2]];
    wait_voters(&rest, &placement(&["n1", "n2", "n3"])).await;
    // A group that lost two of three voters would have no quorum.
    for k in key_per_group("b") {
        set_eventually(nodes[1].resp, &k, &format!("{k}-2")).await;
        acked.insert(k.clone(), format!("{k}-2"));
    }
    check_reads(nodes[2].resp, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_dead_voter_is_replaced_and_groups_survive_one_more_failure() {
    let mut nodes = start_nodes(4, &[], WAIT).await;
    create_strong(&nodes[0]).await;
    assert!(
        placement(&["n1", "n2", "n3", "n4"])
            .iter()
            .any(|g| g.contains("n4")),
        "n4 votes in some group"
    );
    let mut acked = BTreeMap::new();
    for k in key_per_group("a") {
        set_eventually(nodes[0].resp, &k, &format!("{k}-1")).await;
        acked.insert(k.clone(), format!("{k}-1"));
    }

    nodes[3].kill9();
    wait_member_state(WAIT, "n1 sees n4 down", &nodes[0], "n4", "down").await;
    let mut c = nodes[0].client().await;
    assert_eq!(cmd(&mut c, &["CLUSTER", "REMOVE", "n4"]).await, ok());
    let rest = [&nodes[0], &nodes[1], &nodes[2]];
    wait_voters(&rest, &placement(&["n1", "n2", "n3"])).await;

    // One more failure: every group still has two of its three voters.
    nodes[2].kill9();
    for k in key_per_group("b") {
        set_eventually(nodes[0].resp, &k, &format!("{k}-2")).await;
        acked.insert(k.clone(), format!("{k}-2"));
    }
    check_reads(nodes[1].resp, &acked).await;
}
