//! Encoding: replies (RESP3, or downgraded to RESP2) and multibulk requests.
//!
//! RESP2 downgrades: map → flat array of key, value, ...; set → array;
//! double → bulk string formatted like Redis (`3.14`, `inf`); boolean →
//! integer 1/0; null → `$-1`; null array → `*-1`; verbatim → bulk of the
//! text. In RESP3 both nulls are `_`.
//!
//! Simple strings and errors cannot carry CR or LF; they are replaced with
//! spaces. A verbatim format that is not exactly three bytes is sent as
//! `txt`.
//!
//! No allocation beyond growing the output buffer.

use bytes::{BufMut, BytesMut};

use crate::double::format_double;
use crate::frame::{Frame, Protocol};

/// Appends the encoding of `frame` in protocol `proto` to `out`.
pub fn encode(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match frame {
        Frame::Simple(s) => line(b'+', s.as_bytes(), out),
        Frame::Error(s) => line(b'-', s.as_bytes(), out),
        Frame::Integer(n) => int_line(b':', *n, out),
        Frame::Bulk(b) => bulk(b, out),
        Frame::Null if resp3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Array(items) => {
            len_line(b'*', items.len(), out);
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                len_line(b'%', pairs.len(), out);
            } else {
                len_line(b'*', pairs.len().saturating_mul(2), out);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Frame::Set(items) => {
            len_line(if resp3 { b'~' } else { b'*' }, items.len(), out);
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Double(d) => {
            let text = format_double(*d);
            if resp3 {
                out.put_u8(b',');
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            } else {
                bulk(text.as_bytes(), out);
            }
        }
        Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(b) => int_line(b':', i64::from(*b), out),
        Frame::Verbatim(format, text) if resp3 => {
            let format = match format.as_bytes() {
                f @ [_, _, _] if !f.contains(&b'\r') && !f.contains(&b'\n') => f,
                _ => b"txt",
            };
            len_line(b'=', text.len() + 4, out);
            out.reserve(text.len() + 6);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Verbatim(_, text) => bulk(text, out),
    }
}

/// Appends a request (a multibulk array of bulk strings) to `out`.
pub fn encode_request(args: &[&[u8]], out: &mut BytesMut) {
    encode_command(args, out);
}

/// [`encode_request`] for any byte-like arguments (`&str`, `Vec<u8>`,
/// `Bytes`, ...).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    len_line(b'*', args.len(), out);
    for arg in args {
        bulk(arg.as_ref(), out);
    }
}

/// `<prefix><text>\r\n` with CR and LF in `text` replaced by spaces.
fn line(prefix: u8, text: &[u8], out: &mut BytesMut) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    let mut rest = text;
    while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
        out.put_slice(&rest[..i]);
        out.put_u8(b' ');
        rest = &rest[i + 1..];
    }
    out.put_slice(rest);
    out.put_slice(b"\r\n");
}

fn bulk(data: &[u8], out: &mut BytesMut) {
    len_line(b'$', data.len(), out);
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn int_line(prefix: u8, n: i64, out: &mut BytesMut) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(prefix);
    out.put_slice(digits);
    out.put_slice(b"\r\n");
}

fn len_line(prefix: u8, n: usize, out: &mut BytesMut) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(prefix);
    out.put_slice(digits);
    out.put_slice(b"\r\n");
}
