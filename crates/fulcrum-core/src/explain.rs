//! The N/R/W table (being written).
