//! A small test builder in the style of casey/just's: write files into a fresh temporary
//! workspace, run the real `dockhand` binary there, and assert on status, stdout and stderr.

#![allow(dead_code)]
pub mod containers;
pub mod influx;
pub mod otlp;
pub mod probe;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Run with an empty environment (see [`Test::clean_env`]).
    clean: bool,
    status: i32,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
    stderr_lacks: Vec<String>,
    stdout_lacks: Vec<String>,
    /// What the run reads on stdin (nothing: `/dev/null`).
    input: Option<Vec<u8>>,
}

/// The result of a run; keeps the workspace alive for further inspection.
pub struct Ran {
    pub dir: tempfile::TempDir,
    pub out: Output,
}

impl Ran {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            args: Vec::new(),
            env: Vec::new(),
            clean: false,
            status: 0,
            stdout_has: Vec::new(),
            stderr_has: Vec::new(),
            stderr_lacks: Vec::new(),
            stdout_lacks: Vec::new(),
            input: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating directories) into the workspace.
    pub fn file(self, rel: &str, contents: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    /// Shorthand: writes `main.rhai` and runs it.
    pub fn script(self, contents: &str) -> Self {
        self.file("main.rhai", contents).args(&["run", "main.rhai"])
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs with nothing of the test's own environment: only `PATH`, a `HOME` (and
    /// `XDG_DATA_HOME`) inside the workspace, and `NO_COLOR` (see [`clean_env`]).
    pub fn clean_env(mut self) -> Self {
        self.clean = true;
        self
    }

    /// Points Docker at a socket that does not exist: an engine that is not there.
    pub fn no_docker(self) -> Self {
        self.env("DOCKER_HOST", NO_DOCKER)
    }

    /// Bytes the run reads on stdin (a REPL session typed without a terminal).
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.input = Some(bytes.to_vec());
        self
    }

    pub fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    pub fn stdout_has(mut self, s: &str) -> Self {
        self.stdout_has.push(s.to_string());
        self
    }

    pub fn stdout_lacks(mut self, s: &str) -> Self {
        self.stdout_lacks.push(s.to_string());
        self
    }

    pub fn stderr_has(mut self, s: &str) -> Self {
        self.stderr_has.push(s.to_string());
        self
    }

    pub fn stderr_lacks(mut self, s: &str) -> Self {
        self.stderr_lacks.push(s.to_string());
        self
    }

    pub fn command(&self) -> Command {
        let mut c = dockhand();
        if self.clean {
            clean_env(&mut c, &self.dir.path().join(".home"));
        }
        c.args(&self.args).current_dir(self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts the command without waiting (stdout and stderr piped).
    pub fn spawn(&self) -> Child {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dockhand")
    }

    pub fn run(self) -> Ran {
        let out = match &self.input {
            None => self.command().stdin(Stdio::null()).output(),
            Some(bytes) => {
                let mut child = self
                    .command()
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn dockhand");
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(bytes).expect("write stdin");
                drop(stdin);
                child.wait_with_output()
            }
        }
        .expect("run dockhand");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let show = || {
            format!(
                "--- args: {:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
                self.args
            )
        };
        assert_eq!(
            out.status.code(),
            Some(self.status),
            "unexpected exit status\n{}",
            show()
        );
        for s in &self.stdout_has {
            assert!(
                stdout.contains(s.as_str()),
                "stdout lacks {s:?}\n{}",
                show()
            );
        }
        for s in &self.stdout_lacks {
            assert!(!stdout.contains(s.as_str()), "stdout has {s:?}\n{}", show());
        }
        for s in &self.stderr_has {
            assert!(
                stderr.contains(s.as_str()),
                "stderr lacks {s:?}\n{}",
                show()
            );
        }
        for s in &self.stderr_lacks {
            assert!(!stderr.contains(s.as_str()), "stderr has {s:?}\n{}", show());
        }
        Ran { dir: self.dir, out }
    }
}

/// Runs `cmd` and returns its stdout; panics naming `what`, with its exit code and output,
/// when it cannot start or fails (the benches' one way to run a step that must work).
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `dockhand` binary with the environment scrubbed of what a developer's shell may set
/// (`DOCKHAND_LOG`, `DOCKHAND_ROOT`, `DOCKHAND_STDLIB`) and without colours, so a test sees
/// what CI sees. Every test run of the binary starts here.
pub fn dockhand() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("DOCKHAND_LOG")
        .env_remove("DOCKHAND_ROOT")
        .env_remove("DOCKHAND_STDLIB")
        .env("NO_COLOR", "1");
    c
}

/// A Docker socket that does not exist, for runs that must meet no engine.
pub const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

/// Empties `c`'s environment but for `PATH`, `HOME` and `XDG_DATA_HOME` (both `home`, so
/// history and caches stay out of the developer's) and `NO_COLOR`: a run that sees nothing
/// of the shell it was started from. The caller adds what the test is about.
pub fn clean_env<'c>(c: &'c mut Command, home: &Path) -> &'c mut Command {
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("NO_COLOR", "1")
}

/// Reads a child's stderr line by line until a line contains `needle` (or the child ends).
/// Returns the reader so the caller can keep draining it.
pub fn wait_for_line(
    child: &mut Child,
    needle: &str,
) -> std::io::BufReader<std::process::ChildStderr> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "process ended before printing {needle:?}");
        if line.contains(needle) {
            return reader;
        }
    }
}

/// Looks with `look` every 250 ms until `done` says so or `within` has passed; returns the
/// last look either way (the caller's assertions then say what was wrong).
pub fn poll_until<T>(
    within: std::time::Duration,
    mut look: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let end = std::time::Instant::now() + within;
    loop {
        let seen = look();
        if done(&seen) || std::time::Instant::now() > end {
            return seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Sends a signal with the system `kill` command.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// Whether the lab can be built here: a Docker engine, the static busybox and `influxd`.
/// Without them a lab test is skipped with the reason printed — unless
/// `DOCKHAND_REQUIRE_DOCKER=1` (CI), where it fails instead.
pub fn docker_lab_ready(what: &str) -> bool {
    let missing = if Command::new("docker")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        Some("no Docker engine answers")
    } else if !Path::new("/bin/busybox").exists() {
        Some("no /bin/busybox (apt-get install busybox-static)")
    } else if !Path::new("/usr/bin/influxd").exists() {
        Some("no /usr/bin/influxd (apt-get install influxdb)")
    } else {
        None
    };
    ready_or_skip(what, missing)
}

/// `true` when nothing is `missing`; else a printed skip naming `why`, or, under
/// `DOCKHAND_REQUIRE_DOCKER=1` (CI), a failure: the one place a Docker test decides to skip.
pub fn ready_or_skip(what: &str, missing: Option<impl std::fmt::Display>) -> bool {
    let require = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    match missing {
        None => true,
        Some(why) => {
            assert!(!require, "DOCKHAND_REQUIRE_DOCKER=1 but {why}");
            eprintln!("skipping {what}: {why}");
            false
        }
    }
}

/// The rebuild options most lab tests pass: `--service` for each of `services`, one
/// `--build-arg` (`"VERSION=2"`) and `--run RUN`; a test adds its own after them.
pub fn rebuild_args<'a>(services: &[&'a str], build_arg: &'a str, run: &'a str) -> Vec<&'a str> {
    let mut args = Vec::with_capacity(services.len() * 2 + 4);
    for svc in services {
        args.extend(["--service", svc]);
    }
    args.extend(["--build-arg", build_arg, "--run", run]);
    args
}

/// The start of a lab test: its turn (the lab tests of one binary run one at a time; each
/// times health gates on a 2-core machine), or `None` when [`docker_lab_ready`] says to
/// skip it. Hold the guard for the whole test: `let Some(_turn) = lab_turn("…") else { return };`
pub fn lab_turn(what: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    docker_lab_ready(what).then_some(turn)
}

/// Copies a directory tree (a lab or the playbooks into a test's workspace).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The version of compose tool `cmd` (`["docker", "compose"]` or `["docker-compose"]`) if it
/// is installed and its major version is `major` (`'2'`: Compose v2; `'1'`: Debian's v1).
pub fn compose_version(cmd: &[&str], major: char) -> Option<String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .args(["version", "--short"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    (out.status.success() && v.starts_with(major)).then_some(v)
}

/// A copy of the lab (`examples/homeiq`) in a fresh workspace with its own compose project
/// (`<prefix><pid>`, so parallel test binaries do not meet); `lab down` on drop, which also
/// removes the rebuild's backup tags. Test files add their own methods in `impl Lab` blocks.
pub struct Lab {
    pub ws: tempfile::TempDir,
    pub project: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = dockhand()
            .args(["lab", "--dir"])
            .arg(self.dir())
            .args(["--project", &self.project, "down"])
            .output();
    }
}

impl Lab {
    /// Copies the lab into a fresh workspace (nothing is started yet).
    pub fn new(prefix: &str) -> Lab {
        let ws = tempfile::tempdir().unwrap();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homeiq"),
            &ws.path().join("homeiq"),
        );
        Lab {
            ws,
            project: format!("{prefix}{}", std::process::id()),
        }
    }

    /// Copies the lab and brings up InfluxDB plus `only` (every service when empty).
    pub fn start(prefix: &str, only: &[&str]) -> Lab {
        let lab = Lab::new(prefix);
        lab.up(only, &[]);
        lab
    }

    /// Also copies the repository's playbooks into the workspace.
    pub fn with_playbooks(self) -> Lab {
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks"),
            &self.ws.path().join("playbooks"),
        );
        self
    }

    /// The lab directory (`<workspace>/homeiq`).
    pub fn dir(&self) -> PathBuf {
        self.ws.path().join("homeiq")
    }

    /// `dockhand run playbooks/batch-rebuild.rhai` on this lab (workspace root, services.yaml,
    /// project), scrubbed as [`dockhand`]; `args` follow.
    pub fn rebuild(&self, args: &[&str]) -> Command {
        let mut c = dockhand();
        c.arg("run")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/batch-rebuild.rhai"))
            .arg("--root")
            .arg(self.ws.path())
            .args([
                "--config",
                "homeiq/services.yaml",
                "--project",
                &self.project,
            ])
            .args(args);
        c
    }

    /// The run journal `.dockhand/state/<run>.json`, parsed.
    pub fn journal(&self, run: &str) -> serde_json::Value {
        let p = self.ws.path().join(format!(".dockhand/state/{run}.json"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("journal {} is not valid JSON ({e}):\n{text}", p.display()))
    }

    /// `docker inspect` of every container of the project, running or not.
    pub fn inspect_all(&self) -> Vec<serde_json::Value> {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.project))
            .output()
            .unwrap();
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let out = Command::new("docker")
            .arg("inspect")
            .args(&ids)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    /// `lab up --wait 3m [--only A,B] [--fault SVC=KIND ...]`; panics with its output when it
    /// fails.
    pub fn up(&self, only: &[&str], faults: &[&str]) {
        let mut c = dockhand();
        c.args(["lab", "--dir"]).arg(self.dir()).args([
            "--project",
            &self.project,
            "up",
            "--wait",
            "3m",
        ]);
        if !only.is_empty() {
            c.args(["--only", &only.join(",")]);
        }
        for f in faults {
            c.args(["--fault", f]);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "lab up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What a test HTTP server saw of one request: request line, headers (names lower-cased)
/// and body.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub request: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A test server's answer: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
        }
    }
}

/// A local HTTP/1.1 server on a free loopback port, for clients that must meet a real
/// socket: it answers each request (the first 20, one connection each) with what `respond`
/// returns and records every request it saw. Returns its base URL and the record.
pub fn http_server(
    respond: impl Fn(&Seen) -> Reply + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in l.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            let got = read_request(&mut BufReader::new(s.try_clone().unwrap()));
            let r = respond(&got);
            seen2.lock().unwrap().push(got);
            let reason = match r.status {
                200 => "OK",
                204 => "No Content",
                400 => "Bad Request",
                401 => "Unauthorized",
                404 => "Not Found",
                500 => "Internal Server Error",
                _ => "Status",
            };
            let _ = write!(
                s,
                "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                r.status,
                r.content_type,
                r.body.len(),
                r.body
            );
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

/// Reads one HTTP/1.1 request (request line, headers, a `Content-Length` body of at most
/// 1 MiB) for the hand-rolled test servers.
pub fn read_request(reader: &mut impl BufRead) -> Seen {
    let mut got = Seen::default();
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    got.request = line.trim_end().to_string();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(": ") {
            got.headers.push((k.to_ascii_lowercase(), v.to_string()));
        }
    }
    let len: usize = got
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut b = vec![0; len];
    let _ = reader.read_exact(&mut b);
    got.body = String::from_utf8_lossy(&b).into_owned();
    got
}
