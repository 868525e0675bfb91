//! `dockhand watch PLAYBOOK [OPTIONS]`: the command line over [`crate::watch`].
//!
//! Options are parsed like `run`'s (the playbook's own options from its `params(...)`, plus
//! the run options), with `--every` and `--debounce` added. The playbook's options are parsed
//! again before every run against the playbook's *current* declaration, so a save that adds
//! or changes a parameter is picked up (and a bad value becomes that run's error, not the
//! end of the watch).
//!
//! Output: the playbook's own output as with `run`; after each run one history line on
//! stderr (run number, trigger, pass/fail with the exit code `run` would give, duration) and
//! a tally. With `--json`, one JSON object per run on stdout (JSON Lines) instead.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::Arg;

use super::GlobalOpts;
use super::run::playbook_command;
use crate::error::{Error, Result};
use crate::runtime::{ResultJson, RunOutcome, Script, error_text};
use crate::watch::{RunRecord, RunStatus, Watch, WatchEvent, WatchOptions};

/// `--every` / `--debounce` also accepted after the playbook name.
fn watch_args() -> [Arg; 2] {
    [
        Arg::new("every")
            .long("every")
            .value_name("DURATION")
            .help("Also run every DURATION (e.g. 5m); a save runs it at once")
            .help_heading("Watch options")
            .value_parser(super::parse_duration),
        Arg::new("debounce")
            .long("debounce")
            .value_name("DURATION")
            .help("Wait this long for a save's file events to settle [default: 30ms]")
            .help_heading("Watch options")
            .value_parser(super::parse_duration),
    ]
}

/// The playbook's command, renamed, with the watch options.
/// A playbook parameter named `every` or `debounce` keeps its flag (the watch option is then
/// only accepted before the playbook name).
fn command(script: &Script) -> clap::Command {
    let taken = |a: &Arg| {
        script
            .params
            .iter()
            .any(|p| Some(p.flag().as_str()) == a.get_long())
    };
    playbook_command(script)
        .name(format!("dockhand watch {}", script.name))
        .args(watch_args().into_iter().filter(|a| !taken(a)))
}

pub fn watch(
    global: &GlobalOpts,
    playbook: &Path,
    args: &[String],
    every: Option<Duration>,
    debounce: Option<Duration>,
) -> Result<i32> {
    let json = global.json || args.iter().any(|a| a == "--json");
    match watch_inner(global, playbook, args, (every, debounce)) {
        Ok(code) => Ok(code),
        Err(e) => Ok(super::report(&e, json)),
    }
}

/// `defaults`: the `--every` and `--debounce` given before the playbook name.
/// `--trace` and `--otlp` export the runs one `dockhand run` wrote; a watch runs the
/// playbook again and again, so it refuses them before anything runs rather than ignoring
/// them.
fn refuse_run_exports(matches: &clap::ArgMatches) -> Result<()> {
    if matches.get_one::<std::path::PathBuf>("trace").is_some() {
        return Err(Error::Usage(
            "--trace writes one run's trace: use it with `dockhand run`, not `watch`".into(),
        ));
    }
    if matches.get_one::<String>("otlp").is_some() {
        return Err(Error::Usage(
            "--otlp exports one run's spans: use it with `dockhand run`, not `watch`".into(),
        ));
    }
    Ok(())
}

fn watch_inner(
    global: &GlobalOpts,
    playbook: &Path,
    args: &[String],
    (every, debounce): (Option<Duration>, Option<Duration>),
) -> Result<i32> {
    let (name, declared) = super::run::declaration(playbook)?;
    // The run options come from this first parse. A playbook that does not compile yet is
    // still watched (its error is the first run's): its options are then unknown, so only
    // the run and watch options are read, and the rest waits for a good save.
    let parsed = match &declared {
        Ok(script) => command(script).try_get_matches_from(args),
        Err(_) => {
            let empty = Script {
                name: name.clone(),
                ast: Default::default(),
                params: Vec::new(),
                doc: String::new(),
            };
            command(&empty)
                .ignore_errors(true)
                .try_get_matches_from(args)
        }
    };
    let matches = match parsed {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() { 2 } else { 0 });
        }
    };
    refuse_run_exports(&matches)?;
    let opts = super::run::run_opts(global, &matches)?;
    let mut wopts = WatchOptions::new(playbook);
    wopts.every = matches
        .get_one::<Duration>("every")
        .copied()
        .or(every)
        .filter(|d| !d.is_zero());
    if let Some(d) = matches
        .get_one::<Duration>("debounce")
        .copied()
        .or(debounce)
    {
        wopts.debounce = d.max(Duration::from_millis(1));
    }
    let args_owned: Vec<String> = args.to_vec();
    wopts.values = Box::new(move |script: &Script| {
        let m = command(script)
            .try_get_matches_from(&args_owned)
            .map_err(|e| {
                let text = e.render().to_string();
                Error::Usage(text.trim().trim_start_matches("error: ").to_string())
            })?;
        super::run::values(script, &m)
    });

    // As `run`'s runtime, but Ctrl-C is the watch's own: it ends the watch, not only a run.
    let rt = opts.runtime_builder().build()?;
    let watch = Watch::new(&rt, wopts);
    let stop = watch.stopper();
    rt.host().handle.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.stop();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let root = rt.host().root.clone();
    let json = opts.json;
    let mut watching = 0usize;
    watch.run(|event| print_event(&root, json, &mut watching, event))?;
    eprintln!("[watch] stopped");
    Ok(130)
}

fn print_event(root: &Path, json: bool, watching: &mut usize, event: WatchEvent<'_>) {
    match event {
        WatchEvent::Started { run, trigger } => {
            eprintln!("[watch] run {run} started ({trigger})");
        }
        WatchEvent::Watching { files } => {
            *watching = files.len();
            let names: Vec<String> = files
                .iter()
                .map(|f| crate::host::fs::display_rel(root, f))
                .collect();
            eprintln!("[watch] watching {}", names.join(", "));
        }
        WatchEvent::Warning { message } => eprintln!("warning: {message}"),
        WatchEvent::Finished {
            record,
            result,
            history,
        } => {
            if json {
                print_json(record, result);
            } else {
                print_human(record, result, history, *watching);
            }
        }
    }
}

fn print_json(record: &RunRecord, result: &Result<RunOutcome>) {
    // The error is also rendered on stderr, for the person watching.
    if let Err(e) = result
        && record.status != RunStatus::Cancelled
    {
        let _ = write!(std::io::stderr(), "{}", error_text(e));
    }
    let line = serde_json::to_value(RunLine {
        record,
        result: ResultJson::of(result),
    })
    .unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
    let _ = out.flush();
}

/// One `--json` line: the run's history record and its result.
#[derive(serde::Serialize)]
struct RunLine<'a> {
    #[serde(flatten)]
    record: &'a RunRecord,
    #[serde(flatten)]
    result: ResultJson,
}

fn print_human(
    record: &RunRecord,
    result: &Result<RunOutcome>,
    history: &[RunRecord],
    watching: usize,
) {
    let mut err = String::new();
    match result {
        Ok(o) => {
            for c in o.failed_checks() {
                err.push_str(&format!("check failed: {}: {}\n", c.name, c.reason));
            }
        }
        Err(_) if record.status == RunStatus::Cancelled => {}
        Err(e) => err.push_str(&error_text(e)),
    }
    let status = match record.status {
        RunStatus::Pass => "pass",
        RunStatus::Fail => "FAIL",
        RunStatus::Error => "ERROR",
        RunStatus::Cancelled => "cancelled",
    };
    let count = |s: RunStatus| history.iter().filter(|r| r.status == s).count();
    err.push_str(&format!(
        "[watch] run {} ({}): {status} (exit {}) in {}\n",
        record.run,
        record.trigger,
        record.exit_code,
        crate::util::human::duration(Duration::from_millis(record.duration_ms)),
    ));
    err.push_str(&format!(
        "[watch] history: {} runs: {} pass, {} fail, {} error, {} cancelled; watching {watching} files (Ctrl-C to stop)\n",
        history.len(),
        count(RunStatus::Pass),
        count(RunStatus::Fail),
        count(RunStatus::Error),
        count(RunStatus::Cancelled),
    ));
    let _ = std::io::stderr().write_all(err.as_bytes());
}
