//! What a run produced, and its one JSON form.
//!
//! `run --json`, `watch --json` (one object per run) and `validate --json` (one per script)
//! all print a run's result. They wrap it in different context (a run's mode, a watch run's
//! trigger, a validation's name), but the result itself — the script's value, its checks,
//! its dry-run plan, or the error that stopped it — is serialised here only, so the three
//! cannot drift apart.

use rhai::Dynamic;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::{CheckResult, Mode, PlannedAction};

/// What a finished run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// The script's final value, as JSON-able data.
    #[serde(skip)]
    pub value: Dynamic,
    pub checks: Vec<CheckResult>,
    pub plan: Vec<PlannedAction>,
    pub duration_ms: u64,
}

impl RunOutcome {
    pub fn failed_checks(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// 0 when every check passed, else 1.
    pub fn exit_code(&self) -> i32 {
        if self.checks.iter().all(|c| c.ok) {
            0
        } else {
            1
        }
    }

    /// The script's final value as JSON (`null` when it has no JSON form, e.g. a function
    /// pointer).
    pub fn value_json(&self) -> serde_json::Value {
        rhai::serde::from_dynamic::<serde_json::Value>(&self.value)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// A run's result as JSON fields: `value`, `checks` and `plan` of a run that finished,
/// `error` of one that did not. Flatten it into the context a command adds.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ResultJson {
    Finished {
        value: serde_json::Value,
        checks: Vec<CheckResult>,
        plan: Vec<PlannedAction>,
    },
    Failed {
        error: serde_json::Value,
    },
}

impl ResultJson {
    pub fn of(result: &Result<RunOutcome>) -> Self {
        match result {
            Ok(o) => ResultJson::Finished {
                value: o.value_json(),
                checks: o.checks.clone(),
                plan: o.plan.clone(),
            },
            Err(e) => ResultJson::Failed {
                error: error_json(e),
            },
        }
    }
}

/// The summary `run --json` prints of a finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunJson {
    /// "ok", or "failed" when a check failed.
    pub status: &'static str,
    pub exit_code: i32,
    pub mode: Mode,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub result: ResultJson,
}

impl RunJson {
    pub fn of(outcome: &RunOutcome, mode: Mode) -> Self {
        let exit_code = outcome.exit_code();
        RunJson {
            status: if exit_code == 0 { "ok" } else { "failed" },
            exit_code,
            mode,
            duration_ms: outcome.duration_ms,
            result: ResultJson::Finished {
                value: outcome.value_json(),
                checks: outcome.checks.clone(),
                plan: outcome.plan.clone(),
            },
        }
    }
}

/// An error as JSON: a script error with its location and chain, several for `check`, else
/// its message (secrets scrubbed).
pub fn error_json(e: &Error) -> serde_json::Value {
    match e {
        Error::Script(se) => serde_json::to_value(se).unwrap_or_default(),
        Error::Scripts(list) => serde_json::to_value(list).unwrap_or_default(),
        other => serde_json::json!({ "message": crate::secrets::scrub(&other.to_string()) }),
    }
}

/// An error as the terminal shows it: a script error with `file:line:col`, the line and a
/// caret; Ctrl-C as `interrupted`; anything else as `error: ...` (secrets scrubbed). Ends
/// with a newline.
pub fn error_text(e: &Error) -> String {
    match e {
        Error::Script(_) | Error::Scripts(_) => e.to_string(),
        Error::Interrupted => "interrupted\n".into(),
        other => format!("error: {}\n", crate::secrets::scrub(&other.to_string())),
    }
}
