//! The coordinator of eventual keyspaces: any node takes a request, sends
//! it to the key's N replicas, and answers once R (or W) of them did.
//!
//! Read path: every replica is asked; the local replica (if any) answers
//! first, inline. Once R replies are in, they are merged and returned.
//! Replicas that answered stale or missing data are then repaired with
//! the merged record — in the background, or before answering at `ALL`.
//!
//! Write path: a write is coordinated by one of the key's replicas (a
//! node that is not one forwards it). The coordinating replica stamps the
//! new version (timestamp, dot), stores it, and sends the resulting record
//! to the other replicas, which merge it. The write is acknowledged once W
//! replicas stored it; the rest still get it. The local copy's durability
//! is awaited by the caller (the connection, before it replies).

use std::sync::Arc;

use bytes::Bytes;
use fulcrum_core::dvv::{self, VersionVector};
use fulcrum_core::keyspace::Conflict;
use fulcrum_core::level::Level;
use fulcrum_core::quorum::{Decision, ReplicaFailure, Tracker};
use fulcrum_core::record::Record;
use fulcrum_core::ring::NodeId;
use fulcrum_proto::Frame;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::catalog::Keyspace;
use crate::cluster::Cluster;
use crate::net::server::error;
use crate::net::{CallError, PeerRequest, PeerResponse};
use crate::replica::{is_stale, merge_records, NewVersion, WriteContext};

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("UNAVAILABLE not enough replicas: needed {needed}, reached {reached}")]
    Unavailable { needed: u32, reached: u32 },
    #[error("TIMEOUT {what} after {ms} ms: {reached} of {needed} replicas answered{}", if *.write { "; outcome unknown" } else { "" })]
    Timeout {
        what: &'static str,
        needed: u32,
        reached: u32,
        ms: u128,
        write: bool,
    },
    #[error("ERR {0}")]
    Other(String),
    /// An error text from another node, passed through as is.
    #[error("{0}")]
    Forwarded(String),
    /// A complete error text.
    #[error("{0}")]
    Raw(String),
}

impl From<crate::db::DbError> for CoordError {
    fn from(e: crate::db::DbError) -> Self {
        CoordError::Other(e.to_string())
    }
}

fn classify(e: &CallError) -> ReplicaFailure {
    if e.surely_not_applied() {
        ReplicaFailure::Unreachable
    } else {
        ReplicaFailure::Unknown
    }
}

/// One replica's answer to a read.
type ReadReply = (NodeId, Result<Option<Record>, CallError>);

/// The causal context a client or a read-modify-write supersedes: the
/// merged record's version vector.
pub fn context_of(conflict: Conflict, merged: Option<&Record>) -> VersionVector {
    match (conflict, merged) {
        (Conflict::Siblings, Some(r)) => dvv::from_record(r)
            .map(|s| s.context().clone())
            .unwrap_or_default(),
        _ => VersionVector::new(),
    }
}

impl Cluster {
    async fn read_replica(self: Arc<Self>, node: NodeId, ks: String, key: Bytes) -> ReadReply {
        let Some(member) = self.member(&node) else {
            let e = CallError::Unreachable {
                addr: node.to_string(),
                reason: "not a member".into(),
            };
            return (node, Err(e));
        };
        let req = PeerRequest::Read { keyspace: ks, key };
        let result = match self
            .pool
            .call(&member.peer_addr, req, self.request_timeout)
            .await
        {
            Ok(PeerResponse::Record(None)) => Ok(None),
            Ok(PeerResponse::Record(Some(b))) => {
                Record::decode(&b).map(Some).map_err(|e| CallError::Remote {
                    addr: member.peer_addr.clone(),
                    message: format!("undecodable record: {e}"),
                })
            }
            Ok(other) => Err(CallError::Remote {
                addr: member.peer_addr.clone(),
                message: format!("unexpected answer {other:?}"),
            }),
            Err(e) => Err(e),
        };
        (node, result)
    }

    /// Reads `key` at `level` and returns the merged record of the replies.
    ///
    /// # Errors
    /// `UNAVAILABLE` when too few replicas can be reached, `TIMEOUT` when
    /// too few answered in time.
    pub async fn read(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        key: &Bytes,
        level: Level,
    ) -> Result<Option<Record>, CoordError> {
        if self.alone() && self.one_local_copy_reaches(level) {
            // A single-node cluster: this node is every key's only replica
            // and its copy meets the level (as in `write`). No ring walk,
            // quorum, merge or repair: what the one-replica case below
            // decides, without its bookkeeping.
            return Ok(self.db.read_record(ks, key)?);
        }
        let started = Instant::now();
        let deadline = started + self.request_timeout;
        let replicas = self.replicas(ks.spec.replicas, key);
        let mut quorum = self.tracker(level, &replicas);
        let needed = quorum.needed();
        self.precheck(&quorum, &replicas, |_| false)?;
        if let [only] = replicas.as_slice() {
            if **only == *self.me.node_id {
                // One replica, this node: nothing to wait for, merge,
                // compare or repair.
                let rec = self.db.read_record(ks, key)?;
                quorum.success(&self.me.dc);
                if matches!(quorum.decision(), Decision::Pending) {
                    quorum.deadline();
                }
                return match quorum.decision() {
                    Decision::Reached => Ok(rec),
                    Decision::Failed { reached, unknown } => {
                        Err(read_failed(needed, reached, unknown, started))
                    }
                    Decision::Pending => Err(CoordError::Unavailable { needed, reached: 1 }),
                };
            }
        }
        let replicas_n = replicas.len();
        let mut replies: Vec<(NodeId, Option<Record>)> = Vec::with_capacity(replicas.len());
        let (tx, mut rx) = mpsc::channel::<ReadReply>(replicas.len().max(1));
        for node in replicas {
            if *node == *self.me.node_id {
                let rec = self.db.read_record(ks, key)?;
                replies.push((node, rec));
                quorum.success(&self.me.dc);
            } else {
                let (this, tx, ksn, key) =
                    (self.clone(), tx.clone(), ks.spec.name.clone(), key.clone());
                tokio::spawn(async move {
                    let _ = tx.send(this.read_replica(node, ksn, key).await).await;
                });
            }
        }
        drop(tx);
        loop {
            match quorum.decision() {
                Decision::Reached => break,
                Decision::Failed { reached, unknown } => {
                    return Err(read_failed(needed, reached, unknown, started));
                }
                Decision::Pending => {}
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) | Ok(None) => {
                    quorum.deadline();
                }
                Ok(Some((node, Ok(rec)))) => {
                    quorum.success(&self.dc_of(&node));
                    replies.push((node, rec));
                }
                Ok(Some((node, Err(e)))) => {
                    quorum.failure(&self.dc_of(&node), classify(&e));
                }
            }
        }
        let merged = merge_all(
            ks.spec.conflict,
            replies.iter().filter_map(|(_, r)| r.as_ref()),
        )?;
        // One replica (this node) has nothing to compare or repair.
        let single_local = replicas_n == 1 && replies.len() == 1;
        if let (Some(m), false) = (&merged, single_local) {
            self.db.observe(m.max_timestamp());
            if level == Level::All {
                self.repair(ks, key, m, &replies).await;
            } else {
                let (this, ks, key, m) = (self.clone(), ks.clone(), key.clone(), m.clone());
                tokio::spawn(async move {
                    // Collect the slower replicas' answers too, then repair.
                    while let Ok(Some((node, r))) =
                        tokio::time::timeout_at(deadline, rx.recv()).await
                    {
                        if let Ok(rec) = r {
                            replies.push((node, rec));
                        }
                    }
                    this.repair(&ks, &key, &m, &replies).await;
                });
            }
        }
        Ok(merged)
    }

    /// Purges a deleted key everywhere once it is safe: every replica of
    /// the key answered with exactly this tombstone-only record, and the
    /// newest tombstone is older than the grace period (which bounds how
    /// late an older write may still arrive, e.g. as a hint). Each replica
    /// removes the record only if it is still exactly this one.
    async fn purge_if_safe(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        key: &Bytes,
        merged: &Record,
        replies: &[(NodeId, Option<Record>)],
    ) {
        let replicas = self.replicas(ks.spec.replicas, key);
        let all_tombstones =
            !merged.versions.is_empty() && merged.versions.iter().all(|v| v.tombstone);
        let old_enough =
            merged.max_timestamp().physical_ms() + self.tombstone_grace_ms < crate::db::wall_ms();
        let everyone_agrees = replicas.iter().all(|r| {
            replies
                .iter()
                .any(|(n, rec)| n == r && rec.as_ref() == Some(merged))
        });
        if !(all_tombstones && old_enough && everyone_agrees) {
            return;
        }
        let encoded = merged.encode();
        for node in &replicas {
            if **node == *self.me.node_id {
                if let Err(e) = self.db.purge_if_equal(ks, key, merged) {
                    tracing::warn!(error = %e, "tombstone purge failed");
                }
            } else if let Some(m) = self.member(node) {
                let req = PeerRequest::Purge {
                    keyspace: ks.spec.name.clone(),
                    key: key.clone(),
                    record: encoded.clone(),
                };
                let _ = self
                    .pool
                    .call(&m.peer_addr, req, self.request_timeout)
                    .await;
            }
        }
    }

    /// Sends `merged` to every replica whose reply lacked part of it.
    async fn repair(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        key: &Bytes,
        merged: &Record,
        replies: &[(NodeId, Option<Record>)],
    ) {
        let encoded = merged.encode();
        let mut calls = Vec::new();
        for (node, rec) in replies {
            if !is_stale(ks.spec.conflict, rec.as_ref(), merged) {
                continue;
            }
            if **node == *self.me.node_id {
                match self.db.replica_merge(ks, key, merged) {
                    Ok(_) => {
                        self.db.metrics.read_repairs.inc();
                    }
                    Err(e) => tracing::warn!(error = %e, "local read repair failed"),
                }
            } else if let Some(member) = self.member(node) {
                let req = PeerRequest::Put {
                    keyspace: ks.spec.name.clone(),
                    key: key.clone(),
                    record: encoded.clone(),
                };
                calls.push(async move {
                    self.pool
                        .call(&member.peer_addr, req, self.request_timeout)
                        .await
                });
            }
        }
        let repaired = calls.len();
        for r in futures::future::join_all(calls).await {
            match r {
                Ok(_) => {
                    self.db.metrics.read_repairs.inc();
                }
                Err(e) => tracing::debug!(error = %e, "read repair not delivered"),
            }
        }
        if repaired == 0 {
            self.purge_if_safe(ks, key, merged, replies).await;
        }
    }

    /// Writes a new version of `key` at `level`. Returns whether this node
    /// stored a copy (then the caller awaits local durability before it
    /// acknowledges).
    ///
    /// # Errors
    /// `UNAVAILABLE`, or `TIMEOUT … outcome unknown` when fewer than W
    /// replicas confirmed in time (the write may still land).
    pub async fn write(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        key: &Bytes,
        context: WriteContext,
        new: NewVersion,
        level: Level,
    ) -> Result<bool, CoordError> {
        let placement = self.placement();
        // In a single-node cluster every write set is this node alone:
        // known without computing them.
        let alone = placement.sole_node() == Some(self.me.node_id.as_str());
        let sets = if alone {
            None
        } else {
            Some(placement.write_sets(ks.spec.replicas, key, Instant::now))
        };
        let sole = sets.as_deref().is_none_or(|s| self.only_replica_is_me(s));
        if sole && self.one_local_copy_reaches(level) {
            // This node is the key's only replica and its copy meets the
            // level: no peer, quorum or hint bookkeeping. The record is
            // staged for a storage batch shared with other writes
            // (`write_group.rs`); the caller's `Db::durable` commits it
            // before the write is acknowledged.
            self.db.coordinate(ks, key, &context, new, false)?;
            return Ok(true);
        }
        let sets =
            sets.unwrap_or_else(|| placement.write_sets(ks.spec.replicas, key, Instant::now));
        let departed = |node: &str| placement.is_departed(node);
        let started = Instant::now();
        let replicas = sets[0].clone();
        let probe = self.tracker(level, &replicas);
        let needed = probe.needed();
        let any = level == Level::Any;
        if !replicas.iter().any(|r| **r == *self.me.node_id) {
            if replicas.iter().any(|r| self.is_up(r)) || !any {
                return self
                    .forward_write(ks, key, context, new, level, &replicas, needed)
                    .await;
            }
            // WRITE ANY with every replica down: this node keeps the write
            // as hints for all of them.
            let record = self.db.coordinate_detached(ks, &context, new)?;
            for node in &replicas {
                self.db.store_hint(node, ks, key, &record)?;
            }
            return Ok(true);
        }
        // Refuse before storing anything when too few replicas are up, so
        // an UNAVAILABLE write surely did not happen. (ANY needs only this
        // node, which can hold hints.)
        if !any {
            for (i, set) in sets.iter().enumerate() {
                self.precheck(&self.tracker(level, set), set, departed)
                    .inspect_err(|_| {
                        tracing::debug!(set = i, ?sets, "write refused (set 0: the read ring's)");
                    })?;
            }
        }
        let mut quorum = WriteQuorum {
            sets: sets
                .iter()
                .map(|s| (s.clone(), self.tracker(level, s)))
                .collect(),
        };
        quorum.success(&self.me.node_id, &self.me.dc);
        // Every node of every set, once: a joining node's copy is written
        // like any replica's. A node that left after handing its data off
        // (on a previous ring's set) counts as holding the write and is
        // not sent it: it answers no reads (`Placement::departed`).
        let mut targets: Vec<NodeId> = Vec::new();
        for node in sets.iter().flatten() {
            if departed(node) {
                quorum.success(node, &self.dc_of(node));
            } else if **node != *self.me.node_id && !targets.contains(node) {
                targets.push(node.clone());
            }
        }
        if targets.is_empty() && matches!(quorum.decision(), Decision::Reached) {
            // This node is the only replica: no one to send it to. The
            // record is staged for a storage batch shared with other writes
            // (`write_group.rs`); the caller's `Db::durable` commits it
            // before the write is acknowledged.
            self.db.coordinate(ks, key, &context, new, false)?;
            return Ok(true);
        }
        let (record, encoded) = self.db.coordinate(ks, key, &context, new, true)?;
        let (tx, mut rx) =
            mpsc::channel::<(String, String, Result<(), CallError>)>(targets.len().max(1));
        let mut fallbacks = self.fallbacks(key, replicas.len());
        fallbacks.retain(|f| !targets.contains(f));
        for node in &targets {
            let member = self.member(node);
            let Some(member) = member.filter(|_| self.is_up(node)) else {
                // Sloppy quorum: the write goes to the next healthy node
                // past the preference list as a hint (or stays here).
                let hinted = self.hand_off(&mut fallbacks, node, ks, key, &record).await;
                if hinted && any {
                    quorum.success(node, &self.dc_of(node));
                } else {
                    quorum.failure(node, &self.dc_of(node), ReplicaFailure::Unreachable);
                }
                continue;
            };
            let req = PeerRequest::Put {
                keyspace: ks.spec.name.clone(),
                key: key.clone(),
                record: encoded.clone(),
            };
            let (this, tx) = (self.clone(), tx.clone());
            tokio::spawn(async move {
                let r = this
                    .pool
                    .call(&member.peer_addr, req, this.request_timeout)
                    .await
                    .map(|_| ());
                let _ = tx.send((member.node_id, member.dc, r)).await;
            });
        }
        drop(tx);
        let deadline = started + self.request_timeout;
        loop {
            match quorum.decision() {
                Decision::Reached => return Ok(true),
                Decision::Failed {
                    reached,
                    unknown: false,
                } => {
                    // Replicas refused connections after the precheck; this
                    // replica stored the write, so it may still appear.
                    return Err(CoordError::Raw(format!(
                        "UNAVAILABLE not enough replicas: needed {needed}, reached {reached}; \
                         stored on {reached}, outcome unknown"
                    )));
                }
                Decision::Failed {
                    reached,
                    unknown: true,
                } => {
                    // This replica stored the write, so its outcome is
                    // unknown to the client whatever the others did.
                    return Err(CoordError::Timeout {
                        what: "write",
                        needed,
                        reached,
                        ms: started.elapsed().as_millis(),
                        write: true,
                    });
                }
                Decision::Pending => {}
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) | Ok(None) => {
                    quorum.deadline();
                }
                Ok(Some((node, dc, Ok(())))) => {
                    quorum.success(&node, &dc);
                }
                Ok(Some((node, dc, Err(e)))) => {
                    quorum.failure(&node, &dc, classify(&e));
                }
            }
        }
    }

    /// Whether every ring a write must reach names this node alone.
    fn only_replica_is_me(&self, sets: &[Vec<NodeId>]) -> bool {
        matches!(sets, [set] if matches!(set.as_slice(), [node] if **node == *self.me.node_id))
    }

    /// Whether one copy on this node reaches `level` when it is the only
    /// replica: what a [`Tracker`] over that one replica decides after its
    /// success (every level asks for at most as many copies as there are
    /// replicas), without building one on the hot path of a single-node
    /// write.
    fn one_local_copy_reaches(&self, level: Level) -> bool {
        level.required(1) <= 1
    }

    /// Healthy nodes past the first `n` of `key`'s ring walk, nearest
    /// first: where hints for down replicas go.
    fn fallbacks(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        let ring = self.ring();
        ring.successors(ring.partition_of(key))
            .skip(n)
            .filter(|node| self.is_up(node) && ***node != *self.me.node_id)
            .cloned()
            .collect()
    }

    /// Stores `record` as a hint for `target` on the next fallback node
    /// that takes it, or on this node. Returns whether a hint was stored.
    async fn hand_off(
        self: &Arc<Self>,
        fallbacks: &mut Vec<NodeId>,
        target: &NodeId,
        ks: &Arc<Keyspace>,
        key: &Bytes,
        record: &Record,
    ) -> bool {
        while !fallbacks.is_empty() {
            let holder = fallbacks.remove(0);
            let Some(member) = self.member(&holder) else {
                continue;
            };
            let req = PeerRequest::Hint {
                target: target.to_string(),
                keyspace: ks.spec.name.clone(),
                key: key.clone(),
                record: record.encode(),
            };
            if self
                .pool
                .call(&member.peer_addr, req, self.request_timeout)
                .await
                .is_ok()
            {
                return true;
            }
        }
        match self.db.store_hint(target, ks, key, record) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot store a hint");
                false
            }
        }
    }

    /// The DC of a member (this node's for unknown ones).
    fn dc_of(&self, node: &str) -> String {
        self.member_dc(node).unwrap_or_else(|| self.me.dc.clone())
    }

    /// The DC-aware quorum tracker of a request at `level` over `replicas`.
    fn tracker(&self, level: Level, replicas: &[NodeId]) -> Tracker {
        let dcs: Vec<String> = replicas.iter().map(|r| self.dc_of(r)).collect();
        let refs: Vec<&str> = dcs.iter().map(String::as_str).collect();
        Tracker::new(level, &refs, &self.me.dc)
    }

    /// `UNAVAILABLE` unless the replicas that are up could satisfy `quorum`
    /// (`departed` replicas count as answering: see `Placement::departed`).
    fn precheck(
        &self,
        quorum: &Tracker,
        replicas: &[NodeId],
        departed: impl Fn(&str) -> bool,
    ) -> Result<(), CoordError> {
        let up: Vec<String> = replicas
            .iter()
            .filter(|r| departed(r) || self.is_up(r))
            .map(|r| self.dc_of(r))
            .collect();
        let refs: Vec<&str> = up.iter().map(String::as_str).collect();
        if !quorum.possible(&refs) {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let down: Vec<String> = replicas
                    .iter()
                    .filter_map(|r| self.down_reason(r).map(|why| format!("{r}: {why}")))
                    .collect();
                tracing::debug!(
                    replicas = ?replicas,
                    down = ?down,
                    needed = quorum.needed(),
                    "UNAVAILABLE: too few replicas up"
                );
            }
            return Err(CoordError::Unavailable {
                needed: quorum.needed(),
                reached: up.len() as u32,
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward_write(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        key: &Bytes,
        context: WriteContext,
        new: NewVersion,
        level: Level,
        replicas: &[NodeId],
        needed: u32,
    ) -> Result<bool, CoordError> {
        let context = match context {
            WriteContext::Local => None,
            WriteContext::Given(vv) => Some(vv.encode()),
        };
        for node in replicas {
            let Some(member) = self.member(node) else {
                continue;
            };
            let req = PeerRequest::Write {
                keyspace: ks.spec.name.clone(),
                key: key.clone(),
                context: context.clone(),
                version: new.clone(),
                level,
            };
            // The coordinating replica has its own deadline; allow for it.
            match self
                .pool
                .call(&member.peer_addr, req, self.request_timeout * 2)
                .await
            {
                Ok(_) => return Ok(false),
                Err(CallError::Remote { message, .. }) => {
                    return Err(CoordError::Forwarded(message))
                }
                Err(e) if e.surely_not_applied() => continue,
                Err(_) => {
                    return Err(CoordError::Timeout {
                        what: "write",
                        needed,
                        reached: 0,
                        ms: self.request_timeout.as_millis() * 2,
                        write: true,
                    })
                }
            }
        }
        Err(CoordError::Unavailable { needed, reached: 0 })
    }
}

/// The quorum trackers of a write: one per replica set it must reach its
/// level on (see `Cluster::write_sets`). A node's answer counts in every
/// set that holds it; the write is done when every set reached its level.
struct WriteQuorum {
    sets: Vec<(Vec<NodeId>, Tracker)>,
}

impl WriteQuorum {
    fn success(&mut self, node: &str, dc: &str) {
        for (set, t) in &mut self.sets {
            if set.iter().any(|x| **x == *node) {
                t.success(dc);
            }
        }
    }

    fn failure(&mut self, node: &str, dc: &str, why: ReplicaFailure) {
        for (set, t) in &mut self.sets {
            if set.iter().any(|x| **x == *node) {
                t.failure(dc, why);
            }
        }
    }

    fn deadline(&mut self) {
        for (_, t) in &mut self.sets {
            t.deadline();
        }
    }

    fn decision(&self) -> Decision {
        let mut pending = false;
        for (_, t) in &self.sets {
            match t.decision() {
                f @ Decision::Failed { .. } => return f,
                Decision::Pending => pending = true,
                Decision::Reached => {}
            }
        }
        if pending {
            Decision::Pending
        } else {
            Decision::Reached
        }
    }
}

/// Merges the replies' records into one (`None` if no replica had any).
///
/// # Errors
/// Undecodable causal metadata.
pub fn merge_all<'a>(
    conflict: Conflict,
    records: impl Iterator<Item = &'a Record>,
) -> Result<Option<Record>, CoordError> {
    let mut merged: Option<Record> = None;
    for r in records {
        merged = Some(match merged {
            None => r.clone(),
            Some(m) => {
                merge_records(conflict, &m, r).map_err(|e| CoordError::Other(e.to_string()))?
            }
        });
    }
    Ok(merged)
}

/// A peer asked this replica to coordinate a write.
pub async fn handle_forwarded_write(
    cluster: &Arc<Cluster>,
    keyspace: String,
    key: Bytes,
    context: Option<Bytes>,
    version: NewVersion,
    level: Level,
) -> PeerResponse {
    let Some(ks) = cluster.db.catalog.get(&keyspace) else {
        return error(format!("ERR keyspace '{keyspace}' does not exist"));
    };
    let context = match context {
        None => WriteContext::Local,
        Some(b) => match VersionVector::decode(&b) {
            Ok(vv) => WriteContext::Given(vv),
            Err(e) => return error(format!("ERR bad causal context: {e}")),
        },
    };
    match cluster.write(&ks, &key, context, version, level).await {
        Ok(local) => {
            if local {
                if let Err(e) = cluster.db.durable().await {
                    return error(format!("ERR write not durable: {e}"));
                }
            }
            PeerResponse::Done
        }
        Err(e) => error(e),
    }
}

/// A peer forwarded a client command to this node (the partition's
/// coordinator for a strong keyspace).
pub async fn handle_forwarded_command(
    cluster: &Arc<Cluster>,
    keyspace: String,
    args: Vec<Bytes>,
    read_level: Option<Level>,
    write_level: Option<Level>,
) -> PeerResponse {
    let mut conn = crate::cmd::ConnState::new(0);
    conn.keyspace = keyspace;
    conn.read_level = read_level;
    conn.write_level = write_level;
    conn.forwarded = true;
    let mut frame = crate::cmd::execute(cluster, &mut conn, args).await;
    if conn.wrote {
        if let Err(e) = cluster.db.durable().await {
            frame = Frame::error(format!("ERR write not durable: {e}"));
        }
    }
    let mut out = bytes::BytesMut::new();
    fulcrum_proto::encode(&frame, fulcrum_proto::Protocol::Resp3, &mut out);
    PeerResponse::Reply(out.freeze())
}

/// The error of a read that missed its level: `TIMEOUT` when some replica's
/// answer is still unknown, else `UNAVAILABLE`.
fn read_failed(needed: u32, reached: u32, unknown: bool, started: Instant) -> CoordError {
    if unknown {
        CoordError::Timeout {
            what: "read",
            needed,
            reached,
            ms: started.elapsed().as_millis(),
            write: false,
        }
    } else {
        CoordError::Unavailable { needed, reached }
    }
}
