//! Server-side request decoding: multibulk (`*N\r\n$len\r\n...`) and inline
//! (`set a b\r\n`) commands into argument lists, incrementally and with size
//! limits.
//!
//! The decoder keeps its progress between calls: a header once parsed is not
//! parsed again, arguments are split off the buffer as soon as they are
//! complete, and a line is searched for its terminator only once. A large
//! value arriving in pieces therefore costs one length check per piece.
//!
//! Oversized arguments are discarded as they arrive (skip mode) and reported
//! as the recoverable [`ProtoError::TooLarge`] once the whole request has
//! been consumed; everything else that is malformed is fatal. See
//! [`crate::error`].

use bytes::{Buf, Bytes, BytesMut};
use fulcrum_core::limits::Limits;

use crate::error::ProtoError;
use crate::inline::split_args;
use crate::scan::{parse_strict_i64, LineScan, LINE_MAX};

/// One decoded command: its arguments, the command name first. The
/// arguments share the read buffer's allocation (zero-copy).
pub type Request = Vec<Bytes>;

/// Declared bulk lengths above this are fatal [`ProtoError::InvalidBulkLength`]
/// rather than skipped: like Redis's `proto-max-bulk-len` (512 MiB), a length
/// this large almost always means a desynchronized stream.
pub const MAX_SKIPPABLE_BULK: u64 = 512 * 1024 * 1024;

/// Preallocate at most this many argument slots from a declared count.
const MAX_PREALLOC_ARGS: usize = 64;

/// Decodes a stream of client requests. One decoder per connection.
///
/// Call [`decode`](RequestDecoder::decode) whenever bytes were appended to
/// the connection's buffer, until it returns `Ok(None)`:
///
/// * `Ok(Some(args))`: execute the command.
/// * `Ok(None)`: need more bytes (everything consumable was consumed).
/// * `Err(e)` with `!e.is_fatal()` ([`ProtoError::TooLarge`]): reply
///   `e.to_frame()` and keep decoding; the request is gone.
/// * `Err(e)` with `e.is_fatal()`: reply `e.to_frame()` and close. The
///   decoder keeps returning the same error.
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    scan: LineScan,
    state: State,
    failed: Option<ProtoError>,
}

#[derive(Debug, Clone)]
enum State {
    /// Between requests.
    Idle,
    /// Inside a multibulk request.
    MultiBulk(MultiBulk),
}

#[derive(Debug, Clone, Default)]
struct MultiBulk {
    /// Elements whose `$len` header has not been read yet.
    remaining: usize,
    /// Arguments completed so far (empty in skip mode).
    args: Vec<Bytes>,
    /// Payload length of the element whose header was read, if any.
    bulk: Option<u64>,
    /// Payload bytes of that element already discarded (skip mode).
    skipped: u64,
    /// Skip mode: the error to report once the request is consumed.
    oversized: Option<ProtoError>,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder enforcing `limits`: at most `max_bulk_bytes()` per argument
    /// (longer ones are skipped, up to [`MAX_SKIPPABLE_BULK`]; beyond that a
    /// length is a fatal error even if the limit is higher) and at most
    /// `max_array_len` arguments per request.
    pub fn new(limits: Limits) -> RequestDecoder {
        RequestDecoder {
            limits,
            scan: LineScan::default(),
            state: State::Idle,
            failed: None,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether a multibulk request has been partly consumed. Bytes of an
    /// incomplete header or inline line stay in the buffer instead, so a
    /// clean EOF is `!in_progress() && buf.is_empty()`.
    pub fn in_progress(&self) -> bool {
        matches!(self.state, State::MultiBulk(_))
    }

    /// Decodes the next request from the front of `buf`, consuming its bytes.
    ///
    /// `buf` must be the same connection buffer on every call, only appended
    /// to between calls. Empty inline lines and `*0`/negative multibulk
    /// counts are skipped, as in Redis.
    ///
    /// # Errors
    ///
    /// [`ProtoError::TooLarge`] (recoverable) for a request with an argument
    /// above the size limit; any other variant is fatal and repeats on every
    /// later call. See the type docs.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.decode_inner(buf);
        if let Err(e) = &result {
            self.state = State::Idle;
            if e.is_fatal() {
                self.failed = Some(e.clone());
            }
        }
        result
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtoError> {
        loop {
            let mb = match &mut self.state {
                State::MultiBulk(mb) => mb,
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        match self.multibulk_header(buf)? {
                            Header::Partial => return Ok(None),
                            Header::Empty => continue,
                            Header::Start(mb) => self.state = State::MultiBulk(mb),
                        }
                        continue;
                    }
                    match self.inline(buf)? {
                        Some(args) if args.is_empty() => continue,
                        other => return Ok(other),
                    }
                }
            };
            if multibulk_body(mb, &mut self.scan, &self.limits, buf)?.is_none() {
                return Ok(None);
            }
            let done = std::mem::take(mb);
            self.state = State::Idle;
            return match done.oversized {
                Some(e) => Err(e),
                None => Ok(Some(done.args)),
            };
        }
    }

    /// Parses `*<count>\r\n` at the front of `buf`.
    fn multibulk_header(&mut self, buf: &mut BytesMut) -> Result<Header, ProtoError> {
        let Some(count) = length_line(
            &mut self.scan,
            buf,
            ProtoError::MultibulkCountTooBig,
            ProtoError::InvalidMultibulkLength,
        )?
        else {
            return Ok(Header::Partial);
        };
        if count <= 0 {
            return Ok(Header::Empty);
        }
        let count = count.unsigned_abs();
        let max = self.limits.max_array_len;
        let remaining = usize::try_from(count)
            .ok()
            .filter(|&n| n <= max)
            .ok_or(ProtoError::MultibulkTooLong { len: count, max })?;
        Ok(Header::Start(MultiBulk {
            remaining,
            args: Vec::with_capacity(remaining.min(MAX_PREALLOC_ARGS)),
            bulk: None,
            skipped: 0,
            oversized: None,
        }))
    }

    /// Parses one inline line; `Ok(Some(vec![]))` for a blank line.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtoError> {
        let Some(nl) = self.scan.find(buf, b'\n') else {
            if buf.len() > LINE_MAX {
                return Err(ProtoError::InlineTooBig);
            }
            return Ok(None);
        };
        if nl > LINE_MAX {
            return Err(ProtoError::InlineTooBig);
        }
        let line = buf.split_to(nl + 1).freeze();
        self.scan.reset();
        let end = if nl > 0 && line[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        split_args(&line.slice(..end)).map(Some)
    }
}

enum Header {
    Partial,
    Empty,
    Start(MultiBulk),
}

/// Consumes elements of a multibulk request; `Some(())` once all are in.
fn multibulk_body(
    mb: &mut MultiBulk,
    scan: &mut LineScan,
    limits: &Limits,
    buf: &mut BytesMut,
) -> Result<Option<()>, ProtoError> {
    loop {
        if let Some(len) = mb.bulk {
            if mb.oversized.is_some() {
                let left = len - mb.skipped;
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                buf.advance(take);
                mb.skipped += take as u64;
                if mb.skipped < len || buf.len() < 2 {
                    return Ok(None);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ProtoError::MissingCrlf);
                }
                buf.advance(2);
            } else {
                // Not oversized, so `len <= max_bulk_bytes()`, a usize.
                let len = usize::try_from(len).map_err(|_| ProtoError::InvalidBulkLength)?;
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                if &buf[len..len + 2] != b"\r\n" {
                    return Err(ProtoError::MissingCrlf);
                }
                let arg = buf.split_to(len).freeze();
                buf.advance(2);
                mb.args.push(arg);
            }
            mb.bulk = None;
            mb.skipped = 0;
        }
        if mb.remaining == 0 {
            return Ok(Some(()));
        }
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtoError::ExpectedBulk { got: first });
        }
        let Some(len) = length_line(
            scan,
            buf,
            ProtoError::BulkCountTooBig,
            ProtoError::InvalidBulkLength,
        )?
        else {
            return Ok(None);
        };
        let len = u64::try_from(len).map_err(|_| ProtoError::InvalidBulkLength)?;
        if len > MAX_SKIPPABLE_BULK {
            return Err(ProtoError::InvalidBulkLength);
        }
        let max = limits.max_bulk_bytes();
        if len > max as u64 && mb.oversized.is_none() {
            mb.oversized = Some(ProtoError::TooLarge {
                what: "argument",
                len,
                max,
            });
            mb.args = Vec::new();
        }
        mb.bulk = Some(len);
        mb.remaining -= 1;
    }
}

/// Parses a `<prefix><integer>\r\n` line at the front of `buf` (the prefix
/// byte is not checked) and consumes it. `Ok(None)` if incomplete.
fn length_line(
    scan: &mut LineScan,
    buf: &mut BytesMut,
    too_long: ProtoError,
    invalid: ProtoError,
) -> Result<Option<i64>, ProtoError> {
    let Some(cr) = scan.find(buf, b'\r') else {
        if buf.len() > LINE_MAX {
            return Err(too_long);
        }
        return Ok(None);
    };
    if cr > LINE_MAX {
        return Err(too_long);
    }
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(invalid),
    }
    let n = parse_strict_i64(&buf[1..cr]).ok_or(invalid)?;
    buf.advance(cr + 2);
    scan.reset();
    Ok(Some(n))
}
