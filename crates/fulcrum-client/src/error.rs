//! Client errors: transport failures, malformed replies, server error
//! replies (typed helpers only), timeouts and closed connections.

use std::time::Duration;

use fulcrum_proto::{Frame, ProtoError};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A socket operation failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done: `"connect"`, `"write"` or `"read"`.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server sent bytes that are not a valid RESP reply. The
    /// connection is unusable afterwards.
    #[error("malformed reply: {0}")]
    Protocol(#[from] ProtoError),
    /// The server answered a typed helper with an error reply
    /// (`-ERR ...`); the text is the whole message, code included.
    #[error("server error: {0}")]
    ServerError(String),
    /// The server answered a typed helper with a reply of the wrong type.
    #[error("unexpected reply to {command}: {reply:?}")]
    UnexpectedReply {
        /// The command sent.
        command: &'static str,
        /// What came back.
        reply: Frame,
    },
    /// The operation did not finish within the configured I/O timeout.
    /// The connection stays usable: unsent bytes are sent and late replies
    /// are discarded by the next command.
    #[error("{op} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server closed the connection (possibly mid-reply).
    #[error("connection closed by the server")]
    Closed,
}

impl ClientError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ClientError {
        move |source| ClientError::Io { op, source }
    }
}
