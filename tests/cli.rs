//! The command-line client of the real binary against a running node:
//! `fulcrum set/get/del/scan`, `fulcrum keyspace …`, `fulcrum cluster
//! status`, `fulcrum explain`, and `fulcrum demo`.

mod common;

use std::time::Duration;

use common::*;

const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `fulcrum <args>` and returns its stdout; panics unless it exits 0.
fn cli_ok(args: &[&str]) -> String {
    let out = run(args, &[], CLI_TIMEOUT);
    assert!(
        out.success(),
        "`fulcrum {}` failed: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Runs `fulcrum <args>`, expects a non-zero exit, returns stderr.
fn cli_err(args: &[&str]) -> String {
    let out = run(args, &[], CLI_TIMEOUT);
    assert!(
        !out.success(),
        "`fulcrum {}` should fail\nstdout:\n{}",
        args.join(" "),
        out.stdout
    );
    out.stderr
}

#[tokio::test]
async fn set_get_del_scan_print_like_redis_cli() {
    let node = Node::start().await;
    let addr = node.resp.to_string();
    let a = addr.as_str();

    assert_eq!(cli_ok(&["set", "--addr", a, "greeting", "hello"]), "OK\n");
    assert_eq!(cli_ok(&["get", "--addr", a, "greeting"]), "\"hello\"\n");
    assert_eq!(cli_ok(&["get", "--addr", a, "missing"]), "(nil)\n");
    // Quotes and backslashes are escaped as redis-cli does.
    assert_eq!(cli_ok(&["set", "--addr", a, "q", "a\"b\\c"]), "OK\n");
    assert_eq!(cli_ok(&["get", "--addr", a, "q"]), "\"a\\\"b\\\\c\"\n");
    // Binary bytes are \x-escaped.
    let mut c = node.client().await;
    assert_eq!(
        c.cmd(&[&b"SET"[..], b"bin", b"\x00\xff"]).await.unwrap(),
        ok()
    );
    assert_eq!(cli_ok(&["get", "--addr", a, "bin"]), "\"\\x00\\xff\"\n");
    // --ex sets a TTL.
    assert_eq!(
        cli_ok(&["set", "--addr", a, "session", "alice", "--ex", "100"]),
        "OK\n"
    );
    let ttl = as_int(&cmd(&mut c, &["TTL", "session"]).await);
    assert!((95..=100).contains(&ttl), "TTL {ttl}");
    // The address can come from FULCRUM_ADDR.
    let out = run(&["get", "session"], &[("FULCRUM_ADDR", a)], CLI_TIMEOUT);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "\"alice\"\n");

    assert_eq!(
        cli_ok(&["del", "--addr", a, "greeting", "missing"]),
        "(integer) 1\n"
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "greeting"]).await, int(0));

    for i in 0..12 {
        assert_eq!(cmd(&mut c, &["SET", &format!("user:{i}"), "x"]).await, ok());
    }
    let out = cli_ok(&["scan", "--addr", a, "--match", "user:*"]);
    let mut keys: Vec<&str> = out.lines().collect();
    keys.sort();
    let mut want: Vec<String> = (0..12).map(|i| format!("user:{i}")).collect();
    want.sort();
    assert_eq!(keys, want);
    let out = cli_ok(&["scan", "--addr", a]);
    assert_eq!(out.lines().count(), 15, "all keys: {out}");
    let out = cli_ok(&["scan", "--addr", a, "--match", "user:*", "--limit", "5"]);
    assert_eq!(out.lines().count(), 5, "{out}");

    // Errors: a server error and an unreachable node, both non-zero.
    let err = cli_err(&["get", "--addr", a, "-k", "nosuch", "x"]);
    assert!(
        err.contains("ERR keyspace 'nosuch' does not exist"),
        "{err}"
    );
    let [closed] = free_ports::<1>();
    let closed = loopback(closed).to_string();
    let err = cli_err(&["get", "--addr", &closed, "x"]);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains(&closed), "{err}");
}

/// redis-cli prints a value quoted and escaped even when it spans lines
/// (only INFO-style text replies are printed raw); otherwise a stored value
/// is ambiguous on the terminal (`"(nil)"` vs nil, one value vs several).
#[tokio::test]
async fn multi_line_values_are_quoted_like_redis_cli() {
    let node = Node::start().await;
    let addr = node.resp.to_string();
    let a = addr.as_str();
    assert_eq!(
        cli_ok(&["set", "--addr", a, "two-lines", "a\"b\nc"]),
        "OK\n"
    );
    assert_eq!(
        cli_ok(&["get", "--addr", a, "two-lines"]),
        "\"a\\\"b\\nc\"\n",
        "redis-cli prints GET of \"a\\\"b\\nc\" quoted"
    );
}

#[tokio::test]
async fn keyspace_admin_commands() {
    let node = Node::start().await;
    let addr = node.resp.to_string();
    let a = addr.as_str();

    assert_eq!(
        cli_ok(&[
            "keyspace",
            "--addr",
            a,
            "create",
            "inventory",
            "--mode",
            "strong"
        ]),
        "OK\n"
    );
    assert_eq!(
        cli_ok(&[
            "keyspace",
            "--addr",
            a,
            "create",
            "sessions",
            "--replicas",
            "5",
            "--read",
            "ONE",
            "--write",
            "ALL",
            "--conflict",
            "lww",
        ]),
        "OK\n"
    );
    assert_eq!(
        cli_ok(&["keyspace", "--addr", a, "list"]),
        "1) \"default\"\n2) \"inventory\"\n3) \"sessions\"\n"
    );
    assert_eq!(
        cli_ok(&["keyspace", "--addr", a, "info", "sessions"]),
        " 1) \"name\"\n 2) \"sessions\"\n 3) \"mode\"\n 4) \"eventual\"\n 5) \"replicas\"\n \
         6) (integer) 5\n 7) \"read\"\n 8) \"ONE\"\n 9) \"write\"\n10) \"ALL\"\n\
         11) \"conflict\"\n12) \"lww\"\n13) \"keys\"\n14) (integer) 0\n"
    );
    let info = cli_ok(&["keyspace", "--addr", a, "info", "inventory"]);
    assert!(info.contains("\"strong\""), "{info}");
    assert!(info.contains("\"LINEARIZABLE\""), "{info}");

    // The keyspace works through -k.
    assert_eq!(
        cli_ok(&["set", "--addr", a, "-k", "inventory", "stock", "5"]),
        "OK\n"
    );
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["USE", "inventory"]).await, ok());
    assert_eq!(cmd(&mut c, &["DECR", "stock"]).await, int(4));
    assert_eq!(
        cli_ok(&["get", "--addr", a, "--keyspace", "inventory", "stock"]),
        "\"4\"\n"
    );
    assert_eq!(cli_ok(&["get", "--addr", a, "stock"]), "(nil)\n");

    assert_eq!(
        cli_ok(&["keyspace", "--addr", a, "drop", "sessions"]),
        "OK\n"
    );
    assert_eq!(
        cli_ok(&["keyspace", "--addr", a, "list"]),
        "1) \"default\"\n2) \"inventory\"\n"
    );

    // Errors exit non-zero with the server's message.
    let err = cli_err(&["keyspace", "--addr", a, "drop", "default"]);
    assert!(
        err.contains("ERR the default keyspace cannot be dropped"),
        "{err}"
    );
    let err = cli_err(&["keyspace", "--addr", a, "create", "inventory"]);
    assert!(err.contains("already exists"), "{err}");
    let err = cli_err(&["keyspace", "--addr", a, "create", "x", "--mode", "quantum"]);
    assert!(err.contains("unknown mode 'quantum'"), "{err}");
    let err = cli_err(&["keyspace", "--addr", a, "info", "sessions"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn cluster_status_prints_the_status_json() {
    let node = Node::builder()
        .args(["--node-id", "cli-node"])
        .start()
        .await;
    let http = node.http.to_string();
    let out = cli_ok(&["cluster", "--http", &http, "status"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("pretty JSON");
    assert_eq!(v["node_id"], "cli-node");
    assert_eq!(v["members"][0]["resp_addr"], node.resp.to_string());
    assert!(
        out.contains("\n  \"node_id\": \"cli-node\""),
        "pretty-printed: {out}"
    );
}

#[test]
fn explain_prints_the_quorum_table() {
    let out = cli_ok(&["explain", "--replicas", "3"]);
    assert!(out.contains("N = 3"), "{out}");
    assert!(out.contains("W+R"), "{out}");
    // One row per (W, R) in 1..=3 × 1..=3, W+R > N marked strong.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() > 4 && w[..3].iter().all(|x| x.parse::<u32>().is_ok()))
        .collect();
    assert_eq!(rows.len(), 9, "{out}");
    for r in &rows {
        let (w, rr, sum): (u32, u32, u32) = (
            r[0].parse().unwrap(),
            r[1].parse().unwrap(),
            r[2].parse().unwrap(),
        );
        assert_eq!(w + rr, sum, "{r:?}");
        assert_eq!(r[3] == "yes", sum > 3, "{r:?}");
    }
    let five = cli_ok(&["explain", "--replicas", "5"]);
    assert!(five.contains("N = 5"), "{five}");
    let err = cli_err(&["explain", "--replicas", "8"]);
    assert!(err.contains("--replicas"), "{err}");
}

#[test]
fn demo_runs_the_tour_and_exits() {
    let out = run(
        &["demo", "--port", "0", "--exit-after-tour"],
        &[],
        Duration::from_secs(120),
    );
    assert!(
        out.success(),
        "demo failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let s = &out.stdout;
    assert!(s.contains("redis-cli -p "), "{s}");
    // The tour prints each command and its reply.
    assert!(s.contains("> PING\nPONG\n"), "{s}");
    assert!(s.contains("> SET greeting hello\nOK\n"), "{s}");
    assert!(s.contains("> GET greeting\n\"hello\"\n"), "{s}");
    assert!(
        s.contains("> TTL session:42\n(integer) 60\n")
            || s.contains("> TTL session:42\n(integer) 59\n"),
        "{s}"
    );
    let errors: Vec<&str> = s.lines().filter(|l| l.contains("(error)")).collect();
    assert!(
        errors.is_empty(),
        "no command of the tour fails, got {errors:?} in:\n{s}"
    );
    // Ports chosen with --port 0 are real ports.
    let port: u16 = s
        .split("redis-cli -p ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("a port after redis-cli -p");
    assert!(port > 0);
    assert!(!s.contains("Serving until Ctrl-C"), "{s}");
}
