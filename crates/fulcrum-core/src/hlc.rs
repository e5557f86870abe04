//! Hybrid logical clock (Kulkarni et al.): a timestamp that follows physical
//! time but never goes backwards and always moves past any timestamp seen.
//!
//! Packed into a `u64`: the high 48 bits are milliseconds since the Unix
//! epoch, the low 16 bits a logical counter. Ordering of the packed integer is
//! the clock's ordering, so timestamps compare and store as plain integers.

use std::fmt;

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// One hybrid-logical-clock timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc(pub u64);

impl Hlc {
    /// The zero timestamp, older than every real one.
    pub const ZERO: Hlc = Hlc(0);

    pub fn new(physical_ms: u64, logical: u16) -> Hlc {
        Hlc((physical_ms << LOGICAL_BITS) | u64::from(logical))
    }

    /// Milliseconds since the Unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// The clock state of one node. Pure: the caller passes the wall time in.
#[derive(Debug, Default, Clone)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh timestamp for a local event at wall time `wall_ms`: greater
    /// than every timestamp this clock has issued or observed.
    pub fn now(&mut self, wall_ms: u64) -> Hlc {
        let last_phys = self.last.physical_ms();
        self.last = if wall_ms > last_phys {
            Hlc::new(wall_ms, 0)
        } else {
            self.successor_of_last()
        };
        self.last
    }

    /// Folds in a timestamp received from another node, so that later local
    /// timestamps order after it.
    pub fn observe(&mut self, remote: Hlc) {
        if remote > self.last {
            self.last = remote;
        }
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    fn successor_of_last(&self) -> Hlc {
        match self.last.logical().checked_add(1) {
            Some(l) => Hlc::new(self.last.physical_ms(), l),
            // Logical counter exhausted within one millisecond: borrow the
            // next millisecond rather than wrap.
            None => Hlc::new(self.last.physical_ms() + 1, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_physical_and_logical_parts() {
        let t = Hlc::new(1_700_000_000_123, 7);
        assert_eq!(t.physical_ms(), 1_700_000_000_123);
        assert_eq!(t.logical(), 7);
        assert_eq!(t.to_string(), "1700000000123.7");
    }

    #[test]
    fn never_goes_backwards_when_wall_clock_does() {
        let mut c = HlcClock::new();
        let a = c.now(1000);
        let b = c.now(900);
        let d = c.now(900);
        assert!(a < b && b < d);
        assert_eq!(b.physical_ms(), 1000);
    }

    #[test]
    fn moves_past_observed_remote_timestamps() {
        let mut c = HlcClock::new();
        c.now(1000);
        c.observe(Hlc::new(5000, 3));
        let t = c.now(1001);
        assert!(t > Hlc::new(5000, 3));
    }

    #[test]
    fn follows_wall_clock_when_it_advances() {
        let mut c = HlcClock::new();
        c.now(1000);
        assert_eq!(c.now(2000), Hlc::new(2000, 0));
    }

    #[test]
    fn logical_overflow_borrows_next_millisecond() {
        let mut c = HlcClock::new();
        c.observe(Hlc::new(10, u16::MAX));
        let t = c.now(10);
        assert_eq!(t, Hlc::new(11, 0));
    }
}
