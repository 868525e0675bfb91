//! The compose tool installed here, and BuildKit builds driven through it.
//!
//! **Why drive Compose v2 to build, instead of speaking BuildKit ourselves?** The engine's
//! BuildKit is reached over a gRPC session (`/session` + `/grpc`) through which the *client*
//! serves the build context, secrets, ssh agents and named contexts, and receives progress.
//! bollard 0.21's `buildkit` feature serves only the context and registry auth on that path
//! (no secrets, no ssh, no progress stream), and a hand-written session would be a second
//! BuildKit client to keep in step with Docker's. Compose v2 *is* the tool whose output we
//! promise to match (`docker compose build`), it ships as one static binary, and it builds one
//! service per call with every `build:` key (or several: `build/batch.rs`). So a compose service is built by
//! `docker compose -p P -f FILE build SERVICE` — the result is by construction the image
//! `docker compose build` makes — and a build that is not a compose service (a script's
//! `docker::build(#{context: ...})`) by the same command on a one-service compose file
//! written to its standard input. The builder's plain progress goes line by line to the
//! service's build log, so the log and the failure line stay what they were.
//!
//! Where Compose v2 is missing (or `DOCKHAND_BUILDER=classic`), `docker::build` falls back to
//! the engine's classic builder through bollard (`build.rs`), which refuses the BuildKit-only
//! keys instead of building a different image.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// An installed compose tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCli {
    /// The command words: `["docker", "compose"]` or `["docker-compose"]`.
    pub program: Vec<String>,
    /// Its version, e.g. `2.40.3` or `1.29.2`.
    pub version: String,
}

impl ComposeCli {
    /// Compose v2 (Go, BuildKit builds, `<project>-<service>` names).
    pub fn is_v2(&self) -> bool {
        !self.version.starts_with("1.")
    }

    /// A command for this tool.
    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program[0]);
        c.args(&self.program[1..]);
        c
    }

    /// How it is spelled for an operator: `docker compose` or `docker-compose`.
    pub fn name(&self) -> String {
        self.program.join(" ")
    }
}

/// Asks one candidate for its version (`None` if it is not installed or does not answer).
fn probe(program: &[&str]) -> Option<ComposeCli> {
    let out = std::process::Command::new(program[0])
        .args(&program[1..])
        .args(["version", "--short"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v = v.trim_start_matches('v').to_string();
    (out.status.success() && v.chars().next()?.is_ascii_digit()).then(|| ComposeCli {
        program: program.iter().map(|s| s.to_string()).collect(),
        version: v,
    })
}

/// The `docker compose` plugin, asked once per process (a probe is a process start).
fn plugin() -> Option<&'static ComposeCli> {
    static FOUND: OnceLock<Option<ComposeCli>> = OnceLock::new();
    FOUND.get_or_init(|| probe(&["docker", "compose"])).as_ref()
}

/// A standalone `docker-compose` (v2 when installed on its own, v1 from Debian), asked once
/// per process and only when the plugin will not do: Debian's v1 is a Python start-up, about
/// 0.4 CPU-seconds, which a rebuild on busy cores paid before its first build when both tools
/// were probed up front.
fn standalone() -> Option<&'static ComposeCli> {
    static FOUND: OnceLock<Option<ComposeCli>> = OnceLock::new();
    FOUND.get_or_init(|| probe(&["docker-compose"])).as_ref()
}

/// The compose tool to use: v2 if installed, else v1; `DOCKHAND_COMPOSE=v1` or `v2` picks one
/// where both are installed (to compare them, or to keep a fleet on the tool it was made with).
pub fn preferred() -> Option<&'static ComposeCli> {
    match std::env::var("DOCKHAND_COMPOSE").as_deref() {
        Ok("v1") => v1(),
        Ok("v2") => v2(),
        _ => v2().or_else(v1),
    }
}

/// Compose v2, if installed: the plugin, else a standalone v2 (not probed when the plugin is
/// v2).
pub fn v2() -> Option<&'static ComposeCli> {
    plugin()
        .filter(|c| c.is_v2())
        .or_else(|| standalone().filter(|c| c.is_v2()))
}

/// Compose v1 (`docker-compose` 1.x), if installed.
pub fn v1() -> Option<&'static ComposeCli> {
    standalone()
        .filter(|c| !c.is_v2())
        .or_else(|| plugin().filter(|c| !c.is_v2()))
}

/// Which builder `docker::build` uses: BuildKit through Compose v2, unless
/// `DOCKHAND_BUILDER=classic` or no Compose v2 is installed.
pub fn buildkit() -> Option<&'static ComposeCli> {
    match std::env::var("DOCKHAND_BUILDER").as_deref() {
        Ok("classic") => None,
        _ => v2(),
    }
}

/// What a compose build is asked to do.
#[derive(Debug, Clone)]
pub struct ComposeBuild {
    pub project: String,
    /// Compose files (absolute), or none when `stdin_file` is the whole project.
    pub files: Vec<PathBuf>,
    /// The project directory (relative paths in the files are resolved against it).
    pub project_dir: PathBuf,
    /// A compose file given on standard input after `files` (an override or the whole file).
    pub stdin_file: Option<String>,
    /// The services to build: one, or several built in one BuildKit solve (`batch.rs`).
    pub services: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub no_cache: bool,
    /// The engine to build on, as `DOCKER_HOST` (`None`: the environment's).
    pub docker_host: Option<String>,
}

/// How a build ended when it did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A Dockerfile step ran and failed (exit code): deterministic, not retried.
    Step,
    /// The Dockerfile or build configuration is wrong: deterministic, not retried.
    Config,
    /// The engine or the builder itself failed: worth a retry.
    Engine,
}

impl FailureKind {
    /// The tag a failure message ends with (`[build step failed]`), for people; scripts read
    /// the kind itself with `docker::failure_kind`.
    pub fn tag(self) -> &'static str {
        match self {
            FailureKind::Step => "[build step failed]",
            FailureKind::Config => "[build config invalid]",
            FailureKind::Engine => "[engine error]",
        }
    }
}

/// Classifies a failed build from what the builder printed (BuildKit or classic).
///
/// The builder's own machinery failing under a step wins over the step's words: with many
/// solves at once (44 in the all-at-once rebuild bench), engine 20.10's BuildKit failed
/// steps that had not run with `executor failed running [...]: flightcontrol: exceeded
/// retry timeout` — no exit code, nothing the Dockerfile did, and gone on a retry. A step
/// that really failed ends with its exit code instead.
pub fn classify(output: &str) -> FailureKind {
    let o = output.to_lowercase();
    let engine = [
        "flightcontrol:",
        "rpc error: code = unavailable",
        "transport is closing",
        "connection reset by peer",
    ];
    if engine.iter().any(|s| o.contains(s)) {
        return FailureKind::Engine;
    }
    let step = [
        "did not complete successfully",
        "executor failed running",
        "returned a non-zero code",
    ];
    let config = [
        "failed to create llb definition",
        "dockerfile parse error",
        "unknown instruction",
        "failed to compute cache key",
        "failed to read dockerfile",
        "cannot locate specified dockerfile",
        "additional property",
        "is not allowed",
        "unsupported frontend capability",
        "requires buildkit",
        "no such service",
        "not found",
        "failed to parse",
        "invalid reference format",
    ];
    if step.iter().any(|s| o.contains(s)) {
        FailureKind::Step
    } else if config.iter().any(|s| o.contains(s)) {
        FailureKind::Config
    } else {
        FailureKind::Engine
    }
}

/// The line an operator would grep for in BuildKit's plain output: the last `#N 0.123 ...`
/// log line that mentions an error, without its `#N time` prefix; else the builder's own
/// summary (`failed to solve: ...`).
pub fn culprit(lines: &[String]) -> (String, String) {
    // A step's own output is `#N <seconds> <text>`; the builder's verdicts have no seconds.
    let step_output = |l: &String| -> Option<String> {
        let mut w = l.splitn(3, ' ');
        let (n, t, rest) = (w.next()?, w.next()?, w.next()?);
        (n.starts_with('#') && t.parse::<f64>().is_ok()).then(|| rest.to_string())
    };
    let summary = lines
        .iter()
        .rev()
        .find(|l| {
            let l = l.to_lowercase();
            l.contains("failed to solve")
                || l.starts_with("error")
                || l.contains("did not complete successfully")
                || l.contains("executor failed running")
        })
        .cloned()
        .unwrap_or_else(|| lines.last().cloned().unwrap_or_default());
    let log_line = lines
        .iter()
        .rev()
        .filter_map(step_output)
        .find(|l| l.to_lowercase().contains("error"))
        .unwrap_or_default();
    (log_line, summary)
}

/// Runs one compose build, appending every output line to `log`. Returns the output lines
/// (for the failure message) and whether compose succeeded.
///
/// `watch` sees each line as it arrives (a batched solve answers each build as soon as its
/// image is named, instead of when the last one is).
pub async fn run_build(
    cli: &ComposeCli,
    b: &ComposeBuild,
    mut log: Option<&mut std::fs::File>,
    watch: Option<&(dyn Fn(&str) + Sync)>,
) -> Result<(bool, Vec<String>), String> {
    let mut cmd = cli.command();
    cmd.args([
        "--progress",
        "plain",
        "-p",
        &b.project,
        "--project-directory",
    ])
    .arg(&b.project_dir);
    for f in &b.files {
        cmd.arg("-f").arg(f);
    }
    if b.stdin_file.is_some() {
        cmd.args(["-f", "-"]);
    }
    cmd.arg("build");
    if b.no_cache {
        cmd.arg("--no-cache");
    }
    for (k, v) in &b.build_args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    cmd.arg("--").args(&b.services);
    if let Some(host) = &b.docker_host {
        // This engine, whatever docker context the environment names.
        cmd.env("DOCKER_HOST", host).env_remove("DOCKER_CONTEXT");
    }
    // Its own process group: `docker compose` runs the plugin as a child process, so stopping
    // the build (cancel, time-out) must stop the whole group, not just `docker`.
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cli.name()))?;
    let mut group = child.id().map(KillGroup);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let text = b.stdin_file.clone().unwrap_or_default();
    let feed = async move {
        let _ = stdin.write_all(text.as_bytes()).await;
        drop(stdin);
    };
    let out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let err = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut merged = tokio_stream_merge(out, err);
    let mut lines = Vec::new();
    let ((), ()) = tokio::join!(feed, async {
        while let Some(Ok(l)) = merged.next_line().await {
            let l = l.trim_end().to_string();
            if l.is_empty() || l.contains("configured to build using Bake") {
                continue;
            }
            if let Some(f) = log.as_deref_mut() {
                let _ = writeln!(f, "{l}");
            }
            if let Some(w) = watch {
                w(&l);
            }
            lines.push(l);
        }
    });
    let status = child
        .wait()
        .await
        .map_err(|e| format!("{} did not finish: {e}", cli.name()))?;
    // It ended on its own: its group id may be reused from now on, so nothing is killed.
    std::mem::forget(group.take());
    Ok((status.success(), lines))
}

/// Kills a process group when dropped: a build stopped half-way (cancelled, timed out) takes
/// the compose plugin with it. Forgotten once the group's leader has been waited for.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // touched, and a group that has already exited only makes it return ESRCH.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Two line streams read as one, in arrival order.
struct Merged<A, B> {
    a: Option<tokio::io::Lines<A>>,
    b: Option<tokio::io::Lines<B>>,
}

fn tokio_stream_merge<A, B>(a: tokio::io::Lines<A>, b: tokio::io::Lines<B>) -> Merged<A, B> {
    Merged {
        a: Some(a),
        b: Some(b),
    }
}

impl<A, B> Merged<A, B>
where
    A: tokio::io::AsyncBufRead + Unpin,
    B: tokio::io::AsyncBufRead + Unpin,
{
    async fn next_line(&mut self) -> Option<std::io::Result<String>> {
        loop {
            match (&mut self.a, &mut self.b) {
                (None, None) => return None,
                (Some(a), None) => return a.next_line().await.transpose(),
                (None, Some(b)) => return b.next_line().await.transpose(),
                (Some(a), Some(b)) => {
                    tokio::select! {
                        r = a.next_line() => match r {
                            Ok(Some(l)) => return Some(Ok(l)),
                            _ => self.a = None,
                        },
                        r = b.next_line() => match r {
                            Ok(Some(l)) => return Some(Ok(l)),
                            _ => self.b = None,
                        },
                    }
                }
            }
        }
    }
}

/// A YAML-quoted scalar (JSON strings are valid YAML).
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The absolute form of `p` (relative to the current directory), for compose's `-f`.
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn finds_the_failing_steps_own_line_in_buildkit_output() {
        let out = lines(
            "#5 [2/2] RUN echo 'ERROR: conflict: sqlalchemy' && exit 3\n\
             #5 0.215 ERROR: conflict: sqlalchemy\n\
             #5 ERROR: executor failed running [/bin/sh -c echo 'ERROR: conflict' && exit 3]: exit code: 3\n\
             ------\n > [2/2] RUN echo:\n------\n\
             failed to solve: executor failed running [/bin/sh -c echo]: exit code: 3",
        );
        let (l, s) = culprit(&out);
        assert_eq!(l, "ERROR: conflict: sqlalchemy");
        assert!(s.starts_with("failed to solve"), "{s}");
        assert_eq!(classify(&out.join("\n")), FailureKind::Step);
    }

    #[test]
    fn classifies_failures() {
        assert_eq!(
            classify(
                "failed to solve: process \"/bin/sh -c exit 1\" did not complete successfully: exit code: 1"
            ),
            FailureKind::Step
        );
        assert_eq!(
            classify("failed to solve: dockerfile parse error line 2: unknown instruction: RUNN"),
            FailureKind::Config
        );
        assert_eq!(
            classify("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
            FailureKind::Step
        );
        assert_eq!(classify("error during connect: EOF"), FailureKind::Engine);
        // Seen in the all-at-once rebuild bench: BuildKit's contention, not the step.
        assert_eq!(
            classify(
                "failed to solve: executor failed running [/bin/sh -c if [ \"$FAIL_BUILD\" = 1 ]; then exit 1; fi]: flightcontrol: exceeded retry timeout"
            ),
            FailureKind::Engine
        );
    }

    #[test]
    fn yaml_strings_are_quoted() {
        assert_eq!(yaml_str("a: b\n'c'"), "\"a: b\\n'c'\"");
    }
}
