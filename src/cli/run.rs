//! `dockhand run PLAYBOOK [OPTIONS]`.
//!
//! The playbook's options are not known to clap's derive structs: they come from the
//! playbook's `params(...)` declaration. So `run` compiles the script first (nothing runs),
//! builds a clap `Command` from the declaration — one flag per parameter, plus dockhand's own
//! run options so `--dry-run` works after the playbook name too — and parses the rest of the
//! command line with it. That gives `--help`, "did you mean" suggestions and type errors for
//! free, all before the first line of the script executes.

use std::io::Write;
use std::path::Path;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rhai::Map;

use super::GlobalOpts;
use crate::diagnostic::SourceMap;
use crate::engine::{self, Limits};
use crate::error::{Error, Result};
use crate::host::params::{Kind, Param};
use crate::runtime::{RunJson, RunOutcome, Script, compile_source};
use crate::util::table;

/// The clap command for one playbook.
pub fn playbook_command(script: &Script) -> Command {
    let mut doc_lines = script.doc.lines().map(|l| l.trim());
    let about = doc_lines.next().unwrap_or("").to_string();
    let mut cmd = Command::new(format!("dockhand run {}", script.name))
        .no_binary_name(true)
        .about(about)
        .max_term_width(100)
        .disable_version_flag(true)
        .after_help("Run options may also be given before `run`; see `dockhand --help`.");
    if script.doc.trim().lines().count() > 1 {
        cmd = cmd.long_about(script.doc.trim().to_string());
    }
    for p in &script.params {
        cmd = cmd.arg(param_arg(p));
    }
    cmd.args(run_option_args())
}

fn param_arg(p: &Param) -> Arg {
    let param = p.clone();
    let mut help = p.help.clone();
    if p.kind == Kind::Duration {
        help.push_str(if help.is_empty() {
            "(duration: 30s, 5m, 1h)"
        } else {
            " (duration: 30s, 5m, 1h)"
        });
    }
    if p.kind == Kind::List {
        help.push_str(if help.is_empty() {
            "(comma-separated, or repeat the option)"
        } else {
            " (comma-separated, or repeat the option)"
        });
    }
    let mut arg = Arg::new(p.name.clone())
        .long(p.flag())
        .help(help)
        .help_heading("Playbook options")
        .required(p.required)
        .value_parser(move |s: &str| param.convert(s).map(|_| s.to_string()));
    arg = match p.kind {
        Kind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL"),
        // `--n -5`: a negative number is a value, not an unknown option.
        Kind::Int => arg.value_name("INT").allow_negative_numbers(true),
        Kind::Float => arg.value_name("NUMBER").allow_negative_numbers(true),
        Kind::Duration => arg.value_name("DURATION"),
        Kind::List => arg.value_name("A,B,..").action(ArgAction::Append),
        Kind::String => arg.value_name("TEXT"),
    };
    if !p.choices.is_empty() {
        let choices: Vec<clap::builder::PossibleValue> = p
            .choices
            .iter()
            .map(|c| clap::builder::PossibleValue::new(c.clone()))
            .collect();
        arg = arg.value_parser(clap::builder::PossibleValuesParser::new(choices));
    }
    if let Some(d) = &p.default
        && p.kind != Kind::Bool
    {
        arg = arg.default_value(d.clone());
    }
    arg
}

/// `--trace FILE` and `--otlp URL`: the rebuild run(s) the playbook wrote, exported when
/// the run ends (see `timeline::TraceOnExit` and `timeline::OtlpOnExit`).
fn export_args() -> [Arg; 2] {
    [
        Arg::new("trace")
            .long("trace")
            .value_name("FILE")
            .help("Write the rebuild run(s) as a Chrome/Perfetto trace to FILE at the end")
            .help_heading("Run options")
            .value_parser(clap::value_parser!(std::path::PathBuf)),
        Arg::new("otlp")
            .long("otlp")
            .value_name("URL")
            .help(
                "Send the rebuild run(s) as OpenTelemetry spans (OTLP/HTTP) to URL at the end, \
                 e.g. http://localhost:4318 [default: $OTEL_EXPORTER_OTLP_ENDPOINT]",
            )
            .help_heading("Run options"),
    ]
}

fn run_option_args() -> Vec<Arg> {
    let flag = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .action(ArgAction::SetTrue)
            .help(help)
            .help_heading("Run options")
    };
    vec![
        flag(
            "dry-run",
            "Record what mutating primitives would do, do nothing",
        ),
        flag("read-only", "Refuse every mutating primitive"),
        flag("json", "Print the result as JSON on stdout"),
        flag("allow-exec", "Allow primitives that run processes"),
        flag(
            "repl-on-failure",
            "When a step fails, open the REPL on its variables (then retry, skip or abort)",
        ),
        Arg::new("timeout")
            .long("timeout")
            .value_name("DURATION")
            .help("Stop the run after this long")
            .help_heading("Run options")
            .value_parser(super::parse_duration),
        Arg::new("root")
            .long("root")
            .value_name("DIR")
            .help("Workspace root")
            .help_heading("Run options")
            .value_parser(clap::value_parser!(std::path::PathBuf)),
        Arg::new("stdlib")
            .long("stdlib")
            .value_name("DIR")
            .help("Load stdlib modules from DIR")
            .help_heading("Run options")
            .value_parser(clap::value_parser!(std::path::PathBuf)),
        Arg::new("max-operations")
            .long("max-operations")
            .value_name("N")
            .help("Stop the script after N operations (0 = no limit)")
            .help_heading("Run options")
            .value_parser(clap::value_parser!(u64)),
        Arg::new("max-memory")
            .long("max-memory")
            .value_name("SIZE")
            .help("Stop the run when its scripts hold more than SIZE, e.g. 4GiB (0 = no limit)")
            .help_heading("Run options")
            .value_parser(super::parse_size),
        // Logging is set up before the playbook is read, so these are also picked out of
        // the arguments early (see `logging_overrides`); here they are accepted and listed.
        Arg::new("quiet")
            .short('q')
            .long("quiet")
            .action(ArgAction::Count)
            .help("Less output")
            .help_heading("Run options"),
        Arg::new("verbose")
            .short('v')
            .long("verbose")
            .action(ArgAction::Count)
            .help("More output")
            .help_heading("Run options"),
        Arg::new("log-format")
            .long("log-format")
            .value_name("FORMAT")
            .help("Log line format: text or json")
            .help_heading("Run options")
            .value_parser(["text", "json"]),
    ]
    .into_iter()
    .chain(export_args())
    .collect()
}

/// `-q`, `-v` and `--log-format` given after the playbook name, applied to `opts` before
/// logging starts (the playbook's own parser runs later).
pub fn logging_overrides(opts: &mut GlobalOpts, args: &[String]) {
    let mut iter = args.iter().peekable();
    while let Some(a) = iter.next() {
        match a.as_str() {
            "--" => break,
            "--quiet" => opts.quiet += 1,
            "--verbose" => opts.verbose += 1,
            "--log-format" => {
                if let Some(v) = iter.next() {
                    opts.log_format = if v == "json" {
                        super::LogFormat::Json
                    } else {
                        super::LogFormat::Text
                    };
                }
            }
            "--log-format=json" => opts.log_format = super::LogFormat::Json,
            "--log-format=text" => opts.log_format = super::LogFormat::Text,
            s if s.starts_with('-')
                && !s.starts_with("--")
                && s.len() > 1
                && s[1..].chars().all(|c| c == 'q' || c == 'v') =>
            {
                opts.quiet += s.matches('q').count() as u8;
                opts.verbose += s.matches('v').count() as u8;
            }
            _ => {}
        }
    }
}

/// The playbook's parameter values given on the command line, typed (a repeated list
/// option is joined with ","). Shared by `run` and `watch`.
pub(super) fn values(script: &Script, m: &ArgMatches) -> Result<Map> {
    let mut out = Map::new();
    for p in &script.params {
        if m.value_source(&p.name) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        if let Some(many) = m.get_many::<String>(&p.name) {
            let text = many.cloned().collect::<Vec<_>>().join(",");
            let v = p.convert(&text).map_err(Error::Usage)?;
            out.insert(p.name.as_str().into(), v);
        }
    }
    Ok(out)
}

/// The run options given after the playbook name, over the global ones. Shared by `run`
/// and `watch` (whose command may lack some of them, hence `try_get_one`).
pub(super) fn run_opts(global: &GlobalOpts, matches: &ArgMatches) -> Result<GlobalOpts> {
    let mut opts = global.clone();
    let flag = |name: &str| matches.try_get_one::<bool>(name).ok().flatten() == Some(&true);
    opts.dry_run |= flag("dry-run");
    opts.read_only |= flag("read-only");
    opts.json |= flag("json");
    opts.allow_exec |= flag("allow-exec");
    if let Ok(Some(t)) = matches.try_get_one::<std::time::Duration>("timeout") {
        opts.timeout = Some(*t);
    }
    if let Ok(Some(r)) = matches.try_get_one::<std::path::PathBuf>("root") {
        opts.root = Some(r.clone());
    }
    if let Ok(Some(d)) = matches.try_get_one::<std::path::PathBuf>("stdlib") {
        opts.stdlib = Some(d.clone());
    }
    if let Ok(Some(n)) = matches.try_get_one::<u64>("max-operations") {
        opts.max_operations = Some(*n);
    }
    if let Ok(Some(n)) = matches.try_get_one::<usize>("max-memory") {
        opts.max_memory = Some(*n);
    }
    if opts.dry_run && opts.read_only {
        return Err(Error::Usage(
            "--dry-run and --read-only cannot be used together".into(),
        ));
    }
    Ok(opts)
}

pub fn run(global: &GlobalOpts, playbook: &Path, args: &[String]) -> Result<i32> {
    // `--json` after the playbook name is only parsed once the playbook compiled; errors
    // before that must still honour it.
    let json = global.json || args.iter().any(|a| a == "--json");
    match run_inner(global, playbook, args) {
        Ok(code) => Ok(code),
        Err(e) => Ok(super::report(&e, json)),
    }
}

/// The playbook's name and its declaration, read with a compile-only engine: nothing runs
/// before the options parse. The outer error is an unreadable file; the inner one a script
/// that does not compile (`watch` still watches such a playbook). Shared by `run` and `watch`.
pub(super) fn declaration(playbook: &Path) -> Result<(String, Result<Script>)> {
    let text = crate::source::read_capped(playbook, "playbook")?;
    let name = playbook.to_string_lossy().into_owned();
    let declared = compile_source(
        &engine::bare(&Limits::default()),
        &SourceMap::default(),
        &name,
        &text,
    );
    Ok((name, declared))
}

fn run_inner(global: &GlobalOpts, playbook: &Path, args: &[String]) -> Result<i32> {
    let declared = declaration(playbook)?.1?;
    let matches = match playbook_command(&declared).try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let opts = run_opts(global, &matches)?;
    let values = values(&declared, &matches)?;
    let trace = matches.get_one::<std::path::PathBuf>("trace").map(|p| {
        let root = opts.root.clone().unwrap_or_else(|| ".".into());
        crate::timeline::TraceOnExit::start(root, p.clone())
    });
    let otlp = crate::timeline::otlp::endpoint(
        matches.get_one::<String>("otlp").map(String::as_str),
        |k| std::env::var(k).ok(),
    )
    .map(|url| {
        let root = opts.root.clone().unwrap_or_else(|| ".".into());
        crate::timeline::OtlpOnExit::start(root, url)
    });
    // --repl-on-failure: the REPL owns Ctrl-C (it stops the running step, not the process).
    let result = if matches.get_flag("repl-on-failure") {
        let rt = opts.runtime_builder().build()?;
        let script = rt.compile_file(playbook)?;
        let history = crate::repl::default_history_path();
        crate::repl::run_with_repl_on_failure(&rt, &script, values, history)
    } else {
        let rt = opts.runtime()?;
        let script = rt.compile_file(playbook)?;
        rt.run(&script, values)
    };
    if let Some(t) = trace {
        t.write();
    }
    if let Some(o) = otlp {
        o.export();
    }
    match result {
        Ok(outcome) => Ok(finish(&opts, &outcome)),
        Err(e) => Ok(super::report(&e, opts.json)),
    }
}

/// Prints the end-of-run summary and returns the exit code.
fn finish(opts: &GlobalOpts, outcome: &RunOutcome) -> i32 {
    let code = outcome.exit_code();
    if opts.json {
        let v = serde_json::to_value(RunJson::of(outcome, opts.mode())).unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return code;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if opts.dry_run {
        if outcome.plan.is_empty() {
            let _ = writeln!(out, "dry run: nothing would change");
        } else {
            let _ = writeln!(
                out,
                "dry run: {} change(s) would be made:",
                outcome.plan.len()
            );
            for (i, a) in outcome.plan.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {:>3}. {} {} {}",
                    i + 1,
                    a.action,
                    a.target,
                    a.detail
                );
            }
        }
    }
    if !outcome.checks.is_empty() {
        let rows: Vec<[&str; 3]> = outcome
            .checks
            .iter()
            .map(|c| {
                [
                    c.name.as_str(),
                    if c.ok { "pass" } else { "FAIL" },
                    &c.reason,
                ]
            })
            .collect();
        let _ = write!(
            out,
            "{}",
            table::render(&["CHECK", "RESULT", "REASON"], &rows, "")
        );
        let failed = outcome.failed_checks().len();
        let _ = writeln!(
            out,
            "{} passed, {} failed",
            outcome.checks.len() - failed,
            failed
        );
    }
    code
}
