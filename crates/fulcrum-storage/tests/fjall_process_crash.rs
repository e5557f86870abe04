//! A real process crash for the fjall engine: a child process (this test
//! binary, re-run in child mode) writes without ever syncing and aborts —
//! no destructors, no final fsync. Every write that returned must be there
//! after recovery, because `write` hands the journal bytes to the OS before
//! returning and the OS outlives the process. (A power loss could still lose
//! them; that is what `sync` is for.)

// Test code: a panic is a test failure (clippy.toml only covers `#[test]`
// functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use std::ops::Bound;
use std::process::Command;

use fulcrum_storage::{Batch, FjallConfig, FjallStorage, Storage};

const CHILD_ENV: &str = "FULCRUM_STORAGE_CRASH_CHILD_DIR";
const TEST_NAME: &str = "unsynced_writes_survive_a_process_crash";
const WRITES: u32 = 2000;

fn key(i: u32) -> Vec<u8> {
    // Keys starting with 0x00 exercise the key encoding too.
    i.to_be_bytes().to_vec()
}

fn child(dir: &str) -> ! {
    let storage = FjallStorage::open(dir, FjallConfig::tiny()).unwrap();
    storage.create_table("data.default").unwrap();
    storage.create_table("expiry").unwrap();
    for i in 0..WRITES {
        let mut batch = Batch::new();
        batch.put(
            "data.default",
            key(i),
            format!("value {i}").repeat(i as usize % 50 + 1),
        );
        batch.put("expiry", key(i), "ttl");
        if i % 3 == 0 {
            batch.remove("data.default", key(i / 2));
        }
        storage.write(batch).unwrap();
    }
    std::process::abort();
}

#[test]
fn unsynced_writes_survive_a_process_crash() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");

    // The same writes, applied to a model.
    let mut model = std::collections::BTreeMap::new();
    for i in 0..WRITES {
        model.insert(
            key(i),
            format!("value {i}")
                .repeat(i as usize % 50 + 1)
                .into_bytes(),
        );
        if i % 3 == 0 {
            model.remove(&key(i / 2));
        }
    }

    let storage = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
    assert_eq!(storage.tables().unwrap(), vec!["data.default", "expiry"]);
    let items = storage
        .scan(
            "data.default",
            Bound::Unbounded,
            Bound::Unbounded,
            usize::MAX,
        )
        .unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = items
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "recovered data differs from what the child wrote"
    );
    let expiry = storage
        .scan("expiry", Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .unwrap();
    assert_eq!(expiry.len(), WRITES as usize);
}
