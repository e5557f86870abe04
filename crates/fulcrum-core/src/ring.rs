//! Consistent hashing with virtual nodes (being written).
