//! Batched writes (`write_group.rs`): plain SETs are staged and reach the
//! engine in one commit per pipeline (and per scheduler tick across
//! connections). What a client sees must not change: replies in order,
//! each command seeing every earlier one of its connection, errors where
//! they occurred, versions as if the writes ran one by one.

mod common;

use common::*;
use fulcrum_client::Frame;

fn set(k: &str, v: &str) -> Vec<String> {
    vec!["SET".into(), k.into(), v.into()]
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn pipelined_sets_reply_in_order_and_all_land() {
    let node = Node::builder().args(["--fsync", "never"]).start().await;
    let mut c = node.client().await;
    // 200 SETs: 100 keys, each written twice, the second value wins.
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for round in 0..2 {
        for i in 0..100 {
            cmds.push(set(&format!("p:{i}"), &format!("v{round}:{i}")));
        }
    }
    let replies = c.pipeline(&cmds).await.unwrap();
    assert_eq!(replies, vec![ok(); 200]);
    let gets: Vec<Vec<String>> = (0..100)
        .map(|i| vec!["GET".into(), format!("p:{i}")])
        .collect();
    let values = c.pipeline(&gets).await.unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(*v, bulk(&format!("v1:{i}")), "p:{i}");
    }
}

#[tokio::test]
async fn commands_inside_a_pipeline_see_the_sets_before_them() {
    let node = Node::builder().args(["--fsync", "never"]).start().await;
    let mut c = node.client().await;
    let cmds = vec![
        set("k", "a"),
        words(&["GET", "k"]),
        set("k", "b"),
        set("k", "c"),
        words(&["GET", "k"]),
        // Conditional SETs read the current value.
        words(&["SET", "k", "d", "NX"]),
        words(&["SET", "missing", "x", "XX"]),
        words(&["SET", "k", "e", "GET"]),
        set("gone", "1"),
        words(&["DEL", "gone"]),
        words(&["EXISTS", "gone"]),
        set("t", "v"),
        words(&["SET", "t", "w", "KEEPTTL", "GET"]),
        words(&["MGET", "k", "t", "missing"]),
    ];
    let replies = c.pipeline(&cmds).await.unwrap();
    assert_eq!(
        replies,
        vec![
            ok(),
            bulk("a"),
            ok(),
            ok(),
            bulk("c"),
            Frame::Null,
            Frame::Null,
            bulk("c"),
            ok(),
            int(1),
            int(0),
            ok(),
            bulk("v"),
            Frame::Array(vec![bulk("e"), bulk("w"), Frame::Null]),
        ]
    );
}

#[tokio::test]
async fn a_ttl_set_after_plain_sets_in_a_pipeline_keeps_its_expiry() {
    let node = Node::builder().args(["--fsync", "never"]).start().await;
    let mut c = node.client().await;
    let cmds = vec![
        set("e", "1"),
        words(&["SET", "e", "2", "PX", "600000"]),
        words(&["PTTL", "e"]),
        set("f", "1"),
        words(&["SET", "f", "2", "PX", "1"]),
    ];
    let replies = c.pipeline(&cmds).await.unwrap();
    assert_eq!(replies[..2], [ok(), ok()]);
    let ttl = as_int(&replies[2]);
    assert!(ttl > 0 && ttl <= 600_000, "PTTL {ttl}");
    // The expiry of the last write applies: f expires.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(cmd(&mut c, &["GET", "f"]).await, Frame::Null);
    assert_eq!(cmd(&mut c, &["GET", "e"]).await, bulk("2"));
}

#[tokio::test]
async fn errors_inside_a_pipeline_stay_in_place_and_the_writes_around_them_land() {
    let node = Node::builder().args(["--fsync", "never"]).start().await;
    let mut c = node.client().await;
    let cmds = vec![
        set("a", "1"),
        words(&["SET", "b"]),
        set("b", "2"),
        words(&["INCR", "a"]),
        words(&["NOSUCHCOMMAND"]),
        set("c", "3"),
        words(&["SET", "c", "4", "EX", "notanumber"]),
        words(&["GET", "c"]),
    ];
    let replies = c.pipeline(&cmds).await.unwrap();
    assert_eq!(replies[0], ok());
    assert_err(&replies[1], "ERR");
    assert_eq!(replies[2], ok());
    assert_err(&replies[3], "NOTSTRONG");
    assert_err(&replies[4], "ERR");
    assert_eq!(replies[5], ok());
    assert_err(&replies[6], "ERR");
    assert_eq!(replies[7], bulk("3"));
    let values = cmd(&mut c, &["MGET", "a", "b", "c"]).await;
    assert_eq!(values, Frame::Array(vec![bulk("1"), bulk("2"), bulk("3")]));
}

/// Many connections pipelining SETs of one shared key and of their own
/// keys at once (their writes share storage commits): every own key holds
/// its last value, and the shared key holds one version, the last value of
/// one of the connections, as if the writes had run one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelines_on_one_key_leave_one_version() {
    const CONNS: usize = 16;
    const ROUNDS: usize = 20;
    let node = Node::builder().args(["--fsync", "never"]).start().await;
    let mut tasks = Vec::new();
    for conn in 0..CONNS {
        let mut c = node.client().await;
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let mut cmds = Vec::new();
                for i in 0..16 {
                    cmds.push(set("shared", &format!("{conn}:{round}:{i}")));
                    cmds.push(set(&format!("own:{conn}:{i}"), &format!("{round}")));
                }
                let replies = c.pipeline(&cmds).await.unwrap();
                assert!(replies.iter().all(|r| *r == ok()), "{replies:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = node.client().await;
    for conn in 0..CONNS {
        for i in 0..16 {
            let key = format!("own:{conn}:{i}");
            assert_eq!(
                cmd(&mut c, &["GET", &key]).await,
                bulk(&format!("{}", ROUNDS - 1))
            );
        }
    }
    let last_values: Vec<Frame> = (0..CONNS)
        .map(|conn| bulk(&format!("{conn}:{}:15", ROUNDS - 1)))
        .collect();
    let reply = cmd(&mut c, &["VGET", "shared"]).await;
    let parts = items(&reply);
    assert_eq!(parts.len(), 2, "VGET: {reply:?}");
    let values = items(&parts[1]);
    assert_eq!(values.len(), 1, "one version, not siblings: {reply:?}");
    assert!(last_values.contains(&values[0]), "{reply:?}");
}

/// A plain GET runs beside other connections' staged writes unless its
/// own key has one (`cmd::runs_beside_staged`): every GET still sees its
/// connection's earlier SETs, and never a value no SET wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_beside_staged_writes_see_their_own_connections_sets() {
    const CONNS: usize = 8;
    const ROUNDS: usize = 15;
    for fsync in ["always", "never"] {
        let node = Node::builder().args(["--fsync", fsync]).start().await;
        let mut tasks = Vec::new();
        for conn in 0..CONNS {
            let mut c = node.client().await;
            tasks.push(tokio::spawn(async move {
                let peer = (conn + 1) % CONNS;
                for round in 0..ROUNDS {
                    let mut cmds = Vec::new();
                    for i in 0..8 {
                        cmds.push(set(&format!("k:{conn}:{i}"), &format!("{round}")));
                        // The key just staged, a key another connection
                        // writes, and a key nobody writes.
                        cmds.push(words(&["GET", &format!("k:{conn}:{i}")]));
                        cmds.push(words(&["GET", &format!("k:{peer}:{i}")]));
                        cmds.push(words(&["GET", "untouched"]));
                    }
                    let replies = c.pipeline(&cmds).await.unwrap();
                    for (i, r) in replies.chunks(4).enumerate() {
                        assert_eq!(r[0], ok(), "SET k:{conn}:{i}");
                        assert_eq!(r[1], bulk(&format!("{round}")), "GET own k:{conn}:{i}");
                        let seen_peer = match &r[2] {
                            Frame::Null => None,
                            other => Some(text(other).parse::<usize>().expect("a round")),
                        };
                        assert!(
                            seen_peer.is_none_or(|p| p < ROUNDS),
                            "GET k:{peer}:{i}: {:?}",
                            r[2]
                        );
                        assert_eq!(r[3], Frame::Null, "GET untouched");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut c = node.client().await;
        for conn in 0..CONNS {
            for i in 0..8 {
                assert_eq!(
                    cmd(&mut c, &["GET", &format!("k:{conn}:{i}")]).await,
                    bulk(&format!("{}", ROUNDS - 1)),
                    "--fsync {fsync}"
                );
            }
        }
    }
}
