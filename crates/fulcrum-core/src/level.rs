//! Consistency levels: how many replicas a read or write must reach.
//!
//! Eventual keyspaces take `ONE TWO THREE QUORUM ALL LOCAL_QUORUM
//! EACH_QUORUM`, a number, and for writes `ANY`; strong keyspaces take
//! `LINEARIZABLE` and `SERIALIZABLE`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::keyspace::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalQuorum,
    EachQuorum,
    /// Writes only: a hinted write on any node counts.
    Any,
    /// An explicit replica count.
    Count(u32),
    /// Strong keyspaces: a single-copy view of the data.
    Linearizable,
    /// Strong keyspaces: any replica answers, possibly stale.
    Serializable,
}

/// Whether a level is asked for a read or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("unknown consistency level '{0}'")]
    Unknown(String),
    #[error("consistency level {level} is not valid for {mode} keyspaces")]
    WrongMode { level: Level, mode: Mode },
    #[error("consistency level ANY is only valid for writes")]
    AnyForRead,
    #[error("consistency level {count} is out of range 1..={replicas}")]
    OutOfRange { count: u32, replicas: u32 },
}

impl Level {
    /// The default level of a keyspace mode.
    pub fn default_for(mode: Mode) -> Level {
        match mode {
            Mode::Eventual => Level::Quorum,
            Mode::Strong => Level::Linearizable,
        }
    }

    /// Checks that this level makes sense for `op` on a keyspace of `mode`
    /// with `replicas` copies.
    ///
    /// # Errors
    /// [`LevelError`] naming what does not fit.
    pub fn validate(self, mode: Mode, op: Op, replicas: u32) -> Result<(), LevelError> {
        let strong_level = matches!(self, Level::Linearizable | Level::Serializable);
        if strong_level != (mode == Mode::Strong) {
            return Err(LevelError::WrongMode { level: self, mode });
        }
        if self == Level::Any && op == Op::Read {
            return Err(LevelError::AnyForRead);
        }
        if let Level::Count(count) = self {
            if count == 0 || count > replicas {
                return Err(LevelError::OutOfRange { count, replicas });
            }
        }
        Ok(())
    }

    /// How many of `replicas` copies must answer (eventual levels). `ANY`
    /// needs one acknowledgement, which may be a hint. Fixed counts larger
    /// than the replica count are capped, which matches a cluster smaller
    /// than the keyspace's replica setting.
    pub fn required(self, replicas: u32) -> u32 {
        let quorum = replicas / 2 + 1;
        match self {
            Level::One | Level::Any => 1,
            Level::Two => 2.min(replicas),
            Level::Three => 3.min(replicas),
            Level::Quorum | Level::LocalQuorum | Level::EachQuorum => quorum,
            Level::All => replicas,
            Level::Count(n) => n.min(replicas),
            Level::Linearizable | Level::Serializable => quorum,
        }
    }
}

impl FromStr for Level {
    type Err = LevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "ONE" => Level::One,
            "TWO" => Level::Two,
            "THREE" => Level::Three,
            "QUORUM" => Level::Quorum,
            "ALL" => Level::All,
            "LOCAL_QUORUM" => Level::LocalQuorum,
            "EACH_QUORUM" => Level::EachQuorum,
            "ANY" => Level::Any,
            "LINEARIZABLE" => Level::Linearizable,
            "SERIALIZABLE" => Level::Serializable,
            _ => match upper.parse::<u32>() {
                Ok(n) if n > 0 => Level::Count(n),
                _ => return Err(LevelError::Unknown(s.to_string())),
            },
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Level::One => "ONE",
            Level::Two => "TWO",
            Level::Three => "THREE",
            Level::Quorum => "QUORUM",
            Level::All => "ALL",
            Level::LocalQuorum => "LOCAL_QUORUM",
            Level::EachQuorum => "EACH_QUORUM",
            Level::Any => "ANY",
            Level::Linearizable => "LINEARIZABLE",
            Level::Serializable => "SERIALIZABLE",
            Level::Count(n) => return write!(f, "{n}"),
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively_and_numbers() {
        assert_eq!("quorum".parse::<Level>(), Ok(Level::Quorum));
        assert_eq!("Local_Quorum".parse::<Level>(), Ok(Level::LocalQuorum));
        assert_eq!("2".parse::<Level>(), Ok(Level::Count(2)));
        assert!("0".parse::<Level>().is_err());
        assert!("MOST".parse::<Level>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for l in [
            Level::One,
            Level::EachQuorum,
            Level::Count(4),
            Level::Serializable,
        ] {
            assert_eq!(l.to_string().parse::<Level>(), Ok(l));
        }
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!(Level::Quorum.required(3), 2);
        assert_eq!(Level::Quorum.required(4), 3);
        assert_eq!(Level::Quorum.required(1), 1);
        assert_eq!(Level::All.required(5), 5);
        assert_eq!(Level::Three.required(2), 2);
    }

    #[test]
    fn validate_rejects_levels_of_the_other_mode() {
        assert!(Level::Linearizable
            .validate(Mode::Eventual, Op::Read, 3)
            .is_err());
        assert!(Level::Quorum.validate(Mode::Strong, Op::Read, 3).is_err());
        assert!(Level::Any.validate(Mode::Eventual, Op::Read, 3).is_err());
        assert!(Level::Any.validate(Mode::Eventual, Op::Write, 3).is_ok());
        assert!(Level::Count(4)
            .validate(Mode::Eventual, Op::Write, 3)
            .is_err());
    }
}
