//! Inline commands follow Redis's `sdssplitargs` quoting rules.

mod common;

use common::{decode_whole, req};
use fulcrum_proto::ProtoError;

fn one(line: &[u8]) -> common::Outcome {
    let mut got = decode_whole(line);
    assert_eq!(got.len(), 1, "{line:?} gave {got:?}");
    got.remove(0)
}

#[test]
fn plain_words_and_line_endings() {
    assert_eq!(one(b"PING\r\n"), req(&["PING"]));
    assert_eq!(one(b"PING\n"), req(&["PING"]));
    assert_eq!(one(b"  set   a\tb  \r\n"), req(&["set", "a", "b"]));
    // \v and \f separate only before a word, as in C isspace vs the
    // token switch.
    assert_eq!(one(b"\x0bget\x0ba\n"), req(&["get\x0ba"]));
}

#[test]
fn empty_lines_are_skipped() {
    assert_eq!(
        decode_whole(b"\r\n\n  \t \r\nPING\r\n"),
        vec![req(&["PING"])]
    );
    assert_eq!(decode_whole(b"\r\n"), vec![]);
}

#[test]
fn double_quotes_and_escapes() {
    assert_eq!(one(b"set \"a b\" \"\"\r\n"), req(&["set", "a b", ""]));
    assert_eq!(
        one(b"set k \"l1\\nl2\\r\\t\\\"q\\\" \\\\ \\b\\a\\z\"\n"),
        req(&["set", "k", "l1\nl2\r\t\"q\" \\ \x08\x07z"])
    );
    assert_eq!(
        one(b"set k \"\\x41\\x7a\\xff\\x0\\xzz\"\n"),
        Ok(vec![
            b"set".to_vec(),
            b"k".to_vec(),
            b"Az\xffx0xzz".to_vec()
        ])
    );
    // Quotes may start mid-word and glue to it.
    assert_eq!(one(b"set k\"e y\" v\n"), req(&["set", "ke y", "v"]));
}

#[test]
fn single_quotes() {
    assert_eq!(
        one(b"set 'a \"b\" \\n' 'it\\'s'\n"),
        req(&["set", "a \"b\" \\n", "it's"])
    );
    assert_eq!(one(b"''\n"), req(&[""]));
}

#[test]
fn closing_quote_must_be_followed_by_blank() {
    assert_eq!(one(b"get \"a\"b\n"), Err(ProtoError::UnbalancedQuotes));
    assert_eq!(one(b"get 'a'b\n"), Err(ProtoError::UnbalancedQuotes));
    assert_eq!(one(b"get \"a\"\tb\n"), req(&["get", "a", "b"]));
}

#[test]
fn unterminated_quotes() {
    assert_eq!(one(b"get \"a\n"), Err(ProtoError::UnbalancedQuotes));
    assert_eq!(one(b"get 'a\n"), Err(ProtoError::UnbalancedQuotes));
    assert_eq!(one(b"get \"a\\\"\n"), Err(ProtoError::UnbalancedQuotes));
}

#[test]
fn nul_ends_the_line_like_a_c_string() {
    assert_eq!(one(b"set a b\x00c d\n"), req(&["set", "a", "b"]));
}

#[test]
fn binary_bytes_pass_through_unquoted() {
    assert_eq!(
        one(b"set \xff\xfe v\n"),
        Ok(vec![b"set".to_vec(), b"\xff\xfe".to_vec(), b"v".to_vec()])
    );
}
