//! fulcrum-check (being written)
