//! Script errors as people need to read them.
//!
//! A Rhai error arrives as a nest: "error in module 'stdlib/rebuild' ← error in call to
//! function 'gate' ← variable not found". We flatten it into the innermost error (with the
//! file, line, column, the source line and a caret under the column) plus the chain of places
//! it was reached through, outermost first, rendered like rustc:
//!
//! ```text
//! error: variable not found: helth
//!   --> stdlib/util.rhai:4:12
//!    |
//!  4 |     return helth.ok;
//!    |            ^
//!    = in call to function 'gate' at playbooks/x.rhai:10:5
//! ```
//!
//! The error's *kind* decides the exit code: a syntax or script bug is 2, a failed step
//! (an HTTP call that failed, a `throw`) is 1.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use rhai::{EvalAltResult, ParseError, Position};
use serde::Serialize;

mod kind;

pub use kind::{Fault, LimitExceeded};

/// Source texts by name (a file path, or `stdlib/x` for an embedded module), so errors can
/// quote the offending line even from inside imported modules.
#[derive(Clone, Default, Debug)]
pub struct SourceMap(Arc<Mutex<HashMap<String, Arc<str>>>>);

impl SourceMap {
    pub fn insert(&self, name: impl Into<String>, text: impl Into<Arc<str>>) {
        crate::util::lock(&self.0).insert(name.into(), text.into());
    }

    pub fn get(&self, name: &str) -> Option<Arc<str>> {
        crate::util::lock(&self.0).get(name).cloned()
    }

    /// The names of every source seen so far (used by watch mode to know what to watch).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = crate::util::lock(&self.0).keys().cloned().collect();
        v.sort();
        v
    }
}

/// How an error should end the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The script does not compile (exit 2).
    Syntax,
    /// A bug in the script or a host call used wrongly (exit 2).
    Script,
    /// A step failed: a `throw`, a failed HTTP call, a failed build (exit 1).
    Failure,
    /// Stopped by Ctrl-C or `--timeout`.
    Terminated,
}

/// A place in a script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub source: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.line, self.column)
    }
}

/// One step of the chain an error travelled through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// "in call to function 'gate'", "in closure call", "importing module 'stdlib/x'".
    pub what: String,
    pub at: Option<Location>,
}

/// A script error, flattened and ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptError {
    pub kind: ErrorKind,
    pub message: String,
    pub location: Option<Location>,
    /// The source line at `location`.
    pub snippet: Option<String>,
    /// Outermost first.
    pub chain: Vec<Frame>,
}

impl ScriptError {
    pub fn from_parse(err: &ParseError, source: &str, sources: &SourceMap) -> Self {
        let location = locate(source, err.position());
        let snippet = location.as_ref().and_then(|l| line_of(sources, l));
        Self {
            kind: ErrorKind::Syntax,
            message: crate::secrets::scrub(&format!("syntax error: {}", err.err_type())),
            location,
            snippet,
            chain: Vec::new(),
        }
    }

    pub fn from_eval(err: &EvalAltResult, main_source: &str, sources: &SourceMap) -> Self {
        let mut chain = Vec::new();
        let mut current = main_source.to_string();
        let mut e = err;
        loop {
            match e {
                EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                    let what = if name.starts_with("anon$") {
                        "in closure call".to_string()
                    } else {
                        format!("in call to function '{name}'")
                    };
                    chain.push(Frame {
                        what,
                        at: locate(&current, *pos),
                    });
                    if !src.is_empty() {
                        current = src.clone();
                    }
                    e = inner;
                }
                EvalAltResult::ErrorInModule(path, inner, pos) => {
                    chain.push(Frame {
                        what: format!("importing module '{path}'"),
                        at: locate(&current, *pos),
                    });
                    if !path.is_empty() {
                        current = path.clone();
                    }
                    e = inner;
                }
                _ => break,
            }
        }
        let location = locate(&current, e.position());
        let snippet = location.as_ref().and_then(|l| line_of(sources, l));
        // The last place before anything is printed: no secret or URL credential past it.
        let message = crate::secrets::scrub(&message_of(e));
        let kind = match e {
            EvalAltResult::ErrorParsing(..) => ErrorKind::Syntax,
            // A limit (`--max-memory`) is the script's fault, not a stop from outside.
            EvalAltResult::ErrorTerminated(t, _) if t.is::<LimitExceeded>() => ErrorKind::Script,
            EvalAltResult::ErrorTerminated(..) => ErrorKind::Terminated,
            // Only the runtime's own tagged values are the script's fault: a script that
            // throws "refused: x" itself has a failed step, like any other `throw`.
            EvalAltResult::ErrorRuntime(d, _) if Fault::of_value(d).is_none() => ErrorKind::Failure,
            _ => ErrorKind::Script,
        };
        // Innermost frame last reads naturally as "reached through"; rustc lists outermost
        // last, but operators read top-down from the playbook they ran.
        Self {
            kind,
            message,
            location,
            snippet,
            chain,
        }
    }

    /// Exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Syntax | ErrorKind::Script => 2,
            ErrorKind::Failure => 1,
            ErrorKind::Terminated => 130,
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if let Some(loc) = &self.location {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad}--> {loc}")?;
            if let Some(line) = &self.snippet {
                let (shown, caret_col) = window(line, loc.column);
                writeln!(f, "{pad} |")?;
                writeln!(f, "{num} | {shown}")?;
                writeln!(f, "{pad} | {}^", " ".repeat(caret_col))?;
            }
        }
        for frame in &self.chain {
            match &frame.at {
                Some(at) => writeln!(f, "  = {} at {at}", frame.what)?,
                None => writeln!(f, "  = {}", frame.what)?,
            }
        }
        Ok(())
    }
}

/// Characters of a source line shown on each side of the caret. A generated script can
/// have a line of megabytes; the error must not print it all.
pub const SNIPPET_HALF_WIDTH: usize = 60;

/// The part of `line` to show around 1-based `column` (at most about
/// 2 × [`SNIPPET_HALF_WIDTH`] characters, `…` marking what was cut), and the caret's offset
/// in it. Tabs are shown as four spaces, so the caret stays under its character.
pub fn window(line: &str, column: usize) -> (String, usize) {
    let col = column.saturating_sub(1);
    let total = line.chars().count();
    let start = col.saturating_sub(SNIPPET_HALF_WIDTH);
    let end = (col + SNIPPET_HALF_WIDTH).min(total);
    let start = start.min(end);
    let part: String = line.chars().skip(start).take(end - start).collect();
    let before: String = part.chars().take(col - start.min(col)).collect();
    let lead = if start > 0 { "…" } else { "" };
    let tail = if end < total { "…" } else { "" };
    let shown = format!("{lead}{part}{tail}").replace('\t', "    ");
    let caret = lead.chars().count() + before.replace('\t', "    ").chars().count();
    (shown, caret)
}

fn locate(source: &str, pos: Position) -> Option<Location> {
    let line = pos.line()?;
    Some(Location {
        source: source.to_string(),
        line,
        column: pos.position().unwrap_or(1).max(1),
    })
}

fn line_of(sources: &SourceMap, loc: &Location) -> Option<String> {
    let text = sources.get(&loc.source)?;
    let line = text.lines().nth(loc.line.checked_sub(1)?)?;
    // The source line too: a URL with credentials in the script is not echoed either.
    let scrubbed = crate::secrets::scrub(line);
    let line = scrubbed.as_str();
    // Keep only what `window` can show: the stored error stays small however long the line.
    let col = loc.column.saturating_sub(1);
    if line.len() <= 4 * SNIPPET_HALF_WIDTH {
        return Some(line.to_string());
    }
    let keep = col + SNIPPET_HALF_WIDTH + 1;
    let mut out: String = line.chars().take(keep).collect();
    if line.chars().nth(keep).is_some() {
        out.push(' '); // marks that the line goes on, so the window ends with `…`
    }
    Some(out)
}

/// The innermost message of an error, without Rhai's position suffix or wrapper text.
pub fn message_of(err: &EvalAltResult) -> String {
    let inner = err.unwrap_inner();
    match inner {
        EvalAltResult::ErrorRuntime(d, _) if !d.is_unit() => d.to_string(),
        EvalAltResult::ErrorParsing(p, _) => format!("syntax error: {p}"),
        EvalAltResult::ErrorTerminated(t, _) if t.is::<LimitExceeded>() => {
            t.clone_cast::<LimitExceeded>().0
        }
        EvalAltResult::ErrorTerminated(..) => "stopped (Ctrl-C or --timeout)".to_string(),
        other => {
            let full = other.to_string();
            let pos = other.position();
            let suffix = format!(" ({pos})");
            let s = if pos.is_none() {
                full.clone()
            } else {
                full.strip_suffix(&suffix).unwrap_or(&full).to_string()
            };
            let mut c = s.chars();
            match c.next() {
                Some(first) => first.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_the_column_even_with_tabs() {
        let sources = SourceMap::default();
        sources.insert("a.rhai", "let x = 1;\n\tlet y = oops;\n");
        let e = EvalAltResult::ErrorVariableNotFound("oops".into(), Position::new(2, 10));
        let se = ScriptError::from_eval(&e, "a.rhai", &sources);
        let text = se.to_string();
        assert_eq!(se.kind, ErrorKind::Script);
        assert!(text.contains("--> a.rhai:2:10"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let src = lines.iter().position(|l| l.starts_with("2 | ")).unwrap();
        assert_eq!(lines[src], "2 |     let y = oops;");
        assert_eq!(lines[src + 1].find('^'), lines[src].find("oops"), "{text}");
    }

    #[test]
    fn a_huge_line_shows_a_bounded_window_with_the_caret_under_the_column() {
        let sources = SourceMap::default();
        let line = format!(
            "let s = {}oops{};",
            "a".repeat(100_000),
            "b".repeat(100_000)
        );
        sources.insert("big.rhai", line.as_str());
        let col = 9 + 100_000;
        let e = EvalAltResult::ErrorVariableNotFound("oops".into(), Position::new(1, 1));
        let mut se = ScriptError::from_eval(&e, "big.rhai", &sources);
        se.location.as_mut().unwrap().column = col;
        se.snippet = line_of(&sources, se.location.as_ref().unwrap());
        let text = se.to_string();
        assert!(text.len() < 1000, "{} bytes", text.len());
        let lines: Vec<&str> = text.lines().collect();
        let src = lines.iter().position(|l| l.starts_with("1 | ")).unwrap();
        let caret = lines[src + 1].chars().position(|c| c == '^').unwrap();
        let shown: String = lines[src].chars().skip(caret).take(4).collect();
        assert_eq!(shown, "oops", "{text}");
    }

    #[test]
    fn flattens_the_call_chain_outermost_first() {
        let sources = SourceMap::default();
        let inner = EvalAltResult::ErrorRuntime("boom".into(), Position::new(3, 5));
        let e = EvalAltResult::ErrorInModule(
            "lib.rhai".into(),
            EvalAltResult::ErrorInFunctionCall(
                "gate".into(),
                "lib.rhai".into(),
                inner.into(),
                Position::new(9, 1),
            )
            .into(),
            Position::new(1, 1),
        );
        let se = ScriptError::from_eval(&e, "main.rhai", &sources);
        assert_eq!(se.kind, ErrorKind::Failure);
        assert_eq!(se.location.as_ref().unwrap().to_string(), "lib.rhai:3:5");
        assert_eq!(se.chain[0].what, "importing module 'lib.rhai'");
        assert_eq!(
            se.chain[0].at.as_ref().unwrap().to_string(),
            "main.rhai:1:1"
        );
        assert_eq!(se.chain[1].what, "in call to function 'gate'");
        assert_eq!(se.exit_code(), 1);
    }

    #[test]
    fn classifies_misuse_as_script_errors() {
        let sources = SourceMap::default();
        for (fault, msg) in [
            (Fault::InvalidArgument, "x"),
            (Fault::Refused, "y"),
            (Fault::ModuleNotFound, "z"),
            (Fault::ConfigError, "services.yaml:3: unknown key"),
            (Fault::ImportCycle, "a → a"),
        ] {
            let e = EvalAltResult::ErrorRuntime(fault.value(msg), Position::new(1, 1));
            let se = ScriptError::from_eval(&e, "m", &sources);
            assert_eq!(se.exit_code(), 2, "{fault:?}");
            assert_eq!(se.message, format!("{}{msg}", fault.prefix()));
        }
        let e = EvalAltResult::ErrorRuntime("step failed".into(), Position::new(1, 1));
        assert_eq!(ScriptError::from_eval(&e, "m", &sources).exit_code(), 1);
    }

    /// A script that throws a string that merely reads like the runtime's own refusal has a
    /// failed step (exit 1): the class comes from the runtime's tag, not from the words.
    #[test]
    fn a_thrown_look_alike_is_a_failure() {
        let sources = SourceMap::default();
        for msg in [
            "invalid argument: x",
            "refused: y",
            "module not found: z",
            "import cycle: a",
        ] {
            let e = EvalAltResult::ErrorRuntime(msg.into(), Position::new(1, 1));
            assert_eq!(
                ScriptError::from_eval(&e, "m", &sources).exit_code(),
                1,
                "{msg}"
            );
        }
    }
}
