//! Test support: the engine conformance suite and harnesses that open an
//! engine over the same durable state again and again.
//!
//! Compiled for this crate's tests and, with the `testkit` feature, for
//! other crates (e.g. to run the suite over a wrapper of their own).
//!
//! Functions here panic on failure: they are test code.
//!
//! Instantiate the whole suite for a harness with
//! [`storage_conformance_tests!`](crate::storage_conformance_tests):
//!
//! ```text
//! fulcrum_storage::storage_conformance_tests!(fulcrum_storage::testkit::MemoryHarness::new());
//! ```

pub mod conformance;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    CacheConfig, CachedStorage, FjallConfig, FjallStorage, MemoryDisk, MemoryStorage, Storage,
};

/// Opens one engine over the same durable state (directory, disk) on every
/// call, so tests can close, reopen and — if supported — crash it.
pub trait Harness {
    /// Opens the engine. The caller closes the previous instance first
    /// (`Storage::close`), as a real restart would.
    fn open(&mut self) -> Arc<dyn Storage>;

    /// Whether [`Harness::crash`] is supported.
    fn can_crash(&self) -> bool {
        false
    }

    /// Simulates a power loss of the instance last returned by `open`:
    /// writes not yet synced are lost and the instance is closed.
    fn crash(&mut self) {
        panic!("this harness cannot simulate crashes");
    }
}

/// [`MemoryStorage`] over one [`MemoryDisk`]; supports crashes.
#[derive(Debug, Default)]
pub struct MemoryHarness {
    disk: MemoryDisk,
    current: Option<Arc<MemoryStorage>>,
}

impl MemoryHarness {
    /// A harness over a new, empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disk under every instance.
    pub fn disk(&self) -> &MemoryDisk {
        &self.disk
    }
}

impl Harness for MemoryHarness {
    fn open(&mut self) -> Arc<dyn Storage> {
        let storage = Arc::new(MemoryStorage::open(&self.disk).expect("open the memory disk"));
        self.current = Some(storage.clone());
        storage
    }

    fn can_crash(&self) -> bool {
        true
    }

    fn crash(&mut self) {
        if let Some(storage) = self.current.take() {
            storage.crash();
        }
    }
}

/// [`FjallStorage`] in one directory. Cannot crash in-process (see
/// `tests/fjall_process_crash.rs` for a real process kill).
pub struct FjallHarness {
    dir: PathBuf,
    config: FjallConfig,
    _guard: Option<Box<dyn Any + Send>>,
}

impl std::fmt::Debug for FjallHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallHarness")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish()
    }
}

impl FjallHarness {
    /// A harness over `dir` with `config` (tests want [`FjallConfig::tiny`]).
    pub fn new(dir: impl AsRef<Path>, config: FjallConfig) -> Self {
        FjallHarness {
            dir: dir.as_ref().to_path_buf(),
            config,
            _guard: None,
        }
    }

    /// Keeps `guard` (e.g. a `tempfile::TempDir`) alive as long as the
    /// harness.
    pub fn holding(mut self, guard: impl Any + Send) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }
}

impl Harness for FjallHarness {
    fn open(&mut self) -> Arc<dyn Storage> {
        Arc::new(FjallStorage::open(&self.dir, self.config.clone()).expect("open fjall storage"))
    }
}

/// Another harness's engine behind a [`CachedStorage`] that caches every
/// table in a small budget (so entries get evicted), crashing like the
/// engine under it; a crash also loses the cache, as a process would.
pub struct CachedHarness<H> {
    inner: H,
    config: CacheConfig,
    current: Option<Arc<CachedStorage>>,
}

impl<H: Harness> CachedHarness<H> {
    /// `inner` behind a cache of 64 KiB, entries up to 1 KiB.
    pub fn new(inner: H) -> Self {
        CachedHarness {
            inner,
            config: CacheConfig {
                max_bytes: 64 * 1024,
                max_entry_bytes: 1024,
                table_prefix: String::new(),
            },
            current: None,
        }
    }
}

impl<H: Harness> Harness for CachedHarness<H> {
    fn open(&mut self) -> Arc<dyn Storage> {
        let storage = Arc::new(CachedStorage::new(self.inner.open(), self.config.clone()));
        self.current = Some(storage.clone());
        storage
    }

    fn can_crash(&self) -> bool {
        self.inner.can_crash()
    }

    fn crash(&mut self) {
        self.inner.crash();
        if let Some(storage) = self.current.take() {
            storage.clear();
        }
    }
}

/// Expands to one `#[test]` per conformance check, each running it on a
/// fresh harness built by the given expression.
#[macro_export]
macro_rules! storage_conformance_tests {
    ($make:expr) => {
        $crate::storage_conformance_tests!(@tests $make;
            tables_lifecycle,
            bad_table_names,
            missing_table_errors,
            get_put_remove,
            batch_is_atomic_across_tables,
            last_op_in_batch_wins,
            scan_order_bounds_and_limits,
            binary_keys_and_empty_values,
            key_and_value_limits,
            large_values,
            close_reopen_persistence,
            dropped_table_stays_dropped,
            closed_storage_refuses_operations,
            stats_count_keys,
            many_writes_survive_flushes_and_reopen,
            concurrent_readers_see_whole_batches,
            crash_loses_only_unsynced_writes,
            ddl_is_durable_across_crash,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let mut harness = $make;
                $crate::testkit::conformance::$name(&mut harness);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    mod memory {
        crate::storage_conformance_tests!(crate::testkit::MemoryHarness::new());
    }

    mod fjall {
        crate::storage_conformance_tests!({
            let dir = tempfile::tempdir().unwrap();
            crate::testkit::FjallHarness::new(dir.path(), crate::FjallConfig::tiny()).holding(dir)
        });
    }

    mod cached_memory {
        crate::storage_conformance_tests!(crate::testkit::CachedHarness::new(
            crate::testkit::MemoryHarness::new()
        ));
    }

    mod cached_fjall {
        crate::storage_conformance_tests!({
            let dir = tempfile::tempdir().unwrap();
            crate::testkit::CachedHarness::new(
                crate::testkit::FjallHarness::new(dir.path(), crate::FjallConfig::tiny())
                    .holding(dir),
            )
        });
    }

    mod fjall_default_config {
        // The production configuration, on the checks that touch its
        // settings most (large values, blob separation, persistence).
        use crate::testkit::conformance;

        fn harness() -> crate::testkit::FjallHarness {
            let dir = tempfile::tempdir().unwrap();
            crate::testkit::FjallHarness::new(dir.path(), crate::FjallConfig::default())
                .holding(dir)
        }

        #[test]
        fn large_values() {
            conformance::large_values(&mut harness());
        }

        #[test]
        fn close_reopen_persistence() {
            conformance::close_reopen_persistence(&mut harness());
        }
    }
}
