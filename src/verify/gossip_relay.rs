//! A UDP relay in front of each node's gossip port, obeying the same link
//! rules as the TCP proxies ([`super::proxy`]), so a partition cuts gossip
//! too and the other nodes' failure detectors see the node go `down`.
//!
//! Each node gossips from its peer address (UDP on the peer port) and
//! advertises its relay (`--gossip-advertise-addr`: the address of its TCP
//! proxy, on UDP). A datagram from node `a` reaches node `b`'s relay, which
//! forwards it to `b` from a socket of its own for `a`; what `b` sends back
//! to that socket goes to `a` through the relay's listening socket. Which
//! node sent a datagram is its source address (every node's gossip socket
//! is bound to its peer address), so no `/proc` lookup is needed.
//!
//! UDP has no connections: every mode that is not `Pass` (drop, black-hole,
//! refuse) discards the datagram.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::proxy::{Direction, Mode, Rules};

/// Largest datagram relayed (chitchat keeps its packets well below).
const MAX_DATAGRAM: usize = 65_536;

/// Relays datagrams sent to `socket` (node `dst`'s advertised gossip
/// address) to `target` (its gossip port) and the answers back, while
/// `rules` let them pass. `nodes` are the nodes' gossip source addresses,
/// by index. Runs until aborted.
pub async fn relay(
    socket: UdpSocket,
    target: SocketAddr,
    dst: usize,
    nodes: Arc<Vec<SocketAddr>>,
    rules: watch::Receiver<Rules>,
) {
    let socket = Arc::new(socket);
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    // Dropped (and so aborted) with this task.
    let mut back = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let dialer = nodes.iter().position(|a| *a == from);
        if rules.borrow().mode(dialer, dst, Direction::Request) != Mode::Pass {
            continue;
        }
        let upstream = match upstreams.get(&from) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = open_upstream(target).await else {
                    continue;
                };
                let u = Arc::new(u);
                upstreams.insert(from, u.clone());
                back.spawn(relay_back(
                    u.clone(),
                    socket.clone(),
                    from,
                    dialer,
                    dst,
                    rules.clone(),
                ));
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// A socket connected to `target`, on the same interface.
async fn open_upstream(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let u = UdpSocket::bind(SocketAddr::new(target.ip(), 0)).await?;
    u.connect(target).await?;
    Ok(u)
}

/// Sends what the node answers on `upstream` back to `to` (node `dialer`).
async fn relay_back(
    upstream: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
    to: SocketAddr,
    dialer: Option<usize>,
    dst: usize,
    rules: watch::Receiver<Rules>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else {
            // A refused datagram (the node is down) surfaces here.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if rules.borrow().mode(dialer, dst, Direction::Reply) == Mode::Pass {
            let _ = listen.send_to(&buf[..n], to).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's gossip socket that answers every datagram with `pong`.
    async fn echo_node() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = s.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let mut reply = b"pong:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn datagrams_pass_both_ways_until_the_link_is_cut() {
        let node1 = echo_node().await;
        // Nodes 0 and 2 send to node 1 through its relay.
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let other = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let nodes = Arc::new(vec![
            sender.local_addr().expect("addr"),
            node1,
            other.local_addr().expect("addr"),
        ]);
        let listen = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let relay_addr = listen.local_addr().expect("addr");
        let (rules_tx, rules_rx) = watch::channel(Rules::for_nodes(3));
        let task = tokio::spawn(relay(listen, node1, 1, nodes, rules_rx));

        let mut buf = [0u8; 64];
        sender.send_to(b"a", relay_addr).await.expect("send");
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sender.recv_from(&mut buf))
            .await
            .expect("an answer through the relay")
            .expect("recv");
        assert_eq!(&buf[..n], b"pong:a");
        assert_eq!(from, relay_addr, "the answer comes back through the relay");

        // Cut node 0 off: "b" is discarded, not held, so the first answer
        // node 0 gets after healing is the one to "c". Node 2's datagram,
        // sent after "b" and answered, shows the relay got past "b" before
        // the heal.
        rules_tx.send_modify(|r| r.isolate(0, Mode::BlackHole));
        sender.send_to(b"b", relay_addr).await.expect("send");
        other.send_to(b"x", relay_addr).await.expect("send");
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), other.recv_from(&mut buf))
            .await
            .expect("node 2's link still passes")
            .expect("recv");
        assert_eq!(&buf[..n], b"pong:x");
        rules_tx.send_modify(Rules::clear);
        sender.send_to(b"c", relay_addr).await.expect("send");
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sender.recv_from(&mut buf))
            .await
            .expect("an answer once healed")
            .expect("recv");
        assert_eq!(&buf[..n], b"pong:c", "nothing crossed the cut link");
        task.abort();
    }
}
