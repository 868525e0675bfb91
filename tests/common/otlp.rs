//! OTLP for the tests: `tests/otlp_receiver.py` decodes what dockhand sends with the official
//! protobuf definitions (Python's `opentelemetry-proto`, installed by `scripts/install-deps`),
//! either as a live receiver on a free loopback port ([`Receiver`]) or from stored request
//! bodies ([`decode`], for the lab's Jaeger stand-in).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_receiver.py")
}

/// Whether Python can decode OTLP here; without it a test is skipped with the reason
/// printed, unless `DOCKHAND_REQUIRE_DOCKER=1` (CI, where install-deps installed it).
pub fn python_ready(what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import opentelemetry.proto.trace.v1.trace_pb2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let why = "python3 cannot import opentelemetry.proto (pip install opentelemetry-proto, \
               or scripts/install-deps)";
    super::ready_or_skip(what, (!ok).then_some(why))
}

/// A running receiver; killed on drop (it also exits by itself after 10 minutes).
pub struct Receiver {
    child: Child,
    dir: tempfile::TempDir,
    pub url: String,
}

impl Receiver {
    pub fn start() -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let port_file = dir.path().join("port");
        let child = Command::new("python3")
            .arg(script())
            .arg("serve")
            .arg(&out)
            .arg(&port_file)
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("start tests/otlp_receiver.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(Instant::now() < deadline, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Receiver {
            child,
            dir,
            url: format!("http://127.0.0.1:{}", port.trim()),
        }
    }

    /// The spans received so far, one JSON object each.
    pub fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("spans.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The spans of stored OTLP request bodies (files), decoded.
pub fn decode(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(script())
        .arg("decode")
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks a decoded run: one root, every other span's parent in the batch and its times
/// within its parent's; returns (services, phases) under the root named `run`.
pub fn check_tree(spans: &[Value], run: &str) -> (Vec<Value>, Vec<Value>) {
    let name = format!("dockhand run {run}");
    let root = spans
        .iter()
        .find(|s| s["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no root span {name:?} in {spans:#?}"));
    assert_eq!(root["parent_span_id"], "", "the run's span is a root");
    let trace = &root["trace_id"];
    let of_run: Vec<&Value> = spans.iter().filter(|s| &s["trace_id"] == trace).collect();
    let by_id = |id: &Value| of_run.iter().find(|s| &s["span_id"] == id).copied();
    let n = |v: &Value| v.as_u64().unwrap();
    for s in of_run.iter().filter(|s| s["parent_span_id"] != "") {
        let p = by_id(&s["parent_span_id"])
            .unwrap_or_else(|| panic!("{}: its parent is not in the trace", s["name"]));
        assert!(
            n(&s["start_ns"]) >= n(&p["start_ns"]) && n(&s["end_ns"]) <= n(&p["end_ns"]),
            "{} lies outside its parent {}",
            s["name"],
            p["name"]
        );
        assert!(n(&s["start_ns"]) <= n(&s["end_ns"]), "{}", s["name"]);
    }
    let services: Vec<Value> = of_run
        .iter()
        .filter(|s| s["parent_span_id"] == root["span_id"])
        .map(|s| (*s).clone())
        .collect();
    let phases: Vec<Value> = of_run
        .iter()
        .filter(|s| services.iter().any(|v| v["span_id"] == s["parent_span_id"]))
        .map(|s| (*s).clone())
        .collect();
    assert_eq!(
        services.len() + phases.len() + 1,
        of_run.len(),
        "spans deeper than run -> service -> phase"
    );
    (services, phases)
}
