//! Hinted handoff: a write meant for a replica that is down is kept by
//! another node as a durable hint and delivered when the replica is back.
//!
//! Hints live in the `hints` table, keyed by
//! `target len ‖ target ‖ keyspace len ‖ keyspace ‖ key`, valued by the
//! record to deliver (a later hint for the same key merges into it). They
//! are synced before the write that created them is acknowledged, so a
//! crash of the hint holder loses none. A replay task sends each hint to
//! its target once the prober says the target is up, and deletes it after
//! the target acknowledged.
//!
//! Like Cassandra, hinted writes count toward the write level only for
//! `WRITE ANY`; for other levels they are extra copies that make replicas
//! converge sooner after a failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fulcrum_core::record::Record;
use fulcrum_storage::Batch;
use tokio::sync::watch;

use crate::catalog::Keyspace;
use crate::cluster::Cluster;
use crate::db::{Db, DbError};
use crate::net::PeerRequest;
use crate::replica::merge_records;

pub const TABLE: &str = "hints";

fn hint_key(target: &str, keyspace: &str, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + target.len() + keyspace.len() + key.len());
    b.put_u8(target.len() as u8);
    b.put_slice(target.as_bytes());
    b.put_u8(keyspace.len() as u8);
    b.put_slice(keyspace.as_bytes());
    b.put_slice(key);
    b.freeze()
}

/// (target, keyspace, key) of a hint key; `None` if malformed.
fn parse_hint_key(k: &[u8]) -> Option<(&str, &str, &[u8])> {
    let tl = *k.first()? as usize;
    let target = std::str::from_utf8(k.get(1..1 + tl)?).ok()?;
    let kl = *k.get(1 + tl)? as usize;
    let ks = std::str::from_utf8(k.get(2 + tl..2 + tl + kl)?).ok()?;
    Some((target, ks, &k[2 + tl + kl..]))
}

impl Db {
    /// Stores (merges) a hint for `target`. The caller awaits durability
    /// before acknowledging.
    ///
    /// # Errors
    /// Storage failure or undecodable records.
    pub fn store_hint(
        &self,
        target: &str,
        ks: &Keyspace,
        key: &[u8],
        record: &Record,
    ) -> Result<(), DbError> {
        let hk = hint_key(target, &ks.spec.name, key);
        let _guard = self.lock_key(TABLE, &hk);
        let merged = match self.storage.get(TABLE, &hk)? {
            Some(old) => {
                let old = Record::decode(&old).map_err(|e| DbError::Replica(e.to_string()))?;
                merge_records(ks.spec.conflict, &old, record)
                    .map_err(|e| DbError::Replica(e.to_string()))?
            }
            None => record.clone(),
        };
        let mut batch = Batch::new();
        batch.put(TABLE, hk, merged.encode());
        self.storage.write(batch)?;
        self.metrics.hints_stored.inc();
        Ok(())
    }

    /// Number of hints waiting (for `/status` and metrics).
    pub fn hint_backlog(&self) -> u64 {
        use std::ops::Bound;
        self.storage
            .scan(TABLE, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .map(|r| r.len() as u64)
            .unwrap_or(0)
    }
}

/// Delivers every hint whose target is up; returns how many were
/// delivered.
pub async fn replay_once(cluster: &Arc<Cluster>) -> usize {
    use std::ops::Bound;
    let db = &cluster.db;
    let Ok(rows) = db
        .storage
        .scan(TABLE, Bound::Unbounded, Bound::Unbounded, 1024)
    else {
        return 0;
    };
    let mut delivered = 0;
    for (hk, value) in rows {
        let Some((target, keyspace, key)) = parse_hint_key(&hk) else {
            let mut b = Batch::new();
            b.remove(TABLE, hk.clone());
            let _ = db.storage.write(b);
            continue;
        };
        if !cluster.is_up(target) {
            continue;
        }
        let Some(member) = cluster.member(target) else {
            continue;
        };
        let req = PeerRequest::Put {
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key),
            record: value.clone(),
        };
        if cluster
            .pool
            .call(&member.peer_addr, req, cluster.request_timeout)
            .await
            .is_ok()
        {
            // Delete only if no newer hint merged in meanwhile.
            let _guard = db.lock_key(TABLE, &hk);
            if db.storage.get(TABLE, &hk).ok().flatten().as_ref() == Some(&value) {
                let mut b = Batch::new();
                b.remove(TABLE, hk.clone());
                let _ = db.storage.write(b);
            }
            delivered += 1;
            db.metrics.hints_delivered.inc();
        }
    }
    delivered
}

/// Replays hints every `every` until shutdown.
pub async fn run_replay(cluster: Arc<Cluster>, every: Duration, shutdown: watch::Receiver<bool>) {
    let mut ticker = crate::ticker::Ticker::new(every, shutdown);
    while ticker.next().await {
        replay_once(&cluster).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_key_round_trips() {
        let k = hint_key("n2", "default", b"user:1");
        assert_eq!(parse_hint_key(&k), Some(("n2", "default", &b"user:1"[..])));
        assert_eq!(parse_hint_key(b""), None);
    }
}
