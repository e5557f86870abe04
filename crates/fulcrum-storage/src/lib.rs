//! Fulcrum's storage seam: a [`Storage`] trait over named tables of raw
//! bytes, with two engines that pass one conformance suite:
//!
//! - [`FjallStorage`]: the on-disk LSM engine (commit log → memtable →
//!   SSTables with Bloom filters) through fjall. The product's default.
//! - [`MemoryStorage`]: in memory, for tests and simulation. It keeps
//!   durable and not-yet-synced writes apart, so a simulated crash loses
//!   exactly what a real one could.
//!
//! Durability is explicit: [`Storage::write`] makes a batch visible and
//! buffered; [`Storage::sync`] makes every earlier write durable. The
//! [`GroupCommit`] driver turns an fsync policy into shared fsyncs for many
//! concurrent writers.

mod error;
mod traits;

pub use error::{StorageError, StorageResult};
pub use traits::{Batch, BatchOp, ScanItem, Storage, TableStats};
