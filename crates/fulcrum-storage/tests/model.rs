//! Model tests: random sequences of writes, reads, scans, syncs, DDL,
//! clean restarts and (memory engine) crashes, checked step by step against
//! a `BTreeMap` oracle that keeps the live and the durable state apart.

// Test code: a panic is a test failure (clippy.toml only covers `#[test]`
// functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use fulcrum_storage::{
    Batch, FjallConfig, FjallStorage, MemoryDisk, MemoryStorage, Storage, StorageError,
};
use proptest::prelude::*;

const TABLES: [&str; 3] = ["t0", "t.1", "data.x y"];
/// Tables that exist when a case starts; the others come and go.
const INITIAL_TABLES: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>, Vec<u8>),
    Remove(usize, Vec<u8>),
}

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<Op>),
    Get(usize, Vec<u8>),
    Scan(usize, Bound<Vec<u8>>, Bound<Vec<u8>>, usize),
    Sync,
    CreateTable(usize),
    DropTable(usize),
    /// Clean close and reopen.
    Reopen,
    /// Power loss keeping the oldest N unsynced batches (memory only).
    Crash(usize),
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct Oracle {
    live: BTreeMap<String, Model>,
    durable: BTreeMap<String, Model>,
    /// Batches since the last sync, as the memory engine keeps them.
    unsynced: Vec<Vec<Op>>,
}

fn apply(tables: &mut BTreeMap<String, Model>, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(t, k, v) => {
                if let Some(m) = tables.get_mut(TABLES[*t]) {
                    m.insert(k.clone(), v.clone());
                }
            }
            Op::Remove(t, k) => {
                if let Some(m) = tables.get_mut(TABLES[*t]) {
                    m.remove(k);
                }
            }
        }
    }
}

fn op_table(op: &Op) -> usize {
    match op {
        Op::Put(t, ..) | Op::Remove(t, _) => *t,
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0x00u8), Just(0x01), Just(b'a'), Just(b'b'), Just(0xFF)],
        0..4,
    )
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..12),
        // Above the tiny configuration's blob threshold (512 bytes).
        1 => (600usize..3000, any::<u8>()).prop_map(|(len, b)| vec![b; len]),
    ]
}

fn table() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..INITIAL_TABLES, 1 => Just(2usize)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (table(), key(), value()).prop_map(|(t, k, v)| Op::Put(t, k, v)),
        1 => (table(), key()).prop_map(|(t, k)| Op::Remove(t, k)),
    ]
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
    ]
}

fn step(crashes: bool) -> impl Strategy<Value = Step> {
    let crash_weight = if crashes { 2 } else { 0 };
    prop_oneof![
        12 => prop::collection::vec(op(), 1..5).prop_map(Step::Write),
        4 => (table(), key()).prop_map(|(t, k)| Step::Get(t, k)),
        4 => (table(), bound(), bound(), prop_oneof![0usize..4, Just(usize::MAX)])
            .prop_map(|(t, s, e, l)| Step::Scan(t, s, e, l)),
        2 => Just(Step::Sync),
        1 => (0..TABLES.len()).prop_map(Step::CreateTable),
        1 => (0..TABLES.len()).prop_map(Step::DropTable),
        1 => Just(Step::Reopen),
        crash_weight => (0usize..3).prop_map(Step::Crash),
    ]
}

/// The engine under test, reopenable over the same durable state.
trait Engine {
    fn open(&mut self) -> Arc<dyn Storage>;
    /// Power loss keeping the oldest `keep` unsynced batches.
    fn crash(&mut self, keep: usize);
}

struct Memory {
    disk: MemoryDisk,
    current: Option<Arc<MemoryStorage>>,
}

impl Engine for Memory {
    fn open(&mut self) -> Arc<dyn Storage> {
        let s = Arc::new(MemoryStorage::open(&self.disk).unwrap());
        self.current = Some(s.clone());
        s
    }
    fn crash(&mut self, keep: usize) {
        self.current.take().unwrap().crash_keeping(keep);
    }
}

struct Fjall {
    dir: tempfile::TempDir,
}

impl Engine for Fjall {
    fn open(&mut self) -> Arc<dyn Storage> {
        Arc::new(FjallStorage::open(self.dir.path(), FjallConfig::tiny()).unwrap())
    }
    fn crash(&mut self, _keep: usize) {
        unreachable!("fjall cannot crash in-process")
    }
}

fn in_range(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let above = match start {
        Bound::Included(s) => key >= &s[..],
        Bound::Excluded(s) => key > &s[..],
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= &e[..],
        Bound::Excluded(e) => key < &e[..],
        Bound::Unbounded => true,
    };
    above && below
}

fn scan_all(s: &dyn Storage, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.scan(table, Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn check_everything(s: &dyn Storage, oracle: &Oracle) -> Result<(), TestCaseError> {
    let tables: Vec<String> = oracle.live.keys().cloned().collect();
    prop_assert_eq!(s.tables().unwrap(), tables);
    for (name, model) in &oracle.live {
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(scan_all(s, name), want, "table {}", name);
    }
    Ok(())
}

fn run(engine: &mut dyn Engine, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut s = engine.open();
    let mut oracle = Oracle::default();
    for name in &TABLES[..INITIAL_TABLES] {
        s.create_table(name).unwrap();
        oracle.live.insert(name.to_string(), Model::new());
        oracle.durable.insert(name.to_string(), Model::new());
    }
    for step in steps {
        match step {
            Step::Write(ops) => {
                let mut batch = Batch::new();
                for op in &ops {
                    match op {
                        Op::Put(t, k, v) => {
                            batch.put(TABLES[*t], Bytes::from(k.clone()), Bytes::from(v.clone()))
                        }
                        Op::Remove(t, k) => batch.remove(TABLES[*t], Bytes::from(k.clone())),
                    }
                }
                let missing = ops
                    .iter()
                    .map(|op| TABLES[op_table(op)])
                    .find(|t| !oracle.live.contains_key(*t));
                match (s.write(batch), missing) {
                    (Ok(()), None) => {
                        apply(&mut oracle.live, &ops);
                        oracle.unsynced.push(ops);
                    }
                    (Err(StorageError::NoSuchTable(t)), Some(m)) => prop_assert_eq!(t, m),
                    (result, missing) => {
                        prop_assert!(
                            false,
                            "write gave {:?}, missing table {:?}",
                            result,
                            missing
                        )
                    }
                }
            }
            Step::Get(t, k) => {
                let got = s.get(TABLES[t], &k);
                match oracle.live.get(TABLES[t]) {
                    Some(model) => {
                        prop_assert_eq!(got.unwrap().map(|v| v.to_vec()), model.get(&k).cloned())
                    }
                    None => prop_assert!(matches!(got, Err(StorageError::NoSuchTable(_)))),
                }
            }
            Step::Scan(t, start, end, limit) => {
                let got = s.scan(
                    TABLES[t],
                    start.as_ref().map(|k| &k[..]),
                    end.as_ref().map(|k| &k[..]),
                    limit,
                );
                match oracle.live.get(TABLES[t]) {
                    Some(model) => {
                        let want: Vec<_> = model
                            .iter()
                            .filter(|(k, _)| in_range(k, &start, &end))
                            .take(limit)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let got: Vec<_> = got
                            .unwrap()
                            .into_iter()
                            .map(|(k, v)| (k.to_vec(), v.to_vec()))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                    None => prop_assert!(matches!(got, Err(StorageError::NoSuchTable(_)))),
                }
            }
            Step::Sync => {
                s.sync().unwrap();
                oracle.durable = oracle.live.clone();
                oracle.unsynced.clear();
            }
            Step::CreateTable(t) => {
                s.create_table(TABLES[t]).unwrap();
                oracle.live.entry(TABLES[t].to_string()).or_default();
                oracle.durable.entry(TABLES[t].to_string()).or_default();
            }
            Step::DropTable(t) => {
                s.drop_table(TABLES[t]).unwrap();
                oracle.live.remove(TABLES[t]);
                oracle.durable.remove(TABLES[t]);
                for ops in &mut oracle.unsynced {
                    ops.retain(|op| op_table(op) != t);
                }
                oracle.unsynced.retain(|ops| !ops.is_empty());
            }
            Step::Reopen => {
                s.close().unwrap();
                drop(s);
                s = engine.open();
                oracle.durable = oracle.live.clone();
                oracle.unsynced.clear();
                check_everything(&*s, &oracle)?;
            }
            Step::Crash(keep) => {
                engine.crash(keep);
                drop(s);
                s = engine.open();
                for ops in oracle.unsynced.iter().take(keep) {
                    apply(&mut oracle.durable, ops);
                }
                oracle.live = oracle.durable.clone();
                oracle.unsynced.clear();
                check_everything(&*s, &oracle)?;
            }
        }
    }
    check_everything(&*s, &oracle)?;
    s.close().unwrap();
    drop(s);
    let s = engine.open();
    check_everything(&*s, &oracle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn memory_engine_matches_the_model(steps in prop::collection::vec(step(true), 1..60)) {
        let mut engine = Memory { disk: MemoryDisk::new(), current: None };
        run(&mut engine, steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn fjall_engine_matches_the_model(steps in prop::collection::vec(step(false), 1..60)) {
        let mut engine = Fjall { dir: tempfile::tempdir().unwrap() };
        run(&mut engine, steps)?;
    }
}
