//! Membership across real `fulcrum server` processes on loopback: gossip
//! (failure detection, member lists that converge whichever seed a node
//! joined through, schema learned after a restart), a node joining under
//! load with its partitions streamed to it, `CLUSTER LEAVE` and
//! `CLUSTER REMOVE`.
//!
//! Anti-entropy is switched off (`--aae-interval-ms` of an hour) wherever a
//! test checks that streaming moved data, so nothing else could have.
//! Nothing asserts on timing: convergence is polled with a deadline.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use fulcrum_client::{Client, Frame};
use fulcrum_core::ring::{Ring, RingNode};

/// How long asynchronous convergence may take before a test fails.
const CONVERGE: Duration = Duration::from_secs(40);

/// No anti-entropy during a test: only streaming moves data.
const NO_AAE: [&str; 2] = ["--aae-interval-ms", "3600000"];

/// Waiting for convergence: up to [`CONVERGE`], looking every 100 ms.
const WAIT: Wait = Wait {
    within: CONVERGE,
    every: Duration::from_millis(100),
};

/// Runs `probe` until it answers `Ok`, every 100 ms, for at most
/// [`CONVERGE`]; then fails with `what` and the last `Err`.
async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    WAIT.until(what, probe).await
}

/// Polls `observer` until it shows `member` in `state`.
async fn wait_state(observer: &Node, member: &str, state: &str) {
    let what = format!("{member} {state}");
    wait_member_state(WAIT, &what, observer, member, state).await;
}

/// n1 .. n`count`, each joining through n1, all up everywhere.
async fn start_cluster(count: usize, extra: &[&str]) -> Vec<Node> {
    start_nodes(count, extra, WAIT).await
}

/// `CLUSTER LEAVE` on `node` (answered OK once it handed its data off),
/// then waits for its process to exit.
async fn leave_and_exit(name: &str, node: &mut Node) {
    let mut c = node.client().await;
    c.set_timeout(Some(Duration::from_secs(120)));
    ok_cmd(&mut c, &["CLUSTER", "LEAVE"]).await;
    eventually(&format!("{name} exits after leaving"), async || {
        if node.is_alive() {
            Err("still running".to_string())
        } else {
            Ok(())
        }
    })
    .await;
}

async fn ok_cmd(c: &mut Client, args: &[&str]) {
    assert_eq!(cmd(c, args).await, ok(), "{args:?}");
}

/// The keyspace names `node` lists.
async fn keyspaces(node: &Node) -> Vec<String> {
    let mut c = node.client().await;
    items(&cmd(&mut c, &["KEYSPACE", "LIST"]).await)
        .iter()
        .map(text)
        .collect()
}

/// `DBSIZE` of keyspace `ks` on `node`: the keys it stores itself.
/// Waits until every node in `nodes` lists keyspace `name`.
async fn wait_keyspace_everywhere(nodes: &[Node], name: &str) {
    for n in nodes {
        eventually("keyspace everywhere", async || {
            let l = keyspaces(n).await;
            if l.iter().any(|k| k == name) {
                Ok(())
            } else {
                Err(format!("{l:?}"))
            }
        })
        .await;
    }
}

async fn local_keys(node: &Node, ks: &str) -> i64 {
    let mut c = node.client().await;
    ok_cmd(&mut c, &["USE", ks]).await;
    as_int(&cmd(&mut c, &["DBSIZE"]).await)
}

/// The replicas of `key` (3 copies) on a ring of `ids` (default dc/rack).
fn replicas_of(ids: &[&str], key: &str) -> Vec<String> {
    let ring = Ring::new(ids.iter().map(|id| RingNode::new(*id, "dc1", "r1"))).expect("ring");
    ring.preference_list(ring.partition_of(key.as_bytes()), 3)
        .iter()
        .map(|n| n.to_string())
        .collect()
}

// ---------------------------------------------------------------------
// Gossip.
// ---------------------------------------------------------------------

#[tokio::test]
async fn killed_node_is_seen_down_by_the_others() {
    let mut nodes = start_cluster(3, &[]).await;
    // Every live member was heard from recently enough to have a time.
    let heard = last_heard(&nodes[0]).await;
    for id in ["n1", "n2", "n3"] {
        assert!(
            heard[id].is_some(),
            "n1 reports when it last heard {id}: {heard:?}"
        );
    }
    assert_eq!(heard["n1"], Some(0), "a node hears itself now");

    nodes[2].kill9();
    wait_state(&nodes[0], "n3", "down").await;
    wait_state(&nodes[1], "n3", "down").await;
    // The others stay up, and the silence since n3 was heard grows.
    let before = last_heard(&nodes[0]).await["n3"].expect("n3 was heard once");
    eventually("n3's silence grows", async || {
        let now = last_heard(&nodes[0]).await;
        match now["n3"] {
            Some(ms) if ms > before => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let seen = members(&nodes[1]).await;
    assert_eq!(seen["n1"].state, "up", "{seen:?}");
    assert_eq!(seen["n2"].state, "up", "{seen:?}");
}

#[tokio::test]
async fn third_node_joining_through_the_second_converges_on_one_member_list() {
    let n1 = start_node("n1", None, &[]).await;
    let n2 = start_node("n2", Some(&n1), &[]).await;
    // n3 knows only n2; n1 learns of n3 through gossip.
    let n3 = start_node("n3", Some(&n2), &[]).await;
    for n in [&n1, &n2, &n3] {
        wait_members_up(WAIT, n, &["n1", "n2", "n3"]).await;
    }
    // And each lists the same addresses for everyone.
    let addrs = |s: serde_json::Value| -> Vec<(String, String)> {
        s["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| {
                (
                    m["node_id"].as_str().expect("id").to_string(),
                    m["peer_addr"].as_str().expect("peer").to_string(),
                )
            })
            .collect()
    };
    let first = addrs(status_json(&n1).await);
    assert_eq!(first, addrs(status_json(&n2).await));
    assert_eq!(first, addrs(status_json(&n3).await));
}

#[tokio::test]
async fn node_down_during_keyspace_create_learns_it_after_restart() {
    let mut nodes = start_cluster(3, &[]).await;
    let mut c = nodes[0].client().await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", "gone", "MODE", "eventual", "REPLICAS", "3",
        ],
    )
    .await;
    eventually("n3 has 'gone'", async || {
        let list = keyspaces(&nodes[2]).await;
        if list.contains(&"gone".to_string()) {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;

    nodes[2].kill9();
    wait_state(&nodes[0], "n3", "down").await;
    // Both answer +OK with n3 down: it learns them from gossip later.
    ok_cmd(&mut c, &["KEYSPACE", "DROP", "gone"]).await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", "late", "MODE", "eventual", "REPLICAS", "3",
        ],
    )
    .await;
    ok_cmd(&mut c, &["USE", "late"]).await;
    ok_cmd(&mut c, &["SET", "k", "v"]).await;
    assert!(keyspaces(&nodes[1]).await.contains(&"late".to_string()));

    nodes[2].restart().await;
    let n3 = &nodes[2];
    // The drop reaches n3 only through gossip (a join hands over the
    // keyspaces that exist, not the ones dropped).
    eventually("n3 learns 'late' and forgets 'gone'", async || {
        let list = keyspaces(n3).await;
        if list.contains(&"late".to_string()) && !list.contains(&"gone".to_string()) {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
    // And serves it once it hears the others again.
    wait_members_up(WAIT, n3, &["n1", "n2", "n3"]).await;
    let mut c3 = n3.client().await;
    ok_cmd(&mut c3, &["USE", "late"]).await;
    assert_eq!(cmd(&mut c3, &["GET", "k"]).await, bulk("v"));
}

// ---------------------------------------------------------------------
// Join with streaming.
// ---------------------------------------------------------------------

/// What a writer saw.
#[derive(Default)]
struct Written {
    /// key → value, for every acknowledged SET.
    acked: BTreeMap<String, String>,
    /// Every error reply.
    errors: Vec<String>,
}

/// Writes `w{t}:{i}` at the keyspace's level through `addr` until `stop`
/// or `cap` writes, pausing `pause` between writes.
async fn writer(
    addr: std::net::SocketAddr,
    t: usize,
    stop: Arc<AtomicBool>,
    pause: Duration,
    cap: u64,
) -> Written {
    let mut c = Client::connect(addr).await.expect("connect writer");
    c.set_timeout(Some(Duration::from_secs(10)));
    ok_cmd(&mut c, &["USE", "load"]).await;
    let mut w = Written::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) && i < cap {
        let key = format!("w{t}:{i}");
        let value = format!("v{i}");
        match c.cmd(&["SET", key.as_str(), value.as_str()]).await {
            Ok(Frame::Simple(s)) if s == "OK" => {
                w.acked.insert(key, value);
            }
            Ok(Frame::Error(e)) => w.errors.push(e.to_string()),
            Ok(other) => w.errors.push(format!("unexpected {other:?}")),
            Err(e) => w.errors.push(format!("client error: {e}")),
        }
        i += 1;
        tokio::time::sleep(pause).await;
    }
    w
}

/// Stops the writers and gathers what they saw; asserts that they got
/// through and that no write was refused with UNAVAILABLE during `what`.
/// Other failures (a TIMEOUT on a loaded machine) leave a write's outcome
/// unknown; it is simply not counted as acknowledged.
async fn stop_writers(
    stop: &AtomicBool,
    writers: Vec<tokio::task::JoinHandle<Written>>,
    what: &str,
) -> BTreeMap<String, String> {
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeMap::new();
    let mut errors = Vec::new();
    for w in writers {
        let w = w.await.expect("writer task");
        acked.extend(w.acked);
        errors.extend(w.errors);
    }
    assert!(
        acked.len() > 100,
        "the writers got through: {}",
        acked.len()
    );
    let unavailable: Vec<&String> = errors
        .iter()
        .filter(|e| e.contains("UNAVAILABLE"))
        .collect();
    assert!(
        unavailable.is_empty(),
        "{} UNAVAILABLE replies during {what}: {:?}",
        unavailable.len(),
        &unavailable[..unavailable.len().min(5)]
    );
    eprintln!(
        "{} writes acknowledged, {} failed otherwise: {:?}",
        acked.len(),
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    acked
}

#[tokio::test]
async fn fourth_node_joins_under_quorum_load_without_unavailable_or_lost_writes() {
    let nodes = start_cluster(3, &NO_AAE).await;
    let mut c = nodes[0].client().await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", "load", "MODE", "eventual", "REPLICAS", "3",
        ],
    )
    .await;
    wait_keyspace_everywhere(&nodes, "load").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(t, n)| {
            let pause = Duration::from_millis(2);
            tokio::spawn(writer(n.resp, t, stop.clone(), pause, 20_000))
        })
        .collect();
    // Some data before the join, so there is something to stream.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let n4 = start_node("n4", Some(&nodes[1]), &NO_AAE).await;
    for n in nodes.iter().chain([&n4]) {
        wait_members_up(WAIT, n, &["n1", "n2", "n3", "n4"]).await;
    }
    // Keep writing a little on the new ring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = stop_writers(&stop, writers, "the join").await;

    // n4 holds every acknowledged key of its partitions itself: a read at
    // ONE through n4 answers from its own copy first.
    let ids = ["n1", "n2", "n3", "n4"];
    let mut c4 = n4.client().await;
    ok_cmd(&mut c4, &["USE", "load"]).await;
    ok_cmd(&mut c4, &["CONSISTENCY", "READ", "ONE"]).await;
    let mut owned = 0;
    for (k, v) in &acked {
        if replicas_of(&ids, k).iter().any(|r| r == "n4") {
            owned += 1;
            assert_eq!(
                cmd(&mut c4, &["GET", k.as_str()]).await,
                bulk(v),
                "n4's own copy of {k}"
            );
        }
    }
    assert!(owned > 0, "n4 owns some of the keys");
    assert_eq!(
        local_keys(&n4, "load").await,
        owned as i64,
        "n4 stores exactly the keys of its partitions"
    );

    // Every acknowledged write reads back at QUORUM and ALL, through any
    // node.
    for (i, node) in nodes.iter().chain([&n4]).enumerate() {
        let mut c = node.client().await;
        ok_cmd(&mut c, &["USE", "load"]).await;
        let level = if i % 2 == 0 { "QUORUM" } else { "ALL" };
        ok_cmd(&mut c, &["CONSISTENCY", "READ", level]).await;
        for (k, v) in acked.iter().skip(i).step_by(4) {
            assert_eq!(
                cmd(&mut c, &["GET", k.as_str()]).await,
                bulk(v),
                "{k} at {level} through node {}",
                i + 1
            );
        }
    }
}

// ---------------------------------------------------------------------
// Leave and remove.
// ---------------------------------------------------------------------

/// Writes `count` keys at ALL into keyspace `ks` (created with 3 replicas).
async fn fill(node: &Node, ks: &str, count: usize) {
    let mut c = node.client().await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", ks, "MODE", "eventual", "REPLICAS", "3",
        ],
    )
    .await;
    ok_cmd(&mut c, &["USE", ks]).await;
    ok_cmd(&mut c, &["CONSISTENCY", "WRITE", "ALL"]).await;
    for i in 0..count {
        ok_cmd(&mut c, &["SET", &format!("k{i}"), &format!("v{i}")]).await;
    }
}

/// Polls until each of `nodes` stores `count` keys of `ks` itself.
async fn wait_full_copies(nodes: &[&Node], ks: &str, count: i64) {
    for (i, n) in nodes.iter().enumerate() {
        eventually(
            &format!("node #{i} holds all {count} keys"),
            async || match local_keys(n, ks).await {
                c if c == count => Ok(()),
                c => Err(format!("{c} keys")),
            },
        )
        .await;
    }
}

#[tokio::test]
async fn leaving_node_streams_its_data_away_and_stops() {
    let mut nodes = start_cluster(4, &NO_AAE).await;
    const KEYS: usize = 300;
    fill(&nodes[0], "lv", KEYS).await;
    // With four nodes, nobody holds everything.
    let before = local_keys(&nodes[0], "lv").await;
    assert!(before < KEYS as i64, "n1 holds {before} of {KEYS}");

    let out = run(
        &["cluster", "--addr", &nodes[1].resp.to_string(), "leave"],
        &[],
        Duration::from_secs(60),
    );
    assert!(out.success(), "cluster leave failed: {}", out.stderr);
    assert_eq!(out.stdout.trim(), "OK");
    eventually("n2 exits after leaving", async || {
        if nodes[1].is_alive() {
            Err("still running".to_string())
        } else {
            Ok(())
        }
    })
    .await;

    // Three nodes left, three copies: each holds every key itself, and
    // lists only the three.
    let rest = [&nodes[0], &nodes[2], &nodes[3]];
    wait_full_copies(&rest, "lv", KEYS as i64).await;
    for n in rest {
        wait_members_up(WAIT, n, &["n1", "n3", "n4"]).await;
    }
    let mut c = nodes[2].client().await;
    ok_cmd(&mut c, &["USE", "lv"]).await;
    ok_cmd(&mut c, &["CONSISTENCY", "READ", "ALL"]).await;
    assert_eq!(cmd(&mut c, &["GET", "k7"]).await, bulk("v7"));
}

/// Writes `count` keys `m{i}` = `value-{i}` at ALL into a new keyspace
/// `ks` of 3 replicas, through `node`, from four clients at once (MSET of
/// 50 keys).
async fn fill_many(node: &Node, ks: &str, count: usize) {
    let mut c = node.client().await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", ks, "MODE", "eventual", "REPLICAS", "3",
        ],
    )
    .await;
    let keys: Vec<usize> = (0..count).collect();
    let per_client: Vec<Vec<usize>> = keys
        .chunks(count.div_ceil(4))
        .map(<[usize]>::to_vec)
        .collect();
    let clients = per_client.into_iter().map(|mine| {
        let (addr, ks) = (node.resp, ks.to_string());
        tokio::spawn(async move {
            let mut c = Client::connect(addr).await.expect("connect filler");
            c.set_timeout(Some(Duration::from_secs(60)));
            ok_cmd(&mut c, &["USE", &ks]).await;
            ok_cmd(&mut c, &["CONSISTENCY", "WRITE", "ALL"]).await;
            for chunk in mine.chunks(50) {
                let pairs: Vec<String> = chunk
                    .iter()
                    .flat_map(|i| [format!("m{i}"), format!("value-{i}")])
                    .collect();
                let mut args = vec!["MSET"];
                args.extend(pairs.iter().map(String::as_str));
                ok_cmd(&mut c, &args).await;
            }
        })
    });
    for filler in clients.collect::<Vec<_>>() {
        filler.await.expect("filler task");
    }
}

/// Reads keys `m0..m{count}` through `node` at READ ONE (the node is a
/// replica of every key, so it answers from its own copy) and asserts each
/// value, 100 keys per MGET.
async fn assert_holds_many(node: &Node, id: &str, ks: &str, count: usize) {
    let mut c = node.client().await;
    c.set_timeout(Some(Duration::from_secs(60)));
    ok_cmd(&mut c, &["USE", ks]).await;
    ok_cmd(&mut c, &["CONSISTENCY", "READ", "ONE"]).await;
    let keys: Vec<usize> = (0..count).collect();
    for chunk in keys.chunks(100) {
        let names: Vec<String> = chunk.iter().map(|i| format!("m{i}")).collect();
        let mut args = vec!["MGET"];
        args.extend(names.iter().map(String::as_str));
        let reply = cmd(&mut c, &args).await;
        let got = items(&reply);
        assert_eq!(got.len(), chunk.len(), "MGET through {id}: {reply:?}");
        for (i, v) in chunk.iter().zip(got) {
            assert_eq!(v, &bulk(&format!("value-{i}")), "m{i} through {id}");
        }
    }
}

#[tokio::test]
async fn leaving_node_hands_off_thousands_of_keys_each_readable_with_its_value_from_the_rest() {
    let mut nodes = start_cluster(4, &NO_AAE).await;
    const KEYS: usize = 3000;
    fill_many(&nodes[0], "many", KEYS).await;
    // With four nodes, n2 holds about three quarters of the keys.
    let held = local_keys(&nodes[1], "many").await;
    assert!(held > 0 && held < KEYS as i64, "n2 holds {held} of {KEYS}");

    leave_and_exit("n2", &mut nodes[1]).await;

    // Three nodes and three copies: each of them holds every key, with
    // its value.
    let rest = [("n1", &nodes[0]), ("n3", &nodes[2]), ("n4", &nodes[3])];
    for (_, n) in rest {
        wait_members_up(WAIT, n, &["n1", "n3", "n4"]).await;
    }
    let refs: Vec<&Node> = rest.iter().map(|(_, n)| *n).collect();
    wait_full_copies(&refs, "many", KEYS as i64).await;
    for (id, n) in rest {
        assert_holds_many(n, id, "many", KEYS).await;
    }
}

#[tokio::test]
async fn removed_dead_node_is_rereplicated_by_the_survivors() {
    let mut nodes = start_cluster(4, &NO_AAE).await;
    const KEYS: usize = 300;
    fill(&nodes[0], "rm", KEYS).await;
    let before = local_keys(&nodes[0], "rm").await;
    assert!(before < KEYS as i64, "n1 holds {before} of {KEYS}");

    nodes[3].kill9();
    wait_state(&nodes[0], "n4", "down").await;
    let mut c = nodes[0].client().await;
    // A live node cannot be removed.
    let reply = cmd(&mut c, &["CLUSTER", "REMOVE", "n2"]).await;
    assert!(
        err_text(&reply).contains("alive"),
        "removing a live node: {reply:?}"
    );
    ok_cmd(&mut c, &["CLUSTER", "REMOVE", "n4"]).await;

    let rest = [&nodes[0], &nodes[1], &nodes[2]];
    for n in rest {
        wait_members_up(WAIT, n, &["n1", "n2", "n3"]).await;
    }
    wait_full_copies(&rest, "rm", KEYS as i64).await;
}

#[tokio::test]
async fn old_replicas_drop_the_partitions_a_joined_node_took_over() {
    let nodes = start_cluster(3, &NO_AAE).await;
    const KEYS: usize = 300;
    fill(&nodes[0], "ho", KEYS).await;
    // Three nodes, three copies: everyone holds everything.
    wait_full_copies(&[&nodes[0], &nodes[1], &nodes[2]], "ho", KEYS as i64).await;

    let n4 = start_node("n4", Some(&nodes[0]), &NO_AAE).await;
    let all = [&nodes[0], &nodes[1], &nodes[2], &n4];
    for n in all {
        wait_members_up(WAIT, n, &["n1", "n2", "n3", "n4"]).await;
    }
    // Each node ends up holding exactly the keys it replicates.
    let ids = ["n1", "n2", "n3", "n4"];
    for (id, node) in ids.iter().zip(all) {
        let owned = (0..KEYS)
            .filter(|i| replicas_of(&ids, &format!("k{i}")).iter().any(|r| r == id))
            .count() as i64;
        assert!(owned < KEYS as i64, "{id} replicates {owned} of {KEYS}");
        eventually(
            &format!("{id} holds only its {owned} keys"),
            async || match local_keys(node, "ho").await {
                c if c == owned => Ok(()),
                c => Err(format!("{c} keys")),
            },
        )
        .await;
    }
    let metrics = nodes[0].http_get("/metrics").await.body;
    assert!(
        metrics.contains("handoff_dropped_records"),
        "/metrics counts dropped records"
    );
    // Nothing was lost: every key reads back from every node at ALL.
    for node in all {
        let mut c = node.client().await;
        ok_cmd(&mut c, &["USE", "ho"]).await;
        ok_cmd(&mut c, &["CONSISTENCY", "READ", "ALL"]).await;
        for i in 0..KEYS {
            assert_eq!(
                cmd(&mut c, &["GET", &format!("k{i}")]).await,
                bulk(&format!("v{i}")),
                "k{i}"
            );
        }
    }
}

#[tokio::test]
async fn removed_node_restarted_on_its_old_data_joins_again_and_catches_up() {
    let mut nodes = start_cluster(4, &NO_AAE).await;
    const KEYS: usize = 200;
    fill(&nodes[0], "rj", KEYS).await;

    nodes[3].kill9();
    wait_state(&nodes[0], "n4", "down").await;
    let mut c = nodes[0].client().await;
    ok_cmd(&mut c, &["CLUSTER", "REMOVE", "n4"]).await;
    for n in &nodes[..3] {
        wait_members_up(WAIT, n, &["n1", "n2", "n3"]).await;
        wait_ring_settled(WAIT, n).await;
    }
    // Writes n4 misses: new values for every key.
    ok_cmd(&mut c, &["USE", "rj"]).await;
    ok_cmd(&mut c, &["CONSISTENCY", "WRITE", "ALL"]).await;
    for i in 0..KEYS {
        ok_cmd(&mut c, &["SET", &format!("k{i}"), &format!("new{i}")]).await;
    }

    // n4 comes back on its old data dir: not straight into the ring, but
    // through a join that pulls what it missed.
    nodes[3].restart().await;
    for n in &nodes {
        wait_members_up(WAIT, n, &["n1", "n2", "n3", "n4"]).await;
    }
    let log = nodes[3].stderr_text();
    assert!(
        log.contains("removed this node while it was down"),
        "n4 saw that it had been removed"
    );
    assert!(
        log.contains("join streaming finished"),
        "n4 joined again by streaming"
    );
    let ids = ["n1", "n2", "n3", "n4"];
    let mut c4 = nodes[3].client().await;
    ok_cmd(&mut c4, &["USE", "rj"]).await;
    ok_cmd(&mut c4, &["CONSISTENCY", "READ", "ONE"]).await;
    let mut owned = 0;
    for i in 0..KEYS {
        let k = format!("k{i}");
        if replicas_of(&ids, &k).iter().any(|r| r == "n4") {
            owned += 1;
            assert_eq!(
                cmd(&mut c4, &["GET", k.as_str()]).await,
                bulk(&format!("new{i}")),
                "n4's own copy of {k} (read at ONE from n4)"
            );
        }
    }
    assert!(owned > 0, "n4 replicates some keys");
}

#[tokio::test]
async fn node_killed_while_joining_finishes_its_join_after_restart() {
    let nodes = start_cluster(3, &NO_AAE).await;
    // Enough data that the join takes a while at 1 MiB/s.
    const KEYS: usize = 2000;
    let value = "x".repeat(1000);
    let mut c = nodes[0].client().await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", "big", "MODE", "eventual", "REPLICAS", "3",
        ],
    )
    .await;
    ok_cmd(&mut c, &["USE", "big"]).await;
    ok_cmd(&mut c, &["CONSISTENCY", "WRITE", "ALL"]).await;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        let mut args = vec!["MSET".to_string()];
        for i in chunk {
            args.push(format!("k{i}"));
            args.push(value.clone());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_cmd(&mut c, &refs).await;
    }

    let slow = ["--stream-mb-per-sec", "1", "--aae-interval-ms", "3600000"];
    let mut n4 = start_node("n4", Some(&nodes[0]), &slow).await;
    wait_state(&nodes[0], "n4", "joining").await;
    // Kill it somewhere in its join (the settle time is 3 s; streaming
    // then takes several seconds at 1 MiB/s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still_joining = members(&nodes[0]).await["n4"].state == "joining";
    n4.kill9();
    n4.restart().await;
    for n in nodes.iter().chain([&n4]) {
        wait_members_up(WAIT, n, &["n1", "n2", "n3", "n4"]).await;
    }
    eprintln!("n4 was killed while joining: {still_joining}");
    assert!(
        n4.stderr_text().contains("join streaming finished"),
        "n4 finished its join"
    );

    // n4 holds every key of its partitions itself.
    let ids = ["n1", "n2", "n3", "n4"];
    let mut c4 = n4.client().await;
    ok_cmd(&mut c4, &["USE", "big"]).await;
    ok_cmd(&mut c4, &["CONSISTENCY", "READ", "ONE"]).await;
    let mut owned = 0;
    for i in 0..KEYS {
        let k = format!("k{i}");
        if replicas_of(&ids, &k).iter().any(|r| r == "n4") {
            owned += 1;
            assert_eq!(
                cmd(&mut c4, &["GET", k.as_str()]).await,
                bulk(&value),
                "n4's own copy of {k}"
            );
        }
    }
    assert_eq!(local_keys(&n4, "big").await, owned);
}

// ---------------------------------------------------------------------
// Join and leave together, under load.
// ---------------------------------------------------------------------

/// Each partition's Merkle root on every node that replicates it, from
/// `/anti-entropy/{ks}`: partition → node id → root.
async fn merkle_roots(
    nodes: &[(&str, &Node)],
    ks: &str,
) -> BTreeMap<u64, BTreeMap<String, String>> {
    let mut roots: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    for (id, node) in nodes {
        let r = node.http_get(&format!("/anti-entropy/{ks}")).await;
        assert_eq!(r.status, 200, "/anti-entropy/{ks} on {id}: {}", r.body);
        let body: serde_json::Value = serde_json::from_str(&r.body).expect("anti-entropy JSON");
        for (p, root) in body["roots"].as_object().expect("roots object") {
            roots
                .entry(p.parse().expect("partition number"))
                .or_default()
                .insert(
                    id.to_string(),
                    root.as_str().expect("root text").to_string(),
                );
        }
    }
    roots
}

/// Reads every `(key, value)` of `expected` back through `addr` at
/// QUORUM, and every fifth at ALL, 50 keys per MGET. This checks that no
/// acknowledged write was lost, after the membership change; availability
/// is the writers' check. So an MGET refused with `UNAVAILABLE` or
/// `TIMEOUT` (a replica seen down for a moment on an overloaded host; at
/// ALL one is enough) is asked again, until [`CONVERGE`] runs out; a wrong
/// value fails at once.
async fn read_back(addr: std::net::SocketAddr, id: String, expected: Vec<(String, String)>) {
    let mut c = Client::connect(addr).await.expect("connect reader");
    c.set_timeout(Some(Duration::from_secs(60)));
    ok_cmd(&mut c, &["USE", "load"]).await;
    for (level, stride) in [("QUORUM", 1), ("ALL", 5)] {
        ok_cmd(&mut c, &["CONSISTENCY", "READ", level]).await;
        let sample: Vec<&(String, String)> = expected.iter().step_by(stride).collect();
        for chunk in sample.chunks(50) {
            let mut args = vec!["MGET"];
            args.extend(chunk.iter().map(|(k, _)| k.as_str()));
            let deadline = Instant::now() + CONVERGE;
            let reply = loop {
                match cmd(&mut c, &args).await {
                    Frame::Error(e)
                        if (e.starts_with("UNAVAILABLE") || e.starts_with("TIMEOUT"))
                            && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => break other,
                }
            };
            for ((k, v), got) in chunk.iter().zip(items(&reply)) {
                assert_eq!(got, &bulk(v), "{k} at {level} through {id}");
            }
        }
    }
}

#[tokio::test]
async fn five_node_cluster_loses_nothing_while_a_node_joins_and_another_leaves_under_load() {
    // Anti-entropy every 3 s: convergence afterwards may use it (more
    // often costs the loaded nodes too much CPU).
    let aae = ["--aae-interval-ms", "3000"];
    let mut nodes = start_cluster(5, &aae).await;
    let mut c = nodes[0].client().await;
    ok_cmd(
        &mut c,
        &[
            "KEYSPACE", "CREATE", "load", "MODE", "eventual", "REPLICAS", "3", "READ", "QUORUM",
            "WRITE", "QUORUM",
        ],
    )
    .await;
    wait_keyspace_everywhere(&nodes, "load").await;

    // QUORUM writers through the four nodes that stay (n5 leaves), paced
    // so that reading every acknowledged key back stays short.
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = nodes[..4]
        .iter()
        .enumerate()
        .map(|(t, n)| {
            let pause = Duration::from_millis(10);
            tokio::spawn(writer(n.resp, t, stop.clone(), pause, 3_000))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // n6 joins through n2 under the load.
    let n6 = start_node("n6", Some(&nodes[1]), &aae).await;
    let six = ["n1", "n2", "n3", "n4", "n5", "n6"];
    for n in nodes.iter().chain([&n6]) {
        wait_members_up(WAIT, n, &six).await;
    }
    eprintln!("n6 joined after {:?}", started.elapsed());

    // Then n5 leaves, still under the load.
    leave_and_exit("n5", &mut nodes[4]).await;
    let rest: Vec<(&str, &Node)> = vec![
        ("n1", &nodes[0]),
        ("n2", &nodes[1]),
        ("n3", &nodes[2]),
        ("n4", &nodes[3]),
        ("n6", &n6),
    ];
    let final_ids = ["n1", "n2", "n3", "n4", "n6"];
    for (_, n) in &rest {
        wait_members_up(WAIT, n, &final_ids).await;
    }
    eprintln!("n5 left after {:?}", started.elapsed());
    // A little more load on the final ring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = stop_writers(&stop, writers, "the join and the leave").await;

    // Replicas converge: once the ring settled, every partition has its
    // three replicas among the final members, with equal Merkle roots.
    for (_, n) in &rest {
        wait_ring_settled(WAIT, n).await;
    }
    let partitions = eventually("every partition's replicas agree", async || {
        let roots = merkle_roots(&rest, "load").await;
        let bad: Vec<_> = roots
            .iter()
            .filter(|(_, by_node)| {
                by_node.len() != 3
                    || by_node
                        .values()
                        .collect::<std::collections::BTreeSet<_>>()
                        .len()
                        != 1
            })
            .take(3)
            .collect();
        if bad.is_empty() && !roots.is_empty() {
            Ok(roots.len())
        } else {
            Err(format!("{} partitions, e.g. {bad:?}", roots.len()))
        }
    })
    .await;
    eprintln!(
        "{partitions} partitions converged after {:?}",
        started.elapsed()
    );

    // Every acknowledged write reads back through the final members, all
    // five at once (MGET of 50 keys at a time): at QUORUM each key, at ALL
    // every fifth.
    let readers: Vec<_> = rest
        .iter()
        .enumerate()
        .map(|(i, (id, node))| {
            let mine: Vec<(String, String)> = acked
                .iter()
                .skip(i)
                .step_by(rest.len())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tokio::spawn(read_back(node.resp, id.to_string(), mine))
        })
        .collect();
    for r in readers {
        r.await.expect("reader task");
    }
    eprintln!("read back after {:?}", started.elapsed());
}
