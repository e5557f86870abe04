//! Time-to-live: an expiry index and the background sweeper.
//!
//! Reads expire lazily ([`fulcrum_core::Record::visible`] hides an expired
//! value). The sweeper reclaims the space: every write with an expiry also
//! writes `expiry/<expires_at_ms BE><keyspace len><keyspace><key>` in the
//! same batch, so the index is in expiry order and the sweeper scans only
//! the due prefix. An index entry may be stale (the key was overwritten or
//! its TTL changed); the sweeper checks the record itself before deleting.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fulcrum_core::record::Record;
use fulcrum_storage::Batch;
use tokio::sync::watch;

use crate::db::{wall_ms, Db, DbError};

/// The storage table of the expiry index.
pub const TABLE: &str = "expiry";

/// Index key: expiry time first so a range scan finds what is due.
pub fn index_key(expires_at_ms: u64, keyspace_table: &str, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + 2 + keyspace_table.len() + key.len());
    b.put_u64(expires_at_ms);
    b.put_u16(keyspace_table.len() as u16);
    b.put_slice(keyspace_table.as_bytes());
    b.put_slice(key);
    b.freeze()
}

/// Splits an index key into (expires_at_ms, table, key); `None` if it is
/// malformed (then the sweeper drops it).
pub fn parse_index_key(k: &[u8]) -> Option<(u64, &str, &[u8])> {
    let at = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let len = u16::from_be_bytes(k.get(8..10)?.try_into().ok()?) as usize;
    let table = std::str::from_utf8(k.get(10..10 + len)?).ok()?;
    Some((at, table, &k[10 + len..]))
}

/// Deletes up to `limit` keys that expired by `now_ms`. Returns how many
/// index entries it processed.
///
/// # Errors
/// Storage failures.
pub fn sweep_once(db: &Db, now_ms: u64, limit: usize) -> Result<usize, DbError> {
    use std::ops::Bound;
    let end = (now_ms + 1).to_be_bytes();
    let due = db
        .storage
        .scan(TABLE, Bound::Unbounded, Bound::Excluded(&end), limit)?;
    let n = due.len();
    for (index_key, _) in due {
        let Some((at, table, key)) = parse_index_key(&index_key) else {
            let mut batch = Batch::new();
            batch.remove(TABLE, index_key.clone());
            db.storage.write(batch)?;
            continue;
        };
        let _guard = db.lock_key(table, key);
        // The record as the next writer would see it (staged writes
        // included), and the change committed before the lock is released,
        // as any write under the key's lock.
        let stored = db.stored_bytes(table, key).ok().flatten();
        {
            let mut staging = db.writes.stage()?;
            staging.remove(TABLE, index_key.clone());
            if let Some(bytes) = stored {
                // Delete only if the stored value still carries this expiry:
                // a later SET or PERSIST keeps the key alive.
                let still_due = Record::decode(&bytes)
                    .map(|r| {
                        !r.versions.is_empty()
                            && r.versions.iter().all(|v| {
                                v.tombstone
                                    || v.expires_at_ms.is_some_and(|e| e <= now_ms && e <= at)
                            })
                    })
                    .unwrap_or(false);
                if still_due {
                    staging.remove(table, Bytes::copy_from_slice(key));
                    let ks = table.strip_prefix("data.").and_then(|n| db.catalog.get(n));
                    if let Some(ks) = ks {
                        let old_d = fulcrum_core::merkle::digest(&bytes);
                        db.aae_stage(&mut staging, &ks, key, Some(old_d), None);
                    }
                    db.metrics.expired_keys.inc();
                }
            }
        }
        db.commit_staged()?;
    }
    Ok(n)
}

/// Runs the sweeper until `shutdown` changes.
pub async fn run_sweeper(db: Arc<Db>, interval: Duration, shutdown: watch::Receiver<bool>) {
    let mut ticker = crate::ticker::Ticker::new(interval, shutdown);
    while ticker.next().await {
        // Sweep in bounded chunks so one tick never stalls for long.
        loop {
            let db2 = db.clone();
            // Inside a simulation, inline: a blocking-pool thread finishes
            // in real time, which would make simulated runs unrepeatable.
            #[cfg(feature = "sim")]
            let res = if crate::netio::in_simulation() {
                Ok(sweep_once(&db2, wall_ms(), 512))
            } else {
                tokio::task::spawn_blocking(move || sweep_once(&db2, wall_ms(), 512)).await
            };
            #[cfg(not(feature = "sim"))]
            let res = tokio::task::spawn_blocking(move || sweep_once(&db2, wall_ms(), 512)).await;
            match res {
                Ok(Ok(512)) => continue,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "expiry sweep failed");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expiry sweep task failed");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_key_round_trips_and_sorts_by_time() {
        let a = index_key(5, "data.default", b"k1");
        let b = index_key(70_000, "data.a", b"");
        assert!(a < b);
        assert_eq!(parse_index_key(&a), Some((5, "data.default", &b"k1"[..])));
        assert_eq!(parse_index_key(&b), Some((70_000, "data.a", &b""[..])));
        assert_eq!(parse_index_key(b"short"), None);
    }
}
