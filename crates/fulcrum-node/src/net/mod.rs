//! Node-to-node traffic on `--peer-addr`: a versioned, length-framed
//! protocol ([`message`]), a client pool that multiplexes many requests
//! over one connection per peer ([`transport`]), and the listener that
//! answers them ([`server`]).

pub mod message;
pub mod server;
pub mod transport;

pub use message::{Member, MemberRecord, MemberState, PeerRequest, PeerResponse};
pub use transport::{CallError, PeerPool};
