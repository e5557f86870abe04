//! [`CachedStorage`]: a bounded read cache in front of any [`Storage`], for
//! the hot keys of chosen tables.
//!
//! Why: a write to an eventual keyspace must read the key's stored record
//! first (dotted version vectors merge with it), and in an LSM tree that
//! read — a memtable skip-list search, then Bloom filters and SSTables — costs
//! as much as the write itself. The cache keeps the newest values of
//! recently written or read keys, so a read-modify-write of a hot key and a
//! GET of it skip the tree.
//!
//! Coherence (the cache never answers older than the engine would at that
//! moment), with no help from the caller's locks:
//! - Keys are spread over striped mutexes. Each stripe has a generation,
//!   bumped by every write touching the stripe (before and after it reaches
//!   the engine), and a count of writes in flight.
//! - A write forgets its keys' entries, bumps the generation and notes it,
//!   notes whether another write was in flight, counts itself in, writes
//!   through to the engine, then counts itself out and installs its values
//!   only if no other write was in flight when it started and none started
//!   since (the generation is still its own) — then its write is the last
//!   one the engine applied to those keys. Otherwise the entries stay empty.
//!   Either way it bumps the generation again.
//! - A read that misses notes the generation and whether a write was in
//!   flight, reads the engine, and installs what it read only if no write was
//!   in flight and the generation has not moved: no write overlapped the
//!   read.
//! - `drop_table` forgets the table's entries before and after the drop.
//!
//! So an entry always holds what the engine holds, from the moment it is
//! installed until a write to its stripe begins; a write's value is visible
//! in the cache no earlier than in the engine. Scans, syncs and stats go to
//! the engine.
//!
//! Bounds: values (and keys) longer than `max_entry_bytes` are not cached;
//! each stripe holds at most `max_bytes / STRIPES` bytes of entries (keys,
//! values, table names and a fixed overhead each) and evicts its oldest
//! entries first. Cached values are copies, so a cached value never pins a
//! larger buffer (a network read) it was sliced from.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{StorageError, StorageResult};
use crate::traits::{Batch, BatchOp, ScanItem, Storage, TableStats};

const STRIPES: usize = 256;

/// Bookkeeping bytes charged per entry on top of its key, value and table
/// name.
const ENTRY_OVERHEAD: usize = 64;

/// What [`CachedStorage`] caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Total bytes of entries (keys, values, table names, overhead).
    pub max_bytes: usize,
    /// Longest key or value that is cached.
    pub max_entry_bytes: usize,
    /// Only tables whose name starts with this are cached (`""`: all).
    pub table_prefix: String,
}

impl Default for CacheConfig {
    /// 32 MiB, entries up to 4 KiB, every table.
    fn default() -> Self {
        CacheConfig {
            max_bytes: 32 * 1024 * 1024,
            max_entry_bytes: 4 * 1024,
            table_prefix: String::new(),
        }
    }
}

/// Counters of a [`CachedStorage`], for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads of cached tables that went to the engine.
    pub misses: u64,
}

/// A read cache over another engine; see the module docs.
pub struct CachedStorage {
    inner: Arc<dyn Storage>,
    config: CacheConfig,
    stripe_budget: usize,
    stripes: Box<[Mutex<Stripe>]>,
    hasher: RandomState,
    closed: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Stripe {
    generation: u64,
    /// Writes to this stripe between their start and their end.
    in_flight: u32,
    /// Entries by the 64-bit hash of (table, key); a short list per hash
    /// (two keys share one only by a hash collision).
    entries: HashMap<u64, Vec<Entry>>,
    /// Install order, oldest first, as (hash, seq); a pair whose entry was
    /// forgotten or installed again since is stale and skipped.
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
    len: usize,
    bytes: usize,
}

struct Entry {
    table: Box<str>,
    key: Bytes,
    /// `None`: the key is known to be absent.
    value: Option<Bytes>,
    /// When it was installed (its pair in `Stripe::order`).
    seq: u64,
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + self.table.len()
            + self.key.len()
            + self.value.as_ref().map_or(0, Bytes::len)
    }
}

impl Stripe {
    fn get(&self, hash: u64, table: &str, key: &[u8]) -> Option<&Entry> {
        self.entries
            .get(&hash)?
            .iter()
            .find(|e| &*e.key == key && &*e.table == table)
    }

    fn forget(&mut self, hash: u64, table: &str, key: &[u8]) {
        let Some(list) = self.entries.get_mut(&hash) else {
            return;
        };
        if let Some(i) = list
            .iter()
            .position(|e| &*e.key == key && &*e.table == table)
        {
            let e = list.swap_remove(i);
            if list.is_empty() {
                self.entries.remove(&hash);
            }
            self.len -= 1;
            self.bytes -= e.cost();
        }
    }

    /// Installs `entry` as the newest, evicting the oldest over `budget`.
    fn install(&mut self, hash: u64, mut entry: Entry, budget: usize) {
        self.forget(hash, &entry.table, &entry.key);
        let cost = entry.cost();
        if cost > budget {
            return;
        }
        while self.bytes + cost > budget && self.evict_oldest() {}
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((hash, entry.seq));
        self.entries.entry(hash).or_default().push(entry);
        self.len += 1;
        self.bytes += cost;
        if self.order.len() > 2 * self.len + 64 {
            // Mostly stale pairs (keys written over and over): drop them.
            let entries = &self.entries;
            self.order.retain(|(h, seq)| {
                entries
                    .get(h)
                    .is_some_and(|list| list.iter().any(|e| e.seq == *seq))
            });
        }
    }

    /// Removes the oldest live entry; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((hash, seq)) = self.order.pop_front() {
            let Some(list) = self.entries.get_mut(&hash) else {
                continue;
            };
            if let Some(i) = list.iter().position(|e| e.seq == seq) {
                let e = list.swap_remove(i);
                if list.is_empty() {
                    self.entries.remove(&hash);
                }
                self.len -= 1;
                self.bytes -= e.cost();
                return true;
            }
        }
        false
    }

    fn forget_table(&mut self, table: &str) {
        self.generation += 1;
        for list in self.entries.values_mut() {
            list.retain(|e| &*e.table != table);
        }
        self.entries.retain(|_, list| !list.is_empty());
        self.len = self.entries.values().map(Vec::len).sum();
        self.bytes = self.entries.values().flatten().map(Entry::cost).sum();
    }

    fn clear(&mut self) {
        self.generation += 1;
        self.entries.clear();
        self.order.clear();
        self.len = 0;
        self.bytes = 0;
    }
}

/// A write's start on one stripe.
struct Start {
    stripe: usize,
    generation: u64,
    /// No other write was in flight on the stripe.
    alone: bool,
}

/// One cached key of a batch on its way through `write`.
struct Pending {
    stripe: usize,
    hash: u64,
    table: Box<str>,
    key: Bytes,
    value: Option<Bytes>,
    /// The value is too long to cache: only invalidate.
    uncacheable: bool,
}

impl CachedStorage {
    /// A cache over `inner`.
    pub fn new(inner: Arc<dyn Storage>, config: CacheConfig) -> CachedStorage {
        CachedStorage {
            inner,
            stripe_budget: config.max_bytes / STRIPES,
            config,
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(Stripe::default()))
                .collect(),
            hasher: RandomState::new(),
            closed: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The engine under the cache.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Hits and misses so far.
    pub fn stats_counters(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Forgets every entry (as a process crash would).
    pub fn clear(&self) {
        for stripe in self.stripes.iter() {
            stripe.lock().clear();
        }
    }

    fn cached_table(&self, table: &str) -> bool {
        table.starts_with(self.config.table_prefix.as_str())
    }

    /// The stripe of (table, key) and the hash that finds it there.
    fn slot_of(&self, table: &str, key: &[u8]) -> (usize, u64) {
        let mut h = self.hasher.build_hasher();
        h.write(table.as_bytes());
        h.write_u8(0xff);
        h.write(key);
        let hash = h.finish();
        ((hash as usize) % STRIPES, hash)
    }

    fn forget_table(&self, table: &str) {
        for stripe in self.stripes.iter() {
            stripe.lock().forget_table(table);
        }
    }
}

impl Storage for CachedStorage {
    fn create_table(&self, table: &str) -> StorageResult<()> {
        self.inner.create_table(table)
    }

    fn drop_table(&self, table: &str) -> StorageResult<()> {
        self.forget_table(table);
        let dropped = self.inner.drop_table(table);
        // A read that overlapped the drop may have installed an old value.
        self.forget_table(table);
        dropped
    }

    fn tables(&self) -> StorageResult<Vec<String>> {
        self.inner.tables()
    }

    fn get(&self, table: &str, key: &[u8]) -> StorageResult<Option<Bytes>> {
        if !self.cached_table(table) {
            return self.inner.get(table, key);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let (index, hash) = self.slot_of(table, key);
        let noted = {
            let stripe = self.stripes[index].lock();
            if let Some(entry) = stripe.get(hash, table, key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(entry.value.clone());
            }
            (stripe.in_flight == 0).then_some(stripe.generation)
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = self.inner.get(table, key)?;
        let fits = key.len() <= self.config.max_entry_bytes
            && value
                .as_ref()
                .is_none_or(|v| v.len() <= self.config.max_entry_bytes);
        if let (Some(generation), true) = (noted, fits) {
            let mut stripe = self.stripes[index].lock();
            if stripe.in_flight == 0 && stripe.generation == generation {
                stripe.install(
                    hash,
                    Entry {
                        table: table.into(),
                        key: Bytes::copy_from_slice(key),
                        value: value.as_deref().map(Bytes::copy_from_slice),
                        seq: 0,
                    },
                    self.stripe_budget,
                );
            }
        }
        Ok(value)
    }

    fn write(&self, batch: Batch) -> StorageResult<()> {
        let mut pending = Vec::new();
        for op in &batch.ops {
            let (table, key, value) = match op {
                BatchOp::Put { table, key, value } => (table, key, Some(value)),
                BatchOp::Remove { table, key } => (table, key, None),
            };
            if !self.cached_table(table) {
                continue;
            }
            let uncacheable = key.len() > self.config.max_entry_bytes
                || value.is_some_and(|v| v.len() > self.config.max_entry_bytes);
            let (stripe, hash) = self.slot_of(table, key);
            pending.push(Pending {
                stripe,
                hash,
                table: table.as_str().into(),
                key: if uncacheable {
                    key.clone()
                } else {
                    Bytes::copy_from_slice(key)
                },
                value: match value {
                    Some(v) if !uncacheable => Some(Bytes::copy_from_slice(v)),
                    _ => None,
                },
                uncacheable,
            });
        }
        // Grouped by stripe, batch order kept within a stripe (a stable
        // sort), so that each stripe is visited once.
        pending.sort_by_key(|p| p.stripe);
        let groups: Vec<&[Pending]> = pending.chunk_by(|a, b| a.stripe == b.stripe).collect();
        // Once per stripe, with all of the batch's keys there: forget, bump,
        // note the generation and whether the write starts alone.
        let mut started: Vec<Start> = Vec::with_capacity(groups.len());
        for group in &groups {
            let mut stripe = self.stripes[group[0].stripe].lock();
            for q in group.iter() {
                stripe.forget(q.hash, &q.table, &q.key);
            }
            stripe.generation += 1;
            started.push(Start {
                stripe: group[0].stripe,
                generation: stripe.generation,
                alone: stripe.in_flight == 0,
            });
            stripe.in_flight += 1;
        }
        let written = self.inner.write(batch);
        for (start, group) in started.iter().zip(&groups) {
            let mut stripe = self.stripes[start.stripe].lock();
            stripe.in_flight -= 1;
            let install = written.is_ok() && start.alone && stripe.generation == start.generation;
            // In batch order, so the last op on a key wins, as in the engine.
            for p in group.iter() {
                if install && !p.uncacheable {
                    stripe.install(
                        p.hash,
                        Entry {
                            table: p.table.clone(),
                            key: p.key.clone(),
                            value: p.value.clone(),
                            seq: 0,
                        },
                        self.stripe_budget,
                    );
                } else {
                    stripe.forget(p.hash, &p.table, &p.key);
                }
            }
            // Reads that overlapped this write must not install.
            stripe.generation += 1;
        }
        written?;
        Ok(())
    }

    fn scan(
        &self,
        table: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<ScanItem>> {
        self.inner.scan(table, start, end, limit)
    }

    fn sync(&self) -> StorageResult<()> {
        self.inner.sync()
    }

    fn stats(&self, table: &str) -> StorageResult<TableStats> {
        self.inner.stats(table)
    }

    fn close(&self) -> StorageResult<()> {
        self.closed.store(true, Ordering::Release);
        self.clear();
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::MemoryStorage;

    fn cached(max_bytes: usize) -> (Arc<MemoryStorage>, CachedStorage) {
        let memory = Arc::new(MemoryStorage::new());
        memory.create_table("data.t").unwrap();
        memory.create_table("other").unwrap();
        let cache = CachedStorage::new(
            memory.clone(),
            CacheConfig {
                max_bytes,
                max_entry_bytes: 64,
                table_prefix: "data.".to_string(),
            },
        );
        (memory, cache)
    }

    fn put(s: &dyn Storage, table: &str, key: &str, value: &[u8]) {
        let mut batch = Batch::new();
        batch.put(table, key.to_string(), value.to_vec());
        s.write(batch).unwrap();
    }

    #[test]
    fn reads_after_a_write_are_answered_from_the_cache() {
        let (_, cache) = cached(1 << 20);
        put(&cache, "data.t", "k", b"v1");
        assert_eq!(
            cache.get("data.t", b"k").unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        assert_eq!(cache.stats_counters(), CacheStats { hits: 1, misses: 0 });
        // A missing key is cached as missing after one engine read.
        assert_eq!(cache.get("data.t", b"nope").unwrap(), None);
        assert_eq!(cache.get("data.t", b"nope").unwrap(), None);
        assert_eq!(cache.stats_counters(), CacheStats { hits: 2, misses: 1 });
        let mut batch = Batch::new();
        batch.remove("data.t", "k");
        cache.write(batch).unwrap();
        assert_eq!(cache.get("data.t", b"k").unwrap(), None);
        assert_eq!(cache.stats_counters().hits, 3);
    }

    #[test]
    fn other_tables_and_long_values_go_to_the_engine() {
        let (memory, cache) = cached(1 << 20);
        put(&cache, "other", "k", b"v");
        put(&cache, "data.t", "long", &[1u8; 65]);
        assert_eq!(
            cache.get("other", b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            cache.get("data.t", b"long").unwrap().as_deref(),
            Some(&[1u8; 65][..])
        );
        assert_eq!(cache.stats_counters(), CacheStats { hits: 0, misses: 1 });
        // Overwriting a cached key with a long value drops the old entry.
        put(&cache, "data.t", "k", b"short");
        put(&cache, "data.t", "k", &[2u8; 65]);
        assert_eq!(
            cache.get("data.t", b"k").unwrap(),
            memory.get("data.t", b"k").unwrap()
        );
    }

    #[test]
    fn dropping_a_table_forgets_its_entries() {
        let (_, cache) = cached(1 << 20);
        put(&cache, "data.t", "k", b"v");
        assert!(cache.get("data.t", b"k").unwrap().is_some());
        cache.drop_table("data.t").unwrap();
        assert!(matches!(
            cache.get("data.t", b"k"),
            Err(StorageError::NoSuchTable(_))
        ));
        cache.create_table("data.t").unwrap();
        assert_eq!(cache.get("data.t", b"k").unwrap(), None);
    }

    fn entry(key: &str) -> Entry {
        Entry {
            table: "t".into(),
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Some(Bytes::from_static(b"v")),
            seq: 0,
        }
    }

    #[test]
    fn a_stripe_evicts_in_install_order_and_a_reinstall_counts_as_new() {
        // Hash of a one-letter key: its letter; "x" and "y" collide on 7.
        let hash = |k: &str| match k {
            "x" | "y" => 7,
            k => u64::from(k.as_bytes()[0]),
        };
        let mut s = Stripe::default();
        let cost = entry("a").cost();
        let budget = 3 * cost;
        for k in ["a", "b", "c"] {
            s.install(hash(k), entry(k), budget);
        }
        s.install(hash("a"), entry("a"), budget);
        s.install(hash("d"), entry("d"), budget);
        assert!(s.get(hash("b"), "t", b"b").is_none(), "b was the oldest");
        for k in ["a", "c", "d"] {
            assert!(s.get(hash(k), "t", k.as_bytes()).is_some(), "{k} kept");
        }
        assert_eq!((s.len, s.bytes), (3, 3 * cost));

        // A forgotten entry frees its room; eviction skips its stale pair.
        s.forget(hash("c"), "t", b"c");
        s.install(hash("e"), entry("e"), budget);
        s.install(hash("f"), entry("f"), budget);
        assert!(
            s.get(hash("a"), "t", b"a").is_none(),
            "a was the oldest left"
        );
        for k in ["d", "e", "f"] {
            assert!(s.get(hash(k), "t", k.as_bytes()).is_some(), "{k} kept");
        }
        assert_eq!((s.len, s.bytes), (3, 3 * cost));

        // Keys whose hashes collide live side by side.
        s.install(7, entry("x"), budget);
        s.install(7, entry("y"), budget);
        assert!(s.get(7, "t", b"x").is_some() && s.get(7, "t", b"y").is_some());
        s.forget(7, "t", b"x");
        assert!(s.get(7, "t", b"x").is_none() && s.get(7, "t", b"y").is_some());
        assert!(s.get(7, "other", b"y").is_none(), "tables are told apart");

        // Rewriting one key over and over keeps the order queue short.
        for _ in 0..1000 {
            s.install(hash("d"), entry("d"), budget);
        }
        assert!(s.order.len() <= 2 * s.len + 64, "{} pairs", s.order.len());
        s.clear();
        assert_eq!((s.len, s.bytes, s.order.len()), (0, 0, 0));
    }

    #[test]
    fn entries_stay_within_the_budget() {
        let budget = STRIPES * 512;
        let (memory, cache) = cached(budget);
        for i in 0..10_000u32 {
            put(&cache, "data.t", &format!("key-{i}"), &i.to_be_bytes());
        }
        let used: usize = cache.stripes.iter().map(|s| s.lock().bytes).sum();
        assert!(used <= budget, "{used} bytes cached, budget {budget}");
        let entries: usize = cache.stripes.iter().map(|s| s.lock().len).sum();
        assert!(entries > 0 && entries < 10_000, "{entries} entries");
        for i in (0..10_000u32).step_by(7) {
            let key = format!("key-{i}");
            assert_eq!(
                cache.get("data.t", key.as_bytes()).unwrap(),
                memory.get("data.t", key.as_bytes()).unwrap()
            );
        }
    }

    /// Writers race on a few keys (two writers per key, no lock between
    /// them) while readers read through the cache. A reader never sees a
    /// key go backwards within one writer's sequence, and once everyone
    /// stopped, the cache answers exactly what the engine holds.
    #[test]
    fn racing_writers_and_readers_leave_the_cache_coherent() {
        const KEYS: usize = 4;
        const WRITES: u32 = 3000;
        let (memory, cache) = cached(1 << 20);
        let cache = Arc::new(cache);
        let done = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..2 * KEYS {
            let cache = cache.clone();
            writers.push(std::thread::spawn(move || {
                let key = format!("k{}", w % KEYS);
                for n in 1..=WRITES {
                    // value: writer id, sequence number
                    let mut value = vec![w as u8];
                    value.extend_from_slice(&n.to_be_bytes());
                    let mut batch = Batch::new();
                    batch.put("data.t", key.clone(), value);
                    if n % 5 == 0 {
                        batch.put("data.t", format!("side{w}"), n.to_be_bytes().to_vec());
                    }
                    cache.write(batch).unwrap();
                }
            }));
        }
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (cache, done) = (cache.clone(), done.clone());
            readers.push(std::thread::spawn(move || {
                // Highest sequence seen per (key, writer).
                let mut seen = [[0u32; 2 * KEYS]; KEYS];
                while !done.load(Ordering::Acquire) {
                    for (k, seen) in seen.iter_mut().enumerate() {
                        let Some(v) = cache.get("data.t", format!("k{k}").as_bytes()).unwrap()
                        else {
                            continue;
                        };
                        let w = usize::from(v[0]);
                        let n = u32::from_be_bytes(v[1..5].try_into().unwrap());
                        assert!(n >= seen[w], "k{k}: writer {w}'s {n} after {}", seen[w]);
                        seen[w] = n;
                    }
                }
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
        for k in 0..KEYS {
            let key = format!("k{k}");
            assert_eq!(
                cache.get("data.t", key.as_bytes()).unwrap(),
                memory.get("data.t", key.as_bytes()).unwrap(),
                "{key}"
            );
        }
        for w in 0..2 * KEYS {
            let key = format!("side{w}");
            assert_eq!(
                cache.get("data.t", key.as_bytes()).unwrap(),
                memory.get("data.t", key.as_bytes()).unwrap(),
                "{key}"
            );
        }
    }
}
