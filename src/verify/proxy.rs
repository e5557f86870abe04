//! Fault-injecting TCP proxies for the peer network.
//!
//! One proxy sits in front of each node's peer port and forwards bytes both
//! ways. The node advertises the proxy's address, so every connection *to*
//! node `dst` crosses proxy `dst`. To apply per-pair rules, the proxy finds
//! which node opened a connection (the *dialer*) by looking the connecting
//! socket up in `/proc/net/tcp` and the nodes' open file descriptors (see
//! [`dialer_of`]); a connection whose dialer cannot be identified obeys only
//! rules that hold for every dialer into `dst`.
//!
//! Rules are per link (dialer, dst) and per direction ([`Direction`]):
//!
//! * `Mode::Pass`: forward;
//! * `Mode::Drop`: read and discard. Once the rule is lifted the
//!   connection is closed rather than resumed mid-message, as a peer would
//!   give up on a connection that lost data;
//! * `Mode::BlackHole`: stop reading, so bytes wait in socket buffers and
//!   are delivered late when the rule is lifted (a stalled network);
//! * `Mode::Refuse`: close existing connections and new ones right after
//!   accepting them.
//!
//! Gossip (UDP) crosses a relay on the same address as the TCP proxy
//! ([`super::gossip_relay`]), under the same rules.
//!
//! [`FaultNet::set_listening`] closes a proxy's listening socket (and its
//! connections) while its node is down, so peers get "connection refused",
//! as from a dead host, instead of a connection that opens and closes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cluster::Pids;

/// What happens to bytes on a link in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Pass,
    Drop,
    BlackHole,
    Refuse,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pass => "pass",
            Mode::Drop => "drop",
            Mode::BlackHole => "black-hole",
            Mode::Refuse => "refuse",
        }
    }
}

/// Direction on a connection opened by a dialer to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Dialer → node (requests).
    Request,
    /// Node → dialer (responses).
    Reply,
}

/// Rules for one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkRule {
    pub request: Mode,
    pub reply: Mode,
}

impl LinkRule {
    fn get(self, dir: Direction) -> Mode {
        match dir {
            Direction::Request => self.request,
            Direction::Reply => self.reply,
        }
    }
}

/// Every link's rule; links not listed pass.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    nodes: usize,
    links: BTreeMap<(usize, usize), LinkRule>,
}

impl Rules {
    /// Every link of `nodes` nodes passes.
    pub fn for_nodes(nodes: usize) -> Rules {
        Rules {
            nodes,
            links: BTreeMap::new(),
        }
    }

    /// Cuts `node` off from every other node in both directions.
    pub fn isolate(&mut self, node: usize, mode: Mode) {
        let rule = LinkRule {
            request: mode,
            reply: mode,
        };
        for other in (0..self.nodes).filter(|&o| o != node) {
            self.links.insert((node, other), rule);
            self.links.insert((other, node), rule);
        }
    }

    /// Lifts every rule.
    pub fn clear(&mut self) {
        self.links.clear();
    }

    /// The mode for bytes in `dir` on a connection from `dialer` to `dst`.
    pub fn mode(&self, dialer: Option<usize>, dst: usize, dir: Direction) -> Mode {
        let rule = |src: usize| self.links.get(&(src, dst)).copied().unwrap_or_default();
        match dialer {
            Some(src) => rule(src).get(dir),
            None => {
                // Unknown dialer: apply a rule only if all dialers share it.
                let mut modes = (0..self.nodes)
                    .filter(|&s| s != dst)
                    .map(|s| rule(s).get(dir));
                let first = modes.next().unwrap_or_default();
                if modes.all(|m| m == first) {
                    first
                } else {
                    Mode::Pass
                }
            }
        }
    }
}

struct ProxyHandle {
    listening: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The proxies of a cluster and their shared rules.
pub struct FaultNet {
    rules: watch::Sender<Rules>,
    proxies: Vec<ProxyHandle>,
    /// The gossip relays (UDP), one per node.
    relays: Vec<JoinHandle<()>>,
    unknown_dialers: Arc<AtomicU64>,
}

impl Drop for FaultNet {
    fn drop(&mut self) {
        for p in &self.proxies {
            p.task.abort();
        }
        for r in &self.relays {
            r.abort();
        }
    }
}

/// What a proxy task needs.
#[derive(Clone)]
struct Shared {
    rules: watch::Receiver<Rules>,
    pids: Pids,
    unknown_dialers: Arc<AtomicU64>,
}

impl FaultNet {
    /// Starts one proxy per `(listen, target)` route; route `i` fronts node
    /// `i`: TCP, and a gossip relay from UDP `listen` to UDP `target` (the
    /// node gossips on its peer address).
    ///
    /// # Errors
    /// A listen address cannot be bound (TCP or UDP).
    pub async fn start(routes: Vec<(SocketAddr, SocketAddr)>, pids: Pids) -> anyhow::Result<Self> {
        let (rules_tx, rules_rx) = watch::channel(Rules::for_nodes(routes.len()));
        let gossip_sources = std::sync::Arc::new(routes.iter().map(|r| r.1).collect::<Vec<_>>());
        let mut relays = Vec::new();
        for (dst, (listen, target)) in routes.iter().enumerate() {
            let socket = tokio::net::UdpSocket::bind(listen)
                .await
                .with_context(|| format!("cannot listen on UDP {listen}"))?;
            relays.push(tokio::spawn(super::gossip_relay::relay(
                socket,
                *target,
                dst,
                gossip_sources.clone(),
                rules_rx.clone(),
            )));
        }
        let shared = Shared {
            rules: rules_rx,
            pids,
            unknown_dialers: Arc::new(AtomicU64::new(0)),
        };
        let mut proxies = Vec::new();
        for (dst, (listen, target)) in routes.into_iter().enumerate() {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let (listening, listening_rx) = watch::channel(true);
            let task = tokio::spawn(accept_loop(
                listener,
                listen,
                target,
                dst,
                listening_rx,
                shared.clone(),
            ));
            proxies.push(ProxyHandle { listening, task });
        }
        Ok(FaultNet {
            rules: rules_tx,
            proxies,
            relays,
            unknown_dialers: shared.unknown_dialers,
        })
    }

    /// Cuts `node` off from every other node in both directions (gossip
    /// included).
    pub fn isolate(&self, node: usize, mode: Mode) {
        self.rules.send_modify(|r| r.isolate(node, mode));
    }

    /// Sets one link's rule (connections opened by `dialer` to `dst`).
    #[allow(dead_code)]
    pub fn set_link(&self, dialer: usize, dst: usize, rule: LinkRule) {
        self.rules.send_modify(|r| {
            r.links.insert((dialer, dst), rule);
        });
    }

    /// Lifts every rule.
    pub fn heal(&self) {
        self.rules.send_modify(Rules::clear);
    }

    /// Opens or closes proxy `node`'s listening socket.
    pub fn set_listening(&self, node: usize, on: bool) {
        if let Some(p) = self.proxies.get(node) {
            p.listening.send_replace(on);
        }
    }

    /// Connections whose dialer could not be identified so far.
    pub fn unknown_dialers(&self) -> u64 {
        self.unknown_dialers.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    listen: SocketAddr,
    target: SocketAddr,
    dst: usize,
    mut listening: watch::Receiver<bool>,
    shared: Shared,
) {
    loop {
        if !*listening.borrow_and_update() {
            drop(listener);
            // Wait to be reopened, then bind the same address again.
            loop {
                if listening.changed().await.is_err() {
                    return;
                }
                if *listening.borrow_and_update() {
                    break;
                }
            }
            listener = loop {
                match TcpListener::bind(listen).await {
                    Ok(l) => break l,
                    Err(e) => {
                        tracing::warn!(%listen, error = %e, "proxy cannot listen again; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((conn, from)) = accepted {
                    let shared = shared.clone();
                    let listening = listening.clone();
                    tokio::spawn(async move {
                        serve(conn, from, listen, target, dst, listening, shared).await;
                    });
                }
            }
            changed = listening.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn serve(
    conn: TcpStream,
    from: SocketAddr,
    listen: SocketAddr,
    target: SocketAddr,
    dst: usize,
    mut listening: watch::Receiver<bool>,
    shared: Shared,
) {
    let pids: Vec<Option<u32>> = shared
        .pids
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let dialer = dialer_of(from, listen, &pids);
    if dialer.is_none() {
        shared.unknown_dialers.fetch_add(1, Ordering::Relaxed);
    }
    if shared.rules.borrow().mode(dialer, dst, Direction::Request) == Mode::Refuse {
        return;
    }
    let upstream =
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            _ => return,
        };
    let _ = conn.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = conn.into_split();
    let (node_read, node_write) = upstream.into_split();
    let lost = AtomicBool::new(false);
    let link = Link {
        dialer,
        dst,
        lost: &lost,
    };
    tokio::select! {
        () = pump(client_read, node_write, &link, Direction::Request, shared.rules.clone()) => {}
        () = pump(node_read, client_write, &link, Direction::Reply, shared.rules.clone()) => {}
        () = closed(&mut listening) => {}
    }
}

/// Resolves when the proxy is told to stop listening.
async fn closed(listening: &mut watch::Receiver<bool>) {
    loop {
        if !*listening.borrow_and_update() {
            return;
        }
        if listening.changed().await.is_err() {
            return;
        }
    }
}

/// One proxied connection's identity and shared state.
struct Link<'a> {
    dialer: Option<usize>,
    dst: usize,
    /// Set once bytes were dropped: the connection must not resume.
    lost: &'a AtomicBool,
}

/// Copies bytes one way under the current rules; returns when the
/// connection must end.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: &Link<'_>,
    dir: Direction,
    mut rules: watch::Receiver<Rules>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mode_now = |rules: &mut watch::Receiver<Rules>| {
        rules.borrow_and_update().mode(link.dialer, link.dst, dir)
    };
    loop {
        match mode_now(&mut rules) {
            Mode::Refuse => return,
            Mode::BlackHole => {
                if rules.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Pass if link.lost.load(Ordering::Relaxed) => return,
            Mode::Pass | Mode::Drop => {}
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = rules.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        // The rules may have changed while reading; hold the bytes through
        // a black hole, then deliver or drop them by the rule in force.
        loop {
            match mode_now(&mut rules) {
                Mode::Refuse => return,
                Mode::BlackHole => {
                    if rules.changed().await.is_err() {
                        return;
                    }
                }
                Mode::Drop => {
                    link.lost.store(true, Ordering::Relaxed);
                    break;
                }
                Mode::Pass => {
                    if link.lost.load(Ordering::Relaxed) || to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Which node (index into `pids`) owns the socket that connected from
/// `from` to the proxy at `listen`. Linux only (`/proc`); `None` elsewhere
/// or when the socket is already gone.
pub fn dialer_of(from: SocketAddr, listen: SocketAddr, pids: &[Option<u32>]) -> Option<usize> {
    let inode = socket_inode(from, listen)?;
    let wanted = format!("socket:[{inode}]");
    pids.iter().enumerate().find_map(|(i, pid)| {
        let pid = (*pid)?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.as_os_str() == wanted.as_str())
            })
            .then_some(i)
    })
}

/// The inode of the IPv4 TCP socket with local address `local` and remote
/// address `remote`, from `/proc/net/tcp`.
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (l, r, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
        (parse_proc_addr(l)? == local && parse_proc_addr(r)? == remote)
            .then(|| inode.parse().ok())
            .flatten()
    })
}

/// `0100007F:1F90` (address in host byte order, port) → `127.0.0.1:8080`.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_parse() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_proc_addr("0100007F:1F90"),
                Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
            );
        }
        assert_eq!(parse_proc_addr("zz:1"), None);
    }

    #[test]
    fn unknown_dialers_follow_only_unanimous_rules() {
        let mut rules = Rules {
            nodes: 3,
            links: BTreeMap::new(),
        };
        let cut = LinkRule {
            request: Mode::Drop,
            reply: Mode::Drop,
        };
        rules.links.insert((0, 2), cut);
        assert_eq!(rules.mode(Some(0), 2, Direction::Request), Mode::Drop);
        assert_eq!(rules.mode(Some(1), 2, Direction::Request), Mode::Pass);
        assert_eq!(rules.mode(None, 2, Direction::Request), Mode::Pass);
        rules.links.insert((1, 2), cut);
        assert_eq!(rules.mode(None, 2, Direction::Reply), Mode::Drop);
    }

    #[tokio::test]
    async fn identifies_the_dialing_process_and_applies_rules() {
        // This test process dials through proxy 0; it plays node 1.
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let free: Vec<std::net::TcpListener> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let listens: Vec<SocketAddr> = free.iter().map(|l| l.local_addr().expect("addr")).collect();
        drop(free);
        let listen = listens[0];
        let pids: Pids = Arc::new(std::sync::RwLock::new(vec![None, Some(std::process::id())]));
        let net = FaultNet::start(vec![(listens[0], target), (listens[1], target)], pids)
            .await
            .expect("start");
        let mut s = TcpStream::connect(listen).await.expect("connect");
        s.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"ping");
        if std::path::Path::new("/proc/net/tcp").exists() {
            assert_eq!(net.unknown_dialers(), 0);
        }
        net.isolate(0, Mode::Refuse);
        // The open connection is closed and a new one is refused.
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("closed promptly");
        assert!(matches!(n, Ok(0) | Err(_)));
        let mut s2 = TcpStream::connect(listen).await.expect("connect");
        let _ = s2.write_all(b"x").await;
        let n = tokio::time::timeout(Duration::from_secs(2), s2.read(&mut buf))
            .await
            .expect("closed promptly");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
