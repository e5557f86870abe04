//! Exact reply bytes in RESP2 and RESP3, including the RESP2 downgrades,
//! error sanitizing, and multibulk request encoding.

use bytes::{Bytes, BytesMut};
use fulcrum_proto::{encode, encode_command, encode_request, Frame, Protocol};

fn enc(frame: &Frame, proto: Protocol) -> String {
    let mut out = BytesMut::new();
    encode(frame, proto, &mut out);
    String::from_utf8(out.to_vec()).expect("test frames are UTF-8")
}

fn both(frame: Frame, resp2: &str, resp3: &str) {
    assert_eq!(enc(&frame, Protocol::Resp2), resp2, "RESP2 {frame:?}");
    assert_eq!(enc(&frame, Protocol::Resp3), resp3, "RESP3 {frame:?}");
}

#[test]
fn scalars() {
    both(Frame::ok(), "+OK\r\n", "+OK\r\n");
    both(Frame::error("ERR no"), "-ERR no\r\n", "-ERR no\r\n");
    both(Frame::Integer(-42), ":-42\r\n", ":-42\r\n");
    both(
        Frame::Integer(i64::MIN),
        ":-9223372036854775808\r\n",
        ":-9223372036854775808\r\n",
    );
    both(Frame::bulk("foo"), "$3\r\nfoo\r\n", "$3\r\nfoo\r\n");
    both(Frame::bulk(""), "$0\r\n\r\n", "$0\r\n\r\n");
    both(Frame::Null, "$-1\r\n", "_\r\n");
    both(Frame::NullArray, "*-1\r\n", "_\r\n");
    both(Frame::Boolean(true), ":1\r\n", "#t\r\n");
    both(Frame::Boolean(false), ":0\r\n", "#f\r\n");
}

#[test]
fn doubles_format_like_redis() {
    both(Frame::Double(3.25), "$4\r\n3.25\r\n", ",3.25\r\n");
    both(Frame::Double(0.1), "$3\r\n0.1\r\n", ",0.1\r\n");
    both(Frame::Double(2.0), "$1\r\n2\r\n", ",2\r\n");
    both(Frame::Double(f64::INFINITY), "$3\r\ninf\r\n", ",inf\r\n");
    both(
        Frame::Double(f64::NEG_INFINITY),
        "$4\r\n-inf\r\n",
        ",-inf\r\n",
    );
    both(Frame::Double(f64::NAN), "$3\r\nnan\r\n", ",nan\r\n");
    both(Frame::Double(1e21), "$5\r\n1e+21\r\n", ",1e+21\r\n");
    both(Frame::Double(-0.5), "$4\r\n-0.5\r\n", ",-0.5\r\n");
}

#[test]
fn aggregates() {
    both(
        Frame::Array(vec![Frame::Integer(1), Frame::bulk("a"), Frame::Null]),
        "*3\r\n:1\r\n$1\r\na\r\n$-1\r\n",
        "*3\r\n:1\r\n$1\r\na\r\n_\r\n",
    );
    both(Frame::Array(vec![]), "*0\r\n", "*0\r\n");
    both(
        Frame::Map(vec![
            (Frame::bulk("a"), Frame::Integer(1)),
            (Frame::bulk("b"), Frame::Boolean(true)),
        ]),
        "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:1\r\n",
        "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n#t\r\n",
    );
    both(
        Frame::Set(vec![Frame::bulk("x")]),
        "*1\r\n$1\r\nx\r\n",
        "~1\r\n$1\r\nx\r\n",
    );
    both(
        Frame::Array(vec![Frame::Array(vec![Frame::Double(1.5)])]),
        "*1\r\n*1\r\n$3\r\n1.5\r\n",
        "*1\r\n*1\r\n,1.5\r\n",
    );
}

#[test]
fn verbatim() {
    both(
        Frame::Verbatim("txt".into(), Bytes::from_static(b"hi\r\nthere")),
        "$9\r\nhi\r\nthere\r\n",
        "=13\r\ntxt:hi\r\nthere\r\n",
    );
    both(
        Frame::Verbatim("mkd".into(), Bytes::from_static(b"# x")),
        "$3\r\n# x\r\n",
        "=7\r\nmkd:# x\r\n",
    );
    // A format that is not three bytes falls back to txt.
    both(
        Frame::Verbatim("markdown".into(), Bytes::from_static(b"x")),
        "$1\r\nx\r\n",
        "=5\r\ntxt:x\r\n",
    );
}

#[test]
fn crlf_in_lines_becomes_spaces() {
    both(
        Frame::error("ERR bad\r\ninput\n"),
        "-ERR bad  input \r\n",
        "-ERR bad  input \r\n",
    );
    both(Frame::simple("a\rb"), "+a b\r\n", "+a b\r\n");
}

#[test]
fn requests() {
    let mut out = BytesMut::new();
    encode_request(&[b"SET", b"k", b"v\r\n"], &mut out);
    assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n");
    out.clear();
    encode_command(&["GET", "key"], &mut out);
    assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
    out.clear();
    encode_request(&[], &mut out);
    assert_eq!(&out[..], b"*0\r\n");
}
