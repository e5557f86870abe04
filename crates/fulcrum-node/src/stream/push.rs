//! A leaving node's hand-off ([`Cluster::push_away`]): every partition it
//! replicates on the old read ring goes to the nodes that gain it on the
//! new one, [`PUSH_IN_FLIGHT`] partitions at a time, all within one
//! streaming budget ([`Pace`]).
//!
//! Rules kept from the sequential version:
//! - the caller (`Cluster::leave`) announces `leaving` and waits
//!   `Cluster::settle` before the first push, and announces `left` only
//!   after every push of an attempt was acknowledged (each `PutBatch` is
//!   durable on its target before the answer) and its own storage synced;
//! - a failed attempt stops at the first error (pushes still in flight are
//!   dropped: a `PutBatch` merges idempotently, so a half-sent page is
//!   harmless) and the next attempt resumes: partitions already pushed to
//!   the same targets ([`Pushed`]) are skipped. Writes that land after a
//!   partition was pushed reach the new owners by themselves (they are on
//!   the pending ring, where every write must reach its level).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::keyspace::Mode;
use fulcrum_core::merkle::PartitionTree;
use fulcrum_core::ring::{PartitionId, DEFAULT_PARTITIONS};
use futures::StreamExt;
use tokio::time::Instant;

use super::PAGE;
use crate::catalog::Keyspace;
use crate::cluster::{Cluster, RingView};
use crate::net::{PeerRequest, PeerResponse};

/// Partitions a leaving node pushes at once: enough to overlap one
/// partition's round trips and fsyncs with the next ones', few enough
/// that the targets are not flooded.
const PUSH_IN_FLIGHT: usize = 4;

/// One partition to hand off, and the nodes that gain it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HandOff {
    pub keyspace: String,
    pub partition: u32,
    pub targets: Vec<String>,
}

/// Hand-offs already done by earlier attempts of one leave.
pub type Pushed = BTreeSet<HandOff>;

/// One streaming budget shared by concurrent streams: each page reserves
/// its share of time after the pages before it, so together they stay
/// within `bytes_per_sec` as one stream did.
pub struct Pace {
    bytes_per_sec: u64,
    /// When the budget reserved so far is used up.
    next: parking_lot::Mutex<Option<Instant>>,
}

impl Pace {
    /// A budget of `bytes_per_sec` (0: unlimited).
    pub fn new(bytes_per_sec: u64) -> Pace {
        Pace {
            bytes_per_sec,
            next: parking_lot::Mutex::new(None),
        }
    }

    /// When a page of `bytes` sent at `now` may be followed by the next
    /// (`None`: at once).
    fn reserve(&self, bytes: usize, now: Instant) -> Option<Instant> {
        if self.bytes_per_sec == 0 {
            return None;
        }
        let share = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        let mut next = self.next.lock();
        let start = next.map_or(now, |n| n.max(now));
        let end = start + share;
        *next = Some(end);
        (end.duration_since(now) > Duration::from_micros(500)).then_some(end)
    }

    /// Waits until a page of `bytes` fits the budget.
    pub async fn take(&self, bytes: usize) {
        if let Some(at) = self.reserve(bytes, Instant::now()) {
            tokio::time::sleep_until(at).await;
        }
    }
}

impl Cluster {
    /// Pushes every partition this node replicates on `old` to the nodes
    /// that replicate it on `new` but not on `old`, [`PUSH_IN_FLIGHT`] at a
    /// time, skipping those in `pushed` and adding each one done to it.
    /// Returns records sent.
    ///
    /// # Errors
    /// A target that refuses or cannot be reached (the partitions pushed
    /// before stay in `pushed`).
    pub async fn push_away(
        self: &Arc<Self>,
        old: &RingView,
        new: &RingView,
        pushed: &mut Pushed,
    ) -> Result<u64, String> {
        let work: Vec<(Arc<Keyspace>, HandOff)> = self
            .hand_offs(old, new)
            .into_iter()
            .filter(|(_, h)| !pushed.contains(h))
            .collect();
        let pace = Pace::new(self.stream_bytes_per_sec);
        let mut sent = 0u64;
        let mut failed = None;
        {
            let pace = &pace;
            let mut runs = futures::stream::iter(work)
                .map(|(ks, h)| async move {
                    let n = self.push_partition(&ks, &h, pace).await?;
                    Ok::<_, String>((h, n))
                })
                .buffer_unordered(PUSH_IN_FLIGHT);
            while let Some(r) = runs.next().await {
                match r {
                    Ok((h, n)) => {
                        sent += n;
                        pushed.insert(h);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        self.db.metrics.streamed_records.inc_by(sent);
        match failed {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }

    /// The partitions of eventual keyspaces this node holds records of and
    /// replicates on `old`, with the nodes that gain each on `new`.
    fn hand_offs(&self, old: &RingView, new: &RingView) -> Vec<(Arc<Keyspace>, HandOff)> {
        let me = self.me.node_id.as_str();
        let empty = PartitionTree::new().root();
        let mut out = Vec::new();
        for ks in self.db.catalog.list() {
            if ks.spec.mode != Mode::Eventual {
                continue;
            }
            let (n_old, n_new) = (old.n(ks.spec.replicas), new.n(ks.spec.replicas));
            for p in 0..DEFAULT_PARTITIONS {
                let was_list = old.ring.preference_list(PartitionId(p), n_old);
                if !was_list.iter().any(|x| **x == *me)
                    || self.db.trees.root(&ks.spec.name, p) == empty
                {
                    continue;
                }
                let targets: Vec<String> = new
                    .ring
                    .preference_list(PartitionId(p), n_new)
                    .iter()
                    .filter(|x| !was_list.contains(x))
                    .map(|x| x.to_string())
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let h = HandOff {
                    keyspace: ks.spec.name.clone(),
                    partition: p,
                    targets,
                };
                out.push((ks.clone(), h));
            }
        }
        out
    }

    /// Pushes one partition to its targets, page by page (each page to
    /// every target before the next). Returns records sent.
    async fn push_partition(
        self: &Arc<Self>,
        ks: &Arc<Keyspace>,
        h: &HandOff,
        pace: &Pace,
    ) -> Result<u64, String> {
        let mut sent = 0u64;
        let mut after: Option<Bytes> = None;
        loop {
            let (records, next) = self
                .db
                .partition_records(ks, h.partition, after.as_deref(), PAGE as usize)
                .map_err(|e| format!("partition {} of {}: {e}", h.partition, h.keyspace))?;
            let bytes: usize = records.iter().map(|(k, r)| k.len() + r.len()).sum();
            for t in &h.targets {
                let addr = self
                    .member(t)
                    .ok_or_else(|| format!("unknown target {t}"))?
                    .peer_addr;
                let req = PeerRequest::PutBatch {
                    keyspace: h.keyspace.clone(),
                    records: records.clone(),
                };
                match self.pool.call(&addr, req, self.request_timeout * 4).await {
                    Ok(PeerResponse::Done) => {}
                    Ok(other) => return Err(format!("{t}: unexpected answer {other:?}")),
                    Err(e) => return Err(format!("{t}: {e}")),
                }
            }
            sent += records.len() as u64;
            pace.take(bytes).await;
            match next {
                Some(n) => after = Some(n),
                None => return Ok(sent),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlimited_pace_never_waits() {
        let pace = Pace::new(0);
        let now = Instant::now();
        assert_eq!(pace.reserve(1 << 20, now), None);
        assert_eq!(pace.reserve(1 << 20, now), None);
    }

    #[test]
    fn concurrent_pages_share_one_budget() {
        // 1000 bytes per second: four pages of 250 bytes sent at the same
        // instant take a second between them, as one stream's would.
        let pace = Pace::new(1000);
        let now = Instant::now();
        let ends: Vec<Instant> = (0..4)
            .map(|_| pace.reserve(250, now).expect("a page waits"))
            .collect();
        let ms: Vec<u128> = ends
            .iter()
            .map(|e| e.duration_since(now).as_millis())
            .collect();
        assert_eq!(ms, vec![250, 500, 750, 1000]);
    }

    #[test]
    fn an_idle_budget_does_not_bank_time() {
        let pace = Pace::new(1000);
        let t0 = Instant::now();
        pace.reserve(100, t0);
        // Long after the first page: the next one starts from now, not from
        // the unused budget in between.
        let later = t0 + Duration::from_secs(10);
        let end = pace.reserve(100, later).expect("a page waits");
        assert_eq!(end.duration_since(later), Duration::from_millis(100));
    }
}
