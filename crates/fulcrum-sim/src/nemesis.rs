//! The nemesis: a schedule of fault episodes drawn from the seed, applied
//! between simulation steps by the harness's loop (turmoil's `hold`,
//! `release`, `partition`, `repair`, `crash`, `bounce`), and the heal.
//!
//! Episodes do not overlap: each starts, lasts a while, ends, and the next
//! starts after a gap. Times are offsets from the moment the keyspaces
//! exist (the workload's start).

use std::fmt;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{Scenario, SimConfig};

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Hold every link between this node and the other nodes (clients
    /// still reach it).
    IsolateFromNodes(usize),
    /// Hold every link of this node, clients included.
    IsolateFully(usize),
    /// Hold the link between two nodes.
    Stall(usize, usize),
    /// Power loss: unsynced writes are lost and the node stays down until
    /// the episode ends, then restarts from its disk.
    Crash(usize),
    /// Power loss and immediate restart.
    Bounce(usize),
    /// Power loss of every node at once (a data centre outage); all
    /// restart when the episode ends.
    CrashAll,
    /// Drop (not hold) everything between this node and the other nodes.
    DropFromNodes(usize),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::IsolateFromNodes(n) => write!(f, "isolate n{} from the nodes (hold)", n + 1),
            Fault::IsolateFully(n) => write!(f, "isolate n{} from everyone (hold)", n + 1),
            Fault::Stall(a, b) => write!(f, "stall link n{}-n{} (hold)", a + 1, b + 1),
            Fault::Crash(n) => write!(f, "crash n{} (power loss)", n + 1),
            Fault::Bounce(n) => write!(f, "crash and restart n{} at once", n + 1),
            Fault::CrashAll => f.write_str("crash every node (power loss)"),
            Fault::DropFromNodes(n) => write!(f, "partition n{} from the nodes (drop)", n + 1),
        }
    }
}

/// A fault from `start` until `end` (offsets from the workload's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub start: Duration,
    pub end: Duration,
    pub fault: Fault,
}

/// The episodes of one run, in time order.
pub fn schedule(config: &SimConfig) -> Vec<Episode> {
    let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x0BAD_CAFE);
    let n = config.nodes;
    let mut out = Vec::new();
    if config.scenario == Scenario::Calm {
        return out;
    }
    let mut t = Duration::from_millis(rng.random_range(200..=600));
    // Leave the last half second of the workload fault-free.
    let last = config.workload.saturating_sub(Duration::from_millis(500));
    while t < last {
        let node = rng.random_range(0..n);
        let other = (node + rng.random_range(1..n)) % n;
        let partition = |rng: &mut SmallRng| match rng.random_range(0..3) {
            0 => Fault::IsolateFromNodes(node),
            1 => Fault::IsolateFully(node),
            _ => Fault::Stall(node, other),
        };
        let crash = |rng: &mut SmallRng| match rng.random_range(0..20) {
            0..=2 => Fault::CrashAll,
            3..=8 => Fault::Bounce(node),
            _ => Fault::Crash(node),
        };
        let fault = match config.scenario {
            Scenario::Calm => unreachable!(),
            Scenario::Partitions => partition(&mut rng),
            Scenario::Crashes => crash(&mut rng),
            Scenario::Mixed => {
                if rng.random_bool(0.5) {
                    partition(&mut rng)
                } else {
                    crash(&mut rng)
                }
            }
            Scenario::Lossy => {
                if rng.random_bool(0.5) {
                    Fault::DropFromNodes(node)
                } else {
                    partition(&mut rng)
                }
            }
        };
        let length = match fault {
            Fault::Bounce(_) => Duration::ZERO,
            _ => Duration::from_millis(rng.random_range(150..=1_500)),
        };
        let end = (t + length).min(last);
        out.push(Episode {
            start: t,
            end,
            fault,
        });
        t = end + Duration::from_millis(rng.random_range(100..=900));
    }
    out
}
