//! A rebuild run as a timeline: one row per service, a bar per phase on the run's shared
//! time axis, the outcome of each service and the run's critical path — drawn as a
//! self-contained SVG ([`svg`]), a compact text chart for the monitor ([`text`]) and a
//! Chrome / Perfetto trace ([`trace`]) — and sent as OpenTelemetry spans ([`otlp`]).
//!
//! A 40-service rebuild leaves a 40-row table and a journal; what an operator wants at a
//! glance is which services took long, where builds queued, which gate failed when and what
//! ran in parallel. The journal already holds all of it: each service record has its
//! `started_at`, `finished_at` and a `phase_ms` map (build queue, build, deploy queue,
//! recreate or start-next, health, probe, settle, promote) written by `stdlib/rebuild` in the
//! order the phases run. [`Timeline::from_journal`] lays those durations end to end from the
//! service's start; what the map does not cover up to the service's end is the failed gate
//! and the rollback (or, for a service still in flight, its current phase).
//!
//! The critical path ([`critical`]) follows the run's last service back through what it
//! waited for: a build-queue wait ends when another service's build frees the slot, a
//! deploy-queue wait when another service's deploy ends.
//!
//! Pure data plus the journal file reader ([`source`]): no Rhai, no Docker, no terminal.
//! Service names and reasons come from files anyone may edit, so every renderer treats them
//! as hostile text.

pub mod critical;
pub mod model;
pub mod otlp;
pub mod source;
pub mod svg;
pub mod text;
pub mod trace;

pub use model::{Outcome, Row, Segment, Step, Timeline};
pub use otlp::OtlpOnExit;
pub use source::{TraceOnExit, load, runs_since, write_trace_since};

/// What can stop a timeline from being drawn.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("journal {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path}: not valid JSON (line {line}, column {column})")]
    Json {
        path: std::path::PathBuf,
        line: usize,
        column: usize,
    },
    #[error("journal {0}: no \"records\" object (is this a dockhand journal?)")]
    NotJournal(std::path::PathBuf),
    #[error("OTLP export to {endpoint} failed: {reason}")]
    Export { endpoint: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests;
