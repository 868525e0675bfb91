//! The bad-input corpus (`tests/corpus/`, written by `tests/corpus/generate.py`), each input
//! run through the real binary in a fresh workspace. For every input this asserts the
//! guarantees of README's "Security model":
//!
//! * the exit code is a documented one — 1 (a step failed) or 2 (bad script, config or
//!   usage), or what `tests/corpus/expect.txt` lists for inputs that are legitimately
//!   accepted (REPL sessions exit 0: the session survives every bad line) — never a panic
//!   (101), an abort (134), a segfault (139) or any other signal;
//! * no "panicked" or "internal error" text;
//! * bounded time (`--timeout 5s`, and a hard kill after 60 s fails the input) and bounded
//!   memory (run under `prlimit --as`, so runaway allocation aborts and fails the input);
//! * nothing written outside the workspace: a sentinel directory next to it (reachable
//!   through a symlink `out -> ../sentinel` in the workspace) is unchanged afterwards;
//! * no secret printed: the known token in `$CORPUS_TOKEN` (which servers in the corpus
//!   echo back, upper-cased and split across lines) and the password `CorpusPw99` in URLs
//!   never appear in stdout or stderr, in any case.
//!
//! InfluxDB answers are served by a tiny HTTP server on 127.0.0.1 (one per input). Inputs
//! run on four threads; the whole corpus takes well under a minute on two cores.

mod common;

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SECRET: &str = "CORPUS-SECRET-TOKEN-7f3a9";
const PASSWORD: &str = "CorpusPw99";
const HARD_KILL: Duration = Duration::from_secs(60);
/// Address-space cap for each run (virtual memory: threads reserve stacks they never touch).
const MEMORY_LIMIT: &str = "4294967296";

#[derive(Debug, Clone)]
struct Case {
    category: String,
    name: String,
    path: PathBuf,
    expect: Vec<i32>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `cat/name: 0|1` lines: the exit codes an input may end with, when not the default.
fn expectations() -> BTreeMap<String, Vec<i32>> {
    let text = std::fs::read_to_string(corpus_dir().join("expect.txt")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let codes = v
                .split('#')
                .next()
                .unwrap_or("")
                .split('|')
                .filter_map(|c| c.trim().parse().ok())
                .collect();
            Some((k.trim().to_string(), codes))
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let expect = expectations();
    let mut out = Vec::new();
    for category in [
        "playbooks",
        "params",
        "configs",
        "journals",
        "influx",
        "repl",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(category))
            .unwrap_or_else(|e| panic!("tests/corpus/{category}: {e}"))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for path in files {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let key = format!("{category}/{name}");
            let default = if category == "repl" {
                vec![0]
            } else {
                vec![1, 2]
            };
            out.push(Case {
                expect: expect.get(&key).cloned().unwrap_or(default),
                category: category.to_string(),
                name,
                path,
            });
        }
    }
    out
}

/// Serves `body` to every request (status 400 when it mentions an error, else 200) on a
/// loopback port until `stop` is set.
fn serve(body: Vec<u8>, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let status = if String::from_utf8_lossy(&body).contains("error") {
            "400 Bad Request"
        } else {
            "200 OK"
        };
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            common::read_request(&mut BufReader::new(s.try_clone().unwrap()));
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Influxdb-Version: 1.8.10\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    port
}

const INFLUX_SCRIPT: &str = r#"let errs = 0;
let url = "http://127.0.0.1:PORT";
for q in [
    [#{ url: url, db: "d", token_env: "CORPUS_TOKEN" }, "SELECT * FROM m"],
    [#{ url: url, version: 2, org: "o", bucket: "b", token_env: "CORPUS_TOKEN" }, "from(bucket: \"b\") |> range(start: -1h)"],
    [#{ url: url, version: 3, db: "d", token_env: "CORPUS_TOKEN" }, "SELECT 1"],
] {
    let c = influx::connect(q[0]);
    try { print(c.query(q[1])); } catch (e) { errs += 1; print(`error: ${e}`); }
}
let c = influx::connect(#{ url: url, db: "d", token_env: "CORPUS_TOKEN" });
try { print(c.ping()); } catch (e) { errs += 1; print(`error: ${e}`); }
if errs > 0 { throw `${errs} of 4 InfluxDB answers were refused`; }
"#;

struct Outcome {
    code: Option<i32>,
    output: String,
    ms: u128,
}

fn run_case(case: &Case, bin: &[String]) -> Result<Outcome, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ws = tmp.path().join("ws");
    let sentinel = tmp.path().join("sentinel");
    let home = tmp.path().join("home");
    for d in [&ws, &sentinel, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(sentinel.join("keep"), "keep").unwrap();
    std::os::unix::fs::symlink("../sentinel", ws.join("out")).unwrap();
    std::os::unix::fs::symlink(".", ws.join("loop")).unwrap();
    for f in ["cyc_a.rhai", "cyc_b.rhai"] {
        std::fs::copy(corpus_dir().join("support").join(f), ws.join(f)).unwrap();
    }
    let input = std::fs::read(&case.path).unwrap();
    let mut args: Vec<String> = vec!["--timeout".into(), "5s".into()];
    let mut stdin_data: Option<Vec<u8>> = None;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    match case.category.as_str() {
        "playbooks" => {
            std::fs::write(ws.join("main.rhai"), &input).unwrap();
            args.extend(["run".into(), "main.rhai".into()]);
        }
        "params" => {
            let text = String::from_utf8_lossy(&input);
            let first = text.lines().next().unwrap_or("");
            let extra: Vec<String> = first
                .strip_prefix("// args:")
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect();
            std::fs::write(ws.join("main.rhai"), &input).unwrap();
            args.extend(["run".into(), "main.rhai".into()]);
            args.extend(extra);
        }
        "configs" => {
            std::fs::write(ws.join("services.yaml"), &input).unwrap();
            std::fs::write(
                ws.join("main.rhai"),
                "let c = config::load(\"services.yaml\");\nprint(`loaded ${c.services.len()} services`);\n",
            )
            .unwrap();
            args.extend(["run".into(), "main.rhai".into()]);
        }
        "journals" => {
            std::fs::create_dir_all(ws.join(".dockhand/state")).unwrap();
            std::fs::write(ws.join(".dockhand/state/j.json"), &input).unwrap();
            std::fs::write(
                ws.join("main.rhai"),
                "let r = state::load(\"j\");\nprint(`records: ${r.len()}`);\nlet j = state::open(\"j\");\nj.set(\"k\", #{ v: 1 });\nprint(state::list());\n",
            )
            .unwrap();
            args.extend(["run".into(), "main.rhai".into()]);
        }
        "influx" => {
            let port = serve(input.clone(), stop.clone());
            std::fs::write(
                ws.join("main.rhai"),
                INFLUX_SCRIPT.replace("PORT", &port.to_string()),
            )
            .unwrap();
            args.extend(["run".into(), "main.rhai".into()]);
        }
        "repl" => {
            stdin_data = Some(input.clone());
            args.extend(["repl".into(), "--no-history".into()]);
        }
        other => return Err(format!("unknown category {other}")),
    }
    let out_path = tmp.path().join("out.txt");
    let err_path = tmp.path().join("err.txt");
    let mut cmd = Command::new(&bin[0]);
    common::clean_env(&mut cmd, &home);
    cmd.args(&bin[1..])
        .args(&args)
        .current_dir(&ws)
        .env("CORPUS_TOKEN", SECRET)
        .env("CORPUS_SHORT", "a")
        .env("DOCKER_HOST", "unix:///nonexistent/dockhand-corpus.sock")
        .stdin(if stdin_data.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    if let Some(data) = stdin_data {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if started.elapsed() > HARD_KILL {
            let _ = child.kill();
            let _ = child.wait();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(format!("still running after {HARD_KILL:?}: killed"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let ms = started.elapsed().as_millis();
    let mut output = String::new();
    for p in [&out_path, &err_path] {
        let mut bytes = Vec::new();
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .ok();
        output.push_str(&String::from_utf8_lossy(&bytes));
    }
    // Nothing written outside the workspace.
    let entries: Vec<String> = std::fs::read_dir(&sentinel)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if entries != ["keep"]
        || std::fs::read_to_string(sentinel.join("keep"))
            .ok()
            .as_deref()
            != Some("keep")
    {
        return Err(format!(
            "wrote outside the workspace: sentinel now has {entries:?}"
        ));
    }
    if Path::new("/tmp/dockhand-corpus-pwned").exists() {
        return Err("wrote /tmp/dockhand-corpus-pwned".into());
    }
    Ok(Outcome {
        code: std::os::unix::process::ExitStatusExt::signal(&status)
            .map(|_| None)
            .unwrap_or(status.code()),
        output,
        ms,
    })
}

fn check(case: &Case, o: &Outcome) -> Result<(), String> {
    let lower = o.output.to_ascii_lowercase();
    match o.code {
        Some(c) if case.expect.contains(&c) => {}
        Some(c) => return Err(format!("exit code {c}, expected one of {:?}", case.expect)),
        None => return Err("killed by a signal".into()),
    }
    for bad in [
        "panicked",
        "internal error",
        "stack backtrace",
        "rust_backtrace",
    ] {
        if lower.contains(bad) {
            return Err(format!("output contains {bad:?}"));
        }
    }
    if lower.contains(&SECRET.to_ascii_lowercase())
        || lower.contains(&PASSWORD.to_ascii_lowercase())
    {
        return Err("a secret was printed".into());
    }
    Ok(())
}

#[test]
fn every_bad_input_fails_cleanly() {
    let mut bin = vec![common::BIN.to_string()];
    let limited = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if limited {
        bin = vec![
            "prlimit".into(),
            format!("--as={MEMORY_LIMIT}"),
            "--".into(),
            common::BIN.into(),
        ];
    } else {
        eprintln!("note: prlimit not found; running the corpus without a memory cap");
    }
    let all = cases();
    assert!(all.len() >= 300, "only {} inputs", all.len());
    let queue = Mutex::new(all.clone());
    let results: Mutex<Vec<(Case, Result<Outcome, String>)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let Some(case) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let r = run_case(&case, &bin);
                    results.lock().unwrap().push((case, r));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut failures = Vec::new();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut slowest: Vec<(u128, String)> = Vec::new();
    for (case, r) in &results {
        let key = format!("{}/{}", case.category, case.name);
        match r {
            Ok(o) => {
                let code = o.code.map_or("signal".to_string(), |c| c.to_string());
                *counts.entry((case.category.clone(), code)).or_default() += 1;
                slowest.push((o.ms, key.clone()));
                if let Err(why) = check(case, o) {
                    let tail: String = o
                        .output
                        .chars()
                        .rev()
                        .take(1500)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    failures.push(format!("{key}: {why}\n{tail}"));
                }
            }
            Err(why) => {
                *counts
                    .entry((case.category.clone(), "error".into()))
                    .or_default() += 1;
                failures.push(format!("{key}: {why}"));
            }
        }
    }
    slowest.sort();
    eprintln!(
        "corpus: {} inputs in {:.1}s; outcomes (category, exit code → inputs):",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    for ((cat, code), n) in &counts {
        eprintln!("  {cat:10} exit {code:6} {n}");
    }
    for (ms, key) in slowest.iter().rev().take(5) {
        eprintln!("  slowest: {key} {ms} ms");
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs broke a guarantee:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}
