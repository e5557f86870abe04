//! Property tests: arbitrary bytes never panic either decoder; valid
//! requests and replies round-trip however the input is split.

mod common;

use bytes::{Bytes, BytesMut};
use common::{decode_chunked, drain};
use fulcrum_proto::{
    encode, encode_command, Frame, Limits, ProtoError, Protocol, ReplyDecoder, RequestDecoder,
};
use proptest::prelude::*;

fn small_limits() -> Limits {
    Limits {
        max_key_bytes: 8,
        max_value_bytes: 32,
        max_array_len: 16,
    }
}

/// Bytes biased towards RESP structure so the fuzzing reaches deep states.
fn resp_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\x".to_vec()),
        Just(b" ".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"3".to_vec()),
        Just(b"40".to_vec()),
        Just(b"%|~>=!,#_(:+".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,10}".prop_map(Frame::Simple),
        "ERR [a-z ]{0,10}".prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|v| Frame::Bulk(v.into())),
        Just(Frame::Null),
        any::<f64>()
            .prop_filter("NaN != NaN", |d| !d.is_nan())
            .prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        proptest::collection::vec(any::<u8>(), 0..20)
            .prop_map(|v| Frame::Verbatim("txt".into(), v.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// Every reply decoded from `input` fed in chunks, up to the first error.
fn replies_chunked(input: &[u8], chunk: usize) -> Vec<Result<Frame, ProtoError>> {
    let mut dec = ReplyDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256), chunk in 1usize..20) {
        let whole = decode_chunked(Limits::default(), &input, input.len().max(1));
        prop_assert_eq!(decode_chunked(Limits::default(), &input, chunk), whole);
        let _ = decode_chunked(small_limits(), &input, chunk);
    }

    #[test]
    fn request_decoder_never_panics_on_resp_like_input(input in resp_ish_bytes(), chunk in 1usize..10) {
        let whole = decode_chunked(small_limits(), &input, input.len().max(1));
        let split = decode_chunked(small_limits(), &input, chunk);
        // Where the input is split never changes what it decodes to.
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn reply_decoder_never_panics(input in resp_ish_bytes(), chunk in 1usize..10) {
        prop_assert_eq!(replies_chunked(&input, chunk), replies_chunked(&input, input.len().max(1)));
    }

    #[test]
    fn reply_decoder_never_panics_on_random_bytes(input in proptest::collection::vec(any::<u8>(), 0..256), chunk in 1usize..10) {
        prop_assert_eq!(replies_chunked(&input, chunk), replies_chunked(&input, input.len().max(1)));
    }

    #[test]
    fn valid_requests_round_trip(
        reqs in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
            1..5,
        ),
        chunk in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for r in &reqs {
            encode_command(r, &mut wire);
        }
        let want: Vec<common::Outcome> = reqs.iter().cloned().map(Ok).collect();
        let mut dec = RequestDecoder::default();
        let mut buf = wire.clone();
        prop_assert_eq!(drain(&mut dec, &mut buf), want.clone());
        prop_assert_eq!(decode_chunked(Limits::default(), &wire, chunk), want);
    }

    #[test]
    fn inline_double_quoted_hex_round_trips(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6),
    ) {
        let mut line = Vec::new();
        for a in &args {
            line.extend_from_slice(b" \"");
            for b in a {
                line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
            line.push(b'"');
        }
        line.extend_from_slice(b"\r\n");
        let got = decode_chunked(Limits::default(), &line, line.len());
        prop_assert_eq!(got, vec![Ok(args)]);
    }

    #[test]
    fn replies_round_trip_in_resp3(frames in proptest::collection::vec(arb_frame(), 1..4), chunk in 1usize..32) {
        let mut wire = BytesMut::new();
        for f in &frames {
            encode(f, Protocol::Resp3, &mut wire);
        }
        let mut dec = ReplyDecoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = dec.decode(&mut buf).expect("encoder output is valid") {
                got.push(f);
            }
        }
        prop_assert_eq!(got, frames);
    }
}

#[test]
fn verbatim_payload_is_bytes() {
    let mut wire = BytesMut::new();
    let frame = Frame::Verbatim("txt".into(), Bytes::from_static(b"\xff"));
    encode(&frame, Protocol::Resp3, &mut wire);
    let mut dec = ReplyDecoder::new();
    assert_eq!(dec.decode(&mut wire), Ok(Some(frame)));
}
