//! Pipelined requests in one buffer, requests split at every byte boundary,
//! zero-copy arguments, and large values arriving in pieces.

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::{decode_chunked, decode_whole, drain, req};
use fulcrum_proto::{encode_request, Limits, RequestDecoder};

fn pipeline() -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_request(&[b"SET", b"key", b"value"], &mut out);
    out.extend_from_slice(b"PING\r\n");
    out.extend_from_slice(b"\r\n\n   \r\n");
    encode_request(&[b"GET", b""], &mut out);
    out.extend_from_slice(b"set a \"b c\"\n");
    encode_request(&[b"MSET", b"k\r\n1", b"\x00\xff", b"k2", b"v2"], &mut out);
    out.to_vec()
}

fn expected() -> Vec<common::Outcome> {
    vec![
        req(&["SET", "key", "value"]),
        req(&["PING"]),
        req(&["GET", ""]),
        req(&["set", "a", "b c"]),
        Ok(vec![
            b"MSET".to_vec(),
            b"k\r\n1".to_vec(),
            b"\x00\xff".to_vec(),
            b"k2".to_vec(),
            b"v2".to_vec(),
        ]),
    ]
}

#[test]
fn pipelined_requests_in_one_buffer() {
    let input = pipeline();
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(drain(&mut dec, &mut buf), expected());
    assert!(buf.is_empty());
    assert!(!dec.in_progress());
}

#[test]
fn byte_by_byte() {
    assert_eq!(
        decode_chunked(Limits::default(), &pipeline(), 1),
        expected()
    );
}

#[test]
fn split_at_every_boundary() {
    let input = pipeline();
    for split in 0..=input.len() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&input[..split]);
        let mut got = drain(&mut dec, &mut buf);
        buf.extend_from_slice(&input[split..]);
        got.extend(drain(&mut dec, &mut buf));
        assert_eq!(got, expected(), "split at {split}");
    }
}

#[test]
fn partial_request_is_in_progress() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(dec.in_progress());
    buf.extend_from_slice(b"\nk\r\n");
    assert_eq!(
        dec.decode(&mut buf).expect("valid").expect("complete"),
        vec![&b"GET"[..], b"k"]
    );
    assert!(!dec.in_progress());
}

#[test]
fn arguments_are_zero_copy() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    encode_request(&[b"SET", b"key", b"value"], &mut buf);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let args = dec.decode(&mut buf).expect("valid").expect("complete");
    for arg in &args {
        assert!(
            range.contains(&(arg.as_ptr() as usize)),
            "{arg:?} was copied"
        );
    }
}

#[test]
fn large_value_in_small_pieces_is_linear() {
    // 16 MiB (the default limit) in 1 KiB pieces: 16k decode calls. With a
    // rescan per call this would be ~128 GiB of scanning.
    let value = vec![b'v'; 16 * 1024 * 1024];
    let mut input = BytesMut::new();
    encode_request(&[b"SET", b"k", &value], &mut input);
    let started = Instant::now();
    let got = decode_chunked(Limits::default(), &input, 1024);
    assert_eq!(got.len(), 1);
    let args = got[0].as_ref().expect("valid");
    assert_eq!(args[2].len(), value.len());
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn long_inline_line_in_small_pieces() {
    let mut line = b"SET k ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 60 * 1024));
    line.extend_from_slice(b"\r\n");
    let got = decode_chunked(Limits::default(), &line, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().expect("valid")[2].len(), 60 * 1024);
    assert_eq!(decode_whole(&line), got);
}
