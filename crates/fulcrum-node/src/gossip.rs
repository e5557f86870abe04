//! Gossip: cluster membership, liveness and schema spread by chitchat
//! (Scuttlebutt anti-entropy with a phi-accrual failure detector) over UDP
//! on the peer port.
//!
//! Each node owns a few keys in its chitchat state, and only it writes them:
//!
//! | key | value |
//! |---|---|
//! | `member` | JSON of its [`Member`] (addresses, dc, rack) |
//! | `state` | `joining`, `up`, `leaving` or `left` ([`MemberState`]) |
//! | `weight` | its ring weight (`1`) |
//! | `schema_version` | the highest schema version it applied |
//! | `ks:<name>` | JSON `{"version", "spec"}` of each keyspace it knows; `spec` is `null` for a dropped one |
//! | `removed:<node>` | the generation of `node` that `CLUSTER REMOVE` took out of the ring |
//!
//! The node's chitchat generation is its start time in ms, so a restarted
//! node supersedes its old run. Every [`POLL`] the node reads the whole
//! gossiped state into its member records ([`Cluster::apply_gossip`]).
//!
//! Liveness per member (`up / suspect / down`):
//! - `down`: chitchat's failure detector says dead (phi above its threshold
//!   of [`PHI_THRESHOLD`]), or the node was never heard;
//! - `suspect`: still alive for chitchat, but not heard for more than half
//!   of its adaptive detection timeout (phi above `PHI_THRESHOLD / 2`), or
//!   its peer link fails the direct ping (the link check of `cluster.rs`);
//! - `up`: otherwise.
//!
//! "Heard" means: a newer heartbeat of the node reached this node, directly
//! or through another member.
//!
//! Inside a turmoil simulation chitchat does not run (its UDP socket and
//! its randomness are outside the simulation); the node falls back to the
//! direct ping and the member-list push of `cluster.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use tokio::time::Instant;

use crate::net::{Member, MemberState};

/// How often a node gossips with (up to three) others.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
/// How often the node reads the gossiped state.
pub const POLL: Duration = Duration::from_millis(100);
/// Phi above which chitchat declares a node dead. Chitchat's phi is the
/// silence divided by the mean interval between heartbeats, so with
/// heartbeats every [`GOSSIP_INTERVAL`] a node is dead after about 3 s of
/// silence (a loaded machine's scheduling pauses stay below that).
pub const PHI_THRESHOLD: f64 = 15.0;
/// The cluster name chitchat checks on every exchange.
const CLUSTER_ID: &str = "fulcrum";

/// What one gossip round told about one node (its newest generation).
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node_id: String,
    pub generation: u64,
    pub alive: bool,
    pub heartbeat: u64,
    /// Chitchat's adaptive detection timeout for the node, if known.
    pub detection_timeout: Option<Duration>,
    pub member: Option<Member>,
    pub state: Option<MemberState>,
    pub keys: Vec<(String, String)>,
}

/// Liveness of a member as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Up,
    Suspect,
    Down,
}

/// When a member was last heard, by heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    pub generation: u64,
    pub heartbeat: u64,
    pub at: Instant,
    pub alive: bool,
    pub detection_timeout: Option<Duration>,
}

impl Heard {
    /// `up`, `suspect` or `down` by the rule in the module docs (without
    /// the link check, which the caller adds).
    pub fn liveness(&self, now: Instant) -> Liveness {
        if !self.alive {
            return Liveness::Down;
        }
        let half = self
            .detection_timeout
            .map_or(Duration::from_secs(1), |t| t / 2);
        if now.duration_since(self.at) > half {
            Liveness::Suspect
        } else {
            Liveness::Up
        }
    }
}

/// A running chitchat instance and what it last told.
pub struct Gossip {
    handle: ChitchatHandle,
    pub heard: parking_lot::RwLock<HashMap<String, Heard>>,
}

/// The address other nodes gossip to: UDP on the port of the bound peer
/// address. Its IP is the bound one; if that is unspecified (`0.0.0.0`),
/// the IP the peer advertise address resolves to (in a container: its
/// address on the peer network), else loopback. The advertised *port* is not
/// used: it may be a TCP proxy's (`fulcrum verify`), which carries no UDP.
pub fn gossip_addr(bound_peer: SocketAddr, peer_advertise: Option<&str>) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let mut a = bound_peer;
    if a.ip().is_unspecified() {
        let advertised = peer_advertise
            .and_then(|host| host.to_socket_addrs().ok())
            .and_then(|mut addrs| addrs.find(|x| x.is_ipv4()));
        match advertised {
            Some(x) => a.set_ip(x.ip()),
            None => a.set_ip(std::net::Ipv4Addr::LOCALHOST.into()),
        }
    }
    a
}

impl Gossip {
    /// Starts chitchat on `listen` with `seeds` (gossip addresses) and the
    /// node's initial keys.
    ///
    /// # Errors
    /// The UDP socket cannot be bound.
    pub async fn start(
        node_id: &str,
        generation: u64,
        listen: SocketAddr,
        advertise: SocketAddr,
        seeds: Vec<String>,
        keys: Vec<(String, String)>,
    ) -> anyhow::Result<Gossip> {
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.to_string(), generation, advertise),
            cluster_id: CLUSTER_ID.to_string(),
            gossip_interval: GOSSIP_INTERVAL,
            listen_addr: listen,
            seed_nodes: seeds,
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: PHI_THRESHOLD,
                initial_interval: GOSSIP_INTERVAL,
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V1,
        };
        let handle = chitchat::spawn_chitchat(config, keys, &UdpTransport).await?;
        Ok(Gossip {
            handle,
            heard: parking_lot::RwLock::new(HashMap::new()),
        })
    }

    /// Sets this node's own keys.
    pub async fn set(&self, keys: Vec<(String, String)>) {
        self.handle
            .with_chitchat(|c| {
                let me = c.self_node_state();
                for (k, v) in &keys {
                    me.set(k, v);
                }
            })
            .await;
    }

    /// Starts an exchange with `addr` now (a member learned some other way).
    pub fn contact(&self, addr: SocketAddr) {
        let _ = self.handle.gossip(addr);
    }

    /// The newest generation of every node chitchat knows, except this one.
    pub async fn views(&self) -> Vec<NodeView> {
        let views = self
            .handle
            .with_chitchat(|c| {
                let me = c.self_chitchat_id().node_id.clone();
                let live: std::collections::HashSet<ChitchatId> = c.live_nodes().cloned().collect();
                let mut newest: HashMap<Arc<str>, NodeView> = HashMap::new();
                for (id, st) in c.node_states() {
                    if id.node_id == me {
                        continue;
                    }
                    let view = NodeView {
                        node_id: id.node_id.to_string(),
                        generation: id.generation_id,
                        alive: live.contains(id),
                        heartbeat: u64::from(st.heartbeat()),
                        detection_timeout: c.failure_detection_timeout(id),
                        member: st.get("member").and_then(|m| serde_json::from_str(m).ok()),
                        state: st.get("state").and_then(MemberState::parse),
                        keys: st
                            .key_values()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    };
                    match newest.get(&id.node_id) {
                        Some(v) if v.generation >= view.generation => {}
                        _ => {
                            newest.insert(id.node_id.clone(), view);
                        }
                    }
                }
                newest.into_values().collect::<Vec<_>>()
            })
            .await;
        let now = Instant::now();
        let mut heard = self.heard.write();
        for v in &views {
            let e = heard.entry(v.node_id.clone()).or_insert(Heard {
                generation: v.generation,
                heartbeat: v.heartbeat,
                at: now,
                alive: v.alive,
                detection_timeout: v.detection_timeout,
            });
            if (v.generation, v.heartbeat) != (e.generation, e.heartbeat) {
                e.generation = v.generation;
                e.heartbeat = v.heartbeat;
                e.at = now;
            }
            e.alive = v.alive;
            e.detection_timeout = v.detection_timeout;
        }
        views
    }

    /// Stops gossiping.
    pub fn shutdown(&self) {
        if let Err(e) = self.handle.initiate_shutdown() {
            tracing::debug!(error = %e, "gossip already stopped");
        }
    }
}

#[cfg(test)]
mod addr_tests {
    use super::gossip_addr;

    #[test]
    fn gossip_address_takes_the_advertised_ip_and_the_bound_port() {
        let any: std::net::SocketAddr = "0.0.0.0:7381".parse().unwrap();
        assert_eq!(
            gossip_addr(any, Some("10.1.2.3:9000")).to_string(),
            "10.1.2.3:7381"
        );
        assert_eq!(gossip_addr(any, None).to_string(), "127.0.0.1:7381");
        assert_eq!(
            gossip_addr(any, Some("no-such-host.invalid:1")).to_string(),
            "127.0.0.1:7381"
        );
        let bound: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            gossip_addr(bound, Some("127.0.0.1:6000")).to_string(),
            "127.0.0.1:5000",
            "a bound IP wins; the advertised port may be a TCP proxy's"
        );
    }
}
