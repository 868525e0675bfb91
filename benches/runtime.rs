//! Runtime benchmarks, side by side with what a user would run instead, in one run.
//!
//! 1. Process time (issue 19's start-up budget): `dockhand -q run playbooks/hello.rhai
//!    --allow-down` with no network (goal ≤ 6 ms), a playbook that only prints (≤ 4 ms),
//!    `dockhand --version` (≤ 2 ms), against a do-nothing process (`true`) and the bash + curl
//!    script a user would write instead.
//! 2. Start-up phases: the same runs with `DOCKHAND_STARTUP_TRACE` set to the spawn instant,
//!    so each phase (exec → main, CLI parsed, engine ready, script compiled, tokio ready,
//!    first print / host call, exit) is timed from the spawn and a regression shows where it
//!    came from (see `dockhand::startup`).
//! 3. Host-call overhead: a loop calling `time::now()` minus the same loop without it, per
//!    call (goal ≤ 0.3 µs); `fs::exists()` (a host call plus a syscall); against the bash way
//!    of calling a primitive: spawning a process (`date +%s%N`).
//!
//! `-q` goes before `run`: after the playbook name `dockhand run` accepts only the playbook's
//! own options and the run options (`--dry-run`, `--json`, ...), and rejects `-q` with a usage
//! error (exit 2), which would time an error path instead of the playbook.
//!
//! Run: `cargo bench --bench runtime`. `DOCKHAND_BENCH_RUNS` sets the number of measured
//! process runs (default 100); `DOCKHAND_BENCH_BIN` times another dockhand binary (e.g. an
//! older build, for a before/after on the same machine and load; its phase table is empty
//! when it predates `DOCKHAND_STARTUP_TRACE`). The bench always exits 0 when every command
//! ran: a missed goal shows as `MISSED` in the table. It panics if a command fails, since its
//! time would then measure an error path.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use dockhand::Runtime;

/// Unmeasured runs before each process measurement.
const WARMUP: usize = 5;
/// Spawns of `date` for the bash per-primitive cost.
const SPAWNS: usize = 200;
/// Iterations of the `time::now()` loops.
const NOW_ITERS: i64 = 1_000_000;
/// Iterations of the `fs::exists()` loops (each call is a syscall, so fewer).
const EXISTS_ITERS: i64 = 200_000;
/// Measured repetitions of each in-process loop (after one warm-up).
const REPS: usize = 7;

/// Distribution of a set of samples, in the samples' unit.
#[derive(Debug, Clone, Copy)]
struct Stats {
    min: f64,
    p50: f64,
    p90: f64,
    mean: f64,
}

impl Stats {
    fn of(mut v: Vec<f64>) -> Stats {
        assert!(!v.is_empty(), "no samples");
        v.sort_by(f64::total_cmp);
        // Nearest-rank percentile.
        let p = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            min: v[0],
            p50: p(0.5),
            p90: p(0.9),
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// Whether `program` can be spawned (it is on PATH).
fn available(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// Wall time of `cmd`, spawn to exit, in ms: `WARMUP` unmeasured runs, then `runs` measured
/// ones. Output is discarded. Panics if the command does not exit 0.
fn time_process(cmd: &mut Command, runs: usize) -> Vec<f64> {
    cmd.stdin(Stdio::null());
    // First warm-up run: capture the output, to say why if the command fails.
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(cmd)));
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{}{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut run = || {
        let t = Instant::now();
        let status = cmd.status().expect("spawn");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(status.success(), "`{}` failed ({status})", describe(cmd));
        ms
    };
    for _ in 1..WARMUP {
        run();
    }
    (0..runs).map(|_| run()).collect()
}

/// Start-up phases of `cmd` over `runs` runs: each run gets `DOCKHAND_STARTUP_TRACE` set to
/// the wall-clock instant just before the spawn, and its stderr's `startup: PHASE MS ms`
/// lines are collected. Returns the phases in the order they were first seen (a phase seen
/// twice in one run, e.g. `engine-ready` for the declaration and for the runtime, gets a
/// `#2` suffix), each with its samples in ms since the spawn.
fn startup_phases(cmd: &mut Command, runs: usize) -> Vec<(String, Vec<f64>)> {
    use std::time::{SystemTime, UNIX_EPOCH};
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut phases: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..WARMUP + runs {
        let t0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        cmd.env(dockhand::startup::ENV, t0.to_string());
        let out = cmd.output().expect("spawn");
        assert!(
            out.status.success(),
            "`{}` failed ({})",
            describe(cmd),
            out.status
        );
        if i < WARMUP {
            continue;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut seen: Vec<String> = Vec::new();
        for (phase, ms) in stderr.lines().filter_map(dockhand::startup::parse_line) {
            let n = seen.iter().filter(|p| p.as_str() == phase).count();
            seen.push(phase.to_string());
            let name = if n == 0 {
                phase.to_string()
            } else {
                format!("{phase}#{}", n + 1)
            };
            match phases.iter_mut().find(|(p, _)| *p == name) {
                Some((_, v)) => v.push(ms),
                None => phases.push((name, vec![ms])),
            }
        }
    }
    phases
}

/// Prints a phase table: p50 since the spawn, and the p50 step from the phase before.
fn phase_table(what: &str, phases: &[(String, Vec<f64>)]) {
    if phases.is_empty() {
        println!("{what}: no `startup:` lines (a binary without DOCKHAND_STARTUP_TRACE)");
        return;
    }
    println!("{what}:");
    println!("  {:<24} {:>12} {:>12}", "phase", "p50 at", "p50 step");
    let mut prev = 0.0;
    for (phase, v) in phases {
        let at = Stats::of(v.clone()).p50;
        println!("  {phase:<24} {:>12} {:>12}", ms(at), ms(at - prev));
        prev = at;
    }
}

/// Seconds taken by `rt.eval(src)`, checking the script returns `expect`.
fn eval_secs(rt: &Runtime, src: &str, expect: i64) -> f64 {
    let t = Instant::now();
    let value = rt
        .eval(src)
        .unwrap_or_else(|e| panic!("eval of `{src}` failed: {e}"));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        value.as_int().ok(),
        Some(expect),
        "`{src}` returned {value}"
    );
    secs
}

/// Per-call overhead of `call`, in µs: each repetition times a counting loop of `n`
/// iterations with and without `call` in its body (interleaved, so drift hits both alike),
/// and yields (with - without) / n. Also returns the bare loop's cost per iteration in µs.
fn call_overhead(rt: &Runtime, call: &str, n: i64) -> (Vec<f64>, f64) {
    let bare = format!("let n = 0; for i in 0..{n} {{ n += 1; }} n");
    let with = format!("let n = 0; for i in 0..{n} {{ n += 1; {call}; }} n");
    eval_secs(rt, &bare, n);
    eval_secs(rt, &with, n);
    let mut per_call = Vec::with_capacity(REPS);
    let mut best_bare = f64::INFINITY;
    for _ in 0..REPS {
        let a = eval_secs(rt, &bare, n);
        let b = eval_secs(rt, &with, n);
        best_bare = best_bare.min(a);
        per_call.push((b - a) / n as f64 * 1e6);
    }
    (per_call, best_bare / n as f64 * 1e6)
}

fn ms(x: f64) -> String {
    format!("{x:.2} ms")
}

fn us(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.3} µs")
    } else {
        format!("{x:.0} µs")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn header() {
    println!(
        "{:<44} {:>11} {:>11} {:>11} {:>11} {:>9}  verdict",
        "what", "min", "p50", "p90", "mean", "goal"
    );
}

fn row(what: &str, s: Stats, unit: fn(f64) -> String, goal: &str, verdict: &str) {
    println!(
        "{what:<44} {:>11} {:>11} {:>11} {:>11} {goal:>9}  {verdict}",
        unit(s.min),
        unit(s.p50),
        unit(s.p90),
        unit(s.mean),
    );
}

fn skipped(what: &str, why: &str) {
    println!("{what:<44} skipped: {why}");
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = match std::env::var("DOCKHAND_BENCH_RUNS") {
        Ok(v) => match v.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("DOCKHAND_BENCH_RUNS must be a positive integer, got {v:?}"),
        },
        Err(_) => 100,
    };
    let bin = std::env::var_os("DOCKHAND_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bin.into());
    let dockhand = |args: &[&OsStr]| {
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .current_dir(root)
            // Keep the user's environment from changing what is measured.
            .env_remove("DOCKHAND_ROOT")
            .env_remove("DOCKHAND_STDLIB")
            .env_remove("RUST_LOG")
            .env_remove("DOCKHAND_LOG")
            .env_remove(dockhand::startup::ENV);
        cmd
    };

    // --- 1. process time ---
    eprintln!("measuring process time ({runs} runs each, after {WARMUP} warm-up runs)...");
    let hello = Stats::of(time_process(
        &mut dockhand(&[
            "-q".as_ref(),
            "run".as_ref(),
            "playbooks/hello.rhai".as_ref(),
            "--allow-down".as_ref(),
        ]),
        runs,
    ));
    let version = Stats::of(time_process(&mut dockhand(&["--version".as_ref()]), runs));
    let nothing =
        available("true", "").then(|| Stats::of(time_process(&mut Command::new("true"), runs)));
    let bash_curl = (available("bash", "--version") && available("curl", "--version")).then(|| {
        Stats::of(time_process(
            Command::new("bash").current_dir(root).args([
                "-c",
                r#"echo "hello, world!"; curl -s -o /dev/null -m 2 -w "%{time_total}" http://127.0.0.1:9/health || true"#,
            ]),
            runs,
        ))
    });
    let tmp = tempfile::tempdir().expect("temp dir");
    let print_rhai = tmp.path().join("print.rhai");
    std::fs::write(&print_rhai, "print(\"hi\");\n").expect("write print.rhai");
    let print_only = Stats::of(time_process(
        &mut dockhand(&["-q".as_ref(), "run".as_ref(), print_rhai.as_os_str()]),
        runs,
    ));

    // --- 2. start-up phases ---
    eprintln!("measuring start-up phases ({runs} runs each)...");
    let print_phases = startup_phases(
        &mut dockhand(&["-q".as_ref(), "run".as_ref(), print_rhai.as_os_str()]),
        runs,
    );
    let hello_phases = startup_phases(
        &mut dockhand(&[
            "-q".as_ref(),
            "run".as_ref(),
            "playbooks/hello.rhai".as_ref(),
            "--allow-down".as_ref(),
        ]),
        runs,
    );

    // --- 3. host-call overhead, in process (on this plain main thread) ---
    eprintln!("measuring host-call overhead ({REPS} repetitions per loop)...");
    let rt = Runtime::builder()
        .root(tmp.path())
        .build()
        .expect("runtime");
    let (now, now_loop) = call_overhead(&rt, "time::now()", NOW_ITERS);
    let (exists, _) = call_overhead(&rt, r#"fs::exists("x")"#, EXISTS_ITERS);
    let (now, exists) = (Stats::of(now), Stats::of(exists));
    drop(rt);
    let spawn_date = available("date", "+%s%N").then(|| {
        let mut date = Command::new("date");
        date.arg("+%s%N");
        // ms → µs
        let v = time_process(&mut date, SPAWNS);
        Stats::of(v.into_iter().map(|x| x * 1e3).collect())
    });

    // --- report ---
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    println!();
    println!(
        "dockhand benchmarks ({build}, {cores} cores; binary {}, {})",
        bin.display(),
        std::fs::metadata(&bin).map_or_else(
            |_| "size unknown".to_string(),
            |m| format!("{:.1} MB", m.len() as f64 / 1e6)
        )
    );
    // Other work on the machine inflates every figure (the tail first); say how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average at the end: {}", load.join(" "));
    }
    header();
    row(
        "dockhand run hello.rhai (process)",
        hello,
        ms,
        "≤ 6 ms",
        verdict(hello.p50 <= 6.0),
    );
    match bash_curl {
        Some(s) => row("  bash + curl equivalent", s, ms, "", ""),
        None => skipped("  bash + curl equivalent", "bash or curl not on PATH"),
    }
    row(
        "dockhand run print-only (process)",
        print_only,
        ms,
        "≤ 4 ms",
        verdict(print_only.p50 <= 4.0),
    );
    row(
        "dockhand --version (process)",
        version,
        ms,
        "≤ 2 ms",
        verdict(version.p50 <= 2.0),
    );
    match nothing {
        Some(s) => row("  a do-nothing process (`true`)", s, ms, "", ""),
        None => skipped("  a do-nothing process (`true`)", "true not on PATH"),
    }
    row(
        "host call overhead time::now()",
        now,
        us,
        "≤ 0.3 µs",
        verdict(now.p50 <= 0.3),
    );
    row("  host call + syscall fs::exists()", exists, us, "", "");
    match spawn_date {
        Some(s) => row("  bash: spawn `date` per primitive", s, us, "", ""),
        None => skipped("  bash: spawn `date` per primitive", "date not on PATH"),
    }
    println!();
    phase_table(
        "start-up phases of print-only (ms since spawn)",
        &print_phases,
    );
    phase_table(
        "start-up phases of hello.rhai (ms since spawn)",
        &hello_phases,
    );
    println!();
    println!(
        "process rows: wall time spawn to exit, {runs} runs after {WARMUP} warm-up, output discarded, cwd = crate root"
    );
    println!("  dockhand -q run playbooks/hello.rhai --allow-down   (nothing listens on :9)");
    println!(
        "  bash -c 'echo \"hello, world!\"; curl -s -o /dev/null -m 2 -w \"%{{time_total}}\" http://127.0.0.1:9/health || true'"
    );
    println!("  dockhand -q run $TMP/print.rhai   (print(\"hi\");)");
    println!("  dockhand --version; true");
    println!(
        "phase rows: DOCKHAND_STARTUP_TRACE=<spawn time, ns>; p50 of each phase's time since the spawn over {runs} runs"
    );
    println!(
        "host-call rows: (loop with call - same loop without) / N over {REPS} interleaved repetitions, N = {NOW_ITERS} (time::now), {EXISTS_ITERS} (fs::exists)"
    );
    println!(
        "  time::now(): p50 {:.0} ns per call; the bare loop costs {:.0} ns per iteration",
        now.p50 * 1e3,
        now_loop * 1e3
    );
    println!(
        "  fs::exists(): p50 {:.0} ns per call; `date`: {SPAWNS} spawns after {WARMUP} warm-up",
        exists.p50 * 1e3
    );
    println!("verdicts compare p50 with the goal; the bench exits 0 either way");
    println!(
        "reproduce: cargo bench --bench runtime   (DOCKHAND_BENCH_RUNS={runs} to set the runs)"
    );
}
