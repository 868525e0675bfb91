//! A failed build's kind as data on the error value it raises (see `docker::failure_kind`).

use rhai::{Dynamic, EvalAltResult};

use crate::docker::build::{BuildError, FailureKind};

/// Tags on a failed build's error value, one per [`FailureKind`], in a range of their own
/// (next to the runtime's fault tags, see `diagnostic::kind`): the kind travels with the value
/// through `catch` and re-`throw`, and a string a script builds has none.
const FAILURE_TAG_BASE: i32 = 0x4448_0100;
const FAILURE_KINDS: [FailureKind; 3] =
    [FailureKind::Step, FailureKind::Config, FailureKind::Engine];

fn failure_tag(kind: FailureKind) -> i32 {
    FAILURE_TAG_BASE + FAILURE_KINDS.iter().position(|k| *k == kind).unwrap_or(0) as i32
}

/// The error a failed build raises: its message as it is, its kind as the value's tag.
pub fn build_failure(e: BuildError) -> Box<EvalAltResult> {
    let kind = e.kind();
    let mut value = Dynamic::from(e.to_string());
    if let Some(k) = kind {
        value.set_tag(failure_tag(k) as _);
    }
    EvalAltResult::ErrorRuntime(value, rhai::Position::NONE).into()
}

/// The kind of a failed build's error value, `None` for any other value.
pub fn failure_kind_of(v: &Dynamic) -> Option<FailureKind> {
    #[allow(clippy::unnecessary_cast)] // `Tag` is i16 under `only_i32`
    let tag = v.tag() as i32;
    FAILURE_KINDS.into_iter().find(|k| failure_tag(*k) == tag)
}

/// The word scripts see for a kind.
pub(super) fn kind_word(k: FailureKind) -> &'static str {
    match k {
        FailureKind::Step => "step",
        FailureKind::Config => "config",
        FailureKind::Engine => "engine",
    }
}
