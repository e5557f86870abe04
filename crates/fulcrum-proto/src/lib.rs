//! RESP, the Redis serialization protocol, as Fulcrum speaks it: request
//! decoding with size limits and resynchronization, and reply encoding for
//! RESP2 and RESP3.
//!
//! Pure: bytes in, frames out. The node crate owns the sockets.

mod frame;

pub use frame::{Frame, Protocol};
