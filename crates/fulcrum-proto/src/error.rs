//! Protocol errors: what went wrong decoding a request or a reply, whether
//! the stream can continue, and the error reply a server sends for it.
//!
//! Request errors fall in two classes:
//!
//! * **fatal**: the byte stream cannot be resynchronized (garbage length,
//!   missing CRLF, unbalanced quotes, ...). The server replies
//!   [`ProtoError::to_frame`] (`-ERR Protocol error: ...`, texts identical to
//!   Redis) and closes the connection.
//! * **recoverable**: [`ProtoError::TooLarge`]. The decoder has already
//!   discarded the offending request; the server replies `-TOOLARGE ...` and
//!   keeps decoding the next request.

use crate::frame::Frame;

/// A request or reply could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// `*<count>` is not a valid integer or the line is malformed.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `*<count>` is well formed but above `Limits::max_array_len`. Fatal:
    /// skipping a million element headers is not worth it.
    #[error("Protocol error: invalid multibulk length {len} (limit {max})")]
    MultibulkTooLong {
        /// The declared element count.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// `$<len>` is not a valid integer, is negative, or is absurdly large
    /// (above [`crate::MAX_SKIPPABLE_BULK`]).
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a multibulk request does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*got))]
    ExpectedBulk {
        /// The byte found instead of `$`.
        got: u8,
    },
    /// The payload of a bulk string is not followed by `\r\n`.
    #[error("Protocol error: expected CRLF after bulk data")]
    MissingCrlf,
    /// An inline request line is longer than 64 KiB.
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// The `*<count>` line is longer than 64 KiB.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkCountTooBig,
    /// A `$<len>` line is longer than 64 KiB.
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// An inline request has an unterminated quote, or a closing quote not
    /// followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Recoverable: a bulk string longer than the configured maximum. The
    /// whole request was discarded without being buffered.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// What was too large (`"argument"`).
        what: &'static str,
        /// The declared length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A reply (client side) is malformed.
    #[error("Protocol error: invalid reply: {reason}")]
    InvalidReply {
        /// What was wrong.
        reason: &'static str,
    },
}

impl ProtoError {
    /// Whether the stream is unusable after this error: the server must reply
    /// and close the connection. Only [`ProtoError::TooLarge`] is
    /// recoverable.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ProtoError::TooLarge { .. })
    }

    /// The error reply a server sends for this error: `ERR <text>` for fatal
    /// errors (the same texts as Redis), `TOOLARGE <text>` for oversized
    /// requests.
    pub fn to_frame(&self) -> Frame {
        match self {
            ProtoError::TooLarge { .. } => Frame::Error(format!("TOOLARGE {self}")),
            _ => Frame::Error(format!("ERR {self}")),
        }
    }
}
