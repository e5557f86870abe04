//! What one simulation run does, derived entirely from its seed (so the
//! seed alone reproduces it), with knobs the tests may override.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use fulcrum_storage::FsyncPolicy;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The kind of trouble the nemesis makes. Every scenario also has random
/// message latency between `min_latency` and `max_latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// No faults: latency only. The baseline every guarantee must meet.
    Calm,
    /// Network partitions and link stalls, as turmoil *holds*: packets
    /// wait on the link and are delivered at the heal, which is what TCP's
    /// retransmission does for a partition shorter than its timeout.
    /// Isolates one node from the other nodes, or from everyone, or stalls
    /// one node-to-node link.
    Partitions,
    /// Power loss of one node at a time (its unsynced writes are lost),
    /// and its restart from the same disk some time later, or at once; now
    /// and then of the whole cluster at once.
    Crashes,
    /// Partitions, stalls and crashes, one episode at a time.
    Mixed,
    /// turmoil's random link failure (`fail_rate`/`repair_rate`) on top of
    /// partitions: packets on a failed link are dropped. turmoil's TCP has
    /// no retransmission, so a connection that loses a segment stops
    /// delivering for good (see the crate docs). Not in the seed rotation.
    Lossy,
}

impl Scenario {
    /// The scenarios a seed chooses from (`seed % 4`).
    pub const ROTATION: [Scenario; 4] = [
        Scenario::Calm,
        Scenario::Partitions,
        Scenario::Crashes,
        Scenario::Mixed,
    ];

    /// Whether nodes may crash in this scenario.
    pub fn crashes(self) -> bool {
        matches!(self, Scenario::Crashes | Scenario::Mixed)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Scenario::Calm => "calm",
            Scenario::Partitions => "partitions",
            Scenario::Crashes => "crashes",
            Scenario::Mixed => "mixed",
            Scenario::Lossy => "lossy",
        })
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "calm" => Ok(Scenario::Calm),
            "partitions" => Ok(Scenario::Partitions),
            "crashes" => Ok(Scenario::Crashes),
            "mixed" => Ok(Scenario::Mixed),
            "lossy" => Ok(Scenario::Lossy),
            other => Err(format!(
                "unknown scenario '{other}': calm, partitions, crashes, mixed or lossy"
            )),
        }
    }
}

/// Everything a run needs. [`SimConfig::from_seed`] fills it from a seed.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub scenario: Scenario,
    /// Fulcrum nodes (3: every key has a replica on every node).
    pub nodes: usize,
    /// Clients running the register workload on the eventual keyspace.
    pub eventual_clients: usize,
    /// Clients running the register workload on the strong keyspace.
    pub strong_clients: usize,
    /// Whether the strong keyspace (8 Raft groups) exists at all. On by
    /// default; runs with and without it repeat exactly (see the crate
    /// docs). Off makes runs shorter, for harness self-tests.
    pub strong: bool,
    /// Keys per keyspace (few keys, so operations on a key overlap).
    pub keys: usize,
    /// How long clients run operations while the nemesis acts.
    pub workload: Duration,
    /// Quiet time after the heal before the final reads.
    pub settle: Duration,
    /// One-way message latency range.
    pub min_latency: Duration,
    pub max_latency: Duration,
    /// Lossy only: chance that a message breaks its link, and that a
    /// message on a broken link repairs it.
    pub fail_rate: f64,
    pub repair_rate: f64,
    /// How long a client waits for a reply before it records the operation
    /// as unknown and reconnects.
    pub client_timeout: Duration,
    /// The node's `request-timeout-ms`.
    pub request_timeout_ms: u64,
    /// The nodes' fsync policy: `always` (the product's default). The
    /// harness's self-test sets `never` to check that the checkers catch
    /// acknowledged writes lost in a crash.
    pub fsync: FsyncPolicy,
}

impl SimConfig {
    /// The run for `seed`: scenario `ROTATION[seed % 4]`, latencies and
    /// link failure rates drawn from the seed.
    pub fn from_seed(seed: u64) -> SimConfig {
        let scenario = Scenario::ROTATION[(seed % 4) as usize];
        SimConfig::with_scenario(seed, scenario)
    }

    /// The run for `seed` with the scenario forced.
    pub fn with_scenario(seed: u64, scenario: Scenario) -> SimConfig {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED_F00D);
        let min_latency = Duration::from_micros(rng.random_range(0..=2_000));
        let max_latency = min_latency + Duration::from_micros(rng.random_range(2_000..=30_000));
        let (fail_rate, repair_rate) = if scenario == Scenario::Lossy {
            (rng.random_range(0.0005..0.005), rng.random_range(0.05..0.5))
        } else {
            (0.0, 1.0)
        };
        SimConfig {
            seed,
            scenario,
            nodes: 3,
            eventual_clients: 3,
            strong_clients: 2,
            strong: true,
            keys: 3,
            workload: Duration::from_millis(rng.random_range(4_000..=6_000)),
            settle: Duration::from_millis(1_500),
            min_latency,
            max_latency,
            fail_rate,
            repair_rate,
            client_timeout: Duration::from_millis(5_000),
            request_timeout_ms: 1_000,
            fsync: FsyncPolicy::Always,
        }
    }
}

impl fmt::Display for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} scenario {}: {} nodes (fsync {}), {}+{} clients, {} keys/keyspace, \
             workload {:?}, latency {:?}..{:?}",
            self.seed,
            self.scenario,
            self.nodes,
            self.fsync,
            self.eventual_clients,
            if self.strong { self.strong_clients } else { 0 },
            self.keys,
            self.workload,
            self.min_latency,
            self.max_latency,
        )?;
        if self.fail_rate > 0.0 {
            write!(
                f,
                ", fail rate {:.4}, repair rate {:.3}",
                self.fail_rate, self.repair_rate
            )?;
        }
        Ok(())
    }
}
