//! RESP, the Redis serialization protocol, as Fulcrum speaks it: request
//! decoding with size limits and resynchronization, and reply encoding for
//! RESP2 and RESP3.
//!
//! Pure: bytes in, frames out. The node crate owns the sockets.
//!
//! * [`RequestDecoder`]: server side, client bytes → argument lists
//!   (multibulk and inline), enforcing [`Limits`].
//! * [`encode`]: server side, [`Frame`] → bytes in RESP2 or RESP3.
//! * [`ReplyDecoder`]: client side, bytes → [`Frame`].
//! * [`encode_request`] / [`encode_command`]: client side, arguments → a
//!   multibulk request.
//! * [`ProtoError`]: what can go wrong, fatal or recoverable.

mod double;
mod encode;
mod error;
mod frame;
mod inline;
mod reply;
mod request;
mod scan;

pub use encode::{encode, encode_command, encode_request};
pub use error::ProtoError;
pub use frame::{Frame, Protocol};
pub use fulcrum_core::limits::Limits;
pub use reply::{ReplyDecoder, MAX_REPLY_DEPTH};
pub use request::{Request, RequestDecoder, MAX_SKIPPABLE_BULK};
