//! The bad-input contract, over the real binary: malformed protocol,
//! oversize values, unknown commands, binary garbage and clients that
//! disconnect mid-request each get a clear error; the connection is closed
//! only where the stream cannot be resynchronized; the server never panics;
//! other clients are unaffected; nothing acknowledged is lost.
//!
//! Every test keeps a "bystander" connection that wrote a key before the
//! bad input and must keep getting correct answers, and ends by checking
//! the node process is still alive.

mod common;

use std::time::Duration;

use common::*;
use fulcrum_client::{Client, ClientError, Frame};
use rand::{rngs::StdRng, RngCore, SeedableRng};

/// A well-behaved client that wrote `bystander-key` before the test.
struct Bystander {
    c: Client,
    n: u32,
}

impl Bystander {
    async fn new(node: &Node) -> Bystander {
        let mut c = node.client().await;
        assert_eq!(
            cmd(&mut c, &["SET", "bystander-key", "precious"]).await,
            ok()
        );
        Bystander { c, n: 0 }
    }

    /// PING, read back the precious key, and write + read a fresh one.
    async fn check(&mut self) {
        self.n += 1;
        assert_eq!(cmd(&mut self.c, &["PING"]).await, simple("PONG"));
        assert_eq!(
            cmd(&mut self.c, &["GET", "bystander-key"]).await,
            bulk("precious")
        );
        let k = format!("bystander-{}", self.n);
        assert_eq!(cmd(&mut self.c, &["SET", &k, "v"]).await, ok());
        assert_eq!(cmd(&mut self.c, &["GET", &k]).await, bulk("v"));
    }
}

/// The node is alive, a fresh client works, acknowledged data is there.
async fn assert_node_healthy(node: &mut Node, by: &mut Bystander) {
    by.check().await;
    let mut fresh = node.client().await;
    assert_eq!(cmd(&mut fresh, &["PING"]).await, simple("PONG"));
    assert_eq!(
        cmd(&mut fresh, &["GET", "bystander-key"]).await,
        bulk("precious")
    );
    assert!(node.is_alive(), "the node process exited");
    let stderr = node.stderr_text();
    assert!(!stderr.contains("panicked"), "the node panicked:\n{stderr}");
}

/// Sends `bytes`, expects one error reply with exactly `want`, then the
/// connection closed by the server.
async fn fatal(node: &Node, bytes: &[u8], want: &str) {
    let mut c = node.client().await;
    c.send_raw(bytes).await.expect("send raw bytes");
    let reply = c.read_frame().await.expect("a reply before the close");
    assert_eq!(reply, Frame::Error(want.to_string()), "reply to {bytes:?}");
    assert!(is_closed(&mut c).await);
}

#[tokio::test]
async fn invalid_multibulk_length_is_fatal() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    fatal(
        &node,
        b"*abc\r\n",
        "ERR Protocol error: invalid multibulk length",
    )
    .await;
    fatal(
        &node,
        b"*1x\r\n",
        "ERR Protocol error: invalid multibulk length",
    )
    .await;
    // Commands pipelined before the garbage are answered first.
    let mut c = node.client().await;
    c.send_raw(b"SET before-garbage 1\r\n*+1\r\nSET after-garbage 1\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_frame().await.unwrap(), ok());
    assert_eq!(
        c.read_frame().await.unwrap(),
        Frame::Error("ERR Protocol error: invalid multibulk length".into())
    );
    assert!(is_closed(&mut c).await);
    let mut check = node.client().await;
    assert_eq!(cmd(&mut check, &["GET", "before-garbage"]).await, bulk("1"));
    assert_eq!(
        cmd(&mut check, &["GET", "after-garbage"]).await,
        Frame::Null
    );
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn non_bulk_element_is_fatal() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    fatal(
        &node,
        b"*1\r\n+x\r\n",
        "ERR Protocol error: expected '$', got '+'",
    )
    .await;
    fatal(
        &node,
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        "ERR Protocol error: expected '$', got ':'",
    )
    .await;
    // Bulk data not followed by CRLF.
    fatal(
        &node,
        b"*1\r\n$4\r\nPINGxx",
        "ERR Protocol error: expected CRLF after bulk data",
    )
    .await;
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn negative_or_malformed_bulk_length_is_fatal() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    fatal(
        &node,
        b"*1\r\n$-5\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    fatal(
        &node,
        b"*1\r\n$-1\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    fatal(
        &node,
        b"*1\r\n$abc\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    // Above the 512 MiB protocol maximum: not skippable.
    fatal(
        &node,
        b"*1\r\n$99999999999\r\n",
        "ERR Protocol error: invalid bulk length",
    )
    .await;
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn unbalanced_quotes_in_inline_command_are_fatal() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    fatal(
        &node,
        b"SET quoted \"abc\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    )
    .await;
    fatal(
        &node,
        b"SET quoted 'a'b\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    )
    .await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["EXISTS", "quoted"]).await, int(0));
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn empty_requests_and_unknown_commands_are_not_fatal() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    let mut c = node.client().await;
    // Blank lines, `*0` and `*-1` are skipped, as in Redis.
    c.send_raw(b"\r\n\n*0\r\n*-1\r\n   \r\nPING\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_frame().await.unwrap(), simple("PONG"));
    assert_err(
        &cmd(&mut c, &["NOSUCHCOMMAND", "x"]).await,
        "ERR unknown command",
    );
    let binary_name: &[u8] = b"\x00\xff\xfe";
    let reply = c.cmd(&[binary_name, b"arg"]).await.unwrap();
    assert_err(&reply, "ERR unknown command");
    assert_eq!(cmd(&mut c, &["PING"]).await, simple("PONG"));
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn value_over_the_default_16_mib_limit_is_refused_and_the_connection_resyncs() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    let mut c = node.client().await;
    c.set_timeout(Some(Duration::from_secs(60)));

    const LEN: usize = 20 * 1024 * 1024;
    c.send_raw(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${LEN}\r\n").as_bytes())
        .await
        .unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    for i in 0..LEN / chunk.len() {
        c.send_raw(&chunk).await.unwrap();
        if i == 10 {
            // Others are served while the big request streams in.
            by.check().await;
        }
    }
    // The request's end, then a pipelined PING on the same connection.
    c.send_raw(b"\r\n*1\r\n$4\r\nPING\r\n").await.unwrap();
    assert_eq!(
        c.read_frame().await.unwrap(),
        Frame::Error(format!(
            "TOOLARGE argument of {LEN} bytes exceeds the limit of 16777216 bytes"
        ))
    );
    assert_eq!(c.read_frame().await.unwrap(), simple("PONG"));
    assert_eq!(cmd(&mut c, &["GET", "big"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["SET", "small", "ok"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "small"]).await, bulk("ok"));
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn configured_key_and_value_limits() {
    let mut node = Node::builder()
        .args(["--max-value-bytes", "1024", "--max-key-bytes", "100"])
        .start()
        .await;
    let mut by = Bystander::new(&node).await;
    let mut c = node.client().await;

    let big_value = "v".repeat(2048);
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "k", &big_value]).await),
        "TOOLARGE argument of 2048 bytes exceeds the limit of 1024 bytes"
    );
    assert_eq!(cmd(&mut c, &["PING"]).await, simple("PONG"));
    let big_key = "k".repeat(200);
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", &big_key, "v"]).await),
        "TOOLARGE key of 200 bytes exceeds the limit of 100 bytes"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["GET", &big_key]).await),
        "TOOLARGE key of 200 bytes exceeds the limit of 100 bytes"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["MSET", "ok", "v", &big_key, "v"]).await),
        "TOOLARGE key of 200 bytes exceeds the limit of 100 bytes"
    );
    assert_eq!(
        cmd(&mut c, &["EXISTS", "ok"]).await,
        int(0),
        "MSET is all or nothing"
    );
    // A 200-byte *value* is fine (only keys are limited to 100).
    assert_eq!(cmd(&mut c, &["SET", "k200", &"v".repeat(200)]).await, ok());
    // Exactly at the limits is accepted.
    let max_key = "k".repeat(100);
    let max_value = "v".repeat(1024);
    assert_eq!(cmd(&mut c, &["SET", &max_key, &max_value]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", &max_key]).await, bulk(&max_value));
    // Pipelined: the oversized request fails alone.
    let replies = c
        .pipeline(&[
            vec!["SET", "p1", "a"],
            vec!["SET", "p2", big_value.as_str()],
            vec!["SET", "p3", "c"],
        ])
        .await
        .unwrap();
    assert_eq!(replies[0], ok());
    assert_err(&replies[1], "TOOLARGE");
    assert_eq!(replies[2], ok());
    assert_eq!(
        cmd(&mut c, &["MGET", "p1", "p2", "p3"]).await,
        Frame::Array(vec![bulk("a"), Frame::Null, bulk("c")])
    );
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn array_longer_than_the_limit_is_refused() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    let mut c = node.client().await;
    c.send_raw(b"*2000000\r\n").await.unwrap();
    let reply = c.read_frame().await.unwrap();
    assert_err(&reply, "ERR Protocol error: invalid multibulk length");
    assert!(
        err_text(&reply).contains("2000000"),
        "the error names the length: {reply:?}"
    );
    assert!(is_closed(&mut c).await);
    // An array at the limit is accepted as a header (it is then just a
    // long request); a small node-wide limit is enforced too.
    let mut limited = Node::builder().args(["--max-array-len", "3"]).start().await;
    let mut l = limited.client().await;
    assert_eq!(cmd(&mut l, &["MSET", "a", "1"]).await, ok());
    let reply = cmd(&mut l, &["MSET", "a", "1", "b", "2"]).await;
    assert_err(&reply, "ERR Protocol error: invalid multibulk length");
    assert!(is_closed(&mut l).await);
    assert!(limited.is_alive());
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn a_megabyte_of_random_bytes_never_crashes_the_server() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    let seed = 0x00F1_C0DE_u64;
    println!("garbage seed = {seed:#x}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut garbage = vec![0u8; 1024 * 1024];
    rng.fill_bytes(&mut garbage);

    let mut c = node.client().await;
    c.set_timeout(Some(Duration::from_secs(10)));
    // The server may close the connection part-way: writes then fail.
    for chunk in garbage.chunks(64 * 1024) {
        if c.send_raw(chunk).await.is_err() {
            break;
        }
    }
    let mut replies = 0;
    loop {
        match c.read_frame().await {
            Ok(Frame::Error(_)) => replies += 1,
            Ok(other) => panic!("garbage got a non-error reply {other:?}"),
            Err(ClientError::Closed) | Err(ClientError::Io { .. }) => break,
            Err(ClientError::Timeout { .. }) => break, // still open, waiting for more
            Err(e) => panic!("unexpected client error {e}"),
        }
    }
    println!("{replies} error replies before close");
    assert_node_healthy(&mut node, &mut by).await;

    // Garbage that starts like a valid multibulk request.
    let mut c = node.client().await;
    let mut framed = b"*3\r\n$3\r\nSET\r\n".to_vec();
    framed.extend_from_slice(&garbage[..4096]);
    let _ = c.send_raw(&framed).await;
    drop(c);
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn random_printable_lines_get_errors_and_the_connection_stays_usable() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    let seed = 0x5EED_u64;
    println!("line garbage seed = {seed:#x}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Upper-case letters, digits, blanks and line ends: no quotes, so every
    // line is a well-formed inline request naming an unknown command.
    let alphabet = b"QWXZJKVBPYGFMUCLDRHSNIOATE0123456789  \t\r\n";
    // 32 KiB: the replies (one per line) fit in the socket buffers while
    // this side is still sending.
    let garbage: Vec<u8> = (0..32 * 1024)
        .map(|_| alphabet[(rng.next_u32() as usize) % alphabet.len()])
        .collect();
    let mut c = node.client().await;
    c.send_raw(&garbage).await.unwrap();
    c.send_raw(b"\r\nECHO end-of-garbage\r\n").await.unwrap();
    let mut errors = 0;
    loop {
        match c.read_frame().await.unwrap() {
            Frame::Error(e) => {
                assert!(e.starts_with("ERR unknown command"), "{e}");
                errors += 1;
            }
            f if f == bulk("end-of-garbage") => break,
            other => panic!("garbage line got a non-error reply {other:?}"),
        }
    }
    assert!(errors > 100, "{errors} error replies");
    assert_eq!(cmd(&mut c, &["PING"]).await, simple("PONG"));
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn client_disconnecting_mid_request_harms_nothing() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    // Half a multibulk request, then gone.
    let mut c = node.client().await;
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc")
        .await
        .unwrap();
    drop(c);
    // Half an inline request, then a clean shutdown of the write side.
    let mut c = node.client().await;
    c.send_raw(b"SET half2 value").await.unwrap();
    c.shutdown().await.unwrap();
    assert!(is_closed(&mut c).await, "server closes after EOF");
    // Half of a large value.
    let mut c = node.client().await;
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$5\r\nhalf3\r\n$1000000\r\n")
        .await
        .unwrap();
    c.send_raw(&vec![b'z'; 500_000]).await.unwrap();
    drop(c);
    // A complete request followed by half of one: the first is applied.
    let mut c = node.client().await;
    c.send_raw(b"SET whole 1\r\n*2\r\n$3\r\nGET\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_frame().await.unwrap(), ok());
    drop(c);

    by.check().await;
    let mut check = node.client().await;
    assert_eq!(
        cmd(&mut check, &["MGET", "half", "half2", "half3", "whole"]).await,
        Frame::Array(vec![Frame::Null, Frame::Null, Frame::Null, bulk("1")])
    );
    assert_node_healthy(&mut node, &mut by).await;
}

#[tokio::test]
async fn huge_inline_line_is_refused() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    // 64 KiB + 1 bytes without a newline: exactly one byte over the inline
    // limit, so the server has read everything when it answers and closes.
    let line = vec![b'a'; 64 * 1024 + 1];
    let mut c = node.client().await;
    c.send_raw(&line).await.unwrap();
    let reply = c.read_frame().await.unwrap();
    assert_eq!(
        reply,
        Frame::Error("ERR Protocol error: too big inline request".into())
    );
    assert!(is_closed(&mut c).await);
    // The same for a bulk length line that never ends: `$` and 64 KiB of
    // digits is one byte over the limit, again the last byte sent.
    let mut c = node.client().await;
    let mut header = b"*1\r\n$".to_vec();
    header.extend(std::iter::repeat_n(b'1', 64 * 1024));
    c.send_raw(&header).await.unwrap();
    assert_eq!(
        c.read_frame().await.unwrap(),
        Frame::Error("ERR Protocol error: too big bulk count string".into())
    );
    assert!(is_closed(&mut c).await);
    // A long but legal inline line works.
    let mut c = node.client().await;
    let value = "v".repeat(60 * 1024);
    c.send_raw(format!("SET longline {value}\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(c.read_frame().await.unwrap(), ok());
    assert_eq!(cmd(&mut c, &["GET", "longline"]).await, bulk(&value));
    assert_node_healthy(&mut node, &mut by).await;
}

/// All of the above against one node, from concurrent connections, while
/// a bystander keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_survives_every_kind_of_bad_input() {
    let mut node = Node::start().await;
    let mut by = Bystander::new(&node).await;
    let inputs: Vec<Vec<u8>> = vec![
        b"*abc\r\n".to_vec(),
        b"*1\r\n+x\r\n".to_vec(),
        b"*1\r\n$-5\r\n".to_vec(),
        b"SET a \"b\r\n".to_vec(),
        b"*2000000\r\n".to_vec(),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab".to_vec(),
        vec![b'q'; 64 * 1024 + 1],
        {
            let mut g = vec![0u8; 256 * 1024];
            StdRng::seed_from_u64(7).fill_bytes(&mut g);
            g
        },
    ];
    let addr = node.resp;
    let mut tasks = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let mut c = Client::connect(addr).await.expect("connect");
                c.set_timeout(Some(Duration::from_secs(1)));
                let _ = c.send_raw(&input).await;
                // Read whatever comes until close or a quiet period.
                for _ in 0..10_000 {
                    match c.read_frame().await {
                        Ok(Frame::Error(_)) => {}
                        Ok(other) => panic!("input {i}: non-error reply {other:?}"),
                        Err(_) => break,
                    }
                }
            }
        }));
    }
    for _ in 0..10 {
        by.check().await;
    }
    for t in tasks {
        t.await.expect("bad-input task");
    }
    assert_node_healthy(&mut node, &mut by).await;
}
