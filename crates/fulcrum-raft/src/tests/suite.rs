//! openraft's own storage test suite against [`LogStore`] and
//! [`StateMachine`] on both storage engines.

use std::sync::Arc;

use fulcrum_storage::{
    FjallConfig, FjallStorage, FsyncPolicy, GroupCommit, MemoryStorage, Storage,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

use crate::types::{GroupId, GroupTables, TypeConfig};
use crate::{LogStore, StateMachine};

fn stores(storage: Arc<dyn Storage>) -> (LogStore, StateMachine) {
    let committer = Arc::new(GroupCommit::new(storage.clone(), FsyncPolicy::Always).unwrap());
    let tables = Arc::new(GroupTables::new(&GroupId::new("suite", 7)));
    let log = LogStore::open(storage.clone(), tables.clone(), committer.clone()).unwrap();
    let sm = StateMachine::open(storage, tables, committer).unwrap();
    (log, sm)
}

struct Memory;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for Memory {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<TypeConfig>> {
        let (log, sm) = stores(Arc::new(MemoryStorage::new()));
        Ok(((), log, sm))
    }
}

/// A temporary directory, in memory (`/dev/shm`) where there is one: the
/// suite builds ~50 databases and checks semantics, not fsync.
fn scratch_dir() -> TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("fulcrum-raft-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

struct Fjall;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Fjall {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = scratch_dir();
        let storage = FjallStorage::open(dir.path(), FjallConfig::tiny()).unwrap();
        let (log, sm) = stores(Arc::new(storage));
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_memory_storage() {
    Suite::test_all(Memory).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_fjall_storage() {
    Suite::test_all(Fjall).await.unwrap();
}
