//! The byte formats of everything this crate stores or sends.
//!
//! Every stored value (log entry, vote, committed and purged pointers, the
//! state machine's applied state, each key's value, snapshots) and every RPC
//! is one format-version byte followed by the postcard encoding of a serde
//! type. A reader refuses a version it does not know instead of guessing, so
//! a later format change is a new version number plus a reader for the old
//! one.
//!
//! Log entries are keyed by their index as 8 big-endian bytes, so storage
//! order is log order.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value is empty or starts with a version this build does not know.
    #[error("{what}: unknown format version {version:?} (this build reads {FORMAT_VERSION})")]
    UnknownVersion {
        what: &'static str,
        version: Option<u8>,
    },
    /// postcard refused the bytes (corruption, or a bug).
    #[error("{what}: malformed encoding: {message}")]
    Malformed { what: &'static str, message: String },
}

/// Encodes `value` as the version byte plus its postcard bytes.
///
/// # Errors
/// `CodecError::Malformed` if serde refuses the value (it cannot for the
/// types of this crate; kept for honesty).
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_extend(value, vec![FORMAT_VERSION]).map_err(|e| CodecError::Malformed {
        what,
        message: e.to_string(),
    })
}

/// Decodes what [`encode`] wrote; trailing bytes are an error.
///
/// # Errors
/// `UnknownVersion` for an empty value or another version byte,
/// `Malformed` if the rest is not exactly one `T`.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(CodecError::UnknownVersion {
            what,
            version: None,
        });
    };
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion {
            what,
            version: Some(version),
        });
    }
    let (value, tail) = postcard::take_from_bytes(rest).map_err(|e| CodecError::Malformed {
        what,
        message: e.to_string(),
    })?;
    if !tail.is_empty() {
        return Err(CodecError::Malformed {
            what,
            message: format!("{} trailing bytes", tail.len()),
        });
    }
    Ok(value)
}

/// The storage key of log index `index`.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The log index a storage key stands for.
pub(crate) fn key_index(key: &[u8]) -> Result<u64, CodecError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| CodecError::Malformed {
        what: "log key",
        message: format!("{} bytes instead of 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bytes = encode("t", &(7u64, "x".to_string())).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode("t", &bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));

        assert!(matches!(
            decode::<u64>("t", &[]),
            Err(CodecError::UnknownVersion { version: None, .. })
        ));
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(matches!(
            decode::<(u64, String)>("t", &other),
            Err(CodecError::UnknownVersion {
                version: Some(9),
                ..
            })
        ));
        let mut long = bytes;
        long.push(0);
        assert!(matches!(
            decode::<(u64, String)>("t", &long),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn index_keys_sort_like_indexes() {
        assert!(index_key(9) < index_key(10));
        assert!(index_key(255) < index_key(256));
        assert_eq!(key_index(&index_key(42)).unwrap(), 42);
        assert!(key_index(b"short").is_err());
    }
}
