//! Runtime behaviour through the real binary: cancellation (`--timeout`, Ctrl-C) of busy
//! loops and blocked host calls, the fs sandbox, the crash-safe journal and its lock,
//! `parallel`, the waiting primitives of `time::`, and `http::`.

mod common;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime};

use common::{Test, signal, wait_for_line};

/// Runs `script` with `--timeout` and returns (cancel→exit delay, stderr, exit code). The
/// cancel instant is the timestamp of the runtime's own "--timeout ... reached" log line.
fn cancel_to_exit(script: &str, timeout: &str) -> (Duration, String, Option<i32>) {
    let t = Test::new().file("main.rhai", script).args(&[
        "--log-format",
        "json",
        "-v",
        "--timeout",
        timeout,
        "run",
        "main.rhai",
    ]);
    let child = t.spawn();
    let out = child.wait_with_output().unwrap();
    let exited = SystemTime::now();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stderr
        .lines()
        .find(|l| l.contains("reached: stopping the run"))
        .unwrap_or_else(|| panic!("no timeout log line in:\n{stderr}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let at = humantime::parse_rfc3339_weak(v["timestamp"].as_str().unwrap())
        .or_else(|_| humantime::parse_rfc3339(v["timestamp"].as_str().unwrap()))
        .unwrap();
    (
        exited.duration_since(at).unwrap_or_default(),
        stderr,
        out.status.code(),
    )
}

#[test]
fn timeout_stops_a_busy_loop_within_100ms() {
    let (delay, stderr, code) = cancel_to_exit("let i = 0;\nloop { i += 1; }\n", "300ms");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("timed out after 300ms"), "{stderr}");
    assert!(
        delay < Duration::from_millis(100),
        "took {delay:?} from timeout to exit"
    );
}

#[test]
fn timeout_stops_a_blocked_host_call_within_100ms() {
    let (delay, stderr, code) = cancel_to_exit("time::sleep(\"1h\");\n", "300ms");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(delay < Duration::from_millis(100), "took {delay:?}");
}

#[test]
fn timeout_stops_a_hung_http_request_and_parallel_workers() {
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let script = format!(
        "let r = parallel([1, 2, 3], 3, |i| http::get(\"http://127.0.0.1:{port}/slow\"));\nprint(r);\n"
    );
    let (delay, stderr, code) = cancel_to_exit(&script, "400ms");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(delay < Duration::from_millis(100), "took {delay:?}");
}

#[test]
fn ctrl_c_exits_130_within_100ms() {
    for script in [
        "print(\"ready\");\nloop { }\n",
        "print(\"ready\");\ntime::sleep(\"1h\");\n",
    ] {
        let t = Test::new().script(script);
        let mut child = t.spawn();
        let _rest = wait_for_line(&mut child, "ready");
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        signal(&child, "INT");
        let status = child.wait().unwrap();
        let took = sent.elapsed();
        assert_eq!(status.code(), Some(130), "script {script:?}");
        assert!(
            took < Duration::from_millis(100),
            "took {took:?} to stop {script:?}"
        );
    }
}

// ---- fs sandbox ----

#[test]
fn fs_refuses_paths_outside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    let abs = outside.path().join("secret.txt");
    let abs = abs.to_str().unwrap();
    for (call, shown) in [
        (
            "fs::read(\"../secret.txt\")".to_string(),
            "'../secret.txt' is outside the workspace root",
        ),
        (
            "fs::write(\"a/../../x.txt\", \"x\")".to_string(),
            "is outside the workspace root",
        ),
        (
            format!("fs::read(\"{abs}\")"),
            "is outside the workspace root",
        ),
        (
            "fs::read(\"/etc/passwd\")".to_string(),
            "is outside the workspace root",
        ),
        (
            "fs::glob(\"../*\")".to_string(),
            "climbs out of the workspace",
        ),
    ] {
        Test::new()
            .script(&format!("let x = {call};\n"))
            .status(2)
            .stderr_has("refused:")
            .stderr_has(shown)
            .stderr_has("--> main.rhai:1:")
            .run();
    }
}

#[test]
fn fs_refuses_symlink_escapes() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    let t = Test::new().script("print(fs::read(\"link/secret.txt\"));\n");
    std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
    t.status(2)
        .stderr_has("leads through a symlink")
        .stderr_lacks("s3cret")
        .run();
}

#[test]
fn fs_reads_writes_globs_and_parses_inside_the_root() {
    let r = Test::new()
        .file("services/b/requirements.txt", "x\n")
        .file("services/a/requirements.txt", "y\n")
        .file("cfg.yaml", "services:\n  data-api:\n    port: 8006\n")
        .script(
            r##"fs::write("out/nested/report.md", "# hi\n");
print(fs::read("out/nested/report.md"));
print(fs::glob("services/*/requirements.txt"));
let cfg = fs::read_yaml("cfg.yaml");
print(`port=${cfg.services["data-api"].port}`);
fs::write_json("out/x.json", #{ a: [1, 2] });
print(`a1=${fs::read_json("out/x.json").a[1]}`);
print(`exists=${fs::exists("out/x.json")} ${fs::exists("nope")}`);
"##,
        )
        .stderr_has("# hi")
        .stderr_has(r#"["services/a/requirements.txt", "services/b/requirements.txt"]"#)
        .stderr_has("port=8006")
        .stderr_has("a1=2")
        .stderr_has("exists=true false")
        .run();
    assert_eq!(
        std::fs::read_to_string(r.path("out/nested/report.md")).unwrap(),
        "# hi\n"
    );
}

#[test]
fn yaml_errors_name_file_line_and_column() {
    Test::new()
        .file("bad.yaml", "services:\n  data-api:\n    port: [8006\n")
        .script("let c = fs::read_yaml(\"bad.yaml\");\n")
        .status(1)
        .stderr_has("invalid YAML in bad.yaml at line")
        .run();
}

#[test]
fn dry_run_records_writes_and_read_only_refuses_them() {
    let r = Test::new()
        .file("keep.txt", "original")
        .script("print(fs::read(\"keep.txt\"));\nfs::write(\"keep.txt\", \"changed\");\nfs::remove(\"keep.txt\");\nfs::mkdir(\"newdir\");\n")
        .args(&["--dry-run"])
        .stderr_has("original")
        .stdout_has("dry run: 3 change(s) would be made")
        .stdout_has("fs::write keep.txt")
        .stdout_has("fs::remove keep.txt")
        .run();
    assert_eq!(
        std::fs::read_to_string(r.path("keep.txt")).unwrap(),
        "original"
    );
    assert!(!r.path("newdir").exists());

    let r = Test::new()
        .file("keep.txt", "original")
        .script("print(fs::read(\"keep.txt\"));\nfs::write(\"keep.txt\", \"changed\");\n")
        .args(&["--read-only"])
        .status(2)
        .stderr_has("original")
        .stderr_has("refused: fs::write would change keep.txt, and this run is --read-only")
        .stderr_has("--> main.rhai:2:")
        .run();
    assert_eq!(
        std::fs::read_to_string(r.path("keep.txt")).unwrap(),
        "original"
    );
}

/// The exit class comes from the runtime's own error, not from its words: a refusal caught and
/// thrown again is still the runtime's (exit 2), a string that only reads like one is the
/// script's own failed step (exit 1).
#[test]
fn exit_class_follows_the_error_not_its_words() {
    Test::new()
        .script(
            "try { fs::write(\"x.txt\", \"y\"); } catch (e) { print(`caught: ${e}`); throw e; }\n",
        )
        .args(&["--read-only"])
        .status(2)
        .stderr_has("caught: refused: fs::write would change x.txt")
        .run();
    Test::new()
        .script("throw \"refused: nothing refused this\";\n")
        .status(1)
        .stderr_has("refused: nothing refused this")
        .run();
    Test::new()
        .script("throw \"invalid argument: mine\";\n")
        .status(1)
        .run();
}

#[test]
fn read_only_refuses_every_mutating_fs_and_state_primitive() {
    for call in [
        "fs::write(\"a\", \"x\")",
        "fs::append(\"a\", \"x\")",
        "fs::mkdir(\"d\")",
        "fs::remove(\"a\")",
        "fs::write_json(\"a\", #{})",
        "fs::write_yaml(\"a\", #{})",
        "state::open(\"j\")",
    ] {
        let r = Test::new()
            .script(&format!("{call};\n"))
            .args(&["--read-only"])
            .status(2)
            .stderr_has("refused:")
            .run();
        assert!(
            std::fs::read_dir(r.dir.path()).unwrap().count() == 1,
            "{call} changed the workspace"
        );
    }
}

// ---- journal ----

const JOURNAL_WRITER: &str = r#"let j = state::open("run");
let pad = "x";
for i in 0..13 { pad += pad; }
// One write before "ready": a kill 1 ms later on a loaded machine must find a journal.
j.update("svc-0", #{ phase: "built", n: 0, pad: pad });
print("ready");
let i = 0;
loop {
    j.update(`svc-${i % 40}`, #{ phase: "built", n: i, pad: pad });
    i += 1;
}
"#;

#[test]
fn journal_survives_kill_9_mid_write() {
    let t = Test::new().script(JOURNAL_WRITER);
    let journal = t.path().join(".dockhand/state/run.json");
    let mut last_total = 0;
    for (round, delay_ms) in [3u64, 17, 40, 8, 120, 1, 65, 250, 30, 90]
        .into_iter()
        .enumerate()
    {
        let mut child = t.spawn();
        let _rest = wait_for_line(&mut child, "ready");
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, "KILL");
        let _ = child.wait();
        let text =
            std::fs::read_to_string(&journal).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "round {round}: journal half-written ({e}), {} bytes",
                text.len()
            )
        });
        let records = v["records"].as_object().expect("records");
        assert!(!records.is_empty(), "round {round}: no records");
        for (k, r) in records {
            assert_eq!(r["phase"], "built", "round {round}: record {k} damaged");
            assert_eq!(
                r["pad"].as_str().map(str::len),
                Some(8192),
                "round {round}: record {k} truncated"
            );
        }
        last_total = records.len();
    }
    assert!(last_total > 0);
    // The lock died with the process: a new run opens the journal and sees the records; the
    // temp file a kill may have left behind is swept.
    let r = Test::new().script("let j = state::open(\"run\");\nprint(`keys=${j.keys().len()}`);\n");
    let src = t.path().join(".dockhand");
    common::copy_dir(&src, &r.path().join(".dockhand"));
    let r = r.stderr_has("keys=").run();
    let leftovers: Vec<_> = std::fs::read_dir(r.path(".dockhand/state"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn second_concurrent_run_is_refused_with_the_holder() {
    let t = Test::new().script("let j = state::open(\"phase1\");\nj.set(\"a\", #{ phase: \"pending\" });\nprint(\"locked\");\ntime::sleep(\"30s\");\n");
    let mut holder = t.spawn();
    let _rest = wait_for_line(&mut holder, "locked");
    let out = t.command().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("journal 'phase1' is in use by another dockhand run"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", holder.id())), "{stderr}");
    signal(&holder, "KILL");
    let _ = holder.wait();
    // Lock released by the OS when the holder died.
    let out = t.command().args(["--timeout", "200ms"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("locked"), "{stderr}");
}

#[test]
fn journal_records_merge_and_timestamp() {
    let r = Test::new()
        .script(
            r#"let j = state::open("run");
j.set("data-api", #{ phase: "built", build_ms: 10 });
j.update("data-api", #{ phase: "healthy" });
let rec = j.get("data-api");
print(`${rec.phase} ${rec.build_ms} ${rec.updated_at.len() > 10}`);
print(`missing=${j.get("nope") == ()}`);
print(`list=${state::list()}`);
"#,
        )
        .stderr_has("healthy 10 true")
        .stderr_has("missing=true")
        .stderr_has(r#"list=["run"]"#)
        .run();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.path(".dockhand/state/run.json")).unwrap())
            .unwrap();
    assert_eq!(v["records"]["data-api"]["phase"], "healthy");
    assert_eq!(v["records"]["data-api"]["build_ms"], 10);
}

// ---- parallel ----

#[test]
fn parallel_respects_limit_and_order_and_isolates_errors() {
    let r = Test::new()
        .script(
            r#"let items = [];
for i in 0..12 { items.push(i); }
let results = parallel(items, 3, |x| {
    let s = time::now();
    time::sleep(150);
    if x == 7 { throw "item seven failed"; }
    #{ x: x, s: s, e: time::now() }
});
let out = [];
for r in results {
    if is_error(r) { out.push(#{ error: r.message, index: r.index }); } else { out.push(r); }
}
out
"#,
        )
        .args(&["--json"])
        .run();
    let v = r.json();
    let out = v["value"].as_array().expect("array");
    assert_eq!(out.len(), 12);
    let mut spans = Vec::new();
    for (i, item) in out.iter().enumerate() {
        if i == 7 {
            assert_eq!(item["index"], 7);
            assert!(
                item["error"]
                    .as_str()
                    .unwrap()
                    .contains("item seven failed"),
                "{item}"
            );
            continue;
        }
        assert_eq!(item["x"], i as i64, "results out of order: {out:?}");
        spans.push((item["s"].as_i64().unwrap(), item["e"].as_i64().unwrap()));
    }
    let max_overlap = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(s2, e2)| s2 <= s && s < e2).count())
        .max()
        .unwrap();
    assert!(max_overlap <= 3, "ran {max_overlap} at once with limit 3");
    assert_eq!(max_overlap, 3, "never ran 3 at once");
    let ms = v["duration_ms"].as_u64().unwrap();
    assert!(
        ms >= 4 * 150 - 20,
        "12 items × 150 ms at 3 at a time took only {ms} ms"
    );
    assert!(ms < 12 * 150, "not parallel: {ms} ms");
}

#[test]
fn parallel_rejects_a_zero_limit() {
    Test::new()
        .script("parallel([1], 0, |x| x);\n")
        .status(2)
        .stderr_has("limit must be at least 1")
        .run();
}

// ---- time ----

#[test]
fn timeout_retry_and_wait_until() {
    Test::new()
        .script(
            r#"let caught = "";
try { time::timeout(100, || { loop { } }); } catch (e) { caught = e; }
print(`busy: ${caught}`);
let caught2 = "";
try { time::timeout("150ms", || time::sleep("10s")); } catch (e) { caught2 = e; }
print(`blocked: ${caught2}`);
print(`value: ${time::timeout("1s", || 42)}`);
let n = 0;
let got = time::retry(#{ attempts: 5, backoff: 10 }, || { n += 1; if n < 3 { throw "not yet"; } n });
print(`retried: ${got}`);
let gave_up = "";
try { time::retry(#{ attempts: 2, backoff: 5 }, || { throw "nope"; }); } catch (e) { gave_up = e; }
print(`gave up: ${gave_up}`);
let k = 0;
let ms = time::wait_until(#{ timeout: "2s", interval: 10 }, || { k += 1; k >= 4 });
print(`waited: ${k} checks`);
let never = "";
try { time::wait_until(#{ timeout: 100, interval: 20 }, || false); } catch (e) { never = e; }
print(`never: ${never}`);
print(`dur: ${time::duration("1m30s")}`);
"#,
        )
        .stderr_has("busy: timed out after 100ms")
        .stderr_has("blocked: timed out after 150ms")
        .stderr_has("value: 42")
        .stderr_has("retried: 3")
        .stderr_has("gave up: gave up after 2 attempts: nope")
        .stderr_has("waited: 4 checks")
        .stderr_has("never: condition not met within 100ms")
        .stderr_has("dur: 90000")
        .run();
}

// ---- http ----

/// Serves `count` requests: `/ok` JSON 200, `/fail` 500, `/slow` 200 after 80 ms.
fn serve(count: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count).flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (status, body) = if req.starts_with("GET /fail") {
                ("500 Internal Server Error", "{\"ok\":false}".to_string())
            } else if req.starts_with("GET /slow") {
                std::thread::sleep(Duration::from_millis(80));
                ("200 OK", "{\"ok\":true}".to_string())
            } else if req.starts_with("POST") {
                let body = req.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                (
                    "200 OK",
                    format!("{{\"echo\":{}}}", serde_json::to_string(&body).unwrap()),
                )
            } else {
                (
                    "200 OK",
                    "{\"ok\":true,\"service\":\"data-api\"}".to_string(),
                )
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn http_get_post_and_probe() {
    let port = serve(6);
    Test::new()
        .script(&format!(
            r#"let base = "http://127.0.0.1:{port}";
let r = http::get(`${{base}}/ok`);
print(`get: ${{r.status}} ${{r.ok}} ${{r.json.service}}`);
let p = http::post(`${{base}}/echo`, "cpu v=1");
print(`post: ${{p.json.echo}}`);
let f = http::probe(`${{base}}/fail`);
print(`fail: ${{f.ok}} ${{f.status}} ${{f.error}}`);
let s = http::probe(`${{base}}/slow`, #{{ budget: "10ms" }});
print(`slow: ${{s.ok}} ${{s.error}}`);
let ok = http::probe(`${{base}}/ok`, #{{ budget: "2s" }});
print(`probe: ${{ok.ok}} ${{ok.ms < 2000}}`);
let down = http::probe("http://127.0.0.1:9/health");
print(`down: ${{down.ok}} ${{down.status}}`);
"#
        ))
        .stderr_has("get: 200 true data-api")
        .stderr_has("post: cpu v=1")
        .stderr_has("fail: false 500 status 500")
        .stderr_has("slow: false answered in")
        .stderr_has("over the 10ms budget")
        .stderr_has("probe: true true")
        .stderr_has("down: false 0")
        .run();
}

/// Serves `/spike` (the first answer 400 ms late, then fast) and `/slow` (always 150 ms).
fn serve_spiky(count: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut spikes = 0;
        for stream in listener.incoming().take(count).flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if req.starts_with("GET /spike") {
                spikes += 1;
                if spikes == 1 {
                    std::thread::sleep(Duration::from_millis(400));
                }
            } else {
                std::thread::sleep(Duration::from_millis(150));
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    port
}

#[test]
fn http_probe_samples_judge_latency_on_the_median() {
    let port = serve_spiky(6);
    Test::new()
        .script(&format!(
            r#"let base = "http://127.0.0.1:{port}";
let s = http::probe(`${{base}}/spike`, #{{ budget: "100ms", samples: 3 }});
print(`spike: ${{s.ok}} ${{s.samples_ms.len()}} first ${{s.samples_ms[0] >= 400}} median ${{s.ms < 100}}`);
let w = http::probe(`${{base}}/slow`, #{{ budget: "100ms", samples: 3 }});
print(`slow: ${{w.ok}} ${{w.error}}`);
"#
        ))
        .stderr_has("spike: true 3 first true median true")
        .stderr_has("slow: false answered in")
        .stderr_has("(median of 3: [")
        .run();
}

#[test]
fn http_get_fails_clearly_when_nothing_listens() {
    Test::new()
        .script("http::get(\"http://127.0.0.1:9/health\");\n")
        .status(1)
        .stderr_has("GET http://127.0.0.1:9/health failed: cannot connect")
        .stderr_has("is the service running")
        .run();
}

/// Shared state reaches `parallel` workers curried: every worker calls methods on it at once
/// (the rebuild's journal and semaphores) without "data race detected". Captured, the same
/// calls race (the batch rebuild lost a service to it under load).
#[test]
fn parallel_workers_share_curried_state_without_races() {
    Test::new()
        .script(
            r#"let o = #{ s: semaphore(4) };
let items = [];
for i in 0..200 { items.push(i); }
fn work(o, i) { let t = 0; for j in 0..50 { t += o.s.available; o.s.run(|| 1); } i }
let r = parallel(items, 8, Fn("work").curry(o));
let bad = r.filter(|x| is_error(x));
if bad.len() > 0 { throw `${bad.len()} workers failed: ${bad[0].message}`; }
print(`all ${r.len()} done`);
"#,
        )
        .stderr_has("all 200 done")
        .run();
}
