//! What survives a power loss: votes and flushed log entries always; applied
//! state only as a whole batch with its applied index.

use std::sync::Arc;

use bytes::Bytes;
use fulcrum_storage::{FsyncPolicy, GroupCommit, MemoryDisk, MemoryStorage, Storage};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::EntryPayload;

use crate::codec::index_key;
use crate::command::{Command, Condition, Request, Ttl};
use crate::types::{Entry, GroupId, GroupTables, LogId, Vote};
use crate::{LogStore, StateMachine};

fn tables() -> Arc<GroupTables> {
    Arc::new(GroupTables::new(&GroupId::new("durable", 1)))
}

fn open(disk: &MemoryDisk) -> (Arc<MemoryStorage>, LogStore, StateMachine) {
    let storage = Arc::new(MemoryStorage::open(disk).unwrap());
    let dyn_storage: Arc<dyn Storage> = storage.clone();
    let committer = Arc::new(GroupCommit::new(dyn_storage.clone(), FsyncPolicy::Always).unwrap());
    let log = LogStore::open(dyn_storage.clone(), tables(), committer.clone()).unwrap();
    let sm = StateMachine::open(dyn_storage, tables(), committer).unwrap();
    (storage, log, sm)
}

fn log_id(index: u64) -> LogId {
    LogId::new(
        LeaderId {
            term: 1,
            node_id: 9,
        },
        index,
    )
}

fn set_entry(index: u64, key: &str) -> Entry {
    let command = Command::Set {
        key: Bytes::from(key.to_string()),
        value: Bytes::from_static(b"v"),
        ttl: Ttl::Clear,
        condition: Condition::Always,
        get_old: false,
    };
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Request { now_ms: 5, command }),
    }
}

#[tokio::test]
async fn flushed_entries_and_votes_survive_a_crash() {
    let disk = MemoryDisk::new();
    let (storage, mut log, _sm) = open(&disk);
    log.blocking_append((1..=3).map(|i| set_entry(i, "k")))
        .await
        .unwrap();
    // Durable as soon as the flush was reported, before any other sync.
    assert!(disk.durable_get(&tables().log, &index_key(3)).is_some());
    let vote = Vote::new(4, 9);
    log.save_vote(&vote).await.unwrap();
    assert!(disk.durable_get(&tables().meta, b"vote").is_some());
    storage.crash();

    let (_storage, mut log, _sm) = open(&disk);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3)));
    assert_eq!(state.last_purged_log_id, None);
    let mut reader = log.get_log_reader().await;
    assert_eq!(reader.read_vote().await.unwrap(), Some(vote));
    assert_eq!(reader.try_get_log_entries(1..4).await.unwrap().len(), 3);
}

#[tokio::test]
async fn the_last_entry_is_found_after_purge_and_truncate() {
    let disk = MemoryDisk::new();
    let (storage, mut log, _sm) = open(&disk);
    log.blocking_append((1..=40).map(|i| set_entry(i, "k")))
        .await
        .unwrap();
    log.purge(log_id(12)).await.unwrap();
    log.truncate_after(Some(log_id(29))).await.unwrap();
    storage.sync().unwrap();
    storage.crash();

    let (_storage, mut log, _sm) = open(&disk);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(12)));
    assert_eq!(state.last_log_id, Some(log_id(29)));
    let mut reader = log.get_log_reader().await;
    let entries = reader.try_get_log_entries(..).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index()).collect();
    assert_eq!(indexes, (13..=29).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_second_purge_removes_every_entry_up_to_its_index() {
    let disk = MemoryDisk::new();
    let (storage, mut log, _sm) = open(&disk);
    log.blocking_append((1..=40).map(|i| set_entry(i, "k")))
        .await
        .unwrap();
    log.purge(log_id(12)).await.unwrap();
    // The second purge starts after the first one's index.
    log.purge(log_id(25)).await.unwrap();
    storage.sync().unwrap();
    for gone in [1, 12, 13, 20, 25] {
        assert!(
            disk.durable_get(&tables().log, &index_key(gone)).is_none(),
            "{gone}"
        );
    }
    storage.crash();

    // Reopened, the log is read from storage (no in-memory tail).
    let (_storage, mut log, _sm) = open(&disk);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(25)));
    let mut reader = log.get_log_reader().await;
    let entries = reader.try_get_log_entries(..).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index()).collect();
    assert_eq!(indexes, (26..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn applied_state_is_lost_or_kept_with_its_data() {
    let disk = MemoryDisk::new();
    let (storage, _log, mut sm) = open(&disk);
    let apply =
        |entries: Vec<Entry>| futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(apply(vec![set_entry(1, "a")])).await.unwrap();
    storage.sync().unwrap();
    sm.apply(apply(vec![set_entry(2, "b")])).await.unwrap();
    // A power loss before the next sync loses entry 2 entirely: its data
    // and its applied index, never one without the other.
    storage.crash();

    let (_storage, _log, mut sm) = open(&disk);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1)));
    let reader = sm.reader();
    assert_eq!(reader.get(b"a", 0).unwrap().unwrap().revision, 1);
    assert!(reader.get(b"b", 0).unwrap().is_none());
}
