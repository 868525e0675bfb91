//! Watch latency: file saved → the re-run's output seen, side by side with what a user would
//! run instead, in one run.
//!
//! Each tool watches the same file in a fresh temporary directory and, on every change,
//! prints the file's marker: `dockhand watch main.rhai` runs the playbook
//! (`print("MARK-7-END")`); the others `cat` the file. The bench rewrites the file in place
//! N times (default 30, `DOCKHAND_BENCH_RUNS`), 0.25–1.25 s apart (varied, so the 1 s
//! polling loop does not phase-lock to the writes), and times each write until a
//! line with that write's marker is read from the tool's stdout or stderr (dockhand's script
//! prints go to stderr, like its logs). For dockhand it also times write → `[watch] run N
//! started`, the goal (≤ 100 ms), which includes the 30 ms debounce.
//!
//! Compared against (Debian packages `entr` and `inotify-tools`; skipped with a note when
//! not installed):
//! * `entr -n cat main.rhai` — the usual "run this on save" tool;
//! * a `while inotifywait -e close_write main.rhai; do cat main.rhai; done` loop;
//! * a bash loop polling `stat` every second — what the seeds' scripts do today.
//!
//! Run: `cargo bench --bench watch`. Always exits 0 when every tool answered every write; a
//! missed goal shows as `MISSED`. Panics if a tool never shows a marker (after 10 s).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Time between writes: longer than any debounce, so each write is its own run.
const GAP: Duration = Duration::from_millis(250);
/// Extra time between writes, varied per write (0..JITTER).
const JITTER: Duration = Duration::from_millis(1000);
/// A tool that has not shown a marker by then is broken, not slow.
const GIVE_UP: Duration = Duration::from_secs(10);
/// The goal for save → new run started.
const GOAL_MS: f64 = 100.0;

struct Tool {
    name: &'static str,
    program: String,
    args: Vec<String>,
    /// A line that says "a run started" (dockhand only).
    started: Option<&'static str>,
}

struct Spawned {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // The shell loops are killed with their process group (they were started in one).
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(tool: &Tool, dir: &Path) -> Spawned {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(&tool.program)
        .args(&tool.args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("DOCKHAND_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", tool.name));
    let (tx, rx) = channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), l));
        }
    });
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send((Instant::now(), l));
        }
    });
    Spawned { child, lines: rx }
}

fn content(i: usize) -> String {
    format!("print(\"MARK-{i}-END\");\n")
}

/// Waits for a line containing `needle`; returns when it was read.
fn wait(s: &Spawned, needle: &str, tool: &str) -> Instant {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.lines.recv_timeout(left) {
            Ok((t, line)) if line.contains(needle) => return t,
            Ok(_) => {}
            Err(_) => panic!("{tool}: no line with {needle:?} within {GIVE_UP:?}"),
        }
    }
}

/// (write → marker seen, write → run started) in ms, per write.
fn measure(tool: &Tool, n: usize) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.rhai");
    std::fs::write(&file, content(0)).unwrap();
    let s = spawn(tool, dir.path());
    wait(&s, "MARK-0-END", tool.name);
    // Let the tool settle into its wait (entr and inotifywait arm after the first output).
    std::thread::sleep(GAP);
    let mut seen = Vec::new();
    let mut started = Vec::new();
    for i in 1..=n {
        while s.lines.try_recv().is_ok() {}
        let t0 = Instant::now();
        std::fs::write(&file, content(i)).unwrap();
        if let Some(needle) = tool.started {
            let t = wait(&s, needle, tool.name);
            started.push(t.duration_since(t0).as_secs_f64() * 1e3);
        }
        let t = wait(&s, &format!("MARK-{i}-END"), tool.name);
        seen.push(t.duration_since(t0).as_secs_f64() * 1e3);
        // Vary the gap: with a fixed one the 1 s polling loop phase-locks to the writes and
        // shows the same latency every time.
        std::thread::sleep(GAP + JITTER.mul_f64(((i * 7919) % 100) as f64 / 100.0));
    }
    (seen, started)
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn row(what: &str, mut v: Vec<f64>, goal: &str) {
    v.sort_by(f64::total_cmp);
    println!(
        "{:<52} {:>9.1} {:>9.1} {:>9.1}  {}",
        what,
        pct(&v, 0.5),
        pct(&v, 0.95),
        v[v.len() - 1],
        goal
    );
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let n: usize = std::env::var("DOCKHAND_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let sh = |script: &str| ("sh".to_string(), vec!["-c".to_string(), script.to_string()]);
    let mut tools = vec![Tool {
        name: "dockhand watch main.rhai",
        program: env!("CARGO_BIN_EXE_dockhand").to_string(),
        args: vec!["watch".into(), "main.rhai".into()],
        started: Some("started (change of main.rhai)"),
    }];
    let mut skipped = Vec::new();
    if installed("entr") {
        let (program, args) = sh("echo main.rhai | entr -n cat main.rhai");
        tools.push(Tool {
            name: "entr -n cat main.rhai",
            program,
            args,
            started: None,
        });
    } else {
        skipped.push("entr (apt-get install entr)");
    }
    if installed("inotifywait") {
        let (program, args) = sh(
            "cat main.rhai; while inotifywait -qq -e close_write main.rhai; do cat main.rhai; done",
        );
        tools.push(Tool {
            name: "inotifywait -e close_write loop, cat",
            program,
            args,
            started: None,
        });
    } else {
        skipped.push("inotifywait (apt-get install inotify-tools)");
    }
    let (program, args) = (
        "bash".to_string(),
        vec![
            "-c".to_string(),
            "last=; while :; do m=$(stat -c %y main.rhai); \
             if [ \"$m\" != \"$last\" ]; then last=$m; cat main.rhai; fi; sleep 1; done"
                .to_string(),
        ],
    );
    tools.push(Tool {
        name: "bash loop: stat every 1 s, cat",
        program,
        args,
        started: None,
    });

    println!("watch latency, {n} in-place writes per tool, {GAP:?} + 0..{JITTER:?} apart (ms)");
    println!(
        "{:<52} {:>9} {:>9} {:>9}  goal",
        "write → ...", "p50", "p95", "max"
    );
    for tool in &tools {
        let (seen, started) = measure(tool, n);
        if !started.is_empty() {
            let mut s = started.clone();
            s.sort_by(f64::total_cmp);
            let ok = pct(&s, 0.95) <= GOAL_MS;
            row(
                "dockhand watch: new run started",
                started,
                &format!("p95 ≤ {GOAL_MS} ms {}", if ok { "met" } else { "MISSED" }),
            );
        }
        row(&format!("{}: marker seen", tool.name), seen, "");
    }
    for s in skipped {
        println!("skipped: {s} is not installed");
    }
}
