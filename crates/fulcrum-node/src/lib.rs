//! fulcrum-node (being written)
