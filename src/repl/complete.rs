//! Tab completion: host modules and their functions, global functions and the session's
//! variables, from the engine's own metadata (the same source as `dockhand docs`), and the
//! `:` commands.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rhai::Engine;
use rustyline::Helper;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;

use crate::docs;

/// What can be completed: host modules and their functions, global functions, variables.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub modules: BTreeMap<String, BTreeSet<String>>,
    pub globals: BTreeSet<String>,
    pub vars: BTreeSet<String>,
}

impl Names {
    /// Host functions from the engine's metadata (the same source as `dockhand docs`).
    pub fn from_engine(engine: &Engine) -> Self {
        let mut names = Names::default();
        if let Ok(all) = docs::host_functions(engine) {
            for (module, fns) in all {
                let set: BTreeSet<String> = fns
                    .iter()
                    .filter(|f| f.property().is_none() && !f.name.contains('$'))
                    .map(|f| f.name.clone())
                    .collect();
                if module.is_empty() {
                    names.globals.extend(set);
                } else {
                    names.modules.insert(module, set);
                }
            }
        }
        names
    }
}

const COMMANDS: &[&str] = &[
    ":help",
    ":load",
    ":reload",
    ":docs",
    ":vars",
    ":quit",
    ":continue",
    ":retry",
    ":abort",
];

/// Completion of the word ending at `pos`: the start of that word and its candidates.
pub fn complete(line: &str, pos: usize, names: &Names) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &before[start..];
    if start == 0 && word.starts_with(':') {
        let v = COMMANDS
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| c.to_string())
            .collect();
        return (0, v);
    }
    let mut out: Vec<String> = Vec::new();
    if let Some((module, rest)) = word.split_once("::") {
        if let Some(fns) = names.modules.get(module) {
            out.extend(
                fns.iter()
                    .filter(|f| f.starts_with(rest))
                    .map(|f| format!("{module}::{f}")),
            );
        }
    } else {
        if word.is_empty() {
            return (start, out);
        }
        out.extend(
            names
                .modules
                .keys()
                .filter(|m| m.starts_with(word))
                .map(|m| format!("{m}::")),
        );
        let is_help = before.trim_start().starts_with(":help");
        out.extend(
            names
                .globals
                .iter()
                .filter(|f| f.starts_with(word))
                .cloned(),
        );
        if !is_help {
            out.extend(names.vars.iter().filter(|v| v.starts_with(word)).cloned());
        }
    }
    out.sort();
    out.dedup();
    (start, out)
}

/// Rustyline's view of the completion names (shared with the loop, which updates the
/// variables after each input).
pub(super) struct ReplHelper {
    pub(super) names: Arc<Mutex<Names>>,
}

impl Completer for ReplHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos, &crate::util::lock(&self.names)))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut n = Names::default();
        n.modules.insert(
            "docker".into(),
            ["ps", "pull_image", "logs"].map(String::from).into(),
        );
        n.modules
            .insert("time".into(), ["sleep"].map(String::from).into());
        n.globals.insert("check".into());
        n.vars.insert("services".into());
        n.vars.insert("count".into());
        n
    }

    #[test]
    fn completes_module_functions_after_the_prefix() {
        let line = "let x = docker::p";
        let (start, c) = complete(line, line.len(), &names());
        assert_eq!(start, 8);
        assert_eq!(c, vec!["docker::ps", "docker::pull_image"]);
    }

    #[test]
    fn completes_modules_globals_and_variables() {
        let (start, c) = complete("do", 2, &names());
        assert_eq!((start, c), (0, vec!["docker::".to_string()]));
        let (_, c) = complete("print(c", 7, &names());
        assert_eq!(c, vec!["check", "count"]);
        let (_, c) = complete(":he", 3, &names());
        assert_eq!(c, vec![":help"]);
        // `:help` completes functions, not variables.
        let (_, c) = complete(":help c", 7, &names());
        assert_eq!(c, vec!["check"]);
        assert!(complete("x + ", 4, &names()).1.is_empty());
    }
}
