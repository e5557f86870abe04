//! Fulcrum's storage seam: a [`Storage`] trait over named tables of raw
//! bytes, with two engines that pass one conformance suite:
//!
//! - [`FjallStorage`]: the on-disk LSM engine (commit log → memtable →
//!   SSTables with Bloom filters) through fjall. The product's default.
//! - [`MemoryStorage`]: in memory, for tests and simulation. It keeps
//!   durable and not-yet-synced writes apart, so a simulated crash loses
//!   exactly what a real one could.
//!
//! [`CachedStorage`] wraps either engine with a bounded, coherent read cache
//! for hot keys (it passes the same suite).
//!
//! Durability is explicit: [`Storage::write`] makes a batch visible and
//! buffered; [`Storage::sync`] makes every earlier write durable. The
//! [`GroupCommit`] driver turns an fsync policy into shared fsyncs for many
//! concurrent writers.
//!
//! Limits shared by every engine (so simulation fails where production
//! would): keys up to [`MAX_KEY_LEN`] bytes (empty keys are allowed), values
//! up to [`MAX_VALUE_LEN`] bytes, table names of 1 to [`MAX_TABLE_NAME_LEN`]
//! bytes of UTF-8.
//!
//! The conformance suite lives in `testkit` (compiled for this crate's own
//! tests, and for other crates with the `testkit` feature).

mod cache;
mod error;
mod fjall_engine;
mod group_commit;
mod journal_zero;
mod memory;
mod traits;
mod validate;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use cache::{CacheConfig, CacheStats, CachedStorage};
pub use error::{StorageError, StorageResult};
pub use fjall_engine::{FjallConfig, FjallStorage};
pub use group_commit::{BeforeSync, FsyncPolicy, FsyncPolicyParseError, GroupCommit};
pub use memory::{MemoryDisk, MemoryStorage};
pub use traits::{Batch, BatchOp, ScanItem, Storage, TableStats};

/// Largest key, in bytes, that every engine accepts.
///
/// fjall stores key lengths as `u16` (at most 65 535 bytes, and it rejects
/// empty keys). [`FjallStorage`] supports empty keys by prefixing keys that
/// are empty or start with `0x00` with one `0x00` byte (an order-preserving
/// encoding), which costs one byte of the engine's limit: 65 534.
pub const MAX_KEY_LEN: usize = u16::MAX as usize - 1;

/// Largest value, in bytes, that every engine accepts: 1 GiB.
///
/// fjall's hard limit is `u32::MAX` bytes (lengths are stored as `u32`), but
/// its journal also stores the LZ4-compressed length as `u32`, and LZ4 can
/// grow incompressible input slightly; 1 GiB keeps far away from that edge
/// and is well above the node's own value limit (16 MiB default, 512 MiB
/// at most).
pub const MAX_VALUE_LEN: usize = 1 << 30;

/// Longest table name, in bytes of UTF-8.
///
/// fjall limits keyspace names to 255 bytes of `[A-Za-z0-9_.-#$]`;
/// [`FjallStorage`] escapes every other byte as `$XX` (three bytes), so 80
/// bytes of arbitrary UTF-8 always fit.
pub const MAX_TABLE_NAME_LEN: usize = 80;
