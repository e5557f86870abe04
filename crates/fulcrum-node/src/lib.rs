//! A Fulcrum node: the only crate that opens sockets and spawns tasks.
//!
//! - [`config`]: the node's configuration and where it comes from.
//! - [`db`]: the local database: storage, group commit, keyspace catalog,
//!   hybrid logical clock, per-key locks. Commands call into it.
//! - [`cmd`]: one file per command family: parse arguments, apply, reply.
//! - [`resp`]: the RESP listener and the per-connection loop.
//! - [`http`]: `/health`, `/status`, `/metrics`.
//! - [`expiry`]: the TTL index and the background sweeper.
//! - [`node`]: starts and stops all of the above.

pub mod aae;
pub mod catalog;
pub mod cleanup;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod coord;
pub mod db;
pub mod expiry;
pub mod gossip;
pub mod hints;
pub mod http;
mod locks;
pub mod metrics;
pub mod net;
pub mod netio;
pub mod node;
pub mod replica;
pub mod resp;
pub mod schema;
pub mod stream;
pub mod strong;
pub mod strong_move;
mod ticker;
pub mod write_group;

pub use config::{ConfigError, ConfigOverrides, NodeConfig};
pub use node::{Node, NodeError};

/// The version string reported by INFO, HELLO and `/status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
