//! The client against tiny in-test TCP servers that answer canned RESP.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fulcrum_client::{Client, ClientError, Frame};
use fulcrum_proto::{encode, ProtoError, Protocol, RequestDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves one connection with `script`.
async fn spawn_raw<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        script(socket).await;
    });
    addr
}

/// Serves one connection: decodes requests and answers each with
/// `reply(args)`; `None` closes the connection. Protocol errors are answered
/// like the real server would.
async fn spawn_server<F>(mut reply: F) -> SocketAddr
where
    F: FnMut(Vec<Bytes>) -> Option<Frame> + Send + 'static,
{
    spawn_raw(move |mut socket| async move {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        loop {
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(args)) => match reply(args) {
                        Some(frame) => encode(&frame, Protocol::Resp2, &mut out),
                        None => return,
                    },
                    Ok(None) => break,
                    Err(e) => {
                        encode(&e.to_frame(), Protocol::Resp2, &mut out);
                        if e.is_fatal() {
                            let _ = socket.write_all(&out).await;
                            return;
                        }
                    }
                }
            }
            if socket.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            match socket.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// A toy key-value server.
fn kv() -> impl FnMut(Vec<Bytes>) -> Option<Frame> + Send + 'static {
    let mut map: HashMap<Bytes, Bytes> = HashMap::new();
    move |args| {
        let name = args[0].to_ascii_uppercase();
        Some(match (&name[..], args.len()) {
            (b"PING", 1) => Frame::simple("PONG"),
            (b"SET", 3) => {
                map.insert(args[1].clone(), args[2].clone());
                Frame::ok()
            }
            (b"GET", 2) => map.get(&args[1]).cloned().map_or(Frame::Null, Frame::Bulk),
            (b"DEL", n) if n > 1 => Frame::Integer(
                args[1..]
                    .iter()
                    .filter(|k| map.remove(*k).is_some())
                    .count() as i64,
            ),
            (b"ECHO", 2) => Frame::Bulk(args[1].clone()),
            (b"QUIT", 1) => return None,
            _ => Frame::error("ERR unknown command"),
        })
    }
}

#[tokio::test]
async fn typed_helpers() {
    let addr = spawn_server(kv()).await;
    let mut c = Client::connect(addr).await.expect("connect");
    c.ping().await.expect("ping");
    assert_eq!(c.get("k").await.expect("get"), None);
    c.set("k", b"v\r\n\x00").await.expect("set");
    assert_eq!(
        c.get(b"k").await.expect("get"),
        Some(Bytes::from_static(b"v\r\n\x00"))
    );
    assert_eq!(c.del(&["k", "missing"]).await.expect("del"), 1);
    assert_eq!(c.get("k").await.expect("get"), None);
}

#[tokio::test]
async fn error_replies() {
    let addr = spawn_server(kv()).await;
    let mut c = Client::connect(addr).await.expect("connect");
    // `cmd` hands error replies back as frames...
    assert_eq!(
        c.cmd(&["NOPE"]).await.expect("reply"),
        Frame::error("ERR unknown command")
    );
    // ...typed helpers turn them into errors.
    let err = c.del::<&str>(&[]).await.expect_err("DEL needs keys");
    assert!(
        matches!(&err, ClientError::ServerError(m) if m == "ERR unknown command"),
        "{err}"
    );
}

#[tokio::test]
async fn unexpected_reply_type() {
    let addr = spawn_server(|_| Some(Frame::Integer(1))).await;
    let mut c = Client::connect(addr).await.expect("connect");
    let err = c.get("k").await.expect_err("integer is not a GET reply");
    assert!(
        matches!(
            err,
            ClientError::UnexpectedReply {
                command: "GET",
                reply: Frame::Integer(1)
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn pipeline_replies_in_order() {
    let addr = spawn_server(kv()).await;
    let mut c = Client::connect(addr).await.expect("connect");
    let cmds: Vec<Vec<String>> = (0..200)
        .map(|i| vec!["ECHO".to_string(), format!("v{i}")])
        .collect();
    let replies = c.pipeline(&cmds).await.expect("pipeline");
    assert_eq!(replies.len(), 200);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, &Frame::bulk(format!("v{i}")));
    }
    let mixed = c
        .pipeline(&[&["SET", "a", "1"][..], &["GET", "a"], &["NOPE"]])
        .await
        .expect("pipeline");
    assert_eq!(
        mixed,
        vec![
            Frame::ok(),
            Frame::bulk("1"),
            Frame::error("ERR unknown command")
        ]
    );
    assert!(c
        .pipeline::<Vec<&str>, &str>(&[])
        .await
        .expect("empty")
        .is_empty());
}

#[tokio::test]
async fn replies_arriving_byte_by_byte() {
    let addr = spawn_raw(|mut s| async move {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        s.set_nodelay(true).expect("nodelay");
        let reply = b"%2\r\n+a\r\n*2\r\n:1\r\n,2.5\r\n$1\r\nb\r\n#t\r\n";
        for b in reply {
            s.write_all(&[*b]).await.expect("write");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _ = s.read(&mut buf).await;
    })
    .await;
    let mut c = Client::connect(addr).await.expect("connect");
    assert_eq!(
        c.cmd(&["HELLO", "3"]).await.expect("reply"),
        Frame::Map(vec![
            (
                Frame::simple("a"),
                Frame::Array(vec![Frame::Integer(1), Frame::Double(2.5)])
            ),
            (Frame::bulk("b"), Frame::Boolean(true)),
        ])
    );
}

#[tokio::test]
async fn timeout_then_late_reply_is_discarded() {
    let addr = spawn_raw(|mut s| async move {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let mut first = true;
        loop {
            while let Ok(Some(args)) = dec.decode(&mut buf) {
                if first {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    first = false;
                }
                encode(&Frame::Bulk(args[1].clone()), Protocol::Resp2, &mut out);
            }
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            if matches!(s.read_buf(&mut buf).await, Ok(0) | Err(_)) {
                return;
            }
        }
    })
    .await;
    let mut c = Client::connect_with_timeout(addr, Some(Duration::from_millis(100)))
        .await
        .expect("connect");
    let err = c.cmd(&["ECHO", "slow"]).await.expect_err("times out");
    assert!(
        matches!(err, ClientError::Timeout { op: "cmd", after } if after == Duration::from_millis(100)),
        "{err}"
    );
    c.set_timeout(Some(Duration::from_secs(5)));
    assert_eq!(c.timeout(), Some(Duration::from_secs(5)));
    // The late "slow" reply is skipped; this command gets its own.
    assert_eq!(
        c.cmd(&["ECHO", "fast"]).await.expect("reply"),
        Frame::bulk("fast")
    );
    assert_eq!(
        c.cmd(&["ECHO", "next"]).await.expect("reply"),
        Frame::bulk("next")
    );
}

#[tokio::test]
async fn read_frame_timeout_can_be_retried() {
    let addr = spawn_raw(|mut s| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b"+LATE\r\n").await.expect("write");
        let mut buf = [0u8; 8];
        let _ = s.read(&mut buf).await;
    })
    .await;
    let mut c = Client::connect_with_timeout(addr, Some(Duration::from_millis(50)))
        .await
        .expect("connect");
    assert!(matches!(
        c.read_frame().await,
        Err(ClientError::Timeout { op: "read", .. })
    ));
    c.set_timeout(None);
    assert_eq!(
        c.read_frame().await.expect("late reply"),
        Frame::simple("LATE")
    );
}

#[tokio::test]
async fn garbage_gets_protocol_error_then_close() {
    let addr = spawn_server(kv()).await;
    let mut c = Client::connect(addr).await.expect("connect");
    c.send_raw(b"*1\r\n$x\r\n").await.expect("send");
    assert_eq!(
        c.read_frame().await.expect("error reply"),
        Frame::error("ERR Protocol error: invalid bulk length")
    );
    assert!(matches!(c.read_frame().await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn raw_requests_and_inline_commands() {
    let addr = spawn_server(kv()).await;
    let mut c = Client::connect(addr).await.expect("connect");
    c.send_raw(b"SET k \"a b\"\r\nGET k\r\n*1\r\n$4\r\nPI")
        .await
        .expect("send");
    assert_eq!(c.read_frame().await.expect("reply"), Frame::ok());
    assert_eq!(c.read_frame().await.expect("reply"), Frame::bulk("a b"));
    c.send_raw(b"NG\r\n").await.expect("send");
    assert_eq!(c.read_frame().await.expect("reply"), Frame::simple("PONG"));
}

#[tokio::test]
async fn server_closing_is_closed() {
    let addr = spawn_server(kv()).await;
    let mut c = Client::connect(addr).await.expect("connect");
    let err = c.cmd(&["QUIT"]).await.expect_err("server hangs up");
    assert!(matches!(err, ClientError::Closed), "{err}");
}

#[tokio::test]
async fn closing_mid_reply_is_closed() {
    let addr = spawn_raw(|mut s| async move {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        s.write_all(b"$10\r\nabc").await.expect("write");
    })
    .await;
    let mut c = Client::connect(addr).await.expect("connect");
    assert!(matches!(
        c.cmd(&["GET", "k"]).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn malformed_reply_is_protocol_error() {
    let addr = spawn_raw(|mut s| async move {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        s.write_all(b"?what\r\n").await.expect("write");
        let _ = s.read(&mut buf).await;
    })
    .await;
    let mut c = Client::connect(addr).await.expect("connect");
    let err = c.ping().await.expect_err("garbage reply");
    assert!(
        matches!(err, ClientError::Protocol(ProtoError::InvalidReply { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn connect_refused_is_io() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = Client::connect(addr).await.expect_err("nothing listens");
    assert!(
        matches!(err, ClientError::Io { op: "connect", .. }),
        "{err}"
    );
}
