//! An async (tokio) client for Fulcrum's RESP interface, also usable
//! against Redis. Used by tests, benchmarks and the checker.
//!
//! * [`Client::cmd`]: one command, one [`Frame`] back (error replies are
//!   frames, not `Err`).
//! * [`Client::pipeline`]: many commands in one write, replies in order.
//! * [`Client::send_raw`] / [`Client::read_frame`]: arbitrary bytes out,
//!   raw replies in, for protocol tests.
//! * [`Client::get`], [`Client::set`], [`Client::del`], [`Client::ping`]:
//!   typed results, error replies as [`ClientError::ServerError`].
//!
//! Each operation runs under the client's I/O timeout (default
//! [`DEFAULT_TIMEOUT`]); a timed-out connection stays usable.

mod client;
mod error;
mod typed;

pub use client::{Client, DEFAULT_TIMEOUT};
pub use error::ClientError;
pub use fulcrum_proto::{Frame, Protocol};
