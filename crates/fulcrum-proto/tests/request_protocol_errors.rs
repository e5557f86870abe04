//! Every fatal request error, with the exact Redis reply text, and the
//! decoder refusing to continue after one.

mod common;

use bytes::BytesMut;
use common::{decode_chunked, decode_whole, req};
use fulcrum_proto::{encode, Frame, Limits, ProtoError, Protocol, RequestDecoder};

/// The error reply bytes a server sends for `input`'s first error.
fn reply_for(input: &[u8]) -> String {
    let results = decode_whole(input);
    let err = results
        .into_iter()
        .find_map(Result::err)
        .expect("input should fail");
    assert!(err.is_fatal(), "{err:?} should be fatal");
    let mut out = BytesMut::new();
    encode(&err.to_frame(), Protocol::Resp2, &mut out);
    String::from_utf8(out.to_vec()).expect("error replies are UTF-8")
}

#[test]
fn invalid_multibulk_length() {
    let want = "-ERR Protocol error: invalid multibulk length\r\n";
    for input in [
        &b"*abc\r\n"[..],
        b"*\r\n",
        b"*1x\r\n",
        b"*+1\r\n",
        b"*01\r\n",
        b"* 1\r\n",
        b"*1\rX",
        b"*99999999999999999999\r\n",
    ] {
        assert_eq!(reply_for(input), want, "{input:?}");
    }
}

#[test]
fn multibulk_count_above_limit_is_fatal() {
    let limits = Limits {
        max_array_len: 3,
        ..Limits::default()
    };
    let got = common::decode_whole_with(limits, b"*4\r\n$1\r\na\r\n");
    assert_eq!(
        got,
        vec![Err(ProtoError::MultibulkTooLong { len: 4, max: 3 })]
    );
    assert!(ProtoError::MultibulkTooLong { len: 4, max: 3 }.is_fatal());
    assert_eq!(
        ProtoError::MultibulkTooLong { len: 4, max: 3 }.to_frame(),
        Frame::Error("ERR Protocol error: invalid multibulk length 4 (limit 3)".into())
    );
    // Default limit: 1 Mi elements.
    let got = decode_whole(b"*1048577\r\n");
    assert_eq!(
        got,
        vec![Err(ProtoError::MultibulkTooLong {
            len: 1_048_577,
            max: 1_048_576
        })]
    );
}

#[test]
fn invalid_bulk_length() {
    let want = "-ERR Protocol error: invalid bulk length\r\n";
    for input in [
        &b"*1\r\n$x\r\n"[..],
        b"*1\r\n$-1\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$3x\r\n",
        b"*1\r\n$3\rX",
        b"*1\r\n$99999999999999999999\r\n",
        // Beyond what skip mode accepts (512 MiB).
        b"*1\r\n$536870913\r\n",
    ] {
        assert_eq!(reply_for(input), want, "{input:?}");
    }
}

#[test]
fn expected_dollar() {
    assert_eq!(
        reply_for(b"*1\r\n+foo\r\n"),
        "-ERR Protocol error: expected '$', got '+'\r\n"
    );
    assert_eq!(
        reply_for(b"*2\r\n$1\r\na\r\n:1\r\n"),
        "-ERR Protocol error: expected '$', got ':'\r\n"
    );
    // A CR would break the reply line; the encoder turns it into a space.
    assert_eq!(
        reply_for(b"*1\r\n\r\n"),
        "-ERR Protocol error: expected '$', got ' '\r\n"
    );
}

#[test]
fn missing_crlf_after_bulk_data() {
    assert_eq!(
        reply_for(b"*1\r\n$3\r\nfooXY"),
        "-ERR Protocol error: expected CRLF after bulk data\r\n"
    );
    assert_eq!(
        reply_for(b"*1\r\n$3\r\nfoo\n\r"),
        "-ERR Protocol error: expected CRLF after bulk data\r\n"
    );
}

#[test]
fn too_big_inline_request() {
    let want = "-ERR Protocol error: too big inline request\r\n";
    let mut long = vec![b'a'; 64 * 1024 + 1];
    assert_eq!(reply_for(&long), want);
    long.extend_from_slice(b"\r\n");
    assert_eq!(reply_for(&long), want);
    // Exactly 64 KiB (without the newline) is still accepted.
    let mut ok = vec![b'a'; 64 * 1024];
    ok.push(b'\n');
    assert_eq!(decode_whole(&ok).len(), 1);
    assert!(decode_whole(&ok)[0].is_ok());
}

#[test]
fn too_big_count_strings() {
    let mut mbulk = b"*".to_vec();
    mbulk.extend(std::iter::repeat_n(b'1', 64 * 1024 + 1));
    assert_eq!(
        reply_for(&mbulk),
        "-ERR Protocol error: too big mbulk count string\r\n"
    );
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(std::iter::repeat_n(b'1', 64 * 1024 + 1));
    assert_eq!(
        reply_for(&bulk),
        "-ERR Protocol error: too big bulk count string\r\n"
    );
}

#[test]
fn unbalanced_quotes() {
    let want = "-ERR Protocol error: unbalanced quotes in request\r\n";
    for input in [
        &b"set a \"b\r\n"[..],
        b"set a 'b\r\n",
        b"set a \"b\"c\r\n",
        b"set a 'b'c\r\n",
        b"\"\\\"\r\n",
    ] {
        assert_eq!(reply_for(input), want, "{input:?}");
    }
}

#[test]
fn fatal_errors_repeat_and_consume_nothing_more() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*x\r\nPING\r\n"[..]);
    let first = dec.decode(&mut buf).expect_err("garbage count");
    assert_eq!(first, ProtoError::InvalidMultibulkLength);
    buf.extend_from_slice(b"PING\r\n");
    assert_eq!(dec.decode(&mut buf), Err(first));
}

#[test]
fn empty_and_negative_multibulk_are_skipped_like_redis() {
    assert_eq!(
        decode_whole(b"*0\r\n*-1\r\n*-7\r\n*1\r\n$4\r\nPING\r\n"),
        vec![req(&["PING"])]
    );
}

#[test]
fn errors_are_the_same_however_the_input_is_split() {
    let inputs: [&[u8]; 4] = [
        b"*1\r\n$3\r\nfooXY",
        b"*2\r\n$1\r\na\r\n:1\r\n",
        b"set a \"b\"c\r\n",
        b"*1\r\n$-1\r\n",
    ];
    for input in inputs {
        let whole = decode_whole(input);
        for chunk in 1..input.len() {
            assert_eq!(
                decode_chunked(Limits::default(), input, chunk),
                whole,
                "{input:?} in chunks of {chunk}"
            );
        }
    }
}
