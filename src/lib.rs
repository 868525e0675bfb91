//! dockhand — an embeddable scripting runtime for fleets of docker-compose services.
//!
//! One host binary exposes Docker, health-check, InfluxDB and timing primitives to **Rhai**
//! scripts ("playbooks"). This crate is the library behind the `dockhand` binary: everything
//! the CLI does goes through [`Runtime`], so another Rust program can embed the same engine.
//!
//! * [`runtime`] — [`Runtime`] / [`RuntimeBuilder`]: build an engine, compile, run; one run
//!   lifecycle (begin → eval → finish) that the REPL, watch and validate share.
//! * [`host`] — the primitives scripts call (`time::`, `http::`, `fs::`, `state::`,
//!   `docker::`, `influx::`, `parallel`, `check`, `params`), one file per module; conversion
//!   to and from Rhai values only.
//! * [`docker`], [`influx`], [`requirements`], [`journal`], [`config`], [`lab`] — typed domain
//!   APIs under the host layer (no Rhai types in their interfaces).
//! * [`engine`] — limits, cancellation and output routing of the Rhai engine.
//! * [`memory`] — the counting allocator behind the per-run memory budget.
//! * [`resolver`] — `import "stdlib/x"` and relative imports.
//! * [`diagnostic`] — errors with `file:line:col`, the source line and a caret; the typed
//!   [`diagnostic::Fault`] that decides a runtime error's exit class.
//! * [`repl`], [`watch`], [`validate`], [`monitor`] — the front ends.
//! * [`util`] — leaf helpers (locks, human durations and sizes, text tables) any layer uses.
//! * [`cli`] — the command-line interface (thin `main.rs` calls [`cli::main`]).
//!
//! Dependencies run down that list's layers (`tests/layers.rs` checks it).

pub mod cancel;
pub mod cli;
pub mod config;
pub mod diagnostic;
pub mod docker;
pub mod docs;
pub mod engine;
pub mod error;
pub mod host;
pub mod influx;
pub mod journal;
pub mod lab;
pub mod memory;
pub mod monitor;
pub mod repl;
pub mod requirements;
pub mod resolver;
pub mod runtime;
pub mod secrets;
pub mod source;
pub mod startup;
pub mod timeline;
pub mod util;
pub mod validate;
pub mod watch;

pub use error::{Error, Result};

// The lib's own unit tests count allocations like the binary does, so the memory guard is
// live in them (the binary declares it in main.rs; embedders opt in the same way).
#[cfg(test)]
#[global_allocator]
static ALLOC: memory::CountingAlloc = memory::CountingAlloc;
pub use host::Mode;
/// The Rhai version dockhand is built on, for embedders (maps, arrays, `Dynamic`).
pub use rhai;
pub use runtime::{RunOutcome, Runtime, RuntimeBuilder, Script};
