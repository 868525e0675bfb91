//! `dockhand watch`: the real binary in temporary workspaces, spawned and read line by line.
//!
//! Every wait is bounded (generous: CI is a loaded 2-core machine); nothing sleeps to
//! synchronise — each step waits for the line that proves the previous one happened.

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::Test;

/// Long enough for a debug build on a busy machine, short enough to fail a hang.
const WAIT: Duration = Duration::from_secs(30);

/// A running `dockhand watch`, its stdout and stderr merged into one stream of lines.
struct Watching {
    child: Child,
    lines: Receiver<(&'static str, String)>,
    seen: Vec<String>,
    dir: PathBuf,
}

impl Watching {
    fn start(t: &Test) -> Self {
        let mut child = t.spawn();
        let (tx, rx) = channel();
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(("stdout", line));
            }
        });
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(("stderr", line));
            }
        });
        Watching {
            child,
            lines: rx,
            seen: Vec::new(),
            dir: t.path().to_path_buf(),
        }
    }

    /// Waits for a line (on either stream) containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        self.wait_where(needle, |_, l| l.contains(needle))
    }

    /// Waits for a stdout line containing `needle`.
    fn wait_stdout(&mut self, needle: &str) -> String {
        self.wait_where(needle, |s, l| s == "stdout" && l.contains(needle))
    }

    fn wait_where(&mut self, what: &str, pred: impl Fn(&str, &str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => {
                    self.seen.push(format!("[{stream}] {line}"));
                    if pred(stream, &line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {what:?} within {WAIT:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "dockhand watch ended before printing {what:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes a file in place (truncate + write).
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch(t: Test, args: &[&str]) -> (Test, Watching) {
    let mut all = vec!["watch"];
    all.extend_from_slice(args);
    let t = t.args(&all);
    let w = Watching::start(&t);
    (t, w)
}

#[test]
fn editing_the_playbook_runs_it_again_with_the_new_text() {
    let (_t, mut w) = watch(
        Test::new().file("main.rhai", "print(\"version one\");\n"),
        &["main.rhai"],
    );
    w.wait_for("version one");
    w.wait_for("[watch] run 1 (start): pass (exit 0)");
    w.write("main.rhai", "print(\"version two\");\n");
    w.wait_for("[watch] run 2 started (change of main.rhai)");
    w.wait_for("version two");
    let line = w.wait_for("[watch] run 2 (change of main.rhai)");
    assert!(line.contains("pass (exit 0)"), "{line}");
    let history = w.wait_for("[watch] history:");
    assert!(history.contains("2 runs: 2 pass"), "{history}");
}

#[test]
fn editing_an_imported_module_runs_the_playbook_again() {
    let (_t, mut w) = watch(
        Test::new()
            .file(
                "main.rhai",
                "import \"lib/greet\" as g;\nprint(`module says ${g::word()}`);\n",
            )
            .file("lib/greet.rhai", "fn word() { \"alpha\" }\n"),
        &["main.rhai"],
    );
    w.wait_for("module says alpha");
    let watching = w.wait_for("[watch] watching lib/greet.rhai, main.rhai");
    assert!(watching.contains("lib/greet.rhai"), "{watching}");
    w.wait_for("[watch] run 1 (start): pass");
    // The module cache must not serve the old text.
    w.write("lib/greet.rhai", "fn word() { \"beta\" }\n");
    w.wait_for("[watch] run 2 started (change of lib/greet.rhai)");
    w.wait_for("module says beta");
}

#[test]
fn atomic_saves_rename_and_delete_then_create_are_seen_every_time() {
    let (_t, mut w) = watch(
        Test::new().file("main.rhai", "print(\"save 0\");\n"),
        &["main.rhai"],
    );
    w.wait_for("[watch] run 1 (start): pass");
    // Write a temporary file and rename it over the playbook (most editors), twice: the
    // second save proves the watch survived the first rename (the inode changed).
    for i in 1..=2 {
        let tmp = w.path(".main.rhai.swp-tmp");
        std::fs::write(&tmp, format!("print(\"save {i}\");\n")).unwrap();
        std::fs::rename(&tmp, w.path("main.rhai")).unwrap();
        w.wait_for(&format!("save {i}"));
        w.wait_for(&format!(
            "[watch] run {} (change of main.rhai): pass",
            i + 1
        ));
    }
    // vim-like: move the original aside as a backup, write a new file.
    std::fs::rename(w.path("main.rhai"), w.path("main.rhai~")).unwrap();
    w.write("main.rhai", "print(\"save 3\");\n");
    w.wait_for("save 3");
    // Delete, then create.
    std::fs::remove_file(w.path("main.rhai")).unwrap();
    w.write("main.rhai", "print(\"save 4\");\n");
    w.wait_for("save 4");
    // Nothing was a temporary file's own run: the temp and backup names are not watched.
    assert!(
        !w.seen
            .iter()
            .any(|l| l.contains("change of .main.rhai.swp-tmp")
                || l.contains("change of main.rhai~")),
        "{}",
        w.seen.join("\n")
    );
}

#[test]
fn a_syntax_error_is_shown_with_its_line_and_the_next_good_save_runs() {
    let (_t, mut w) = watch(
        Test::new().file("main.rhai", "print(\"good\");\n"),
        &["main.rhai"],
    );
    w.wait_for("[watch] run 1 (start): pass");
    w.write(
        "main.rhai",
        "let a = 1;\nlet b = (a + ;\nprint(\"unreachable\");\n",
    );
    let at = w.wait_for(" --> main.rhai:2:");
    assert!(at.contains("main.rhai:2:"), "{at}");
    w.wait_for("2 | let b = (a + ;");
    w.wait_for("^");
    w.wait_for("[watch] run 2 (change of main.rhai): ERROR (exit 2)");
    // Still watching: the fix runs.
    w.write("main.rhai", "print(\"fixed and running\");\n");
    w.wait_for("fixed and running");
    w.wait_for("[watch] run 3 (change of main.rhai): pass");
    assert!(
        !w.seen.iter().any(|l| l.contains("unreachable")),
        "the broken version must not run"
    );
}

#[test]
fn a_save_cancels_a_long_run_and_its_journal_stays_valid() {
    let script = |n: u32| {
        format!(
            "let j = state::open(\"watched\");\n\
             j.set(\"step\", #{{ n: {n} }});\n\
             print(\"saved {n}\");\n\
             time::sleep(60000);\n\
             print(\"woke {n}\");\n"
        )
    };
    let (_t, mut w) = watch(Test::new().file("main.rhai", &script(1)), &["main.rhai"]);
    w.wait_for("saved 1");
    let journal = w.path(".dockhand/state/watched.json");
    let saved = Instant::now();
    w.write("main.rhai", &script(2));
    let cancelled = w.wait_for("[watch] run 1 (start): cancelled");
    assert!(cancelled.contains("exit 130"), "{cancelled}");
    // The cancelled run's journal is intact JSON (written atomically, before the sleep).
    let text = std::fs::read_to_string(&journal).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("journal is not valid JSON after cancel ({e}):\n{text}"));
    assert_eq!(v["records"]["step"]["n"], 1, "{text}");
    w.wait_for("[watch] run 2 started (change of main.rhai)");
    // The new run opened the same journal: the cancelled run released its lock.
    w.wait_for("saved 2");
    let waited = saved.elapsed();
    assert!(
        waited < Duration::from_secs(20),
        "the new run took {waited:?}: the 60 s sleep was not cancelled"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(v["records"]["step"]["n"], 2);
    assert!(!w.seen.iter().any(|l| l.contains("woke")));
}

#[test]
fn every_runs_periodically_and_picks_up_an_edit() {
    let (_t, mut w) = watch(
        Test::new().file("main.rhai", "print(\"tick A\");\n"),
        &["main.rhai", "--every", "1s"],
    );
    w.wait_for("[watch] run 1 (start): pass");
    w.wait_for("[watch] run 2 started (every)");
    w.wait_for("tick A");
    w.write("main.rhai", "print(\"tick B\");\n");
    // A save during the wait runs at once (not at the next tick) ...
    let started = w.wait_for("(change of main.rhai)");
    assert!(started.contains("started"), "{started}");
    w.wait_for("tick B");
    // ... and the schedule goes on with the new text.
    w.wait_for("started (every)");
    w.wait_for("tick B");
    assert!(
        !w.seen
            .iter()
            .skip_while(|l| !l.contains("change of main.rhai"))
            .any(|l| l.contains("tick A")),
        "{}",
        w.seen.join("\n")
    );
}

#[test]
fn changing_the_config_file_runs_the_playbook_again() {
    let playbook = "let p = params(#{ config: #{ default_value: \"services.yaml\", help: \"Fleet config\" } });\n\
                    print(`config: ${fs::read(p.config)}`);\n";
    let (_t, mut w) = watch(
        Test::new()
            .file("main.rhai", playbook)
            .file("services.yaml", "default-one")
            .file("other/fleet.yaml", "given-one"),
        &["main.rhai", "--config", "other/fleet.yaml"],
    );
    w.wait_for("config: given-one");
    w.wait_for("[watch] watching main.rhai, other/fleet.yaml");
    w.wait_for("[watch] run 1 (start): pass");
    w.write("other/fleet.yaml", "given-two");
    w.wait_for("[watch] run 2 started (change of other/fleet.yaml)");
    w.wait_for("config: given-two");
    // The declared default is not the file in use: its change runs nothing.
    w.write("services.yaml", "default-two");
    w.write("main.rhai", &format!("{playbook}print(\"edited\");\n"));
    w.wait_for("edited");
    assert!(!w.seen.iter().any(|l| l.contains("change of services.yaml")));
}

#[test]
fn json_prints_one_object_per_run_on_stdout() {
    let (_t, mut w) = watch(
        Test::new().file("main.rhai", "check(\"always\", true);\n42\n"),
        &["main.rhai", "--json"],
    );
    let first: serde_json::Value = serde_json::from_str(&w.wait_stdout("\"run\":1")).unwrap();
    assert_eq!(first["trigger"], "start");
    assert_eq!(first["status"], "pass");
    assert_eq!(first["exit_code"], 0);
    assert_eq!(first["value"], 42);
    assert_eq!(first["checks"][0]["name"], "always");
    assert!(first["duration_ms"].is_u64());
    w.write("main.rhai", "check(\"always\", false);\n");
    // The run of the saved text (a save caught half-written would be a run of its own).
    let second: serde_json::Value =
        serde_json::from_str(&w.wait_stdout("\"exit_code\":1")).unwrap();
    assert_eq!(second["trigger"], "change");
    assert_eq!(second["file"], "main.rhai");
    assert_eq!(second["status"], "fail");
    assert_eq!(second["exit_code"], 1);
}

#[test]
fn a_playbook_broken_from_the_start_is_still_watched() {
    let (_t, mut w) = watch(Test::new().file("main.rhai", "let x = ;\n"), &["main.rhai"]);
    w.wait_for("[watch] run 1 (start): ERROR (exit 2)");
    w.write("main.rhai", "print(\"now it compiles\");\n");
    w.wait_for("now it compiles");
}

#[test]
fn ctrl_c_cancels_the_run_and_ends_the_watch_with_130() {
    let (_t, mut w) = watch(
        Test::new().file(
            "main.rhai",
            "print(\"sleeping\");\ntime::sleep(60000);\nprint(\"woke\");\n",
        ),
        &["main.rhai"],
    );
    w.wait_for("sleeping");
    common::signal(&w.child, "INT");
    let line = w.wait_for("[watch] run 1 (start)");
    assert!(line.contains("cancelled (exit 130)"), "{line}");
    w.wait_for("[watch] stopped");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "watch did not exit after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
}
