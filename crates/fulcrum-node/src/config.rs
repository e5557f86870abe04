//! Node configuration: one serde struct with defaults, readable units,
//! `deny_unknown_fields` and a `validate()`.
//!
//! Sources, strongest first: command-line flags, `FULCRUM_<KEY>` environment
//! variables, the TOML file given by `--config`, built-in defaults. The
//! binary parses flags and environment into a [`ConfigOverrides`]; this
//! module loads the file and lays the overrides on top. TOML keys are the
//! flag names without dashes in front (`node-id = "n1"`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fulcrum_core::limits::Limits;
use fulcrum_storage::FsyncPolicy;
use serde::{Deserialize, Serialize};

/// Everything one node needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// Stable name of this node; it names the node's replicas and dots.
    pub node_id: String,
    /// Everything the node persists lives below this directory.
    pub data_dir: PathBuf,
    /// Client protocol (RESP).
    pub resp_addr: SocketAddr,
    /// Health, status, metrics.
    pub http_addr: SocketAddr,
    /// Node-to-node traffic.
    pub peer_addr: SocketAddr,
    /// The peer address other members should dial, when it differs from
    /// `peer-addr` (NAT, containers, or a fault-injecting proxy in tests).
    pub peer_advertise_addr: Option<String>,
    /// The UDP address other members send gossip to, when it differs from
    /// the default (the peer port, on the IP the peer advertise address
    /// resolves to if `peer-addr` is unspecified): a fault-injecting proxy
    /// in tests, or NAT.
    pub gossip_advertise_addr: Option<SocketAddr>,
    /// Peer addresses of members to join; empty starts a new cluster.
    pub seeds: Vec<String>,
    /// Placement domains: replicas of a key spread over distinct DCs/racks.
    pub dc: String,
    pub rack: String,
    /// When a write is acknowledged relative to fsync.
    #[serde(with = "fsync_serde")]
    pub fsync: FsyncPolicy,
    /// Largest key in bytes.
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Most elements in one request array.
    pub max_array_len: usize,
    /// Block cache for the storage engine, in MiB.
    pub cache_mb: u64,
    /// How often the TTL sweeper deletes expired keys, in ms.
    pub sweep_interval_ms: u64,
    /// Most client connections served at once; more are refused.
    pub max_clients: usize,
    /// Worker threads of the async runtime that serves peers, HTTP and
    /// the clients' commands that are not local (client connections and
    /// local data commands run on the RESP event-loop thread, `resp/`);
    /// 0 (the default) is one per CPU core but one, at least one (see
    /// [`NodeConfig::worker_threads`]).
    pub threads: usize,
    /// A tombstone is purged only when every replica holds it and it is
    /// older than this, ms (late writes, e.g. hints, must land before).
    pub tombstone_grace_ms: u64,
    /// How often replicas compare Merkle trees (anti-entropy), ms.
    pub aae_interval_ms: u64,
    /// How long a coordinated read or write may take before `TIMEOUT`, ms.
    pub request_timeout_ms: u64,
    /// Budget of partition streaming (join, leave, remove), MiB/s; 0 is
    /// unlimited.
    pub stream_mb_per_sec: u64,
    /// Accept `FAULT …` commands (tests, demos, `fulcrum verify`). Never
    /// on in production.
    pub allow_faults: bool,
    /// Seeds the Raft groups' randomness (election timeouts), so a
    /// deterministic simulation repeats; not a setting (no flag, no file
    /// key). `None`: seeded from the OS.
    #[serde(skip)]
    pub raft_seed: Option<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: "n1".to_string(),
            data_dir: PathBuf::from("./fulcrum-data"),
            resp_addr: SocketAddr::from(([127, 0, 0, 1], 7379)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7380)),
            peer_addr: SocketAddr::from(([127, 0, 0, 1], 7381)),
            peer_advertise_addr: None,
            gossip_advertise_addr: None,
            seeds: Vec::new(),
            dc: "dc1".to_string(),
            rack: "r1".to_string(),
            fsync: FsyncPolicy::Always,
            max_key_bytes: Limits::default().max_key_bytes,
            max_value_bytes: Limits::default().max_value_bytes,
            max_array_len: Limits::default().max_array_len,
            cache_mb: 64,
            sweep_interval_ms: 100,
            max_clients: 10_000,
            threads: 0,
            request_timeout_ms: 2_000,
            aae_interval_ms: 10_000,
            tombstone_grace_ms: 3_600_000,
            stream_mb_per_sec: 64,
            allow_faults: false,
            raft_seed: None,
        }
    }
}

/// Most worker threads `threads` accepts.
pub const MAX_THREADS: usize = 1024;

impl NodeConfig {
    /// The async runtime's worker threads on a machine with `cores` CPU
    /// cores: `threads` when set, else one per core but one (at least one).
    ///
    /// Why not one per core: a core is left to the storage engine's flush
    /// and compaction threads, the fsyncs and the kernel's network stack
    /// (and, on a small machine, to the clients sharing it). On two cores,
    /// two workers spent about 40% more CPU per request than one (workers
    /// waking each other and contending with the clients for the cores),
    /// and served fewer requests (BENCHMARKS.md).
    pub fn worker_threads(&self, cores: usize) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            cores.saturating_sub(1).max(1)
        }
    }
}

/// A configuration problem, naming the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for '{key}': {message}")]
    Invalid { key: &'static str, message: String },
}

/// Values given on the command line or in the environment; `None` means
/// "not given here", so the file or default applies.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    pub node_id: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub resp_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub peer_addr: Option<SocketAddr>,
    pub peer_advertise_addr: Option<String>,
    pub gossip_advertise_addr: Option<SocketAddr>,
    pub seeds: Option<Vec<String>>,
    pub dc: Option<String>,
    pub rack: Option<String>,
    pub fsync: Option<FsyncPolicy>,
    pub max_key_bytes: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub max_array_len: Option<usize>,
    pub cache_mb: Option<u64>,
    pub sweep_interval_ms: Option<u64>,
    pub max_clients: Option<usize>,
    pub threads: Option<usize>,
    pub request_timeout_ms: Option<u64>,
    pub aae_interval_ms: Option<u64>,
    pub tombstone_grace_ms: Option<u64>,
    pub stream_mb_per_sec: Option<u64>,
    pub allow_faults: Option<bool>,
}

impl NodeConfig {
    /// The request limits as the protocol and command layers use them.
    pub fn limits(&self) -> Limits {
        Limits {
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            max_array_len: self.max_array_len,
        }
    }

    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] naming the unknown key or bad value.
    pub fn from_toml(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Loads the file (if any), applies `overrides`, validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, key or value at fault.
    pub fn load(
        file: Option<&Path>,
        overrides: ConfigOverrides,
    ) -> Result<NodeConfig, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                NodeConfig::from_toml(&text, path)?
            }
            None => NodeConfig::default(),
        };
        cfg.apply(overrides);
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply(&mut self, o: ConfigOverrides) {
        fn set<T>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut self.node_id, o.node_id);
        set(&mut self.data_dir, o.data_dir);
        set(&mut self.resp_addr, o.resp_addr);
        set(&mut self.http_addr, o.http_addr);
        set(&mut self.peer_addr, o.peer_addr);
        if o.peer_advertise_addr.is_some() {
            self.peer_advertise_addr = o.peer_advertise_addr;
        }
        if o.gossip_advertise_addr.is_some() {
            self.gossip_advertise_addr = o.gossip_advertise_addr;
        }
        set(&mut self.seeds, o.seeds);
        set(&mut self.dc, o.dc);
        set(&mut self.rack, o.rack);
        set(&mut self.fsync, o.fsync);
        set(&mut self.max_key_bytes, o.max_key_bytes);
        set(&mut self.max_value_bytes, o.max_value_bytes);
        set(&mut self.max_array_len, o.max_array_len);
        set(&mut self.cache_mb, o.cache_mb);
        set(&mut self.sweep_interval_ms, o.sweep_interval_ms);
        set(&mut self.max_clients, o.max_clients);
        set(&mut self.threads, o.threads);
        set(&mut self.request_timeout_ms, o.request_timeout_ms);
        set(&mut self.aae_interval_ms, o.aae_interval_ms);
        set(&mut self.tombstone_grace_ms, o.tombstone_grace_ms);
        set(&mut self.stream_mb_per_sec, o.stream_mb_per_sec);
        set(&mut self.allow_faults, o.allow_faults);
    }

    /// Checks values against each other and against hard limits.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.node_id.is_empty()
            || self.node_id.len() > 64
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return invalid("node-id", "use 1-64 characters of A-Z a-z 0-9 _ - .");
        }
        for (key, v) in [("dc", &self.dc), ("rack", &self.rack)] {
            if v.is_empty() || v.len() > 64 {
                return invalid(key, "must be 1-64 characters");
            }
        }
        let ports = [self.resp_addr, self.http_addr, self.peer_addr];
        if (ports[0] == ports[1] || ports[0] == ports[2] || ports[1] == ports[2])
            && ports.iter().all(|a| a.port() != 0)
        {
            {
                return invalid(
                    "resp-addr",
                    "resp-addr, http-addr and peer-addr must differ",
                );
            }
        }
        let max_key = fulcrum_storage::MAX_KEY_LEN - 128;
        if self.max_key_bytes == 0 || self.max_key_bytes > max_key {
            return invalid(
                "max-key-bytes",
                &format!("must be between 1 and {max_key} (the storage engine's key limit less 128 bytes for internal prefixes)"),
            );
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 512 * 1024 * 1024 {
            return invalid(
                "max-value-bytes",
                "must be between 1 and 536870912 (512 MiB)",
            );
        }
        if self.max_array_len == 0 {
            return invalid("max-array-len", "must be at least 1");
        }
        if self.sweep_interval_ms == 0 {
            return invalid("sweep-interval-ms", "must be at least 1");
        }
        if self.aae_interval_ms < 100 {
            return invalid("aae-interval-ms", "must be at least 100");
        }
        if self.request_timeout_ms == 0 {
            return invalid("request-timeout-ms", "must be at least 1");
        }
        if self.max_clients == 0 {
            return invalid("max-clients", "must be at least 1");
        }
        if self.threads > MAX_THREADS {
            return invalid(
                "threads",
                &format!("must be between 0 (one per CPU core) and {MAX_THREADS}"),
            );
        }
        Ok(())
    }
}

mod fsync_serde {
    use fulcrum_storage::FsyncPolicy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &FsyncPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(p)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FsyncPolicy, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_in_file_is_named() {
        let err = NodeConfig::from_toml("node-id = \"a\"\nbogus = 1\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn default_threads_leave_one_core_and_a_set_value_wins() {
        let mut cfg = NodeConfig::default();
        assert_eq!(cfg.worker_threads(1), 1);
        assert_eq!(cfg.worker_threads(2), 1);
        assert_eq!(cfg.worker_threads(8), 7);
        cfg.threads = 3;
        assert_eq!(cfg.worker_threads(1), 3);
        assert_eq!(cfg.worker_threads(8), 3);
    }

    #[test]
    fn bad_fsync_value_is_named() {
        let err = NodeConfig::from_toml("fsync = \"sometimes\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes"), "{err}");
    }

    #[test]
    fn overrides_win_over_file() {
        let mut cfg =
            NodeConfig::from_toml("node-id = \"file\"\ndc = \"east\"\n", Path::new("x")).unwrap();
        cfg.apply(ConfigOverrides {
            node_id: Some("flag".into()),
            ..Default::default()
        });
        assert_eq!(cfg.node_id, "flag");
        assert_eq!(cfg.dc, "east");
    }

    #[test]
    fn gossip_advertise_address_comes_from_the_file_or_a_flag() {
        let mut cfg = NodeConfig::from_toml(
            "gossip-advertise-addr = \"10.0.0.5:7381\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(
            cfg.gossip_advertise_addr,
            Some(([10, 0, 0, 5], 7381).into())
        );
        cfg.apply(ConfigOverrides {
            gossip_advertise_addr: Some(([127, 0, 0, 1], 9000).into()),
            ..Default::default()
        });
        assert_eq!(
            cfg.gossip_advertise_addr,
            Some(([127, 0, 0, 1], 9000).into())
        );
        assert!(
            NodeConfig::from_toml("gossip-advertise-addr = \"host\"\n", Path::new("x")).is_err()
        );
    }

    #[test]
    fn validate_names_the_bad_key() {
        let cfg = NodeConfig {
            node_id: "bad id".into(),
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("node-id"));
        let cfg = NodeConfig {
            max_clients: 0,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max-clients"));
    }

    #[test]
    fn example_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fulcrum.example.toml");
        let cfg = NodeConfig::load(Some(&path), ConfigOverrides::default()).unwrap();
        assert_eq!(cfg.node_id, "n1");
        assert_eq!(cfg.fsync, FsyncPolicy::Always);
    }
}
