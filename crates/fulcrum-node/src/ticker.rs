//! The loop of every background task: tick every so often until the node
//! shuts down.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

pub struct Ticker {
    tick: Interval,
    shutdown: watch::Receiver<bool>,
}

impl Ticker {
    /// Ticks every `every` (a late tick delays the next one rather than
    /// bursting) until `shutdown` changes.
    pub fn new(every: Duration, shutdown: watch::Receiver<bool>) -> Ticker {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticker { tick, shutdown }
    }

    /// Waits for the next tick; `false` once the node is shutting down.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            _ = self.shutdown.changed() => false,
        }
    }
}
