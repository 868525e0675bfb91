//! Why an error ends the run the way it does, as a type rather than as message text.
//!
//! A failed step (a probe that failed, a `throw`) exits 1; a script that is wrong exits 2.
//! Host calls used wrongly, sandbox refusals, imports that cannot be resolved and bad config
//! files are the script's fault too, so they exit 2. Those errors used to be recognised by
//! the start of their message (`"refused: "`), so a script that threw `"refused: x"` itself
//! exited 2 as if the runtime had refused it. Now the runtime marks the *value* it raises
//! with a [`Fault`] tag (Rhai keeps a small integer tag on every `Dynamic`); `catch` hands
//! the same value to the script, and a re-`throw` of it keeps the tag, so the class survives
//! exactly as far as the error itself does, and a string the script builds has none.
//!
//! The message still starts with the same words, because people read them: only the exit
//! class stopped depending on them.

use rhai::{Dynamic, EvalAltResult, Position};

/// A runtime-raised error that is the script's fault (exit code 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A host call used wrongly: a bad argument or option is a bug in the script.
    InvalidArgument,
    /// An `import` that names no module.
    ModuleNotFound,
    /// A call the sandbox refuses (read-only mode, a path outside the workspace, ...).
    Refused,
    /// A config file that does not parse or names an unknown key.
    ConfigError,
    /// A module that imports itself, directly or through others.
    ImportCycle,
}

/// Tags are small integers any value can carry; ours sit in a range of their own (`0x4448`,
/// "DH") so that a script's own use of `tag` does not collide by accident.
const TAG_BASE: i32 = 0x4448_0000;

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::InvalidArgument,
        Fault::ModuleNotFound,
        Fault::Refused,
        Fault::ConfigError,
        Fault::ImportCycle,
    ];

    /// The words the message starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            Fault::InvalidArgument => "invalid argument: ",
            Fault::ModuleNotFound => "module not found: ",
            Fault::Refused => "refused: ",
            Fault::ConfigError => "config error: ",
            Fault::ImportCycle => "import cycle: ",
        }
    }

    fn tag(self) -> i32 {
        TAG_BASE + self as i32
    }

    /// The error value: the message behind its prefix, tagged with this fault.
    pub fn value(self, msg: impl AsRef<str>) -> Dynamic {
        let mut d = Dynamic::from(format!("{}{}", self.prefix(), msg.as_ref()));
        d.set_tag(self.tag() as _);
        d
    }

    /// The error a host call returns (Rhai fills in the position of the call).
    pub fn error(self, msg: impl AsRef<str>) -> Box<EvalAltResult> {
        EvalAltResult::ErrorRuntime(self.value(msg), Position::NONE).into()
    }

    /// The fault a raised value carries, if the runtime raised it.
    pub fn of_value(d: &Dynamic) -> Option<Fault> {
        #[allow(clippy::unnecessary_cast)] // `Tag` is i16 under `only_i32`
        let tag = d.tag() as i32;
        Fault::ALL.into_iter().find(|f| f.tag() == tag)
    }

    /// The fault of an error (looking through the call and module frames around it).
    pub fn of(err: &EvalAltResult) -> Option<Fault> {
        match err.unwrap_inner() {
            EvalAltResult::ErrorRuntime(d, _) => Fault::of_value(d),
            _ => None,
        }
    }
}

/// Why a run was stopped by one of its limits (`--max-memory`): the token of the
/// `ErrorTerminated` raised, which a script's `try`/`catch` cannot swallow. Reported as a
/// script error, exit 2, unlike a stop from outside (Ctrl-C, `--timeout`).
#[derive(Debug, Clone)]
pub struct LimitExceeded(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_survives_as_its_value_and_a_look_alike_string_has_none() {
        let e = Fault::Refused.error("read-only run");
        assert_eq!(Fault::of(&e), Some(Fault::Refused));
        assert_eq!(crate::diagnostic::message_of(&e), "refused: read-only run");
        let forged: Box<EvalAltResult> =
            EvalAltResult::ErrorRuntime(Dynamic::from("refused: x"), Position::NONE).into();
        assert_eq!(Fault::of(&forged), None);
        for f in Fault::ALL {
            assert_eq!(Fault::of_value(&f.value("m")), Some(f));
        }
    }
}
