//! The client-side reply decoder: every RESP2/RESP3 type, round trips
//! through the encoder, incremental input, and malformed replies.

use bytes::{Bytes, BytesMut};
use fulcrum_proto::{encode, Frame, ProtoError, Protocol, ReplyDecoder, MAX_REPLY_DEPTH};

fn decode_all(input: &[u8]) -> Result<Vec<Frame>, ProtoError> {
    let mut dec = ReplyDecoder::new();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf)? {
        out.push(f);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

fn decode_bytewise(input: &[u8]) -> Result<Vec<Frame>, ProtoError> {
    let mut dec = ReplyDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &b in input {
        buf.extend_from_slice(&[b]);
        while let Some(f) = dec.decode(&mut buf)? {
            out.push(f);
        }
    }
    Ok(out)
}

fn one(input: &[u8]) -> Frame {
    let mut frames = decode_all(input).expect("valid reply");
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

fn sample() -> Vec<Frame> {
    vec![
        Frame::ok(),
        Frame::error("ERR oops"),
        Frame::Integer(-7),
        Frame::bulk("b\r\nulk"),
        Frame::bulk(""),
        Frame::Null,
        Frame::NullArray,
        Frame::Array(vec![]),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Array(vec![Frame::bulk("x"), Frame::Null]),
            Frame::Map(vec![(
                Frame::bulk("k"),
                Frame::Set(vec![Frame::Boolean(false)]),
            )]),
        ]),
        Frame::Map(vec![]),
        Frame::Set(vec![Frame::Integer(2)]),
        Frame::Double(3.25),
        Frame::Double(f64::NEG_INFINITY),
        Frame::Boolean(true),
        Frame::Verbatim("txt".into(), Bytes::from_static(b"some text")),
    ]
}

fn encode_all(frames: &[Frame], proto: Protocol) -> BytesMut {
    let mut out = BytesMut::new();
    for f in frames {
        encode(f, proto, &mut out);
    }
    out
}

#[test]
fn resp3_round_trip() {
    let frames = sample();
    let mut want = frames.clone();
    // RESP3 has a single null.
    want[6] = Frame::Null;
    let bytes = encode_all(&frames, Protocol::Resp3);
    assert_eq!(decode_all(&bytes), Ok(want.clone()));
    assert_eq!(decode_bytewise(&bytes), Ok(want));
}

#[test]
fn resp2_round_trip_shows_downgrades() {
    let bytes = encode_all(
        &[
            Frame::Map(vec![(Frame::bulk("k"), Frame::Integer(1))]),
            Frame::Set(vec![Frame::bulk("m")]),
            Frame::Double(1.5),
            Frame::Boolean(true),
            Frame::Verbatim("txt".into(), Bytes::from_static(b"v")),
            Frame::Null,
            Frame::NullArray,
        ],
        Protocol::Resp2,
    );
    assert_eq!(
        decode_all(&bytes),
        Ok(vec![
            Frame::Array(vec![Frame::bulk("k"), Frame::Integer(1)]),
            Frame::Array(vec![Frame::bulk("m")]),
            Frame::bulk("1.5"),
            Frame::Integer(1),
            Frame::bulk("v"),
            Frame::Null,
            Frame::NullArray,
        ])
    );
}

#[test]
fn resp3_only_types() {
    assert_eq!(
        one(b"(12345678901234567890123\r\n"),
        Frame::bulk("12345678901234567890123")
    );
    assert_eq!(one(b"(-1\r\n"), Frame::bulk("-1"));
    assert_eq!(one(b"!8\r\nERR a\r\nb\r\n"), Frame::error("ERR a\r\nb"));
    assert_eq!(
        one(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
        Frame::Array(vec![
            Frame::bulk("message"),
            Frame::bulk("ch"),
            Frame::bulk("hi")
        ])
    );
    assert_eq!(one(b",1e3\r\n"), Frame::Double(1000.0));
    assert_eq!(one(b":+5\r\n"), Frame::Integer(5));
    assert_eq!(one(b"~0\r\n"), Frame::Set(vec![]));
}

#[test]
fn attributes_are_skipped() {
    let input = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n";
    assert_eq!(
        one(input),
        Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)])
    );
    assert_eq!(one(b"|0\r\n+OK\r\n"), Frame::ok());
    assert_eq!(decode_bytewise(input), Ok(vec![one(input)]));
}

#[test]
fn partial_input_returns_none() {
    let mut dec = ReplyDecoder::new();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nfo"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"o\r\n:1\r");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n+next\r\n");
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Some(Frame::Array(vec![
            Frame::bulk("foo"),
            Frame::Integer(1)
        ])))
    );
    assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::simple("next"))));
    assert_eq!(dec.decode(&mut buf), Ok(None));
}

#[test]
fn malformed_replies_are_errors() {
    for input in [
        &b"?\r\n"[..],
        b":abc\r\n",
        b":1\rX",
        b"$x\r\n",
        b"$-2\r\n",
        b"$3\r\nfooXX",
        b"*-2\r\n",
        b"#x\r\n",
        b",abc\r\n",
        b"_x\r\n",
        b"(12a\r\n",
        b"\r\n",
        b"\n",
        b"=3\r\ntxt\r\n",
        b"|-1\r\n",
    ] {
        let err = decode_all(input).expect_err("malformed");
        assert!(
            matches!(err, ProtoError::InvalidReply { .. }),
            "{input:?}: {err:?}"
        );
        assert!(err.is_fatal());
    }
}

#[test]
fn errors_repeat() {
    let mut dec = ReplyDecoder::new();
    let mut buf = BytesMut::from(&b"?\r\n+OK\r\n"[..]);
    let e = dec.decode(&mut buf).expect_err("bad type byte");
    assert_eq!(dec.decode(&mut buf), Err(e));
}

#[test]
fn nesting_is_capped() {
    let mut deep = Vec::new();
    for _ in 0..MAX_REPLY_DEPTH {
        deep.extend_from_slice(b"*1\r\n");
    }
    deep.extend_from_slice(b":1\r\n");
    assert!(decode_all(&deep).is_ok());
    let mut deeper = b"*1\r\n".to_vec();
    deeper.extend_from_slice(&deep);
    assert!(matches!(
        decode_all(&deeper),
        Err(ProtoError::InvalidReply { .. })
    ));
}

#[test]
fn huge_declared_counts_do_not_allocate() {
    let mut dec = ReplyDecoder::new();
    let mut buf = BytesMut::from(
        &b"*9223372036854775807\r\n%4611686018427387903\r\n$9223372036854775805\r\n"[..],
    );
    assert_eq!(dec.decode(&mut buf), Ok(None));
}
