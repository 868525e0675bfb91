//! A small test builder in the style of casey/just's: write files into a fresh temporary
//! workspace, run the real `dockhand` binary there, and assert on status, stdout and stderr.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    status: i32,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
    stderr_lacks: Vec<String>,
    stdout_lacks: Vec<String>,
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
            status: 0,
            stdout_has: Vec::new(),
            stderr_has: Vec::new(),
            stderr_lacks: Vec::new(),
            stdout_lacks: Vec::new(),
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
        let mut c = Command::new(BIN);
        c.args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("DOCKHAND_LOG")
            .env_remove("DOCKHAND_ROOT")
            .env_remove("DOCKHAND_STDLIB")
            .env("NO_COLOR", "1");
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
        let out = self
            .command()
            .stdin(Stdio::null())
            .output()
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
    let require = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
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
    match missing {
        None => true,
        Some(why) => {
            assert!(!require, "DOCKHAND_REQUIRE_DOCKER=1 but {why}");
            eprintln!("skipping {what}: {why}");
            false
        }
    }
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
