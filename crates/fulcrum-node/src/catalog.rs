//! The keyspace catalog: which keyspaces exist and their settings.
//!
//! Persisted in the `meta` table as `keyspace/<name>` → JSON with a format
//! version, synced before `KEYSPACE CREATE`/`DROP` answers. Each keyspace's
//! data lives in its own table, `data.<name>`. The `default` keyspace is
//! created at first start and cannot be dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use fulcrum_core::keyspace::{KeyspaceError, KeyspaceSpec, DEFAULT_KEYSPACE};
use fulcrum_storage::{Batch, Storage, StorageError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

pub const META_TABLE: &str = "meta";
const KEYSPACE_PREFIX: &str = "keyspace/";
const CATALOG_FORMAT: u32 = 1;

/// A keyspace as the command layer sees it.
#[derive(Debug)]
pub struct Keyspace {
    pub spec: KeyspaceSpec,
    /// The storage table holding this keyspace's records.
    pub table: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("keyspace '{0}' already exists")]
    Exists(String),
    #[error("keyspace '{0}' does not exist")]
    Missing(String),
    #[error("the default keyspace cannot be dropped")]
    DropDefault,
    #[error("{0}")]
    Invalid(#[from] KeyspaceError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("stored keyspace '{name}' is unreadable: {message}")]
    Corrupt { name: String, message: String },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    spec: KeyspaceSpec,
}

pub struct Catalog {
    storage: Arc<dyn Storage>,
    keyspaces: RwLock<BTreeMap<String, Arc<Keyspace>>>,
}

/// Prefix of every keyspace's data table.
pub const DATA_TABLE_PREFIX: &str = "data.";

pub fn data_table(name: &str) -> String {
    format!("{DATA_TABLE_PREFIX}{name}")
}

impl Catalog {
    /// Loads the catalog, creating the `default` keyspace on first start.
    ///
    /// # Errors
    /// Storage failures, or a stored entry this build cannot read.
    pub fn open(storage: Arc<dyn Storage>) -> Result<Catalog, CatalogError> {
        storage.create_table(META_TABLE)?;
        let prefix = KEYSPACE_PREFIX.as_bytes();
        let mut end = prefix.to_vec();
        end.push(0xFF);
        let rows = storage.scan(
            META_TABLE,
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Excluded(&end),
            usize::MAX,
        )?;
        let mut map = BTreeMap::new();
        for (key, value) in rows {
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let stored: Stored =
                serde_json::from_slice(&value).map_err(|e| CatalogError::Corrupt {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            if stored.format != CATALOG_FORMAT {
                return Err(CatalogError::Corrupt {
                    name,
                    message: format!("unknown catalog format {}", stored.format),
                });
            }
            let table = data_table(&stored.spec.name);
            map.insert(
                name,
                Arc::new(Keyspace {
                    spec: stored.spec,
                    table,
                }),
            );
        }
        let catalog = Catalog {
            storage,
            keyspaces: RwLock::new(map),
        };
        if catalog.get(DEFAULT_KEYSPACE).is_none() {
            catalog.create(KeyspaceSpec::default_keyspace())?;
        }
        Ok(catalog)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Keyspace>> {
        self.keyspaces.read().get(name).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Keyspace>> {
        self.keyspaces.read().values().cloned().collect()
    }

    /// Creates a keyspace durably.
    ///
    /// # Errors
    /// [`CatalogError::Exists`], an invalid spec, or storage failure.
    pub fn create(&self, spec: KeyspaceSpec) -> Result<Arc<Keyspace>, CatalogError> {
        spec.validate()?;
        let mut map = self.keyspaces.write();
        if map.contains_key(&spec.name) {
            return Err(CatalogError::Exists(spec.name));
        }
        let table = data_table(&spec.name);
        self.storage.create_table(&table)?;
        self.persist(&spec)?;
        let ks = Arc::new(Keyspace { spec, table });
        map.insert(ks.spec.name.clone(), ks.clone());
        Ok(ks)
    }

    /// Replaces the stored spec of an existing keyspace (same name, same
    /// data table) durably, e.g. with the moved voters of its Raft groups.
    /// Returns the keyspace as it was before.
    ///
    /// # Errors
    /// [`CatalogError::Missing`], an invalid spec, or storage failure.
    pub fn update(&self, spec: KeyspaceSpec) -> Result<Arc<Keyspace>, CatalogError> {
        spec.validate()?;
        let mut map = self.keyspaces.write();
        let Some(old) = map.get(&spec.name).cloned() else {
            return Err(CatalogError::Missing(spec.name));
        };
        self.persist(&spec)?;
        let ks = Arc::new(Keyspace {
            spec,
            table: old.table.clone(),
        });
        map.insert(ks.spec.name.clone(), ks);
        Ok(old)
    }

    /// Writes `spec` to the catalog table and syncs it.
    fn persist(&self, spec: &KeyspaceSpec) -> Result<(), CatalogError> {
        let stored = Stored {
            format: CATALOG_FORMAT,
            spec: spec.clone(),
        };
        let json = serde_json::to_vec(&stored).map_err(|e| CatalogError::Corrupt {
            name: spec.name.clone(),
            message: e.to_string(),
        })?;
        let mut batch = Batch::new();
        batch.put(META_TABLE, meta_key(&spec.name), json);
        self.storage.write(batch)?;
        self.storage.sync()?;
        Ok(())
    }

    /// Drops a keyspace and its data durably.
    ///
    /// # Errors
    /// [`CatalogError::Missing`], [`CatalogError::DropDefault`], or storage
    /// failure.
    pub fn drop_keyspace(&self, name: &str) -> Result<(), CatalogError> {
        if name == DEFAULT_KEYSPACE {
            return Err(CatalogError::DropDefault);
        }
        let mut map = self.keyspaces.write();
        let Some(ks) = map.get(name).cloned() else {
            return Err(CatalogError::Missing(name.to_string()));
        };
        // Forget the schema first and durably: a crash between the two steps
        // leaves an orphan table, never a keyspace without its data.
        let mut batch = Batch::new();
        batch.remove(META_TABLE, meta_key(name));
        self.storage.write(batch)?;
        self.storage.sync()?;
        map.remove(name);
        self.storage.drop_table(&ks.table)?;
        Ok(())
    }
}

fn meta_key(name: &str) -> Vec<u8> {
    format!("{KEYSPACE_PREFIX}{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_core::keyspace::Mode;
    use fulcrum_storage::{MemoryDisk, MemoryStorage};

    #[test]
    fn default_keyspace_exists_and_cannot_be_dropped() {
        let cat = Catalog::open(Arc::new(MemoryStorage::new())).unwrap();
        assert!(cat.get("default").is_some());
        assert!(matches!(
            cat.drop_keyspace("default"),
            Err(CatalogError::DropDefault)
        ));
    }

    #[test]
    fn keyspaces_survive_reopen_and_drop_is_durable() {
        let disk = MemoryDisk::new();
        {
            let storage = Arc::new(MemoryStorage::open(&disk).unwrap());
            let cat = Catalog::open(storage.clone()).unwrap();
            cat.create(KeyspaceSpec::new("bank", Mode::Strong)).unwrap();
            cat.create(KeyspaceSpec::new("tmp", Mode::Eventual))
                .unwrap();
            cat.drop_keyspace("tmp").unwrap();
            assert!(matches!(
                cat.create(KeyspaceSpec::new("bank", Mode::Strong)),
                Err(CatalogError::Exists(_))
            ));
            // DDL is synced before it answers: a crash keeps it.
            storage.crash();
        }
        let cat = Catalog::open(Arc::new(MemoryStorage::open(&disk).unwrap())).unwrap();
        let names: Vec<_> = cat.list().iter().map(|k| k.spec.name.clone()).collect();
        assert_eq!(names, vec!["bank", "default"]);
        assert_eq!(cat.get("bank").unwrap().spec.mode, Mode::Strong);
    }
}
