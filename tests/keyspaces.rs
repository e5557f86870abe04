//! Keyspaces over the real binary: KEYSPACE CREATE/LIST/INFO/DROP, USE,
//! CONSISTENCY, isolation, strong-only commands (INCR family, SET IFEQ,
//! GETREV), and persistence across clean restarts and kill -9.

mod common;

use common::*;
use fulcrum_client::{Client, Frame};

async fn list(c: &mut Client) -> Vec<String> {
    items(&cmd(c, &["KEYSPACE", "LIST"]).await)
        .iter()
        .map(text)
        .collect()
}

#[tokio::test]
async fn create_list_info_use_drop() {
    let node = Node::start().await;
    let mut c = node.client().await;

    assert_eq!(list(&mut c).await, ["default"]);
    let info = cmd(&mut c, &["KEYSPACE", "INFO", "default"]).await;
    assert_eq!(field(&info, "mode"), bulk("eventual"));
    assert_eq!(field(&info, "read"), bulk("QUORUM"));

    assert_eq!(
        cmd(
            &mut c,
            &[
                "KEYSPACE",
                "CREATE",
                "inventory",
                "MODE",
                "strong",
                "REPLICAS",
                "3",
                "READ",
                "LINEARIZABLE",
                "WRITE",
                "LINEARIZABLE",
            ]
        )
        .await,
        ok()
    );
    assert_eq!(
        cmd(
            &mut c,
            &[
                "keyspace", "create", "sessions", "mode", "eventual", "replicas", "5", "read",
                "one", "write", "all", "conflict", "lww",
            ]
        )
        .await,
        ok()
    );
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "plain"]).await,
        ok(),
        "MODE defaults to eventual"
    );
    assert_eq!(
        list(&mut c).await,
        ["default", "inventory", "plain", "sessions"]
    );

    let inv = cmd(&mut c, &["KEYSPACE", "INFO", "inventory"]).await;
    let inv_pairs: Vec<String> = pairs(&inv).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        inv_pairs,
        ["name", "mode", "replicas", "read", "write", "conflict", "keys", "voters"],
        "strong keyspaces also list each group's voters"
    );
    assert_eq!(field(&inv, "name"), bulk("inventory"));
    assert_eq!(field(&inv, "mode"), bulk("strong"));
    assert_eq!(field(&inv, "replicas"), int(3));
    assert_eq!(field(&inv, "read"), bulk("LINEARIZABLE"));
    assert_eq!(field(&inv, "write"), bulk("LINEARIZABLE"));
    assert_eq!(field(&inv, "keys"), int(0));
    let ses = cmd(&mut c, &["KEYSPACE", "INFO", "sessions"]).await;
    assert_eq!(field(&ses, "mode"), bulk("eventual"));
    assert_eq!(field(&ses, "replicas"), int(5));
    assert_eq!(field(&ses, "read"), bulk("ONE"));
    assert_eq!(field(&ses, "write"), bulk("ALL"));
    assert_eq!(field(&ses, "conflict"), bulk("lww"));
    let plain = cmd(&mut c, &["KEYSPACE", "INFO", "plain"]).await;
    assert_eq!(field(&plain, "mode"), bulk("eventual"));
    assert_eq!(field(&plain, "replicas"), int(3));
    assert_eq!(field(&plain, "conflict"), bulk("siblings"));

    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "CREATE", "inventory"]).await),
        "ERR keyspace 'inventory' already exists"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "INFO", "nosuch"]).await),
        "ERR keyspace 'nosuch' does not exist"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["USE", "nosuch"]).await),
        "ERR keyspace 'nosuch' does not exist"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "INFO"]).await),
        "ERR wrong number of arguments for 'keyspace|info' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "DROP"]).await),
        "ERR wrong number of arguments for 'keyspace|drop' command"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "CREATE"]).await),
        "ERR wrong number of arguments for 'keyspace|create' command"
    );
    assert_err(
        &cmd(&mut c, &["KEYSPACE", "FROB"]).await,
        "ERR unknown subcommand 'FROB'",
    );

    // USE, keys counted by INFO.
    assert_eq!(cmd(&mut c, &["USE", "sessions"]).await, ok());
    assert_eq!(cmd(&mut c, &["SET", "s1", "x"]).await, ok());
    assert_eq!(cmd(&mut c, &["SET", "s2", "x"]).await, ok());
    let ses = cmd(&mut c, &["KEYSPACE", "INFO", "sessions"]).await;
    assert_eq!(field(&ses, "keys"), int(2));
    let fulcrum = text(&cmd(&mut c, &["INFO", "fulcrum"]).await);
    assert_eq!(
        info_field(&fulcrum, "keyspace").as_deref(),
        Some("sessions")
    );
    assert_eq!(info_field(&fulcrum, "keyspaces").as_deref(), Some("4"));

    // DROP: the default keyspace cannot be dropped; a dropped keyspace is
    // gone for connections still using it.
    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "DROP", "default"]).await),
        "ERR the default keyspace cannot be dropped"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["KEYSPACE", "DROP", "nosuch"]).await),
        "ERR keyspace 'nosuch' does not exist"
    );
    let mut other = node.client().await;
    assert_eq!(
        cmd(&mut other, &["KEYSPACE", "DROP", "sessions"]).await,
        ok()
    );
    assert_eq!(list(&mut other).await, ["default", "inventory", "plain"]);
    assert_eq!(
        err_text(&cmd(&mut c, &["GET", "s1"]).await),
        "ERR keyspace 'sessions' does not exist"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "s1", "y"]).await),
        "ERR keyspace 'sessions' does not exist"
    );
    assert_eq!(cmd(&mut c, &["USE", "default"]).await, ok());
    assert_eq!(cmd(&mut c, &["PING"]).await, simple("PONG"));
}

#[tokio::test]
async fn dropped_keyspace_recreated_under_the_same_name_is_empty() {
    let node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["KEYSPACE", "CREATE", "tmp"]).await, ok());
    assert_eq!(cmd(&mut c, &["USE", "tmp"]).await, ok());
    for i in 0..20 {
        assert_eq!(cmd(&mut c, &["SET", &format!("k{i}"), "old"]).await, ok());
    }
    assert_eq!(cmd(&mut c, &["KEYSPACE", "DROP", "tmp"]).await, ok());
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "tmp", "MODE", "strong"]).await,
        ok()
    );
    assert_eq!(cmd(&mut c, &["USE", "tmp"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "k0"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["DBSIZE"]).await, int(0));
    assert_eq!(
        field(&cmd(&mut c, &["KEYSPACE", "INFO", "tmp"]).await, "mode"),
        bulk("strong")
    );
    assert_eq!(
        cmd(&mut c, &["INCR", "k1"]).await,
        int(1),
        "no old value left"
    );
}

#[tokio::test]
async fn invalid_keyspace_definitions_are_refused() {
    let node = Node::start().await;
    let mut c = node.client().await;
    let long = "x".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["bad name"], "ERR invalid keyspace name 'bad name'"),
        (vec![""], "ERR invalid keyspace name ''"),
        (vec!["a.b"], "ERR invalid keyspace name 'a.b'"),
        (vec![long.as_str()], "ERR invalid keyspace name"),
        (vec!["k", "MODE", "bogus"], "ERR unknown mode 'bogus'"),
        (
            vec!["k", "READ", "MOST"],
            "ERR unknown consistency level 'MOST'",
        ),
        (
            vec!["k", "MODE", "strong", "READ", "ONE"],
            "ERR consistency level ONE is not valid for strong keyspaces",
        ),
        (
            vec!["k", "MODE", "eventual", "WRITE", "LINEARIZABLE"],
            "ERR consistency level LINEARIZABLE is not valid for eventual keyspaces",
        ),
        (
            vec!["k", "READ", "ANY"],
            "ERR consistency level ANY is only valid for writes",
        ),
        (
            vec!["k", "REPLICAS", "3", "READ", "4"],
            "ERR consistency level 4 is out of range 1..=3",
        ),
        (
            vec!["k", "REPLICAS", "0"],
            "ERR replicas must be between 1 and 7, got 0",
        ),
        (
            vec!["k", "REPLICAS", "8"],
            "ERR replicas must be between 1 and 7, got 8",
        ),
        (
            vec!["k", "REPLICAS", "three"],
            "ERR value is not an integer or out of range",
        ),
        (
            vec!["k", "CONFLICT", "newest"],
            "ERR unknown conflict rule 'newest'",
        ),
        (vec!["k", "MODE"], "ERR syntax error"),
        (vec!["k", "COLOR", "blue"], "ERR syntax error"),
    ];
    for (args, want) in cases {
        let mut full = vec!["KEYSPACE", "CREATE"];
        full.extend(args.iter().copied());
        let reply = cmd(&mut c, &full).await;
        assert!(
            err_text(&reply).starts_with(want),
            "{full:?}: got {reply:?}, want {want:?}"
        );
    }
    assert_eq!(list(&mut c).await, ["default"], "nothing was created");
    // A valid eventual keyspace with ANY writes and a numeric level.
    assert_eq!(
        cmd(
            &mut c,
            &["KEYSPACE", "CREATE", "k", "WRITE", "ANY", "READ", "2", "REPLICAS", "2"]
        )
        .await,
        ok()
    );
}

/// CONFLICT picks how concurrent writes of an eventual keyspace are kept;
/// a strong keyspace has no concurrent versions, and the keyspace schema
/// defines the error for it ("CONFLICT is only meaningful for eventual
/// keyspaces"). The server must refuse the combination rather than store
/// and report a meaningless setting.
#[tokio::test]
async fn conflict_rule_is_refused_on_strong_keyspaces() {
    let node = Node::start().await;
    let mut c = node.client().await;
    let reply = cmd(
        &mut c,
        &[
            "KEYSPACE",
            "CREATE",
            "bank",
            "MODE",
            "strong",
            "REPLICAS",
            "3",
            "READ",
            "LINEARIZABLE",
            "WRITE",
            "LINEARIZABLE",
            "CONFLICT",
            "lww",
        ],
    )
    .await;
    assert_eq!(
        reply,
        Frame::Error("ERR CONFLICT is only meaningful for eventual keyspaces".into()),
        "KEYSPACE CREATE bank MODE strong ... CONFLICT lww"
    );
    assert_eq!(list(&mut c).await, ["default"]);
}

#[tokio::test]
async fn keys_are_isolated_per_keyspace() {
    let node = Node::start().await;
    let mut a = node.client().await;
    let mut b = node.client().await;
    assert_eq!(cmd(&mut a, &["KEYSPACE", "CREATE", "other"]).await, ok());
    assert_eq!(cmd(&mut a, &["SET", "k", "in-default"]).await, ok());
    assert_eq!(
        cmd(&mut a, &["SET", "only-default", "1", "EX", "100"]).await,
        ok()
    );

    assert_eq!(cmd(&mut b, &["USE", "other"]).await, ok());
    assert_eq!(cmd(&mut b, &["GET", "k"]).await, Frame::Null);
    assert_eq!(cmd(&mut b, &["EXISTS", "k", "only-default"]).await, int(0));
    assert_eq!(cmd(&mut b, &["TTL", "only-default"]).await, int(-2));
    assert_eq!(cmd(&mut b, &["SET", "k", "in-other"]).await, ok());
    assert_eq!(cmd(&mut b, &["MSET", "x", "1", "y", "2"]).await, ok());
    assert_eq!(cmd(&mut b, &["DBSIZE"]).await, int(3));
    let scan = cmd(&mut b, &["SCAN", "0", "COUNT", "100"]).await;
    let mut keys: Vec<String> = items(&items(&scan)[1]).iter().map(text).collect();
    keys.sort();
    assert_eq!(keys, ["k", "x", "y"]);

    assert_eq!(cmd(&mut a, &["GET", "k"]).await, bulk("in-default"));
    assert_eq!(cmd(&mut a, &["DBSIZE"]).await, int(2));
    assert_eq!(
        cmd(&mut a, &["MGET", "x", "y"]).await,
        Frame::Array(vec![Frame::Null, Frame::Null])
    );
    assert_eq!(cmd(&mut a, &["DEL", "k"]).await, int(1));
    assert_eq!(cmd(&mut b, &["GET", "k"]).await, bulk("in-other"));

    // A new connection starts in default; USE switches per connection.
    let mut fresh = node.client().await;
    assert_eq!(cmd(&mut fresh, &["GET", "only-default"]).await, bulk("1"));
    assert_eq!(cmd(&mut fresh, &["USE", "other"]).await, ok());
    assert_eq!(cmd(&mut fresh, &["GET", "x"]).await, bulk("1"));
    assert_eq!(cmd(&mut fresh, &["USE", "default"]).await, ok());
    assert_eq!(cmd(&mut fresh, &["GET", "x"]).await, Frame::Null);
}

#[tokio::test]
async fn strong_only_commands_answer_notstrong_on_eventual_keyspaces() {
    let node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["SET", "n", "5"]).await, ok());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["INCR", "n"], "INCR"),
        (vec!["DECR", "n"], "DECR"),
        (vec!["INCRBY", "n", "2"], "INCRBY"),
        (vec!["DECRBY", "n", "2"], "DECRBY"),
        (vec!["GETREV", "n"], "GETREV"),
        (vec!["SET", "n", "6", "IFEQ", "5"], "SET IFEQ"),
    ];
    for (args, name) in cases {
        let reply = cmd(&mut c, &args).await;
        assert_eq!(
            err_text(&reply),
            format!("NOTSTRONG {name} needs a strong keyspace; 'default' is eventual"),
            "{args:?}"
        );
    }
    assert_eq!(
        cmd(&mut c, &["GET", "n"]).await,
        bulk("5"),
        "nothing changed"
    );
    assert!(cmd(&mut c, &["INCR", "fresh"]).await.is_error());
    assert_eq!(cmd(&mut c, &["EXISTS", "fresh"]).await, int(0));
    // The same on a user-created eventual keyspace.
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "ev", "MODE", "eventual"]).await,
        ok()
    );
    assert_eq!(cmd(&mut c, &["USE", "ev"]).await, ok());
    assert_eq!(
        err_text(&cmd(&mut c, &["INCR", "n"]).await),
        "NOTSTRONG INCR needs a strong keyspace; 'ev' is eventual"
    );
}

#[tokio::test]
async fn strong_keyspace_counters_compare_and_set_and_revisions() {
    let node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "bank", "MODE", "strong"]).await,
        ok()
    );
    assert_eq!(cmd(&mut c, &["USE", "bank"]).await, ok());

    // Counters.
    assert_eq!(cmd(&mut c, &["INCR", "c"]).await, int(1));
    assert_eq!(cmd(&mut c, &["INCRBY", "c", "10"]).await, int(11));
    assert_eq!(cmd(&mut c, &["DECR", "c"]).await, int(10));
    assert_eq!(cmd(&mut c, &["DECRBY", "c", "5"]).await, int(5));
    assert_eq!(cmd(&mut c, &["INCRBY", "c", "-3"]).await, int(2));
    assert_eq!(cmd(&mut c, &["DECR", "neg"]).await, int(-1));
    assert_eq!(cmd(&mut c, &["GET", "c"]).await, bulk("2"));

    assert_eq!(
        cmd(&mut c, &["SET", "max", "9223372036854775807"]).await,
        ok()
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["INCR", "max"]).await),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        cmd(&mut c, &["GET", "max"]).await,
        bulk("9223372036854775807")
    );
    assert_eq!(
        cmd(&mut c, &["SET", "min", "-9223372036854775808"]).await,
        ok()
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["DECR", "min"]).await),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["DECRBY", "c", "-9223372036854775808"]).await),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(cmd(&mut c, &["GET", "c"]).await, bulk("2"));

    assert_eq!(cmd(&mut c, &["SET", "word", "abc"]).await, ok());
    for bad in [
        &["INCR", "word"][..],
        &["INCRBY", "c", "x"],
        &["INCRBY", "c", "1.5"],
        &["DECRBY", "c", "+1"],
    ] {
        assert_eq!(
            err_text(&cmd(&mut c, bad).await),
            "ERR value is not an integer or out of range",
            "{bad:?}"
        );
    }
    assert_eq!(cmd(&mut c, &["SET", "spaced", " 1"]).await, ok());
    assert_err(
        &cmd(&mut c, &["INCR", "spaced"]).await,
        "ERR value is not an integer",
    );
    // INCR keeps the TTL.
    assert_eq!(cmd(&mut c, &["SET", "t", "1", "EX", "100"]).await, ok());
    assert_eq!(cmd(&mut c, &["INCR", "t"]).await, int(2));
    let ttl = as_int(&cmd(&mut c, &["TTL", "t"]).await);
    assert!((95..=100).contains(&ttl), "TTL after INCR {ttl}");

    // SET IFEQ: compare-and-set.
    assert_eq!(cmd(&mut c, &["SET", "stock", "5"]).await, ok());
    assert_eq!(cmd(&mut c, &["SET", "stock", "3", "IFEQ", "5"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "stock"]).await, bulk("3"));
    assert_eq!(
        cmd(&mut c, &["SET", "stock", "2", "IFEQ", "5"]).await,
        Frame::Null
    );
    assert_eq!(cmd(&mut c, &["GET", "stock"]).await, bulk("3"));
    assert_eq!(
        cmd(&mut c, &["SET", "none", "x", "IFEQ", "y"]).await,
        Frame::Null
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "none"]).await, int(0));
    assert_eq!(
        cmd(&mut c, &["SET", "stock", "9", "IFEQ", "3", "GET"]).await,
        bulk("3")
    );
    assert_eq!(cmd(&mut c, &["GET", "stock"]).await, bulk("9"));
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "stock", "1", "IFEQ", "9", "NX"]).await),
        "ERR syntax error"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "stock", "1", "IFEQ"]).await),
        "ERR syntax error"
    );

    // GETREV: [value, revision], revision increasing with every write.
    assert_eq!(cmd(&mut c, &["GETREV", "nothing"]).await, Frame::NullArray);
    assert_eq!(cmd(&mut c, &["SET", "r", "a"]).await, ok());
    let rev = |f: &Frame| -> (String, i64) {
        let parts = items(f);
        assert_eq!(parts.len(), 2, "GETREV reply {f:?}");
        (text(&parts[0]), as_int(&parts[1]))
    };
    let (v1, r1) = rev(&cmd(&mut c, &["GETREV", "r"]).await);
    assert_eq!(v1, "a");
    assert_eq!(
        rev(&cmd(&mut c, &["GETREV", "r"]).await).1,
        r1,
        "a read is not a write"
    );
    assert_eq!(cmd(&mut c, &["SET", "r", "b"]).await, ok());
    let (v2, r2) = rev(&cmd(&mut c, &["GETREV", "r"]).await);
    assert_eq!(v2, "b");
    assert!(r2 > r1, "{r2} > {r1}");
    assert_eq!(
        cmd(&mut c, &["SET", "r", "c", "IFEQ", "zzz"]).await,
        Frame::Null
    );
    assert_eq!(
        rev(&cmd(&mut c, &["GETREV", "r"]).await).1,
        r2,
        "a failed CAS writes nothing"
    );
    assert_eq!(cmd(&mut c, &["SET", "r", "1", "IFEQ", "b"]).await, ok());
    let (_, r3) = rev(&cmd(&mut c, &["GETREV", "r"]).await);
    assert!(r3 > r2);
    assert_eq!(cmd(&mut c, &["INCR", "r"]).await, int(2));
    let (v4, r4) = rev(&cmd(&mut c, &["GETREV", "r"]).await);
    assert_eq!(v4, "2");
    assert!(r4 > r3);
    assert_eq!(cmd(&mut c, &["DEL", "r"]).await, int(1));
    assert_eq!(cmd(&mut c, &["GETREV", "r"]).await, Frame::NullArray);
}

#[tokio::test]
async fn consistency_levels_per_connection() {
    let node = Node::start().await;
    let mut c = node.client().await;
    let levels = |f: &Frame| (text(&field(f, "read")), text(&field(f, "write")));

    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("QUORUM".into(), "QUORUM".into())
    );
    assert_eq!(cmd(&mut c, &["CONSISTENCY", "READ", "ONE"]).await, ok());
    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("ONE".into(), "QUORUM".into())
    );
    assert_eq!(
        cmd(&mut c, &["CONSISTENCY", "write", "any", "read", "all"]).await,
        ok()
    );
    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("ALL".into(), "ANY".into())
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "READ", "LINEARIZABLE"]).await),
        "ERR consistency level LINEARIZABLE is not valid for eventual keyspaces"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "READ", "ANY"]).await),
        "ERR consistency level ANY is only valid for writes"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "READ", "4"]).await),
        "ERR consistency level 4 is out of range 1..=3"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "READ", "MOST"]).await),
        "ERR unknown consistency level 'MOST'"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "READ"]).await),
        "ERR syntax error"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "BOTH", "ONE"]).await),
        "ERR syntax error"
    );
    // A failed CONSISTENCY changes nothing.
    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("ALL".into(), "ANY".into())
    );
    // Other connections keep the keyspace defaults.
    let mut other = node.client().await;
    assert_eq!(
        levels(&cmd(&mut other, &["CONSISTENCY"]).await),
        ("QUORUM".into(), "QUORUM".into())
    );
    // Reads and writes still work under overrides on one node.
    assert_eq!(cmd(&mut c, &["SET", "k", "v"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v"));

    // USE resets overrides; strong keyspaces take strong levels only.
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "bank", "MODE", "strong"]).await,
        ok()
    );
    assert_eq!(cmd(&mut c, &["USE", "bank"]).await, ok());
    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("LINEARIZABLE".into(), "LINEARIZABLE".into())
    );
    assert_eq!(
        cmd(&mut c, &["CONSISTENCY", "READ", "SERIALIZABLE"]).await,
        ok()
    );
    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("SERIALIZABLE".into(), "LINEARIZABLE".into())
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["CONSISTENCY", "READ", "ONE"]).await),
        "ERR consistency level ONE is not valid for strong keyspaces"
    );
    assert_eq!(cmd(&mut c, &["USE", "default"]).await, ok());
    assert_eq!(
        levels(&cmd(&mut c, &["CONSISTENCY"]).await),
        ("QUORUM".into(), "QUORUM".into())
    );
}

/// Creates keyspaces with data; returns nothing, `check_persisted` checks.
async fn populate(c: &mut Client) {
    assert_eq!(
        cmd(
            c,
            &[
                "KEYSPACE",
                "CREATE",
                "bank",
                "MODE",
                "strong",
                "REPLICAS",
                "5",
                "READ",
                "SERIALIZABLE",
            ]
        )
        .await,
        ok()
    );
    assert_eq!(
        cmd(
            c,
            &[
                "KEYSPACE", "CREATE", "cache", "REPLICAS", "2", "READ", "ONE", "WRITE", "ALL",
                "CONFLICT", "lww",
            ]
        )
        .await,
        ok()
    );
    assert_eq!(cmd(c, &["KEYSPACE", "CREATE", "doomed"]).await, ok());
    assert_eq!(cmd(c, &["SET", "k", "default-value"]).await, ok());
    assert_eq!(cmd(c, &["USE", "bank"]).await, ok());
    assert_eq!(cmd(c, &["SET", "k", "bank-value"]).await, ok());
    assert_eq!(cmd(c, &["INCRBY", "balance", "100"]).await, int(100));
    assert_eq!(cmd(c, &["USE", "cache"]).await, ok());
    assert_eq!(
        cmd(c, &["SET", "k", "cache-value", "EX", "1000"]).await,
        ok()
    );
    assert_eq!(cmd(c, &["USE", "doomed"]).await, ok());
    assert_eq!(cmd(c, &["SET", "k", "doomed-value"]).await, ok());
    assert_eq!(cmd(c, &["KEYSPACE", "DROP", "doomed"]).await, ok());
}

async fn check_persisted(c: &mut Client) {
    assert_eq!(list(c).await, ["bank", "cache", "default"]);
    let bank = cmd(c, &["KEYSPACE", "INFO", "bank"]).await;
    assert_eq!(field(&bank, "mode"), bulk("strong"));
    assert_eq!(field(&bank, "replicas"), int(5));
    assert_eq!(field(&bank, "read"), bulk("SERIALIZABLE"));
    assert_eq!(field(&bank, "write"), bulk("LINEARIZABLE"));
    assert_eq!(field(&bank, "keys"), int(2));
    let cache = cmd(c, &["KEYSPACE", "INFO", "cache"]).await;
    assert_eq!(field(&cache, "mode"), bulk("eventual"));
    assert_eq!(field(&cache, "replicas"), int(2));
    assert_eq!(field(&cache, "read"), bulk("ONE"));
    assert_eq!(field(&cache, "write"), bulk("ALL"));
    assert_eq!(field(&cache, "conflict"), bulk("lww"));

    assert_eq!(cmd(c, &["GET", "k"]).await, bulk("default-value"));
    assert_eq!(cmd(c, &["USE", "bank"]).await, ok());
    assert_eq!(cmd(c, &["GET", "k"]).await, bulk("bank-value"));
    assert_eq!(cmd(c, &["INCR", "balance"]).await, int(101));
    assert_eq!(cmd(c, &["USE", "cache"]).await, ok());
    assert_eq!(cmd(c, &["GET", "k"]).await, bulk("cache-value"));
    let ttl = as_int(&cmd(c, &["TTL", "k"]).await);
    assert!((900..=1000).contains(&ttl), "TTL survives restart: {ttl}");
    assert_eq!(
        err_text(&cmd(c, &["USE", "doomed"]).await),
        "ERR keyspace 'doomed' does not exist"
    );
    assert_eq!(cmd(c, &["USE", "default"]).await, ok());
}

#[tokio::test]
async fn keyspaces_and_data_survive_a_clean_restart() {
    let mut node = Node::start().await;
    let mut c = node.client().await;
    populate(&mut c).await;
    drop(c);
    let status = node.terminate();
    assert!(status.success(), "SIGTERM exits cleanly, got {status}");
    node.restart().await;
    let mut c = node.client().await;
    check_persisted(&mut c).await;
    // And again, with the restarted node's own writes.
    drop(c);
    let status = node.terminate();
    assert!(status.success(), "second SIGTERM exit: {status}");
    node.restart().await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["USE", "bank"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "balance"]).await, bulk("101"));
}

#[tokio::test]
async fn keyspaces_and_data_survive_kill_9() {
    let mut node = Node::start().await;
    let mut c = node.client().await;
    populate(&mut c).await;
    node.kill9();
    node.restart().await;
    let mut c = node.client().await;
    check_persisted(&mut c).await;
    node.kill9();
    node.restart().await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["USE", "bank"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "balance"]).await, bulk("101"));
}

#[tokio::test]
async fn sigterm_with_open_connections_exits_cleanly() {
    let mut node = Node::start().await;
    let mut idle = node.client().await;
    let mut busy = node.client().await;
    assert_eq!(cmd(&mut idle, &["PING"]).await, simple("PONG"));
    assert_eq!(cmd(&mut busy, &["SET", "a", "1"]).await, ok());
    // Half a request in flight.
    busy.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n")
        .await
        .unwrap();
    let status = node.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");
    node.restart().await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["GET", "a"]).await, bulk("1"));
    assert_eq!(cmd(&mut c, &["GET", "b"]).await, Frame::Null);
}
