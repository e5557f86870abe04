//! Three-node groups over the in-memory network: elections, replication,
//! compare-and-set, counters, crashes, restarts, snapshots, partitions.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::harness::{b, eventually, set, set_if, test_config, Cluster};
use crate::command::{Command, Condition, Response, Ttl};
use crate::network::{Refusal, RpcReply};
use crate::{codec, GroupId, GroupsConfig, RaftError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_a_leader_and_replicates() {
    let c = Cluster::start(3, test_config()).await;
    let leader = c.leader().await;
    let applied = c.propose(set("k", "v"), true).await;
    assert_eq!(
        applied.response,
        Response::Set {
            applied: true,
            old: None
        }
    );

    let got = c.read("k").await.unwrap();
    assert_eq!(got.value, b("v"));
    assert_eq!(got.revision, applied.index);
    for i in 0..3 {
        c.wait_applied(i, applied.index).await;
        let local = c.local_read(i, "k").await.unwrap();
        assert_eq!((local.value, local.revision), (b("v"), applied.index));
    }
    // Every node agrees on who leads, and names it by name and address.
    let peer = c
        .groups((leader + 1) % 3)
        .wait_for_leader(&c.group, super::harness::DEADLINE)
        .await;
    let voters = c.voters();
    assert!(voters.contains(&peer.unwrap()));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_refuse_with_the_leaders_address() {
    let c = Cluster::start(3, test_config()).await;
    let leader = c.leader().await;
    c.propose(set("k", "v"), true).await;
    let follower = (leader + 1) % 3;
    let err = eventually("a follower that knows the leader", || async {
        match c.groups(follower).propose(&c.group, set("k", "w")).await {
            Err(RaftError::NotLeader {
                leader_addr: Some(addr),
                ..
            }) => Some(addr),
            Err(RaftError::NotLeader { .. }) => None,
            other => panic!("a follower accepted a write: {other:?}"),
        }
    })
    .await;
    assert_eq!(err, c.nodes[leader].peer.addr);
    let read = c.groups(follower).read(&c.group, b"k", true).await;
    assert!(matches!(read, Err(RaftError::NotLeader { .. })), "{read:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request() {
    let c = Cluster::start(3, test_config()).await;
    c.propose(set("k", "v"), true).await;
    let leader = c.leader().await;
    let target = (leader + 1) % 3;
    let to = c.nodes[target].peer.clone();
    eventually("the transfer to take effect", || async {
        if c.leader().await == target {
            return Some(());
        }
        c.groups(leader)
            .transfer_leadership(&c.group, &to)
            .await
            .unwrap();
        None
    })
    .await;
    let applied = c.propose(set("k", "moved"), true).await;
    let got = c.read("k").await.unwrap();
    assert_eq!((got.value, got.revision), (b("moved"), applied.index));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_and_nx_uniqueness() {
    let c = Arc::new(Cluster::start(3, test_config()).await);
    c.propose(set("k", "1"), true).await;
    let ok = c
        .propose(set_if("k", "2", Condition::Equals(b("1"))), false)
        .await;
    assert!(matches!(ok.response, Response::Set { applied: true, .. }));
    let stale = c
        .propose(set_if("k", "3", Condition::Equals(b("1"))), false)
        .await;
    assert!(matches!(
        stale.response,
        Response::Set { applied: false, .. }
    ));
    let now = c.read("k").await.unwrap();
    assert_eq!((now.value, now.revision), (b("2"), ok.index));

    // Ten clients race for one lock with NX: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let command = set_if("lock", &format!("owner-{i}"), Condition::Missing);
            (i, c.propose(command, false).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, applied) = t.await.unwrap();
        if matches!(applied.response, Response::Set { applied: true, .. }) {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let lock = c.read("lock").await.unwrap();
    assert_eq!(lock.value, b(&format!("owner-{}", winners[0])));
    Arc::into_inner(c).unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_each_applied_once() {
    let c = Arc::new(Cluster::start(3, test_config()).await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let incr = Command::IncrBy {
                key: b("n"),
                delta: 1,
            };
            c.propose(incr, false).await.response
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Response::Integer(n) => assert!(seen.insert(n), "{n} twice"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, (1..=20).collect());
    c.propose(set("text", "x"), true).await;
    let bad = c
        .propose(
            Command::IncrBy {
                key: b("text"),
                delta: 1,
            },
            false,
        )
        .await;
    assert!(matches!(
        bad.response,
        Response::Error(crate::CommandError::NotInteger)
    ));
    Arc::into_inner(c).unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_loses_no_committed_write() {
    let mut c = Cluster::start(3, test_config()).await;
    let mut last = 0;
    for i in 0..20 {
        last = c
            .propose(set(&format!("k{i}"), &format!("v{i}")), true)
            .await
            .index;
    }
    let old = c.leader().await;
    let old_term = c.groups(old).metrics(&c.group).unwrap().term;
    c.stop(old, true).await;

    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = c.leader_among(&rest).await;
    assert!(c.groups(new).metrics(&c.group).unwrap().term > old_term);
    for i in 0..20 {
        let got = c.read_among(&rest, &format!("k{i}")).await;
        assert_eq!(
            got.unwrap().value,
            b(&format!("v{i}")),
            "k{i} after failover"
        );
    }
    let after = c.propose_among(&rest, set("after", "crash"), true).await;
    assert!(after.index > last);

    // The old leader comes back from what its disk kept and catches up.
    c.restart(old).await;
    c.wait_applied(old, after.index).await;
    assert_eq!(c.local_read(old, "after").await.unwrap().value, b("crash"));
    assert_eq!(c.local_read(old, "k19").await.unwrap().value, b("v19"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up_from_the_log() {
    let mut c = Cluster::start(3, test_config()).await;
    c.propose(set("before", "1"), true).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    c.stop(follower, true).await;
    let rest: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    let mut last = 0;
    for i in 0..10 {
        last = c
            .propose_among(&rest, set(&format!("k{i}"), "x"), true)
            .await
            .index;
    }
    c.restart(follower).await;
    c.wait_applied(follower, last).await;
    assert!(c.local_read(follower, "k9").await.is_some());
    assert!(c.local_read(follower, "before").await.is_some());
    let m = c.groups(follower).metrics(&c.group).unwrap();
    assert_eq!(
        m.snapshot_index, None,
        "caught up from the log, not a snapshot"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_that_opens_late_joins_from_pristine_storage() {
    // Every voter initializes the same membership; one that opens the
    // group after the others have elected and written simply follows.
    let mut c = Cluster::new(3, test_config());
    c.restart(0).await;
    c.restart(1).await;
    let mut last = 0;
    for i in 0..5 {
        last = c.propose(set(&format!("k{i}"), "x"), true).await.index;
    }
    c.restart(2).await;
    c.wait_applied(2, last).await;
    assert!(c.local_read(2, "k4").await.is_some());
    // The late voter counts: with node 0 gone, 1 and 2 still commit.
    c.stop(0, false).await;
    let applied = c.propose_among(&[1, 2], set("quorum", "1-2"), true).await;
    c.wait_applied(2, applied.index).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_group_starts_pristine_when_reopened() {
    let c = Cluster::start(1, test_config()).await;
    c.propose(set("k", "v"), true).await;
    let g = c.groups(0);
    g.drop_group(&c.group).await.unwrap();
    assert!(matches!(
        g.read(&c.group, b"k", false).await,
        Err(RaftError::NoSuchGroup(_))
    ));
    g.open_group(c.group.clone(), c.voters()).await.unwrap();
    c.propose(set("other", "v"), true).await;
    assert!(c.local_read(0, "k").await.is_none());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_catches_up_by_snapshot() {
    let config = GroupsConfig {
        snapshot_every: 10,
        keep_after_snapshot: 0,
        ..test_config()
    };
    let c = Cluster::start(3, config).await;
    c.propose(set("first", "1"), true).await;
    let leader = c.leader().await;
    let lagging = (leader + 1) % 3;
    c.net.isolate(&c.nodes[lagging].peer.addr);
    let rest: Vec<usize> = (0..3).filter(|i| *i != lagging).collect();
    let mut last = 0;
    for i in 0..60 {
        last = c
            .propose_among(&rest, set(&format!("k{i}"), &i.to_string()), true)
            .await
            .index;
    }
    // The majority compacted its logs past what the lagging node has.
    let lagging_applied = c.groups(lagging).metrics(&c.group).unwrap().applied_index;
    for i in rest.iter().copied() {
        eventually("log compaction", || async {
            let m = c.groups(i).metrics(&c.group).unwrap();
            (m.purged_index > lagging_applied && m.snapshot_index.is_some()).then_some(())
        })
        .await;
    }
    c.net.heal(&c.nodes[lagging].peer.addr);
    c.wait_applied(lagging, last).await;
    let m = c.groups(lagging).metrics(&c.group).unwrap();
    assert!(
        m.snapshot_index > lagging_applied,
        "installed a snapshot: {m:?}"
    );
    for i in 0..60 {
        let got = c.local_read(lagging, &format!("k{i}")).await.unwrap();
        assert_eq!(got.value, b(&i.to_string()));
    }
    assert!(c.local_read(lagging, "first").await.is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_old_leader_serves_no_stale_linearizable_read() {
    let c = Cluster::start(3, test_config()).await;
    c.propose(set("k", "old"), true).await;
    let old = c.leader().await;
    c.net.isolate(&c.nodes[old].peer.addr);
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let applied = c.propose_among(&rest, set("k", "new"), true).await;

    // The old leader may still believe it leads, but cannot confirm it.
    let read = c.groups(old).read(&c.group, b"k", true).await;
    assert!(
        matches!(
            read,
            Err(RaftError::NoQuorum { .. }
                | RaftError::NotLeader { .. }
                | RaftError::Timeout { .. })
        ),
        "{read:?}"
    );
    // Its local (serializable) state is stale, as documented.
    assert_eq!(c.local_read(old, "k").await.unwrap().value, b("old"));

    c.net.heal(&c.nodes[old].peer.addr);
    c.wait_applied(old, applied.index).await;
    assert_eq!(c.local_read(old, "k").await.unwrap().value, b("new"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_leaders_clock_in_the_log() {
    let c = Cluster::start(3, test_config()).await;
    c.clock.set(10_000);
    let command = Command::Set {
        key: b("session"),
        value: b("alice"),
        ttl: Ttl::AfterMs(500),
        condition: Condition::Always,
        get_old: false,
    };
    let applied = c.propose(command, true).await;
    for i in 0..3 {
        c.wait_applied(i, applied.index).await;
        let v = c.local_read(i, "session").await.unwrap();
        assert_eq!(v.expires_at_ms, Some(10_500));
    }
    c.clock.set(10_500);
    let leader = c.leader().await;
    assert!(c.read("session").await.is_none());
    assert_eq!(
        c.groups(leader).expired_keys(&c.group, 10).unwrap(),
        vec![b("session")]
    );
    let swept = c
        .propose(
            Command::DeleteExpired {
                keys: vec![b("session")],
            },
            true,
        )
        .await;
    assert_eq!(swept.response, Response::Integer(1));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_for_unknown_groups_or_garbage_are_refused() {
    let c = Cluster::start(1, test_config()).await;
    let g = c.groups(0);
    let reply = g.handle_rpc(&c.group, b"\x01garbage").await;
    let reply: RpcReply = codec::decode("reply", &reply).unwrap();
    assert!(
        matches!(reply, RpcReply::Refused(Refusal::BadRequest(_))),
        "{reply:?}"
    );

    let vote = crate::network::RpcRequest::Vote(openraft::raft::VoteRequest::new(
        crate::types::Vote::new(1, 1),
        None,
    ));
    let bytes = codec::encode("rpc", &vote).unwrap();
    let other = GroupId::new("other", 1);
    let reply: RpcReply = codec::decode("reply", &g.handle_rpc(&other, &bytes).await).unwrap();
    assert!(
        matches!(reply, RpcReply::Refused(Refusal::NoSuchGroup(_))),
        "{reply:?}"
    );
    assert!(matches!(
        g.propose(&other, set("k", "v")).await,
        Err(RaftError::NoSuchGroup(_))
    ));
    // A single-node group elects itself and serves linearizable reads.
    c.propose(set("solo", "1"), true).await;
    assert!(g.read(&c.group, b"solo", true).await.unwrap().is_some());
    c.shutdown().await;
}
