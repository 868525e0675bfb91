//! Plain engines beyond the local socket: `DOCKER_HOST=ssh://` and a fleet config's named
//! `engines:`, against a real `sshd` this test starts on a free loopback port (its own
//! config, a throwaway key, host key and `authorized_keys` in a temp dir) whose logins reach
//! this machine's engine — so "the remote engine" is the local one, seen through ssh.
//!
//! The ssh client is pointed at the test's key by a small `ssh` wrapper first in `PATH`
//! (`ssh -F <test config> "$@"`): dockhand runs the system `ssh` as a user would, and a user's
//! keys and host options live in `~/.ssh/config`, which a test cannot borrow.
//!
//! Needs `sshd` and `ssh` (Debian `openssh-server`, `openssh-client`) and, for the rebuild,
//! the lab's Docker engine; skipped with a printed reason without them, failing instead when
//! `DOCKHAND_REQUIRE_DOCKER=1`.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Lab, Test};

/// Whether the OpenSSH client and server are here (else a printed skip, or a failure in CI).
fn ssh_ready(what: &str) -> bool {
    let missing = [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/ssh", "openssh-client"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
    ]
    .into_iter()
    .find(|(p, _)| !Path::new(p).exists())
    .map(|(p, pkg)| format!("no {p} (apt-get install {pkg})"));
    // The test's sshd logs in as root (it must reach the engine socket), so it runs as root.
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    let root = uid.is_ok_and(|u| String::from_utf8_lossy(&u).trim() == "0");
    let missing = missing.or_else(|| (!root).then(|| "not running as root".to_string()));
    common::ready_or_skip(what, missing)
}

/// A port nothing listens on (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway `sshd` on 127.0.0.1 and the client setup that logs into it as root.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["client_key", "host_key"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory (the system's, absent where sshd never ran).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let p = |f: &str| d.join(f).display().to_string();
        let client = format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            p("client_key")
        );
        std::fs::write(d.join("ssh_config"), client).unwrap();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        // It also notes every invocation, so a test can tell who ran ssh for what.
        let wrapper = format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec /usr/bin/ssh -F {} \"$@\"\n",
            p("ssh_calls.log"),
            p("ssh_config")
        );
        std::fs::write(d.join("bin/ssh"), wrapper).unwrap();
        Command::new("chmod")
            .args(["+x", &p("bin/ssh")])
            .status()
            .unwrap();
        // A free port can be taken between the look and sshd's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let server = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile none\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n",
                p("host_key"),
                p("authorized_keys")
            );
            std::fs::write(d.join("sshd_config"), server).unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f", &p("sshd_config")])
                .stdin(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { dir, port, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start:\n{}", read(&d.join("sshd.log")));
    }

    /// `PATH` with the `ssh` wrapper first.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// The command lines `ssh` was run with so far (one a line).
    fn calls(&self) -> String {
        read(&self.dir.path().join("ssh_calls.log"))
    }

    /// How many logins sshd accepted so far.
    fn logins(&self) -> usize {
        read(&self.dir.path().join("sshd.log"))
            .matches("Accepted publickey for root")
            .count()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// No `ssh` left running that names this test's port (every tunnel ended with its run).
fn assert_no_tunnel_left(port: u16) {
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let needle = format!("-p {port} -L");
    let left: Vec<&str> = ps.lines().filter(|l| l.contains(&needle)).collect();
    assert!(left.is_empty(), "ssh tunnels left running: {left:?}");
}

fn run_rebuild(lab: &Lab, mut c: Command, run: &str) -> serde_json::Value {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "rebuild {run} failed\n--- stdout:\n{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    lab.journal(run)
}

/// The acceptance line: the same rebuild of a small compose fleet completes with the engine
/// reached through `DOCKER_HOST=ssh://` (a local sshd), and then with the service placed on a
/// named ssh engine by the fleet config while its neighbour stays on the default engine.
#[test]
fn rebuild_completes_through_an_ssh_engine() {
    if !ssh_ready("ssh engine rebuild") {
        return;
    }
    let Some(_turn) = common::lab_turn("ssh engine rebuild") else {
        return;
    };
    let sshd = Sshd::start();
    let lab = Lab::start("dhssh", &["weather-api", "sports-api"]);
    let before = lab.containers();

    let mut c = lab.rebuild(&common::rebuild_args(&["weather-api"], "VERSION=2", "ssh1"));
    c.env("DOCKER_HOST", sshd.url()).env("PATH", sshd.path());
    let j = run_rebuild(&lab, c, "ssh1");
    assert_eq!(j["records"]["weather-api"]["status"], "completed", "{j}");
    let mid = lab.containers();
    assert_ne!(mid["weather-api"].image, before["weather-api"].image);
    assert_eq!(mid["weather-api"].version, "2");
    assert_eq!(mid["weather-api"].health, "healthy");
    assert!(
        sshd.logins() >= 1,
        "the rebuild never logged in through sshd"
    );
    // One tunnel, and the build went through it: compose was handed the tunnel's socket, not
    // the ssh:// address (with which the docker CLI would run its own `ssh ... dial-stdio`).
    // The gate's probe went through the tunnel too (a forward to the container's port).
    let calls = sshd.calls();
    let tunnels = calls
        .lines()
        .filter(|l| l.contains("ControlMaster=yes"))
        .count();
    assert_eq!(tunnels, 1, "ssh runs: {calls}");
    assert!(!calls.contains("dial-stdio"), "{calls}");
    assert!(calls.contains("-O forward -L 127.0.0.1:"), "{calls}");
    assert_no_tunnel_left(sshd.port);

    // The config places weather-api on engine `edge` (ssh); sports-api stays on the default.
    let cfg = lab.dir().join("services.yaml");
    let text = read(&cfg)
        .replacen(
            "  weather-api:\n    category: integration\n",
            "  weather-api:\n    category: integration\n    engine: edge\n",
            1,
        )
        .replacen(
            "\ndefaults:\n",
            &format!("\nengines:\n  edge: \"{}\"\n\ndefaults:\n", sshd.url()),
            1,
        );
    assert!(text.contains("engine: edge") && text.contains("engines:"));
    std::fs::write(&cfg, text).unwrap();
    let logins = sshd.logins();
    let mut c = lab.rebuild(&common::rebuild_args(
        &["weather-api", "sports-api"],
        "VERSION=3",
        "ssh2",
    ));
    c.env_remove("DOCKER_HOST").env("PATH", sshd.path());
    let j = run_rebuild(&lab, c, "ssh2");
    for svc in ["weather-api", "sports-api"] {
        assert_eq!(j["records"][svc]["status"], "completed", "{svc}: {j}");
    }
    let after = lab.containers();
    assert_eq!(after["weather-api"].version, "3");
    assert_eq!(after["sports-api"].version, "3");
    assert!(
        sshd.logins() > logins,
        "engine edge was not reached through sshd"
    );
    assert!(!sshd.calls().contains("dial-stdio"), "{}", sshd.calls());
    assert_no_tunnel_left(sshd.port);
}

/// The everyday calls answer through a named ssh engine: `ping` reports that engine's
/// address, `ps` answers from its own event-fed table.
#[test]
fn ping_and_ps_answer_through_a_named_ssh_engine() {
    if !ssh_ready("ssh engine ping") || !common::docker_lab_ready("ssh engine ping") {
        return;
    }
    let sshd = Sshd::start();
    let script = format!(
        r#"docker::add_engine("edge", "{}");
        docker::use_engine("edge");
        let p = docker::ping();
        print(`host ${{p.host}} api ${{p.api_version}}`);
        print(`ps ${{type_of(docker::ps(#{{ project: "" }}))}}`);"#,
        sshd.url()
    );
    Test::new()
        .script(&script)
        .env("PATH", &sshd.path())
        .stderr_has(&format!("host {} api 1.", sshd.url()))
        .stderr_has("ps array")
        .run();
    assert!(sshd.logins() >= 1, "no login through sshd");
    assert_no_tunnel_left(sshd.port);
}

/// An engine that cannot be reached fails at once with the host and ssh's reason: a closed
/// port ("Connection refused") in well under a second, a host that accepts the connection
/// but never speaks within ssh's bounded connect timeout — never a hang.
#[test]
fn unreachable_ssh_engine_fails_fast_naming_host_and_cause() {
    if !ssh_ready("unreachable ssh engine") {
        return;
    }
    let closed = free_port();
    let t = Instant::now();
    let r = Test::new()
        .script("docker::ping();")
        .env("DOCKER_HOST", &format!("ssh://root@127.0.0.1:{closed}"))
        .status(1)
        .stderr_has("cannot reach Docker at ssh://root")
        .stderr_has(&format!("127.0.0.1:{closed}"))
        .stderr_has("Connection refused")
        .run();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(r);

    // Accepts TCP, then says nothing: ssh's ConnectTimeout covers the banner exchange.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = Instant::now();
    Test::new()
        .script("docker::ping();")
        .env("DOCKER_HOST", &format!("ssh://root@127.0.0.1:{port}"))
        .status(1)
        .stderr_has(&format!("127.0.0.1:{port}"))
        .stderr_has("timed out")
        .run();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(25), "took {took:?}");
    drop(silent);
}

/// A hostile address never reaches `ssh`'s command line: a host that would be read as an
/// option is refused with the reason, before any process runs.
#[test]
fn hostile_ssh_addresses_are_refused_before_ssh_runs() {
    Test::new()
        .script("docker::ping();")
        .env("DOCKER_HOST", "ssh://-oProxyCommand=touch${IFS}pwned")
        .status(1)
        .stderr_has("is not a host name or IP address")
        .run();
    Test::new()
        .script("docker::ping();")
        .env("DOCKER_HOST", "ssh://root:hunter2@host")
        .status(1)
        .stderr_has("a password in the address is not supported")
        .stderr_lacks("hunter2")
        .run();
}

const FLEET: &str = "project: p\ncategories:\n  api:\n    engine: edge\nservices:\n  \
                     a:\n    category: api\n    port: 8001\n";

/// Config errors name the key and its line: an engine nobody declared, an address that is
/// not one, a name that is not a name.
#[test]
fn engine_config_errors_name_the_key_and_line() {
    let load = "config::load(\"services.yaml\");";
    Test::new()
        .file("services.yaml", FLEET)
        .script(load)
        .status(2)
        .stderr_has("services.yaml:4: categories.api.engine: unknown engine 'edge'")
        .run();
    let bad_address = format!("{FLEET}engines:\n  edge: \"ssh://-oProxyCommand=x\"\n");
    Test::new()
        .file("services.yaml", &bad_address)
        .script(load)
        .status(2)
        .stderr_has("services.yaml:10: engines.edge: engine address")
        .stderr_has("is not a host name")
        .run();
    let service_engine = FLEET.replace("    engine: edge\n", "    risk: low\n")
        + "    engine: far\nengines:\n  edge: \"ssh://root@10.1.2.3\"\n";
    Test::new()
        .file("services.yaml", &service_engine)
        .script(load)
        .status(2)
        .stderr_has("services.yaml:9: services.a.engine: unknown engine 'far' (declared: edge)")
        .run();
}

/// The engine is chosen per thread: `use_engine` switches this thread, a `parallel` worker
/// starts on its caller's engine, and an undeclared name is refused with the way to declare it.
#[test]
fn use_engine_is_per_thread_and_inherited_by_workers() {
    let script = r#"
        docker::add_engine("edge", "ssh://root@127.0.0.1:1");
        print(`first ${docker::engine().name ?? "the default"}`);
        docker::use_engine("edge");
        let seen = parallel([1, 2], 2, |i| docker::engine().address);
        print(`workers ${seen}`);
        docker::use_engine(());
        print(`back ${docker::engine().name ?? "the default"}`);
        docker::use_engine("nowhere");
    "#;
    Test::new()
        .script(script)
        .status(2)
        .stderr_has("first the default")
        .stderr_has("workers [\"ssh://root")
        .stderr_has("back the default")
        .stderr_has("unknown engine 'nowhere' (declared: edge)")
        .run();
}

/// A run starts on the default engine: an engine an earlier run on the same thread chose
/// (`dockhand watch` re-runs, an embedder's runtimes) does not carry over.
#[test]
fn each_run_starts_on_the_default_engine() {
    let ws = tempfile::tempdir().unwrap();
    let rt = dockhand::Runtime::builder()
        .root(ws.path())
        .build()
        .unwrap();
    let first = rt
        .eval(
            r#"docker::add_engine("edge", "ssh://root@127.0.0.1:1");
               docker::use_engine("edge");
               docker::engine().name"#,
        )
        .unwrap();
    assert_eq!(first.to_string(), "edge");
    let second = rt.eval("docker::engine().name").unwrap();
    assert!(second.is_unit(), "still on {second}");
}
