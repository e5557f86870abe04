//! [`GroupsConfig`]: Raft timing and log compaction for every group of a
//! node, and the clock that stamps proposals.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::SnapshotPolicy;

use crate::error::RaftError;

/// Raft settings shared by all groups of a node. The defaults suit a LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsConfig {
    /// How often a leader heartbeats its followers. Default 100 ms.
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in
    /// `[election_timeout_min, election_timeout_max)` starts an election.
    /// Default 500 ms.
    pub election_timeout_min: Duration,
    /// See `election_timeout_min`. Default 1000 ms.
    pub election_timeout_max: Duration,
    /// Build a snapshot (and compact the log) every this many committed
    /// entries. Default 10 000 (etcd's default is 100 000): each snapshot copies
    /// the whole partition, so a small interval costs every write.
    pub snapshot_every: u64,
    /// Entries already in a snapshot kept in the log anyway, so a follower
    /// slightly behind catches up from the log rather than by snapshot.
    /// Default 1000.
    pub keep_after_snapshot: u64,
    /// Time to send and install one snapshot (one message). Default 30 s.
    pub install_snapshot_timeout: Duration,
    /// How long `propose` waits for its entry to be applied before giving
    /// up with an unknown outcome. Default 5 s.
    pub propose_timeout: Duration,
    /// How long a linearizable read waits to confirm leadership. Default
    /// 5 s (openraft gives up sooner, after one leader lease, when a quorum
    /// does not answer).
    pub read_timeout: Duration,
    /// Most entries in one append RPC. Default 300.
    pub max_payload_entries: u64,
    /// The least time an RPC to a peer may take before it counts as lost;
    /// RPCs carrying data get 1 s more per 32 MiB they carry. openraft
    /// itself would allow an append only ¾ of a heartbeat interval, which a
    /// follower's fsync or a large value can exceed on every retry.
    /// Default 1 s.
    pub rpc_timeout: Duration,
    /// Seeds openraft's randomness (election timeouts, tick phases) for
    /// reproducible runs: each group draws from this seed mixed with its
    /// id ([`crate::rt`]). `None` (the default): seeded from the OS. Set by
    /// deterministic simulation only.
    pub rng_seed: Option<u64>,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            snapshot_every: 10_000,
            keep_after_snapshot: 1000,
            install_snapshot_timeout: Duration::from_secs(30),
            propose_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_payload_entries: 300,
            rpc_timeout: Duration::from_secs(1),
            rng_seed: None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl GroupsConfig {
    /// Builds openraft's configuration.
    ///
    /// Beyond the fields above: pre-vote is on (a node returning from a
    /// partition cannot depose a healthy leader by bumping the term), and a
    /// restarted leader never resumes leadership without an election.
    ///
    /// # Errors
    /// `RaftError::Config` if openraft rejects the values (e.g. the election
    /// timeout range is empty or not above the heartbeat interval), or
    /// `snapshot_every` is 0.
    pub fn to_openraft(&self) -> Result<Arc<openraft::Config>, RaftError> {
        if self.snapshot_every == 0 {
            return Err(RaftError::Config(
                "snapshot_every must be at least 1".into(),
            ));
        }
        let config = openraft::Config {
            cluster_name: "fulcrum".to_string(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: millis(self.install_snapshot_timeout),
            max_payload_entries: self.max_payload_entries,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            // Followers further behind than this get a snapshot; it must
            // exceed the snapshot interval or snapshots cannot catch up.
            replication_lag_threshold: self.snapshot_every.saturating_mul(2).max(1000),
            enable_pre_vote: Some(true),
            enable_leader_restore: Some(false),
            ..openraft::Config::default()
        };
        let config = config
            .validate()
            .map_err(|e| RaftError::Config(e.to_string()))?;
        Ok(Arc::new(config))
    }
}

/// Where proposals get their time: the leader's clock, written into the
/// log entry (see [`crate::Request::now_ms`]).
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        let c = GroupsConfig::default().to_openraft().unwrap();
        assert_eq!(c.heartbeat_interval, 100);
        assert_eq!(c.election_timeout_min, 500);
        let bad = GroupsConfig {
            election_timeout_min: Duration::from_millis(900),
            election_timeout_max: Duration::from_millis(800),
            ..GroupsConfig::default()
        };
        assert!(matches!(bad.to_openraft(), Err(RaftError::Config(_))));
        let bad = GroupsConfig {
            snapshot_every: 0,
            ..GroupsConfig::default()
        };
        assert!(matches!(bad.to_openraft(), Err(RaftError::Config(_))));
    }
}
