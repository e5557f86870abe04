//! The simulated clients: register workloads that record a
//! `fulcrum_check::History`, and the admin client that creates the
//! keyspaces and takes the final reads.
//!
//! Outcomes are recorded honestly, as the checker requires: `Ok` for a
//! reply that says the operation happened, `Fail` only when Fulcrum
//! guarantees it did not (a refused `UNAVAILABLE` without "outcome
//! unknown", a CAS whose comparison failed, a read that errored), `Info`
//! for everything else (timeouts, dropped connections, `TIMEOUT …`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_check::{History, Op, OpId, Outcome};
use fulcrum_proto::Frame;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;
use crate::resp::{ClientError, SimClient};

/// RESP port of every node.
pub const RESP_PORT: u16 = 6379;
/// Peer port of every node.
pub const PEER_PORT: u16 = 7000;
/// HTTP port of every node.
pub const HTTP_PORT: u16 = 8080;

/// The eventual keyspace (N=3, QUORUM reads and writes, siblings).
pub const EVENTUAL: &str = "ev";
/// The strong keyspace.
pub const STRONG: &str = "st";

/// Host name of node `i` (0-based): `n1`, `n2`, …
pub fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}

/// State the clients and the harness loop share (one thread: `Rc`).
#[derive(Debug, Default)]
pub struct Shared {
    pub history: History,
    /// Simulated time at which every node knows both keyspaces.
    pub ready_at: Option<Duration>,
    /// Simulated time of the heal (set by the harness loop).
    pub healed_at: Option<Duration>,
    /// Workload clients that finished.
    pub workers_done: usize,
    /// Notes from the clients (setup, final phase), for the run log.
    pub notes: Vec<String>,
}

pub type SharedRef = Rc<RefCell<Shared>>;

/// Simulated time now (inside a host).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// History timestamp: simulated nanoseconds.
fn stamp() -> u64 {
    now().as_nanos() as u64
}

fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::new(turmoil::lookup(node_name(i)), RESP_PORT)
}

fn note(shared: &SharedRef, text: String) {
    let mut s = shared.borrow_mut();
    let line = format!("{:>9.3}s {text}", now().as_secs_f64());
    s.notes.push(line);
}

/// Waits (polling simulated time) until `ready` returns a value.
async fn wait_for<T>(shared: &SharedRef, ready: impl Fn(&Shared) -> Option<T>) -> T {
    loop {
        if let Some(v) = ready(&shared.borrow()) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connects to node `i` and selects `keyspace`.
async fn open(i: usize, keyspace: &str, timeout: Duration) -> Result<SimClient, ClientError> {
    let mut c = SimClient::connect(node_addr(i), Duration::from_millis(1_000)).await?;
    match c.cmd(&["USE", keyspace], timeout).await? {
        Frame::Simple(s) if s == "OK" => Ok(c),
        other => Err(ClientError::Protocol(format!("USE {keyspace}: {other:?}"))),
    }
}

/// A value as the workload wrote it (decimal); anything else maps to a
/// value never written, which the checkers report.
fn parse_value(b: &[u8]) -> u64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Whether an error reply guarantees that a write did not happen.
pub fn surely_not_applied(message: &str) -> bool {
    message.starts_with("UNAVAILABLE") && !message.contains("outcome unknown")
}

fn record(shared: &SharedRef, id: OpId, outcome: Outcome, observed: Option<Op>) {
    let at = stamp();
    let mut s = shared.borrow_mut();
    let r = match observed {
        Some(op) => s.history.complete_with(id, at, outcome, op, None),
        None => s.history.complete(id, at, outcome),
    };
    if let Err(e) = r {
        panic!("history bookkeeping: {e}");
    }
}

/// One workload client on `keyspace`: random GET / SET (and on the strong
/// keyspace SET … IFEQ) of unique values over a few keys, until the
/// workload window closes.
pub async fn worker(
    config: SimConfig,
    shared: SharedRef,
    client: u64,
    keyspace: &'static str,
) -> turmoil::Result {
    let strong = keyspace == STRONG;
    let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_mul(31).wrapping_add(client));
    let ready = wait_for(&shared, |s| s.ready_at).await;
    let end = ready + config.workload;
    let mut conn: Option<SimClient> = None;
    let mut target = client as usize % config.nodes;
    let mut counter = 0u64;
    let mut last_seen: Vec<Option<u64>> = vec![None; config.keys];
    while now() < end {
        let Some(c) = conn.as_mut() else {
            match open(target, keyspace, config.client_timeout).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    target = (target + 1) % config.nodes;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        let k = rng.random_range(0..config.keys);
        let key = format!("k{k}");
        let hkey = format!("{keyspace}/{key}");
        counter += 1;
        // Unique per key, and readable: client 4's 17th write is 4000017.
        let value = client * 1_000_000 + counter;
        let roll = rng.random_range(0..100);
        let (op, args): (Op, Vec<String>) = if roll < 45 {
            (Op::Read(None), vec!["GET".into(), key])
        } else if strong && roll >= 80 && last_seen[k].is_some() {
            let expected = last_seen[k].unwrap_or_default();
            (
                Op::Cas {
                    expected: Some(expected),
                    new: value,
                },
                vec![
                    "SET".into(),
                    key,
                    value.to_string(),
                    "IFEQ".into(),
                    expected.to_string(),
                ],
            )
        } else {
            (Op::Write(value), vec!["SET".into(), key, value.to_string()])
        };
        let id = shared
            .borrow_mut()
            .history
            .invoke(client, hkey, op.clone(), stamp());
        let reply = c.cmd(&args, config.client_timeout).await;
        match (&op, reply) {
            (Op::Read(_), Ok(Frame::Bulk(b))) => {
                let v = parse_value(&b);
                last_seen[k] = Some(v);
                record(&shared, id, Outcome::Ok, Some(Op::Read(Some(v))));
            }
            (Op::Read(_), Ok(Frame::Null)) => {
                record(&shared, id, Outcome::Ok, Some(Op::Read(None)));
            }
            (Op::Read(_), Ok(_)) => record(&shared, id, Outcome::Fail, None),
            (_, Ok(Frame::Simple(s))) if s == "OK" => {
                last_seen[k] = op.written_value();
                record(&shared, id, Outcome::Ok, None);
            }
            // SET … IFEQ whose comparison failed: nothing happened.
            (Op::Cas { .. }, Ok(Frame::Null)) => record(&shared, id, Outcome::Fail, None),
            (_, Ok(Frame::Error(msg))) if surely_not_applied(&msg) => {
                record(&shared, id, Outcome::Fail, None);
            }
            (_, Ok(_)) => record(&shared, id, Outcome::Info, None),
            (_, Err(_)) => {
                record(&shared, id, Outcome::Info, None);
                conn = None;
                target = (target + 1) % config.nodes;
            }
        }
        let think = rng.random_range(0..15);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    shared.borrow_mut().workers_done += 1;
    Ok(())
}

/// Sends `args` on a fresh connection to node `i` until a non-error reply
/// (setup steps, before any fault).
async fn until_ok(i: usize, keyspace: &str, args: &[&str], ok: impl Fn(&Frame) -> bool) {
    loop {
        if let Ok(mut c) = open(i, keyspace, Duration::from_millis(2_000)).await {
            if let Ok(f) = c.cmd(args, Duration::from_millis(2_000)).await {
                if ok(&f) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The admin client: creates the keyspaces once the nodes are up, waits
/// until every node knows them (→ `ready_at`), then after the heal and the
/// settle time takes the final reads (recorded: QUORUM `VGET` per eventual
/// key, `GET` per strong key) and an unrecorded `ALL` read of every
/// eventual key, whose read repair brings all replicas together before the
/// convergence check.
pub async fn admin(config: SimConfig, shared: SharedRef, client: u64) -> turmoil::Result {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exists = |f: &Frame| match f {
        Frame::Simple(_) => true,
        Frame::Error(e) => e.contains("exists"),
        _ => false,
    };
    until_ok(
        0,
        "default",
        &[
            "KEYSPACE", "CREATE", EVENTUAL, "MODE", "eventual", "REPLICAS", "3", "READ", "quorum",
            "WRITE", "quorum", "CONFLICT", "siblings",
        ],
        exists,
    )
    .await;
    let keyspaces: &[&str] = if config.strong {
        until_ok(
            0,
            "default",
            &[
                "KEYSPACE", "CREATE", STRONG, "MODE", "strong", "REPLICAS", "3",
            ],
            exists,
        )
        .await;
        &[EVENTUAL, STRONG]
    } else {
        &[EVENTUAL]
    };
    for i in 0..config.nodes {
        for &ks in keyspaces {
            until_ok(i, "default", &["KEYSPACE", "INFO", ks], |f| !f.is_error()).await;
        }
    }
    note(
        &shared,
        "keyspaces exist on every node: workload starts".into(),
    );
    shared.borrow_mut().ready_at = Some(now());

    let strong_clients = if config.strong {
        config.strong_clients
    } else {
        0
    };
    let total = config.eventual_clients + strong_clients;
    let healed = wait_for(&shared, |s| s.healed_at).await;
    wait_for(&shared, |s| (s.workers_done == total).then_some(())).await;
    let start = healed + config.settle;
    if now() < start {
        tokio::time::sleep(start - now()).await;
    }
    note(&shared, "final reads".into());
    let mut target = 0usize;
    for &(keyspace, vget) in &[(EVENTUAL, true), (STRONG, false)][..keyspaces.len()] {
        for k in 0..config.keys {
            let key = format!("k{k}");
            let hkey = format!("{keyspace}/{key}");
            let mut done = false;
            for _attempt in 0..30 {
                let mut c = match open(target, keyspace, config.client_timeout).await {
                    Ok(c) => c,
                    Err(_) => {
                        target = (target + 1) % config.nodes;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let placeholder = if vget {
                    Op::ReadSet(Vec::new())
                } else {
                    Op::Read(None)
                };
                let id =
                    shared
                        .borrow_mut()
                        .history
                        .invoke(client, hkey.clone(), placeholder, stamp());
                let cmd = if vget { "VGET" } else { "GET" };
                let reply = c.cmd(&[cmd, key.as_str()], config.client_timeout).await;
                let observed = match reply {
                    Ok(Frame::Array(parts)) if vget => match parts.get(1) {
                        Some(Frame::Array(vals)) => Some(Op::ReadSet(
                            vals.iter()
                                .map(|f| parse_value(f.as_bytes().unwrap_or_default()))
                                .collect(),
                        )),
                        _ => None,
                    },
                    Ok(Frame::Bulk(b)) if !vget => Some(Op::Read(Some(parse_value(&b)))),
                    Ok(Frame::Null) if !vget => Some(Op::Read(None)),
                    _ => None,
                };
                match observed {
                    Some(op) => {
                        record(&shared, id, Outcome::Ok, Some(op));
                        done = true;
                        break;
                    }
                    None => {
                        record(&shared, id, Outcome::Fail, None);
                        target = (target + 1) % config.nodes;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            if !done {
                note(&shared, format!("final read of {hkey} never succeeded"));
            }
        }
    }
    // Read repair at ALL (not recorded), then give repairs time to land.
    for k in 0..config.keys {
        let key = Bytes::from(format!("k{k}"));
        let mut ok = false;
        for attempt in 0..10 {
            if let Ok(mut c) = open(attempt % config.nodes, EVENTUAL, config.client_timeout).await {
                let _ = c
                    .cmd(&["CONSISTENCY", "READ", "all"], config.client_timeout)
                    .await;
                if let Ok(Frame::Array(_)) = c
                    .cmd(&[&b"VGET"[..], &key[..]], config.client_timeout)
                    .await
                {
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !ok {
            note(
                &shared,
                format!("read at ALL of {EVENTUAL}/k{k} never succeeded"),
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    note(&shared, "done".into());
    Ok(())
}
