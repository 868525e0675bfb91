//! The library's error type. The CLI maps each variant to an exit code and renders it; an
//! embedding program can match on it.

use std::path::PathBuf;
use std::time::Duration;

use crate::diagnostic::ScriptError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The script failed to compile or raised an error (rendered with file:line:col).
    #[error("{0}")]
    Script(Box<ScriptError>),
    /// Several scripts failed `check`.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Scripts(Vec<ScriptError>),
    /// Bad command-line input or configuration.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// `--timeout` elapsed.
    #[error("timed out after {}; the run was stopped (raise --timeout if it needs longer)", crate::util::human::duration(*.0))]
    TimedOut(Duration),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// 0 ok, 1 playbook failure, 2 usage/script/config error, 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Script(e) => e.exit_code(),
            Error::Scripts(_) | Error::Usage(_) | Error::Io { .. } => 2,
            Error::Interrupted => 130,
            Error::TimedOut(_) => 1,
            Error::Internal(_) => 2,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
