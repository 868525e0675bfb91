//! `dockhand validate`: run validation scripts and report every check of every script.
//!
//! A validation is a playbook made of `check(name, ...)` calls. Teams keep theirs in
//! `validations/` under the workspace root; dockhand ships `playbooks/validate-services.rhai`
//! (story 11), embedded in the binary so `dockhand validate` works in any workspace. Every
//! script runs to the end even when another failed or crashed, so one broken validation does
//! not hide the results of the rest.
//!
//! Team-authored validations run `--read-only` (a mutating primitive is an error): a
//! validation that restarts a container or rewrites a file by mistake is worse than none.
//! [`Options::allow_writes`] lifts that for scripts that need it (a baseline file). The
//! shipped validation runs normally: it writes only the baseline file it is asked to save.
//!
//! Script options reach every script that declares them (`--param window=10s`, or after
//! `--` as `--window 10s`); an option no script declares is a usage error, caught before
//! anything runs.
//!
//! ```no_run
//! use dockhand::validate::{self, Options};
//! let report = validate::run(&Options { root: ".".into(), ..Default::default() })?;
//! println!("{}", report.table());
//! std::fs::write("validate.xml", report.junit())?;
//! std::process::exit(report.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use rhai::Map;
use serde::Serialize;

use crate::engine::{self, Limits};
use crate::error::{Error, Result};
use crate::host::{CheckResult, Mode};
use crate::runtime::{Runtime, Script, compile_source};
use crate::util::{human, table};

/// The validations shipped with dockhand: (name, source).
pub const SHIPPED: &[(&str, &str)] = &[(
    "playbooks/validate-services.rhai",
    include_str!("../playbooks/validate-services.rhai"),
)];

/// A check reason starting with this marks a check that did not apply (JUnit `<skipped>`).
pub const SKIPPED_PREFIX: &str = "skipped:";

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Workspace root (the fs sandbox; `validations/` is looked for here).
    pub root: PathBuf,
    /// Files or directories of validations (`.rhai`), or `shipped:NAME`. Empty: the
    /// workspace's `validations/` (if present) plus the shipped validations.
    pub files: Vec<PathBuf>,
    /// Script options, `(name, value)`: `window` or `--window` style names both work.
    pub params: Vec<(String, String)>,
    /// Run team-authored validations without `--read-only`.
    pub allow_writes: bool,
    pub allow_exec: bool,
    /// Per script.
    pub timeout: Option<Duration>,
    pub stdlib: Option<PathBuf>,
    pub max_operations: Option<u64>,
    /// Memory budget per script, in bytes (`--max-memory`).
    pub max_memory: Option<usize>,
}

/// One validation to run.
#[derive(Debug, Clone)]
pub struct Validation {
    /// As shown in reports (a path, or the shipped name).
    pub name: String,
    pub shipped: bool,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Text(&'static str),
}

/// The result of one script.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptReport {
    pub script: String,
    pub shipped: bool,
    pub mode: Mode,
    /// "ok", "failed" (a check failed) or "error" (the script did not finish).
    pub status: &'static str,
    pub checks: Vec<CheckResult>,
    /// The script's final value (JSON).
    pub value: serde_json::Value,
    /// The error that stopped the script, rendered with file:line:col.
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Every script's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: &'static str,
    pub exit_code: i32,
    pub scripts: Vec<ScriptReport>,
    pub duration_ms: u64,
}

fn is_skip(c: &CheckResult) -> bool {
    c.ok && c.reason.starts_with(SKIPPED_PREFIX)
}

/// The validations `opts` names, in order.
pub fn discover(opts: &Options) -> Result<Vec<Validation>> {
    let mut out = Vec::new();
    let shipped = |name: &str| {
        SHIPPED
            .iter()
            .find(|(n, _)| *n == name || Path::new(n).file_stem() == Path::new(name).file_stem())
            .map(|(n, t)| Validation {
                name: n.to_string(),
                shipped: true,
                source: Source::Text(t),
            })
    };
    if opts.files.is_empty() {
        let dir = opts.root.join("validations");
        if dir.is_dir() {
            collect(&dir, &mut out)?;
        }
        out.extend(SHIPPED.iter().filter_map(|(n, _)| shipped(n)));
        return Ok(out);
    }
    for f in &opts.files {
        let text = f.to_string_lossy();
        if let Some(name) = text.strip_prefix("shipped:") {
            out.push(shipped(name).ok_or_else(|| {
                let known: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
                Error::Usage(format!(
                    "{text}: no such shipped validation (shipped: {})",
                    known.join(", ")
                ))
            })?);
        } else if f.is_dir() {
            let before = out.len();
            collect(f, &mut out)?;
            if out.len() == before {
                return Err(Error::Usage(format!(
                    "{}: no .rhai validation in this directory",
                    f.display()
                )));
            }
        } else if f.is_file() {
            out.push(Validation {
                name: text.into_owned(),
                shipped: false,
                source: Source::File(f.clone()),
            });
        } else {
            return Err(Error::Usage(format!(
                "{}: no such file or directory",
                f.display()
            )));
        }
    }
    Ok(out)
}

/// `.rhai` files under `dir`, sorted, recursively.
fn collect(dir: &Path, out: &mut Vec<Validation>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rhai") {
            out.push(Validation {
                name: p.to_string_lossy().into_owned(),
                shipped: false,
                source: Source::File(p),
            });
        }
    }
    Ok(())
}

fn source_text(v: &Validation) -> Result<String> {
    match &v.source {
        Source::Text(t) => Ok(t.to_string()),
        Source::File(p) => crate::source::read_capped(p, "validation"),
    }
}

/// Normalizes an option name: `--save-baseline` and `save_baseline` are the same.
fn key(name: &str) -> String {
    name.trim_start_matches('-').replace('-', "_")
}

/// Parses `--key value`, `--key=value` and `--flag` (true) pairs, as given after `--`.
pub fn parse_passthrough(args: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(name) = a.strip_prefix("--").filter(|n| !n.is_empty()) else {
            return Err(Error::Usage(format!(
                "script option '{a}': write --name value, --name=value or --flag"
            )));
        };
        if let Some((k, v)) = name.split_once('=') {
            out.push((k.to_string(), v.to_string()));
            i += 1;
        } else if let Some(v) = args.get(i + 1).filter(|v| !v.starts_with("--")) {
            out.push((name.to_string(), v.clone()));
            i += 2;
        } else {
            out.push((name.to_string(), "true".into()));
            i += 1;
        }
    }
    Ok(out)
}

/// Parses one `--param KEY=VALUE`.
pub fn parse_param(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}': write a script option as KEY=VALUE, e.g. window=10s"))
}

/// The values of `params` that `script` declares, typed.
fn values_for(script: &Script, params: &[(String, String)]) -> Result<Map> {
    let mut out = Map::new();
    for p in &script.params {
        let given: Vec<&str> = params
            .iter()
            .filter(|(k, _)| key(k) == p.name)
            .map(|(_, v)| v.as_str())
            .collect();
        if given.is_empty() {
            continue;
        }
        // A list option may be repeated; other options take the last value.
        let text = if p.kind == crate::host::params::Kind::List {
            given.join(",")
        } else {
            given[given.len() - 1].to_string()
        };
        let v = p
            .convert(&text)
            .map_err(|e| Error::Usage(format!("{}: {e}", script.name)))?;
        out.insert(p.name.as_str().into(), v);
    }
    Ok(out)
}

fn runtime(opts: &Options, mode: Mode) -> Result<Runtime> {
    Runtime::builder()
        .root(opts.root.clone())
        .mode(mode)
        .allow_exec(opts.allow_exec)
        .timeout(opts.timeout)
        .stdlib_dir(opts.stdlib.clone())
        .limit_overrides(opts.max_operations, opts.max_memory)
        .handle_ctrl_c(true)
        .build()
}

/// Runs every validation `opts` names. Errors only for usage problems found before any
/// script runs (no validation, an option no script declares) and for Ctrl-C; a script that
/// fails to compile or throws is reported in its [`ScriptReport`].
pub fn run(opts: &Options) -> Result<Report> {
    let started = std::time::Instant::now();
    let list = discover(opts)?;
    if list.is_empty() {
        return Err(Error::Usage(
            "no validation to run: add .rhai files under validations/ or name some".into(),
        ));
    }
    check_params(opts, &list)?;
    let mut normal: Option<Runtime> = None;
    let mut read_only: Option<Runtime> = None;
    let mut scripts = Vec::new();
    for v in &list {
        let (mode, slot) = if v.shipped || opts.allow_writes {
            (Mode::Normal, &mut normal)
        } else {
            (Mode::ReadOnly, &mut read_only)
        };
        if slot.is_none() {
            *slot = Some(runtime(opts, mode)?);
        }
        let rt = slot.as_ref().expect("runtime just built");
        scripts.push(run_one(rt, v, opts, mode)?);
    }
    Ok(Report::of(scripts, started.elapsed()))
}

/// Reads every declaration first (nothing runs), so a misspelt option stops everything.
fn check_params(opts: &Options, list: &[Validation]) -> Result<()> {
    let bare = engine::bare(&Limits::default());
    let mut declared: Vec<Option<Script>> = Vec::new();
    for v in list {
        let text = source_text(v)?;
        declared.push(compile_source(&bare, &Default::default(), &v.name, &text).ok());
    }
    for (k, _) in &opts.params {
        let known = declared
            .iter()
            .flatten()
            .any(|s| s.params.iter().any(|p| p.name == key(k)));
        if !known {
            return Err(Error::Usage(format!(
                "script option '{k}' is declared by none of the validations ({})",
                list.iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    for s in declared.iter().flatten() {
        values_for(s, &opts.params)?;
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs one validation on `rt`; only Ctrl-C is an error, anything else is in the report.
fn run_one(rt: &Runtime, v: &Validation, opts: &Options, mode: Mode) -> Result<ScriptReport> {
    let t = std::time::Instant::now();
    let outcome = source_text(v)
        .and_then(|text| {
            if let Source::File(p) = &v.source
                && let Ok(full) = p.canonicalize()
            {
                rt.resolver().register_file(&v.name, full);
            }
            rt.compile_str(&v.name, &text)
        })
        .and_then(|script| {
            let values = values_for(&script, &opts.params)?;
            rt.run(&script, values)
        });
    let ms = millis(t.elapsed());
    Ok(match outcome {
        Ok(o) => ScriptReport {
            script: v.name.clone(),
            shipped: v.shipped,
            mode,
            status: if o.exit_code() == 0 { "ok" } else { "failed" },
            value: o.value_json(),
            checks: o.checks,
            error: None,
            duration_ms: ms,
        },
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(e) => ScriptReport {
            script: v.name.clone(),
            shipped: v.shipped,
            mode,
            status: "error",
            // Checks recorded before the error still count.
            checks: rt.host().checks(),
            value: serde_json::Value::Null,
            error: Some(e.to_string()),
            duration_ms: ms,
        },
    })
}

fn result_word(c: &CheckResult) -> &'static str {
    if is_skip(c) {
        "skip"
    } else if c.ok {
        "pass"
    } else {
        "FAIL"
    }
}

impl Report {
    /// The report of `scripts`, which took `took` in all.
    fn of(scripts: Vec<ScriptReport>, took: Duration) -> Report {
        let exit_code = if scripts.iter().any(|s| s.status == "error") {
            2
        } else if scripts.iter().any(|s| s.status == "failed") {
            1
        } else {
            0
        };
        Report {
            status: match exit_code {
                0 => "ok",
                1 => "failed",
                _ => "error",
            },
            exit_code,
            scripts,
            duration_ms: millis(took),
        }
    }

    /// 0 all passed, 1 a check failed, 2 a script did not finish.
    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }

    /// One table of every check: script, check, result, duration, message; then a tally.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 5]> = Vec::new();
        for s in &self.scripts {
            for c in &s.checks {
                rows.push([
                    s.script.clone(),
                    c.name.clone(),
                    result_word(c).into(),
                    human::duration(Duration::from_millis(c.ms)),
                    c.reason.replace('\n', " "),
                ]);
            }
            if let Some(e) = &s.error {
                let first = e.lines().next().unwrap_or("").to_string();
                rows.push([
                    s.script.clone(),
                    "(script)".into(),
                    "ERROR".into(),
                    human::duration(Duration::from_millis(s.duration_ms)),
                    first,
                ]);
            }
        }
        let head = ["SCRIPT", "CHECK", "RESULT", "DURATION", "MESSAGE"];
        let mut out = table::render(&head, &rows, "");
        let all: Vec<&CheckResult> = self.scripts.iter().flat_map(|s| &s.checks).collect();
        let failed = all.iter().filter(|c| !c.ok).count();
        let skipped = all.iter().filter(|c| is_skip(c)).count();
        let errors = self.scripts.iter().filter(|s| s.error.is_some()).count();
        out.push_str(&format!(
            "{} script(s): {} passed, {} failed, {} skipped, {} script error(s)\n",
            self.scripts.len(),
            all.len() - failed - skipped,
            failed,
            skipped,
            errors
        ));
        out
    }

    /// JUnit XML: one `<testsuite>` per script, one `<testcase>` per check (`<failure>` with
    /// the reason, `<skipped>` for a check that did not apply); a script that did not finish
    /// gets an `<error>` test case with the full error.
    pub fn junit(&self) -> String {
        let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let all: Vec<&CheckResult> = self.scripts.iter().flat_map(|s| &s.checks).collect();
        let failures = all.iter().filter(|c| !c.ok).count();
        let errors = self.scripts.iter().filter(|s| s.error.is_some()).count();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<testsuites name=\"dockhand validate\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{}\">\n",
            all.len() + errors,
            secs(self.duration_ms)
        ));
        for s in &self.scripts {
            let failures = s.checks.iter().filter(|c| !c.ok).count();
            let skipped = s.checks.iter().filter(|c| is_skip(c)).count();
            let errors = usize::from(s.error.is_some());
            x.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\">\n",
                escape(&s.script),
                s.checks.len() + errors,
                secs(s.duration_ms)
            ));
            for c in &s.checks {
                let (file, line) = match c.location.rsplit_once(':') {
                    Some((f, l)) if l.chars().all(|d| d.is_ascii_digit()) => {
                        (f.to_string(), l.to_string())
                    }
                    _ => (String::new(), String::new()),
                };
                let mut attrs = format!(
                    "name=\"{}\" classname=\"{}\" time=\"{}\"",
                    escape(&c.name),
                    escape(&s.script),
                    secs(c.ms)
                );
                if !file.is_empty() {
                    attrs.push_str(&format!(
                        " file=\"{}\" line=\"{}\"",
                        escape(&file),
                        escape(&line)
                    ));
                }
                if is_skip(c) {
                    let why = c.reason[SKIPPED_PREFIX.len()..].trim();
                    x.push_str(&format!(
                        "    <testcase {attrs}>\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                        escape(why)
                    ));
                } else if c.ok {
                    x.push_str(&format!("    <testcase {attrs}/>\n"));
                } else {
                    x.push_str(&format!(
                        "    <testcase {attrs}>\n      <failure message=\"{}\" type=\"check\">{}</failure>\n    </testcase>\n",
                        escape(&c.reason),
                        escape(&c.reason)
                    ));
                }
            }
            if let Some(e) = &s.error {
                let first = e.lines().next().unwrap_or("");
                x.push_str(&format!(
                    "    <testcase name=\"(script)\" classname=\"{}\" time=\"{}\">\n      <error message=\"{}\" type=\"script\">{}</error>\n    </testcase>\n",
                    escape(&s.script),
                    secs(s.duration_ms),
                    escape(first),
                    escape(e)
                ));
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }
}

/// Escapes text for XML content and attribute values. Characters XML 1.0 cannot carry at
/// all (control characters other than tab, newline and carriage return, e.g. the escape
/// codes of coloured log lines) become U+FFFD, so a log line never makes the file invalid.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c'\n\u{1b}[31m"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#10;\u{FFFD}[31m"
        );
    }

    #[test]
    fn passthrough_pairs() {
        let args: Vec<String> = ["--window", "10s", "--save-baseline", "--baseline=b.json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parse_passthrough(&args).unwrap(),
            vec![
                ("window".to_string(), "10s".to_string()),
                ("save-baseline".into(), "true".into()),
                ("baseline".into(), "b.json".into()),
            ]
        );
        assert!(parse_passthrough(&["window".to_string()]).is_err());
        assert!(parse_param("=x").is_err());
        assert_eq!(key("--save-baseline"), "save_baseline");
    }
}
