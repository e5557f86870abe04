//! The conformance suite: the [`Storage`] contract as executable checks.
//! Every engine must pass every check; each takes a fresh [`Harness`].
//!
//! Checks that need a crash return early on harnesses that cannot crash.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::Harness;
use crate::{Batch, Storage, StorageError, MAX_KEY_LEN, MAX_TABLE_NAME_LEN, MAX_VALUE_LEN};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn put(s: &dyn Storage, table: &str, key: &[u8], value: &[u8]) {
    let mut batch = Batch::new();
    batch.put(
        table,
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(value),
    );
    s.write(batch).expect("put");
}

fn remove(s: &dyn Storage, table: &str, key: &[u8]) {
    let mut batch = Batch::new();
    batch.remove(table, Bytes::copy_from_slice(key));
    s.write(batch).expect("remove");
}

fn get(s: &dyn Storage, table: &str, key: &[u8]) -> Option<Vec<u8>> {
    s.get(table, key).expect("get").map(|v| v.to_vec())
}

fn scan_all(s: &dyn Storage, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.scan(table, Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn model_items(model: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Closes `s` (a clean shutdown) and opens the engine again.
fn reopen(h: &mut dyn Harness, s: Arc<dyn Storage>) -> Arc<dyn Storage> {
    s.close().expect("close");
    drop(s);
    h.open()
}

fn assert_no_such_table<T: std::fmt::Debug>(result: Result<T, StorageError>, table: &str) {
    match result {
        Err(StorageError::NoSuchTable(t)) => assert_eq!(t, table),
        other => panic!("expected NoSuchTable({table}), got {other:?}"),
    }
}

fn in_range(key: &[u8], start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    let above = match start {
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
        Bound::Unbounded => true,
    };
    above && below
}

/// A value of `len` bytes that differs from others of the same length:
/// 4 KiB of noise, repeated with a varying rotation (cheap to build in
/// debug builds, not trivially compressible).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    let chunk: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    let mut out = Vec::with_capacity(len + chunk.len());
    let mut round = 0usize;
    while out.len() < len {
        let cut = (round * 7 + usize::from(seed)) % chunk.len();
        out.extend_from_slice(&chunk[cut..]);
        out.extend_from_slice(&chunk[..cut]);
        round += 1;
    }
    out.truncate(len);
    out
}

/// Create, list (sorted), create again (no-op), drop, drop a missing table.
pub fn tables_lifecycle(h: &mut dyn Harness) {
    let s = h.open();
    assert_eq!(s.tables().expect("tables"), Vec::<String>::new());
    let names = [
        "meta",
        "data.default",
        "expiry",
        "a b/c",
        "ключ",
        "$x#",
        "data.Z",
    ];
    for name in names {
        s.create_table(name).expect("create");
    }
    put(&*s, "meta", b"k", b"v");
    s.create_table("meta").expect("create an existing table");
    assert_eq!(
        get(&*s, "meta", b"k"),
        Some(b"v".to_vec()),
        "re-create kept data"
    );
    let mut sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    sorted.sort();
    assert_eq!(s.tables().expect("tables"), sorted);

    s.drop_table("expiry").expect("drop");
    s.drop_table("expiry").expect("drop a missing table");
    s.drop_table("never-created").expect("drop a missing table");
    sorted.retain(|n| n != "expiry");
    assert_eq!(s.tables().expect("tables"), sorted);

    let s = reopen(h, s);
    assert_eq!(s.tables().expect("tables after reopen"), sorted);
    assert_eq!(get(&*s, "meta", b"k"), Some(b"v".to_vec()));
}

/// Empty and too-long names are refused with `BadTableName`.
pub fn bad_table_names(h: &mut dyn Harness) {
    let s = h.open();
    let longest = "x".repeat(MAX_TABLE_NAME_LEN);
    let longest_multibyte = "€".repeat(MAX_TABLE_NAME_LEN / 3);
    s.create_table(&longest).expect("longest name");
    s.create_table(&longest_multibyte)
        .expect("longest multi-byte name");
    for bad in [String::new(), "x".repeat(MAX_TABLE_NAME_LEN + 1)] {
        match s.create_table(&bad) {
            Err(StorageError::BadTableName(name)) => assert_eq!(name, bad),
            other => panic!("expected BadTableName, got {other:?}"),
        }
        assert!(matches!(
            s.drop_table(&bad),
            Err(StorageError::BadTableName(_))
        ));
    }
    let s = reopen(h, s);
    let mut want = vec![longest, longest_multibyte];
    want.sort();
    assert_eq!(s.tables().expect("tables"), want);
}

/// Every data operation on a missing table fails with `NoSuchTable`, and a
/// batch touching one changes nothing.
pub fn missing_table_errors(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    assert_no_such_table(s.get("nope", b"k"), "nope");
    assert_no_such_table(
        s.scan("nope", Bound::Unbounded, Bound::Unbounded, 10),
        "nope",
    );
    assert_no_such_table(s.stats("nope"), "nope");
    let mut batch = Batch::new();
    batch.put("t", "k", "v");
    batch.put("nope", "k", "v");
    assert_no_such_table(s.write(batch), "nope");
    let mut batch = Batch::new();
    batch.remove("nope", "k");
    assert_no_such_table(s.write(batch), "nope");
    assert_eq!(get(&*s, "t", b"k"), None, "failed batch applied partly");

    s.drop_table("t").expect("drop");
    assert_no_such_table(s.get("t", b"k"), "t");
    let mut batch = Batch::new();
    batch.put("t", "k", "v");
    assert_no_such_table(s.write(batch), "t");
}

/// Point operations: put, overwrite, get, remove, remove of a missing key,
/// empty batch.
pub fn get_put_remove(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    assert_eq!(get(&*s, "t", b"a"), None);
    put(&*s, "t", b"a", b"1");
    assert_eq!(get(&*s, "t", b"a"), Some(b"1".to_vec()));
    put(&*s, "t", b"a", b"2");
    assert_eq!(get(&*s, "t", b"a"), Some(b"2".to_vec()));
    remove(&*s, "t", b"a");
    assert_eq!(get(&*s, "t", b"a"), None);
    remove(&*s, "t", b"never-there");
    put(&*s, "t", b"a", b"3");
    assert_eq!(get(&*s, "t", b"a"), Some(b"3".to_vec()));
    s.write(Batch::new()).expect("empty batch");
    assert_eq!(scan_all(&*s, "t"), vec![(b"a".to_vec(), b"3".to_vec())]);
}

/// One batch over several tables is applied entirely.
pub fn batch_is_atomic_across_tables(h: &mut dyn Harness) {
    let s = h.open();
    for t in ["data.a", "data.b", "expiry"] {
        s.create_table(t).expect("create");
    }
    put(&*s, "data.b", b"old", b"x");
    let mut batch = Batch::new();
    batch.put("data.a", "k1", "v1");
    batch.put("data.b", "k2", "v2");
    batch.put("expiry", "k1", "t1");
    batch.remove("data.b", "old");
    s.write(batch).expect("write");
    assert_eq!(get(&*s, "data.a", b"k1"), Some(b"v1".to_vec()));
    assert_eq!(get(&*s, "data.b", b"k2"), Some(b"v2".to_vec()));
    assert_eq!(get(&*s, "data.b", b"old"), None);
    assert_eq!(get(&*s, "expiry", b"k1"), Some(b"t1".to_vec()));

    s.sync().expect("sync");
    let s = reopen(h, s);
    assert_eq!(get(&*s, "data.a", b"k1"), Some(b"v1".to_vec()));
    assert_eq!(get(&*s, "data.b", b"k2"), Some(b"v2".to_vec()));
    assert_eq!(get(&*s, "data.b", b"old"), None);
    assert_eq!(get(&*s, "expiry", b"k1"), Some(b"t1".to_vec()));
}

/// Several ops on one key in one batch: the last one wins, also after a
/// reopen (which replays the journal in engines that have one).
pub fn last_op_in_batch_wins(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    s.create_table("u").expect("create");
    put(&*s, "t", b"c", b"old");
    let mut batch = Batch::new();
    batch.put("t", "a", "1");
    batch.put("t", "a", "2");
    batch.put("t", "b", "1");
    batch.remove("t", "b");
    batch.remove("t", "c");
    batch.put("t", "c", "new");
    batch.put("u", "a", "other table");
    batch.put("t", "d", "x");
    batch.remove("t", "d");
    batch.put("t", "d", "y");
    s.write(batch).expect("write");
    let want = vec![
        (b"a".to_vec(), b"2".to_vec()),
        (b"c".to_vec(), b"new".to_vec()),
        (b"d".to_vec(), b"y".to_vec()),
    ];
    assert_eq!(scan_all(&*s, "t"), want);
    assert_eq!(get(&*s, "u", b"a"), Some(b"other table".to_vec()));
    let s = reopen(h, s);
    assert_eq!(scan_all(&*s, "t"), want);
    assert_eq!(get(&*s, "u", b"a"), Some(b"other table".to_vec()));
}

/// `scan` against a model over every combination of bounds (present and
/// absent keys, inverted and empty ranges) and several limits.
pub fn scan_order_bounds_and_limits(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    s.create_table("other").expect("create");
    let keys: [&[u8]; 10] = [
        b"",
        b"\x00",
        b"a",
        b"aa",
        b"ab",
        b"b",
        b"ba",
        b"c\x00",
        b"\xfe",
        b"\xff\xff",
    ];
    let mut model = Model::new();
    // Insert out of order, across several batches.
    for (i, key) in keys.iter().enumerate().rev() {
        let value = format!("v{i}").into_bytes();
        put(&*s, "t", key, &value);
        model.insert(key.to_vec(), value);
    }
    put(&*s, "other", b"a", b"not in t");
    let probes: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"a",
        b"ab",
        b"abc",
        b"c",
        b"\xff\xff\xff",
    ];
    let mut bounds: Vec<Bound<&[u8]>> = vec![Bound::Unbounded];
    for p in probes {
        bounds.push(Bound::Included(p));
        bounds.push(Bound::Excluded(p));
    }
    for &start in &bounds {
        for &end in &bounds {
            let want: Vec<(Vec<u8>, Vec<u8>)> = model
                .iter()
                .filter(|(k, _)| in_range(k, start, end))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for limit in [0, 1, 2, 3, usize::MAX] {
                let got: Vec<(Vec<u8>, Vec<u8>)> = s
                    .scan("t", start, end, limit)
                    .expect("scan")
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                let want: Vec<_> = want.iter().take(limit).cloned().collect();
                assert_eq!(got, want, "scan({start:?}, {end:?}, {limit})");
            }
        }
    }
}

/// Keys with `0x00` and `0xFF` bytes, the empty key, empty values.
pub fn binary_keys_and_empty_values(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    let keys: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xFF],
        vec![0x01],
        vec![0x7F, 0x00, 0x7F],
        vec![0xFF],
        vec![0xFF, 0x00],
        vec![0xFF; 64],
        (0..=255u8).collect(),
    ];
    let mut model = Model::new();
    for (i, key) in keys.iter().enumerate() {
        let value = if i % 2 == 0 {
            Vec::new()
        } else {
            vec![0x00, 0xFF, i as u8]
        };
        put(&*s, "t", key, &value);
        model.insert(key.clone(), value);
    }
    for key in &keys {
        assert_eq!(get(&*s, "t", key), model.get(key).cloned(), "key {key:?}");
    }
    assert_eq!(scan_all(&*s, "t"), model_items(&model));
    // Empty value is present, not missing.
    assert_eq!(get(&*s, "t", b""), Some(Vec::new()));

    remove(&*s, "t", &[0x00]);
    model.remove(&[0x00][..]);
    let s = reopen(h, s);
    assert_eq!(scan_all(&*s, "t"), model_items(&model));
    assert_eq!(get(&*s, "t", b""), Some(Vec::new()));
    assert_eq!(get(&*s, "t", &[0x00]), None);
}

/// Keys of exactly `MAX_KEY_LEN` bytes work (also starting with `0x00`);
/// longer ones fail with `KeyTooLarge` and change nothing.
pub fn key_and_value_limits(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    let max_key = vec![b'k'; MAX_KEY_LEN];
    let mut max_zero_key = vec![0x00; MAX_KEY_LEN];
    max_zero_key[MAX_KEY_LEN - 1] = 1;
    put(&*s, "t", &max_key, b"v1");
    put(&*s, "t", &max_zero_key, b"v2");
    assert_eq!(get(&*s, "t", &max_key), Some(b"v1".to_vec()));
    assert_eq!(get(&*s, "t", &max_zero_key), Some(b"v2".to_vec()));

    let too_long = vec![b'k'; MAX_KEY_LEN + 1];
    let mut batch = Batch::new();
    batch.put("t", "fine", "v");
    batch.put("t", too_long.clone(), "v");
    match s.write(batch) {
        Err(StorageError::KeyTooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_KEY_LEN + 1, MAX_KEY_LEN));
        }
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    let mut batch = Batch::new();
    batch.remove("t", too_long.clone());
    assert!(matches!(
        s.write(batch),
        Err(StorageError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.get("t", &too_long),
        Err(StorageError::KeyTooLarge { .. })
    ));
    assert_eq!(get(&*s, "t", b"fine"), None, "failed batch applied partly");

    // Value limit, checked without allocating a gigabyte of payload twice:
    // the check happens before anything is copied.
    let huge = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
    let mut batch = Batch::new();
    batch.put("t", "fine", "v");
    batch.put("t", "huge", huge);
    match s.write(batch) {
        Err(StorageError::ValueTooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_VALUE_LEN + 1, MAX_VALUE_LEN));
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(get(&*s, "t", b"fine"), None, "failed batch applied partly");

    let s = reopen(h, s);
    assert_eq!(get(&*s, "t", &max_key), Some(b"v1".to_vec()));
    assert_eq!(get(&*s, "t", &max_zero_key), Some(b"v2".to_vec()));
}

/// 16 MiB values (the node's default limit): write, overwrite, read, scan,
/// survive a reopen.
pub fn large_values(h: &mut dyn Harness) {
    const MIB: usize = 1024 * 1024;
    let s = h.open();
    s.create_table("t").expect("create");
    let big_a = pattern(16 * MIB, 1);
    let big_b = pattern(16 * MIB, 2);
    let mid = pattern(MIB + 7, 3);
    put(&*s, "t", b"a", &big_a);
    put(&*s, "t", b"b", &mid);
    put(&*s, "t", b"c", b"small");
    assert!(
        get(&*s, "t", b"a") == Some(big_a.clone()),
        "16 MiB value differs"
    );
    put(&*s, "t", b"a", &big_b);
    assert!(
        get(&*s, "t", b"a") == Some(big_b.clone()),
        "overwritten value differs"
    );
    let scanned = scan_all(&*s, "t");
    assert_eq!(scanned.len(), 3);
    assert!(scanned[0].1 == big_b && scanned[1].1 == mid && scanned[2].1 == b"small");

    s.sync().expect("sync");
    let s = reopen(h, s);
    assert!(
        get(&*s, "t", b"a") == Some(big_b),
        "16 MiB value lost at reopen"
    );
    assert!(get(&*s, "t", b"b") == Some(mid));
    assert_eq!(get(&*s, "t", b"c"), Some(b"small".to_vec()));
}

/// A clean close keeps tables and all writes, synced or not; repeated
/// reopen cycles too.
pub fn close_reopen_persistence(h: &mut dyn Harness) {
    let mut s = h.open();
    s.create_table("data.default").expect("create");
    s.create_table("meta").expect("create");
    let mut model = Model::new();
    for round in 0..3u8 {
        for i in 0..50u8 {
            let key = vec![b'k', i];
            let value = vec![round, i];
            put(&*s, "data.default", &key, &value);
            model.insert(key, value);
        }
        if round == 1 {
            s.sync().expect("sync");
        }
        remove(&*s, "data.default", &[b'k', round]);
        model.remove(&vec![b'k', round]);
        put(&*s, "meta", b"round", &[round]);
        s = reopen(h, s);
        assert_eq!(
            s.tables().expect("tables"),
            vec!["data.default".to_string(), "meta".to_string()]
        );
        assert_eq!(
            scan_all(&*s, "data.default"),
            model_items(&model),
            "round {round}"
        );
        assert_eq!(get(&*s, "meta", b"round"), Some(vec![round]));
    }
}

/// A dropped table's data is gone, also after reopens, and a table created
/// later (under the same or another name) starts empty.
pub fn dropped_table_stays_dropped(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("keep").expect("create");
    s.create_table("gone").expect("create");
    put(&*s, "keep", b"k", b"v");
    put(&*s, "gone", b"synced", b"1");
    s.sync().expect("sync");
    put(&*s, "gone", b"unsynced", b"2");
    s.drop_table("gone").expect("drop");
    s.create_table("gone").expect("re-create");
    assert_eq!(scan_all(&*s, "gone"), vec![]);

    let s = reopen(h, s);
    assert_eq!(scan_all(&*s, "gone"), vec![]);
    s.drop_table("gone").expect("drop");
    let s = reopen(h, s);
    assert_eq!(s.tables().expect("tables"), vec!["keep".to_string()]);
    // A new table after a restart may reuse internal ids in some engines; it
    // must not see old journal entries.
    s.create_table("fresh").expect("create");
    s.create_table("gone").expect("create");
    let mut s = s;
    for _ in 0..2 {
        s = reopen(h, s);
        assert_eq!(scan_all(&*s, "fresh"), vec![]);
        assert_eq!(scan_all(&*s, "gone"), vec![]);
        assert_eq!(get(&*s, "keep", b"k"), Some(b"v".to_vec()));
    }
    assert_eq!(
        s.tables().expect("tables"),
        vec!["fresh".to_string(), "gone".to_string(), "keep".to_string()]
    );
}

/// After `close`, every operation fails with `Closed`; closing twice is
/// fine.
pub fn closed_storage_refuses_operations(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    s.close().expect("close");
    s.close().expect("close twice");
    let closed = |r: Result<(), StorageError>| assert!(matches!(r, Err(StorageError::Closed)));
    closed(s.create_table("u"));
    closed(s.drop_table("t"));
    closed(s.tables().map(drop));
    closed(s.get("t", b"k").map(drop));
    let mut batch = Batch::new();
    batch.put("t", "k", "v");
    closed(s.write(batch));
    closed(s.scan("t", Bound::Unbounded, Bound::Unbounded, 1).map(drop));
    closed(s.sync());
    closed(s.stats("t").map(drop));
    drop(s);
    let s = h.open();
    assert_eq!(s.tables().expect("tables"), vec!["t".to_string()]);
}

/// `stats` counts at least the live keys (engines may overcount).
pub fn stats_count_keys(h: &mut dyn Harness) {
    let s = h.open();
    s.create_table("t").expect("create");
    s.create_table("empty").expect("create");
    for i in 0..100u32 {
        put(&*s, "t", &i.to_be_bytes(), b"value");
    }
    assert!(s.stats("t").expect("stats").approximate_keys >= 100);
    let s = reopen(h, s);
    assert!(s.stats("t").expect("stats").approximate_keys >= 100);
    assert_eq!(s.stats("empty").expect("stats").approximate_keys, 0);
}

/// Enough writes, overwrites and removes to fill many memtables of a tiny
/// configuration (flushes, blob files, compactions), checked against a
/// model before and after reopens.
pub fn many_writes_survive_flushes_and_reopen(h: &mut dyn Harness) {
    let mut s = h.open();
    s.create_table("a").expect("create");
    s.create_table("b").expect("create");
    let mut model_a = Model::new();
    let mut model_b = Model::new();
    let mut rng = 0x1234_5678_u32;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };
    for round in 0..3 {
        for _ in 0..100 {
            let mut batch = Batch::new();
            for _ in 0..10 {
                let r = next();
                let key = format!("key{:04}", r % 1500).into_bytes();
                match r % 10 {
                    0 => {
                        batch.remove("a", key.clone());
                        model_a.remove(&key);
                    }
                    1 => {
                        // Above the tiny blob threshold.
                        let value = pattern(600 + (r % 2000) as usize, r as u8);
                        batch.put("b", key.clone(), value.clone());
                        model_b.insert(key, value);
                    }
                    _ => {
                        let value = format!("value-{r}-{round}").into_bytes();
                        batch.put("a", key.clone(), value.clone());
                        model_a.insert(key, value);
                    }
                }
            }
            s.write(batch).expect("write");
        }
        assert_eq!(scan_all(&*s, "a"), model_items(&model_a), "round {round}");
        assert_eq!(scan_all(&*s, "b"), model_items(&model_b), "round {round}");
        s = reopen(h, s);
        assert_eq!(scan_all(&*s, "a"), model_items(&model_a), "reopen {round}");
        assert_eq!(scan_all(&*s, "b"), model_items(&model_b), "reopen {round}");
        for (k, v) in model_a.iter().step_by(97) {
            assert_eq!(get(&*s, "a", k).as_ref(), Some(v));
        }
    }
}

/// Readers racing a writer see each batch entirely or not at all: a scan
/// never shows two keys of one batch with different versions, and after
/// seeing a batch's key in one table, a later read of another table sees
/// that batch too.
pub fn concurrent_readers_see_whole_batches(h: &mut dyn Harness) {
    const BATCHES: u64 = 300;
    let s = h.open();
    s.create_table("t").expect("create");
    s.create_table("u").expect("create");
    let done = Arc::new(AtomicBool::new(false));
    let version = |v: Option<Bytes>| -> u64 {
        v.map_or(0, |b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b);
            u64::from_be_bytes(a)
        })
    };
    let reader = {
        let s = s.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !done.load(Ordering::Acquire) || checks == 0 {
                let items = s
                    .scan("t", Bound::Unbounded, Bound::Unbounded, 10)
                    .expect("scan");
                if items.len() == 2 {
                    assert_eq!(items[0].1, items[1].1, "scan saw half a batch");
                } else {
                    assert!(items.is_empty(), "scan saw half a batch: {items:?}");
                }
                let in_u = version(s.get("u", b"z").expect("get"));
                let in_t = version(s.get("t", b"x").expect("get"));
                assert!(in_t >= in_u, "saw batch {in_u} in u but only {in_t} in t");
                checks += 1;
            }
        })
    };
    for i in 1..=BATCHES {
        let v = i.to_be_bytes().to_vec();
        let mut batch = Batch::new();
        batch.put("t", "x", v.clone());
        batch.put("u", "z", v.clone());
        batch.put("t", "y", v);
        s.write(batch).expect("write");
    }
    done.store(true, Ordering::Release);
    reader.join().expect("reader thread");
}

/// A crash keeps synced writes and loses the rest; reads before the crash
/// saw everything. (Skipped where the harness cannot crash.)
pub fn crash_loses_only_unsynced_writes(h: &mut dyn Harness) {
    if !h.can_crash() {
        return;
    }
    let s = h.open();
    s.create_table("t").expect("create");
    s.create_table("u").expect("create");
    put(&*s, "t", b"a", b"synced");
    put(&*s, "t", b"gone", b"synced");
    s.sync().expect("sync");
    put(&*s, "t", b"a", b"unsynced overwrite");
    remove(&*s, "t", b"gone");
    let mut batch = Batch::new();
    batch.put("t", "b", "unsynced");
    batch.put("u", "b", "unsynced");
    s.write(batch).expect("write");
    assert_eq!(get(&*s, "t", b"b"), Some(b"unsynced".to_vec()));
    h.crash();
    assert!(matches!(s.get("t", b"a"), Err(StorageError::Closed)));
    drop(s);

    let s = h.open();
    assert_eq!(get(&*s, "t", b"a"), Some(b"synced".to_vec()));
    assert_eq!(get(&*s, "t", b"gone"), Some(b"synced".to_vec()));
    assert_eq!(get(&*s, "t", b"b"), None);
    assert_eq!(get(&*s, "u", b"b"), None);
}

/// Table creation and removal survive a crash without a sync; a dropped
/// table's unsynced writes do not come back. (Skipped where the harness
/// cannot crash.)
pub fn ddl_is_durable_across_crash(h: &mut dyn Harness) {
    if !h.can_crash() {
        return;
    }
    let s = h.open();
    s.create_table("old").expect("create");
    s.sync().expect("sync");
    s.create_table("new").expect("create");
    put(&*s, "old", b"k", b"unsynced");
    s.drop_table("old").expect("drop");
    s.create_table("old").expect("re-create");
    h.crash();
    drop(s);

    let s = h.open();
    assert_eq!(
        s.tables().expect("tables"),
        vec!["new".to_string(), "old".to_string()]
    );
    assert_eq!(scan_all(&*s, "old"), vec![]);
}
