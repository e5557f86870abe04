//! Test helpers (feature `testkit`, and this crate's own tests): an
//! in-memory [`RaftTransport`] connecting several [`Groups`] in one
//! process, with partitions and stopped nodes, and a [`ManualClock`].
//!
//! Not for production: delivery is a function call on a spawned task, and
//! every request and reply is checked against the current partitions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::config::Clock;
use crate::groups::Groups;
use crate::network::{RaftTransport, TransportError};
use crate::types::{GroupId, PeerNode};

/// What a node does with an RPC that reaches it: [`Groups::handle_rpc`].
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one RPC and returns the reply bytes.
    fn handle(&self, group: GroupId, rpc: Bytes) -> BoxFuture<'static, Bytes>;
}

impl<T: RaftTransport> RpcHandler for Groups<T> {
    fn handle(&self, group: GroupId, rpc: Bytes) -> BoxFuture<'static, Bytes> {
        let groups = self.clone();
        Box::pin(async move { groups.handle_rpc(&group, &rpc).await })
    }
}

#[derive(Default)]
struct NetState {
    /// Address → the node listening there.
    nodes: HashMap<String, Arc<dyn RpcHandler>>,
    /// Addresses cut off from everyone.
    isolated: HashSet<String>,
}

/// An in-memory network of nodes, addressed by their peer address.
#[derive(Default)]
pub struct MemNetwork {
    state: Mutex<NetState>,
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Arc<MemNetwork> {
        Arc::new(MemNetwork::default())
    }

    /// The transport a node at `addr` sends with.
    pub fn transport(self: &Arc<Self>, addr: &str) -> Arc<MemTransport> {
        Arc::new(MemTransport {
            net: self.clone(),
            from: addr.to_string(),
        })
    }

    /// Makes `handler` reachable at `addr` (replacing any earlier one).
    pub fn register(&self, addr: &str, handler: Arc<dyn RpcHandler>) {
        self.state.lock().nodes.insert(addr.to_string(), handler);
    }

    /// Makes `addr` unreachable, as a stopped node is.
    pub fn unregister(&self, addr: &str) {
        self.state.lock().nodes.remove(addr);
    }

    /// Drops every message to or from `addr` until [`MemNetwork::heal`].
    pub fn isolate(&self, addr: &str) {
        self.state.lock().isolated.insert(addr.to_string());
    }

    /// Undoes [`MemNetwork::isolate`].
    pub fn heal(&self, addr: &str) {
        self.state.lock().isolated.remove(addr);
    }

    fn route(&self, from: &str, to: &str) -> Result<Arc<dyn RpcHandler>, TransportError> {
        let state = self.state.lock();
        let unreachable = |message: &str| TransportError::Unreachable {
            peer: to.to_string(),
            message: message.to_string(),
        };
        if state.isolated.contains(from) || state.isolated.contains(to) {
            return Err(unreachable("partitioned"));
        }
        state
            .nodes
            .get(to)
            .cloned()
            .ok_or_else(|| unreachable("not running"))
    }
}

/// One node's sender on a [`MemNetwork`].
pub struct MemTransport {
    net: Arc<MemNetwork>,
    from: String,
}

impl RaftTransport for MemTransport {
    async fn send(
        &self,
        target: &PeerNode,
        group: &GroupId,
        rpc: Bytes,
    ) -> Result<Bytes, TransportError> {
        let handler = self.net.route(&self.from, &target.addr)?;
        // The receiver runs on its own task, like a remote node: the
        // sender giving up does not cancel it.
        let handled = tokio::spawn(handler.handle(group.clone(), rpc));
        let reply = handled.await.map_err(|e| TransportError::Failed {
            peer: target.addr.clone(),
            message: e.to_string(),
        })?;
        // A partition that began meanwhile loses the reply.
        self.net.route(&self.from, &target.addr)?;
        Ok(reply)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicU64::new(now_ms),
        })
    }

    /// Sets the time.
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
