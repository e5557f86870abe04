//! Strong keyspaces across three real `fulcrum server` processes on
//! loopback: exact counters under leader kills, SET NX races, a
//! compare-and-set loop, linearizable and serializable reads through every
//! node, and durability of acknowledged writes across a full-cluster
//! `kill -9`.
//!
//! Every test starts its own cluster on fresh ports and temporary data
//! directories. Nothing asserts on timing: deadlines only bound waiting.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use fulcrum_client::{Client, Frame};
use rand::seq::SliceRandom;

/// How long convergence (membership, elections after restarts) may take.
const CONVERGE: Duration = Duration::from_secs(30);

/// Client I/O timeout: above the server's strong-request deadline (5 s),
/// so a slow reply is the server's verdict rather than a client timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Waiting for convergence: up to [`CONVERGE`], looking every 50 ms.
const WAIT: Wait = Wait {
    within: CONVERGE,
    every: Duration::from_millis(50),
};

// ---------------------------------------------------------------------
// A three-node cluster (tests/common/cluster.rs).
// ---------------------------------------------------------------------

impl Cluster {
    /// Starts n1..n3 and waits until every node sees all three up; its
    /// clients time out after [`CLIENT_TIMEOUT`].
    async fn start() -> Cluster {
        Cluster::start_three(&[], WAIT)
            .await
            .with_client_timeout(CLIENT_TIMEOUT)
    }

    /// A cluster with strong keyspace `ks` created (through n1).
    async fn with_strong(ks: &str) -> Cluster {
        let cluster = Cluster::start().await;
        let mut c = cluster.nodes[0].client().await;
        assert_eq!(
            cmd(&mut c, &["KEYSPACE", "CREATE", ks, "MODE", "strong"]).await,
            ok(),
            "KEYSPACE CREATE {ks} MODE strong"
        );
        cluster
    }

    /// The nodes' RESP addresses, n1 first.
    fn resp_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.resp).collect()
    }
}

/// Runs `probe` until it answers `Ok`, every 50 ms, for at most
/// [`CONVERGE`]; then fails with `what` and the last `Err`.
async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    WAIT.until(what, probe).await
}

/// A connection to `addr` using keyspace `ks`, or why not.
async fn connect_using(addr: SocketAddr, ks: &str) -> Result<Client, String> {
    let mut c = Client::connect_with_timeout(addr, Some(Duration::from_secs(2)))
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    match c.cmd(&["USE", ks]).await {
        Ok(Frame::Simple(s)) if s == "OK" => {}
        other => return Err(format!("USE {ks} on {addr}: {other:?}")),
    }
    c.set_timeout(Some(CLIENT_TIMEOUT));
    Ok(c)
}

/// GET's value through `addr` (a fresh connection, `level` read
/// consistency), retried on errors and dropped connections until it
/// succeeds or [`CONVERGE`] passes.
async fn get_retrying(addr: SocketAddr, ks: &str, key: &str, level: &str) -> Option<String> {
    eventually(&format!("{level} GET {key} through {addr}"), async || {
        let mut c = connect_using(addr, ks).await?;
        let set = c
            .cmd(&["CONSISTENCY", "READ", level])
            .await
            .map_err(|e| e.to_string())?;
        if set != ok() {
            return Err(format!("CONSISTENCY READ {level}: {set:?}"));
        }
        match c.cmd(&["GET", key]).await.map_err(|e| e.to_string())? {
            Frame::Null => Ok(None),
            Frame::Bulk(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// GETREV's `(value, revision)`; panics on anything but a pair.
async fn getrev(c: &mut Client, key: &str) -> (String, i64) {
    let reply = cmd(c, &["GETREV", key]).await;
    let parts = items(&reply);
    assert_eq!(parts.len(), 2, "GETREV {key}: {reply:?}");
    (text(&parts[0]), as_int(&parts[1]))
}

// ---------------------------------------------------------------------
// 1. INCR under leader kills.
// ---------------------------------------------------------------------

/// What the INCR clients saw.
#[derive(Default)]
struct IncrTally {
    /// Integer replies (each an acknowledged increment).
    ok: Vec<i64>,
    /// Errors and dropped connections that may have applied.
    unknown: u64,
    /// `UNAVAILABLE` errors (the server says: surely not applied).
    not_applied: u64,
    /// A few error texts, for the failure message.
    samples: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incr_counter_is_exact_under_leader_kills() {
    let mut cluster = Cluster::with_strong("bank").await;
    let addrs = Arc::new(Mutex::new(cluster.resp_addrs()));
    let stop = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::new();
    for w in 0..64usize {
        let addrs = addrs.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = IncrTally::default();
            let mut conn: Option<Client> = None;
            let mut target = w % 3;
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = conn.as_mut() else {
                    let addr = addrs.lock().expect("addrs")[target];
                    match connect_using(addr, "bank").await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            // That node is down: try the next one.
                            target = (target + 1) % 3;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    continue;
                };
                match c.cmd(&["INCR", "counter"]).await {
                    Ok(Frame::Integer(n)) => tally.ok.push(n),
                    Ok(Frame::Error(e)) if e.starts_with("UNAVAILABLE") => {
                        tally.not_applied += 1;
                        tally.samples.insert(e.chars().take(100).collect());
                    }
                    Ok(other) => {
                        tally.unknown += 1;
                        tally
                            .samples
                            .insert(format!("{other:?}").chars().take(100).collect());
                    }
                    Err(e) => {
                        // The connection is gone or out of step: the
                        // command may or may not have applied.
                        tally.unknown += 1;
                        tally
                            .samples
                            .insert(e.to_string().chars().take(100).collect());
                        conn = None;
                        target = (target + 1) % 3;
                    }
                }
            }
            tally
        }));
    }

    // Nemesis: kill -9 each node once, in a random order, 2 s down each.
    // If the counter's group kept one leader throughout, that leader is
    // killed in one of the rounds.
    let mut order = [0usize, 1, 2];
    order.shuffle(&mut rand::rng());
    for &victim in &order {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.nodes[victim].kill9();
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.nodes[victim].restart().await;
        addrs.lock().expect("addrs")[victim] = cluster.nodes[victim].resp;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = IncrTally::default();
    for w in workers {
        let t = w.await.expect("INCR worker panicked");
        total.ok.extend(t.ok);
        total.unknown += t.unknown;
        total.not_applied += t.not_applied;
        total.samples.extend(t.samples);
    }
    cluster.wait_all_up().await;

    // Every acknowledged INCR answered a different value: each is one
    // distinct step of the one counter.
    let oks = total.ok.len() as i64;
    let distinct: BTreeSet<i64> = total.ok.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        total.ok.len(),
        "two acknowledged INCRs answered the same value"
    );
    let max_ok = distinct.last().copied().unwrap_or(0);
    assert!(oks > 0, "no INCR succeeded; errors: {:?}", total.samples);

    let mut values = Vec::new();
    for (i, addr) in cluster.resp_addrs().into_iter().enumerate() {
        let v = get_retrying(addr, "bank", "counter", "LINEARIZABLE").await;
        let v: i64 = v
            .as_deref()
            .unwrap_or_else(|| panic!("counter missing through n{}", i + 1))
            .parse()
            .expect("counter is an integer");
        values.push(v);
    }
    let summary = format!(
        "oks={oks} unknown={} not_applied={} max_ok={max_ok} values={values:?} errors={:?}",
        total.unknown, total.not_applied, total.samples
    );
    eprintln!("incr under kills: {summary}");
    assert!(
        values.iter().all(|v| *v == values[0]),
        "nodes disagree: {summary}"
    );
    let value = values[0];
    assert!(value >= oks, "acknowledged INCRs lost: {summary}");
    assert!(
        value >= max_ok,
        "an acknowledged INCR result is lost: {summary}"
    );
    assert!(
        value <= oks + total.unknown as i64,
        "more increments applied than were sent and possibly applied: {summary}"
    );
}

// ---------------------------------------------------------------------
// 2. SET NX race.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_nx_race_has_exactly_one_winner_per_name() {
    const CLIENTS: usize = 50;
    const NAMES: usize = 1000;
    let cluster = Cluster::with_strong("seats").await;
    let addrs = cluster.resp_addrs();

    let mut racers = Vec::new();
    for id in 0..CLIENTS {
        let addr = addrs[id % 3];
        racers.push(tokio::spawn(async move {
            let mut c = connect_using(addr, "seats")
                .await
                .unwrap_or_else(|e| panic!("racer {id}: {e}"));
            let mut names: Vec<usize> = (0..NAMES).collect();
            names.shuffle(&mut rand::rng());
            let me = format!("client-{id}");
            let mut won = Vec::new();
            for i in names {
                let key = format!("name:{i}");
                match c.cmd(&["SET", key.as_str(), me.as_str(), "NX"]).await {
                    Ok(Frame::Simple(s)) if s == "OK" => won.push(i),
                    Ok(Frame::Null) => {}
                    other => panic!("racer {id}: SET {key} NX: {other:?} (no faults injected)"),
                }
            }
            (me, won)
        }));
    }
    let started = Instant::now();
    let mut winners: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for r in racers {
        let (me, won) = r.await.expect("racer panicked");
        for i in won {
            winners.entry(i).or_default().push(me.clone());
        }
    }
    eprintln!("set nx: the race took {:?}", started.elapsed());
    for i in 0..NAMES {
        let w = winners.get(&i).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(w.len(), 1, "name:{i}: OK replies from {w:?}");
    }
    let started = Instant::now();
    for n in 1..=3 {
        let mut c = cluster.client(n, "seats").await;
        // Pipelined, 100 GETs a round trip.
        for chunk in (0..NAMES).collect::<Vec<_>>().chunks(100) {
            let gets: Vec<[String; 2]> = chunk
                .iter()
                .map(|i| ["GET".to_string(), format!("name:{i}")])
                .collect();
            let replies = c
                .pipeline(&gets)
                .await
                .unwrap_or_else(|e| panic!("pipelined GETs through n{n}: {e}"));
            assert_eq!(replies.len(), chunk.len());
            for (i, reply) in chunk.iter().zip(replies) {
                assert_eq!(reply, bulk(&winners[i][0]), "GET name:{i} through n{n}");
            }
        }
    }
    eprintln!(
        "set nx: GETs through every node took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------
// 3. Compare-and-set loop.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_loop_never_loses_an_update() {
    const CLIENTS: usize = 20;
    const EACH: usize = 25;
    let cluster = Cluster::with_strong("cas").await;
    let addrs = cluster.resp_addrs();
    let mut c = cluster.client(1, "cas").await;
    assert_eq!(cmd(&mut c, &["SET", "cas", "0"]).await, ok());

    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let addr = addrs[id % 3];
        tasks.push(tokio::spawn(async move {
            let mut c = connect_using(addr, "cas")
                .await
                .unwrap_or_else(|e| panic!("client {id}: {e}"));
            // The values this client moved the key from.
            let mut from = Vec::new();
            let mut conflicts = 0u64;
            while from.len() < EACH {
                let n: i64 = match c.cmd(&["GET", "cas"]).await {
                    Ok(Frame::Bulk(b)) => std::str::from_utf8(&b)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("client {id}: GET cas: {b:?}")),
                    other => panic!("client {id}: GET cas: {other:?} (no faults injected)"),
                };
                let (cur, next) = (n.to_string(), (n + 1).to_string());
                match c
                    .cmd(&["SET", "cas", next.as_str(), "IFEQ", cur.as_str()])
                    .await
                {
                    Ok(Frame::Simple(s)) if s == "OK" => from.push(n),
                    Ok(Frame::Null) => conflicts += 1,
                    other => panic!("client {id}: SET cas {next} IFEQ {cur}: {other:?}"),
                }
            }
            (from, conflicts)
        }));
    }
    let mut all_from = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (from, k) = t.await.expect("CAS client panicked");
        all_from.extend(from);
        conflicts += k;
    }
    eprintln!("cas: {conflicts} lost races retried");
    // Each successful CAS moved the key from a different value: exactly
    // the steps 0 → 1 → … → 500.
    all_from.sort_unstable();
    let expected: Vec<i64> = (0..(CLIENTS * EACH) as i64).collect();
    assert_eq!(all_from, expected, "successful CAS steps");
    let total = (CLIENTS * EACH).to_string();
    for n in 1..=3 {
        let mut c = cluster.client(n, "cas").await;
        assert_eq!(
            get(&mut c, "cas").await.as_deref(),
            Some(total.as_str()),
            "GET cas through n{n}"
        );
    }
}

// ---------------------------------------------------------------------
// 4. Reads through every node.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_work_on_every_node_and_linearizable_reads_are_fresh() {
    let cluster = Cluster::with_strong("reads").await;
    let mut w = cluster.client(1, "reads").await;
    let mut r2 = cluster.client(2, "reads").await;
    let mut r3 = cluster.client(3, "reads").await;
    let mut serial = Vec::new();
    for n in 1..=3 {
        let mut c = cluster.client(n, "reads").await;
        assert_eq!(
            cmd(&mut c, &["CONSISTENCY", "READ", "SERIALIZABLE"]).await,
            ok(),
            "CONSISTENCY READ SERIALIZABLE on n{n}"
        );
        serial.push(c);
    }

    for i in 0..100 {
        // A few keys, so several groups (and leaders) take part.
        let key = format!("fresh:{}", i % 7);
        let value = format!("v{i}");
        assert_eq!(
            cmd(&mut w, &["SET", key.as_str(), value.as_str()]).await,
            ok(),
            "SET {key} {value} through n1"
        );
        for (n, c) in [(2, &mut r2), (3, &mut r3)] {
            assert_eq!(
                get(c, &key).await.as_deref(),
                Some(value.as_str()),
                "linearizable GET {key} through n{n} right after the write"
            );
        }
        if i % 10 == 9 {
            for (n, c) in serial.iter_mut().enumerate() {
                let n = n + 1;
                eventually(
                    &format!("serializable GET {key} through n{n} returns {value}"),
                    async || match get(c, &key).await {
                        Some(v) if v == value => Ok(()),
                        other => Err(format!("{other:?}")),
                    },
                )
                .await;
            }
        }
    }
}

// ---------------------------------------------------------------------
// 5. Durability across a full-cluster kill -9.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_full_cluster_restart() {
    const KEYS: usize = 200;
    let mut cluster = Cluster::with_strong("durable").await;
    let mut clients = vec![
        cluster.client(1, "durable").await,
        cluster.client(2, "durable").await,
        cluster.client(3, "durable").await,
    ];
    for i in 0..KEYS {
        let (key, value) = (format!("k:{i}"), format!("value-{i}"));
        assert_eq!(
            cmd(&mut clients[i % 3], &["SET", key.as_str(), value.as_str()]).await,
            ok(),
            "SET {key}"
        );
    }
    assert_eq!(cmd(&mut clients[0], &["SET", "twice", "first"]).await, ok());
    let (_, rev1) = getrev(&mut clients[1], "twice").await;
    assert_eq!(
        cmd(&mut clients[2], &["SET", "twice", "second"]).await,
        ok()
    );
    let (v2, rev2) = getrev(&mut clients[0], "twice").await;
    assert_eq!(v2, "second");
    assert!(rev2 > rev1, "GETREV went from {rev1} to {rev2}");
    drop(clients);

    for node in &mut cluster.nodes {
        node.kill9();
    }
    for node in &mut cluster.nodes {
        node.restart().await;
    }
    cluster.wait_all_up().await;

    let addrs = cluster.resp_addrs();
    for i in 0..KEYS {
        let key = format!("k:{i}");
        let v = get_retrying(addrs[i % 3], "durable", &key, "LINEARIZABLE").await;
        assert_eq!(
            v,
            Some(format!("value-{i}")),
            "{key} after the restart of every node"
        );
    }
    let mut c = cluster.client(2, "durable").await;
    assert_eq!(getrev(&mut c, "twice").await, ("second".to_string(), rev2));
    assert_eq!(cmd(&mut c, &["SET", "twice", "third"]).await, ok());
    let (v3, rev3) = getrev(&mut c, "twice").await;
    assert_eq!(v3, "third");
    assert!(
        rev3 > rev2,
        "GETREV went from {rev2} to {rev3} after the restart"
    );
}
