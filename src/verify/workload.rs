//! The clients: what they send, and how each request becomes an operation
//! of the history.
//!
//! Every client runs one operation at a time against a node picked at
//! random per operation (so requests cross coordinators and, on strong
//! keyspaces, the forwarding path), with a fresh connection after any
//! transport error. Clients follow membership through [`Targets`]: a node
//! that joined during the run is picked once it is up everywhere, one that
//! left is no longer picked (its connections are dropped). Values are unique integers across the run, written as
//! decimal text; a reply that does not parse reads as a value never written.
//!
//! * **register** (`reg:<k>`): GET → `Read`, SET → `Write`; on strong
//!   keyspaces also `SET k new IFEQ old` → `Cas` (old = the last value this
//!   client saw for the key; a nil reply means the comparison failed:
//!   `Fail`). On eventual keyspaces a quarter of the operations go to the
//!   client's own key `session:<client>`, which only that client writes, so
//!   its values increase in the order the store applies them — what the
//!   session check needs.
//! * **counter** (`ctr:<k>`, strong only): INCR → `Add(1)`, GET →
//!   `ReadCounter` (nil reads as 0).
//! * **set**: grow-only sets `set:<slot>:<generation>`; a slot moves to a
//!   new key after 100 adds, keeping values small. Eventual: `VSET k v`
//!   without a context adds `v` as a sibling (concurrent or not, nothing is
//!   superseded) → `AddElement`; `VGET k` → `ReadSet` of the live siblings.
//!   Strong: compare-and-set append (`GET`, then `SET k "old,v" IFEQ old`,
//!   or `SET k v NX` for a new key; up to 5 tries, `Fail` if every try lost
//!   its comparison) → `AddElement`; `GET` → `ReadSet`.
//!
//! Final reads and convergence probes live in [`super::probe`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::bail;
use fulcrum_check::{ClientId, Op, Outcome, Value};
use fulcrum_client::{Client, Frame};
use fulcrum_core::level::Level;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::recorder::{write_error_outcome, Recorder};
use super::WorkloadKind;

/// A client gives up on a request after this long (`Info` for writes). Longer
/// than a node's forwarded-write deadline (2 × its 2 s request timeout).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to connect before it tries another node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Adds per set key before its slot moves to a fresh key.
const SET_KEY_CAPACITY: u32 = 100;

/// Compare-and-set attempts of one strong set add.
const SET_ADD_TRIES: usize = 5;

/// Longest pause between a client's operations (uniform from 0).
const MAX_THINK: Duration = Duration::from_millis(10);

/// A value no client ever writes: what an unparseable reply reads as.
pub const NEVER_WRITTEN: Value = u64::MAX;

/// What the clients run against and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workload: WorkloadKind,
    pub strong: bool,
    pub keyspace: String,
    pub keys: u32,
    pub clients: u32,
    /// Eventual keyspaces: the clients' (read, write) levels.
    pub levels: Option<(Level, Level)>,
    /// Every node's RESP address (a node held back to join later included).
    pub nodes: Vec<SocketAddr>,
    /// Which of `nodes` the clients send to now.
    pub targets: Targets,
    /// Whether register clients also use their own single-writer key.
    pub session_keys: bool,
}

/// The nodes clients send to, shared with the nemesis, which changes it
/// when a node joins or leaves.
#[derive(Debug, Clone)]
pub struct Targets(Arc<Vec<AtomicBool>>);

impl Targets {
    /// `len` nodes; node `i` is a target if `on(i)`.
    pub fn new(len: usize, on: impl Fn(usize) -> bool) -> Targets {
        Targets(Arc::new((0..len).map(|i| AtomicBool::new(on(i))).collect()))
    }

    pub fn set(&self, i: usize, on: bool) {
        if let Some(flag) = self.0.get(i) {
            flag.store(on, Ordering::SeqCst);
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// The current targets, in node order.
    pub fn active(&self) -> Vec<usize> {
        (0..self.0.len()).filter(|&i| self.contains(i)).collect()
    }
}

/// Opens a connection to `addr` for `keyspace` at the given levels.
///
/// # Errors
/// Connection failure or an error reply to USE / CONSISTENCY.
pub async fn connect(
    addr: SocketAddr,
    keyspace: &str,
    levels: Option<(Level, Level)>,
) -> anyhow::Result<Client> {
    let mut c = Client::connect_with_timeout(addr, Some(CONNECT_TIMEOUT)).await?;
    c.set_timeout(Some(CLIENT_TIMEOUT));
    expect_ok(c.cmd(&["USE", keyspace]).await?, "USE")?;
    if let Some((read, write)) = levels {
        let (read, write) = (read.to_string(), write.to_string());
        let reply = c
            .cmd(&["CONSISTENCY", "READ", &read, "WRITE", &write])
            .await?;
        expect_ok(reply, "CONSISTENCY")?;
    }
    Ok(c)
}

fn expect_ok(reply: Frame, what: &str) -> anyhow::Result<()> {
    match reply {
        Frame::Simple(s) if s == "OK" => Ok(()),
        other => bail!("{what} answered {other:?}"),
    }
}

/// Runs `plan.clients` clients until `deadline`; returns when all are done.
pub async fn run_clients(plan: &Plan, recorder: &Recorder, deadline: Instant, rng: &mut StdRng) {
    let plan = Arc::new(plan.clone());
    let sets = Arc::new(SetKeys::new(plan.keys));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..plan.clients {
        let client = Worker {
            id: u64::from(id),
            plan: plan.clone(),
            recorder: recorder.clone(),
            rng: StdRng::from_rng(&mut *rng),
            conns: (0..plan.nodes.len()).map(|_| None).collect(),
            known: HashMap::new(),
            sets: sets.clone(),
        };
        tasks.spawn(client.run(deadline));
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            eprintln!("verify: a client task failed: {e}");
        }
    }
}

/// Set keys per slot: (generation, adds so far).
struct SetKeys(Mutex<Vec<(u32, u32)>>);

impl SetKeys {
    fn new(slots: u32) -> SetKeys {
        SetKeys(Mutex::new(vec![(0, 0); slots as usize]))
    }

    fn key_for_add(&self, slot: usize) -> String {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = &mut slots[slot];
        if entry.1 >= SET_KEY_CAPACITY {
            *entry = (entry.0 + 1, 0);
        }
        entry.1 += 1;
        format!("set:{slot}:{}", entry.0)
    }

    fn key_for_read(&self, slot: usize) -> String {
        let slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        format!("set:{slot}:{}", slots[slot].0)
    }
}

/// The result of one request on the wire.
enum Wire {
    Reply(Frame),
    /// No usable reply (timeout, closed, I/O): the connection is dropped.
    Lost,
}

struct Worker {
    id: ClientId,
    plan: Arc<Plan>,
    recorder: Recorder,
    rng: StdRng,
    conns: Vec<Option<Client>>,
    /// The last value this client saw per key (CAS expectations).
    known: HashMap<String, Value>,
    sets: Arc<SetKeys>,
}

impl Worker {
    async fn run(mut self, deadline: Instant) {
        while Instant::now() < deadline {
            let targets = self.plan.targets.active();
            for (i, conn) in self.conns.iter_mut().enumerate() {
                if conn.is_some() && !targets.contains(&i) {
                    *conn = None;
                }
            }
            if targets.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let node = targets[self.rng.random_range(0..targets.len())];
            if self.conns[node].is_none() {
                match connect(self.plan.nodes[node], &self.plan.keyspace, self.plan.levels).await {
                    Ok(c) => self.conns[node] = Some(c),
                    Err(_) => {
                        // Nothing was sent: no operation to record.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            match self.plan.workload {
                WorkloadKind::Register => self.register_op(node).await,
                WorkloadKind::Counter => self.counter_op(node).await,
                WorkloadKind::Set => self.set_op(node).await,
            }
            let think = self.rng.random_range(0..=MAX_THINK.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
    }

    /// Sends one command on connection `node`; drops the connection if no
    /// usable reply came back.
    async fn send(&mut self, node: usize, args: &[&str]) -> Wire {
        let Some(c) = self.conns[node].as_mut() else {
            return Wire::Lost;
        };
        match c.cmd(args).await {
            Ok(frame) => Wire::Reply(frame),
            Err(_) => {
                self.conns[node] = None;
                Wire::Lost
            }
        }
    }

    async fn register_op(&mut self, node: usize) {
        let own = self.plan.session_keys && self.rng.random_bool(0.25);
        let key = if own {
            format!("session:{}", self.id)
        } else {
            format!("reg:{}", self.rng.random_range(0..self.plan.keys))
        };
        let roll: f64 = self.rng.random();
        if roll < 0.5 {
            self.read_register(node, &key).await;
        } else if self.plan.strong && roll < 0.7 && self.known.contains_key(&key) {
            let expected = self.known[&key];
            let new = self.recorder.unique_value();
            let op = Op::Cas {
                expected: Some(expected),
                new,
            };
            let (v, e) = (new.to_string(), expected.to_string());
            self.write(node, &key, op, &["SET", &key, &v, "IFEQ", &e], Some(new))
                .await;
        } else {
            let v = self.recorder.unique_value();
            let text = v.to_string();
            self.write(node, &key, Op::Write(v), &["SET", &key, &text], Some(v))
                .await;
        }
    }

    async fn read_register(&mut self, node: usize, key: &str) {
        let id = self.recorder.invoke(self.id, key, Op::Read(None));
        match self.send(node, &["GET", key]).await {
            Wire::Reply(Frame::Null) => {
                self.known.remove(key);
                self.recorder.complete_read(id, Outcome::Ok, Op::Read(None));
            }
            Wire::Reply(Frame::Bulk(b)) => {
                let v = parse_value(&b);
                self.known.insert(key.to_string(), v);
                self.recorder
                    .complete_read(id, Outcome::Ok, Op::Read(Some(v)));
            }
            Wire::Reply(Frame::Error(msg)) => {
                self.recorder.error_reply(id, &msg);
                self.recorder.complete(id, Outcome::Fail);
            }
            _ => self.recorder.complete(id, Outcome::Fail),
        }
    }

    /// A write-like request acknowledged by `+OK` (nil: a condition failed).
    async fn write(
        &mut self,
        node: usize,
        key: &str,
        op: Op,
        args: &[&str],
        value: Option<Value>,
    ) -> Outcome {
        let id = self.recorder.invoke(self.id, key, op);
        let outcome = match self.send(node, args).await {
            Wire::Reply(Frame::Simple(s)) if s == "OK" => {
                if let Some(v) = value {
                    self.known.insert(key.to_string(), v);
                }
                Outcome::Ok
            }
            Wire::Reply(Frame::Null) => Outcome::Fail,
            Wire::Reply(Frame::Error(msg)) => {
                self.recorder.error_reply(id, &msg);
                write_error_outcome(&msg)
            }
            Wire::Reply(_) | Wire::Lost => Outcome::Info,
        };
        self.recorder.complete(id, outcome);
        outcome
    }

    async fn counter_op(&mut self, node: usize) {
        let key = format!("ctr:{}", self.rng.random_range(0..self.plan.keys));
        if self.rng.random_bool(0.5) {
            let id = self.recorder.invoke(self.id, &key, Op::Add(1));
            let outcome = match self.send(node, &["INCR", &key]).await {
                Wire::Reply(Frame::Integer(_)) => Outcome::Ok,
                Wire::Reply(Frame::Error(msg)) => {
                    self.recorder.error_reply(id, &msg);
                    write_error_outcome(&msg)
                }
                Wire::Reply(_) | Wire::Lost => Outcome::Info,
            };
            self.recorder.complete(id, outcome);
        } else {
            let id = self.recorder.invoke(self.id, &key, Op::ReadCounter(0));
            match self.send(node, &["GET", &key]).await {
                Wire::Reply(Frame::Null) => {
                    self.recorder
                        .complete_read(id, Outcome::Ok, Op::ReadCounter(0));
                }
                Wire::Reply(Frame::Bulk(b)) => match parse_counter(&b) {
                    Some(n) => self
                        .recorder
                        .complete_read(id, Outcome::Ok, Op::ReadCounter(n)),
                    None => self.recorder.complete(id, Outcome::Fail),
                },
                Wire::Reply(Frame::Error(msg)) => {
                    self.recorder.error_reply(id, &msg);
                    self.recorder.complete(id, Outcome::Fail);
                }
                _ => self.recorder.complete(id, Outcome::Fail),
            }
        }
    }

    async fn set_op(&mut self, node: usize) {
        let slot = self.rng.random_range(0..self.plan.keys as usize);
        if self.rng.random_bool(0.6) {
            let key = self.sets.key_for_add(slot);
            let v = self.recorder.unique_value();
            if self.plan.strong {
                self.strong_set_add(node, &key, v).await;
            } else {
                let text = v.to_string();
                self.write(node, &key, Op::AddElement(v), &["VSET", &key, &text], None)
                    .await;
            }
        } else {
            let key = self.sets.key_for_read(slot);
            let id = self.recorder.invoke(self.id, &key, Op::ReadSet(vec![]));
            let command = if self.plan.strong { "GET" } else { "VGET" };
            match self.send(node, &[command, &key]).await {
                Wire::Reply(Frame::Error(msg)) => {
                    self.recorder.error_reply(id, &msg);
                    self.recorder.complete(id, Outcome::Fail);
                }
                Wire::Reply(frame) => match set_elements(&frame) {
                    Some(vs) => self
                        .recorder
                        .complete_read(id, Outcome::Ok, Op::ReadSet(vs)),
                    None => self.recorder.complete(id, Outcome::Fail),
                },
                Wire::Lost => self.recorder.complete(id, Outcome::Fail),
            }
        }
    }

    /// Compare-and-set append of `v` to the list stored at `key`.
    async fn strong_set_add(&mut self, node: usize, key: &str, v: Value) {
        let id = self.recorder.invoke(self.id, key, Op::AddElement(v));
        let mut outcome = Outcome::Fail;
        for _ in 0..SET_ADD_TRIES {
            let current = match self.send(node, &["GET", key]).await {
                Wire::Reply(Frame::Null) => None,
                Wire::Reply(Frame::Bulk(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                Wire::Reply(Frame::Error(msg)) => {
                    // Nothing was written yet: the add surely did not happen.
                    self.recorder.error_reply(id, &msg);
                    break;
                }
                // Nothing was written yet: the add surely did not happen.
                _ => break,
            };
            let reply = match &current {
                None => self.send(node, &["SET", key, &v.to_string(), "NX"]).await,
                Some(old) => {
                    let new = format!("{old},{v}");
                    self.send(node, &["SET", key, &new, "IFEQ", old]).await
                }
            };
            outcome = match reply {
                Wire::Reply(Frame::Simple(s)) if s == "OK" => Outcome::Ok,
                // The comparison failed: nothing written; try again.
                Wire::Reply(Frame::Null) => continue,
                Wire::Reply(Frame::Error(msg)) => {
                    self.recorder.error_reply(id, &msg);
                    write_error_outcome(&msg)
                }
                Wire::Reply(_) | Wire::Lost => Outcome::Info,
            };
            break;
        }
        self.recorder.complete(id, outcome);
    }
}

/// Decimal text → value; anything else reads as [`NEVER_WRITTEN`].
pub fn parse_value(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(NEVER_WRITTEN)
}

fn parse_counter(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The elements of a set read: a `VGET` reply `[context, [v, …]]`, or a
/// strong set's comma-separated list (`GET`; nil is empty).
pub fn set_elements(frame: &Frame) -> Option<Vec<Value>> {
    match frame {
        Frame::Null => Some(Vec::new()),
        Frame::Bulk(b) if b.is_empty() => Some(Vec::new()),
        Frame::Bulk(b) => Some(b.split(|&c| c == b',').map(parse_value).collect()),
        Frame::Array(parts) => match parts.as_slice() {
            [_, Frame::Array(values)] => values
                .iter()
                .map(|v| match v {
                    Frame::Bulk(b) => Some(parse_value(b)),
                    _ => None,
                })
                .collect(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn set_replies_parse() {
        let vget = Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"ctx")),
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"3")),
                Frame::Bulk(Bytes::from_static(b"x")),
            ]),
        ]);
        assert_eq!(set_elements(&vget), Some(vec![3, NEVER_WRITTEN]));
        assert_eq!(
            set_elements(&Frame::Bulk(Bytes::from_static(b"1,2,5"))),
            Some(vec![1, 2, 5])
        );
        assert_eq!(set_elements(&Frame::Null), Some(vec![]));
        assert_eq!(set_elements(&Frame::Integer(1)), None);
    }

    #[test]
    fn set_slots_rotate() {
        let sets = SetKeys::new(1);
        for _ in 0..SET_KEY_CAPACITY {
            assert_eq!(sets.key_for_add(0), "set:0:0");
        }
        assert_eq!(sets.key_for_add(0), "set:0:1");
        assert_eq!(sets.key_for_read(0), "set:0:1");
    }
}
