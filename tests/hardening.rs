//! Regression tests for issue 13 (hardening): each test names the numbered item it guards
//! and fails on the code before the fix. They run the real binary, without Docker.

mod common;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::process::Command;

use common::Test;

// 1. Import cycles are an error naming the cycle (exit 2), not a stack overflow (134).

#[test]
fn item1_import_cycle_is_a_clear_error_in_run_and_check() {
    for cmd in ["run", "check"] {
        Test::new()
            .file("a.rhai", "import \"b\" as b;\nprint(1);\n")
            .file("b.rhai", "\nimport \"a\" as a;\n")
            .args(&[cmd, "a.rhai"])
            .status(2)
            .stderr_has("import cycle: a.rhai → b.rhai → a.rhai")
            .stderr_has("b.rhai:2:")
            .stderr_lacks("overflow")
            .run();
    }
    Test::new()
        .file("self.rhai", "import \"self\" as s;\n")
        .args(&["run", "self.rhai"])
        .status(2)
        .stderr_has("import cycle: self.rhai → self.rhai")
        .run();
}

#[test]
fn item1_validate_keeps_the_other_scripts_results_after_a_cycle() {
    let ran = Test::new()
        .file("v/a.rhai", "import \"b\" as b;\n")
        .file("v/b.rhai", "import \"a\" as a;\n")
        .file("v/ok.rhai", "check(\"fine\", true);\n")
        .args(&["validate", "v", "--json"])
        .status(2)
        .run();
    let out = ran.stdout();
    assert!(out.contains("fine"), "{out}\n{}", ran.stderr());
    assert!(out.contains("import cycle"), "{out}");
}

#[test]
fn item1_repl_import_and_load_of_a_cycle_keep_the_session() {
    let ran = Test::new()
        .file("a.rhai", "import \"b\" as b;\n")
        .file("b.rhai", "import \"a\" as a;\n")
        .args(&["repl"])
        .stdin(b"import \"a\" as a;\n:load a.rhai\n40 + 2\n")
        .stdout_has("42")
        .run();
    let stderr = ran.stderr();
    assert_eq!(stderr.matches("import cycle").count(), 2, "{stderr}");
}

// 2. Journals and locks are confined to the workspace and not opened through symlinks.

#[test]
fn item2_symlinked_state_dir_journal_and_lock_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, "{\"records\":{\"leak\":{\"v\":1}}}").unwrap();
    // A symlinked .dockhand: nothing may be created outside.
    let t = Test::new().script("let j = state::open(\"r\"); j.set(\"a\", #{x: 1});");
    symlink(outside.path(), t.path().join(".dockhand")).unwrap();
    t.status(2).stderr_has("outside the workspace root").run();
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    // A symlinked journal: not read, even by state::load under --read-only.
    let t = Test::new()
        .file(".dockhand/state/keep", "")
        .file("main.rhai", "print(state::load(\"r\"));")
        .args(&["run", "--read-only", "main.rhai"]);
    symlink(&secret, t.path().join(".dockhand/state/r.json")).unwrap();
    t.status(2).stderr_lacks("leak").stdout_lacks("leak").run();
    // A lock that is a symlink (even inside the workspace) is not written through.
    let t = Test::new()
        .file(".dockhand/state/keep", "")
        .file("victim.txt", "precious")
        .script("let j = state::open(\"q\"); j.set(\"a\", #{x: 1});");
    symlink("../../victim.txt", t.path().join(".dockhand/state/q.lock")).unwrap();
    let ran = t.status(2).stderr_has("symlink").run();
    assert_eq!(
        std::fs::read_to_string(ran.path("victim.txt")).unwrap(),
        "precious"
    );
}

// 3. `--stdlib DIR` module names are names, not paths.

#[test]
fn item3_stdlib_names_cannot_traverse() {
    let t = Test::new()
        .file("lib/std/fmt.rhai", "fn x() { 1 }")
        .file("elsewhere/mod.rhai", "fn secret() { 42 }")
        .script("import \"stdlib/../../elsewhere/mod\" as m;\nprint(m::secret());");
    let ran = t
        .args(&["--stdlib", "lib/std"])
        .status(2)
        .stderr_has("not a plain name")
        .run();
    assert!(!ran.stdout().contains("42"));
}

// 5. Extreme durations are errors, not panics.

#[test]
fn item5_extreme_durations_are_clear_errors() {
    for call in [
        "time::sleep(1e300)",
        "time::sleep(-1)",
        "time::timeout(1e300, || 1)",
        "time::sleep(\"99999999999999h\")",
        "time::retry(#{ attempts: 3, backoff: 1e300, factor: 1e308 }, || throw \"x\")",
        "time::retry(#{ attempts: 3, backoff: 1, factor: 1e308 }, || throw \"x\")",
        "time::wait_until(#{ timeout: 1e300 }, || true)",
    ] {
        let ran = Test::new()
            .script(&format!("{call};"))
            .status(2)
            .stderr_lacks("panicked")
            .stderr_lacks("internal error")
            .run();
        assert!(
            ran.stderr().contains("invalid argument"),
            "{call}: {}",
            ran.stderr()
        );
    }
}

// 6. fs::glob honours --timeout and bounds its walk; compile work and file reads are bounded.

/// Waits for `child` at most `limit`; kills it and returns `None` when it runs longer.
fn wait_at_most(child: &mut std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let started = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn item6_glob_through_symlink_loops_ends() {
    let t = Test::new()
        .file("d/e/f.txt", "x")
        .script("let n = fs::glob(\"**/*\").len();\nif n < 3 || n > 100 { throw `found ${n}`; }");
    for (i, target) in [".", "..", "../..", "d"].iter().enumerate() {
        symlink(target, t.path().join(format!("d/e/loop{i}"))).unwrap();
        symlink(target, t.path().join(format!("d/loop{i}"))).unwrap();
    }
    let t = t.args(&["--timeout", "10s"]);
    let mut child = t.spawn();
    let code = wait_at_most(&mut child, std::time::Duration::from_secs(30));
    assert_eq!(
        code,
        Some(0),
        "fs::glob over symlink loops did not finish cleanly"
    );
}

#[test]
fn item6_huge_map_literal_and_dev_zero_fail_fast() {
    let keys: Vec<String> = (0..20_000).map(|i| format!("k{i}: {i}")).collect();
    let started = std::time::Instant::now();
    Test::new()
        .file("big.rhai", &format!("let m = #{{{}}};", keys.join(",\n")))
        .args(&["check", "big.rhai"])
        .status(2)
        .stderr_has("map literal has more than")
        .run();
    // A device is refused before anything is read; a file over the cap by its size.
    Test::new()
        .args(&["run", "/dev/zero"])
        .status(2)
        .stderr_has("not a regular file")
        .run();
    let t = Test::new();
    let big = std::fs::File::create(t.path().join("big.rhai")).unwrap();
    big.set_len(5 << 20).unwrap();
    t.args(&["run", "big.rhai"])
        .status(2)
        .stderr_has("larger than")
        .run();
    assert!(started.elapsed().as_secs() < 20);
}

// 10. Invalid UTF-8 in the REPL is reported and the session goes on.

#[test]
fn item10_repl_survives_invalid_utf8() {
    Test::new()
        .args(&["repl"])
        .stdin(b"1 + \xff\xfe;\n2 + 2\n")
        .stderr_has("not valid UTF-8")
        .stdout_has("4")
        .run();
}

// 13. Smaller: BOM, unterminated comment, integer overflow.

#[test]
fn item13_bom_is_accepted_and_silent_surprises_are_errors() {
    Test::new()
        .script("\u{feff}print(\"bom ok\");")
        .stderr_has("bom ok")
        .run();
    Test::new()
        .script("print(1);\n/* never closed\nprint(2);\n")
        .status(2)
        .stderr_has("never closed")
        .run();
    Test::new()
        .script("let x = 99999999999999999999;\nprint(x);")
        .status(2)
        .stderr_has("does not fit in 64 bits")
        .run();
}

#[allow(dead_code)]
fn bin() -> Command {
    Command::new(common::BIN)
}

// 12. Parameter declarations: no shadowing, no empty names, no empty choices; `--n -5`.

#[test]
fn item12_param_declarations_are_checked_and_negative_numbers_parse() {
    for (decl, says) in [
        ("repl_on_failure: false", "clashes"),
        ("\"\": 1", "empty"),
        ("env: #{ choices: [] }", "'choices' is empty"),
    ] {
        Test::new()
            .script(&format!("let p = params(#{{ {decl} }});"))
            .status(2)
            .stderr_has(says)
            .stderr_has("main.rhai:1:")
            .run();
    }
    Test::new()
        .script("let p = params(#{ n: 1, f: 0.5 });\nprint(`n=${p.n} f=${p.f}`);")
        .args(&["--n", "-5", "--f", "-2.5"])
        .stderr_has("n=-5 f=-2.5")
        .run();
}

/// A loopback HTTP server answering every request with `body` (status 200, JSON), counting
/// the requests it got. Stops after `max` requests or when the test ends.
fn serve(body: &'static str, max: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    serve_with(body, max, "200 OK")
}

/// [`serve`] answering with `status` (e.g. "400 Bad Request").
fn serve_with(
    body: &'static str,
    max: usize,
    status: &'static str,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::BufReader;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            common::read_request(&mut BufReader::new(s.try_clone().unwrap()));
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

// 7. --read-only / --dry-run leaks.

#[test]
fn item7_http_post_is_refused_read_only_and_planned_dry_run_unless_safe() {
    let (port, hits) = serve("{\"ok\":1}", 16);
    let post = format!("http::post(\"http://127.0.0.1:{port}/write\", \"x\")");
    Test::new()
        .script(&format!("{post};"))
        .args(&["--read-only"])
        .status(2)
        .stderr_has("--read-only")
        .run();
    let ran = Test::new()
        .script(&format!("let r = {post}; print(`planned=${{r.planned}}`);"))
        .args(&["--dry-run", "--json"])
        .stderr_has("planned=true")
        .run();
    assert!(ran.stdout().contains("http::post"), "{}", ran.stdout());
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    Test::new()
        .script(&format!(
            "let r = http::post(\"http://127.0.0.1:{port}/search\", \"x\", #{{ safe: true }}); print(r.status);"
        ))
        .args(&["--read-only"])
        .stderr_has("200")
        .run();
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn item7_docker_mutations_are_refused_before_contacting_the_engine() {
    for call in [
        "docker::restart(\"x\")",
        "docker::stop(\"x\")",
        "docker::start(\"x\")",
        "docker::rm(\"x\")",
        "docker::recreate(\"x\")",
        "docker::exec(\"x\", [\"true\"])",
    ] {
        // An engine that is not there: the refusal must come first, not a connection error.
        Test::new()
            .script(&format!("{call};"))
            .args(&["--read-only", "--allow-exec"])
            .no_docker()
            .status(2)
            .stderr_has("refused:")
            .stderr_has("--read-only")
            .run();
    }
}

#[test]
fn item7_influx_mutations_are_decided_by_parsing() {
    let (port, hits) = serve("{\"results\":[{\"statement_id\":0}]}", 16);
    for q in [
        "EXPLAIN ANALYZE SELECT * INTO copy FROM cpu",
        "/* x */ DROP DATABASE lab",
    ] {
        Test::new()
            .script(&format!(
                "let db = influx::connect(#{{ url: \"http://127.0.0.1:{port}\", db: \"lab\" }});\ndb.query({q:?});"
            ))
            .args(&["--read-only"])
            .status(2)
            .stderr_has("--read-only")
            .run();
    }
    for q in [
        "from(bucket: \"b\") |> range(start: -1h) |> to /* c */ (bucket: \"x\")",
        "w = to\nfrom(bucket: \"b\") |> range(start: -1h) |> w(bucket: \"x\")",
        "import \"http\"\nhttp.post(url: \"http://127.0.0.1:9\")",
        "from(bucket: \"b\") |> range(start: -1h) |> wideTo(bucket: \"x\")",
    ] {
        Test::new()
            .script(&format!(
                "let db = influx::connect(#{{ url: \"http://127.0.0.1:{port}\", version: 2, org: \"o\", bucket: \"b\" }});\ndb.query({q:?});"
            ))
            .args(&["--read-only"])
            .status(2)
            .stderr_has("--read-only")
            .run();
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

// 9. Secrets.

#[test]
fn item9_secrets_are_redacted_in_every_case_and_url_credentials_masked() {
    const TOKEN: &str = "Tok3nSecretValue42";
    // The server echoes the token upper-cased and split over two lines, at the cut edge.
    let echo: &'static str = Box::leak(
        format!(
            "{{\"error\":\"{}bad token {}\\n{}\"}}",
            "x".repeat(180),
            &TOKEN[..9].to_ascii_uppercase(),
            &TOKEN[9..].to_ascii_uppercase()
        )
        .into_boxed_str(),
    );
    // An error status: a 200 answer's `error` column is data, not an error (issue 16).
    let (port, _) = serve_with(echo, 16, "400 Bad Request");
    let ran = Test::new()
        .script(&format!(
            "let db = influx::connect(#{{ url: \"http://admin:hunter22@127.0.0.1:{port}\", version: 3, db: \"d\", token_env: \"TOK\" }});\nprint(db);\ndb.query(\"SELECT 1\");"
        ))
        .env("TOK", TOKEN)
        .status(1)
        .run();
    let all = format!("{}{}", ran.stdout(), ran.stderr());
    assert!(!all.to_ascii_lowercase().contains("tok3nsec"), "{all}");
    assert!(!all.contains("hunter22"), "{all}");
    assert!(all.contains("admin:***@"), "{all}");
    // A one-character token is refused, not used to mask every 'a'.
    Test::new()
        .script("influx::connect(#{ token_env: \"TOK\" });")
        .env("TOK", "a")
        .status(2)
        .stderr_has("shorter than 8")
        .run();
    // URL credentials in an http error.
    let ran = Test::new()
        .script("http::get(\"http://user:pa55word@127.0.0.1:9/?token=abc&p=pa55word\");")
        .status(1)
        .run();
    assert!(!ran.stderr().contains("pa55word"), "{}", ran.stderr());
}

// 13. Smaller: flags that point nowhere, output into a missing directory, thread cap.

#[test]
fn item13_bad_root_stdlib_and_output_paths_are_clear_errors() {
    Test::new()
        .file("afile", "x")
        .script("print(1);")
        .args(&["--root", "afile"])
        .status(2)
        .stderr_has("not a directory")
        .run();
    Test::new()
        .script("print(1);")
        .args(&["--stdlib", "missing-dir"])
        .status(2)
        .stderr_has("--stdlib directory")
        .run();
    Test::new()
        .file("v/ok.rhai", "check(\"x\", true);")
        .args(&["validate", "v", "--junit", "no/such/dir/r.xml"])
        .status(2)
        .stderr_has("cannot write the JUnit report")
        .stderr_has("does not exist")
        .run();
    Test::new()
        .args(&["docs", "-o", "no/such/dir/api.md"])
        .status(2)
        .stderr_has("cannot write the API reference")
        .run();
}

#[test]
fn item13_parallel_with_a_huge_limit_queues_instead_of_spawning() {
    let t = Test::new().script(
        "let items = [];\nfor i in 0..300 { items.push(i); }\nlet r = parallel(items, 1000000, |i| { time::sleep(200); i * 2 });\nprint(`n=${r.len()} last=${r[299]}`);",
    );
    let mut child = t.spawn();
    // Sample the process's thread count while it runs.
    let status = format!("/proc/{}/status", child.id());
    let mut most = 0usize;
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 60 {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(n) = text
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
        {
            most = most.max(n);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("n=300 last=598"), "{stderr}");
    // 64 workers plus the runtime's own threads; without the cap there would be 300+.
    assert!(most > 1 && most < 100, "{most} threads at once");
}

/// A script that prints what it fetched (an echoed token in a body, a URL with credentials)
/// prints no secret either: `print` and `debug` go through the same redaction as errors.
#[test]
fn item9_a_printed_secret_is_redacted_too() {
    const TOKEN: &str = "Pr1ntedSecretToken99";
    let ran = Test::new()
        .script(&format!(
            "influx::connect(#{{ url: \"http://127.0.0.1:9\", version: 1, db: \"d\", token_env: \"TOK\" }});\n\
             print(\"body: {}\");\ndebug(\"dbg {}\");\nprint(\"see http://u:s3cretpass@127.0.0.1:9/x\");",
            TOKEN.to_uppercase(),
            TOKEN
        ))
        .env("TOK", TOKEN)
        .env("DOCKHAND_LOG", "debug")
        .run();
    let all = format!("{}{}", ran.stdout(), ran.stderr());
    assert!(all.contains("body: "), "{all}");
    assert!(!all.to_lowercase().contains(&TOKEN.to_lowercase()), "{all}");
    assert!(!all.contains("s3cretpass"), "{all}");
}

/// A FIFO where a file is expected (a playbook, or a file `fs::read` reads) is refused at
/// once: opening it would wait for a writer forever, past `--timeout` and Ctrl-C.
#[test]
fn item6_a_fifo_is_refused_not_waited_on() {
    let t = Test::new().script("print(fs::read(\"pipe\"));");
    let made = std::process::Command::new("mkfifo")
        .arg(t.path().join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    let ran = t.status(1).stderr_has("not a regular file").run();
    assert!(started.elapsed().as_secs() < 20, "it waited on the FIFO");
    let made = std::process::Command::new("mkfifo")
        .arg(ran.path("play.rhai"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = common::dockhand()
        .args(["run", "play.rhai"])
        .current_dir(ran.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}
