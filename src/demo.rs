//! `fulcrum demo`: a node on temporary data, a guided tour printing each
//! command and its reply, then serving until Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use fulcrum_client::Client;
use fulcrum_node::{Node, NodeConfig};
use fulcrum_storage::FsyncPolicy;

use crate::client_cmd::render;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// RESP port of the demo node (0 picks a free one).
    #[arg(long, default_value_t = 7379)]
    port: u16,
    /// Exit after the tour instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_tour: bool,
}

/// Binds the preferred port if free, else lets the OS pick one.
fn addr_or_free(port: u16) -> SocketAddr {
    let preferred = SocketAddr::from(([127, 0, 0, 1], port));
    if port != 0 && std::net::TcpListener::bind(preferred).is_ok() {
        preferred
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
}

/// The port `by` above `port`, or 0 (any) when `port` is 0.
fn next_port(port: u16, by: u16) -> u16 {
    if port == 0 {
        0
    } else {
        port.saturating_add(by)
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("fulcrum-demo-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let config = NodeConfig {
        node_id: "n1".into(),
        data_dir: dir.path().to_path_buf(),
        resp_addr: addr_or_free(args.port),
        http_addr: addr_or_free(next_port(args.port, 1)),
        peer_addr: addr_or_free(next_port(args.port, 2)),
        fsync: FsyncPolicy::Always,
        ..NodeConfig::default()
    };
    let node = Node::start(config)
        .await
        .context("cannot start the demo node")?;
    println!("Fulcrum demo: one node, data in {}", dir.path().display());
    println!();
    println!("  connect:  redis-cli -p {}", node.resp_addr.port());
    println!("  status:   curl http://{}/status", node.http_addr);
    println!("  metrics:  curl http://{}/metrics", node.http_addr);
    println!();
    tour(&node.resp_addr.to_string()).await?;
    if !args.exit_after_tour {
        println!();
        println!("Serving until Ctrl-C ...");
        crate::server_cmd::wait_for_signal().await;
    }
    node.shutdown().await;
    Ok(())
}

async fn tour(addr: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(addr).await?;
    let steps: &[(&str, &[&str])] = &[
        (
            "Any Redis client works: plain strings in the default keyspace.",
            &[],
        ),
        ("", &["PING"]),
        ("", &["SET", "greeting", "hello"]),
        ("", &["GET", "greeting"]),
        ("Keys can expire.", &[]),
        ("", &["SET", "session:42", "alice", "EX", "60"]),
        ("", &["TTL", "session:42"]),
        (
            "Each keyspace picks its place on the consistency lever.",
            &[],
        ),
        ("", &["KEYSPACE", "LIST"]),
        ("", &["KEYSPACE", "INFO", "default"]),
        ("Counters and compare-and-set need a strong keyspace.", &[]),
        ("", &["INCR", "visits"]),
        ("", &["KEYSPACE", "CREATE", "inventory", "MODE", "strong"]),
        ("", &["USE", "inventory"]),
        ("", &["SET", "stock:apple", "5"]),
        ("", &["DECR", "stock:apple"]),
        ("", &["SET", "stock:apple", "3", "IFEQ", "4"]),
        ("", &["SET", "stock:apple", "2", "IFEQ", "4"]),
        ("", &["GETREV", "stock:apple"]),
        (
            "Every acknowledged write is on disk before the reply (--fsync always).",
            &[],
        ),
        ("", &["INFO", "fulcrum"]),
    ];
    for (note, cmd) in steps {
        if !note.is_empty() {
            println!();
            println!("# {note}");
        }
        if cmd.is_empty() {
            continue;
        }
        let reply = c.cmd(cmd).await?;
        println!("{}> {}", addr, cmd.join(" "));
        println!("{}", render(&reply));
    }
    Ok(())
}
