//! Helpers shared by the request-decoder tests.
#![allow(dead_code)]

use bytes::BytesMut;
use fulcrum_proto::{Limits, ProtoError, RequestDecoder};

/// One decoder outcome with arguments copied out for easy comparison.
pub type Outcome = Result<Vec<Vec<u8>>, ProtoError>;

/// Decodes everything decodable from `buf`, stopping after a fatal error.
pub fn drain(dec: &mut RequestDecoder, buf: &mut BytesMut) -> Vec<Outcome> {
    let mut out = Vec::new();
    loop {
        match dec.decode(buf) {
            Ok(None) => return out,
            Ok(Some(args)) => out.push(Ok(args.iter().map(|a| a.to_vec()).collect())),
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e));
                if fatal {
                    return out;
                }
            }
        }
    }
}

/// Decodes `input` given all at once.
pub fn decode_whole(input: &[u8]) -> Vec<Outcome> {
    decode_whole_with(Limits::default(), input)
}

/// Decodes `input` given all at once, with `limits`.
pub fn decode_whole_with(limits: Limits, input: &[u8]) -> Vec<Outcome> {
    let mut dec = RequestDecoder::new(limits);
    let mut buf = BytesMut::from(input);
    drain(&mut dec, &mut buf)
}

/// Decodes `input` fed in chunks of `chunk` bytes.
pub fn decode_chunked(limits: Limits, input: &[u8], chunk: usize) -> Vec<Outcome> {
    let mut dec = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        let got = drain(&mut dec, &mut buf);
        let fatal = matches!(got.last(), Some(Err(e)) if e.is_fatal());
        out.extend(got);
        if fatal {
            break;
        }
    }
    out
}

/// Shorthand for an expected successful request.
pub fn req(args: &[&str]) -> Outcome {
    Ok(args.iter().map(|a| a.as_bytes().to_vec()).collect())
}
