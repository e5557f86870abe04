//! fulcrum-client (being written)
