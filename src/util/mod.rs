//! Leaf helpers every layer may use: poison-tolerant locks, durations and sizes for humans,
//! plain-text tables.
//!
//! Nothing here names another module of the crate (`grep -n "crate::" src/util/*.rs` finds
//! nothing), so any module can depend on it without making a cycle.

pub mod human;
pub mod lock;
pub mod table;

pub use lock::lock;
