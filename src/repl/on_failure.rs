//! `run --repl-on-failure`: a playbook run one top-level statement at a time, with the REPL
//! opened on the variables of a step that fails.

use std::path::PathBuf;

use rhai::{AST, Dynamic, Map, Stmt};

use super::commands::End;
use super::interactive::{Options, interactive, spawn_ctrl_c_listener};
use super::session::Session;
use crate::diagnostic::ScriptError;
use crate::error::{Error, Result};
use crate::runtime::{RunOutcome, Runtime, Script};

/// Runs `script` one top-level statement (one *step*) at a time in a session scope. When a
/// step fails, the error is shown and the REPL opens on that scope: the operator inspects
/// (and may change) the variables, then `:retry` runs the step again, `:continue` skips it,
/// `:abort` (or Ctrl-D, or no terminal) ends the run with the step's error.
///
/// The step is the top-level statement: a failure deep inside a loop or a function opens
/// the REPL with the playbook's top-level variables, and `:retry` re-runs that whole
/// statement. Imports made by earlier steps are replayed before each step (the resolver
/// caches modules, so a module's own code runs once).
///
/// The run is an ordinary run of the runtime's lifecycle (its `--timeout` included); only a
/// script error opens the REPL. Ctrl-C, `--timeout` and internal errors end the run as they
/// end `dockhand run`.
pub fn run_with_repl_on_failure(
    rt: &Runtime,
    script: &Script,
    values: Map,
    history: Option<PathBuf>,
) -> Result<RunOutcome> {
    let run = rt.begin(script, values)?;
    let mut session = Session::new(rt);
    let listener = spawn_ctrl_c_listener(rt, session.running_slot())?;
    let value = Steps::new(script).run(&mut session, history);
    listener.abort();
    Ok(run.finish(value?))
}

/// The playbook cut into steps, and the imports earlier steps made.
struct Steps<'a> {
    script: &'a Script,
    functions: AST,
    steps: Vec<Stmt>,
    imports: Vec<Stmt>,
}

impl<'a> Steps<'a> {
    fn new(script: &'a Script) -> Self {
        let mut functions = script.ast.clone();
        functions.clear_statements();
        Steps {
            script,
            functions,
            steps: script.ast.statements().to_vec(),
            imports: Vec::new(),
        }
    }

    /// Runs every step; the value of the last one.
    fn run(&mut self, session: &mut Session<'_>, history: Option<PathBuf>) -> Result<Dynamic> {
        let mut value = Dynamic::UNIT;
        let mut i = 0;
        while let Some(step) = self.steps.get(i).cloned() {
            let body = self.imports.iter().cloned().chain([step.clone()]);
            let mut exec = self.functions.merge(&AST::new(body, rhai::Module::new()));
            exec.set_source(self.script.name.clone());
            match session.run_ast(&exec, &self.script.name) {
                Ok(v) => {
                    if matches!(step, Stmt::Import(..)) {
                        self.imports.push(step);
                    }
                    value = v;
                    i += 1;
                }
                Err(Error::Script(se)) => match self.ask(session, i, &step, &se, &history)? {
                    End::Retry => eprintln!("retrying step {}", i + 1),
                    End::Continue => {
                        eprintln!("skipping step {}", i + 1);
                        i += 1;
                    }
                    End::Abort | End::Quit => return Err(Error::Script(se)),
                },
                Err(other) => return Err(other),
            }
        }
        Ok(value)
    }

    /// Shows the failed step `i` and opens the REPL on the session's variables.
    fn ask(
        &self,
        session: &mut Session<'_>,
        i: usize,
        step: &Stmt,
        se: &ScriptError,
        history: &Option<PathBuf>,
    ) -> Result<End> {
        eprint!("{se}");
        eprintln!(
            "step {} of {} failed (the statement at {}:{})",
            i + 1,
            self.steps.len(),
            self.script.name,
            step.position().line().unwrap_or(0)
        );
        let opts = Options {
            history: history.clone(),
            failure_mode: true,
        };
        interactive(session, &opts)
    }
}
