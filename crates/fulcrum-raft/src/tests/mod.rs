//! In-process tests: openraft's storage suite on both engines, durability
//! of votes and log appends, the RPC entry point, and 3-node clusters over
//! [`crate::testkit::MemNetwork`].

mod cluster;
mod durability;
mod harness;
mod suite;
