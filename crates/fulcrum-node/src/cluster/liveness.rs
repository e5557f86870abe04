//! Liveness and gossip: this node's gossip keys, folding what gossip says
//! into member records and schema, and the direct link prober (see the
//! parent module's docs and `gossip.rs`).

use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::keyspace::KeyspaceSpec;
use tokio::time::Instant;

use super::{ring_agreed, Cluster, ClusterError, RingReport};
use crate::catalog::CatalogError;
use crate::gossip::{Gossip, Liveness, NodeView};
use crate::net::{CallError, Member, MemberRecord, MemberState, PeerRequest, PeerResponse};
use crate::schema::SchemaEntry;

/// Unanswered pings in a row after which a silent peer link counts as
/// down (a refused connection counts at once).
pub const LINK_MISSES: u32 = 2;

/// How much later than its timeout the prober may notice an unanswered
/// ping for the silence to count (see [`silence_counts`]).
pub const PROBE_LATE: Duration = Duration::from_millis(200);

/// Whether a ping that went unanswered for `waited` (from sending it to
/// noticing the timeout) under a `timeout` says the link is silent. Not
/// when the prober noticed it more than [`PROBE_LATE`] late: this node
/// itself was not running then (an overloaded host, a pause), so the
/// answer may be waiting unread, and every link it pinged would fail at
/// once. Nor when the link delivered another answer meanwhile
/// (`answered`): the peer answers over it, only the ping queued behind
/// other traffic (a hand-off's batches). Gossip's failure detector still
/// declares a peer that stays silent dead.
pub fn silence_counts(waited: Duration, timeout: Duration, answered: bool) -> bool {
    !answered && waited <= timeout + PROBE_LATE
}

impl Cluster {
    /// This node's gossip keys (see `gossip.rs`).
    fn my_keys(&self) -> Vec<(String, String)> {
        let state = self.my_state();
        let mut keys = vec![
            (
                "member".to_string(),
                serde_json::to_string(&self.me).unwrap_or_default(),
            ),
            ("state".to_string(), state.as_str().to_string()),
            ("weight".to_string(), "1".to_string()),
            ("ring".to_string(), self.placement().read_ids()),
            (
                "schema_version".to_string(),
                self.schema.version().to_string(),
            ),
        ];
        keys.extend(self.schema.gossip_keys());
        let m = self.membership.read();
        for r in m.members.values() {
            if r.state == MemberState::Left && r.member.node_id != self.me.node_id {
                keys.push((
                    format!("removed:{}", r.member.node_id),
                    r.generation.to_string(),
                ));
            }
        }
        keys
    }

    /// Starts gossip on `listen` (UDP), seeded with every known member's
    /// gossip address and `seeds`.
    ///
    /// # Errors
    /// The gossip socket cannot be bound.
    pub async fn start_gossip(
        &self,
        listen: std::net::SocketAddr,
        seeds: &[String],
    ) -> Result<(), ClusterError> {
        let advertise: std::net::SocketAddr = self
            .me
            .gossip_addr
            .parse()
            .map_err(|e| ClusterError::Gossip(format!("bad gossip address: {e}")))?;
        let mut all: Vec<String> = self
            .members()
            .into_iter()
            .filter(|m| m.node_id != self.me.node_id && !m.gossip_addr.is_empty())
            .map(|m| m.gossip_addr)
            .collect();
        all.extend(seeds.iter().cloned());
        let g = Gossip::start(
            &self.me.node_id,
            self.generation,
            listen,
            advertise,
            all,
            self.my_keys(),
        )
        .await
        .map_err(|e| ClusterError::Gossip(format!("{e:#}")))?;
        let _ = self.gossip.set(g);
        Ok(())
    }

    /// Re-announces this node's keys (after a state or schema change).
    pub async fn announce(&self) {
        if let Some(g) = self.gossip.get() {
            g.set(self.my_keys()).await;
        }
    }

    /// Stops gossiping (at shutdown).
    pub fn stop_gossip(&self) {
        if let Some(g) = self.gossip.get() {
            g.shutdown();
        }
    }

    /// Whether this node gossips (not inside a simulation).
    pub fn gossips(&self) -> bool {
        self.gossip.get().is_some()
    }

    /// Whether `node_id` can be routed to: gossip says it is alive and its
    /// peer link answered its last ping (this node: yes).
    pub fn is_up(&self, node_id: &str) -> bool {
        if node_id == self.me.node_id {
            return true;
        }
        if self.link_down.read().contains(node_id) {
            return false;
        }
        match self.gossip.get() {
            Some(g) => g.heard.read().get(node_id).is_some_and(|h| h.alive),
            None => true,
        }
    }

    /// Why `node_id` is not routed to (see [`Cluster::is_up`]), or `None`
    /// when it is: for the log line of a refused request.
    pub fn down_reason(&self, node_id: &str) -> Option<String> {
        if self.is_up(node_id) {
            return None;
        }
        let link = self.link_down.read().contains(node_id);
        let gossip = match self.gossip.get() {
            None => None,
            Some(g) => match g.heard.read().get(node_id) {
                None => Some("gossip never heard it".to_string()),
                Some(h) if !h.alive => Some(format!(
                    "gossip holds it dead (last heard {} ms ago)",
                    Instant::now().duration_since(h.at).as_millis()
                )),
                Some(_) => None,
            },
        };
        Some(match (link, gossip) {
            (true, Some(g)) => format!("link failed its pings; {g}"),
            (true, None) => "link failed its pings".to_string(),
            (false, Some(g)) => g,
            (false, None) => "unknown".to_string(),
        })
    }

    /// Whether gossip says `node_id` is alive (whatever its link does).
    pub fn gossip_alive(&self, node_id: &str) -> bool {
        match self.gossip.get() {
            Some(g) => g.heard.read().get(node_id).is_some_and(|h| h.alive),
            None => !self.link_down.read().contains(node_id),
        }
    }

    /// `up`, `suspect` or `down`, as `/status` shows it.
    pub fn liveness(&self, node_id: &str) -> Liveness {
        if node_id == self.me.node_id {
            return Liveness::Up;
        }
        let link_down = self.link_down.read().contains(node_id);
        let gossip = match self.gossip.get() {
            Some(g) => g
                .heard
                .read()
                .get(node_id)
                .map_or(Liveness::Down, |h| h.liveness(Instant::now())),
            None if link_down => return Liveness::Down,
            None => Liveness::Up,
        };
        match gossip {
            Liveness::Up if link_down => Liveness::Suspect,
            other => other,
        }
    }

    /// Milliseconds since `node_id` was last heard (0 for this node;
    /// `None` if never).
    pub fn last_heard_ms(&self, node_id: &str) -> Option<u64> {
        if node_id == self.me.node_id {
            return Some(0);
        }
        let g = self.gossip.get()?;
        let at = g.heard.read().get(node_id)?.at;
        Some(Instant::now().duration_since(at).as_millis() as u64)
    }

    /// Pings every other member every `every`: a link that refuses the
    /// call or answers for another node is down at once; a link that stays
    /// silent is down after [`LINK_MISSES`] pings in a row went unanswered
    /// (one slow answer on a loaded host is not a failure), not counting
    /// pings whose timeout this node noticed late or whose link answered
    /// other requests meanwhile ([`silence_counts`]).
    /// Down lasts until it answers again.
    pub async fn run_prober(
        self: Arc<Self>,
        every: Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = crate::ticker::Ticker::new(every, shutdown);
        let mut silent: std::collections::HashMap<String, u32> = Default::default();
        while ticker.next().await {
            let others: Vec<Member> = self
                .members()
                .into_iter()
                .filter(|m| m.node_id != self.me.node_id)
                .collect();
            let this = &self;
            let timeout = every.max(Duration::from_millis(500));
            let probes = others.iter().map(|m| async move {
                // The answer must come from the member we asked about, not
                // from whatever process now listens on its old address.
                let sent = Instant::now();
                let answer = this
                    .pool
                    .call(&m.peer_addr, PeerRequest::Ping, timeout)
                    .await;
                let timed_out = matches!(answer, Err(CallError::Timeout { .. }));
                let answered = timed_out && this.pool.answered_since(&m.peer_addr, sent);
                if timed_out && !silence_counts(sent.elapsed(), timeout, answered) {
                    tracing::debug!(node = %m.node_id, waited_ms = sent.elapsed().as_millis(), answered, "ping timeout not counted: noticed late (this node stalled) or the link answered other requests");
                    return (m.node_id.clone(), None);
                }
                if timed_out {
                    // A silent link may be black-holed: dial afresh next time.
                    this.pool.reset(&m.peer_addr);
                }
                let ok =
                    matches!(answer, Ok(PeerResponse::Pong { node_id }) if node_id == m.node_id);
                (m.node_id.clone(), Some((ok, timed_out)))
            });
            for (node, outcome) in futures::future::join_all(probes).await {
                // An inconclusive ping changes nothing.
                let Some((ok, timed_out)) = outcome else {
                    continue;
                };
                let misses = if ok || !timed_out {
                    silent.remove(&node);
                    0
                } else {
                    let n = silent.entry(node.clone()).or_default();
                    *n += 1;
                    *n
                };
                let failed = !ok && (!timed_out || misses >= LINK_MISSES);
                let was_down = self.link_down.read().contains(&node);
                if ok && was_down {
                    self.link_down.write().remove(&node);
                    tracing::info!(%node, "peer link is up");
                } else if failed && !was_down {
                    self.link_down.write().insert(node.clone());
                    tracing::warn!(%node, "peer link is down");
                }
            }
        }
    }

    /// Reads the gossiped state every [`crate::gossip::POLL`] until
    /// shutdown.
    pub async fn run_gossip_poll(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = crate::ticker::Ticker::new(crate::gossip::POLL, shutdown);
        while ticker.next().await {
            let Some(g) = self.gossip.get() else { return };
            let views = g.views().await;
            self.apply_gossip(views).await;
        }
    }

    /// Merges what gossip says: member records (with removals) and schema.
    async fn apply_gossip(self: &Arc<Self>, views: Vec<NodeView>) {
        let mut records = Vec::new();
        let mut schema_keys = Vec::new();
        for v in &views {
            if let (Some(member), Some(state)) = (&v.member, v.state) {
                if member.node_id == v.node_id {
                    records.push(MemberRecord {
                        member: member.clone(),
                        state,
                        generation: v.generation,
                    });
                }
            }
            for (k, val) in &v.keys {
                if let Some(node) = k.strip_prefix("removed:") {
                    let (Ok(generation), Some(rec)) = (val.parse::<u64>(), self.record(node))
                    else {
                        continue;
                    };
                    if node != self.me.node_id {
                        records.push(MemberRecord {
                            state: MemberState::Left,
                            generation,
                            ..rec
                        });
                    } else if self.rejoin_if_removed(generation).await {
                        tokio::spawn(self.clone().run_join());
                    }
                } else if k.starts_with(crate::schema::GOSSIP_PREFIX) {
                    schema_keys.push((k.clone(), val.clone()));
                }
            }
        }
        self.merge_records(records);
        // Members that say they left: a write no longer waits for them on
        // a previous ring (see `Placement::departed`).
        let left: Vec<&str> = views
            .iter()
            .filter(|v| v.state == Some(MemberState::Left))
            .map(|v| v.node_id.as_str())
            .collect();
        if !left.is_empty() {
            let m = self.membership.read();
            // Gossip keeps the state of a node that left long after: look
            // under the read lock, write only when something changes.
            if self.placement.read().with_departed(&m, &left).is_some() {
                let mut cur = self.placement.write();
                if let Some(p) = cur.with_departed(&m, &left) {
                    tracing::info!(departed = ?p.departed, "members left after handing their data off");
                    *cur = Arc::new(p);
                }
            }
        }
        // Every live member reads with the same ring as this node: no one
        // reads with an older one any more.
        let p = self.placement();
        if !p.previous.is_empty() {
            let mine = p.read_ids();
            let reports = views.iter().map(|v| RingReport {
                alive: v.alive,
                state: v.state,
                ring: v
                    .keys
                    .iter()
                    .find(|(k, _)| k == "ring")
                    .map(|(_, val)| val.as_str()),
            });
            if ring_agreed(&mine, reports) {
                let mut cur = self.placement.write();
                // Unless the rings moved meanwhile (then agreement on the
                // new read ring is still to come).
                if cur.read.ids == p.read.ids {
                    let mut settled = (**cur).clone();
                    settled.previous.clear();
                    *cur = Arc::new(settled);
                    tracing::info!(ring = %mine, "every live member reads with this ring");
                }
            }
        }
        let newer = self.schema.newer_in(&schema_keys);
        for (name, entry) in newer {
            self.apply_schema(&name, entry).await;
        }
    }

    /// Applies a schema entry newer than ours: creates or drops the
    /// keyspace (and its Raft groups), records the version, re-announces.
    pub async fn apply_schema(&self, name: &str, entry: SchemaEntry) {
        let Some(entry) = self.schema.offer(self.db.storage.as_ref(), name, entry) else {
            return;
        };
        if entry.spec.is_none() {
            // Staged writes of the keyspace go in first (or fail): none may
            // land in a table of the same name created later.
            let _ = self.db.commit_staged();
        }
        match entry.spec {
            Some(spec) => match self.db.catalog.create(spec.clone()) {
                Ok(_) => {
                    tracing::info!(keyspace = %name, version = entry.version, "keyspace learned from gossip");
                    self.open_strong_groups(&spec).await;
                }
                Err(CatalogError::Exists(_)) => self.regroup(spec).await,
                Err(e) => tracing::error!(error = %e, "cannot create a gossiped keyspace"),
            },
            None => match self.db.catalog.drop_keyspace(name) {
                Ok(()) => {
                    tracing::info!(keyspace = %name, version = entry.version, "keyspace drop learned from gossip");
                    self.close_strong_groups(name).await;
                }
                Err(CatalogError::Missing(_) | CatalogError::DropDefault) => {}
                Err(e) => tracing::error!(error = %e, "cannot drop a gossiped keyspace"),
            },
        }
        self.announce().await;
    }

    /// Records a local DDL's schema version (see `schema.rs`) and returns it.
    pub async fn schema_changed(&self, name: &str, spec: Option<KeyspaceSpec>) -> u64 {
        let version = self.schema.next_version(name, crate::db::wall_ms());
        self.schema.offer(
            self.db.storage.as_ref(),
            name,
            SchemaEntry { version, spec },
        );
        self.announce().await;
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(500);

    #[test]
    fn a_timeout_noticed_on_time_counts_against_the_link() {
        assert!(silence_counts(TIMEOUT, TIMEOUT, false));
        assert!(silence_counts(TIMEOUT + PROBE_LATE, TIMEOUT, false));
    }

    #[test]
    fn a_timeout_noticed_late_says_this_node_was_stalled() {
        assert!(!silence_counts(
            TIMEOUT + PROBE_LATE + Duration::from_millis(1),
            TIMEOUT,
            false
        ));
        assert!(!silence_counts(Duration::from_secs(3), TIMEOUT, false));
    }

    #[test]
    fn a_link_that_answered_other_requests_is_not_silent() {
        assert!(!silence_counts(TIMEOUT, TIMEOUT, true));
    }
}
