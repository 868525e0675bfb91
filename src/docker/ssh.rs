//! Engines over ssh: a tunnel the system `ssh` client holds open, forwarding a local socket
//! to the remote engine's socket (`ssh -L local.sock:/var/run/docker.sock`).
//!
//! **Why not bollard's `ssh` feature.** bollard 0.21's connector (through the `openssh`
//! crate) starts a new ssh *master* for every pooled HTTP connection — the event stream, each
//! parallel worker's calls — each daemonized with `ControlPersist=yes` and closed only when
//! its Rust handle is dropped; dockhand ends with `process::exit`, so they would outlive it.
//! It also sets no `ConnectTimeout` or `BatchMode`, so an unreachable host hangs for the
//! kernel's TCP timeout (minutes) and an unknown host key or a password prompt waits for a
//! terminal nobody watches; and a failure reaches us as hyper's "client error (Connect)",
//! without ssh's reason. One forwarding `ssh` per engine, owned here, gives one login per
//! engine for the whole run, a bounded connect, ssh's own error text, and a plain Unix socket
//! that bollard *and* the compose CLI (builds) use as if the engine were local. The remote
//! needs sshd (stream-local forwarding on, its default) and a login that may use the engine
//! socket — not even a `docker` CLI.
//!
//! **Lifetime.** Tunnels are kept for the whole process (one per address, shared by every
//! run of it) and ended by [`close_all`] on the way out. The remote command is `cat
//! >/dev/null` fed by our end of a pipe, a lifeline: when dockhand exits any other way — even
//! killed — the pipe closes, `cat` ends, and so does `ssh`. No ssh is left behind.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::address::SshTarget;

/// How long `ssh` may take to reach the host and finish its handshake (`ConnectTimeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the forwarded socket in all (connect, login, forwarding).
const READY_WITHIN: Duration = Duration::from_secs(20);

/// One forwarding `ssh` process and the local socket it serves.
pub struct Tunnel {
    /// The local end: bollard and the compose CLI connect here.
    pub socket: PathBuf,
    /// The ssh control socket (ControlMaster): [`forward`] adds port forwards through it.
    ctl: PathBuf,
    /// Container ports forwarded so far: (address, port) → local port.
    forwards: Mutex<HashMap<(IpAddr, u16), u16>>,
    child: Mutex<tokio::process::Child>,
    /// What ssh printed on stderr (the last 4 KiB): the reason when something fails.
    stderr: Arc<Mutex<String>>,
    /// Our end of the lifeline (see the module doc); dropped with the tunnel.
    _lifeline: Option<tokio::process::ChildStdin>,
}

impl Tunnel {
    /// Whether its `ssh` still runs.
    pub fn alive(&self) -> bool {
        crate::util::lock(&self.child)
            .try_wait()
            .is_ok_and(|s| s.is_none())
    }

    /// ssh's last words (its stderr, last lines first trimmed), or "" if it said nothing.
    pub fn said(&self) -> String {
        said(&self.stderr)
    }
}

fn said(buf: &Mutex<String>) -> String {
    let s = crate::util::lock(buf);
    let lines: Vec<&str> = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// The process's tunnels by address, and the directory their sockets live in (mode 0700:
/// a forwarded engine socket is root on the remote machine).
struct Tunnels {
    dir: Option<tempfile::TempDir>,
    open: HashMap<String, Arc<Tunnel>>,
}

static TUNNELS: std::sync::LazyLock<tokio::sync::Mutex<Tunnels>> = std::sync::LazyLock::new(|| {
    tokio::sync::Mutex::new(Tunnels {
        dir: None,
        open: HashMap::new(),
    })
});

/// The tunnel to `target`, started on first use and again if its `ssh` has ended (same local
/// socket, so clients made before keep working).
pub async fn tunnel(target: &SshTarget) -> Result<Arc<Tunnel>, String> {
    let key = format!("{target}#{}", target.socket);
    let mut t = TUNNELS.lock().await;
    if let Some(open) = t.open.get(&key)
        && open.alive()
    {
        return Ok(open.clone());
    }
    if t.dir.is_none() {
        let dir = tempfile::Builder::new()
            .prefix("dockhand-ssh-")
            .tempdir()
            .map_err(|e| format!("cannot create a directory for ssh tunnels: {e}"))?;
        // The path goes into `ssh -L local:remote`: a ':' or a space would change the spec.
        let p = dir.path().to_string_lossy();
        if p.contains(':') || p.chars().any(char::is_whitespace) {
            return Err(format!(
                "the temporary directory {p} has a ':' or a space, which ssh -L cannot take; \
                 set TMPDIR to a plain path"
            ));
        }
        t.dir = Some(dir);
    }
    let n = t.open.len();
    let socket = match t.open.get(&key) {
        Some(old) => old.socket.clone(),
        None => match &t.dir {
            Some(d) => d.path().join(format!("e{n}.sock")),
            None => return Err("internal: no tunnel directory".into()),
        },
    };
    let started = Arc::new(start(target, socket).await?);
    t.open.insert(key, started.clone());
    Ok(started)
}

/// Ends every tunnel and removes their sockets: the CLI calls it before it exits (a
/// `process::exit` runs no destructor). Without it the lifeline still ends each `ssh`, but
/// the socket directory would stay in the temp dir.
pub fn close_all() {
    let Ok(mut t) = TUNNELS.try_lock() else {
        return;
    };
    for (_, tunnel) in t.open.drain() {
        let _ = crate::util::lock(&tunnel.child).start_kill();
    }
    if let Some(dir) = t.dir.take() {
        let _ = dir.close();
    }
}

/// A loopback address of this machine that reaches `ip:port` *on the remote machine* (a
/// container's address on the engine's bridge network, which only that machine routes):
/// `ssh -O forward -L 127.0.0.1:P:ip:port` through the tunnel's control socket, once per
/// address for the life of the tunnel. Why: the rebuild's gate probes the new container's
/// HTTP health endpoint by its IP; for a remote engine that IP is not reachable from here.
/// The forward listens on loopback only and reaches that one port.
pub async fn forward(target: &SshTarget, ip: IpAddr, port: u16) -> Result<SocketAddr, String> {
    let t = tunnel(target).await?;
    let loopback = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    if let Some(p) = crate::util::lock(&t.forwards).get(&(ip, port)) {
        return Ok(loopback(*p));
    }
    let to = match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let mut why = String::new();
    // The free port is picked here (ssh's mux does not report one it would pick), so another
    // process may take it in between: try a few.
    for _ in 0..3 {
        let local = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?
            .port();
        let run = tokio::process::Command::new("ssh")
            .arg("-S")
            .arg(&t.ctl)
            .args(["-O", "forward", "-L"])
            .arg(format!("127.0.0.1:{local}:{to}"))
            .arg("--")
            .arg(&target.host)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(CONNECT_TIMEOUT, run).await {
            Ok(Ok(out)) if out.status.success() => {
                crate::util::lock(&t.forwards).insert((ip, port), local);
                return Ok(loopback(local));
            }
            Ok(Ok(out)) => why = String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Ok(Err(e)) => why = format!("cannot run ssh: {e}"),
            Err(_) => why = format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(format!(
        "cannot reach {to} on the machine of {target} through its ssh tunnel: {why}; is TCP \
         forwarding allowed there (AllowTcpForwarding in its sshd_config)?"
    ))
}

/// The `ssh` command line for `target`, forwarding `socket`.
fn command(target: &SshTarget, socket: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("ssh");
    c.arg("-T");
    // A control socket next to the forwarded one (private directory), for [`forward`].
    let mut ctl = std::ffi::OsString::from("ControlPath=");
    ctl.push(socket.with_extension("ctl"));
    c.args(["-o", "ControlMaster=yes", "-o"]).arg(ctl);
    for o in [
        // Never prompt: there is no one to answer (an unknown host key, a password).
        "BatchMode=yes".to_string(),
        format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()),
        // A forward that cannot be set up is an error, not a silent half-tunnel.
        "ExitOnForwardFailure=yes".into(),
        "StreamLocalBindUnlink=yes".into(),
        // A dead link ends the tunnel (and the next call starts a new one).
        "ServerAliveInterval=15".into(),
        "ServerAliveCountMax=3".into(),
    ] {
        c.arg("-o").arg(o);
    }
    if let Some(u) = &target.user {
        c.arg("-l").arg(u);
    }
    if let Some(p) = target.port {
        c.arg("-p").arg(p.to_string());
    }
    let mut forward = socket.as_os_str().to_owned();
    forward.push(":");
    forward.push(&target.socket);
    c.arg("-L").arg(forward);
    c.arg("--").arg(&target.host).arg("cat >/dev/null");
    c
}

/// Starts `ssh` and waits until its local socket answers, it exits, or [`READY_WITHIN`].
async fn start(target: &SshTarget, socket: PathBuf) -> Result<Tunnel, String> {
    let _ = std::fs::remove_file(&socket);
    let mut child = command(target, &socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot reach Docker at {target}: cannot run ssh ({e}); install the OpenSSH client"
            )
        })?;
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(mut err) = child.stderr.take() {
        let buf = stderr.clone();
        tokio::spawn(async move {
            let mut chunk = [0u8; 1024];
            while let Ok(n) = err.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut b = crate::util::lock(&buf);
                b.push_str(&String::from_utf8_lossy(&chunk[..n]));
                if b.len() > 4096 {
                    let cut = b.len() - 4096;
                    let cut = (cut..b.len()).find(|i| b.is_char_boundary(*i)).unwrap_or(0);
                    b.drain(..cut);
                }
            }
        });
    }
    let lifeline = child.stdin.take();
    let end = Instant::now() + READY_WITHIN;
    loop {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(Tunnel {
                ctl: socket.with_extension("ctl"),
                forwards: Mutex::new(HashMap::new()),
                socket,
                child: Mutex::new(child),
                stderr,
                _lifeline: lifeline,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Let the stderr reader catch up with ssh's last line.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(failed(
                target,
                &said(&stderr),
                &format!("ssh exited ({status})"),
            ));
        }
        if Instant::now() > end {
            let _ = child.kill().await;
            let why = format!("no tunnel within {} s", READY_WITHIN.as_secs());
            return Err(failed(target, &said(&stderr), &why));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The error for a tunnel that did not come up: the host, ssh's reason, what to check.
fn failed(target: &SshTarget, said: &str, how: &str) -> String {
    let cause = if said.is_empty() {
        how.to_string()
    } else {
        format!("{said} ({how})")
    };
    let mut login = String::from("ssh");
    if let Some(p) = target.port {
        login.push_str(&format!(" -p {p}"));
    }
    match &target.user {
        Some(u) => login.push_str(&format!(" {u}@{}", target.host)),
        None => login.push_str(&format!(" {}", target.host)),
    }
    format!(
        "cannot reach Docker at {target}: {cause}; check that `{login}` logs in without a \
         prompt (a key in ssh-agent or ~/.ssh/config, the host key in known_hosts) and that \
         the login may use {} there",
        target.socket
    )
}
