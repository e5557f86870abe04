//! Replica-side operations of eventual keyspaces on the local database:
//! read the stored record, merge a record sent by a coordinator, and
//! coordinate a new version (assign its dot and timestamp).
//!
//! Merge rules by the keyspace's conflict setting:
//! - `siblings`: dotted version vector sets (`fulcrum_core::dvv`): a
//!   version survives unless the other side's causal context covers it;
//! - `lww`: the version with the highest (timestamp, tombstone, value)
//!   wins.

use bytes::Bytes;
use fulcrum_core::dvv::{self, VersionVector};
use fulcrum_core::keyspace::Conflict;
use fulcrum_core::record::{Record, Version};

use crate::catalog::Keyspace;
use crate::db::{wall_ms, Db, DbError};
use crate::expiry;
use crate::write_group::Staged;

/// What causal context a new write supersedes.
#[derive(Debug, Clone)]
pub enum WriteContext {
    /// Everything the coordinating replica has stored for the key (plain
    /// SET/DEL: overwrite what this replica knows).
    Local,
    /// Exactly what a client read (VSET/VDEL with CONTEXT, or a
    /// read-modify-write command's quorum read).
    Given(VersionVector),
}

/// A new value (or delete) before the coordinator stamps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewVersion {
    pub value: Bytes,
    pub tombstone: bool,
    pub expires_at_ms: Option<u64>,
}

/// Merges two stored records of one key by the keyspace's rule.
///
/// # Errors
/// A record whose causal metadata cannot be decoded.
pub fn merge_records(conflict: Conflict, a: &Record, b: &Record) -> Result<Record, dvv::DvvError> {
    match conflict {
        Conflict::Lww => Ok(dvv::lww_merge(a, b)),
        Conflict::Siblings => {
            let sa = dvv::from_record(a)?;
            let sb = dvv::from_record(b)?;
            Ok(dvv::to_record(&sa.merge(&sb)))
        }
    }
}

/// Whether `replica`'s record lacks something that `merged` has.
pub fn is_stale(conflict: Conflict, replica: Option<&Record>, merged: &Record) -> bool {
    match replica {
        None => !merged.versions.is_empty(),
        Some(r) => match merge_records(conflict, r, merged) {
            Ok(m) => m != *r,
            Err(_) => true,
        },
    }
}

impl Db {
    fn corrupt(ks: &Keyspace, e: impl std::fmt::Display) -> DbError {
        DbError::Replica(format!(
            "keyspace '{}': unreadable causal metadata: {e}",
            ks.spec.name
        ))
    }

    /// Merges `incoming` into the stored record of `key`. Returns whether
    /// anything changed (then the caller awaits durability before
    /// acknowledging).
    ///
    /// # Errors
    /// Storage failure or undecodable records.
    pub fn replica_merge(
        &self,
        ks: &Keyspace,
        key: &[u8],
        incoming: &Record,
    ) -> Result<bool, DbError> {
        self.observe(incoming.max_timestamp());
        let _guard = self.lock_key(&ks.table, key);
        let (current, old_digest) = self.read_stored(ks, key)?;
        let merged = match &current {
            None => incoming.clone(),
            Some(cur) => {
                merge_records(ks.spec.conflict, cur, incoming).map_err(|e| Self::corrupt(ks, e))?
            }
        };
        if current.as_ref() == Some(&merged) {
            return Ok(false);
        }
        self.stage_record(ks, key, &merged, old_digest)?;
        self.commit_staged()?;
        Ok(true)
    }

    /// Stamps a new version at this replica: a fresh timestamp and, for
    /// sibling keyspaces, a dot of this node; supersedes `context`; stores
    /// it. Returns the whole new record, which the coordinator sends to the
    /// other replicas, and its encoded form (as stored).
    ///
    /// With `commit` false the record is only staged (`write_group.rs`):
    /// it reaches the engine with the next [`Db::commit_staged`], which
    /// [`Db::durable`] runs before the write may be acknowledged.
    ///
    /// # Errors
    /// Storage failure or undecodable records.
    pub fn coordinate(
        &self,
        ks: &Keyspace,
        key: &[u8],
        context: &WriteContext,
        new: NewVersion,
        commit: bool,
    ) -> Result<(Record, Bytes), DbError> {
        let _guard = self.lock_key(&ks.table, key);
        let now = wall_ms();
        let timestamp = self.timestamp(now);
        let version = Version {
            value: new.value,
            tombstone: new.tombstone,
            timestamp,
            expires_at_ms: new.expires_at_ms,
        };
        let (current, old_digest) = self.read_stored(ks, key)?;
        let record = match ks.spec.conflict {
            Conflict::Lww => match &current {
                Some(cur) => dvv::lww_merge(cur, &Record::single(version)),
                None => Record::single(version),
            },
            // The HLC floor keeps this node's dot counters increasing even
            // if its local copy of the key was lost.
            Conflict::Siblings => match (context, &current) {
                // Plain SET/DEL: supersede everything stored here (on the
                // encoded record: the hot path of a blind write).
                (WriteContext::Local, Some(cur)) => {
                    dvv::overwrite_record(cur, &self.node, version, timestamp.0)
                        .map_err(|e| Self::corrupt(ks, e))?
                }
                (WriteContext::Local, None) => dvv::to_record(
                    &dvv::DvvSet::new().overwrite_with_floor(&self.node, version, timestamp.0),
                ),
                (WriteContext::Given(vv), _) => {
                    let state = match &current {
                        Some(cur) => dvv::from_record(cur).map_err(|e| Self::corrupt(ks, e))?,
                        None => dvv::DvvSet::new(),
                    };
                    dvv::to_record(&state.update_with_floor(vv, &self.node, version, timestamp.0))
                }
            },
        };
        let encoded = self.stage_record(ks, key, &record, old_digest)?;
        if commit {
            self.commit_staged()?;
        }
        Ok((record, encoded))
    }

    /// Stamps a new version without reading or storing anything locally:
    /// for a coordinator that holds no copy of the key (hints only).
    ///
    /// # Errors
    /// None today; kept fallible like [`Db::coordinate`].
    pub fn coordinate_detached(
        &self,
        ks: &Keyspace,
        context: &WriteContext,
        new: NewVersion,
    ) -> Result<Record, DbError> {
        let timestamp = self.timestamp(wall_ms());
        let version = Version {
            value: new.value,
            tombstone: new.tombstone,
            timestamp,
            expires_at_ms: new.expires_at_ms,
        };
        Ok(match ks.spec.conflict {
            Conflict::Lww => Record::single(version),
            Conflict::Siblings => {
                let ctx = match context {
                    WriteContext::Local => VersionVector::new(),
                    WriteContext::Given(vv) => vv.clone(),
                };
                let me = fulcrum_core::ring::NodeId::from(self.node_id.as_str());
                dvv::to_record(&dvv::DvvSet::new().update_with_floor(
                    &ctx,
                    &me,
                    version,
                    timestamp.0,
                ))
            }
        })
    }

    /// Physically removes `key` if its stored record is exactly `expected`
    /// (a tombstone every replica agreed on). Returns whether it did.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn purge_if_equal(
        &self,
        ks: &Keyspace,
        key: &[u8],
        expected: &Record,
    ) -> Result<bool, DbError> {
        let purged = self.drop_if_equal(ks, key, expected)?;
        if purged {
            self.metrics.tombstones_purged.inc();
        }
        Ok(purged)
    }

    /// Physically removes `key` (record and anti-entropy entry) if its
    /// stored record is exactly `expected`. Returns whether it did. Not
    /// durable until the next group commit.
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    pub fn drop_if_equal(
        &self,
        ks: &Keyspace,
        key: &[u8],
        expected: &Record,
    ) -> Result<bool, DbError> {
        let _guard = self.lock_key(&ks.table, key);
        let (current, old_digest) = self.read_stored(ks, key)?;
        if current.as_ref() != Some(expected) {
            return Ok(false);
        }
        {
            let mut staging = self.writes.stage()?;
            self.aae_stage(&mut staging, ks, key, old_digest, None);
            staging.remove(&ks.table, Bytes::copy_from_slice(key));
        }
        self.commit_staged()?;
        Ok(true)
    }

    /// The stored bytes of `key` in `table` as the next writer must see
    /// them: a staged write's (not yet in the engine) if any, else the
    /// engine's. Call with the key locked.
    ///
    /// # Errors
    /// Storage failure.
    pub(crate) fn stored_bytes(&self, table: &str, key: &[u8]) -> Result<Option<Bytes>, DbError> {
        Ok(self.stored(table, key)?.map(|(bytes, _)| bytes))
    }

    /// As [`Db::stored_bytes`], with the bytes' anti-entropy digest when a
    /// staged write already knows it.
    fn stored(&self, table: &str, key: &[u8]) -> Result<Option<(Bytes, Option<u64>)>, DbError> {
        Ok(match self.writes.staged(table, key) {
            Some(Staged::Put(bytes)) => Some((bytes, None)),
            Some(Staged::Record { bytes, digest }) => Some((bytes, Some(digest))),
            Some(Staged::Remove) => None,
            None => self.storage.get(table, key)?.map(|b| (b, None)),
        })
    }

    /// The stored record of `key` (staged writes included, see
    /// [`Db::stored_bytes`]) and the anti-entropy digest of its stored
    /// bytes (digested as read, not re-encoded).
    ///
    /// # Errors
    /// Storage failure or an undecodable record.
    fn read_stored(
        &self,
        ks: &Keyspace,
        key: &[u8],
    ) -> Result<(Option<Record>, Option<u64>), DbError> {
        match self.stored(&ks.table, key)? {
            None => Ok((None, None)),
            Some((bytes, digest)) => {
                let record = Record::decode(&bytes).map_err(|source| DbError::Corrupt {
                    keyspace: ks.spec.name.clone(),
                    source,
                })?;
                let digest = digest.unwrap_or_else(|| fulcrum_core::merkle::digest(&bytes));
                Ok((Some(record), Some(digest)))
            }
        }
    }

    /// Stages a record, its anti-entropy entry and its expiry-index entries
    /// as one atomic change (committed by the caller or with the next
    /// group); returns the stored bytes. `old_digest` is the digest of the
    /// bytes it replaces. Call with the key locked.
    fn stage_record(
        &self,
        ks: &Keyspace,
        key: &[u8],
        record: &Record,
        old_digest: Option<u64>,
    ) -> Result<Bytes, DbError> {
        // Encode once: the same bytes are stored, digested and sent.
        let encoded = record.encode();
        let digest = fulcrum_core::merkle::digest(&encoded);
        let mut staging = self.writes.stage()?;
        self.aae_stage(&mut staging, ks, key, old_digest, Some(digest));
        for v in &record.versions {
            if let (Some(at), false) = (v.expires_at_ms, v.tombstone) {
                staging.put(
                    expiry::TABLE,
                    expiry::index_key(at, &ks.table, key),
                    Bytes::new(),
                );
            }
        }
        staging.put_record(
            &ks.table,
            Bytes::copy_from_slice(key),
            encoded.clone(),
            digest,
        );
        Ok(encoded)
    }
}
