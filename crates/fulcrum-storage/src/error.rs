//! Storage errors.
//!
//! Every variant names what failed: the operation (`op`) for I/O and engine
//! failures, the table for missing tables, the sizes for limit violations.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O call failed.
    #[error("storage I/O failed during {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The engine reported a failure that is not plain I/O (corruption,
    /// a locked directory, a bad format version, ...).
    #[error("storage engine failed during {op}: {message}")]
    Engine { op: &'static str, message: String },
    /// The named table was never created or has been dropped.
    #[error("table '{0}' does not exist")]
    NoSuchTable(String),
    /// The table name is empty or too long (see [`crate::MAX_TABLE_NAME_LEN`]).
    #[error("invalid table name '{0}'")]
    BadTableName(String),
    /// The key is longer than [`crate::MAX_KEY_LEN`].
    #[error("key of {len} bytes is larger than the engine's limit of {max}")]
    KeyTooLarge { len: usize, max: usize },
    /// The value is longer than [`crate::MAX_VALUE_LEN`].
    #[error("value of {len} bytes is larger than the engine's limit of {max}")]
    ValueTooLarge { len: usize, max: usize },
    /// An fsync failed earlier. Such failures are not retryable (the kernel
    /// may have dropped the dirty pages), so every later write or durability
    /// request fails with this error until the process restarts and recovers.
    #[error("an earlier fsync failed; the node refuses further writes: {0}")]
    Poisoned(String),
    /// The storage (or the group committer) was closed or crashed.
    #[error("storage is closed")]
    Closed,
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;
