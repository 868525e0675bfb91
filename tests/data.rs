//! Script data at scale and the memory guard, through the real binary (issue 16; issue 13,
//! item 4 "size limits are bypassed by in-place growth").
//!
//! Every growth path of a script — index assignment into a map, `push`, `+=`, string
//! append, map merge, array concatenation, `map`/`filter`, `pad`, `blob`, a `parallel`
//! worker — must stop with the `--max-memory` error (exit 2) within the budget. Each bomb
//! runs under `ulimit -v` (a runaway would abort with 134 instead of eating the shared
//! machine) and a wall-clock bound. Timing is the bench's job (`cargo bench --bench data`);
//! here the budget is small so each bomb stops in a moment even in a debug build.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Test;

/// Address-space cap for each bomb, in KiB (3 GiB: room for the runtime's threads and
/// allocator arenas, far below what an unbounded bomb reaches).
const VMEM_KIB: u64 = 3 * 1024 * 1024;
/// Wall-clock bound of one run (generous: the machine is shared and this is a debug build).
const BOUND: Duration = Duration::from_secs(240);

struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs `dockhand run main.rhai ARGS` on `script` under the address-space cap and the bound.
fn run_capped(script: &str, args: &[&str]) -> Outcome {
    let t = Test::new().file("main.rhai", script);
    let mut c = common::dockhand();
    c.args(["run", "main.rhai"])
        .args(args)
        .current_dir(t.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // `ulimit -v` for the child only, set between fork and exec.
    // SAFETY: setrlimit is async-signal-safe and the closure touches nothing else.
    unsafe {
        c.pre_exec(|| {
            let cap = VMEM_KIB * 1024;
            let lim = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let started = Instant::now();
    let mut child = c.spawn().expect("spawn dockhand");
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script}\ndid not stop within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code,
        stderr: reader.join().unwrap(),
        took: started.elapsed(),
    }
}

/// Asserts the run stopped on the memory budget: exit 2, the message naming the budget and
/// the flag, the script's line, no crash.
fn assert_stopped(script: &str, args: &[&str], budget: &str) {
    let o = run_capped(script, args);
    let show = format!(
        "{script}\n--- exit {:?} after {:?}\n{}",
        o.code, o.took, o.stderr
    );
    assert_eq!(o.code, Some(2), "{show}");
    assert!(
        o.stderr
            .contains(&format!("more than {budget} of memory for script data")),
        "{show}"
    );
    assert!(o.stderr.contains("--max-memory"), "{show}");
    assert!(o.stderr.contains("main.rhai:"), "no location: {show}");
    assert!(!o.stderr.contains("panicked"), "{show}");
}

const SMALL: &[&str] = &["--max-memory", "16MiB"];

#[test]
fn map_grown_by_index_assignment_stops() {
    // The bomb of issue 13: never passed anywhere, so a per-value check never saw it.
    assert_stopped(
        "let m = #{}; let i = 0; loop { m[\"k\" + i] = i; i += 1; }",
        SMALL,
        "16 MiB",
    );
}

#[test]
fn push_and_append_stop() {
    assert_stopped(
        "let a = []; loop { a.push(\"row \" + a.len()); }",
        SMALL,
        "16 MiB",
    );
    assert_stopped(
        "let a = []; loop { a += [1, 2, 3, 4, 5, 6, 7, 8]; }",
        SMALL,
        "16 MiB",
    );
    assert_stopped(
        "let c = \"\"; c.pad(65536, 'x'); let s = \"\"; loop { s += c; }",
        SMALL,
        "16 MiB",
    );
}

#[test]
fn map_merge_and_concatenation_stop() {
    assert_stopped(
        "let m = #{}; let i = 0; loop { let n = #{}; n[\"k\" + i] = i; m += n; i += 1; }",
        SMALL,
        "16 MiB",
    );
    assert_stopped("let a = [1, 2, 3]; loop { a = a + a; }", SMALL, "16 MiB");
    assert_stopped(
        "let a = [1]; loop { a = a.map(|x| x + 1) + a.filter(|x| true); }",
        SMALL,
        "16 MiB",
    );
}

#[test]
fn one_call_asking_for_too_much_stops_before_allocating() {
    for s in [
        "let s = \"\"; s.pad(1 << 40, 'x');",
        "let s = \"\"; s.pad(1 << 40, \"ab\");",
        "let a = []; a.pad(1 << 40, 0);",
        "let b = blob(1 << 40);",
        "let b = blob(1 << 40, 7);",
        "let b = blob(); b.pad(1 << 40, 1);",
    ] {
        assert_stopped(s, SMALL, "16 MiB");
    }
}

#[test]
fn try_catch_cannot_swallow_the_stop() {
    assert_stopped(
        "let a = [1]; try { loop { a = a + a; } } catch (e) { print(\"caught\"); } loop { a = a + a; }",
        SMALL,
        "16 MiB",
    );
}

#[test]
fn parallel_worker_growth_stops() {
    let o = run_capped(
        "parallel([1, 2], 2, |x| { let m = #{}; let i = 0; loop { m[\"k\" + i] = i; i += 1; } });",
        SMALL,
    );
    let show = format!("exit {:?}\n{}", o.code, o.stderr);
    assert_eq!(o.code, Some(2), "{show}");
    assert!(o.stderr.contains("more than 16 MiB"), "{show}");
}

#[test]
fn default_budget_holds() {
    // No flag: the shipped budget (1 GiB) stops a doubling string long before the cap.
    assert_stopped("let s = \"x\"; loop { s = s + s; }", &[], "1 GiB");
}

#[test]
fn a_day_of_rows_fits_the_default_budget() {
    // 50,000 rows of 5 keys: the old per-value limits summed every map in the array
    // (250,000 entries > 100,000) and refused it; the data itself is ~20 MiB.
    Test::new()
        .script(
            "let a = []; for i in 0..50000 { a.push(#{ id: i, host: \"h\" + (i % 10), \
             value: i * 1.5, ok: i % 3 == 0, time: \"2026-01-01T00:00:00Z\" }) } \
             print(`rows ${a.len()}`); let s = \"\"; for i in 0..2000 { s += \"0123456789\"; } \
             print(`len ${s.len()}`);",
        )
        .stderr_has("rows 50000")
        .stderr_has("len 20000")
        .run();
}

#[test]
fn max_memory_flag_is_checked() {
    Test::new()
        .script("print(1);")
        .args(&["--max-memory", "lots"])
        .status(2)
        .stderr_has("invalid size")
        .run();
    // 0 turns the budget off; a run within it is unaffected.
    Test::new()
        .script("let a = []; for i in 0..1000 { a.push(i) } print(`n ${a.len()}`);")
        .args(&["--max-memory", "0"])
        .stderr_has("n 1000")
        .run();
}
