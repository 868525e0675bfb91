//! The words of a run journal: where a service's rebuild stands ([`Phase`]) and how it is
//! doing ([`Status`]).
//!
//! `stdlib/rebuild` writes them and the monitor reads them back, so they used to be a
//! contract kept by spelling: a script that wrote `phase: "buildng"` produced a journal the
//! monitor silently grouped wrong. Here they are closed enumerations. The host side
//! ([`check_service_record`], behind `Journal.update_service`) refuses a value outside them
//! with the list of allowed ones; a reader parses into [`Recorded`], which keeps a value it
//! does not know (an older journal, a hand edit) as text instead of failing.
//!
//! Pure data: no files, no Rhai.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where journals live, relative to the workspace root.
pub const STATE_DIR: &str = ".dockhand/state";

/// The services of a run in the order it took them: its `_run` record's `services` (empty
/// when the record or the list is missing, as in a journal from before it was written).
pub fn run_services(run: Option<&Value>) -> Vec<String> {
    run.and_then(|m| m.get("services"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Where one service's rebuild stands. The stop-first path is pending → backed-up → building
/// → built → recreating → recreated → completed; start-first replaces the last three with
/// starting-next → next-started → promoting; a Swarm service's with pushing → pushed →
/// updating → updated (Swarm replaces the tasks); a failure ends in rolling-back → rolled-back,
/// or failed. `restarting` → `restarted` → `done` are story 3's restarts of infrastructure
/// services, which share the journal and the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Pending,
    BackedUp,
    Building,
    Built,
    Recreating,
    Recreated,
    StartingNext,
    NextStarted,
    Promoting,
    Pushing,
    Pushed,
    Updating,
    Updated,
    RollingBack,
    RolledBack,
    Completed,
    Failed,
    Restarting,
    Restarted,
    Done,
}

/// How a service's rebuild is doing; the monitor groups services by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Completed,
    RolledBack,
    Failed,
    InProgress,
    Pending,
}

/// The names of a closed set of journal words, as written in the file.
pub trait Word: Copy + Sized + 'static {
    /// What the field is called (`phase`, `status`), for messages.
    const FIELD: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// The value's name as written in the journal.
    fn name(self) -> &'static str;
}

impl Word for Phase {
    const FIELD: &'static str = "phase";
    const ALL: &'static [Phase] = &[
        Phase::Pending,
        Phase::BackedUp,
        Phase::Building,
        Phase::Built,
        Phase::Recreating,
        Phase::Recreated,
        Phase::StartingNext,
        Phase::NextStarted,
        Phase::Promoting,
        Phase::Pushing,
        Phase::Pushed,
        Phase::Updating,
        Phase::Updated,
        Phase::RollingBack,
        Phase::RolledBack,
        Phase::Completed,
        Phase::Failed,
        Phase::Restarting,
        Phase::Restarted,
        Phase::Done,
    ];
    fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::BackedUp => "backed-up",
            Phase::Building => "building",
            Phase::Built => "built",
            Phase::Recreating => "recreating",
            Phase::Recreated => "recreated",
            Phase::StartingNext => "starting-next",
            Phase::NextStarted => "next-started",
            Phase::Promoting => "promoting",
            Phase::Pushing => "pushing",
            Phase::Pushed => "pushed",
            Phase::Updating => "updating",
            Phase::Updated => "updated",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
            Phase::Completed => "completed",
            Phase::Failed => "failed",
            Phase::Restarting => "restarting",
            Phase::Restarted => "restarted",
            Phase::Done => "done",
        }
    }
}

impl Word for Status {
    const FIELD: &'static str = "status";
    const ALL: &'static [Status] = &[
        Status::Completed,
        Status::RolledBack,
        Status::Failed,
        Status::InProgress,
        Status::Pending,
    ];
    fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::RolledBack => "rolled-back",
            Status::Failed => "failed",
            Status::InProgress => "in-progress",
            Status::Pending => "pending",
        }
    }
}

/// A journal word that is not one of its field's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} '{value}'; a journal {field} is one of: {allowed}")]
pub struct UnknownWord {
    pub field: &'static str,
    pub value: String,
    /// The allowed names, comma-separated.
    pub allowed: String,
}

fn parse_word<T: Word>(s: &str) -> Result<T, UnknownWord> {
    T::ALL
        .iter()
        .copied()
        .find(|w| w.name() == s)
        .ok_or_else(|| UnknownWord {
            field: T::FIELD,
            value: s.to_string(),
            allowed: T::ALL
                .iter()
                .map(|w| w.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl FromStr for Phase {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        parse_word(s)
    }
}

impl FromStr for Status {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        parse_word(s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A word read back from a journal file: one this build knows, or the text that was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded<T> {
    Known(T),
    /// Not one of the field's values (an older or newer dockhand, or a hand edit).
    Unknown(String),
}

impl<T: Word> Recorded<T> {
    /// `text` as a `T`, or kept as [`Recorded::Unknown`].
    pub fn parse(text: &str) -> Self {
        match parse_word::<T>(text) {
            Ok(w) => Recorded::Known(w),
            Err(_) => Recorded::Unknown(text.to_string()),
        }
    }

    /// A record's `field` (`None` when it is missing or not text).
    pub fn of(record: &Value, field: &str) -> Option<Self> {
        record.get(field).and_then(Value::as_str).map(Self::parse)
    }

    pub fn known(&self) -> Option<T> {
        match self {
            Recorded::Known(w) => Some(*w),
            Recorded::Unknown(_) => None,
        }
    }

    pub fn is(&self, w: T) -> bool
    where
        T: PartialEq,
    {
        self.known() == Some(w)
    }
}

/// An unknown value shows what the file said, marked as unknown.
impl<T: Word> fmt::Display for Recorded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recorded::Known(w) => f.write_str(w.name()),
            Recorded::Unknown(s) => write!(f, "unknown '{s}'"),
        }
    }
}

/// Checks the fields about to be written into a service's record: a `phase` or `status`
/// among them must be one of [`Phase`] / [`Status`]. Other fields are the caller's.
pub fn check_service_record(fields: &Map<String, Value>) -> Result<(), UnknownWord> {
    fn check<T: Word>(fields: &Map<String, Value>) -> Result<(), UnknownWord> {
        match fields.get(T::FIELD) {
            None => Ok(()),
            Some(Value::String(s)) => parse_word::<T>(s).map(|_| ()),
            Some(other) => parse_word::<T>(&other.to_string()).map(|_| ()),
        }
    }
    check::<Phase>(fields)?;
    check::<Status>(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_the_serde_names() {
        for p in Phase::ALL {
            assert_eq!(json!(p), json!(p.name()));
            assert_eq!(p.name().parse::<Phase>(), Ok(*p));
        }
        for s in Status::ALL {
            assert_eq!(json!(s), json!(s.name()));
            assert_eq!(s.name().parse::<Status>(), Ok(*s));
        }
    }

    #[test]
    fn an_unknown_word_is_refused_with_the_allowed_ones() {
        let e = "buildng".parse::<Phase>().unwrap_err();
        assert_eq!(e.value, "buildng");
        let m = e.to_string();
        assert!(m.contains("unknown phase 'buildng'"), "{m}");
        assert!(m.contains("backed-up, building, built"), "{m}");
        let fields = json!({ "phase": "built", "status": "done", "anything": 1 });
        let e = check_service_record(fields.as_object().unwrap()).unwrap_err();
        assert_eq!((e.field, e.value.as_str()), ("status", "done"));
        let e = check_service_record(json!({ "phase": null }).as_object().unwrap()).unwrap_err();
        assert_eq!(e.value, "null");
        assert!(check_service_record(json!({ "reason": "x" }).as_object().unwrap()).is_ok());
    }

    #[test]
    fn an_unknown_word_read_back_is_kept_as_text() {
        let r = json!({ "phase": "warping", "status": "completed" });
        assert_eq!(
            Recorded::<Phase>::of(&r, "phase"),
            Some(Recorded::Unknown("warping".into()))
        );
        assert_eq!(
            Recorded::<Status>::of(&r, "status"),
            Some(Recorded::Known(Status::Completed))
        );
        assert_eq!(
            Recorded::<Phase>::parse("warping").to_string(),
            "unknown 'warping'"
        );
        assert_eq!(Recorded::<Phase>::of(&r, "nothing"), None);
    }
}
