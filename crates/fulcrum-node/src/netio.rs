//! The node's seam to the network, and under the `sim` feature to time and
//! durability as well.
//!
//! Default build: exactly `tokio::net`'s sockets; nothing else changes.
//!
//! `sim` build (used only by `crates/fulcrum-sim`): the node runs as a host
//! inside a turmoil simulation, single-threaded on simulated time, and must
//! behave identically for identical seeds. So:
//! - sockets are `turmoil::net`'s (simulated TCP with latency, holds,
//!   partitions, crashes);
//! - [`HashMap`] has a fixed hasher, so iterating one (the peer pool fails
//!   its in-flight calls in map order) wakes tasks in the same order on
//!   every run;
//! - [`sim_wall_ms`] is the simulation's clock (its fixed epoch plus
//!   simulated time), which `db::wall_ms` uses for HLC timestamps;
//! - [`sim_durable`] replaces the group-commit thread's wait (an OS thread
//!   that finishes in real time would wake tasks at a nondeterministic
//!   simulated instant): under `fsync always` it waits a simulated fsync
//!   latency, then syncs the storage inline. Everything written before the
//!   call is durable when it returns, as `GroupCommit::durable` promises,
//!   and writes stay visible-but-unsynced for that window, so a crash can
//!   still lose them. Other policies return at once, as they do for real.

#[cfg(not(feature = "sim"))]
pub use tokio::net::{TcpListener, TcpStream};
#[cfg(feature = "sim")]
pub use turmoil::net::{TcpListener, TcpStream};

/// The maps whose iteration order can reach the network.
#[cfg(not(feature = "sim"))]
pub type HashMap<K, V> = std::collections::HashMap<K, V>;
/// The maps whose iteration order can reach the network (fixed hasher, so
/// the same inserts iterate in the same order on every run).
#[cfg(feature = "sim")]
pub type HashMap<K, V> = std::collections::HashMap<
    K,
    V,
    std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
>;

/// The listener as `axum::serve` takes it.
#[cfg(not(feature = "sim"))]
pub fn http_listener(listener: TcpListener) -> TcpListener {
    listener
}

/// The listener as `axum::serve` takes it.
#[cfg(feature = "sim")]
pub fn http_listener(listener: TcpListener) -> SimHttpListener {
    SimHttpListener(listener)
}

/// A turmoil listener that `axum::serve` accepts.
#[cfg(feature = "sim")]
pub struct SimHttpListener(TcpListener);

#[cfg(feature = "sim")]
impl axum::serve::Listener for SimHttpListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Simulated fsync latency under `fsync always`.
#[cfg(feature = "sim")]
pub const SIM_FSYNC_LATENCY: std::time::Duration = std::time::Duration::from_millis(2);

/// Wall time in the simulation: its fixed epoch plus simulated time (`None`
/// outside a simulated host, e.g. on a blocking-pool thread).
#[cfg(feature = "sim")]
pub fn sim_wall_ms() -> Option<u64> {
    turmoil::since_epoch().map(|d| d.as_millis() as u64)
}

/// `Db::durable` in the simulation (see the module docs).
///
/// # Errors
/// The storage is closed (crashed) or its sync failed.
#[cfg(feature = "sim")]
pub async fn sim_durable(
    storage: &dyn fulcrum_storage::Storage,
    policy: fulcrum_storage::FsyncPolicy,
) -> Result<(), fulcrum_storage::StorageError> {
    if policy != fulcrum_storage::FsyncPolicy::Always {
        return Ok(());
    }
    tokio::time::sleep(SIM_FSYNC_LATENCY).await;
    storage.sync()
}
