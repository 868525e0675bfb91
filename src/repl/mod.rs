//! The interactive REPL: `dockhand repl`, and the prompt `run --repl-on-failure` opens.
//!
//! [`Session`] is the engine-facing half and has no terminal in it, so an embedder (or a
//! test) can feed it lines: it keeps one Rhai [`rhai::Scope`] across inputs, accumulates
//! the functions each input defines (so `fn f() {..}` on one line is callable on the next)
//! and replays the input's top-level `import "x" as m;` statements before every later
//! input — Rhai forgets imports at the end of each evaluation, and strict-variables mode
//! would refuse `m::f()` at compile time if the import were not in the compiled text. Each
//! input is evaluated through the runtime's one lifecycle ([`crate::runtime::lifecycle`]),
//! so a panic or a stop ends an input exactly as it would end a `dockhand run`.
//!
//! [`interactive`] wraps a session in rustyline: history in the user's data dir, completion
//! of host modules, functions and scope variables from the engine's own metadata, multi-line
//! input detected by compiling (an input that ends too early continues at a `...` prompt;
//! see [`is_incomplete`]), and the `:` commands. Errors are rendered with the project's
//! diagnostic renderer and never end the session. Ctrl-C while an input runs cancels *that
//! input* (its own cancellation, installed as the thread's current one, so blocked host
//! calls such as `time::sleep` return at once); at the prompt it clears the line; Ctrl-D
//! leaves.
//!
//! Files: [`session`] (the engine half), [`interactive`](mod@interactive) (the terminal
//! loop), [`commands`] (the `:` commands), [`on_failure`] (`run --repl-on-failure`),
//! [`complete`] (Tab completion), [`multiline`] (when an input continues), [`render`] (how
//! values are shown), [`help`] (`:help` and `:docs`).

pub mod commands;
pub mod complete;
pub mod help;
pub mod interactive;
pub mod multiline;
pub mod on_failure;
pub mod render;
pub mod session;

pub use commands::End;
pub use complete::{Names, complete};
pub use help::help_for;
pub use interactive::{Options, default_history_path, interactive, spawn_ctrl_c_listener};
pub use multiline::is_incomplete;
pub use on_failure::run_with_repl_on_failure;
pub use render::{render, short};
pub use session::{Session, imports_of};
