//! The reply frame model, rich enough for RESP3 and encodable down to RESP2.

use bytes::Bytes;

/// Which RESP version a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply (or, in the client, a parsed server reply).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(String),
    /// `-ERR message`: the first word is the error code.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// RESP2 `$-1` (null bulk), RESP3 `_`.
    Null,
    /// RESP2 `*-1` (null array), RESP3 `_`.
    NullArray,
    Array(Vec<Frame>),
    /// RESP3 `%`; RESP2 gets a flat array of key, value, key, value.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~`; RESP2 gets an array.
    Set(Vec<Frame>),
    /// RESP3 `,`; RESP2 gets a bulk string.
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2 gets integer 1/0.
    Boolean(bool),
    /// RESP3 `=` with a three-letter format (`txt`); RESP2 gets a bulk string.
    Verbatim(String, Bytes),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_string())
    }

    /// An error reply; `msg` must start with the error code word
    /// (`ERR`, `WRONGTYPE`, `UNAVAILABLE`, ...).
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// A simple-string reply (`+text`).
    pub fn simple(s: impl Into<String>) -> Frame {
        Frame::Simple(s.into())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// The bytes of a bulk or simple string (or verbatim text), if it is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(b) | Frame::Verbatim(_, b) => Some(b),
            Frame::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}
