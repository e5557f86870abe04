//! The crash contract, over the real binary (default `--fsync always`):
//! 32 concurrent clients write while the server is killed with SIGKILL at
//! a random moment; after a restart on the same data directory every
//! acknowledged write reads back exactly (and an acknowledged DEL stays
//! deleted), writes that were in flight at the kill are all-or-nothing,
//! and nothing appears that was never written. Each test runs the kill
//! cycle three times (restart, verify, write more, kill again) to catch
//! recovery-of-recovery bugs.
//!
//! The kill moment is drawn from a seeded RNG; the seed is printed (set
//! `FULCRUM_E2E_SEED` to replay one).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use fulcrum_client::{Client, Frame};
use rand::{rngs::StdRng, Rng, SeedableRng};

const WRITERS: usize = 32;
const CYCLES: usize = 3;

fn seed() -> u64 {
    let seed = std::env::var("FULCRUM_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() ^ u64::from(std::process::id()));
    println!("crash test seed = {seed} (replay with FULCRUM_E2E_SEED={seed})");
    seed
}

/// Waits a random 300-1500 ms (from `rng`), then kills the node with
/// SIGKILL.
async fn kill_at_random_moment(node: &mut Node, rng: &mut StdRng, cycle: usize) {
    let after = rng.random_range(300..=1500);
    println!("cycle {cycle}: kill -9 after {after} ms");
    tokio::time::sleep(Duration::from_millis(after)).await;
    node.kill9();
}

/// One operation a writer sent: the state each key has if it took effect.
#[derive(Debug, Clone)]
struct Op {
    writes: Vec<(String, Option<String>)>,
    /// Whether the server acknowledged it (false: in flight at the kill).
    acked: bool,
}

/// What each key of one keyspace may hold: the states allowed by
/// acknowledged and in-flight operations.
#[derive(Default)]
struct Model {
    /// The keyspace the keys live in.
    keyspace: &'static str,
    /// Whether a multi-key write is one atomic batch here (strong
    /// keyspaces; on eventual keyspaces each pair of MSET is its own
    /// write).
    atomic: bool,
    allowed: HashMap<String, Vec<Option<String>>>,
    /// In-flight multi-key operations: after the restart each must have
    /// taken effect entirely or not at all.
    pending_atomic: Vec<Vec<(String, Option<String>)>>,
    acked_ops: usize,
    inflight_ops: usize,
}

impl Model {
    /// Applies one writer's operations, in the order it sent them.
    fn apply(&mut self, ops: Vec<Op>) {
        for op in ops {
            if op.acked {
                self.acked_ops += 1;
                for (k, v) in op.writes {
                    self.allowed.insert(k, vec![v]);
                }
            } else {
                self.inflight_ops += 1;
                for (k, v) in &op.writes {
                    let states = self.allowed.entry(k.clone()).or_insert_with(|| vec![None]);
                    if !states.contains(v) {
                        states.push(v.clone());
                    }
                }
                if self.atomic && op.writes.len() > 1 {
                    self.pending_atomic.push(op.writes);
                }
            }
        }
    }

    /// Reads every key the model knows and every key the node has; checks
    /// them against the model, then pins the model to what was read.
    async fn verify(&mut self, c: &mut Client, label: &str) {
        let label = format!("{label} [{}]", self.keyspace);
        assert_eq!(cmd(c, &["USE", self.keyspace]).await, ok());
        let keys: Vec<String> = self.allowed.keys().cloned().collect();
        let mut actual: HashMap<String, Option<String>> = HashMap::new();
        for chunk in keys.chunks(500) {
            let mut args = vec!["MGET"];
            args.extend(chunk.iter().map(String::as_str));
            let reply = cmd(c, &args).await;
            for (k, v) in chunk.iter().zip(items(&reply)) {
                let v = match v {
                    Frame::Null => None,
                    other => Some(text(other)),
                };
                actual.insert(k.clone(), v);
            }
        }
        let mut lost = Vec::new();
        for (k, states) in &self.allowed {
            let got = &actual[k];
            if !states.contains(got) {
                lost.push(format!("{k}: read {got:?}, allowed {states:?}"));
            }
        }
        assert!(
            lost.is_empty(),
            "{label}: {} keys do not match what was acknowledged ({} acked ops, {} in flight):\n{}",
            lost.len(),
            self.acked_ops,
            self.inflight_ops,
            lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        for group in self.pending_atomic.drain(..) {
            let applied: Vec<bool> = group.iter().map(|(k, v)| actual[k] == *v).collect();
            assert!(
                applied.iter().all(|&a| a) || applied.iter().all(|&a| !a),
                "{label}: an in-flight multi-key write was applied partially: {group:?} -> {:?}",
                group.iter().map(|(k, _)| &actual[k]).collect::<Vec<_>>()
            );
        }
        // No key exists that was never written.
        let known: HashSet<&String> = self.allowed.keys().collect();
        let mut cursor = "0".to_string();
        loop {
            let reply = cmd(c, &["SCAN", &cursor, "COUNT", "1000"]).await;
            let parts = items(&reply);
            for k in items(&parts[1]) {
                let k = text(k);
                assert!(known.contains(&k), "{label}: key {k:?} was never written");
            }
            cursor = text(&parts[0]);
            if cursor == "0" {
                break;
            }
        }
        // From now on the state read is the only allowed one.
        for (k, v) in actual {
            self.allowed.insert(k, vec![v]);
        }
        println!(
            "{label}: verified {} keys ({} acked ops, {} in flight so far)",
            self.allowed.len(),
            self.acked_ops,
            self.inflight_ops
        );
    }
}

/// Whether a reply acknowledges a write.
fn is_ack(f: &Frame) -> bool {
    match f {
        Frame::Simple(s) => s == "OK",
        Frame::Integer(_) => true,
        other => panic!("unexpected reply to a write: {other:?}"),
    }
}

/// Runs `WRITERS` tasks, each calling `step(client, task, i)` in a loop
/// until its connection fails (the kill); returns each task's operations.
async fn run_writers<F, Fut>(addr: SocketAddr, step: F) -> Vec<tokio::task::JoinHandle<Vec<Op>>>
where
    F: Fn(Client, usize, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Client, Op)> + Send,
{
    let mut tasks = Vec::new();
    for task in 0..WRITERS {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut ops = Vec::new();
            let Ok(mut c) = Client::connect(addr).await else {
                return ops;
            };
            for i in 0.. {
                let (next, op) = step(c, task, i).await;
                c = next;
                let acked = op.acked;
                ops.push(op);
                if !acked {
                    break;
                }
            }
            ops
        }));
    }
    tasks
}

async fn collect(model: &mut Model, tasks: Vec<tokio::task::JoinHandle<Vec<Op>>>) {
    for t in tasks {
        model.apply(t.await.expect("writer task"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sets_survive_kill_9() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut node = Node::start().await;
    let mut model = Model {
        keyspace: "default",
        ..Model::default()
    };
    for cycle in 0..CYCLES {
        let tasks = run_writers(node.resp, move |mut c, task, i| async move {
            let key = format!("set:{cycle}:{task}:{i}");
            let value = format!("{key}={}", "v".repeat((task * 7 + i) % 40));
            let acked = match c.cmd(&["SET", key.as_str(), value.as_str()]).await {
                Ok(reply) => is_ack(&reply),
                Err(_) => false,
            };
            (
                c,
                Op {
                    writes: vec![(key, Some(value))],
                    acked,
                },
            )
        })
        .await;
        kill_at_random_moment(&mut node, &mut rng, cycle).await;
        collect(&mut model, tasks).await;
        assert!(
            model.acked_ops > 0,
            "no write was acknowledged before the kill"
        );
        node.restart().await;
        let mut c = node.client().await;
        model.verify(&mut c, &format!("after kill {cycle}")).await;
    }
}

/// Pipelines of plain SETs (staged, then committed as one storage batch
/// per pipeline and tick) under `--fsync never`: every SET of an
/// acknowledged pipeline survives SIGKILL, since a pipeline's replies are
/// sent only after its batch reached the engine (the OS page cache, which
/// outlives the process). Pipelines overwrite each other's keys, so the
/// last acknowledged value of each key must win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pipelined_sets_survive_kill_9() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut node = Node::builder().args(["--fsync", "never"]).start().await;
    let mut model = Model {
        keyspace: "default",
        ..Model::default()
    };
    for cycle in 0..CYCLES {
        let tasks = run_writers(node.resp, move |mut c, task, i| async move {
            // 16 SETs: 8 keys of this writer, each written twice (the
            // second value wins), keys shared with the writer's next
            // pipelines.
            let writes: Vec<(String, Option<String>)> = (0..16)
                .map(|j| {
                    let k = format!("pipe:{cycle}:{task}:{}", (i + j) % 8);
                    (k.clone(), Some(format!("{k}={i}.{j}")))
                })
                .collect();
            let cmds: Vec<Vec<&str>> = writes
                .iter()
                .map(|(k, v)| vec!["SET", k.as_str(), v.as_deref().unwrap_or_default()])
                .collect();
            let acked = match c.pipeline(&cmds).await {
                Ok(replies) => replies.iter().all(is_ack),
                Err(_) => false,
            };
            (c, Op { writes, acked })
        })
        .await;
        kill_at_random_moment(&mut node, &mut rng, cycle).await;
        collect(&mut model, tasks).await;
        assert!(
            model.acked_ops > 0,
            "no pipeline was acknowledged before the kill"
        );
        node.restart().await;
        let mut c = node.client().await;
        model.verify(&mut c, &format!("after kill {cycle}")).await;
    }
}

/// MSET on a strong keyspace is one atomic batch: an MSET in flight at the
/// kill must come back entirely or not at all. On the (eventual) default
/// keyspace each pair is its own write, so only acknowledged MSETs are
/// checked there. Half the writers use each keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_msets_survive_kill_9_and_strong_ones_are_atomic() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "atomic", "MODE", "strong"]).await,
        ok()
    );
    drop(c);
    let mut strong = Model {
        keyspace: "atomic",
        atomic: true,
        ..Model::default()
    };
    let mut eventual = Model {
        keyspace: "default",
        ..Model::default()
    };
    for cycle in 0..CYCLES {
        let tasks = run_writers(node.resp, move |mut c, task, i| async move {
            let on_strong = task % 2 == 0;
            if i == 0 && on_strong {
                // First step of a strong writer: switch keyspace.
                let acked = matches!(c.cmd(&["USE", "atomic"]).await, Ok(f) if f == ok());
                return (
                    c,
                    Op {
                        writes: vec![],
                        acked,
                    },
                );
            }
            let writes: Vec<(String, Option<String>)> = (0..4)
                .map(|j| {
                    // One hash tag per MSET: its keys share a Raft group
                    // on the strong keyspace, where MSET is atomic.
                    let k = format!("{{mset:{cycle}:{task}:{i}}}:{j}");
                    let v = format!("{k}={}", "m".repeat((i + j) % 30));
                    (k, Some(v))
                })
                .collect();
            let mut args: Vec<&str> = vec!["MSET"];
            for (k, v) in &writes {
                args.push(k);
                args.push(v.as_deref().unwrap_or_default());
            }
            let acked = match c.cmd(&args).await {
                Ok(reply) => is_ack(&reply),
                Err(_) => false,
            };
            (c, Op { writes, acked })
        })
        .await;
        kill_at_random_moment(&mut node, &mut rng, cycle).await;
        for (task, t) in tasks.into_iter().enumerate() {
            let ops = t.await.expect("writer task");
            if task % 2 == 0 {
                strong.apply(ops);
            } else {
                eventual.apply(ops);
            }
        }
        node.restart().await;
        let mut c = node.client().await;
        strong.verify(&mut c, &format!("after kill {cycle}")).await;
        eventual
            .verify(&mut c, &format!("after kill {cycle}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_dels_stay_deleted_after_kill_9() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut node = Node::start().await;
    let mut model = Model {
        keyspace: "default",
        ..Model::default()
    };
    // Keys from earlier cycles that are present, for later cycles to delete.
    let mut old_keys: Vec<String> = Vec::new();
    for cycle in 0..CYCLES {
        let per_task: Vec<Vec<String>> = (0..WRITERS)
            .map(|t| old_keys.iter().skip(t).step_by(WRITERS).cloned().collect())
            .collect();
        let per_task = std::sync::Arc::new(per_task);
        let tasks = run_writers(node.resp, move |mut c, task, i| {
            let per_task = per_task.clone();
            async move {
                // Steps alternate: SET a new key; DEL it (two of three
                // times) or an old key from an earlier cycle.
                let n = i / 2;
                let key = format!("del:{cycle}:{task}:{n}");
                let (args, writes): (Vec<String>, Vec<(String, Option<String>)>) = if i % 2 == 0 {
                    let value = format!("{key}=value");
                    (
                        vec!["SET".into(), key.clone(), value.clone()],
                        vec![(key, Some(value))],
                    )
                } else if n % 3 != 0 {
                    (vec!["DEL".into(), key.clone()], vec![(key, None)])
                } else if let Some(old) = per_task[task].get(n / 3) {
                    (vec!["DEL".into(), old.clone()], vec![(old.clone(), None)])
                } else {
                    (vec!["PING".into()], vec![])
                };
                let acked = match c.cmd(&args).await {
                    Ok(Frame::Simple(s)) if s == "PONG" => true,
                    Ok(reply) => is_ack(&reply),
                    Err(_) => false,
                };
                (c, Op { writes, acked })
            }
        })
        .await;
        kill_at_random_moment(&mut node, &mut rng, cycle).await;
        collect(&mut model, tasks).await;
        let deleted = model
            .allowed
            .values()
            .filter(|s| s.as_slice() == [None])
            .count();
        assert!(deleted > 0, "no DEL was acknowledged before the kill");
        node.restart().await;
        let mut c = node.client().await;
        model.verify(&mut c, &format!("after kill {cycle}")).await;
        old_keys = model
            .allowed
            .iter()
            .filter(|(_, s)| s.iter().all(Option::is_some))
            .map(|(k, _)| k.clone())
            .collect();
        old_keys.sort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_incrs_survive_kill_9_on_a_strong_keyspace() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(
        cmd(
            &mut c,
            &["KEYSPACE", "CREATE", "counters", "MODE", "strong"]
        )
        .await,
        ok()
    );
    drop(c);
    // Exact values read after each restart.
    let mut shared_base = 0i64;
    let mut own_base = vec![0i64; WRITERS];
    for cycle in 0..CYCLES {
        let addr = node.resp;
        let mut tasks = Vec::new();
        for task in 0..WRITERS {
            tasks.push(tokio::spawn(async move {
                // (acked, in flight) for the shared and the own counter.
                let mut tally = [(0i64, 0i64); 2];
                let Ok(mut c) = Client::connect(addr).await else {
                    return (tally[0], tally[1]);
                };
                match c.cmd(&["USE", "counters"]).await {
                    Ok(f) if f == ok() => {}
                    Ok(f) => panic!("USE counters: {f:?}"),
                    Err(_) => return (tally[0], tally[1]),
                }
                let keys = ["shared".to_string(), format!("own:{task}")];
                loop {
                    for (slot, key) in keys.iter().enumerate() {
                        match c.cmd(&["INCR", key.as_str()]).await {
                            Ok(Frame::Integer(_)) => tally[slot].0 += 1,
                            Ok(other) => panic!("INCR {key}: {other:?}"),
                            Err(_) => {
                                tally[slot].1 += 1;
                                return (tally[0], tally[1]);
                            }
                        }
                    }
                }
            }));
        }
        kill_at_random_moment(&mut node, &mut rng, cycle).await;
        let mut shared = (0i64, 0i64);
        let mut own = Vec::new();
        for t in tasks {
            let (s, o) = t.await.expect("INCR task");
            shared.0 += s.0;
            shared.1 += s.1;
            own.push(o);
        }
        assert!(shared.0 > 0, "no INCR was acknowledged before the kill");
        node.restart().await;
        let mut c = node.client().await;
        assert_eq!(cmd(&mut c, &["USE", "counters"]).await, ok());
        let read = |f: Frame| -> i64 {
            match f {
                Frame::Null => 0,
                other => text(&other).parse().expect("counter is an integer"),
            }
        };
        let value = read(cmd(&mut c, &["GET", "shared"]).await);
        let (lo, hi) = (shared_base + shared.0, shared_base + shared.0 + shared.1);
        println!(
            "cycle {cycle}: shared = {value}, acked {} in flight {} (allowed {lo}..={hi})",
            shared.0, shared.1
        );
        assert!(
            (lo..=hi).contains(&value),
            "shared counter {value} outside {lo}..={hi} after kill {cycle}"
        );
        shared_base = value;
        for (task, (acked, inflight)) in own.into_iter().enumerate() {
            let value = read(cmd(&mut c, &["GET", &format!("own:{task}")]).await);
            let (lo, hi) = (own_base[task] + acked, own_base[task] + acked + inflight);
            assert!(
                (lo..=hi).contains(&value),
                "own:{task} = {value} outside {lo}..={hi} after kill {cycle}"
            );
            own_base[task] = value;
        }
        // The counter keeps counting after recovery.
        assert_eq!(cmd(&mut c, &["INCR", "shared"]).await, int(shared_base + 1));
        shared_base += 1;
    }
}
