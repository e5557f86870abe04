//! Oversized arguments: discarded as they arrive without being buffered,
//! reported as the recoverable `TooLarge`, and the connection continues with
//! the next request.

mod common;

use bytes::BytesMut;
use common::{decode_chunked, decode_whole_with, req};
use fulcrum_proto::{encode, encode_request, Frame, Limits, ProtoError, Protocol, RequestDecoder};

fn small_limits() -> Limits {
    Limits {
        max_key_bytes: 16,
        max_value_bytes: 1024,
        max_array_len: 8,
    }
}

#[test]
fn oversized_bulk_is_skipped_with_bounded_memory() {
    let limits = small_limits();
    let total = 1024 * 1024 + 1;
    let mut dec = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$");
    buf.extend_from_slice(itoa::Buffer::new().format(total).as_bytes());
    buf.extend_from_slice(b"\r\n");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(dec.in_progress());

    let chunk = vec![b'x'; 4096];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        buf.extend_from_slice(&chunk[..n]);
        sent += n;
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // Skipped bytes never accumulate.
        assert!(buf.is_empty(), "buffer holds {} bytes", buf.len());
    }
    buf.extend_from_slice(b"\r");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n*1\r\n$4\r\nPING\r\n");
    let err = dec.decode(&mut buf).expect_err("too large");
    assert_eq!(
        err,
        ProtoError::TooLarge {
            what: "argument",
            len: total as u64,
            max: 1024
        }
    );
    assert!(!err.is_fatal());
    let mut reply = BytesMut::new();
    encode(&err.to_frame(), Protocol::Resp2, &mut reply);
    assert_eq!(
        &reply[..],
        b"-TOOLARGE argument of 1048577 bytes exceeds the limit of 1024 bytes\r\n"
    );
    // The connection continues.
    assert_eq!(
        dec.decode(&mut buf).expect("valid").expect("complete"),
        vec![&b"PING"[..]]
    );
    assert!(buf.is_empty());
}

#[test]
fn limit_is_the_larger_of_key_and_value() {
    let limits = small_limits();
    let mut input = BytesMut::new();
    encode_request(&[b"SET", &[b'k'; 1024], &[b'v'; 1024]], &mut input);
    let got = decode_whole_with(limits, &input);
    assert!(got[0].is_ok(), "{got:?}");
}

#[test]
fn remaining_elements_are_skipped_too() {
    let limits = small_limits();
    let mut input = BytesMut::new();
    encode_request(
        &[b"MSET", b"a", &[b'v'; 2000], b"b", &[b'w'; 1025], b"c"],
        &mut input,
    );
    encode_request(&[b"GET", b"a"], &mut input);
    let want = vec![
        Err(ProtoError::TooLarge {
            what: "argument",
            len: 2000,
            max: 1024,
        }),
        req(&["GET", "a"]),
    ];
    assert_eq!(decode_whole_with(limits, &input), want);
    for chunk in [1, 2, 3, 7, 100, 1500] {
        assert_eq!(decode_chunked(limits, &input, chunk), want, "chunk {chunk}");
    }
}

#[test]
fn skipped_bulk_must_still_end_in_crlf() {
    let limits = small_limits();
    let mut input = b"*1\r\n$2000\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend_from_slice(b"XX*1\r\n$4\r\nPING\r\n");
    assert_eq!(
        decode_whole_with(limits, &input),
        vec![Err(ProtoError::MissingCrlf)]
    );
}

#[test]
fn garbage_header_during_skip_is_fatal() {
    let limits = small_limits();
    let mut input = b"*2\r\n$2000\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend_from_slice(b"\r\n+oops\r\n");
    assert_eq!(
        decode_whole_with(limits, &input),
        vec![Err(ProtoError::ExpectedBulk { got: b'+' })]
    );
}

#[test]
fn default_limits_skip_a_17_mib_value() {
    let len = 17 * 1024 * 1024;
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$17825792\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut max_buffered = 0;
    for _ in 0..len / chunk.len() {
        buf.extend_from_slice(&chunk);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        max_buffered = max_buffered.max(buf.len());
        // The server's read loop reuses the space the decoder freed.
        buf.reserve(chunk.len());
        assert!(buf.capacity() < 1024 * 1024, "capacity {}", buf.capacity());
    }
    assert_eq!(max_buffered, 0);
    buf.extend_from_slice(b"\r\nPING\r\n");
    assert!(matches!(
        dec.decode(&mut buf),
        Err(ProtoError::TooLarge {
            len: 17_825_792,
            ..
        })
    ));
    assert_eq!(dec.decode(&mut buf), Ok(Some(vec!["PING".into()])));
}

#[test]
fn too_large_reply_frame() {
    let e = ProtoError::TooLarge {
        what: "argument",
        len: 5,
        max: 4,
    };
    assert_eq!(
        e.to_frame(),
        Frame::Error("TOOLARGE argument of 5 bytes exceeds the limit of 4 bytes".into())
    );
}
