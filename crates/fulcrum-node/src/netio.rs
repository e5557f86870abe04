//! The node's seam to the network, and under the `sim` feature to time and
//! durability as well.
//!
//! Default build: exactly `tokio::net`'s sockets and std's `HashMap`;
//! nothing else changes.
//!
//! `sim` build (asked for by `crates/fulcrum-sim`): the node can run as a
//! host inside a turmoil simulation, single-threaded on simulated time, and
//! must then behave identically for identical seeds. Cargo unifies features
//! across a workspace build, so `cargo test --workspace` compiles this crate
//! with `sim` for every test; therefore every seam below decides at run
//! time — inside a simulation (`turmoil::in_simulation()`) it uses the
//! simulated thing, anywhere else exactly the tokio/std behaviour:
//! - [`TcpListener`] / [`TcpStream`]: turmoil's simulated TCP (latency,
//!   holds, partitions, crashes) or tokio's;
//! - [`HashMap`] has a fixed hasher, so iterating one (the peer pool fails
//!   its in-flight calls in map order) wakes tasks in the same order on
//!   every run (the maps hold internal ids and peer addresses only);
//! - [`sim_wall_ms`]: the simulation's clock (its fixed epoch plus
//!   simulated time), which `db::wall_ms` uses for HLC timestamps;
//! - [`db_committer`]: the local database's group commit, inline on
//!   simulated time inside a simulation (`GroupCommit::inline_with`): an OS
//!   thread or the blocking pool finishes in real time and would wake the
//!   waiter at a nondeterministic simulated instant. Under `fsync always`
//!   each wait sleeps a simulated fsync latency ([`SIM_FSYNC_LATENCY`]),
//!   then commits the staged writes and syncs the storage inline, so
//!   everything written before the call is durable when it returns (what
//!   `GroupCommit::durable` promises), and writes stay unsynced for that
//!   window, where a crash can still lose them. Other policies return at
//!   once, as they do for real;
//! - [`in_simulation`] lets the TTL sweeper run inline instead of on the
//!   blocking pool (whose threads finish in real time);
//! - [`raft_committer`]: the Raft groups' durability, for the same reason
//!   as [`db_committer`], through `GroupCommit::inline` (the same simulated
//!   fsync latency, then an inline sync); [`raft_clock`]: Raft proposals
//!   stamped with the simulated clock. Together with `NodeConfig::raft_seed`
//!   (openraft's election timeouts drawn from a seed) they make strong
//!   keyspaces repeat in a simulation.

#[cfg(not(feature = "sim"))]
pub use tokio::net::{TcpListener, TcpStream};

/// The maps whose iteration order can reach the network.
#[cfg(not(feature = "sim"))]
pub type HashMap<K, V> = std::collections::HashMap<K, V>;

/// The listener as `axum::serve` takes it.
#[cfg(not(feature = "sim"))]
pub fn http_listener(listener: TcpListener) -> TcpListener {
    listener
}

/// Whether this code runs on a simulated host (never without `sim`).
#[cfg(not(feature = "sim"))]
pub fn in_simulation() -> bool {
    false
}

#[cfg(feature = "sim")]
pub use sim::*;

/// The Raft groups' group commit: its own fsync thread (policy `always`);
/// inside a simulation, inline on simulated time (see the module docs).
///
/// # Errors
/// The fsync thread cannot start.
pub fn raft_committer(
    storage: std::sync::Arc<dyn fulcrum_storage::Storage>,
) -> Result<std::sync::Arc<fulcrum_storage::GroupCommit>, fulcrum_storage::StorageError> {
    use fulcrum_storage::{FsyncPolicy, GroupCommit};
    #[cfg(feature = "sim")]
    if turmoil::in_simulation() {
        return Ok(std::sync::Arc::new(GroupCommit::inline(
            storage,
            FsyncPolicy::Always,
            SIM_FSYNC_LATENCY,
        )));
    }
    Ok(std::sync::Arc::new(GroupCommit::new(
        storage,
        FsyncPolicy::Always,
    )?))
}

/// The local database's group commit: leader mode, whose syncs first run
/// `before_sync` (under `always`); inside a simulation, inline on
/// simulated time with the same `before_sync` (see the module docs).
///
/// # Errors
/// As `GroupCommit::leader_with`.
pub fn db_committer(
    storage: std::sync::Arc<dyn fulcrum_storage::Storage>,
    fsync: fulcrum_storage::FsyncPolicy,
    before_sync: fulcrum_storage::BeforeSync,
) -> Result<fulcrum_storage::GroupCommit, fulcrum_storage::StorageError> {
    use fulcrum_storage::GroupCommit;
    #[cfg(feature = "sim")]
    if turmoil::in_simulation() {
        return Ok(GroupCommit::inline_with(
            storage,
            fsync,
            SIM_FSYNC_LATENCY,
            Some(before_sync),
        ));
    }
    GroupCommit::leader_with(storage, fsync, Some(before_sync))
}

/// The clock that stamps Raft proposals: the system clock; inside a
/// simulation, the simulated one ([`sim_wall_ms`]).
pub fn raft_clock() -> std::sync::Arc<dyn fulcrum_raft::Clock> {
    #[cfg(feature = "sim")]
    if turmoil::in_simulation() {
        return std::sync::Arc::new(sim::SimClock);
    }
    std::sync::Arc::new(fulcrum_raft::SystemClock)
}

#[cfg(feature = "sim")]
mod sim {
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// The maps whose iteration order can reach the network (fixed hasher,
    /// so the same inserts iterate in the same order on every run).
    pub type HashMap<K, V> = std::collections::HashMap<
        K,
        V,
        std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    >;

    /// Simulated fsync latency under `fsync always`.
    pub const SIM_FSYNC_LATENCY: Duration = Duration::from_millis(2);

    /// A TCP listener: turmoil's inside a simulation, tokio's elsewhere.
    pub enum TcpListener {
        Tokio(tokio::net::TcpListener),
        Sim(turmoil::net::TcpListener),
    }

    impl From<tokio::net::TcpListener> for TcpListener {
        fn from(l: tokio::net::TcpListener) -> Self {
            TcpListener::Tokio(l)
        }
    }

    impl TcpListener {
        /// Binds `addr`.
        ///
        /// # Errors
        /// As the underlying `bind`.
        pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
            if turmoil::in_simulation() {
                Ok(TcpListener::Sim(
                    turmoil::net::TcpListener::bind(addr).await?,
                ))
            } else {
                Ok(TcpListener::Tokio(
                    tokio::net::TcpListener::bind(addr).await?,
                ))
            }
        }

        /// Accepts one connection.
        ///
        /// # Errors
        /// As the underlying `accept`.
        pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
            match self {
                TcpListener::Tokio(l) => l.accept().await.map(|(s, a)| (TcpStream::Tokio(s), a)),
                TcpListener::Sim(l) => l.accept().await.map(|(s, a)| (TcpStream::Sim(s), a)),
            }
        }

        /// The bound address.
        ///
        /// # Errors
        /// As the underlying `local_addr`.
        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            match self {
                TcpListener::Tokio(l) => l.local_addr(),
                TcpListener::Sim(l) => l.local_addr(),
            }
        }

        /// The OS listener, to move it to another runtime.
        ///
        /// # Errors
        /// As tokio's `into_std`; a simulated listener has no OS socket.
        pub fn into_std(self) -> io::Result<std::net::TcpListener> {
            match self {
                TcpListener::Tokio(l) => l.into_std(),
                TcpListener::Sim(_) => {
                    Err(io::Error::other("a simulated listener has no OS socket"))
                }
            }
        }

        /// A listener on the current runtime from an OS listener in
        /// non-blocking mode.
        ///
        /// # Errors
        /// As tokio's `from_std`.
        pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
            tokio::net::TcpListener::from_std(l).map(TcpListener::Tokio)
        }
    }

    /// A TCP stream: turmoil's inside a simulation, tokio's elsewhere.
    pub enum TcpStream {
        Tokio(tokio::net::TcpStream),
        Sim(turmoil::net::TcpStream),
    }

    impl TcpStream {
        /// Connects to `addr` (`host:port`).
        ///
        /// # Errors
        /// As the underlying `connect`.
        pub async fn connect(addr: &str) -> io::Result<TcpStream> {
            if turmoil::in_simulation() {
                Ok(TcpStream::Sim(
                    turmoil::net::TcpStream::connect(addr).await?,
                ))
            } else {
                Ok(TcpStream::Tokio(
                    tokio::net::TcpStream::connect(addr).await?,
                ))
            }
        }

        /// Sets `TCP_NODELAY` (a no-op in the simulation).
        ///
        /// # Errors
        /// As the underlying `set_nodelay`.
        pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
            match self {
                TcpStream::Tokio(s) => s.set_nodelay(nodelay),
                TcpStream::Sim(s) => s.set_nodelay(nodelay),
            }
        }

        /// The local address.
        ///
        /// # Errors
        /// As the underlying `local_addr`.
        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            match self {
                TcpStream::Tokio(s) => s.local_addr(),
                TcpStream::Sim(s) => s.local_addr(),
            }
        }

        /// The remote address.
        ///
        /// # Errors
        /// As the underlying `peer_addr`.
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            match self {
                TcpStream::Tokio(s) => s.peer_addr(),
                TcpStream::Sim(s) => s.peer_addr(),
            }
        }
    }

    impl AsyncRead for TcpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.get_mut() {
                TcpStream::Tokio(s) => Pin::new(s).poll_read(cx, buf),
                TcpStream::Sim(s) => Pin::new(s).poll_read(cx, buf),
            }
        }
    }

    impl AsyncWrite for TcpStream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            match self.get_mut() {
                TcpStream::Tokio(s) => Pin::new(s).poll_write(cx, buf),
                TcpStream::Sim(s) => Pin::new(s).poll_write(cx, buf),
            }
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                TcpStream::Tokio(s) => Pin::new(s).poll_flush(cx),
                TcpStream::Sim(s) => Pin::new(s).poll_flush(cx),
            }
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                TcpStream::Tokio(s) => Pin::new(s).poll_shutdown(cx),
                TcpStream::Sim(s) => Pin::new(s).poll_shutdown(cx),
            }
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            match self.get_mut() {
                TcpStream::Tokio(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                TcpStream::Sim(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            }
        }

        fn is_write_vectored(&self) -> bool {
            match self {
                TcpStream::Tokio(s) => s.is_write_vectored(),
                TcpStream::Sim(s) => s.is_write_vectored(),
            }
        }
    }

    /// The listener as `axum::serve` takes it.
    pub fn http_listener(listener: TcpListener) -> TcpListener {
        listener
    }

    impl axum::serve::Listener for TcpListener {
        type Io = TcpStream;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                match TcpListener::accept(self).await {
                    Ok(accepted) => return accepted,
                    // As axum does for tokio's listener: back off, go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }

        fn local_addr(&self) -> io::Result<Self::Addr> {
            TcpListener::local_addr(self)
        }
    }

    /// Whether this code runs on a simulated host.
    pub fn in_simulation() -> bool {
        turmoil::in_simulation()
    }

    /// Wall time in a simulation: its fixed epoch plus simulated time
    /// (`None` outside a simulated host, e.g. on a blocking-pool thread or
    /// in any ordinary process).
    pub fn sim_wall_ms() -> Option<u64> {
        turmoil::since_epoch().map(|d| d.as_millis() as u64)
    }

    /// Raft's clock on a simulated host: [`sim_wall_ms`].
    pub struct SimClock;

    impl fulcrum_raft::Clock for SimClock {
        fn now_ms(&self) -> u64 {
            // Off a simulated host (never in practice): the system clock.
            sim_wall_ms().unwrap_or_else(|| fulcrum_raft::SystemClock.now_ms())
        }
    }
}
