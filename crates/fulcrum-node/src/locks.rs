//! Striped per-key locks for read-modify-write commands on one node.
//!
//! Two connections doing `INCR k` at once must not both read the old value.
//! A fixed array of mutexes indexed by a hash of (keyspace, key) serializes
//! writers of the same key while writers of different keys rarely contend.
//! Guards are never held across an `.await`.

use std::hash::{BuildHasher, Hasher};

use parking_lot::{Mutex, MutexGuard};

const STRIPES: usize = 1024;

pub struct KeyLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: foldhash::fast::RandomState,
}

impl KeyLocks {
    pub fn new() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Locks the stripe of `key` in `table`.
    pub fn lock(&self, table: &str, key: &[u8]) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(table, key)].lock()
    }

    /// Locks the stripes of several keys in ascending stripe order, so two
    /// multi-key writers cannot deadlock.
    pub fn lock_many<'a>(&'a self, table: &str, keys: &[&[u8]]) -> Vec<MutexGuard<'a, ()>> {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.stripe(table, k)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| self.stripes[i].lock()).collect()
    }

    fn stripe(&self, table: &str, key: &[u8]) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(table.as_bytes());
        h.write(key);
        (h.finish() as usize) % STRIPES
    }
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self::new()
    }
}
