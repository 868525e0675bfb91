//! The fleet configuration: the seeds' `phase1-service-config.yaml`, as `services.yaml`.
//!
//! A typo in a config key is the kind of mistake that silently changes a production run
//! (`max_failure: 0` would leave the default in force), so the loader is strict: every
//! struct denies unknown fields, enumerations are closed, and every error names the key and
//! the line it is on. Cross-references (a service's `category`, an infrastructure `writer`)
//! are checked after parsing, and their errors point at the offending line too.
//!
//! The loaded config is *resolved* for scripts: every service carries its effective
//! settings (service over category over `defaults`), so a playbook reads
//! `svc.latency_budget_ms` instead of re-implementing the precedence.
//!
//! Where things are: [`model`] holds the file's shape (every struct and closed enumeration),
//! [`parse`] reads and checks it (strict keys, duplicate keys, nulls, cross-references,
//! ranges, each error with its line), [`resolve`] applies the precedence, `engines.rs` checks
//! the named Docker engines and who runs on them, `swarm.rs` the `orchestrator`, `registry`
//! and `swarm` keys.

mod engines;
pub mod model;
pub mod parse;
pub mod resolve;
mod swarm;
#[cfg(test)]
mod tests;

pub use model::*;
pub use parse::{duplicate_key, key_line};

/// A config problem, with where it is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem has no single line (an unreadable file).
    pub line: usize,
    pub message: String,
}
