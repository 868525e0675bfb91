//! The `dockhand` command line. `main.rs` only calls [`main`]; each subcommand lives in its
//! own file and talks to the library through [`crate::Runtime`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::host::Mode;
use crate::runtime::{Runtime, RuntimeBuilder};

mod check;
mod docs;
mod lab;
pub mod logging;
mod monitor;
mod repl;
mod report;
mod run;
mod validate;
mod watch;

const EXAMPLES: &str = "\
Examples:
  dockhand run playbooks/hello.rhai                 run a playbook
  dockhand run playbooks/hello.rhai --help          list the playbook's own options
  dockhand run playbooks/hello.rhai --name ops --dry-run
  dockhand lab up --services 8                      build and start a lab fleet
  dockhand run playbooks/batch-rebuild.rhai --dry-run   the Phase 1 rebuild's plan
  dockhand run playbooks/batch-rebuild.rhai --continue  resume the last rebuild
  dockhand monitor                                  watch that rebuild live (--once for CI)
  dockhand validate --junit report.xml              validate the fleet (story 11)
  dockhand watch runbook.rhai --every 5m            re-run on save and every 5 minutes
  dockhand repl                                     try host functions interactively
  dockhand check playbooks/*.rhai                   compile without running
  dockhand docs > API.md                            reference of every host function
  dockhand completions bash > /etc/bash_completion.d/dockhand

Exit codes: 0 ok, 1 a check or step failed (or --timeout), 2 usage/script/config error,
130 interrupted (Ctrl-C).";

/// An embeddable scripting runtime for fleets of docker-compose services.
///
/// Playbooks are Rhai scripts that call host primitives (time, http, fs, state, parallel,
/// check, ...). Run `dockhand docs` for the full API.
#[derive(Debug, Parser)]
#[command(name = "dockhand", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts (also after the playbook name, for `run`).
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalOpts {
    /// Show what mutating primitives would do (a plan) without doing it; builds nothing.
    #[arg(long, global = true, conflicts_with = "read_only")]
    pub dry_run: bool,
    /// Refuse every mutating primitive (for team-authored validations).
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Print the result (checks, plan, errors) as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output (-q hides script prints, -qq shows only errors).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Workspace root: scripts may only touch files under it [default: current directory].
    #[arg(long, global = true, env = "DOCKHAND_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Stop the run after this long, e.g. 90s, 5m, 1h (exit code 1).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Allow primitives that run processes (docker exec, test commands).
    #[arg(long, global = true)]
    pub allow_exec: bool,
    /// Load `import "stdlib/x"` from this directory instead of the built-in copy.
    #[arg(long, global = true, env = "DOCKHAND_STDLIB", value_name = "DIR")]
    pub stdlib: Option<PathBuf>,
    /// Stop a script after this many operations (0 = no limit).
    #[arg(long, global = true, value_name = "N")]
    pub max_operations: Option<u64>,
    /// Stop a run whose scripts hold more than this much memory, e.g. 512MiB, 4GiB (0 = no
    /// limit) [default: 1GiB].
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<usize>,
}

impl GlobalOpts {
    /// The runtime these options describe, before the Ctrl-C choice: `run`, `check` and
    /// `docs` let the runtime handle Ctrl-C ([`GlobalOpts::runtime`]), while `repl` and
    /// `watch` handle it themselves (it stops an input or ends the watch, not only a run).
    pub fn runtime_builder(&self) -> RuntimeBuilder {
        Runtime::builder()
            .root(self.root.clone().unwrap_or_else(|| ".".into()))
            .mode(self.mode())
            .allow_exec(self.allow_exec)
            .timeout(self.timeout)
            .stdlib_dir(self.stdlib.clone())
            .limit_overrides(self.max_operations, self.max_memory)
    }

    /// The runtime these options describe, stopping the run on Ctrl-C.
    pub fn runtime(&self) -> crate::Result<Runtime> {
        self.runtime_builder().handle_ctrl_c(true).build()
    }

    pub fn mode(&self) -> Mode {
        if self.dry_run {
            Mode::DryRun
        } else if self.read_only {
            Mode::ReadOnly
        } else {
            Mode::Normal
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook. Options after the playbook name are the playbook's own (see
    /// `dockhand run PLAYBOOK --help`).
    #[command(disable_help_flag = true)]
    Run(PlaybookArgs),
    /// Compile playbooks without running them: syntax, parameter declarations, imports.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the Markdown reference of every host function (from the engine itself).
    Docs {
        /// Write Rhai language-server definition files (.d.rhai) into DIR instead.
        #[arg(long, value_name = "DIR")]
        definitions: Option<PathBuf>,
        /// Write the Markdown to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run a playbook, then again on every save of it, of a module it imports or of its
    /// config file (`--every 5m`: also periodically). Options as for `run`; Ctrl-C stops.
    #[command(disable_help_flag = true)]
    Watch {
        /// Also run every DURATION (e.g. 5m); a save runs it at once.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        every: Option<Duration>,
        /// Wait this long for a save's file events to settle [default: 30ms].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        debounce: Option<Duration>,
        #[command(flatten)]
        target: PlaybookArgs,
    },
    /// The HomeIQ lab fleet: build it from nothing, inspect it, take it down.
    Lab(lab::LabArgs),
    /// Live dashboard of a rebuild run: progress, services by status, categories, recent
    /// activity, containers (health, restarts, uptime, cpu, memory). `--once` for CI logs.
    Monitor(monitor::MonitorArgs),
    /// Interactive prompt: history, completion, `:help FN`, `:vars`, `:load FILE`.
    Repl(repl::ReplArgs),
    /// Reports on a rebuild run: `report timeline -o rebuild.svg` draws it as a picture.
    Report(report::ReportArgs),
    /// Run validation scripts (validations/ + the shipped validate-services): one table of
    /// every check, `--junit FILE`, `--json`; exit 1 if a check failed.
    Validate(validate::ValidateArgs),
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

/// What `run` and `watch` take: a playbook and the playbook's own options. Their `--help`
/// is the playbook's (its parameter declarations), so it is passed on, not handled by clap.
#[derive(Debug, Args)]
pub struct PlaybookArgs {
    /// Print help (of the playbook, when one is named).
    #[arg(short, long)]
    help: bool,
    /// The playbook file (.rhai).
    playbook: Option<PathBuf>,
    /// The playbook's options, e.g. --batch-size 8 or --config services.yaml.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "OPTIONS"
    )]
    args: Vec<String>,
}

impl PlaybookArgs {
    /// The playbook and its options (`--help` passed on to it), or, when no playbook is
    /// named, the exit code after printing the `subcommand`'s own help (0 if asked for).
    fn resolve(self, subcommand: &str) -> Result<(PathBuf, Vec<String>), i32> {
        let Some(playbook) = self.playbook else {
            let mut cmd = Cli::command();
            let _ = cmd.find_subcommand_mut(subcommand).map(|c| c.print_help());
            return Err(if self.help { 0 } else { 2 });
        };
        let mut args = self.args;
        if self.help {
            args.push("--help".into());
        }
        Ok((playbook, args))
    }
}

/// Writes an output file the user named (`--junit FILE`, `docs -o FILE`), with an error
/// that says what could not be *written*, and why (a missing directory is named).
pub fn write_output(path: &std::path::Path, bytes: &[u8], what: &str) -> crate::Result<()> {
    std::fs::write(path, bytes).map_err(|e| {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .filter(|p| !p.is_dir());
        let hint = match parent {
            Some(p) => format!(
                " (the directory {} does not exist; create it first)",
                p.display()
            ),
            None => String::new(),
        };
        crate::Error::Usage(format!(
            "cannot write {what} to {}: {e}{hint}",
            path.display()
        ))
    })
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::host::time::parse_duration(s)
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    crate::memory::parse_size(s)
}

/// What `dockhand --version` prints: clap's own text (a test keeps them the same).
fn version_text() -> String {
    format!("dockhand {}\n", env!("CARGO_PKG_VERSION"))
}

/// Whether the command line is `--version` or `-V` alone. Scripts and CI ask it to check
/// an install; answering before clap builds the parser of every subcommand takes the
/// answer from 1.28 M to about 0.7 M instructions, most of what is left being exec and the
/// dynamic loader.
fn version_only() -> bool {
    let mut args = std::env::args_os().skip(1);
    matches!((args.next(), args.next()), (Some(a), None) if a == "--version" || a == "-V")
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    if version_only() {
        // Like clap: a closed stdout is not an error worth a message.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), version_text().as_bytes());
        return 0;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    crate::startup::mark("cli-parsed");
    let mut log_opts = cli.global.clone();
    if let Command::Run(target) | Command::Watch { target, .. } = &cli.command {
        run::logging_overrides(&mut log_opts, &target.args);
    }
    logging::init(&log_opts);
    crate::startup::mark("logging-ready");
    let result = match cli.command {
        Command::Run(target) => match target.resolve("run") {
            Ok((p, args)) => run::run(&cli.global, &p, &args),
            Err(code) => Ok(code),
        },
        Command::Watch {
            every,
            debounce,
            target,
        } => match target.resolve("watch") {
            Ok((p, args)) => watch::watch(&cli.global, &p, &args, every, debounce),
            Err(code) => Ok(code),
        },
        Command::Check { files } => check::check(&cli.global, &files),
        Command::Docs {
            definitions,
            output,
        } => docs::docs(&cli.global, definitions, output),
        Command::Lab(args) => lab::lab(&cli.global, args),
        Command::Monitor(args) => monitor::monitor(&cli.global, args),
        Command::Repl(args) => repl::repl(&cli.global, args),
        Command::Report(args) => report::report(&cli.global, args),
        Command::Validate(args) => validate::validate(&cli.global, args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "dockhand", &mut std::io::stdout());
            Ok(0)
        }
    };
    // ssh tunnels to engines (`DOCKER_HOST=ssh://`, `engines:`) end with the command.
    crate::docker::ssh::close_all();
    match result {
        Ok(code) => code,
        Err(e) => report(&e, cli.global.json),
    }
}

/// Prints an error (stderr; JSON on stdout with `--json`) and returns its exit code.
pub fn report(e: &Error, json: bool) -> i32 {
    let code = e.exit_code();
    eprint!("{}", crate::runtime::error_text(e));
    if json {
        let v = serde_json::json!({
            "status": if code == 130 { "interrupted" } else { "error" },
            "exit_code": code,
            "error": crate::runtime::error_json(e),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    code
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The `--version` fast path prints exactly what clap would.
    #[test]
    fn version_text_is_clap_s() {
        let clap_text = super::Cli::command().render_version().to_string();
        assert_eq!(super::version_text(), clap_text);
    }
}
