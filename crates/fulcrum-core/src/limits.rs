//! Request size limits, shared by the protocol parser and the command layer.

use serde::{Deserialize, Serialize};

/// Default key limit: 64 KiB less 1 KiB reserved for internal prefixes.
pub const KEY_HEADROOM_LIMIT: usize = 64 * 1024 - 1024;

/// Limits on what one request may carry. Past a limit a request gets an
/// error reply; the server stays up and other connections are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest key in bytes: 63 KiB (64,512), which leaves the storage
    /// engine's 64 KiB key limit room for internal prefixes such as the
    /// expiry index's.
    pub max_key_bytes: usize,
    /// Largest value in bytes (16 MiB).
    pub max_value_bytes: usize,
    /// Most elements in one request array (1 M).
    pub max_array_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: KEY_HEADROOM_LIMIT,
            max_value_bytes: 16 * 1024 * 1024,
            max_array_len: 1024 * 1024,
        }
    }
}

impl Limits {
    /// The largest bulk string the protocol layer accepts: a value plus room
    /// for nothing else, since a bulk string is either a key or a value.
    pub fn max_bulk_bytes(&self) -> usize {
        self.max_value_bytes.max(self.max_key_bytes)
    }
}
