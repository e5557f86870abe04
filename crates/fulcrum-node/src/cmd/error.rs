//! Command errors and the RESP error text each becomes. The first word of
//! the text is the error code clients switch on (`ERR`, `NOTSTRONG`,
//! `TOOLARGE`, `UNAVAILABLE`, `TIMEOUT`).

use bytes::Bytes;
use fulcrum_proto::Frame;

use crate::catalog::CatalogError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("ERR wrong number of arguments for '{}' command", .0.to_ascii_lowercase())]
    WrongArity(&'static str),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    #[error("NOTSTRONG {command} needs a strong keyspace; '{keyspace}' is eventual")]
    NotStrong { command: String, keyspace: String },
    #[error("TOOLARGE {what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("ERR keyspace '{0}' does not exist")]
    NoKeyspace(String),
    #[error("ERR {0}")]
    Msg(String),
    /// A full error text with its own code word.
    #[error("{0}")]
    Raw(String),
}

impl CmdError {
    /// Redis's reply to an unknown command, quoting up to the first
    /// arguments.
    pub fn unknown_command(args: &[Bytes]) -> CmdError {
        let name = String::from_utf8_lossy(&args[0]);
        let mut msg = format!(
            "ERR unknown command '{}', with args beginning with: ",
            truncate(&name, 128)
        );
        for a in args.iter().skip(1).take(16) {
            msg.push('\'');
            msg.push_str(&truncate(&String::from_utf8_lossy(a), 128));
            msg.push_str("' ");
        }
        CmdError::Raw(msg)
    }

    /// Redis's reply to an unknown subcommand `sub`; `hint` follows
    /// "Try " (`CLIENT HELP`, `CLUSTER LEAVE or REMOVE`).
    pub fn unknown_subcommand(sub: &[u8], hint: &str) -> CmdError {
        CmdError::Msg(format!(
            "unknown subcommand '{}'. Try {hint}.",
            String::from_utf8_lossy(sub)
        ))
    }

    /// Redis's wrong-arity reply for subcommand `sub` of `command`
    /// (`'client|id'`).
    pub fn subcommand_arity(command: &str, sub: &[u8]) -> CmdError {
        CmdError::Msg(format!(
            "wrong number of arguments for '{}|{}' command",
            command.to_ascii_lowercase(),
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        ))
    }

    pub fn into_frame(self) -> Frame {
        Frame::Error(self.to_string())
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl From<DbError> for CmdError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Catalog(c) => c.into(),
            other => CmdError::Msg(other.to_string()),
        }
    }
}

impl From<CatalogError> for CmdError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Missing(name) => CmdError::NoKeyspace(name),
            other => CmdError::Msg(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_redis() {
        assert_eq!(
            CmdError::WrongArity("GET").to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        let args = vec![Bytes::from("foo"), Bytes::from("a"), Bytes::from("b")];
        assert_eq!(
            CmdError::unknown_command(&args).to_string(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            CmdError::unknown_subcommand(b"Frob", "CLIENT HELP").to_string(),
            "ERR unknown subcommand 'Frob'. Try CLIENT HELP."
        );
        assert_eq!(
            CmdError::subcommand_arity("CLIENT", b"Id").to_string(),
            "ERR wrong number of arguments for 'client|id' command"
        );
    }
}
