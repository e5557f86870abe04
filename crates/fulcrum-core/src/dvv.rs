//! Dotted version vectors (being written).
