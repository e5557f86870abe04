//! Fulcrum's Raft groups: each partition of a strong keyspace is one Raft
//! group (openraft 0.10) whose voters are the partition's ring replicas.
//!
//! What lives where:
//! - [`types`]: node and group identities, openraft's type configuration,
//!   each group's storage tables;
//! - [`command`]: the replicated key-value commands and their
//!   deterministic execution (revisions, compare-and-set, counters, expiry
//!   by the leader's clock);
//! - [`log_store`] / [`state_machine`]: openraft's storage traits on
//!   Fulcrum's [`fulcrum_storage::Storage`] (log, vote, applied state,
//!   snapshots), with their durability rules;
//! - [`network`]: the [`RaftTransport`] the node implements over its peer
//!   protocol, and openraft's network traits on top of it;
//! - [`groups`]: [`Groups`], the API the node uses (open groups, propose,
//!   read, answer peers' RPCs, leaders, metrics, shutdown);
//! - [`rt`]: openraft's runtime (tokio) with randomness that a
//!   deterministic simulation can seed ([`GroupsConfig::rng_seed`]);
//! - `testkit` (feature `testkit`): an in-memory transport with
//!   partitions, and a manual clock.
//!
//! What is durable when: a vote before openraft proceeds; log entries
//! before openraft counts them as flushed (so before they count toward a
//! commit); a snapshot before logs it covers are purged. Applying entries
//! is not synced (the log is the source of truth and is re-applied after a
//! crash). All groups of a node share one group committer, so their fsyncs
//! are batched together. Unsynced writes (truncation, purge, `committed`,
//! applied state) rely on what both storage engines guarantee: a crash
//! loses a suffix of the unsynced batches, never a batch in the middle.

mod codec;
pub mod command;
mod config;
mod error;
pub mod groups;
pub mod log_store;
mod log_tail;
pub mod network;
pub mod rt;
pub mod state_machine;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod types;

#[cfg(test)]
mod tests;

pub use codec::{CodecError, FORMAT_VERSION};
pub use command::{
    Command, CommandError, Condition, ExpireAt, Oversized, Request, Response, StoredValue, Ttl,
};
pub use config::{Clock, GroupsConfig, SystemClock};
pub use error::RaftError;
pub use groups::{Applied, GroupMetrics, Groups, Membership};
pub use log_store::LogStore;
pub use network::{RaftTransport, TransportError};
pub use openraft::ServerState;
pub use state_machine::{SnapshotBuilder, StateMachine};
pub use types::{node_id, GroupId, GroupTables, NodeId, PeerNode, TypeConfig};
