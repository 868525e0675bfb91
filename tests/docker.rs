//! The `docker::` module against the real engine.
//!
//! Containers run a `FROM scratch` image holding the static busybox from Debian's
//! `busybox-static` package (no registry is needed). Every test uses its own compose-style
//! project label and removes its containers, even when it fails. Without a reachable engine
//! the tests print why and pass, unless `DOCKHAND_REQUIRE_DOCKER=1` (CI) makes that a failure.

mod common;
use std::process::Command;
use std::sync::OnceLock;

use common::Test;

const IMAGE: &str = "dockhand-test-busybox:latest";

fn require() -> bool {
    std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

fn skip(why: &str) -> bool {
    assert!(!require(), "DOCKHAND_REQUIRE_DOCKER=1 but {why}");
    eprintln!("skipping Docker test: {why}");
    false
}

/// True when the engine answers and the test image exists (building it once per run).
fn docker_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        let ok = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
        match ok {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("no Docker engine answers: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => return Err(format!("no docker CLI: {e}")),
        }
        let busybox = std::path::Path::new("/bin/busybox");
        let is_static = Command::new("ldd")
            .arg(busybox)
            .output()
            .map(|o| !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic"))
            .unwrap_or(false);
        if !busybox.exists() || !is_static {
            return Err("no static /bin/busybox (apt-get install busybox-static)".into());
        }
        let ctx = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::copy(busybox, ctx.path().join("busybox")).map_err(|e| e.to_string())?;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"sh\"]\n",
        )
        .map_err(|e| e.to_string())?;
        let out = Command::new("docker")
            .args(["build", "-q", "-t", IMAGE])
            .arg(ctx.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("cannot build the test image: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(why) => skip(why),
    }
}

/// Containers of one test, removed on drop.
struct Lab {
    project: String,
    names: Vec<String>,
    images: Vec<String>,
}

impl Lab {
    fn new(test: &str) -> Self {
        Lab {
            project: format!("dhtest-{test}-{}", std::process::id()),
            names: Vec::new(),
            images: Vec::new(),
        }
    }

    /// Starts `service` running `script` (busybox sh) with extra `docker run` args.
    fn run(&mut self, service: &str, extra: &[&str], script: &str) -> String {
        let name = format!("{}-{service}", self.project);
        let mut cmd = Command::new("docker");
        // --init: an init as PID 1 forwards SIGTERM, so stops do not wait out the grace period.
        cmd.args(["run", "-d", "--init", "--name", &name])
            .args([
                "--label",
                &format!("com.docker.compose.project={}", self.project),
            ])
            .args(["--label", &format!("com.docker.compose.service={service}")])
            .args(["--label", "homeiq.category=integration"])
            .args(extra)
            .args([IMAGE, "sh", "-c", script]);
        let out = cmd.output().expect("docker run");
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.names.push(name.clone());
        name
    }

    /// A lab for a build test, and the image tag `<project>-<suffix>:latest` it removes.
    fn with_image(test: &str, suffix: &str) -> (Self, String) {
        let mut lab = Lab::new(test);
        let tag = format!("{}-{suffix}:latest", lab.project);
        lab.images.push(tag.clone());
        (lab, tag)
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", format, name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&self.names)
                .output();
        }
        if !self.images.is_empty() {
            let _ = Command::new("docker")
                .args(["rmi", "-f"])
                .args(&self.images)
                .output();
        }
    }
}

fn image_exists(r: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", r])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

const WEB: &str = "mkdir -p /www && echo ok > /www/health && echo 'INFO web listening' && echo 'ERROR simulated failure' && exec httpd -f -p 8080 -h /www";
const HEALTHCHECK: &[&str] = &[
    "--health-cmd",
    "wget -q -O /dev/null http://127.0.0.1:8080/health",
    "--health-interval",
    "1s",
    "--health-retries",
    "2",
];

#[test]
fn unreachable_engine_is_a_clear_error() {
    Test::new()
        .script("docker::ps();\n")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .status(1)
        .stderr_has("cannot reach Docker at unix:///nonexistent/docker.sock")
        .stderr_has("is the daemon running")
        .stderr_has("--> main.rhai:1:")
        .run();
}

#[test]
fn ps_health_logs_and_inspect_of_a_compose_service() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("ps");
    let name = lab.run("web", HEALTHCHECK, WEB);
    let r = Test::new()
        .script(&format!(
            r#"docker::use_project("{p}");
let w = docker::wait_healthy("web", #{{ timeout: "30s" }});
print(`wait: ${{w.status}} ${{w.container}}`);
let ps = docker::ps();
print(`ps: ${{ps.len()}} ${{ps[0].service}} ${{ps[0].category}} ${{ps[0].health}} ${{ps[0].state}} ${{ps[0].project}}`);
print(`health: ${{docker::health("web")}}`);
print(`restarts: ${{docker::restart_count("web")}}`);
let errs = docker::logs("web", #{{ tail: 10, grep: "error" }});
errs.trim();
print(`errors: ${{errs}}|`);
print(`all: ${{docker::logs("web").contains("INFO web listening")}}`);
print(`inspect: ${{docker::inspect("web").Name}}`);
let r = http::probe(`http://${{ps[0].ips[0]}}:8080/health`);
print(`probe: ${{r.ok}}`);
print(`restarts: ${{ps[0].restarts}} uptime ok: ${{ps[0].uptime_s >= 0 && ps[0].uptime_s < 600}}`);
let st = docker::stats("web");
print(`stats: ${{st.mem_bytes > 0}} ${{st.cpu_percent >= 0.0}} ${{st.mem_limit > 0}}`);
let imgs = docker::images();
print(`images: ${{imgs.filter(|i| i.tags.contains("{image}")).len()}}`);
"#,
            p = lab.project,
            image = IMAGE
        ))
        .stderr_has("wait: healthy")
        .stderr_has(&format!("ps: 1 web integration healthy running {}", lab.project))
        .stderr_has("health: healthy")
        .stderr_has("restarts: 0")
        .stderr_has("errors: ERROR simulated failure|")
        .stderr_has("all: true")
        .stderr_has(&format!("inspect: /{name}"))
        .stderr_has("probe: true")
        .stderr_has("stats: true true true")
        .stderr_has("restarts: 0 uptime ok: true")
        .stderr_has("images: 1")
        .run();
    drop(r);
}

#[test]
fn wait_healthy_reports_unhealthy_exited_and_no_healthcheck() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("wait");
    lab.run(
        "sick",
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
        ],
        "exec sleep 300",
    );
    lab.run("plain", &[], "exec sleep 300");
    lab.run("dies", &[], "sleep 1; exit 3");
    Test::new()
        .script(&format!(
            r#"docker::use_project("{p}");
let s = docker::wait_healthy("sick", #{{ timeout: "20s" }});
print(`sick: ${{s.status}} in ${{s.ms}} ms`);
// Healthcheck window: 1 s interval x 2 retries (+ the check's own time); generous for CI.
print(`within window: ${{s.ms < 8000}}`);
let again = docker::wait_healthy("sick", #{{ timeout: "5s" }});
print(`still sick: ${{again.status}} in ${{again.ms < 1000}}`);
let patient = docker::wait_healthy("sick", #{{ timeout: "1500ms", through_unhealthy: true }});
print(`patient: ${{patient.status}}`);
let p = docker::wait_healthy("plain", #{{ timeout: "5s" }});
print(`plain: ${{p.status}} (${{p.note}})`);
let d = docker::wait_healthy("dies", #{{ timeout: "20s" }});
print(`dies: ${{d.status}} ${{d.note}}`);
"#,
            p = lab.project
        ))
        .stderr_has("sick: unhealthy in")
        .stderr_has("within window: true")
        .stderr_has("still sick: unhealthy in true")
        .stderr_has("patient: timeout")
        .stderr_has("plain: running (no healthcheck: running counts as ready)")
        .stderr_has("dies: exited exit code 3")
        .run();
}

#[test]
fn restart_then_wait_healthy_and_dry_run_and_read_only_leave_it_alone() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("restart");
    let name = lab.run("web", HEALTHCHECK, WEB);
    let started = |lab: &Lab| lab.inspect(&name, "{{.State.StartedAt}}");
    let script = format!(
        "docker::use_project(\"{}\");\ndocker::wait_healthy(\"web\", #{{ timeout: \"30s\" }});\nlet before = docker::inspect(\"web\").State.StartedAt;\ndocker::restart(\"web\");\nlet w = docker::wait_healthy(\"web\", #{{ timeout: \"30s\" }});\nprint(`after restart: ${{w.status}}`);\n",
        lab.project
    );
    let t0 = started(&lab);
    Test::new()
        .script(&script)
        .args(&["--dry-run"])
        .stdout_has("docker::restart web")
        .run();
    assert_eq!(started(&lab), t0, "--dry-run restarted the container");
    let id_before = lab.inspect(&name, "{{.Id}}");
    Test::new()
        .script(&format!(
            "docker::use_project(\"{}\");\ndocker::recreate(\"web\");\n",
            lab.project
        ))
        .args(&["--dry-run"])
        .stdout_has("docker::recreate web")
        .run();
    assert_eq!(
        lab.inspect(&name, "{{.Id}}"),
        id_before,
        "--dry-run recreated the container"
    );
    for call in ["restart", "stop", "start", "rm", "recreate"] {
        Test::new()
            .script(&format!(
                "docker::use_project(\"{}\");\ndocker::{call}(\"web\");\n",
                lab.project
            ))
            .args(&["--read-only"])
            .status(2)
            .stderr_has(&format!("refused: docker::{call} would change web"))
            .run();
    }
    assert_eq!(started(&lab), t0, "--read-only changed the container");
    Test::new()
        .script(&script)
        .stderr_has("after restart: healthy")
        .run();
    assert_ne!(started(&lab), t0, "restart did not restart");
}

#[test]
fn exec_needs_allow_exec() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("exec");
    lab.run("box", &[], "exec sleep 300");
    let script = format!(
        "docker::use_project(\"{}\");\nlet r = docker::exec(\"box\", [\"sh\", \"-c\", \"echo hi from box; exit 4\"]);\nlet out = r.output;
out.trim();
print(`exec: ${{r.exit_code}} ${{out}}`);\n",
        lab.project
    );
    Test::new()
        .script(&script)
        .status(2)
        .stderr_has("--allow-exec")
        .run();
    Test::new()
        .script(&script)
        .args(&["--allow-exec"])
        .stderr_has("exec: 4 hi from box")
        .run();
}

#[test]
fn unknown_service_names_the_known_ones() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("unknown");
    lab.run("alpha", &[], "exec sleep 300");
    Test::new()
        .script(&format!(
            "docker::use_project(\"{}\");\ndocker::health(\"alpah\");\n",
            lab.project
        ))
        .status(1)
        .stderr_has("no container or compose service named 'alpah'")
        .stderr_has("(known: alpha)")
        .run();
}

#[test]
fn build_tag_and_rmi() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("build");
    let tag = format!("{}-app:latest", lab.project);
    let backup = format!("{}-app:pre-run1", lab.project);
    lab.images.push(tag.clone());
    lab.images.push(backup.clone());
    let dockerfile = format!(
        "FROM {IMAGE}\nARG VERSION=0\nRUN echo \"building version $VERSION\" && echo $VERSION > /version\n"
    );
    let script = format!(
        r#"let b = docker::build(#{{ context: "app", tag: "{tag}", build_args: #{{ VERSION: "7" }} }});
print(`built: ${{b.image_id.starts_with("sha256:")}} ${{b.tag}} ${{b.log}}`);
print(`same id: ${{docker::image_id("{tag}") == b.image_id}}`);
docker::tag("{tag}", "{backup}");
print(`backup: ${{docker::image_id("{backup}") == b.image_id}}`);
docker::rmi("{backup}");
print(`after rmi: ${{docker::image_id("{backup}") == ()}}`);
"#
    );
    let r = Test::new()
        .file("app/Dockerfile", &dockerfile)
        .file("app/.dockerignore", "secret\n")
        .file("app/secret", "x")
        .script(&script)
        .stderr_has(&format!("built: true {tag} logs/builds/"))
        .stderr_has("same id: true")
        .stderr_has("backup: true")
        .stderr_has("after rmi: true")
        .run();
    let log_dir = r.path("logs/builds");
    let log = std::fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .next()
        .expect("a build log");
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        text.contains("building version 7"),
        "build log lacks the RUN output:\n{text}"
    );
    assert!(image_exists(&tag));
    assert!(!image_exists(&backup));
}

/// A failed build names the failing step's own output line, the builder's verdict and the
/// failure's kind (a failed step: not worth a retry) — with BuildKit (Compose v2) and with
/// the classic builder, each in its own words.
fn failing_build_case(builder: &str, verdict: &str) {
    if !docker_ready() {
        return;
    }
    let (_lab, tag) = Lab::with_image(&format!("badbuild{builder}"), "bad");
    let dockerfile = format!(
        "FROM {IMAGE}\nRUN echo 'ERROR: requirements conflict: sqlalchemy==2.0.46' && exit 3\n"
    );
    let r = Test::new()
        .env("DOCKHAND_BUILDER", builder)
        .file("bad/Dockerfile", &dockerfile)
        .script(&format!(
            "docker::build(#{{ context: \"bad\", tag: \"{tag}\" }});\n"
        ))
        .status(1)
        .stderr_has(&format!(
            "build of {tag} failed: ERROR: requirements conflict: sqlalchemy==2.0.46"
        ))
        .stderr_has(verdict)
        .stderr_has("[build step failed]")
        .stderr_has("--> main.rhai:1:")
        .run();
    drop(r);
    assert!(!image_exists(&tag));
}

#[test]
fn failing_build_surfaces_the_builder_error_line() {
    failing_build_case("buildkit", "exit code: 3");
}

#[test]
fn failing_classic_build_surfaces_the_builder_error_line() {
    failing_build_case("classic", "returned a non-zero code: 3");
}

/// `docker::failure_kind` reads a failed build's kind off the caught error (what the rebuild
/// decides a retry by); the message is the same text as uncaught.
#[test]
fn failure_kind_of_a_failed_build_is_data() {
    if !docker_ready() {
        return;
    }
    let (_lab, tag) = Lab::with_image("kindbuild", "bad");
    Test::new()
        .file("bad/Dockerfile", &format!("FROM {IMAGE}\nRUN exit 3\n"))
        .script(&format!(
            "let k = ();\n\
             try {{ docker::build(#{{ context: \"bad\", tag: \"{tag}\" }}); }}\n\
             catch (e) {{ k = [docker::failure_kind(e), `${{e}}`]; }}\n\
             print(`kind=${{k[0]}} text=${{k[1]}}`);\n\
             print(`plain=${{docker::failure_kind(\"x [engine error]\")}}`);\n"
        ))
        .stderr_has("kind=step text=build of ")
        .stderr_has("[build step failed]")
        .stderr_has("plain=\n")
        .run();
}

#[test]
fn dry_run_builds_nothing_and_read_only_refuses_image_changes() {
    if !docker_ready() {
        return;
    }
    let (lab, tag) = Lab::with_image("drybuild", "dry");
    // A label unique to this run: any image (final or intermediate) a real build of this
    // Dockerfile made would carry it. Comparing the whole image list would race the other
    // tests, which build images at the same time.
    let token = format!("dhtest.dry={}", lab.project);
    let labelled = || {
        let out = Command::new("docker")
            .args(["images", "-aq", "--filter", &format!("label={token}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let t = Test::new()
        .file("app/Dockerfile", &format!("FROM {IMAGE}\nLABEL {token}\nRUN echo hi > /hi\n"))
        .script(&format!(
            "let b = docker::build(#{{ context: \"app\", tag: \"{tag}\", no_cache: true }});\nprint(`id: ${{b.image_id}}`);\ndocker::tag(\"{IMAGE}\", \"{tag}\");\n"
        ))
        .args(&["--dry-run"])
        .stderr_has("id: ")
        .stdout_has(&format!("docker::build {tag} from app, no cache"))
        .stdout_has(&format!("docker::tag {IMAGE} as {tag}"))
        .run();
    drop(t);
    assert!(!image_exists(&tag), "--dry-run built or tagged an image");
    assert_eq!(labelled(), "", "--dry-run built an image");
    for call in [
        format!("docker::build(#{{ context: \"app\", tag: \"{tag}\" }})"),
        format!("docker::tag(\"{IMAGE}\", \"{tag}\")"),
        format!("docker::rmi(\"{IMAGE}\")"),
    ] {
        Test::new()
            .file("app/Dockerfile", &format!("FROM {IMAGE}\n"))
            .script(&format!("{call};\n"))
            .args(&["--read-only"])
            .status(2)
            .stderr_has("refused:")
            .run();
    }
    assert!(image_exists(IMAGE), "--read-only removed an image");
    assert!(!image_exists(&tag));
}

/// A docker-compose (v1 or v2) project in a temp dir, taken down on drop.
struct Compose {
    project: String,
    dir: std::path::PathBuf,
    cmd: Vec<String>,
}

impl Compose {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(&self.cmd[0])
            .args(&self.cmd[1..])
            .args(["-p", &self.project])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("compose");
        assert!(
            out.status.success(),
            "compose {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Compose {
    /// Cleans up by label, not with `compose down`: the project's directory may already be
    /// gone (the test's workspace is dropped first when a test fails).
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let ids = |args: &[&str]| {
            let out = Command::new("docker")
                .args(args)
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            String::from_utf8_lossy(&out)
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let containers = ids(&["ps", "-aq", "--filter", &label]);
        if !containers.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&containers)
                .output();
        }
        let networks = ids(&["network", "ls", "-q", "--filter", &label]);
        if !networks.is_empty() {
            let _ = Command::new("docker")
                .args(["network", "rm"])
                .args(&networks)
                .output();
        }
        // By name, not id: BuildKit makes identical images for identical builds, and removing
        // an id would take another test's tag of the same image with it.
        let by_name = |pattern: String| {
            ids(&[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                &format!("reference={pattern}"),
            ])
        };
        let images = by_name(format!("{}_*", self.project));
        let images2 = by_name(format!("{}-*", self.project));
        let all: Vec<_> = images.into_iter().chain(images2).collect();
        if !all.is_empty() {
            let _ = Command::new("docker").arg("rmi").args(&all).output();
        }
    }
}

/// Compose v2 compares `com.docker.compose.image` and its config hash; v1 folds the image id
/// into `com.docker.compose.config-hash`, so recreate asks v1 for the new hash. Either way a
/// later `up -d` leaves the recreated container alone.
#[test]
fn recreate_keeps_config_and_compose_v2_up_leaves_it_alone() {
    if !docker_ready() {
        return;
    }
    match common::compose_version(&["docker", "compose"], '2') {
        Some(_) => recreate_case(vec!["docker".into(), "compose".into()], "v2"),
        None => {
            skip("Compose v2 is not installed (scripts/install-deps installs it)");
        }
    }
}

/// The v1-specific code (the config-hash asked of `docker-compose`) keeps a test where v1 is
/// installed (CI installs it: DOCKHAND_COMPOSE_V1=1 scripts/install-deps).
#[test]
fn recreate_keeps_config_and_compose_v1_up_leaves_it_alone() {
    if !docker_ready() {
        return;
    }
    match common::compose_version(&["docker-compose"], '1') {
        Some(_) => recreate_case(vec!["docker-compose".into()], "v1"),
        None => {
            eprintln!("skipping the Compose v1 recreate test: docker-compose 1.x is not installed")
        }
    }
}

fn recreate_case(cmd: Vec<String>, flavor: &str) {
    eprintln!("recreate test on {}", cmd.join(" "));
    let t = Test::new()
        .file(
            "web/Dockerfile",
            &format!(
                "FROM {IMAGE}\nENV VERSION=1\nRUN mkdir -p /www && echo ok > /www/health\nHEALTHCHECK --interval=1s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
            ),
        )
        .file(
            "docker-compose.yml",
            "version: \"2.4\"\nservices:\n  web:\n    build: ./web\n    init: true\n    environment:\n      FOO: bar\n    ports:\n      - \"127.0.0.1::8080\"\n    labels:\n      homeiq.category: integration\n    networks: [backend]\n    restart: unless-stopped\nnetworks:\n  backend: {}\n",
        );
    let project = format!("dhtestrecreate{flavor}{}", std::process::id());
    let compose = Compose {
        project: project.clone(),
        dir: t.path().to_path_buf(),
        cmd,
    };
    compose.run(&["up", "-d", "--build"]);
    let id_of = || {
        let out = compose.run(&["ps", "-q", "web"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let inspect = |id: &str, f: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", f, id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let old = id_of();
    let fields = [
        "{{json .HostConfig.PortBindings}}",
        "{{json .HostConfig.RestartPolicy}}",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "{{index .Config.Labels \"com.docker.compose.service\"}}",
        "{{index .Config.Labels \"homeiq.category\"}}",
        "{{.Name}}",
    ];
    let before: Vec<String> = fields.iter().map(|f| inspect(&old, f)).collect();
    assert!(before[2].contains("backend"), "{before:?}");

    // A new version of the image: compose's own image name now points at it.
    std::fs::write(
        t.path().join("web/Dockerfile"),
        format!(
            "FROM {IMAGE}\nENV VERSION=2\nRUN mkdir -p /www && echo ok2 > /www/health\nHEALTHCHECK --interval=1s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        ),
    )
    .unwrap();
    let image = inspect(&old, "{{.Config.Image}}");
    let script = format!(
        r#"docker::use_project("{project}");
let b = docker::build(#{{ context: "web", tag: "{image}" }});
let r = docker::recreate("web");
print(`recreated: ${{r.old_id != r.new_id}} ${{r.new_image_id == b.image_id}}`);
let w = docker::wait_healthy("web", #{{ timeout: "30s" }});
print(`health: ${{w.status}}`);
"#
    );
    let r = t
        .script(&script)
        .stderr_has("recreated: true true")
        .stderr_has("health: healthy")
        .run();
    let new = id_of();
    assert_ne!(new, old, "not recreated");
    let after: Vec<String> = fields.iter().map(|f| inspect(&new, f)).collect();
    assert_eq!(before, after, "recreate changed configuration");
    let env = inspect(&new, "{{json .Config.Env}}");
    assert!(env.contains("FOO=bar"), "user env lost: {env}");
    assert!(
        env.contains("VERSION=2") && !env.contains("VERSION=1"),
        "image env not from the new image: {env}"
    );
    assert_ne!(
        inspect(&new, "{{.Config.Hostname}}"),
        old[..12],
        "hostname copied from the old id"
    );
    // The config-hash label is the one compose computes for the service now.
    let hash_line =
        String::from_utf8_lossy(&compose.run(&["config", "--hash=web"]).stdout).to_string();
    let expected = hash_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    assert_eq!(
        inspect(
            &new,
            "{{index .Config.Labels \"com.docker.compose.config-hash\"}}"
        ),
        expected,
        "config-hash is not compose's"
    );
    compose.run(&["up", "-d"]);
    assert_eq!(
        id_of(),
        new,
        "docker compose up -d recreated the container again"
    );
    drop(r);
}

#[test]
fn ps_follows_external_changes_and_sees_its_own_at_once() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("table");
    let a = lab.run("a", &[], "exec sleep 300");
    lab.run("b", &[], "exec sleep 300");
    let script = format!(
        r#"docker::use_project("{p}");
print(`start: ${{docker::ps().len()}}`);
print("stop-a-now");
// Someone else stops a (the test, with the docker CLI): the table follows the events.
let ms = time::wait_until(#{{ timeout: "10s", interval: 20 }}, || docker::ps().len() == 1);
print(`external: ${{docker::ps().map(|c| c.service)}}`);
// Our own change is visible to the very next call, no waiting.
docker::stop("b");
print(`own: ${{docker::ps().len()}} ${{docker::ps(#{{ all: true }}).len()}}`);
"#,
        p = lab.project
    );
    let t = Test::new().script(&script);
    let mut child = t.spawn();
    let rest = common::wait_for_line(&mut child, "stop-a-now");
    let stop = Command::new("docker")
        .args(["stop", "-t", "1", &a])
        .output()
        .unwrap();
    assert!(stop.status.success());
    let out = child.wait_with_output().unwrap();
    let mut stderr = String::new();
    use std::io::Read;
    let mut rest = rest;
    rest.read_to_string(&mut stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(r#"external: ["b"]"#), "{stderr}");
    assert!(stderr.contains("own: 0 2"), "{stderr}");
}

#[test]
fn ps_shows_restarts_of_a_crash_loop() {
    if !docker_ready() {
        return;
    }
    let mut lab = Lab::new("crashloop");
    lab.run(
        "crashy",
        &["--restart", "always"],
        "echo 'ERROR boom'; sleep 1; exit 1",
    );
    Test::new()
        .script(&format!(
            r#"docker::use_project("{p}");
let first = docker::ps(#{{ all: true }})[0].restarts;
time::wait_until(#{{ timeout: "30s", interval: 100 }}, || docker::ps(#{{ all: true }})[0].restarts >= first + 2);
print(`restarts grew: ${{docker::ps(#{{ all: true }})[0].restarts >= 2}}`);
print(`same as inspect: ${{docker::restart_count("crashy") >= 2}}`);
"#,
            p = lab.project
        ))
        .stderr_has("restarts grew: true")
        .stderr_has("same as inspect: true")
        .run();
}
