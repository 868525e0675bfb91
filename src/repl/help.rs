//! `:help`, `:help FN` and `:docs`: text from the engine's metadata, so it cannot drift
//! from what the engine really offers.

use std::fmt::Write as _;

use rhai::Engine;

use crate::docs::{self, FnMeta};

/// `:help FN`: every overload's signature and doc comment, from the engine's metadata.
pub fn help_for(engine: &Engine, name: &str) -> Option<String> {
    let all = docs::host_functions(engine).ok()?;
    let (module, fname) = match name.split_once("::") {
        Some((m, f)) => (m, f),
        None => ("", name),
    };
    let fns: Vec<&FnMeta> = all
        .get(module)?
        .iter()
        .filter(|f| f.name == fname)
        .collect();
    if fns.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut last_doc = String::new();
    for f in fns {
        let sig = if f.signature.is_empty() {
            f.name.clone()
        } else {
            docs::clean_types(&f.signature)
        };
        if module.is_empty() {
            let _ = writeln!(out, "{sig}");
        } else {
            let _ = writeln!(out, "{module}::{sig}");
        }
        let doc = f.doc();
        if !doc.is_empty() && doc != last_doc {
            let _ = writeln!(out, "\n{doc}\n");
            last_doc = doc;
        }
    }
    Some(out.trim_end().to_string() + "\n")
}

pub(super) const HELP: &str = "\
Type Rhai: expressions print their value, `let` variables and `fn` definitions stay for the
session, an unfinished input (an open brace) continues on the next line.

  :help            this text and the host modules
  :help FN         signature and documentation of FN, e.g. :help time::sleep
  :docs [MODULE]   every host function's signature (of MODULE, with documentation)
  :vars            the session's variables with their types and values
  :load FILE       run FILE in the session (its variables and functions stay)
  :reload          run the loaded files again
  :quit            leave (also Ctrl-D)

Tab completes modules, functions and variables; Ctrl-C stops the running input.
";

pub(super) const FAILURE_HELP: &str = "\
A playbook step failed; its variables are in scope. After inspecting:
  :retry           run the failed step again (with the variables as they are now)
  :continue        skip the failed step and go on with the next one
  :abort           stop the run (also :quit or Ctrl-D)
";

pub(super) fn docs_text(engine: &Engine, module: Option<&str>) -> String {
    let Ok(all) = docs::host_functions(engine) else {
        return "cannot read the engine's metadata\n".into();
    };
    let mut out = String::new();
    for (m, fns) in &all {
        if module.is_some_and(|want| want != m) {
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            if m.is_empty() {
                "global functions:".to_string()
            } else {
                format!("{m}::")
            }
        );
        for f in fns {
            if f.name.contains('$') {
                continue;
            }
            let sig = docs::clean_types(&f.signature);
            let _ = writeln!(out, "  {sig}");
            if module.is_some() {
                let first = f.doc();
                if let Some(l) = first.lines().next() {
                    let _ = writeln!(out, "      {l}");
                }
            }
        }
    }
    if out.is_empty() {
        out = format!("no module {}\n", module.unwrap_or_default());
    }
    out
}
