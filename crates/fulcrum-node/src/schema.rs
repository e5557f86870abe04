//! The keyspace schema as versioned cluster metadata.
//!
//! Every keyspace name has a version: the wall-clock ms of its last
//! `KEYSPACE CREATE` or `DROP` (at least one more than the version it
//! replaces). A node keeps the newest entry it heard of per name — the spec,
//! or a tombstone for a dropped keyspace — persisted in the `meta` table,
//! and gossips all of them (`ks:<name>`). A node that missed a DDL
//! broadcast (it was down) applies the newer entry when gossip brings it,
//! so every node converges on one schema: for each name, the entry with the
//! highest version.
//!
//! A strong keyspace's group voters change without a DDL: the leader of a
//! group that moved republishes the spec under the same version with a
//! higher epoch for that group (`KeyspaceSpec::group_epochs`). Of two
//! entries of one version, each group's voters come from the higher epoch
//! ([`SchemaEntry::merged`]), so publications of different groups by
//! different leaders all survive.

use std::collections::BTreeMap;

use bytes::Bytes;
use fulcrum_core::keyspace::KeyspaceSpec;
use fulcrum_storage::{Batch, Storage};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::catalog::META_TABLE;

const SCHEMA_KEY: &[u8] = b"cluster/schema";
/// Gossip key prefix of schema entries.
pub const GOSSIP_PREFIX: &str = "ks:";

/// One keyspace name's newest known definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaEntry {
    pub version: u64,
    /// `None`: dropped.
    pub spec: Option<KeyspaceSpec>,
}

impl SchemaEntry {
    /// This entry with what `other` knows better folded in, if that is
    /// anything: `other` whole if its version is higher; for the same
    /// version, the groups whose epoch is higher in `other`. `None` when
    /// `other` adds nothing.
    pub fn merged(&self, other: &SchemaEntry) -> Option<SchemaEntry> {
        if other.version > self.version {
            return Some(other.clone());
        }
        if other.version < self.version {
            return None;
        }
        let (Some(mine), Some(theirs)) = (&self.spec, &other.spec) else {
            return None;
        };
        let mut spec = mine.clone();
        if !spec.merge_groups(theirs) {
            return None;
        }
        Some(SchemaEntry {
            version: self.version,
            spec: Some(spec),
        })
    }
}

#[derive(Default)]
pub struct Schema {
    entries: Mutex<BTreeMap<String, SchemaEntry>>,
}

impl Schema {
    /// Loads the persisted entries; keyspaces of the catalog without one
    /// get version 0 (older than any DDL).
    pub fn load(storage: &dyn Storage, catalog: &[KeyspaceSpec]) -> Schema {
        let mut entries: BTreeMap<String, SchemaEntry> = match storage.get(META_TABLE, SCHEMA_KEY) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        for spec in catalog {
            entries
                .entry(spec.name.clone())
                .or_insert_with(|| SchemaEntry {
                    version: 0,
                    spec: Some(spec.clone()),
                });
        }
        Schema {
            entries: Mutex::new(entries),
        }
    }

    /// A version for a new DDL on `name`: now, and above the current one.
    pub fn next_version(&self, name: &str, now_ms: u64) -> u64 {
        let cur = self.entries.lock().get(name).map_or(0, |e| e.version);
        now_ms.max(cur + 1)
    }

    /// The entry known for `name`.
    pub fn get(&self, name: &str) -> Option<SchemaEntry> {
        self.entries.lock().get(name).cloned()
    }

    /// Folds `entry` into the one known for `name` ([`SchemaEntry::merged`]);
    /// returns the resulting entry if that changed anything.
    pub fn offer(
        &self,
        storage: &dyn Storage,
        name: &str,
        entry: SchemaEntry,
    ) -> Option<SchemaEntry> {
        let mut entries = self.entries.lock();
        let merged = match entries.get(name) {
            None => entry,
            Some(cur) => cur.merged(&entry)?,
        };
        entries.insert(name.to_string(), merged.clone());
        match serde_json::to_vec(&*entries) {
            Ok(json) => {
                let mut batch = Batch::new();
                batch.put(META_TABLE, Bytes::from_static(SCHEMA_KEY), json);
                if let Err(e) = storage.write(batch).and_then(|()| storage.sync()) {
                    tracing::error!(error = %e, "cannot persist the schema versions");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the schema versions"),
        }
        Some(merged)
    }

    /// The highest version of any entry (the node's schema version).
    pub fn version(&self) -> u64 {
        self.entries
            .lock()
            .values()
            .map(|e| e.version)
            .max()
            .unwrap_or(0)
    }

    /// Every entry as gossip keys.
    pub fn gossip_keys(&self) -> Vec<(String, String)> {
        self.entries
            .lock()
            .iter()
            .filter_map(|(name, e)| {
                serde_json::to_string(e)
                    .ok()
                    .map(|v| (format!("{GOSSIP_PREFIX}{name}"), v))
            })
            .collect()
    }

    /// The entries a peer gossips that are newer than ours.
    pub fn newer_in(&self, keys: &[(String, String)]) -> Vec<(String, SchemaEntry)> {
        let entries = self.entries.lock();
        keys.iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(GOSSIP_PREFIX)?;
                let e: SchemaEntry = serde_json::from_str(v).ok()?;
                let newer = entries.get(name).is_none_or(|cur| cur.merged(&e).is_some());
                newer.then(|| (name.to_string(), e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_storage::MemoryStorage;

    fn storage() -> MemoryStorage {
        let s = MemoryStorage::new();
        s.create_table(META_TABLE).expect("meta table");
        s
    }

    fn spec(name: &str) -> KeyspaceSpec {
        KeyspaceSpec::new(name, fulcrum_core::keyspace::Mode::Eventual)
    }

    #[test]
    fn only_newer_entries_replace_older_ones() {
        let storage = storage();
        let s = Schema::load(&storage, &[spec("default")]);
        let create = SchemaEntry {
            version: 10,
            spec: Some(spec("a")),
        };
        assert!(s.offer(&storage, "a", create.clone()).is_some());
        assert!(
            s.offer(&storage, "a", create.clone()).is_none(),
            "same version again"
        );
        let drop = SchemaEntry {
            version: 20,
            spec: None,
        };
        assert!(s.offer(&storage, "a", drop.clone()).is_some());
        assert!(
            s.offer(&storage, "a", create).is_none(),
            "an older create after a drop"
        );
        assert_eq!(s.version(), 20);
        assert_eq!(s.next_version("a", 5), 21);
        let reloaded = Schema::load(&storage, &[]);
        assert_eq!(reloaded.version(), 20, "persisted");
    }

    #[test]
    fn moved_groups_of_one_version_merge_by_epoch() {
        let storage = storage();
        let s = Schema::load(&storage, &[spec("default")]);
        let mut created = KeyspaceSpec::new("bank", fulcrum_core::keyspace::Mode::Strong);
        created.groups = vec![vec!["n1".into()], vec!["n1".into()]];
        let entry = |spec: &KeyspaceSpec| SchemaEntry {
            version: 10,
            spec: Some(spec.clone()),
        };
        s.offer(&storage, "bank", entry(&created));
        let mut moved0 = created.clone();
        moved0.set_group(0, vec!["n2".into()], 5);
        let mut moved1 = created.clone();
        moved1.set_group(1, vec!["n3".into()], 9);
        let peer = Schema::load(&storage, &[spec("default")]);
        peer.offer(&storage, "bank", entry(&moved1));
        assert_eq!(s.newer_in(&peer.gossip_keys()).len(), 1, "a newer group");

        assert!(s.offer(&storage, "bank", entry(&moved0)).is_some());
        let both = s
            .offer(&storage, "bank", entry(&moved1))
            .expect("group 1 is newer");
        let groups = both.spec.expect("a spec").groups;
        assert_eq!(groups, vec![vec!["n2".to_string()], vec!["n3".to_string()]]);
        assert!(
            s.offer(&storage, "bank", entry(&moved0)).is_none(),
            "old news"
        );
        assert!(s.newer_in(&peer.gossip_keys()).is_empty());
    }

    #[test]
    fn newer_in_picks_what_a_peer_knows_better() {
        let storage = storage();
        let s = Schema::load(&storage, &[spec("default")]);
        let peer = Schema::load(&storage, &[spec("default")]);
        peer.offer(
            &storage,
            "b",
            SchemaEntry {
                version: 3,
                spec: Some(spec("b")),
            },
        );
        let newer = s.newer_in(&peer.gossip_keys());
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].0, "b");
    }
}
