//! `fulcrum demo`: a three-node cluster on temporary data, a guided tour
//! that prints each command and its reply, then serving until Ctrl-C.
//!
//! The tour shows the consistency lever: a W=1/R=1 read that is stale next
//! to a QUORUM read that is fresh, siblings from concurrent writes, and the
//! inventory story — read-check-write oversells in an eventual keyspace
//! and never does with compare-and-set in a strong one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fulcrum_client::Client;
use fulcrum_node::{Node, NodeConfig};
use fulcrum_proto::Frame;
use fulcrum_storage::FsyncPolicy;

use crate::client_cmd::render;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// RESP port of the first node; node i uses port + 3(i-1) for RESP,
    /// +1 for HTTP, +2 for peers (0 picks free ports).
    #[arg(long, default_value_t = 7379)]
    port: u16,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=7))]
    nodes: u16,
    /// Exit after the tour instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_tour: bool,
}

/// Waits until every node sees every member up (gossip has spread the
/// member list and each link answers), so the tour's quorums are reachable.
async fn wait_until_all_up(nodes: &[Node]) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let all_up = nodes.iter().all(|n| {
            let members = n.cluster.members();
            members.len() == nodes.len() && members.iter().all(|m| n.cluster.is_up(&m.node_id))
        });
        if all_up {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the demo nodes did not see each other up within 60 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The preferred address if free, else one the OS picks.
fn addr_or_free(port: u16) -> SocketAddr {
    let preferred = SocketAddr::from(([127, 0, 0, 1], port));
    if port != 0 && std::net::TcpListener::bind(preferred).is_ok() {
        preferred
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
}

fn port_at(base: u16, node: u16, offset: u16) -> u16 {
    if base == 0 {
        0
    } else {
        base.saturating_add(3 * node + offset)
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("fulcrum-demo-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..args.nodes {
        let seeds = match nodes.first() {
            Some(first) => vec![first.peer_addr.to_string()],
            None => vec![],
        };
        let config = NodeConfig {
            node_id: format!("n{}", i + 1),
            data_dir: dir.path().join(format!("n{}", i + 1)),
            resp_addr: addr_or_free(port_at(args.port, i, 0)),
            http_addr: addr_or_free(port_at(args.port, i, 1)),
            peer_addr: addr_or_free(port_at(args.port, i, 2)),
            seeds,
            fsync: FsyncPolicy::Always,
            allow_faults: true,
            ..NodeConfig::default()
        };
        let node = Node::start(config)
            .await
            .with_context(|| format!("cannot start demo node n{}", i + 1))?;
        nodes.push(node);
    }
    wait_until_all_up(&nodes).await?;
    println!(
        "Fulcrum demo: {} nodes, data in {}",
        nodes.len(),
        dir.path().display()
    );
    println!();
    for n in &nodes {
        println!(
            "  {}: redis-cli -p {}    status: curl http://{}/status",
            n.db.node_id,
            n.resp_addr.port(),
            n.http_addr
        );
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.resp_addr.to_string()).collect();
    tour(&addrs).await?;
    if nodes.len() >= 2 {
        inventory(&addrs).await?;
    }
    if !args.exit_after_tour {
        println!();
        println!("Serving until Ctrl-C ...");
        crate::server_cmd::wait_for_signal().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

/// A connection to node `i` that prints every command and reply.
struct Shell {
    name: String,
    client: Client,
}

impl Shell {
    async fn open(addrs: &[String], i: usize) -> anyhow::Result<Shell> {
        let addr = &addrs[i % addrs.len()];
        Ok(Shell {
            name: format!("n{}", i % addrs.len() + 1),
            client: Client::connect(addr.as_str()).await?,
        })
    }

    async fn run(&mut self, cmd: &[&str]) -> anyhow::Result<Frame> {
        let reply = self.client.cmd(cmd).await?;
        println!("{}> {}", self.name, cmd.join(" "));
        match &reply {
            // INFO's text prints as is, as redis-cli shows it.
            Frame::Bulk(text) if cmd[0].eq_ignore_ascii_case("INFO") => {
                println!(
                    "{}",
                    String::from_utf8_lossy(text)
                        .replace("\r\n", "\n")
                        .trim_end()
                );
            }
            _ => println!("{}", render(&reply)),
        }
        Ok(reply)
    }

    /// Runs without printing.
    async fn quiet(&mut self, cmd: &[&str]) -> anyhow::Result<Frame> {
        Ok(self.client.cmd(cmd).await?)
    }
}

fn say(note: &str) {
    println!();
    println!("# {note}");
}

async fn tour(addrs: &[String]) -> anyhow::Result<()> {
    let mut a = Shell::open(addrs, 0).await?;
    say("Any Redis client works. Plain strings in the default keyspace:");
    a.run(&["PING"]).await?;
    a.run(&["SET", "greeting", "hello"]).await?;
    a.run(&["GET", "greeting"]).await?;
    a.run(&["SET", "session:42", "alice", "EX", "60"]).await?;
    a.run(&["TTL", "session:42"]).await?;
    if addrs.len() < 3 {
        return Ok(());
    }
    let mut b = Shell::open(addrs, 1).await?;
    let mut c = Shell::open(addrs, 2).await?;
    say("An eventual keyspace: 3 replicas of every key, quorum reads and writes by default.");
    a.run(&[
        "KEYSPACE", "CREATE", "profiles", "MODE", "eventual", "REPLICAS", "3",
    ])
    .await?;
    for s in [&mut a, &mut b, &mut c] {
        s.quiet(&["USE", "profiles"]).await?;
    }
    a.run(&["SET", "user:1", "v1"]).await?;
    say("Node n3 now applies replica writes 3 s late (fault injection), so its copy goes stale.");
    c.run(&["FAULT", "DELAY-PUTS", "3000"]).await?;
    say("Write v2 at W=1 through n1: acknowledged as soon as one replica has it.");
    a.run(&["CONSISTENCY", "WRITE", "ONE"]).await?;
    a.run(&["SET", "user:1", "v2"]).await?;
    say("Read at R=1 through n3: W+R = 2, not > N = 3, so the read may miss the write.");
    c.run(&["CONSISTENCY", "READ", "ONE"]).await?;
    c.run(&["GET", "user:1"]).await?;
    say("Read at QUORUM through n3: two replicas answer and are merged; n1 has v2, so the read is fresh.");
    say("(Guaranteed fresh only when W+R > N, e.g. QUORUM writes and QUORUM reads.)");
    c.run(&["CONSISTENCY", "READ", "QUORUM"]).await?;
    c.run(&["GET", "user:1"]).await?;
    c.quiet(&["FAULT", "DELAY-PUTS", "0"]).await?;
    say("Concurrent writes without a causal context become siblings; VGET shows them all.");
    a.run(&["VSET", "cart:7", "apples"]).await?;
    b.run(&["VSET", "cart:7", "pears"]).await?;
    let reply = c.run(&["VGET", "cart:7"]).await?;
    if let Frame::Array(parts) = reply {
        if let Some(Frame::Bulk(ctx)) = parts.first() {
            let ctx = String::from_utf8_lossy(ctx).into_owned();
            say("Writing back with the context from VGET supersedes exactly what it saw.");
            c.run(&["VSET", "cart:7", "apples,pears", "CONTEXT", &ctx])
                .await?;
            a.run(&["VGET", "cart:7"]).await?;
        }
    }
    say("`fulcrum explain --replicas 3` prints the whole N/R/W table.");
    Ok(())
}

/// Seed 002's inventory story: 5 items, 50 concurrent buyers.
async fn inventory(addrs: &[String]) -> anyhow::Result<()> {
    say("The inventory story: 5 items in stock, 50 concurrent buyers.");
    let mut a = Shell::open(addrs, 0).await?;
    a.run(&[
        "KEYSPACE",
        "CREATE",
        "shop_eventual",
        "MODE",
        "eventual",
        "READ",
        "ONE",
        "WRITE",
        "ONE",
    ])
    .await?;
    a.run(&["KEYSPACE", "CREATE", "shop_strong", "MODE", "strong"])
        .await?;
    let eventual = buyers(addrs, "shop_eventual", false).await?;
    let strong = buyers(addrs, "shop_strong", true).await?;
    println!();
    println!(
        "  eventual keyspace, W=1/R=1, read-check-write: {eventual} sold of 5 (oversold by {})",
        eventual.saturating_sub(5)
    );
    println!(
        "  strong keyspace, compare-and-set (SET … IFEQ): {strong} sold of 5 (oversold by {})",
        strong.saturating_sub(5)
    );
    Ok(())
}

async fn buyers(addrs: &[String], keyspace: &str, cas: bool) -> anyhow::Result<u32> {
    let mut admin = Shell::open(addrs, 0).await?;
    admin.quiet(&["USE", keyspace]).await?;
    admin.quiet(&["SET", "stock", "5"]).await?;
    let sold = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let addr = addrs[i % addrs.len()].clone();
        let keyspace = keyspace.to_string();
        let sold = sold.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr.as_str()).await?;
            c.cmd(&["USE", keyspace.as_str()]).await?;
            loop {
                let stock = match c.cmd(&["GET", "stock"]).await? {
                    Frame::Bulk(b) => String::from_utf8_lossy(&b).parse::<i64>().unwrap_or(0),
                    _ => 0,
                };
                if stock <= 0 {
                    return Ok::<(), anyhow::Error>(());
                }
                let next = (stock - 1).to_string();
                let old = stock.to_string();
                let reply = if cas {
                    c.cmd(&["SET", "stock", next.as_str(), "IFEQ", old.as_str()])
                        .await?
                } else {
                    c.cmd(&["SET", "stock", next.as_str()]).await?
                };
                match reply {
                    Frame::Simple(s) if s == "OK" => {
                        sold.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    // Someone else changed the stock first: read again.
                    Frame::Null => continue,
                    Frame::Error(e) => anyhow::bail!("buyer failed: {e}"),
                    _ => continue,
                }
            }
        }));
    }
    for t in tasks {
        t.await.context("buyer task panicked")??;
    }
    Ok(sold.load(Ordering::Relaxed))
}
