use super::*;
use std::path::Path;

const GOOD: &str = "project: p\ncategories:\n  web:\n    on_failure: stop\nservices:\n  a:\n    category: web\n    port: 80\n  b:\n    category: web\n    port: 81\n    latency_budget_ms: 900\n";

#[test]
fn resolves_service_over_category_over_defaults() {
    let cfg = FleetConfig::parse(GOOD, "t.yaml").unwrap();
    let r = cfg.resolved();
    assert_eq!(r[0].name, "a");
    assert_eq!(r[0].latency_budget_ms, 500);
    assert_eq!(r[1].latency_budget_ms, 900);
    assert_eq!(r[0].on_failure, OnFailure::Stop);
    assert_eq!(r[0].health_path, "/health");
}

#[test]
fn deploy_order_resolves_and_writers_stay_stop_first() {
    let text = "project: p\ndefaults:\n  order: start-first\ncategories:\n  web:\n    order: stop-first\n  api: {}\nservices:\n  a:\n    category: web\n    port: 80\n    order: start-first\n  b:\n    category: web\n    port: 81\n  c:\n    category: api\n    port: 82\n";
    let cfg = FleetConfig::parse(text, "s.yaml").unwrap();
    let order: Vec<DeployOrder> = cfg.resolved().iter().map(|s| s.order).collect();
    use DeployOrder::*;
    assert_eq!(order, [StartFirst, StopFirst, StartFirst]);
    let writer = format!("{text}infrastructure:\n  influxdb:\n    port: 8086\n    writer: c\n");
    let e = FleetConfig::parse(&writer, "s.yaml").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.message.contains("defaults.order: c writes into InfluxDB"),
        "{e}"
    );
    let e = FleetConfig::parse("project: p\ndefaults:\n  order: sideways\n", "s.yaml").unwrap_err();
    assert!(e.to_string().contains("sideways"), "{e}");
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = GOOD.replace("    port: 81\n", "    port: 81\n    max_failure: 2\n");
    let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
    assert_eq!(e.line, 12, "{e}");
    assert!(e.message.contains("unknown field `max_failure`"), "{e}");
}

#[test]
fn unknown_category_points_at_its_line() {
    let text = GOOD.replace("  b:\n    category: web", "  b:\n    category: wbe");
    let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
    assert_eq!(e.line, 10, "{e}");
    assert!(e.message.contains("unknown category 'wbe'"), "{e}");
}

#[test]
fn bad_enum_value_is_named() {
    let text = GOOD.replace("on_failure: stop", "on_failure: halt");
    let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("halt"), "{e}");
}

#[test]
fn the_lab_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homeiq/services.yaml");
    let cfg = FleetConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.services.len(), 44);
    let r = cfg.resolved();
    let ui = r.iter().find(|s| s.name == "health-dashboard").unwrap();
    assert_eq!(ui.latency_budget_ms, 3000);
}

#[test]
fn duplicate_keys_name_both_lines() {
    let text = GOOD.replace("  b:\n", "  a:\n");
    let e = FleetConfig::parse(&text, "s.yaml").unwrap_err();
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("first on line 6"), "{e}");
    let text = GOOD.replace(
        "categories:\n  web:\n    on_failure: stop\n",
        "categories:\n  web:\n    on_failure: stop\n  web:\n    risk: high\n",
    );
    let e = FleetConfig::parse(&text, "s.yaml").unwrap_err();
    assert!(e.message.contains("duplicate key 'web'"), "{e}");
    // Flow style is caught by the YAML parser itself.
    let e = FleetConfig::parse(
        "project: p\ncategories: {w: {}, w: {}}\nservices: {}\n",
        "s",
    )
    .unwrap_err();
    assert!(e.message.contains("duplicate"), "{e}");
    // The same key in two list items or two mappings is fine.
    assert!(duplicate_key("a:\n  x: 1\nb:\n  x: 2\nl:\n  - x: 1\n  - x: 2\n").is_none());
}

#[test]
fn nulls_where_a_value_is_required_name_key_and_line() {
    let e = FleetConfig::parse(&GOOD.replace("project: p", "project: ~"), "s").unwrap_err();
    assert_eq!(
        (e.line, e.message.starts_with("project:")),
        (1, true),
        "{e}"
    );
    let e = FleetConfig::parse(&GOOD.replace("port: 81", "port:"), "s").unwrap_err();
    assert!(e.message.starts_with("services.b.port"), "{e}");
    assert_eq!(e.line, 11);
    // An optional setting may be left empty.
    FleetConfig::parse(
        &GOOD.replace("latency_budget_ms: 900", "latency_budget_ms: ~"),
        "s",
    )
    .unwrap();
}

#[test]
fn out_of_range_numbers_are_refused() {
    let e = FleetConfig::parse(&GOOD.replace("port: 81", "port: 0"), "s").unwrap_err();
    assert!(e.message.contains("0 is not a port"), "{e}");
    let e =
        FleetConfig::parse(&GOOD.replace("on_failure: stop", "batch_size: 0"), "s").unwrap_err();
    assert!(e.message.contains("batch_size: 0 is out of range"), "{e}");
    assert_eq!(e.line, 4);
}

#[test]
fn duplicate_port_is_refused() {
    let text = GOOD.replace("port: 81", "port: 80");
    let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
    assert_eq!(e.line, 11, "{e}");
}

#[test]
fn unknown_gate_failure_kind_in_rollback_on_names_key_and_line() {
    let text = GOOD.replace(
        "categories:",
        "defaults:\n  rollback:\n    on: [unhealthy, latency-budget]\ncategories:",
    );
    let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("latency-budget"), "{e}");
    assert!(e.message.contains("defaults.rollback.on"), "{e}");
}

#[test]
fn gate_failure_names_are_the_config_spelling() {
    for k in GateFailure::ALL {
        let yaml = serde_yaml::to_string(&k).unwrap();
        assert_eq!(yaml.trim(), k.name());
        assert_eq!(k.name().parse::<GateFailure>(), Ok(k));
    }
    let e = "latency-budget".parse::<GateFailure>().unwrap_err();
    assert!(e.to_string().contains("'latency-budget'"), "{e}");
}

#[test]
fn swarm_keys_load_and_errors_name_key_and_line() {
    let text = format!(
        "{GOOD}orchestrator: swarm\nregistry: \"127.0.0.1:5000/p\"\nswarm:\n  parallelism: 2\n  monitor_s: 3\n  failure_action: pause\n"
    );
    let cfg = FleetConfig::parse(&text, "s.yaml").unwrap();
    assert_eq!(cfg.orchestrator, Some(Orchestrator::Swarm));
    assert_eq!(cfg.swarm.parallelism, 2);
    assert_eq!(cfg.swarm.failure_action, SwarmFailureAction::Pause);
    assert_eq!(cfg.swarm.converge_timeout_s, 300);
    // Swarm without a registry: the orchestrator's line.
    let e = FleetConfig::parse(&format!("{GOOD}orchestrator: swarm\n"), "s.yaml").unwrap_err();
    assert_eq!(e.line, 13, "{e}");
    assert!(e.message.contains("needs a `registry:`"), "{e}");
    // A URL, a Docker Hub name, a tag: the registry's line.
    for bad in ["http://r:5000/p", "homeiq", "r:5000/p:latest"] {
        let t = format!("{GOOD}registry: \"{bad}\"\n");
        let e = FleetConfig::parse(&t, "s.yaml").unwrap_err();
        assert_eq!(e.line, 13, "{bad}: {e}");
        assert!(e.message.starts_with("registry: "), "{e}");
    }
    let e = FleetConfig::parse(&format!("{GOOD}orchestrator: kubernetes\n"), "s.yaml").unwrap_err();
    assert!(e.to_string().contains("kubernetes"), "{e}");
    let e = FleetConfig::parse(&format!("{GOOD}swarm:\n  paralellism: 2\n"), "s.yaml").unwrap_err();
    assert_eq!(e.line, 14, "{e}");
    assert!(e.message.contains("paralellism"), "{e}");
    let e = FleetConfig::parse(
        &format!("{GOOD}swarm:\n  converge_timeout_s: 0\n"),
        "s.yaml",
    )
    .unwrap_err();
    assert_eq!(e.line, 14, "{e}");
}

#[test]
fn defaults_batch_size_and_deploy_concurrency_are_auto_or_a_number() {
    use super::model::Limit;
    for key in ["batch_size", "deploy_concurrency"] {
        let with = |v: &str| FleetConfig::parse(&format!("defaults:\n  {key}: {v}\n{GOOD}"), "s");
        let get = |c: FleetConfig| match key {
            "batch_size" => c.defaults.batch_size,
            _ => c.defaults.deploy_concurrency,
        };
        assert_eq!(get(FleetConfig::parse(GOOD, "s").unwrap()), Limit::Auto);
        assert_eq!(get(with("auto").unwrap()), Limit::Auto);
        assert_eq!(get(with("8").unwrap()), Limit::Fixed(8));
        for bad in ["many", "0", "-1", "1e300", ".nan", "100000"] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.line, 2, "{key} {bad}: {e}");
            assert!(e.message.contains(key), "{key} {bad}: {e}");
        }
    }
}
