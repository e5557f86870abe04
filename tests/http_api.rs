//! The HTTP port of the real binary: `/health`, `/status` (JSON) and
//! `/metrics` (Prometheus/OpenMetrics text), `/anti-entropy/{keyspace}`.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn health_answers_ok() {
    let node = Node::start().await;
    let r = node.http_get("/health").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.trim(), "ok");
    let missing = node.http_get("/no-such-page").await;
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[tokio::test]
async fn status_reports_the_member_and_keyspaces() {
    let node = Node::builder()
        .args(["--node-id", "e2e-node", "--dc", "east", "--rack", "r7"])
        .start()
        .await;
    let mut c = node.client().await;
    assert_eq!(
        cmd(
            &mut c,
            &["KEYSPACE", "CREATE", "bank", "MODE", "strong", "REPLICAS", "5"]
        )
        .await,
        ok()
    );
    assert_eq!(
        cmd(
            &mut c,
            &["KEYSPACE", "CREATE", "cache", "READ", "ONE", "WRITE", "ANY", "CONFLICT", "lww"]
        )
        .await,
        ok()
    );

    let r = node.http_get("/status").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{r:?}"
    );
    let s: Value = serde_json::from_str(&r.body).expect("/status is JSON");
    assert_eq!(s["node_id"], "e2e-node");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["fsync"], "always");
    assert!(s["uptime_seconds"].is_u64(), "{s}");

    let members = s["members"].as_array().expect("members array");
    assert_eq!(members.len(), 1, "{s}");
    let me = &members[0];
    assert_eq!(me["node_id"], "e2e-node");
    assert_eq!(me["resp_addr"], node.resp.to_string());
    assert_eq!(me["http_addr"], node.http.to_string());
    assert_eq!(me["peer_addr"], node.peer.to_string());
    assert_eq!(me["state"], "up");
    assert_eq!(me["dc"], "east");
    assert_eq!(me["rack"], "r7");

    let keyspaces = s["keyspaces"].as_array().expect("keyspaces array");
    let names: Vec<&str> = keyspaces
        .iter()
        .map(|k| k["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["bank", "cache", "default"]);
    let by_name = |n: &str| {
        keyspaces
            .iter()
            .find(|k| k["name"] == n)
            .expect("keyspace listed")
            .clone()
    };
    let bank = by_name("bank");
    assert_eq!(bank["mode"], "strong");
    assert_eq!(bank["replicas"], 5);
    assert_eq!(bank["read"], "LINEARIZABLE");
    assert_eq!(bank["write"], "LINEARIZABLE");
    assert!(bank["conflict"].is_string());
    let cache = by_name("cache");
    assert_eq!(cache["mode"], "eventual");
    assert_eq!(cache["replicas"], 3);
    assert_eq!(cache["read"], "ONE");
    assert_eq!(cache["write"], "ANY");
    assert_eq!(cache["conflict"], "lww");
    let default = by_name("default");
    assert_eq!(default["mode"], "eventual");
    assert_eq!(default["read"], "QUORUM");
    assert_eq!(default["write"], "QUORUM");
    assert_eq!(default["conflict"], "siblings");

    // A dropped keyspace disappears from /status.
    assert_eq!(cmd(&mut c, &["KEYSPACE", "DROP", "cache"]).await, ok());
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    let names: Vec<&str> = s["keyspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bank", "default"]);
}

/// The value of the sample line `name{labels} value` (exact match of
/// everything before the value).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(s, _)| *s == series)
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_latency_errors_and_keyspace_sizes() {
    let node = Node::start().await;
    let mut c = node.client().await;
    for i in 0..3 {
        assert_eq!(cmd(&mut c, &["SET", &format!("k{i}"), "v"]).await, ok());
    }
    assert_eq!(cmd(&mut c, &["GET", "k0"]).await, bulk("v"));
    assert_eq!(
        cmd(&mut c, &["GET", "nope"]).await,
        fulcrum_client::Frame::Null
    );
    assert_err(&cmd(&mut c, &["GET"]).await, "ERR wrong number");
    assert_err(&cmd(&mut c, &["INCR", "k0"]).await, "NOTSTRONG");
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "bank", "MODE", "strong"]).await,
        ok()
    );
    assert_eq!(cmd(&mut c, &["USE", "bank"]).await, ok());
    assert_eq!(cmd(&mut c, &["INCR", "n"]).await, int(1));

    let r = node.http_get("/metrics").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.contains("openmetrics-text") || t.contains("text/plain")),
        "{r:?}"
    );
    let m = r.body;
    assert!(
        m.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );

    // Request counters, by command.
    assert!(m.contains("# TYPE fulcrum_requests counter"), "{m}");
    assert_eq!(
        sample(&m, r#"fulcrum_requests_total{command="SET"}"#),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"fulcrum_requests_total{command="GET"}"#),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"fulcrum_requests_total{command="INCR"}"#),
        Some(2.0),
        "{m}"
    );
    // Errors, by command and error word.
    assert_eq!(
        sample(
            &m,
            r#"fulcrum_request_errors_total{command="GET",error="ERR"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"fulcrum_request_errors_total{command="INCR",error="NOTSTRONG"}"#
        ),
        Some(1.0),
        "{m}"
    );
    // Latency histogram.
    assert!(
        m.contains("# TYPE fulcrum_request_duration_seconds histogram"),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"fulcrum_request_duration_seconds_count{command="SET"}"#
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"fulcrum_request_duration_seconds_bucket{le="+Inf",command="SET"}"#
        ),
        Some(3.0),
        "{m}"
    );
    let sum = sample(&m, r#"fulcrum_request_duration_seconds_sum{command="SET"}"#)
        .expect("SET latency sum");
    assert!(sum > 0.0, "{sum}");
    let buckets: Vec<f64> = m
        .lines()
        .filter(|l| {
            l.starts_with("fulcrum_request_duration_seconds_bucket{")
                && l.contains(r#"command="SET""#)
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect();
    assert!(buckets.len() > 5, "several buckets: {buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative buckets: {buckets:?}"
    );

    // Keyspace sizes, per keyspace.
    assert!(m.contains("# TYPE fulcrum_keyspace_keys gauge"), "{m}");
    for ks in ["default", "bank"] {
        let keys = sample(&m, &format!(r#"fulcrum_keyspace_keys{{keyspace="{ks}"}}"#));
        assert!(keys.is_some(), "keys gauge for {ks}: {m}");
        let disk = sample(
            &m,
            &format!(r#"fulcrum_keyspace_disk_bytes{{keyspace="{ks}"}}"#),
        );
        assert!(disk.is_some(), "disk gauge for {ks}: {m}");
    }
    let default_keys =
        sample(&m, r#"fulcrum_keyspace_keys{keyspace="default"}"#).unwrap_or_default();
    assert!(default_keys >= 3.0, "default holds 3 keys: {default_keys}");

    // Connections and group commit.
    assert!(
        sample(&m, "fulcrum_connections").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(
        sample(&m, "fulcrum_connections_accepted_total").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(
        sample(&m, "fulcrum_fsyncs").is_some_and(|n| n >= 1.0),
        "{m}"
    );

    // Counters move with traffic.
    assert_eq!(cmd(&mut c, &["USE", "default"]).await, ok());
    assert_eq!(cmd(&mut c, &["SET", "k9", "v"]).await, ok());
    let m2 = node.http_get("/metrics").await.body;
    assert_eq!(
        sample(&m2, r#"fulcrum_requests_total{command="SET"}"#),
        Some(4.0),
        "{m2}"
    );
}

#[tokio::test]
async fn anti_entropy_roots_change_with_writes_and_name_bad_keyspaces() {
    let node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(
        cmd(&mut c, &["KEYSPACE", "CREATE", "bank", "MODE", "strong"]).await,
        ok()
    );
    let roots = async || -> serde_json::Map<String, Value> {
        let r = node.http_get("/anti-entropy/default").await;
        assert_eq!(r.status, 200, "{r:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["keyspace"], "default");
        v["roots"].as_object().cloned().unwrap()
    };
    let before = roots().await;
    // One node replicates every partition.
    assert_eq!(before.len(), 4096);
    assert_eq!(cmd(&mut c, &["SET", "k", "v"]).await, ok());
    let after = roots().await;
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, r)| after.get(*p) != Some(*r))
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "one key changes one partition's root: {changed:?}"
    );
    assert_eq!(cmd(&mut c, &["SET", "k", "v2"]).await, ok());
    assert_ne!(roots().await[&changed[0]], after[&changed[0]]);

    let missing = node.http_get("/anti-entropy/nope").await;
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.body.contains("nope"), "{missing:?}");
    let strong = node.http_get("/anti-entropy/bank").await;
    assert_eq!(strong.status, 400, "{strong:?}");
    assert!(strong.body.contains("strong"), "{strong:?}");
}
