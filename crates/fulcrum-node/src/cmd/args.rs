//! Small argument parsers shared by the command files.

use bytes::Bytes;

use super::CmdError;

/// Whether `arg` equals `word` ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses a signed 64-bit integer the way Redis does (no spaces, no `+`).
pub fn int(arg: &[u8]) -> Result<i64, CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| CmdError::NotInteger)?;
    if s.is_empty() || s.starts_with('+') || s.len() > 20 {
        return Err(CmdError::NotInteger);
    }
    s.parse::<i64>().map_err(|_| CmdError::NotInteger)
}

/// An argument as UTF-8 text (keyspace names, levels, options).
pub fn text(arg: &Bytes) -> Result<&str, CmdError> {
    std::str::from_utf8(arg).map_err(|_| CmdError::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_parses_like_redis() {
        assert_eq!(int(b"-42").unwrap(), -42);
        assert!(int(b"+1").is_err());
        assert!(int(b" 1").is_err());
        assert!(int(b"").is_err());
        assert!(int(b"9223372036854775808").is_err());
        assert_eq!(int(b"9223372036854775807").unwrap(), i64::MAX);
    }
}
