//! Client-side reply decoding: any RESP2 or RESP3 reply into a [`Frame`],
//! incrementally.
//!
//! Nested aggregates are built on an explicit stack (no recursion), so deep
//! nesting cannot overflow the stack while decoding; depth is still capped at
//! [`MAX_REPLY_DEPTH`] because dropping a frame is recursive. Scalars are
//! consumed as soon as they are complete, so a large reply arriving in
//! pieces is not rescanned.
//!
//! Mapping: `+` Simple, `-` and `!` Error, `:` Integer, `$` Bulk (`$-1`
//! Null), `*` Array (`*-1` NullArray), `_` Null, `%` Map, `~` Set, `,`
//! Double, `#` Boolean, `=` Verbatim, `(` big number as Bulk (its decimal
//! text), `>` push as Array, `|` attributes are decoded and dropped.

use bytes::{Buf, BytesMut};

use crate::error::ProtoError;
use crate::frame::Frame;
use crate::scan::{parse_lenient_i64, LineScan};

/// Deepest aggregate nesting accepted in a reply.
pub const MAX_REPLY_DEPTH: usize = 256;

/// Preallocate at most this many elements from a declared count.
const MAX_PREALLOC_ITEMS: usize = 1024;

/// Decodes a stream of replies. One decoder per connection.
#[derive(Debug, Default, Clone)]
pub struct ReplyDecoder {
    scan: LineScan,
    stack: Vec<Aggregate>,
    /// A blob header was consumed; waiting for its payload.
    blob: Option<(BlobKind, usize)>,
    failed: Option<ProtoError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    Array,
    Set,
    Map,
    Push,
    Attribute,
}

#[derive(Debug, Clone)]
struct Aggregate {
    kind: AggKind,
    /// Frames still to come (a map counts keys and values).
    remaining: usize,
    items: Vec<Frame>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobKind {
    Bulk,
    Error,
    Verbatim,
}

/// What one step of parsing produced.
enum Step {
    Frame(Frame),
    /// Consumed a header (aggregate or blob); keep going.
    Progress,
    /// Need more bytes.
    Partial,
}

fn invalid(reason: &'static str) -> ProtoError {
    ProtoError::InvalidReply { reason }
}

impl ReplyDecoder {
    /// A decoder for a fresh connection.
    pub fn new() -> ReplyDecoder {
        ReplyDecoder::default()
    }

    /// Decodes the next complete reply from the front of `buf`, consuming
    /// its bytes; `Ok(None)` if more bytes are needed. `buf` must be the same
    /// buffer on every call, only appended to between calls.
    ///
    /// # Errors
    ///
    /// [`ProtoError::InvalidReply`] for malformed input; the stream is then
    /// unusable and the same error repeats on every later call.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.decode_inner(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        loop {
            let mut frame = match self.step(buf)? {
                Step::Partial => return Ok(None),
                Step::Progress => continue,
                Step::Frame(f) => f,
            };
            // Attach the frame to its parents, completing them as they fill.
            loop {
                let Some(parent) = self.stack.last_mut() else {
                    return Ok(Some(frame));
                };
                parent.items.push(frame);
                parent.remaining -= 1;
                if parent.remaining > 0 {
                    break;
                }
                let Some(done) = self.stack.pop() else { break };
                match finish(done) {
                    Some(f) => frame = f,
                    None => break,
                }
            }
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ProtoError> {
        if let Some((kind, len)) = self.blob {
            if buf.len() < len + 2 {
                return Ok(Step::Partial);
            }
            if &buf[len..len + 2] != b"\r\n" {
                return Err(invalid("blob not followed by CRLF"));
            }
            let data = buf.split_to(len).freeze();
            buf.advance(2);
            self.blob = None;
            return Ok(Step::Frame(match kind {
                BlobKind::Bulk => Frame::Bulk(data),
                BlobKind::Error => Frame::Error(String::from_utf8_lossy(&data).into_owned()),
                BlobKind::Verbatim => match data.get(3) {
                    Some(b':') => Frame::Verbatim(
                        String::from_utf8_lossy(&data[..3]).into_owned(),
                        data.slice(4..),
                    ),
                    _ => return Err(invalid("verbatim string without a format")),
                },
            }));
        }
        let Some(&kind) = buf.first() else {
            return Ok(Step::Partial);
        };
        if !b"+-:,#_($!=*~%>|".contains(&kind) {
            return Err(invalid("unknown type byte"));
        }
        let Some(cr) = self.scan.find(buf, b'\r') else {
            return Ok(Step::Partial);
        };
        match buf.get(cr + 1) {
            None => return Ok(Step::Partial),
            Some(b'\n') => {}
            Some(_) => return Err(invalid("line not terminated by CRLF")),
        }
        let line = buf.split_to(cr + 2).freeze();
        self.scan.reset();
        let text = &line[1..cr];
        let lossy = || String::from_utf8_lossy(text).into_owned();
        let frame = match kind {
            b'+' => Frame::Simple(lossy()),
            b'-' => Frame::Error(lossy()),
            b':' => Frame::Integer(parse_lenient_i64(text).ok_or(invalid("bad integer"))?),
            b',' => Frame::Double(
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(invalid("bad double"))?,
            ),
            b'#' => match text {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(invalid("bad boolean")),
            },
            b'_' if text.is_empty() => Frame::Null,
            b'(' => {
                let digits = text.strip_prefix(b"-").unwrap_or(text);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(invalid("bad big number"));
                }
                Frame::Bulk(line.slice(1..cr))
            }
            b'$' | b'!' | b'=' => {
                let len = parse_lenient_i64(text).ok_or(invalid("bad blob length"))?;
                if len == -1 && kind == b'$' {
                    Frame::Null
                } else {
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|n| n.checked_add(2).is_some())
                        .ok_or(invalid("bad blob length"))?;
                    let kind = match kind {
                        b'$' => BlobKind::Bulk,
                        b'!' => BlobKind::Error,
                        _ => BlobKind::Verbatim,
                    };
                    self.blob = Some((kind, len));
                    return Ok(Step::Progress);
                }
            }
            b'*' | b'~' | b'%' | b'>' | b'|' => {
                let count = parse_lenient_i64(text).ok_or(invalid("bad aggregate length"))?;
                let agg = match kind {
                    b'*' => AggKind::Array,
                    b'~' => AggKind::Set,
                    b'%' => AggKind::Map,
                    b'>' => AggKind::Push,
                    _ => AggKind::Attribute,
                };
                if count == -1 && agg != AggKind::Attribute {
                    Frame::NullArray
                } else {
                    let count =
                        usize::try_from(count).map_err(|_| invalid("bad aggregate length"))?;
                    let frames = if agg == AggKind::Map || agg == AggKind::Attribute {
                        count
                            .checked_mul(2)
                            .ok_or(invalid("bad aggregate length"))?
                    } else {
                        count
                    };
                    let empty = Aggregate {
                        kind: agg,
                        remaining: frames,
                        items: Vec::with_capacity(frames.min(MAX_PREALLOC_ITEMS)),
                    };
                    if frames == 0 {
                        match finish(empty) {
                            Some(f) => f,
                            None => return Ok(Step::Progress),
                        }
                    } else {
                        if self.stack.len() >= MAX_REPLY_DEPTH {
                            return Err(invalid("aggregates nested too deep"));
                        }
                        self.stack.push(empty);
                        return Ok(Step::Progress);
                    }
                }
            }
            _ => return Err(invalid("unknown type byte")),
        };
        Ok(Step::Frame(frame))
    }
}

/// The frame for a complete aggregate; `None` for attributes (dropped).
fn finish(agg: Aggregate) -> Option<Frame> {
    match agg.kind {
        AggKind::Array | AggKind::Push => Some(Frame::Array(agg.items)),
        AggKind::Set => Some(Frame::Set(agg.items)),
        AggKind::Attribute => None,
        AggKind::Map => {
            let mut pairs = Vec::with_capacity(agg.items.len() / 2);
            let mut items = agg.items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Some(Frame::Map(pairs))
        }
    }
}
