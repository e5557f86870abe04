//! Storage errors.

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O failed during {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("storage engine failed during {op}: {message}")]
    Engine { op: &'static str, message: String },
    #[error("table '{0}' does not exist")]
    NoSuchTable(String),
    #[error("invalid table name '{0}'")]
    BadTableName(String),
    #[error("key of {len} bytes is larger than the engine's limit of {max}")]
    KeyTooLarge { len: usize, max: usize },
    #[error("an earlier fsync failed; the node refuses further writes: {0}")]
    Poisoned(String),
    #[error("storage is closed")]
    Closed,
}

pub type StorageResult<T> = Result<T, StorageError>;
