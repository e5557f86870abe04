//! Fulcrum's pure core: data types, formats and decision logic with no I/O.
//!
//! Nothing in this crate opens a file or socket, spawns a task or reads the
//! wall clock: time enters as arguments. The node crate drives these cores;
//! tests call them directly.

pub mod dvv;
pub mod explain;
pub mod hlc;
pub mod keyspace;
pub mod level;
pub mod limits;
pub mod merkle;
pub mod quorum;
pub mod record;
pub mod ring;

pub use hlc::{Hlc, HlcClock};
pub use keyspace::{Conflict, KeyspaceSpec, Mode};
pub use level::Level;
pub use record::{Record, Version};
