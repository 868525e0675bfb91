//! `dockhand repl` driven through a real pseudo-terminal (expectrl), as a person would use
//! it: rustyline only enables completion, history navigation and Ctrl-C-as-a-key on a
//! terminal, so piping stdin would test a different program.
//!
//! Synchronisation is always "wait for this output" with a generous timeout (the CI machine
//! has 2 shared cores), never a sleep. Each expected string is chosen so that the echo of what
//! the test typed cannot match it (`6 * 7` is answered by `42`, never typed).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use expectrl::process::unix::{PtyStream, UnixProcess};
use expectrl::{ControlCode, Expect, Regex, Session};

const PROMPT: &str = "dockhand> ";
const END_OF_EDIT: &str = "\x1b[?2004l";

struct Repl {
    s: Session<UnixProcess, PtyStream>,
}

impl Repl {
    fn start(dir: &Path, history: &Path, args: &[&str]) -> Repl {
        let mut cmd = common::dockhand();
        cmd.args(args)
            .arg("repl")
            .current_dir(dir)
            .env("DOCKHAND_HISTORY", history)
            .env("TERM", "xterm");
        let mut s = Session::spawn(cmd).expect("spawn dockhand repl in a pty");
        // Wide enough that no test line wraps (a wrapped line is redrawn, prompt included).
        s.get_process_mut().set_window_size(250, 50).unwrap();
        s.set_expect_timeout(Some(Duration::from_secs(20)));
        let mut r = Repl { s };
        r.expect(PROMPT);
        r
    }

    /// Waits for `text`; returns everything printed before it.
    fn expect(&mut self, text: &str) -> String {
        match self.s.expect(text) {
            Ok(c) => String::from_utf8_lossy(c.before()).into_owned(),
            Err(e) => panic!("waiting for {text:?}: {e}"),
        }
    }

    fn expect_re(&mut self, re: &str) -> String {
        match self.s.expect(Regex(re)) {
            Ok(c) => String::from_utf8_lossy(c.as_bytes()).into_owned(),
            Err(e) => panic!("waiting for /{re}/: {e}"),
        }
    }

    /// Sends a line and waits for the next prompt; returns the output in between.
    fn line(&mut self, text: &str) -> String {
        self.s.send_line(text).unwrap();
        self.result()
    }

    /// The output of the input just submitted: what comes after rustyline leaves the line
    /// editor (it switches bracketed paste off, `ESC[?2004l`) and before the next prompt.
    fn result(&mut self) -> String {
        self.expect(END_OF_EDIT);
        self.expect(PROMPT)
    }

    fn send(&mut self, raw: &str) {
        self.s.send(raw).unwrap();
    }

    fn ctrl(&mut self, code: ControlCode) {
        self.s.send(code).unwrap();
    }

    /// Submits `input` and asserts its output has every one of `needles`.
    fn line_has(&mut self, input: &str, needles: &[&str]) {
        let out = self.line(input);
        for n in needles {
            assert!(out.contains(n), "{input}: output lacks {n:?}: {out}");
        }
    }

    /// Ctrl-D at the prompt, then the process must end with status 0.
    fn quit(mut self) {
        self.ctrl(ControlCode::EndOfTransmission);
        let status = self.s.get_process_mut().wait().expect("wait for the repl");
        assert!(
            matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)),
            "repl exit status {status:?}"
        );
    }
}

impl Repl {
    /// A session in a fresh workspace (kept alive by the returned directory).
    fn fresh(args: &[&str]) -> (tempfile::TempDir, Repl) {
        let (dir, hist) = workspace();
        let r = Repl::start(dir.path(), &hist, args);
        (dir, r)
    }
}

fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("state").join("history");
    (dir, history)
}

#[test]
fn multi_line_function_then_a_call() {
    let (_dir, mut r) = Repl::fresh(&[]);
    r.send_line_expect("fn add(a, b) {", "... ");
    r.send_line_expect("    a + b", "... ");
    r.line("}");
    r.line_has("add(40, 2)", &["42"]);
    // A definition from another line calls one defined earlier.
    r.line("fn twice(x) { add(x, x) }");
    r.line_has("twice(50)", &["100"]);
    r.quit();
}

#[test]
fn tab_completes_host_functions_and_variables() {
    let (_dir, mut r) = Repl::fresh(&[]);
    // One candidate: completed in place; what runs is the completed name.
    r.send("time::dura\t");
    r.expect("tion");
    r.send("(\"2m\")\r");
    let out = r.result();
    assert!(out.contains("120000"), "{out}");
    // Several candidates: the second Tab lists them.
    r.send("docker::restart\t\t");
    r.expect("docker::restart_count");
    // Ctrl-C at the prompt drops the line (rustyline leaves the editor), and a fresh prompt
    // comes back: the next input runs alone.
    r.ctrl(ControlCode::EndOfText);
    r.result();
    let out = r.line("7 * 111");
    assert!(out.contains("777") && !out.contains("error"), "{out}");
    r.line("let services_list = [1, 2];");
    r.send("servi\t");
    r.expect("services_list");
    r.send(".len()\r");
    let out = r.result();
    assert!(out.contains("\n2\r\n"), "{out}");
    r.quit();
}

#[test]
fn help_shows_signature_and_doc_from_the_engine() {
    let (_dir, mut r) = Repl::fresh(&[]);
    r.line_has(
        ":help time::sleep",
        &["time::sleep(d: ", "Sleeps for a duration"],
    );
    r.line_has(":help", &[":load FILE", "docker::"]);
    r.line_has(":help no_such::thing", &["no host function named"]);
    r.line_has(":docs time", &["wait_until"]);
    r.quit();
}

#[test]
fn errors_do_not_end_the_session() {
    let (_dir, mut r) = Repl::fresh(&[]);
    r.line_has("let x = nope + 1;", &["error:", "--> <repl:1>:1:9", "^"]);
    r.line_has("throw \"bo\" + \"om\"", &["error: boom"]);
    r.line_has("6 * 7", &["42"]);
    // After an import, errors still point at the input's own line and column.
    r.line("import \"stdlib/fmt\" as fmt;");
    r.line_has("fmt::ms(2500)", &["2.5s"]);
    r.send_line_expect("if true {", "... ");
    r.send_line_expect("  let z = undefined_thing;", "... ");
    r.line_has("}", &["<repl:6>:2:11"]);
    r.quit();
}

#[test]
fn history_persists_across_sessions() {
    let (dir, hist) = workspace();
    let mut r = Repl::start(dir.path(), &hist, &[]);
    r.line("let hist_marker = 1234;");
    r.quit();
    let saved = std::fs::read_to_string(&hist).expect("history file written");
    assert!(saved.contains("let hist_marker = 1234;"), "{saved}");

    let mut r = Repl::start(dir.path(), &hist, &[]);
    // Up arrow recalls the previous session's line; Enter runs it.
    r.send("\x1b[A");
    r.expect("hist_marker = 1234;");
    r.send("\r");
    r.result();
    r.line_has("hist_marker + 1", &["1235"]);
    r.quit();
}

#[test]
fn ctrl_c_interrupts_a_running_call_and_the_session_continues() {
    let (_dir, mut r) = Repl::fresh(&[]);
    r.s.send_line("let before = 1; print(\"slee\" + \"ping\"); time::sleep(\"30s\"); 99")
        .unwrap();
    // The print comes right before the sleep: once it is out, the sleep is running.
    r.expect("sleeping");
    r.ctrl(ControlCode::EndOfText);
    // Within the 20 s expect timeout, so well before the 30 s sleep would end.
    r.expect("interrupted");
    r.expect(PROMPT);
    r.line_has("before + 41", &["42"]);
    r.quit();
}

#[test]
fn vars_lists_types_and_values() {
    let (_dir, mut r) = Repl::fresh(&[]);
    r.line("let answer = 40 + 2; let who = \"ops\"; let items = [1, 2, 3];");
    r.s.send_line(":vars").unwrap();
    r.expect("NAME");
    // Declaration order.
    r.expect_re(r"answer\s+i64\s+42");
    r.expect_re(r"who\s+string\s+ops");
    r.expect_re(r"items\s+array\s+\[1, 2, 3\]");
    r.expect(PROMPT);
    r.quit();
}

#[test]
fn arrays_of_maps_print_as_a_table_and_maps_as_lines() {
    let (_dir, mut r) = Repl::fresh(&[]);
    let out = r.line(
        "[#{state: \"running\", name: \"data-api\"}, #{state: \"exited\", name: \"weather-api-x\"}]",
    );
    assert!(out.contains("NAME           STATE"), "{out}");
    assert!(out.contains("data-api       running"), "{out}");
    assert!(out.contains("weather-api-x  exited"), "{out}");
    r.line_has(
        "#{service: \"data-api\", restarts: 1 + 1}",
        &["restarts  2", "service   data-api"],
    );
    r.quit();
}

#[test]
fn load_and_reload_run_files_into_the_session() {
    let (dir, hist) = workspace();
    let lib = dir.path().join("lib.rhai");
    std::fs::write(&lib, "fn scale(x) { x * 3 }\nlet base = 7;\n").unwrap();
    let mut r = Repl::start(dir.path(), &hist, &[]);
    r.line(":load lib.rhai");
    r.line_has("scale(base)", &["21"]);
    std::fs::write(&lib, "fn scale(x) { x * 4 }\nlet base = 7;\n").unwrap();
    r.line(":reload");
    r.line_has("scale(base)", &["28"]);
    r.quit();
}

#[test]
fn global_options_apply_as_in_run() {
    let (dir, hist) = workspace();
    let mut r = Repl::start(dir.path(), &hist, &["--read-only"]);
    let out = r.line("fs::write(\"out.txt\", \"x\")");
    assert!(out.contains("error:"), "{out}");
    assert!(!dir.path().join("out.txt").exists());
    r.quit();

    let mut r = Repl::start(dir.path(), &hist, &["--dry-run"]);
    let out = r.line("fs::write(\"out.txt\", \"x\")");
    assert!(out.contains("dry run: would fs::write"), "{out}");
    assert!(!dir.path().join("out.txt").exists());
    r.quit();

    // --root: the sandbox is the given directory, not the current one.
    let root = dir.path().join("ws");
    std::fs::create_dir(&root).unwrap();
    let mut r = Repl::start(dir.path(), &hist, &["--root", root.to_str().unwrap()]);
    r.line("fs::write(\"in-root.txt\", \"x\")");
    assert!(root.join("in-root.txt").exists());
    r.quit();
}

impl Repl {
    fn send_line_expect(&mut self, text: &str, wait: &str) {
        self.s.send_line(text).unwrap();
        self.expect(wait);
    }
}

const FAILING_PLAYBOOK: &str = r#"//! A playbook whose fourth step fails until `target` is fixed.
fn check_target(t) { if t != "fixed" { throw "bad target " + t; } t }
import "stdlib/fmt" as fmt;
let target = "broken";
check_target(target);
print("reached the end with " + target + " after " + fmt::ms(1500));
"#;

fn run_failing(dir: &Path, hist: &Path) -> Session<UnixProcess, PtyStream> {
    std::fs::write(dir.join("pb.rhai"), FAILING_PLAYBOOK).unwrap();
    let mut cmd = common::dockhand();
    cmd.args(["run", "pb.rhai", "--repl-on-failure"])
        .current_dir(dir)
        .env("DOCKHAND_HISTORY", hist)
        .env("TERM", "xterm");
    let mut s = Session::spawn(cmd).expect("spawn dockhand run in a pty");
    s.get_process_mut().set_window_size(250, 50).unwrap();
    s.set_expect_timeout(Some(Duration::from_secs(20)));
    s
}

fn exit_code(s: &mut Session<UnixProcess, PtyStream>) -> i32 {
    match s.get_process_mut().wait().expect("wait") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("not exited: {other:?}"),
    }
}

#[test]
fn repl_on_failure_inspect_fix_and_retry() {
    let (dir, hist) = workspace();
    let mut s = run_failing(dir.path(), &hist);
    s.expect("error: bad target broken").unwrap();
    s.expect("failed> ").unwrap();
    // The failing point's variables are in scope.
    s.send_line(":vars").unwrap();
    s.expect(Regex(r"target\s+string\s+broken")).unwrap();
    s.expect("failed> ").unwrap();
    s.send_line("target = \"fi\" + \"xed\";").unwrap();
    s.expect("failed> ").unwrap();
    s.send_line(":retry").unwrap();
    // The retried step passed and the run went on, with the import of an earlier step.
    s.expect("reached the end with fixed after 1.5s").unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

#[test]
fn repl_on_failure_continue_skips_and_abort_fails() {
    let (dir, hist) = workspace();
    let mut s = run_failing(dir.path(), &hist);
    s.expect("failed> ").unwrap();
    s.send_line(":continue").unwrap();
    s.expect("reached the end with broken").unwrap();
    assert_eq!(exit_code(&mut s), 0);

    let mut s = run_failing(dir.path(), &hist);
    s.expect("failed> ").unwrap();
    s.send_line(":abort").unwrap();
    s.expect(expectrl::Eof).unwrap();
    // The step's own error decides the exit code: a `throw` is a failed step (1).
    assert_eq!(exit_code(&mut s), 1);
}

#[test]
fn repl_on_failure_without_a_terminal_aborts() {
    common::Test::new()
        .file("pb.rhai", FAILING_PLAYBOOK)
        .args(&["run", "pb.rhai", "--repl-on-failure"])
        .env("DOCKHAND_HISTORY", "h")
        .status(1)
        .stderr_has("error: bad target broken")
        .stderr_lacks("reached the end")
        .run();
}

// ---------------------------------------------------------------------------------------
// One lifecycle: a REPL input ends as a `dockhand run` would (panic caught, a stop classified
// by its reason). In process, through the library, so a panicking function can be
// registered.
// ---------------------------------------------------------------------------------------

use dockhand::repl::Session as ReplSession;
use dockhand::{Error, Runtime, rhai};

/// A runtime in a fresh workspace with `crash()`, a host function that panics.
fn runtime_with_a_crash(timeout: Option<Duration>) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = Runtime::builder()
        .root(dir.path())
        .timeout(timeout)
        .build()
        .unwrap();
    rt.engine_mut()
        .register_fn("crash", || -> rhai::INT { panic!("deliberate test panic") });
    (dir, rt)
}

#[test]
fn a_panicking_input_is_an_internal_error_as_in_run_and_the_session_goes_on() {
    let (_dir, rt) = runtime_with_a_crash(None);
    let ran = rt.eval("crash()");
    assert!(
        matches!(&ran, Err(Error::Internal(m)) if m.contains("crashed") && m.contains("deliberate test panic")),
        "{ran:?}"
    );
    let mut s = ReplSession::new(&rt);
    let input = s.eval("crash()");
    assert!(
        matches!(&input, Err(Error::Internal(m)) if m.contains("crashed while running <repl:1>") && m.contains("deliberate test panic")),
        "{input:?}"
    );
    assert_eq!(input.unwrap_err().exit_code(), 2);
    assert_eq!(s.eval("6 * 7").unwrap().as_int().unwrap(), 42);
}

#[test]
fn a_stop_without_a_reason_is_internal_in_the_repl_as_in_run() {
    let (_dir, rt) = runtime_with_a_crash(None);
    let script = rt.compile_str("main", "time::sleep(\"30s\"); 1").unwrap();
    let run = rt.begin(&script, Default::default()).unwrap();
    let token = run.cancel().token().clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        token.cancel();
    });
    let ran = run.eval(&mut rhai::Scope::new(), &script.ast, &script.name);
    stopper.join().unwrap();
    assert!(matches!(ran, Err(Error::Internal(_))), "{ran:?}");
    drop(run);

    // In the REPL the same stop (the run's token, no reason given) reaches the input, and
    // it is not an interruption either.
    let run_cancel = rt.host().reset_run();
    let mut s = ReplSession::new(&rt);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        run_cancel.token().cancel();
    });
    let input = s.eval("time::sleep(\"30s\"); 1");
    stopper.join().unwrap();
    assert!(matches!(input, Err(Error::Internal(_))), "{input:?}");
}

#[test]
fn ctrl_c_and_timeout_end_an_input_as_they_end_a_run() {
    let (_dir, rt) = runtime_with_a_crash(Some(Duration::from_millis(200)));
    let ran = rt.eval("time::sleep(\"30s\")");
    assert!(
        matches!(ran, Err(Error::TimedOut(d)) if d == Duration::from_millis(200)),
        "{ran:?}"
    );

    // A session runs inside the runtime's current run; that one timed out, so start afresh.
    rt.host().reset_run();
    let mut s = ReplSession::new(&rt);
    s.set_timeout(Some(Duration::from_millis(200)));
    let input = s.eval("time::sleep(\"30s\")");
    assert!(
        matches!(input, Err(Error::TimedOut(d)) if d == Duration::from_millis(200)),
        "{input:?}"
    );

    // Ctrl-C cancels the running input (the listener's slot) for `Interrupted`.
    s.set_timeout(None);
    let slot = s.running_slot();
    let ctrl_c = std::thread::spawn(move || {
        for _ in 0..200 {
            if let Some(c) = slot.lock().unwrap().as_ref() {
                c.cancel(dockhand::cancel::CancelReason::Interrupted);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let input = s.eval("time::sleep(\"30s\")");
    ctrl_c.join().unwrap();
    assert!(matches!(input, Err(Error::Interrupted)), "{input:?}");
    assert_eq!(s.eval("1 + 1").unwrap().as_int().unwrap(), 2);
}

#[test]
fn repl_timeout_is_reported_as_run_reports_it() {
    let (_dir, mut r) = Repl::fresh(&["--timeout", "300ms"]);
    r.line_has("time::sleep(\"30s\")", &["timed out after 300ms"]);
    r.line_has("6 * 7", &["42"]);
    r.quit();
}

#[test]
fn repl_on_failure_times_out_as_run_does() {
    common::Test::new()
        .file("pb.rhai", "let x = 1;\ntime::sleep(\"30s\");\n")
        .args(&["run", "pb.rhai", "--repl-on-failure", "--timeout", "300ms"])
        .env("DOCKHAND_HISTORY", "h")
        .status(1)
        .stderr_has("timed out after 300ms")
        .stderr_lacks("failed>")
        .run();
}
