//! Data at scale: playbooks stay linear in the size of their data.
//!
//! The same scripts, side by side, for N = 1k, 10k, 100k:
//!
//! * **dockhand**: the `dockhand` binary (`dockhand -q run script.rhai`), with its shipped
//!   limits and memory guard;
//! * **rhai-run**: plain Rhai of the same version with no limits at all (`Engine::new()`),
//!   this bench binary re-run as `data --rhai-run script.rhai`;
//! * **python**: the same work in Python 3 (what a user would write instead).
//!
//! Cases: `push` (`a.push(i)`), `maps` (push a 5-key map per row), `copy` (copy N 7-column
//! rows into new maps key by key, as a script copying Flux rows does) and `rows` (N rows:
//! filter, group by host, p95 per group). Each process is timed spawn to exit (median of
//! `DOCKHAND_BENCH_RUNS`, default 3), and its CPU time (user + system, microseconds) and peak
//! RSS come from `wait4`'s resource usage. The machine is shared, so wall time is noisy:
//! growth factors and the ratio to plain Rhai are judged on CPU time, which other processes
//! disturb far less, net of each runner's start-up (the same runner on an empty script:
//! dockhand starts an async runtime, Python its interpreter; the `runtime` bench covers
//! start-up). Wall, CPU and net CPU are all printed, with the load average before and after.
//!
//! Then **influx**: a private `influxd` (Debian's 1.x, started by tests/common/influx.rs as
//! the tests start it) holding 100k points; `dockhand run` queries them all, filters, groups
//! by host and takes each group's p95, end to end (process start to exit), against Python
//! doing the same over HTTP with the standard library. Skipped with a reason when `/usr/bin/influxd` is missing.
//!
//! Goals: growth per 10× N ≤ 12× (dockhand net CPU time, 10k → 100k); dockhand ≤ 1.5× plain
//! Rhai at 100k (net CPU time); the influx case ≤ 2 s (wall time, end to end). A missed goal
//! prints `MISSED`; the bench always exits 0. `DOCKHAND_BENCH_BIN` times another dockhand
//! binary (e.g. an older build) and `DOCKHAND_BENCH_CAP` caps one process in seconds (default
//! 120; a capped or failed run shows `>` and ends its row).
//!
//! Run: `cargo bench --bench data`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::influx::{INFLUXD, Influxd, InfluxdConfig};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const INFLUX_POINTS: usize = 100_000;

/// One case: the Rhai script (with `NNN` for N) and the Python one (N is `sys.argv[1]`).
struct Case {
    name: &'static str,
    rhai: &'static str,
    python: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "push",
        rhai: "let a = []; for i in 0..NNN { a.push(i) } print(a.len());",
        python: "import sys\nn=int(sys.argv[1])\na=[]\nfor i in range(n):\n    a.append(i)\nprint(len(a))\n",
    },
    Case {
        name: "maps",
        rhai: r#"let a = [];
for i in 0..NNN {
    a.push(#{ id: i, host: "h" + (i % 10), value: i * 1.5, ok: i % 3 == 0, time: "2026-01-01T00:00:00Z" });
}
print(a.len());"#,
        python: r#"import sys
n=int(sys.argv[1])
a=[]
for i in range(n):
    a.append({"id": i, "host": "h" + str(i % 10), "value": i * 1.5, "ok": i % 3 == 0, "time": "2026-01-01T00:00:00Z"})
print(len(a))
"#,
    },
    Case {
        name: "copy",
        rhai: r#"let rows = [];
for i in 0..NNN {
    rows.push(#{ result: "_result", table: 0, _time: "2026-01-01T00:00:00Z", _value: i * 1.5,
                 _field: "v", _measurement: "cpu", host: "h" + (i % 10) });
}
let out = [];
for r in rows { let m = #{}; for k in r.keys() { m[k] = r[k]; } out.push(m); }
print(out.len());"#,
        python: r#"import sys
n=int(sys.argv[1])
rows=[]
for i in range(n):
    rows.append({"result": "_result", "table": 0, "_time": "2026-01-01T00:00:00Z", "_value": i * 1.5,
                 "_field": "v", "_measurement": "cpu", "host": "h" + str(i % 10)})
out=[]
for r in rows:
    m={}
    for k in r.keys():
        m[k]=r[k]
    out.append(m)
print(len(out))
"#,
    },
    Case {
        name: "rows",
        rhai: r#"let rows = [];
for i in 0..NNN {
    rows.push(#{ time: "2026-01-01T00:00:00Z", host: "h" + (i % 10), value: ((i * 7919) % 1000) / 10.0 });
}
let by = #{};
for r in rows.filter(|r| r.value >= 5.0) {
    let h = r.host;
    if h in by { by[h].push(r.value) } else { by[h] = [r.value] }
}
let p95 = #{};
for h in by.keys() {
    let v = by[h];
    v.sort();
    p95[h] = v[((v.len() * 95 + 99) / 100) - 1];
}
print(p95);"#,
        python: r#"import sys
n=int(sys.argv[1])
rows=[]
for i in range(n):
    rows.append({"time": "2026-01-01T00:00:00Z", "host": "h" + str(i % 10), "value": ((i * 7919) % 1000) / 10.0})
by={}
for r in [r for r in rows if r["value"] >= 5.0]:
    by.setdefault(r["host"], []).append(r["value"])
p95={}
for h, v in by.items():
    v.sort()
    p95[h]=v[(len(v) * 95 + 99) // 100 - 1]
print(p95)
"#,
    },
];

const INFLUX_SCRIPT: &str = r#"
let db = influx::connect(#{ url: "URL", version: 1, db: "bench", timeout: "60s" });
let rows = db.query("SELECT time, host, value FROM cpu");
if rows.len() != NNN { throw `expected NNN rows, got ${rows.len()}`; }
let by = #{};
for r in rows.filter(|r| r.value >= 5.0) {
    let h = r.host;
    if h in by { by[h].push(r.value) } else { by[h] = [r.value] }
}
let p95 = #{};
for h in by.keys() {
    let v = by[h];
    v.sort();
    p95[h] = v[((v.len() * 95 + 99) / 100) - 1];
}
print(p95);
"#;

const INFLUX_PYTHON: &str = r#"import json, sys, urllib.parse, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
q = urllib.parse.urlencode({"db": "bench", "q": "SELECT time, host, value FROM cpu"})
body = json.load(urllib.request.urlopen(url + "/query?" + q, timeout=60))
rows = []
for s in body["results"][0]["series"]:
    cols = s["columns"]
    for v in s["values"]:
        rows.append(dict(zip(cols, v)))
assert len(rows) == n, len(rows)
by = {}
for r in [r for r in rows if r["value"] >= 5.0]:
    by.setdefault(r["host"], []).append(r["value"])
p95 = {}
for h, v in by.items():
    v.sort()
    p95[h] = v[(len(v) * 95 + 99) // 100 - 1]
print(p95)
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rhai-run") {
        std::process::exit(rhai_run(Path::new(&args[i + 1])));
    }
    let runs: usize = env_num("DOCKHAND_BENCH_RUNS", 3);
    let cap = Duration::from_secs(env_num("DOCKHAND_BENCH_CAP", 120) as u64);
    let dockhand = std::env::var("DOCKHAND_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_dockhand")));
    let me = std::env::current_exe().expect("own path");
    let python = available("python3");
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "data bench: {runs} runs per cell (median), cap {} s; dockhand = {}",
        cap.as_secs(),
        dockhand.display()
    );
    println!("load: {}", load());
    // Start-up of each runner: the same process on an empty script.
    let empty_rhai = dir.path().join("empty.rhai");
    std::fs::write(&empty_rhai, "let x = 0;").unwrap();
    let empty_py = dir.path().join("empty.py");
    std::fs::write(&empty_py, "x = 0\n").unwrap();
    let startup = |runner: &str| -> f64 {
        let mut c = match runner {
            "dockhand" => {
                let mut c = Command::new(&dockhand);
                c.args(["-q", "run"]).arg(&empty_rhai);
                c
            }
            "rhai-run" => {
                let mut c = Command::new(&me);
                c.arg("--rhai-run").arg(&empty_rhai);
                c
            }
            _ => {
                let mut c = Command::new("python3");
                c.arg(&empty_py);
                c
            }
        };
        c.stdin(Stdio::null());
        measure(c, runs.max(5), cap).cpu()
    };
    let mut base = std::collections::HashMap::new();
    for r in ["dockhand", "rhai-run", "python"] {
        if r != "python" || python {
            base.insert(r, startup(r));
        }
    }
    println!(
        "start-up CPU (empty script): {}",
        base.iter()
            .map(|(k, v)| format!("{k} {}", secs(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut missed = 0;
    for case in CASES {
        println!("\n## {}", case.name);
        println!(
            "{:<10} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10}",
            "runner", "N", "wall", "CPU", "net CPU", "growth", "peak RSS"
        );
        let mut table: Vec<(&str, Vec<Cell>)> = Vec::new();
        for runner in ["dockhand", "rhai-run", "python"] {
            if runner == "python" && !python {
                println!("python     skipped: python3 not found");
                continue;
            }
            let mut cells = Vec::new();
            for n in SIZES {
                let cell = match runner {
                    "python" => {
                        let p = dir.path().join(format!("{}.py", case.name));
                        std::fs::write(&p, case.python).unwrap();
                        let mut c = Command::new("python3");
                        c.arg(&p).arg(n.to_string());
                        measure(c, runs, cap)
                    }
                    _ => {
                        let p = dir.path().join(format!("{}-{n}.rhai", case.name));
                        std::fs::write(&p, case.rhai.replace("NNN", &n.to_string())).unwrap();
                        let mut c;
                        if runner == "dockhand" {
                            c = Command::new(&dockhand);
                            c.args(["-q", "run"]).arg(&p);
                        } else {
                            c = Command::new(&me);
                            c.arg("--rhai-run").arg(&p);
                        }
                        measure(c, runs, cap)
                    }
                };
                let b = base.get(runner).copied().unwrap_or(0.0);
                let growth = cells
                    .last()
                    .filter(|_| !cell.capped)
                    .map(|prev: &Cell| format!("{:.1}×", cell.net(b) / prev.net(b)))
                    .unwrap_or_default();
                let (cpu, net) = if cell.capped {
                    ("-".to_string(), "-".to_string())
                } else {
                    (secs(cell.cpu()), secs(cell.net(b)))
                };
                println!(
                    "{runner:<10} {n:>8} {:>10} {cpu:>10} {net:>10} {growth:>8} {:>10}",
                    cell.time(),
                    rss(cell.rss_kb)
                );
                cells.push(cell);
                // A capped cell makes bigger N pointless.
                if cells.last().is_some_and(|c| c.capped) {
                    break;
                }
            }
            table.push((runner, cells));
        }
        let get = |r: &str| table.iter().find(|(n, _)| *n == r).map(|(_, c)| c);
        let bd = base.get("dockhand").copied().unwrap_or(0.0);
        let br = base.get("rhai-run").copied().unwrap_or(0.0);
        if let Some(d) = get("dockhand") {
            if d.len() == SIZES.len() && !d[2].capped {
                let g = d[2].net(bd) / d[1].net(bd);
                let ok = g <= 12.0;
                missed += usize::from(!ok);
                println!(
                    "goal: growth 10k → 100k ≤ 12×: {g:.1}× {}",
                    if ok { "ok" } else { "MISSED" }
                );
            } else {
                missed += 1;
                println!("goal: growth 10k → 100k ≤ 12×: MISSED (capped)");
            }
            if let Some(r) = get("rhai-run")
                && d.len() == SIZES.len()
                && r.len() == SIZES.len()
            {
                let ratio = d[2].net(bd) / r[2].net(br);
                let ok = ratio <= 1.5 && !d[2].capped;
                missed += usize::from(!ok);
                println!(
                    "goal: dockhand ≤ 1.5× plain Rhai at 100k: {}{ratio:.2}× {}",
                    if d[2].capped { "> " } else { "" },
                    if ok { "ok" } else { "MISSED" }
                );
            }
        }
    }
    missed += influx(&dockhand, python, runs, cap, dir.path());
    println!("\nload: {}", load());
    println!("{missed} goal(s) missed");
}

/// The plain-Rhai runner: no limits, no host modules, `print` to stdout.
fn rhai_run(path: &Path) -> i32 {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return 2;
        }
    };
    let engine = rhai::Engine::new();
    match engine.run(&src) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

struct Cell {
    /// Median wall time, spawn to exit.
    secs: f64,
    /// Median CPU time (user + system).
    cpu: Option<f64>,
    rss_kb: Option<u64>,
    capped: bool,
}

impl Cell {
    fn time(&self) -> String {
        let t = secs(self.secs);
        if self.capped { format!("> {t}") } else { t }
    }

    /// CPU time (wall time for a capped run).
    fn cpu(&self) -> f64 {
        self.cpu.unwrap_or(self.secs)
    }

    /// CPU time beyond the runner's start-up (at least 1 ms, so ratios stay finite).
    fn net(&self, startup: f64) -> f64 {
        (self.cpu() - startup).max(0.001)
    }
}

fn secs(s: f64) -> String {
    if s < 0.01 {
        format!("{:.1} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn rss(kb: Option<u64>) -> String {
    match kb {
        Some(k) if k >= 10 * 1024 => format!("{} MiB", k / 1024),
        Some(k) => format!("{k} KiB"),
        None => "-".into(),
    }
}

/// Runs `cmd` `runs` times: median wall time, CPU time and peak RSS (from `wait4`). A run
/// that fails or passes the cap ends the cell (shown with `>`: its time measures nothing).
fn measure(mut cmd: Command, runs: usize, cap: Duration) -> Cell {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut kbs = Vec::new();
    for _ in 0..runs.max(1) {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn");
        let mut stderr = child.stderr.take().unwrap();
        let drain = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let Some((status, usage)) = wait_capped(&mut child, cap) else {
            return Cell {
                secs: started.elapsed().as_secs_f64(),
                cpu: None,
                rss_kb: None,
                capped: true,
            };
        };
        let took = started.elapsed().as_secs_f64();
        let err = drain.join().unwrap_or_default();
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            // An older binary may refuse the data (its size limits): show why, time nothing.
            println!(
                "  {} failed (status {status}): {}",
                cmd.get_program().to_string_lossy(),
                err.lines()
                    .find(|l| l.contains("rror"))
                    .unwrap_or(err.trim())
            );
            return Cell {
                secs: took,
                cpu: None,
                rss_kb: None,
                capped: true,
            };
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        walls.push(took);
        cpus.push(tv(usage.ru_utime) + tv(usage.ru_stime));
        kbs.push(usage.ru_maxrss as u64); // KiB on Linux
    }
    kbs.sort();
    Cell {
        secs: median(&mut walls),
        cpu: Some(median(&mut cpus)),
        rss_kb: Some(kbs[kbs.len() / 2]),
        capped: false,
    }
}

/// Reaps `child` with `wait4` (for its resource usage); kills it after `cap` (`None`).
fn wait_capped(child: &mut Child, cap: Duration) -> Option<(i32, libc::rusage)> {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + cap;
    loop {
        let mut status = 0;
        // SAFETY: plain syscall on our own child; `usage` is a valid out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            return Some((status, usage));
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The end-to-end Influx case; returns the number of missed goals.
fn influx(dockhand: &Path, python: bool, runs: usize, cap: Duration, dir: &Path) -> usize {
    println!("\n## influx: {INFLUX_POINTS} points from a real influxd, filter, group, p95");
    if !Path::new(INFLUXD).exists() {
        println!("skipped: no {INFLUXD} (apt-get install influxdb)");
        return 0;
    }
    let server = Influxd::start(InfluxdConfig {
        auth: false,
        // InfluxDB 1.x cuts an answer at 10k rows by default; the case reads them all.
        max_row_limit: Some(0),
    });
    load_points(&server, INFLUX_POINTS);
    let script = dir.join("influx.rhai");
    std::fs::write(
        &script,
        INFLUX_SCRIPT
            .replace("URL", &server.url())
            .replace("NNN", &INFLUX_POINTS.to_string()),
    )
    .unwrap();
    let row = |name: &str, c: &Cell| {
        println!(
            "{name:<10} {:>10} {:>10} {:>10}",
            c.time(),
            if c.capped { "-".into() } else { secs(c.cpu()) },
            rss(c.rss_kb)
        )
    };
    println!(
        "{:<10} {:>10} {:>10} {:>10}",
        "runner", "wall", "CPU", "peak RSS"
    );
    let mut c = Command::new(dockhand);
    c.args(["-q", "run"]).arg(&script);
    let d = measure(c, runs, cap);
    row("dockhand", &d);
    if python {
        let p = dir.join("influx.py");
        std::fs::write(&p, INFLUX_PYTHON).unwrap();
        let mut c = Command::new("python3");
        c.arg(&p).arg(server.url()).arg(INFLUX_POINTS.to_string());
        let py = measure(c, runs, cap);
        row("python", &py);
    }
    let ok = d.secs <= 2.0 && !d.capped;
    println!(
        "goal: {INFLUX_POINTS} rows end to end ≤ 2 s: {} {}",
        d.time(),
        if ok { "ok" } else { "MISSED" }
    );
    usize::from(!ok)
}

/// `n` points of `cpu,host=hK value=V` one second apart, in batches of 10k.
fn load_points(server: &Influxd, n: usize) {
    let r = server.request("POST", "/query?q=CREATE%20DATABASE%20bench", "");
    assert!(r.starts_with("HTTP/1.0 200"), "create database: {r}");
    let t0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let body: String = chunk
            .iter()
            .map(|i| {
                format!(
                    "cpu,host=h{} value={:.2} {}\n",
                    i % 10,
                    // Never a whole number: InfluxDB 1.x would send `1.0` as `1`.
                    ((i * 7919) % 1000) as f64 / 10.0 + 0.01,
                    t0 + *i as u64
                )
            })
            .collect();
        let r = server.request("POST", "/write?db=bench&precision=s", &body);
        assert!(r.starts_with("HTTP/1.0 204"), "write: {r}");
    }
}
