//! Redis reply shapes and error texts of the single node, over the real
//! binary: connection commands, RESP3, strings, TTLs, SCAN, errors, and
//! expiry (lazy and by the sweeper).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use fulcrum_client::{Client, Frame};

#[tokio::test]
async fn ping_echo_select_client_quit() {
    let node = Node::start().await;
    let mut c = node.client().await;

    assert_eq!(cmd(&mut c, &["PING"]).await, simple("PONG"));
    assert_eq!(
        cmd(&mut c, &["ping", "hello world"]).await,
        bulk("hello world")
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["PING", "a", "b"]).await),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(cmd(&mut c, &["ECHO", "x y"]).await, bulk("x y"));
    assert_eq!(cmd(&mut c, &["ECHO", ""]).await, bulk(""));
    assert_eq!(
        err_text(&cmd(&mut c, &["ECHO"]).await),
        "ERR wrong number of arguments for 'echo' command"
    );

    assert_eq!(cmd(&mut c, &["SELECT", "0"]).await, ok());
    assert_err(
        &cmd(&mut c, &["SELECT", "1"]).await,
        "ERR DB index is out of range",
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SELECT", "zero"]).await),
        "ERR value is not an integer or out of range"
    );

    let id = as_int(&cmd(&mut c, &["CLIENT", "ID"]).await);
    assert!(id > 0);
    let mut other = node.client().await;
    let other_id = as_int(&cmd(&mut other, &["CLIENT", "ID"]).await);
    assert_ne!(id, other_id, "CLIENT ID is unique per connection");
    assert_eq!(cmd(&mut c, &["CLIENT", "ID"]).await, int(id), "and stable");

    assert_eq!(cmd(&mut c, &["CLIENT", "GETNAME"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["CLIENT", "SETNAME", "worker-1"]).await, ok());
    assert_eq!(cmd(&mut c, &["client", "getname"]).await, bulk("worker-1"));
    assert_eq!(cmd(&mut other, &["CLIENT", "GETNAME"]).await, Frame::Null);
    assert_eq!(
        err_text(&cmd(&mut c, &["CLIENT", "SETNAME", "has space"]).await),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(cmd(&mut c, &["CLIENT", "GETNAME"]).await, bulk("worker-1"));
    assert_eq!(
        err_text(&cmd(&mut c, &["CLIENT", "BOGUS"]).await),
        "ERR unknown subcommand 'BOGUS'. Try CLIENT HELP."
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CLIENT", "ID", "extra"]).await),
        "ERR wrong number of arguments for 'client|id' command"
    );
    assert_err(
        &cmd(&mut c, &["AUTH", "secret"]).await,
        "ERR AUTH <password>",
    );

    // QUIT answers OK, then the server closes the connection.
    assert_eq!(cmd(&mut c, &["QUIT"]).await, ok());
    assert!(is_closed(&mut c).await);
    assert_eq!(cmd(&mut other, &["PING"]).await, simple("PONG"));
}

#[tokio::test]
async fn hello_3_switches_the_connection_to_resp3() {
    let node = Node::start().await;

    // Exact bytes: a RESP3 map (`%7`), then RESP3 null `_` for a missing
    // key; a RESP2 connection gets `$-1` for the same GET.
    let mut raw = Raw::connect(node.resp).await;
    raw.send(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n").await;
    let hello = raw.read_until(b"$7\r\nmodules\r\n*0\r\n").await;
    let hello = String::from_utf8_lossy(&hello).into_owned();
    assert!(hello.starts_with("%7\r\n"), "HELLO 3 reply: {hello:?}");
    assert!(
        hello.contains("$6\r\nserver\r\n$7\r\nfulcrum\r\n"),
        "{hello:?}"
    );
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"), "{hello:?}");
    raw.send(b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n").await;
    assert_eq!(raw.read_exact(3).await, b"_\r\n");
    // A RESP3 map from another command (CONSISTENCY) and a verbatim INFO.
    raw.send(b"CONSISTENCY\r\n").await;
    assert_eq!(
        raw.read_until(b"QUORUM\r\n$5\r\nwrite\r\n$6\r\nQUORUM\r\n")
            .await,
        b"%2\r\n$4\r\nread\r\n$6\r\nQUORUM\r\n$5\r\nwrite\r\n$6\r\nQUORUM\r\n"
    );
    raw.send(b"INFO fulcrum\r\n").await;
    let info = raw.read_until(b"# Fulcrum").await;
    assert!(
        info.starts_with(b"="),
        "INFO in RESP3 is verbatim: {info:?}"
    );

    let mut raw2 = Raw::connect(node.resp).await;
    raw2.send(b"GET missing\r\n").await;
    assert_eq!(raw2.read_exact(5).await, b"$-1\r\n");
    raw2.send(b"HELLO 2\r\n").await;
    // RESP2: the map is a flat array of 14.
    let hello2 = raw2.read_until(b"$7\r\nmodules\r\n*0\r\n").await;
    assert!(
        hello2.starts_with(b"*14\r\n"),
        "{:?}",
        String::from_utf8_lossy(&hello2)
    );

    // Through the client: the decoded map.
    let mut c = node.client().await;
    let h = cmd(&mut c, &["HELLO", "3"]).await;
    assert!(matches!(h, Frame::Map(_)), "HELLO 3 is a map: {h:?}");
    assert_eq!(field(&h, "server"), bulk("fulcrum"));
    assert_eq!(field(&h, "proto"), int(3));
    let id = as_int(&field(&h, "id"));
    assert_eq!(cmd(&mut c, &["CLIENT", "ID"]).await, int(id));
    assert_eq!(cmd(&mut c, &["GET", "missing"]).await, Frame::Null);
    assert_eq!(
        err_text(&cmd(&mut c, &["HELLO", "4"]).await),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["HELLO", "three"]).await),
        "ERR Protocol version is not an integer or out of range"
    );
    // HELLO with SETNAME names the connection.
    let h = cmd(&mut c, &["HELLO", "3", "SETNAME", "named"]).await;
    assert_eq!(field(&h, "proto"), int(3));
    assert_eq!(cmd(&mut c, &["CLIENT", "GETNAME"]).await, bulk("named"));
}

#[tokio::test]
async fn command_and_info() {
    let node = Node::start().await;
    let mut c = node.client().await;

    let count = as_int(&cmd(&mut c, &["COMMAND", "COUNT"]).await);
    let all = cmd(&mut c, &["COMMAND"]).await;
    assert_eq!(items(&all).len() as i64, count);
    let list = cmd(&mut c, &["COMMAND", "LIST"]).await;
    let names: Vec<String> = items(&list).iter().map(text).collect();
    assert_eq!(names.len() as i64, count);
    for name in [
        "get",
        "set",
        "ping",
        "del",
        "scan",
        "keyspace",
        "use",
        "consistency",
        "getrev",
        "incr",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }

    let info = cmd(&mut c, &["COMMAND", "INFO", "get", "SET", "nosuch"]).await;
    let info = items(&info);
    assert_eq!(info.len(), 3);
    let get = items(&info[0]);
    assert_eq!(get[0], bulk("get"));
    assert_eq!(get[1], int(2));
    let flags: Vec<String> = items(&get[2]).iter().map(text).collect();
    assert!(flags.contains(&"readonly".to_string()), "{flags:?}");
    assert_eq!(&get[3..6], &[int(1), int(1), int(1)]);
    let set = items(&info[1]);
    assert_eq!(set[0], bulk("set"));
    assert_eq!(set[1], int(-3));
    assert_eq!(info[2], Frame::NullArray);
    assert_eq!(
        err_text(&cmd(&mut c, &["COMMAND", "FROB"]).await),
        "ERR unknown subcommand 'FROB'. Try COMMAND HELP."
    );

    let all_info = text(&cmd(&mut c, &["INFO"]).await);
    for section in [
        "# Server",
        "# Clients",
        "# Stats",
        "# Keyspace",
        "# Fulcrum",
    ] {
        assert!(
            all_info.contains(section),
            "INFO lacks {section}:\n{all_info}"
        );
    }
    assert!(info_field(&all_info, "redis_version").is_some());
    let fulcrum = text(&cmd(&mut c, &["INFO", "fulcrum"]).await);
    assert!(fulcrum.starts_with("# Fulcrum"), "{fulcrum}");
    assert!(!fulcrum.contains("# Server"), "{fulcrum}");
    assert_eq!(info_field(&fulcrum, "node_id").as_deref(), Some("n1"));
    assert_eq!(info_field(&fulcrum, "fsync").as_deref(), Some("always"));
    assert_eq!(info_field(&fulcrum, "keyspace").as_deref(), Some("default"));
    assert!(
        info_field(&fulcrum, "keyspace_default")
            .is_some_and(|v| v.contains("mode=eventual") && v.contains("replicas=3")),
        "{fulcrum}"
    );
    let stats = text(&cmd(&mut c, &["INFO", "stats"]).await);
    let processed: u64 = info_field(&stats, "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("total_commands_processed");
    assert!(processed >= 8, "{stats}");
}

#[tokio::test]
async fn config_get_shows_the_running_configuration_and_changes_are_refused() {
    let node = Node::builder()
        .args(["--fsync", "never", "--max-clients", "321"])
        .start()
        .await;
    let mut c = node.client().await;

    // RESP2: a flat name/value array, as redis-benchmark expects it.
    assert_eq!(
        cmd(&mut c, &["CONFIG", "GET", "save"]).await,
        Frame::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        cmd(&mut c, &["config", "get", "APPENDONLY"]).await,
        Frame::Array(vec![bulk("appendonly"), bulk("yes")])
    );
    let settings = |f: &Frame| -> HashMap<String, String> {
        pairs(f).into_iter().map(|(k, v)| (k, text(&v))).collect()
    };
    let got = settings(&cmd(&mut c, &["CONFIG", "GET", "*fsync*", "max*clients", "port"]).await);
    assert_eq!(got.get("fsync").map(String::as_str), Some("never"));
    assert_eq!(got.get("appendfsync").map(String::as_str), Some("no"));
    assert_eq!(got.get("max-clients").map(String::as_str), Some("321"));
    assert_eq!(got.get("maxclients").map(String::as_str), Some("321"));
    // The bound port, not the 0 the test asked for.
    assert_eq!(got.get("port"), Some(&node.resp.port().to_string()));
    assert_eq!(got.len(), 5, "{got:?}");
    let everything = settings(&cmd(&mut c, &["CONFIG", "GET", "*"]).await);
    assert_eq!(
        everything.get("data-dir"),
        Some(&node.data_dir.display().to_string())
    );
    assert!(everything.len() > 25, "{everything:?}");
    assert_eq!(
        cmd(&mut c, &["CONFIG", "GET", "no-such-setting"]).await,
        Frame::Array(vec![])
    );

    // RESP3: a map.
    cmd(&mut c, &["HELLO", "3"]).await;
    let m = cmd(&mut c, &["CONFIG", "GET", "maxclients"]).await;
    assert!(matches!(m, Frame::Map(_)), "{m:?}");
    assert_eq!(field(&m, "maxclients"), bulk("321"));

    // Fulcrum reads its configuration at start: no live changes.
    assert_err(
        &cmd(&mut c, &["CONFIG", "SET", "maxclients", "5"]).await,
        "ERR CONFIG SET is not supported",
    );
    assert_err(
        &cmd(&mut c, &["CONFIG", "RESETSTAT"]).await,
        "ERR CONFIG RESETSTAT is not supported",
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONFIG", "GET"]).await),
        "ERR wrong number of arguments for 'config|get' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONFIG", "FROB"]).await),
        "ERR unknown subcommand 'FROB'. Try CONFIG HELP."
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONFIG"]).await),
        "ERR wrong number of arguments for 'config' command"
    );
    assert!(items(&cmd(&mut c, &["CONFIG", "HELP"]).await).len() > 3);
    let after = settings(&cmd(&mut c, &["CONFIG", "GET", "maxclients"]).await);
    assert_eq!(after.get("maxclients").map(String::as_str), Some("321"));
}

#[tokio::test]
async fn set_conditions_get_and_expiry_options() {
    let node = Node::start().await;
    let mut c = node.client().await;

    // NX / XX
    assert_eq!(cmd(&mut c, &["SET", "k", "v1", "NX"]).await, ok());
    assert_eq!(cmd(&mut c, &["SET", "k", "v2", "NX"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v1"));
    assert_eq!(
        cmd(&mut c, &["SET", "absent", "v", "XX"]).await,
        Frame::Null
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "absent"]).await, int(0));
    assert_eq!(cmd(&mut c, &["SET", "k", "v3", "xx"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v3"));

    // GET returns the old value (nil if none), and the SET happens.
    assert_eq!(cmd(&mut c, &["SET", "k", "v4", "GET"]).await, bulk("v3"));
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v4"));
    assert_eq!(
        cmd(&mut c, &["SET", "fresh", "f", "GET"]).await,
        Frame::Null
    );
    assert_eq!(cmd(&mut c, &["GET", "fresh"]).await, bulk("f"));
    // NX GET on an existing key: not set, old value returned.
    assert_eq!(
        cmd(&mut c, &["SET", "k", "no", "NX", "GET"]).await,
        bulk("v4")
    );
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v4"));

    // EX / PX / EXAT / PXAT
    assert_eq!(cmd(&mut c, &["SET", "ex", "v", "EX", "100"]).await, ok());
    let ttl = as_int(&cmd(&mut c, &["TTL", "ex"]).await);
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(cmd(&mut c, &["SET", "px", "v", "PX", "50000"]).await, ok());
    let pttl = as_int(&cmd(&mut c, &["PTTL", "px"]).await);
    assert!((40_000..=50_000).contains(&pttl), "PTTL {pttl}");
    let at_s = (now_ms() / 1000 + 200).to_string();
    assert_eq!(
        cmd(&mut c, &["SET", "exat", "v", "EXAT", &at_s]).await,
        ok()
    );
    let ttl = as_int(&cmd(&mut c, &["TTL", "exat"]).await);
    assert!((195..=201).contains(&ttl), "TTL {ttl}");
    let at_ms = (now_ms() + 300_000).to_string();
    assert_eq!(
        cmd(&mut c, &["SET", "pxat", "v", "PXAT", &at_ms]).await,
        ok()
    );
    let pttl = as_int(&cmd(&mut c, &["PTTL", "pxat"]).await);
    assert!((290_000..=300_000).contains(&pttl), "PTTL {pttl}");
    // An absolute time in the past: OK, and the key is gone.
    assert_eq!(cmd(&mut c, &["SET", "past", "v", "PXAT", "1"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "past"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["SET", "k", "v5", "PXAT", "1"]).await, ok());
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]).await, int(0));

    // KEEPTTL keeps the TTL; a plain SET clears it.
    assert_eq!(cmd(&mut c, &["SET", "ex", "w", "KEEPTTL"]).await, ok());
    let ttl = as_int(&cmd(&mut c, &["TTL", "ex"]).await);
    assert!((95..=100).contains(&ttl), "TTL after KEEPTTL {ttl}");
    assert_eq!(cmd(&mut c, &["GET", "ex"]).await, bulk("w"));
    assert_eq!(cmd(&mut c, &["SET", "ex", "plain"]).await, ok());
    assert_eq!(cmd(&mut c, &["TTL", "ex"]).await, int(-1));

    // Errors.
    for bad in [
        &["SET", "e", "v", "EX", "0"][..],
        &["SET", "e", "v", "EX", "-5"],
        &["SET", "e", "v", "PX", "0"],
        &["SET", "e", "v", "EX", "9223372036854775807"],
    ] {
        assert_eq!(
            err_text(&cmd(&mut c, bad).await),
            "ERR invalid expire time in 'set' command",
            "{bad:?}"
        );
    }
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "e", "v", "EX", "soon"]).await),
        "ERR value is not an integer or out of range"
    );
    for bad in [
        &["SET", "e", "v", "EX"][..],
        &["SET", "e", "v", "NX", "XX"],
        &["SET", "e", "v", "EX", "1", "PX", "1"],
        &["SET", "e", "v", "KEEPTTL", "EX", "1"],
        &["SET", "e", "v", "BOGUS"],
    ] {
        assert_eq!(
            err_text(&cmd(&mut c, bad).await),
            "ERR syntax error",
            "{bad:?}"
        );
    }
    assert_eq!(
        cmd(&mut c, &["EXISTS", "e"]).await,
        int(0),
        "failed SETs wrote nothing"
    );
}

#[tokio::test]
async fn getset_getdel_mget_mset_del_exists() {
    let node = Node::start().await;
    let mut c = node.client().await;

    assert_eq!(cmd(&mut c, &["GETSET", "g", "1"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["GETSET", "g", "2"]).await, bulk("1"));
    assert_eq!(cmd(&mut c, &["GET", "g"]).await, bulk("2"));
    // GETSET clears a TTL, as in Redis.
    assert_eq!(cmd(&mut c, &["SET", "g", "3", "EX", "100"]).await, ok());
    assert_eq!(cmd(&mut c, &["GETSET", "g", "4"]).await, bulk("3"));
    assert_eq!(cmd(&mut c, &["TTL", "g"]).await, int(-1));

    assert_eq!(cmd(&mut c, &["GETDEL", "g"]).await, bulk("4"));
    assert_eq!(cmd(&mut c, &["GETDEL", "g"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["EXISTS", "g"]).await, int(0));

    assert_eq!(
        cmd(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]).await,
        ok()
    );
    assert_eq!(
        cmd(&mut c, &["MGET", "a", "b", "nosuch", "c", "a"]).await,
        Frame::Array(vec![
            bulk("1"),
            bulk("2"),
            Frame::Null,
            bulk("3"),
            bulk("1")
        ])
    );
    // The last value of a key named twice wins.
    assert_eq!(cmd(&mut c, &["MSET", "d", "x", "d", "y"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "d"]).await, bulk("y"));
    for bad in [&["MSET", "a"][..], &["MSET", "a", "1", "b"]] {
        assert_eq!(
            err_text(&cmd(&mut c, bad).await),
            "ERR wrong number of arguments for 'mset' command"
        );
    }
    assert_eq!(
        cmd(&mut c, &["GET", "b"]).await,
        bulk("2"),
        "failed MSET wrote nothing"
    );

    assert_eq!(
        cmd(&mut c, &["EXISTS", "a", "a", "b", "nosuch"]).await,
        int(3)
    );
    assert_eq!(cmd(&mut c, &["DEL", "a", "b", "nosuch"]).await, int(2));
    assert_eq!(cmd(&mut c, &["DEL", "a"]).await, int(0));
    // A key named twice is deleted once.
    assert_eq!(cmd(&mut c, &["DEL", "c", "c"]).await, int(1));
    assert_eq!(cmd(&mut c, &["EXISTS", "a", "b", "c"]).await, int(0));
    assert_eq!(
        cmd(&mut c, &["MGET", "a"]).await,
        Frame::Array(vec![Frame::Null])
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["DEL"]).await),
        "ERR wrong number of arguments for 'del' command"
    );
    assert_eq!(cmd(&mut c, &["DBSIZE"]).await, int(1), "only d is left");

    // Binary-safe keys and values.
    let key: &[u8] = b"bin\x00\r\nkey";
    let value: &[u8] = b"\xff\x00\r\n\x01";
    assert_eq!(c.cmd(&[&b"SET"[..], key, value]).await.unwrap(), ok());
    assert_eq!(
        c.cmd(&[&b"GET"[..], key]).await.unwrap(),
        Frame::Bulk(bytes::Bytes::from_static(b"\xff\x00\r\n\x01"))
    );
}

#[tokio::test]
async fn expire_family_ttl_persist_type() {
    let node = Node::start().await;
    let mut c = node.client().await;

    assert_eq!(cmd(&mut c, &["TTL", "missing"]).await, int(-2));
    assert_eq!(cmd(&mut c, &["PTTL", "missing"]).await, int(-2));
    assert_eq!(cmd(&mut c, &["EXPIRE", "missing", "100"]).await, int(0));
    assert_eq!(cmd(&mut c, &["PERSIST", "missing"]).await, int(0));
    assert_eq!(cmd(&mut c, &["TYPE", "missing"]).await, simple("none"));

    assert_eq!(cmd(&mut c, &["SET", "k", "v"]).await, ok());
    assert_eq!(cmd(&mut c, &["TYPE", "k"]).await, simple("string"));
    assert_eq!(cmd(&mut c, &["TTL", "k"]).await, int(-1));
    assert_eq!(cmd(&mut c, &["PTTL", "k"]).await, int(-1));
    assert_eq!(cmd(&mut c, &["PERSIST", "k"]).await, int(0));

    // No TTL: XX and GT refuse (no TTL counts as infinite), LT and NX apply.
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "100", "XX"]).await, int(0));
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "100", "GT"]).await, int(0));
    assert_eq!(cmd(&mut c, &["TTL", "k"]).await, int(-1));
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "100", "NX"]).await, int(1));
    let ttl = as_int(&cmd(&mut c, &["TTL", "k"]).await);
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    // With a TTL of ~100 s.
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "200", "NX"]).await, int(0));
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "50", "GT"]).await, int(0));
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "200", "GT"]).await, int(1));
    let ttl = as_int(&cmd(&mut c, &["TTL", "k"]).await);
    assert!((199..=200).contains(&ttl), "TTL {ttl}");
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "300", "LT"]).await, int(0));
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "150", "lt"]).await, int(1));
    let ttl = as_int(&cmd(&mut c, &["TTL", "k"]).await);
    assert!((149..=150).contains(&ttl), "TTL {ttl}");
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "400", "XX"]).await, int(1));
    assert_eq!(cmd(&mut c, &["PEXPIRE", "k", "120000"]).await, int(1));
    let pttl = as_int(&cmd(&mut c, &["PTTL", "k"]).await);
    assert!((110_000..=120_000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(cmd(&mut c, &["PEXPIRE", "k", "500000", "GT"]).await, int(1));
    assert_eq!(
        cmd(&mut c, &["GET", "k"]).await,
        bulk("v"),
        "EXPIRE keeps the value"
    );

    assert_eq!(cmd(&mut c, &["PERSIST", "k"]).await, int(1));
    assert_eq!(cmd(&mut c, &["TTL", "k"]).await, int(-1));
    assert_eq!(cmd(&mut c, &["PERSIST", "k"]).await, int(0));

    // Errors.
    assert_eq!(
        err_text(&cmd(&mut c, &["EXPIRE", "k", "10", "NX", "XX"]).await),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["EXPIRE", "k", "10", "GT", "LT"]).await),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["EXPIRE", "k", "10", "FOO"]).await),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["EXPIRE", "k", "ten"]).await),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["EXPIRE", "k", "9223372036854775807"]).await),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["PEXPIRE", "k", "9223372036854775807"]).await),
        "ERR invalid expire time in 'pexpire' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["EXPIRE", "k"]).await),
        "ERR wrong number of arguments for 'expire' command"
    );
    assert_eq!(
        cmd(&mut c, &["TTL", "k"]).await,
        int(-1),
        "failed EXPIREs change nothing"
    );

    // A TTL in the past deletes the key.
    assert_eq!(cmd(&mut c, &["EXPIRE", "k", "-1"]).await, int(1));
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]).await, int(0));
    assert_eq!(cmd(&mut c, &["TTL", "k"]).await, int(-2));
    assert_eq!(cmd(&mut c, &["TYPE", "k"]).await, simple("none"));
}

async fn scan_all(c: &mut Client, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let reply = cmd(c, &args).await;
        let parts = items(&reply);
        assert_eq!(parts.len(), 2, "SCAN reply {reply:?}");
        assert!(
            matches!(parts[0], Frame::Bulk(_)),
            "cursor is a bulk string"
        );
        keys.extend(items(&parts[1]).iter().map(text));
        cursor = text(&parts[0]);
        calls += 1;
        assert!(calls < 10_000, "SCAN does not terminate");
        if cursor == "0" {
            return (keys, calls);
        }
    }
}

#[tokio::test]
async fn scan_returns_every_key_exactly_once() {
    let node = Node::start().await;
    let mut c = node.client().await;

    let mut expected_users = Vec::new();
    let mut batch: Vec<Vec<String>> = Vec::new();
    for i in 0..250 {
        let k = format!("user:{i}");
        expected_users.push(k.clone());
        batch.push(vec!["SET".into(), k, format!("v{i}")]);
    }
    for i in 0..40 {
        batch.push(vec!["SET".into(), format!("order:{i}"), "o".into()]);
    }
    let replies = c.pipeline(&batch).await.unwrap();
    assert!(replies.iter().all(|r| *r == ok()), "pipelined SETs");
    // Some deleted keys (tombstones) must not show up either.
    for i in 0..10 {
        assert_eq!(cmd(&mut c, &["DEL", &format!("order:{i}")]).await, int(1));
    }
    assert_eq!(cmd(&mut c, &["DBSIZE"]).await, int(280));

    let check_once = |keys: &[String], expected: &[String]| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for k in keys {
            *counts.entry(k.as_str()).or_default() += 1;
        }
        for k in expected {
            assert_eq!(counts.get(k.as_str()), Some(&1), "{k} returned once");
        }
        assert_eq!(keys.len(), expected.len(), "no extra keys");
    };

    let mut expected_all = expected_users.clone();
    expected_all.extend((10..40).map(|i| format!("order:{i}")));
    let (keys, calls) = scan_all(&mut c, &["COUNT", "17"]).await;
    check_once(&keys, &expected_all);
    assert!(calls > 1, "COUNT 17 over 280 keys takes several calls");

    let (keys, _) = scan_all(&mut c, &["MATCH", "user:*", "COUNT", "10"]).await;
    check_once(&keys, &expected_users);
    let (keys, _) = scan_all(&mut c, &["MATCH", "user:1?", "COUNT", "1000"]).await;
    let want: Vec<String> = (10..20).map(|i| format!("user:{i}")).collect();
    check_once(&keys, &want);
    let (keys, _) = scan_all(&mut c, &["MATCH", "nothing:*"]).await;
    assert!(keys.is_empty());
    // Default COUNT.
    let (keys, _) = scan_all(&mut c, &[]).await;
    check_once(&keys, &expected_all);

    assert_eq!(
        err_text(&cmd(&mut c, &["SCAN", "0", "COUNT", "0"]).await),
        "ERR syntax error"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SCAN", "0", "MATCH"]).await),
        "ERR syntax error"
    );
    assert_err(&cmd(&mut c, &["SCAN", "abc"]).await, "ERR invalid cursor");
    assert_err(
        &cmd(&mut c, &["SCAN", "987654"]).await,
        "ERR invalid cursor",
    );
}

#[tokio::test]
async fn generic_errors_keep_the_connection_usable() {
    let node = Node::start().await;
    let mut c = node.client().await;

    assert_eq!(
        err_text(&cmd(&mut c, &["GET"]).await),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["GET", "a", "b"]).await),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["set", "a"]).await),
        "ERR wrong number of arguments for 'set' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["FOO", "a", "b"]).await),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["flushall"]).await),
        "ERR unknown command 'flushall', with args beginning with: "
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "a", "b", "NOPE"]).await),
        "ERR syntax error"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "a", "b", "EX", "x"]).await),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cmd(&mut c, &["PING"]).await, simple("PONG"));

    // Inline commands work too, with quoting.
    c.send_raw(b"SET inline \"a b\\tc\"\r\nGET inline\r\n\r\nPING\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_frame().await.unwrap(), ok());
    assert_eq!(c.read_frame().await.unwrap(), bulk("a b\tc"));
    assert_eq!(c.read_frame().await.unwrap(), simple("PONG"));

    // Pipelined errors and successes answer in order.
    let replies = c
        .pipeline(&[
            vec!["SET", "p", "1"],
            vec!["GET"],
            vec!["NOPE"],
            vec!["GET", "p"],
        ])
        .await
        .unwrap();
    assert_eq!(replies[0], ok());
    assert_err(&replies[1], "ERR wrong number of arguments");
    assert_err(&replies[2], "ERR unknown command 'NOPE'");
    assert_eq!(replies[3], bulk("1"));
}

#[tokio::test]
async fn expired_keys_vanish_lazily_before_any_sweep() {
    // The sweeper runs once at start, then not for 10 minutes: anything
    // that disappears does so lazily.
    let node = Node::builder()
        .args(["--sweep-interval-ms", "600000"])
        .start()
        .await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["SET", "short", "v", "PX", "200"]).await, ok());
    assert_eq!(
        cmd(&mut c, &["SET", "long", "v", "PX", "600000"]).await,
        ok()
    );
    let started = Instant::now();
    loop {
        let v = cmd(&mut c, &["GET", "short"]).await;
        if v == Frame::Null {
            break;
        }
        assert_eq!(v, bulk("v"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "short never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cmd(&mut c, &["EXISTS", "short"]).await, int(0));
    assert_eq!(cmd(&mut c, &["TTL", "short"]).await, int(-2));
    assert_eq!(cmd(&mut c, &["DBSIZE"]).await, int(1));
    let (keys, _) = scan_all(&mut c, &[]).await;
    assert_eq!(keys, vec!["long".to_string()]);
    let stats = text(&cmd(&mut c, &["INFO", "stats"]).await);
    assert_eq!(info_field(&stats, "expired_keys").as_deref(), Some("0"));
    assert_eq!(cmd(&mut c, &["GET", "long"]).await, bulk("v"));
}

#[tokio::test]
async fn sweeper_removes_expired_keys_but_not_rewritten_ones() {
    let node = Node::start().await;
    let mut c = node.client().await;
    // Rewritten before expiry: stale index entries must not delete them.
    assert_eq!(
        cmd(&mut c, &["SET", "kept-by-set", "a", "PX", "200"]).await,
        ok()
    );
    assert_eq!(
        cmd(&mut c, &["SET", "kept-by-persist", "b", "PX", "200"]).await,
        ok()
    );
    assert_eq!(
        cmd(&mut c, &["SET", "kept-by-expire", "c", "PX", "200"]).await,
        ok()
    );
    assert_eq!(cmd(&mut c, &["SET", "kept-by-set", "a2"]).await, ok());
    assert_eq!(cmd(&mut c, &["PERSIST", "kept-by-persist"]).await, int(1));
    assert_eq!(
        cmd(&mut c, &["PEXPIRE", "kept-by-expire", "600000"]).await,
        int(1)
    );
    let doomed: Vec<String> = (0..5).map(|i| format!("doomed:{i}")).collect();
    for k in &doomed {
        assert_eq!(cmd(&mut c, &["SET", k, "x", "PX", "300"]).await, ok());
    }

    let started = Instant::now();
    loop {
        let stats = text(&cmd(&mut c, &["INFO", "stats"]).await);
        let expired: u64 = info_field(&stats, "expired_keys")
            .and_then(|v| v.parse().ok())
            .expect("expired_keys in INFO stats");
        assert!(expired <= 5, "the sweeper deleted a live key: {stats}");
        if expired == 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "sweeper did not remove the expired keys: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = node.http_get("/metrics").await.body;
    assert!(
        metrics.contains("fulcrum_expired_keys_total 5"),
        "metrics: {metrics}"
    );
    assert_eq!(cmd(&mut c, &["GET", "kept-by-set"]).await, bulk("a2"));
    assert_eq!(cmd(&mut c, &["GET", "kept-by-persist"]).await, bulk("b"));
    assert_eq!(cmd(&mut c, &["GET", "kept-by-expire"]).await, bulk("c"));
    assert_eq!(cmd(&mut c, &["DBSIZE"]).await, int(3));
}

/// Data commands on this node's own keys run on the RESP event loop; any
/// other command runs on the node's main runtime. A pipeline that mixes
/// them is answered in order, and state set by one kind (name, keyspace,
/// protocol) holds for the other.
#[tokio::test]
async fn a_pipeline_mixing_loop_and_runtime_commands_answers_in_order() {
    let node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "side", "MODE", "strong"]).await,
        ok()
    );
    let replies = c
        .pipeline(&[
            vec!["SET", "a", "1"],
            vec!["CLIENT", "SETNAME", "mixer"],
            vec!["USE", "side"],
            vec!["SET", "a", "strong"],
            vec!["INCR", "n"],
            vec!["GET", "a"],
            vec!["USE", "default"],
            vec!["GET", "a"],
            vec!["CLIENT", "GETNAME"],
            vec!["SET", "b", "2"],
            vec!["MGET", "a", "b"],
        ])
        .await
        .unwrap();
    assert_eq!(
        replies,
        vec![
            ok(),
            ok(),
            ok(),
            ok(),
            int(1),
            bulk("strong"),
            ok(),
            bulk("1"),
            bulk("mixer"),
            ok(),
            Frame::Array(vec![bulk("1"), bulk("2")]),
        ]
    );
    // RESP3 chosen on the runtime shapes the loop's replies.
    let h = cmd(&mut c, &["HELLO", "3"]).await;
    assert_eq!(field(&h, "proto"), int(3));
    let mut raw = Raw::connect(node.resp).await;
    raw.send(b"HELLO 3\r\nGET missing\r\nCLIENT GETNAME\r\nGET missing\r\n")
        .await;
    raw.read_until(b"$7\r\nmodules\r\n*0\r\n").await;
    assert_eq!(raw.read_exact(9).await, b"_\r\n_\r\n_\r\n");
}
