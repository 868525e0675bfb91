//! `state::` — the run journal: named records that survive a crash.
//!
//! The seeds' bash rebuild kept `.rebuild_state_phase1.json` and its `--continue` broke when
//! the script died mid-write or when two runs raced. Here a journal is a JSON file under
//! `.dockhand/state/<name>.json` with three guarantees:
//!
//! * **Never half-written.** Every change rewrites the file atomically (temporary file, fsync,
//!   rename), so `kill -9` at any instant leaves the previous or the new version.
//! * **One writer.** Opening a journal takes an OS lock on `<name>.lock`; a second run that
//!   opens it is refused with the holder's pid and command. The OS drops the lock when the
//!   process dies, so a crash never leaves a stale lock behind.
//! * **Timestamps.** Each record gets `updated_at` (RFC 3339) on every change.
//!
//! A journal holds whatever a playbook puts in it. A service's *rebuild* record is written
//! with `update_service` / `set_service` instead of `update` / `set`: the same, but its
//! `phase` and `status` must be words of [`crate::journal`], which the monitor reads back.
//!
//! In `--dry-run` the journal is read but kept in memory only; in `--read-only` use
//! `state::load` (a snapshot, no lock).
//!
//! ```rhai
//! let j = state::open("phase1");
//! j.update("data-api", #{ phase: "built", build_ms: 5120 });
//! j.update_service("data-api", #{ phase: "built", status: "in-progress" });
//! if j.get("data-api")?.phase == "completed" { print("done already"); }
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};
use serde_json::Value;

use super::{HostCtx, HostResult, Mode, at, fail, invalid, lock, refused, with_host};

pub use crate::journal::STATE_DIR;

/// An open journal (cheap to clone; all clones share the records and the lock).
#[derive(Clone)]
pub struct Journal(Arc<JournalInner>);

struct JournalInner {
    name: String,
    path: PathBuf,
    persist: bool,
    records: Mutex<serde_json::Map<String, Value>>,
    /// Holds the OS lock for as long as the journal is open.
    _lock: Option<File>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "journal({})", self.0.name)
    }
}

/// Open journals of one run, so opening the same name twice shares one lock and one view.
#[derive(Default)]
pub struct Journals(Mutex<HashMap<String, Journal>>);

impl Journals {
    pub fn clear(&self) {
        lock(&self.0).clear();
    }
}

fn check_name(name: &str) -> HostResult<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "journal name '{name}' must be letters, digits, '-', '_' or '.' (not starting with '.')"
        )))
    }
}

/// Largest journal file read (a fleet's journal is a few hundred KB).
pub const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// `O_NOFOLLOW`: open fails (ELOOP) when the last component is a symlink. Not in `std`, and
/// its value differs between architectures.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const O_NOFOLLOW: i32 = 0o100_000;
#[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
const O_NOFOLLOW: i32 = 0o400_000;

/// Opens a file dockhand itself manages (journal, lock) without following a symlink in its
/// last component: the directories were already checked by [`crate::host::fs::resolve`],
/// and this closes the gap between that check and the open.
fn open_no_follow(path: &Path, opts: &mut OpenOptions) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    opts.custom_flags(O_NOFOLLOW).open(path).map_err(|e| {
        if e.raw_os_error() == Some(40) {
            // ELOOP
            std::io::Error::other(
                "it is a symlink; dockhand does not follow symlinks for its own files",
            )
        } else {
            e
        }
    })
}

/// The journal directory, the journal file and its lock, each confined to the workspace
/// like every `fs::` path: a symlinked `.dockhand`, `.dockhand/state`, `<name>.json` or
/// `<name>.lock` that leads outside the root is refused.
fn journal_paths(root: &Path, name: &str) -> HostResult<(PathBuf, PathBuf, PathBuf)> {
    let dir = crate::host::fs::resolve(root, STATE_DIR)?;
    let json = crate::host::fs::resolve(root, &format!("{STATE_DIR}/{name}.json"))?;
    let lock = crate::host::fs::resolve(root, &format!("{STATE_DIR}/{name}.lock"))?;
    for p in [&json, &lock] {
        if p.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(refused(format!(
                "{} is a symlink; dockhand's journals and locks must be plain files in the \
                 workspace (remove the link)",
                p.display()
            )));
        }
    }
    Ok((dir, json, lock))
}

/// Reads a journal file's records; a missing file is an empty journal.
pub fn read_records(path: &Path) -> HostResult<serde_json::Map<String, Value>> {
    use std::io::Read;
    let f = match open_no_follow(path, OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(fail(format!("cannot read journal {}: {e}", path.display()))),
    };
    let mut bytes = Vec::new();
    f.take(MAX_JOURNAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read journal {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(fail(format!(
            "journal {} is larger than {} MiB; it is not a dockhand journal — move it aside",
            path.display(),
            MAX_JOURNAL_BYTES / (1024 * 1024)
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(format!(
            "journal {} is not UTF-8 text; move it aside to start afresh",
            path.display()
        ))
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "journal {} is not valid JSON (line {}, column {}): {e}; move it aside to start afresh",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    match v.get("records") {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(fail(format!(
            "journal {} has no \"records\" object",
            path.display()
        ))),
    }
}

fn take_lock(lock_path: &Path, name: &str) -> HostResult<File> {
    let mut f = open_no_follow(
        lock_path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .map_err(|e| fail(format!("cannot create lock {}: {e}", lock_path.display())))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(lock_path).unwrap_or_default();
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                holder.to_string()
            };
            return Err(fail(format!(
                "journal '{name}' is in use by another dockhand run ({who}); \
                 wait for it to finish or stop it, then run again (use --continue to resume)"
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(fail(format!("cannot lock {}: {e}", lock_path.display())));
        }
    }
    let cmd: Vec<String> = std::env::args().collect();
    let _ = f.set_len(0);
    let _ = writeln!(
        f,
        "pid {}, started {}, command: {}",
        std::process::id(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        cmd.join(" ")
    );
    Ok(f)
}

/// Removes temporary files an earlier run left when it was killed mid-write. Safe because we
/// hold the journal's lock: no other process can be writing them.
fn sweep_temp_files(dir: &Path, name: &str) {
    let prefix = format!(".{name}.json.tmp-");
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A record's fields as JSON; a record must be a map.
fn record_fields(value: &Dynamic) -> HostResult<serde_json::Map<String, Value>> {
    match crate::host::fs::dynamic_to_json(value)? {
        Value::Object(fields) => Ok(fields),
        _ => Err(invalid(
            "a journal record must be a map, like #{ phase: \"built\" }",
        )),
    }
}

impl Journal {
    /// Opens (creating if needed) the journal `name` in `h`'s workspace.
    pub fn open(h: &HostCtx, name: &str) -> HostResult<Journal> {
        check_name(name)?;
        if h.mode == Mode::ReadOnly {
            return Err(refused(format!(
                "state::open(\"{name}\") writes a journal, and this run is --read-only; use state::load(\"{name}\") to read it"
            )));
        }
        if let Some(j) = lock(&h.journals.0).get(name) {
            return Ok(j.clone());
        }
        let (dir, path, lock_path) = journal_paths(&h.root, name)?;
        let persist = h.mode == Mode::Normal;
        let lock_file = if persist {
            std::fs::create_dir_all(&dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
            // Created just now: check again that no component is a link out of the root.
            journal_paths(&h.root, name)?;
            Some(take_lock(&lock_path, name)?)
        } else {
            None
        };
        if persist {
            sweep_temp_files(&dir, name);
        }
        let records = read_records(&path)?;
        let j = Journal(Arc::new(JournalInner {
            name: name.to_string(),
            path,
            persist,
            records: Mutex::new(records),
            _lock: lock_file,
        }));
        lock(&h.journals.0).insert(name.to_string(), j.clone());
        Ok(j)
    }

    fn save(&self, records: &serde_json::Map<String, Value>) -> HostResult<()> {
        if !self.0.persist {
            return Ok(());
        }
        let doc = serde_json::json!({
            "version": 1,
            "name": self.0.name,
            "updated_at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "records": records,
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| fail(e.to_string()))? + "\n";
        crate::host::fs::atomic_write(&self.0.path, text.as_bytes()).map_err(|e| {
            fail(format!(
                "cannot write journal {}: {e}",
                self.0.path.display()
            ))
        })
    }

    /// Replaces (`merge == false`) or merges into the record `key`, then saves.
    pub fn put(&self, key: &str, value: &Dynamic, merge: bool) -> HostResult<Map> {
        self.put_fields(key, record_fields(value)?, merge)
    }

    /// Like [`Journal::put`] for a service's rebuild record: its `phase` and `status` must
    /// be ones the rebuild knows ([`crate::journal::Phase`], [`crate::journal::Status`]).
    pub fn put_service(&self, key: &str, value: &Dynamic, merge: bool) -> HostResult<Map> {
        let fields = record_fields(value)?;
        crate::journal::check_service_record(&fields)
            .map_err(|e| invalid(format!("journal record '{key}': {e}")))?;
        self.put_fields(key, fields, merge)
    }

    fn put_fields(
        &self,
        key: &str,
        mut fields: serde_json::Map<String, Value>,
        merge: bool,
    ) -> HostResult<Map> {
        fields.insert(
            "updated_at".into(),
            Value::String(
                humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            ),
        );
        let mut records = lock(&self.0.records);
        let entry = records
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if merge && let Value::Object(existing) = entry {
            existing.extend(fields);
        } else {
            *entry = Value::Object(fields);
        }
        let out = entry.clone();
        self.save(&records)?;
        match crate::host::fs::json_to_dynamic(out)?.try_cast::<Map>() {
            Some(m) => Ok(m),
            None => Ok(Map::new()),
        }
    }

    pub fn get(&self, key: &str) -> HostResult<Dynamic> {
        match lock(&self.0.records).get(key) {
            Some(v) => crate::host::fs::json_to_dynamic(v.clone()),
            None => Ok(Dynamic::UNIT),
        }
    }

    pub fn records(&self) -> HostResult<Dynamic> {
        crate::host::fs::json_to_dynamic(Value::Object(lock(&self.0.records).clone()))
    }
}

#[export_module]
pub mod state_api {
    use super::*;

    pub type Journal = super::Journal;

    /// Opens the journal `name` (`.dockhand/state/<name>.json`), creating it if needed and
    /// locking it for this run. Fails if another dockhand process holds it.
    #[rhai_fn(return_raw)]
    pub fn open(ctx: NativeCallContext, name: &str) -> Result<Journal, Box<EvalAltResult>> {
        with_host(&ctx, |h| Journal::open(h, name))
    }

    /// Reads a journal's records as a map (key → record) without locking it; `#{}` if it does
    /// not exist. Works in `--read-only`.
    #[rhai_fn(return_raw)]
    pub fn load(ctx: NativeCallContext, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            check_name(name)?;
            let (_, path, _) = journal_paths(&h.root, name)?;
            crate::host::fs::json_to_dynamic(Value::Object(read_records(&path)?))
        })
    }

    /// Names of the journals in this workspace, sorted.
    #[rhai_fn(return_raw)]
    pub fn list(ctx: NativeCallContext) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let dir = crate::host::fs::resolve(&h.root, STATE_DIR)?;
            let mut names: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".json"))
                            .map(String::from)
                    })
                    .filter(|n| !n.starts_with('.'))
                    .collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            Ok(names.into_iter().map(Dynamic::from).collect())
        })
    }

    /// Replaces the record `key` with `record` (a map) and saves the journal atomically.
    /// Returns the stored record (with `updated_at`).
    #[rhai_fn(global, name = "set", return_raw)]
    pub fn set(
        ctx: NativeCallContext,
        j: &mut Journal,
        key: &str,
        record: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        at(ctx.call_position(), || j.put(key, &record, false))
    }

    /// Merges the fields of `fields` into the record `key` (creating it) and saves atomically.
    /// Returns the whole record.
    #[rhai_fn(global, name = "update", return_raw)]
    pub fn update(
        ctx: NativeCallContext,
        j: &mut Journal,
        key: &str,
        fields: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        at(ctx.call_position(), || j.put(key, &fields, true))
    }

    /// Replaces the rebuild record of service `key`, like `set`, refusing a `phase` or
    /// `status` the rebuild does not know (pending, backed-up, building, built, recreating,
    /// recreated, starting-next, next-started, promoting, pushing, pushed, updating, updated,
    /// rolling-back, rolled-back,
    /// completed, failed, restarting, restarted, done; pending, in-progress, completed,
    /// failed, rolled-back): the monitor reads them back.
    #[rhai_fn(global, name = "set_service", return_raw)]
    pub fn set_service(
        ctx: NativeCallContext,
        j: &mut Journal,
        key: &str,
        record: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        at(ctx.call_position(), || j.put_service(key, &record, false))
    }

    /// Merges `fields` into the rebuild record of service `key`, like `update`, refusing a
    /// `phase` or `status` the rebuild does not know (see `set_service`). Returns the whole
    /// record.
    #[rhai_fn(global, name = "update_service", return_raw)]
    pub fn update_service(
        ctx: NativeCallContext,
        j: &mut Journal,
        key: &str,
        fields: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        at(ctx.call_position(), || j.put_service(key, &fields, true))
    }

    /// The record `key`, or `()` if there is none.
    #[rhai_fn(global, name = "get", return_raw, pure)]
    pub fn get(
        ctx: NativeCallContext,
        j: &mut Journal,
        key: &str,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        at(ctx.call_position(), || j.get(key))
    }

    /// All records, as a map key → record.
    #[rhai_fn(global, name = "records", return_raw, pure)]
    pub fn records(ctx: NativeCallContext, j: &mut Journal) -> Result<Dynamic, Box<EvalAltResult>> {
        at(ctx.call_position(), || j.records())
    }

    /// The record keys, sorted.
    #[rhai_fn(global, name = "keys", pure)]
    pub fn keys(j: &mut Journal) -> Array {
        let mut k: Vec<String> = lock(&j.0.records).keys().cloned().collect();
        k.sort();
        k.into_iter().map(Dynamic::from).collect()
    }

    /// The journal's file, relative to the workspace root.
    #[rhai_fn(global, get = "path", pure)]
    pub fn path(j: &mut Journal) -> String {
        format!("{STATE_DIR}/{}.json", j.0.name)
    }

    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(j: &mut Journal) -> String {
        format!("journal({})", j.0.name)
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(state_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Journal>("Journal");
    engine.register_static_module("state", MODULE.clone());
}
