use super::*;
use crate::docker::build::{BuildError, FailureKind};

/// A stats body as an engine on cgroup v2 sends it, with 10 MB of page cache.
fn recorded_stats() -> bollard::models::ContainerStatsResponse {
    serde_json::from_value(serde_json::json!({
        "cpu_stats": { "cpu_usage": { "total_usage": 2_000_000_000u64 },
                       "system_cpu_usage": 110_000_000_000u64, "online_cpus": 2 },
        "precpu_stats": { "cpu_usage": { "total_usage": 1_500_000_000u64 },
                          "system_cpu_usage": 100_000_000_000u64, "online_cpus": 2 },
        "memory_stats": { "usage": 50_000_000u64, "limit": 200_000_000u64,
                          "stats": { "inactive_file": 10_000_000u64 } }
    }))
    .unwrap()
}

/// `docker::stats` and the monitor both read a sample through `usage::sample`, which is
/// `usage::usage` of the engine's body; the script's map is that `Usage`, rounded. So the
/// two cannot disagree (the page cache is left out of both).
#[test]
fn stats_map_is_the_monitors_usage() {
    let u = usage::usage(&recorded_stats());
    let m = stats_map(&u);
    let float = |k: &str| m[k].as_float().unwrap();
    let int = |k: &str| m[k].as_int().unwrap();
    assert_eq!(int("mem_bytes") as u64, u.mem_bytes.unwrap());
    assert_eq!(int("mem_bytes"), 40_000_000, "page cache left out");
    assert_eq!(int("mem_limit") as u64, u.mem_limit.unwrap());
    assert_eq!(float("cpu_percent"), u.cpu_percent.unwrap());
    assert_eq!(float("cpu_percent"), 10.0);
    assert_eq!(float("mem_percent"), 20.0);
    let none = stats_map(&Usage::default());
    assert_eq!(none["cpu_percent"].as_float().unwrap(), 0.0);
    assert_eq!(none["mem_bytes"].as_int().unwrap(), 0);
}

fn engine() -> Engine {
    let mut e = Engine::new();
    register(&mut e);
    e.register_fn("failing_build", |kind: &str| -> HostResult<()> {
        Err(match kind {
            "step" => build_failure(BuildError::failed(
                FailureKind::Step,
                "build of x:1 failed: ERROR: boom — exit code: 3",
            )),
            "engine" => build_failure(BuildError::failed(FailureKind::Engine, "build of x:1 hung")),
            _ => build_failure(BuildError::Other("cannot run docker compose".into())),
        })
    });
    e
}

fn caught(script: &str) -> (Dynamic, String) {
    let arr: Array = engine()
        .eval(&format!(
            "let r = (); try {{ {script} }} catch (e) {{ r = [docker::failure_kind(e), `${{e}}`]; }} r"
        ))
        .unwrap();
    (arr[0].clone(), arr[1].clone().into_string().unwrap())
}

/// The kind of a failed build is data on the caught value; its text is what it was.
#[test]
fn failure_kind_reads_the_kind_off_the_caught_value() {
    let (kind, text) = caught("failing_build(\"step\")");
    assert_eq!(kind.into_string().unwrap(), "step");
    assert_eq!(
        text,
        "build of x:1 failed: ERROR: boom — exit code: 3 [build step failed]"
    );
    let (kind, text) = caught("failing_build(\"engine\")");
    assert_eq!(kind.into_string().unwrap(), "engine");
    assert!(text.ends_with("[engine error]"), "{text}");
    // A re-throw keeps the kind.
    let (kind, _) = caught("try { failing_build(\"engine\") } catch (e) { throw e; }");
    assert_eq!(kind.into_string().unwrap(), "engine");
    // No kind: an error the builder never saw, and a look-alike string.
    assert!(caught("failing_build(\"other\")").0.is_unit());
    assert!(
        caught("throw \"build of x failed [engine error]\";")
            .0
            .is_unit()
    );
    let config = build_failure(BuildError::failed(FailureKind::Config, "bad"));
    let EvalAltResult::ErrorRuntime(v, _) = *config else {
        panic!("not a runtime error")
    };
    assert_eq!(failure_kind_of(&v), Some(FailureKind::Config));
    assert_eq!(crate::diagnostic::Fault::of_value(&v), None, "still exit 1");
}
