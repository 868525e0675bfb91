//! dockhand — an embeddable scripting runtime for fleets of docker-compose services.
//!
//! One host binary exposes Docker, health-check, InfluxDB and timing primitives to **Rhai**
//! scripts ("playbooks"). This crate is the library behind the `dockhand` binary: everything
//! the CLI does goes through [`Runtime`], so another Rust program can embed the same engine.
//!
//! * [`runtime`] — [`Runtime`] / [`RuntimeBuilder`]: build an engine, compile, run.
//! * [`host`] — the primitives scripts call (`time::`, `http::`, `fs::`, `state::`,
//!   `parallel`, `check`, `params`), one file per module.
//! * [`engine`] — limits, cancellation and output routing of the Rhai engine.
//! * [`memory`] — the counting allocator behind the per-run memory budget.
//! * [`resolver`] — `import "stdlib/x"` and relative imports.
//! * [`diagnostic`] — errors with `file:line:col`, the source line and a caret.
//! * [`watch`] — re-run a playbook when it, a module it imports or its config is saved.
//! * [`monitor`] — the rebuild dashboard (journal, model, text and TUI views, Docker feed).
//! * [`util`] — leaf helpers (locks, human durations and sizes, text tables) any layer uses.
//! * [`cli`] — the command-line interface (thin `main.rs` calls [`cli::main`]).

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
