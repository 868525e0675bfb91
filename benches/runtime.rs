//! Runtime benchmarks, side by side with what a bash runbook pays today.
//!
//! 1. Process time of `dockhand run playbooks/hello.rhai --allow-down -q` with no network
//!    (goal ≤ 10 ms), against the bash + curl script a user would write instead, and the
//!    fixed cost of `dockhand run` on a one-line script.
//! 2. Host-call overhead: a loop calling `time::now()` minus the same loop without it,
//!    per call (goal ≤ 2 µs); `fs::exists()` (a host call plus a syscall); against the
//!    bash way of calling a primitive: spawning a process (`date +%s%N`).
//!
//! Run: `cargo bench --bench runtime` (env `DOCKHAND_BENCH_RUNS`, default 100).

use std::process::{Command, Stdio};
use std::time::Instant;

fn time_process(cmd: &mut Command, runs: usize) -> Vec<f64> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    for _ in 0..5 {
        let _ = cmd.status();
    }
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            let _ = cmd.status().expect("spawn");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (v[0], p(0.5), p(0.9), v.iter().sum::<f64>() / v.len() as f64)
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let root = env!("CARGO_MANIFEST_DIR");
    let runs: usize = std::env::var("DOCKHAND_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };

    // --- 1. process time ---
    let hello = summary(time_process(
        Command::new(bin)
            .args(["run", "playbooks/hello.rhai", "--allow-down", "-q"])
            .current_dir(root),
        runs,
    ));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("print.rhai"), "print(\"hi\");\n").unwrap();
    let print_only = summary(time_process(
        Command::new(bin)
            .args(["run", "print.rhai"])
            .current_dir(tmp.path()),
        runs,
    ));
    let has_curl = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let bash = has_curl.then(|| {
        summary(time_process(
            Command::new("bash").args([
                "-c",
                "echo \"hello, world!\"; curl -s -o /dev/null -m 2 -w '%{time_total}' http://127.0.0.1:9/health || true",
            ]),
            runs,
        ))
    });

    // --- 2. host-call overhead, in process ---
    let rt = dockhand::Runtime::builder()
        .root(tmp.path())
        .build()
        .expect("runtime");
    let time_eval = |src: &str| {
        let script = rt.compile_str("bench", src).unwrap();
        rt.run(&script, Default::default()).unwrap(); // warm-up
        let t = Instant::now();
        rt.run(&script, Default::default()).unwrap();
        t.elapsed().as_secs_f64()
    };
    let n = 1_000_000.0;
    let empty = time_eval("let x = 0; for i in 0..1000000 { x += 1; } x");
    let now = time_eval("let x = 0; for i in 0..1000000 { x += 1; time::now(); } x");
    let per_call_us = (now - empty) / n * 1e6;
    let m = 200_000.0;
    let empty_m = time_eval("let x = 0; for i in 0..200000 { x += 1; } x");
    let exists = time_eval("let x = 0; for i in 0..200000 { x += 1; fs::exists(\"x\"); } x");
    let exists_us = (exists - empty_m) / m * 1e6;
    let spawn = summary(time_process(Command::new("date").arg("+%s%N"), 200));

    println!();
    println!(
        "dockhand runtime benchmarks (release build, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<48} {:>9} {:>9} {:>9} {:>9} {:>10}  verdict",
        "what", "min", "p50", "p90", "mean", "goal"
    );
    let row = |name: &str, s: (f64, f64, f64, f64), goal: &str, v: &str| {
        println!(
            "{name:<48} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}ms {goal:>10}  {v}",
            s.0, s.1, s.2, s.3
        );
    };
    row(
        "dockhand run hello.rhai (process, no network)",
        hello,
        "≤ 10 ms",
        verdict(hello.1 <= 10.0),
    );
    match bash {
        Some(b) => row("  bash + curl equivalent", b, "", ""),
        None => println!("  bash + curl equivalent: skipped (no curl on PATH)"),
    }
    row(
        "dockhand run print-only script (fixed cost)",
        print_only,
        "",
        "",
    );
    println!(
        "{:<48} {:>27.3}µs {:>20} {:>10}  {}",
        "host call overhead, time::now()",
        per_call_us,
        "",
        "≤ 2 µs",
        verdict(per_call_us <= 2.0)
    );
    println!(
        "{:<48} {:>27.3}µs",
        "  host call + syscall, fs::exists()", exists_us
    );
    println!(
        "{:<48} {:>27.1}µs",
        "  bash: spawn `date` per primitive (mean)",
        spawn.3 * 1000.0
    );
    println!("reproduce: cargo bench --bench runtime");
}
