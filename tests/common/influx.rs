//! InfluxDB fixtures shared by tests/influx.rs and benches/data.rs: a private `influxd`
//! (Debian's 1.x) on free loopback ports with its data, meta and WAL directories in a
//! temporary directory — no system service is used or touched — and a local HTTP server
//! answering with a recorded body from tests/fixtures/influx.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Reply, Seen};

pub const INFLUXD: &str = "/usr/bin/influxd";

/// Whether `influxd` is installed. Without it a test skips with the reason printed, unless
/// `DOCKHAND_REQUIRE_DOCKER=1` ("require everything", as CI sets it) makes that a failure.
pub fn influxd_available(what: &str) -> bool {
    if Path::new(INFLUXD).exists() {
        return true;
    }
    let require = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    assert!(
        !require,
        "DOCKHAND_REQUIRE_DOCKER=1 but {INFLUXD} is missing (apt-get install influxdb)"
    );
    eprintln!("skipping {what}: no {INFLUXD} (apt-get install influxdb)");
    false
}

/// A loopback port nothing listens on once the returned listener is dropped.
pub fn free_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let p = l.local_addr().unwrap().port();
    (l, p)
}

/// How to start an [`Influxd`].
#[derive(Debug, Clone, Copy, Default)]
pub struct InfluxdConfig {
    /// `[http] auth-enabled`: every request needs credentials.
    pub auth: bool,
    /// `[http] max-row-limit`; `Some(0)` lifts InfluxDB's default cap so a query returns
    /// every row (the bench reads 100k).
    pub max_row_limit: Option<u64>,
}

/// A private `influxd`, killed on drop.
pub struct Influxd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Influxd {
    /// Starts one and waits until it answers `/ping` (at most 30 s).
    pub fn start(cfg: InfluxdConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Hold both listeners until both ports are chosen so they differ.
        let (l1, http) = free_port();
        let (l2, rpc) = free_port();
        drop((l1, l2));
        let conf = dir.path().join("influxdb.conf");
        std::fs::write(&conf, config(dir.path(), rpc, http, cfg)).unwrap();
        let log = std::fs::File::create(dir.path().join("influxd.log")).unwrap();
        let child = Command::new(INFLUXD)
            .arg("-config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start influxd");
        let mut me = Influxd {
            child,
            dir,
            port: http,
        };
        me.wait_for_ping();
        me
    }

    fn wait_for_ping(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.raw("GET", "/ping", "", Duration::from_secs(2));
            if answer.starts_with("HTTP/1.0 204") || answer.starts_with("HTTP/1.1 204") {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "influxd exited ({st}) before answering /ping:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "influxd did not answer /ping within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What influxd wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("influxd.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw HTTP/1.0 request (no client library in the way); the whole response as text,
    /// "" when the server is not up.
    pub fn request(&self, method: &str, path: &str, body: &str) -> String {
        self.raw(method, path, body, Duration::from_secs(60))
    }

    fn raw(&self, method: &str, path: &str, body: &str, timeout: Duration) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(timeout));
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).is_err() || s.write_all(body.as_bytes()).is_err() {
            return String::new();
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// influxd's configuration: everything in `dir`, nothing that runs in the background.
fn config(dir: &Path, rpc: u16, http: u16, cfg: InfluxdConfig) -> String {
    let d = dir.display();
    let auth = cfg.auth;
    let limit = cfg
        .max_row_limit
        .map(|n| format!("  max-row-limit = {n}\n"))
        .unwrap_or_default();
    format!(
        "reporting-disabled = true\n\
         bind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
         [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
         [monitor]\n  store-enabled = false\n\
         [subscriber]\n  enabled = false\n\
         [continuous_queries]\n  enabled = false\n\
         [retention]\n  enabled = false\n\
         [http]\n  bind-address = \"127.0.0.1:{http}\"\n  auth-enabled = {auth}\n  log-enabled = false\n  pprof-enabled = false\n{limit}\
         [logging]\n  level = \"warn\"\n  suppress-logo = true\n"
    )
}

/// A local server that answers every request with `status` and the recorded body `file`
/// (tests/fixtures/influx), recording what it was asked.
pub fn fixture_server(status: u16, file: &str, ctype: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let body = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/influx")
            .join(file),
    )
    .unwrap();
    let ctype = ctype.to_string();
    super::http_server(move |_| Reply::new(status, &ctype, body.clone()))
}
