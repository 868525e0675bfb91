//! Parity with `docker compose build`: for a matrix of compose services (cache mounts,
//! secrets, multi-stage with `target`, build args with defaults, an ARG before FROM,
//! `.dockerignore`, `dockerfile_inline`, labels), the image `docker::build` makes has the same
//! config (env, cmd, entrypoint, user, workdir, labels, healthcheck, exposed ports) and the same
//! file tree as the one Compose v2 makes for that service. The classic-builder fallback is held
//! to the same standard for what it can build, and must refuse what it cannot.
//!
//! Every image is `FROM` a local image (no registry). Docker-dependent: skipped with a printed
//! reason without an engine or Compose v2, failing instead under `DOCKHAND_REQUIRE_DOCKER=1`.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use common::Test;
use serde_json::Value;

const BASE: &str = "dockhand-bk-base:latest";

fn require() -> bool {
    std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// The engine answers, Compose v2 is installed, and the base image exists (built once).
fn ready() -> bool {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let r = READY.get_or_init(|| {
        let v = Command::new("docker")
            .args(["compose", "version", "--short"])
            .output()
            .map_err(|e| format!("no docker CLI: {e}"))?;
        let version = String::from_utf8_lossy(&v.stdout).trim().to_string();
        if !v.status.success() || version.starts_with('1') || version.starts_with("v1") {
            return Err("Compose v2 is not installed (scripts/install-deps installs it)".into());
        }
        if !std::path::Path::new("/bin/busybox").exists() {
            return Err("no /bin/busybox (apt-get install busybox-static)".into());
        }
        let ctx = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::copy("/bin/busybox", ctx.path().join("busybox")).map_err(|e| e.to_string())?;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        )
        .map_err(|e| e.to_string())?;
        let out = Command::new("docker")
            .args(["build", "-q", "-t", BASE])
            .arg(ctx.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "cannot build {BASE}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(why) => {
            assert!(!require(), "DOCKHAND_REQUIRE_DOCKER=1 but {why}");
            eprintln!("skipping BuildKit parity test: {why}");
            false
        }
    }
}

/// The matrix: one compose service per feature, and the files their contexts need.
fn workspace(t: Test) -> Test {
    let compose = format!(
        r#"services:
  cache:
    build: ./cache
  secret:
    build:
      context: ./secret
      secrets: [pip_token]
  multistage:
    build:
      context: ./multistage
      target: runtime
  argsdefaults:
    build:
      context: ./argsdefaults
      args:
        VERSION: "3"
  ignored:
    build: ./ignored
  inline:
    build:
      context: ./inline
      dockerfile_inline: |
        FROM {BASE}
        COPY hello.txt /srv/hello.txt
        ENV GREETING=hello
        CMD ["cat", "/srv/hello.txt"]
  labelled:
    build:
      context: ./labelled
      labels:
        team: homeiq
        tier: "2"
secrets:
  pip_token:
    file: ./pip_token.txt
"#
    );
    t.file("compose.yml", &compose)
        .file("pip_token.txt", "s3cr3t-token\n")
        .file("cache/requirements.txt", "sqlalchemy==2.0.46\n")
        .file(
            "cache/Dockerfile",
            &format!(
                "FROM {BASE}\nCOPY requirements.txt /app/requirements.txt\n\
                 RUN --mount=type=cache,target=/root/.cache/pip \\\n    \
                 cp /app/requirements.txt /root/.cache/pip/seen && cp /app/requirements.txt /app/installed.txt\n\
                 WORKDIR /app\nCMD [\"cat\", \"installed.txt\"]\n"
            ),
        )
        .file(
            "secret/Dockerfile",
            &format!(
                "FROM {BASE}\nRUN --mount=type=secret,id=pip_token \\\n    \
                 test -s /run/secrets/pip_token && wc -c < /run/secrets/pip_token > /token-length\n\
                 USER 1000:1000\n"
            ),
        )
        .file(
            "multistage/Dockerfile",
            &format!(
                "FROM {BASE} AS builder\nRUN mkdir -p /out && echo built > /out/app\n\
                 FROM {BASE} AS runtime\nCOPY --from=builder /out/app /usr/local/bin/app\n\
                 EXPOSE 8080/tcp 9090/udp\n\
                 HEALTHCHECK --interval=2s --timeout=1s --retries=3 CMD test -f /usr/local/bin/app\n\
                 ENTRYPOINT [\"sh\", \"-c\"]\nCMD [\"cat /usr/local/bin/app\"]\n\
                 FROM runtime AS debug\nRUN echo debug > /debug\n"
            ),
        )
        .file(
            "argsdefaults/Dockerfile",
            &format!(
                "ARG BASE_IMAGE={BASE}\nFROM ${{BASE_IMAGE}}\nARG VERSION=1\nARG FLAVOR=plain\n\
                 ENV VERSION=${{VERSION}} FLAVOR=${{FLAVOR}}\n\
                 RUN echo \"$VERSION-$FLAVOR\" > /version\nWORKDIR /srv/app\n"
            ),
        )
        .file(
            "ignored/Dockerfile",
            &format!("FROM {BASE}\nCOPY . /src/\n"),
        )
        .file(
            "ignored/.dockerignore",
            "# build noise\n*.log\nsecret/\n!secret/public.txt\n**/*.pyc\n/tmp\n",
        )
        .file("ignored/app.py", "print('hi')\n")
        .file("ignored/build.log", "noise\n")
        .file("ignored/sub/keep.log.txt", "kept\n")
        .file("ignored/sub/nested.log", "nested logs are kept: *.log is anchored\n")
        .file("ignored/sub/mod.pyc", "bytecode\n")
        .file("ignored/secret/key.pem", "PRIVATE\n")
        .file("ignored/secret/public.txt", "public\n")
        .file("ignored/tmp/scratch", "x\n")
        .file("inline/hello.txt", "hello from inline\n")
        .file(
            "labelled/Dockerfile",
            &format!("FROM {BASE}\nLABEL org.opencontainers.image.title=labelled\n"),
        )
}

const SERVICES: &[&str] = &[
    "cache",
    "secret",
    "multistage",
    "argsdefaults",
    "ignored",
    "inline",
    "labelled",
];
/// What the classic builder can build the same way.
const CLASSIC_OK: &[&str] = &[
    "multistage",
    "argsdefaults",
    "ignored",
    "inline",
    "labelled",
];

/// Removes the test's images on drop.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker")
                .args(["rmi", "-f"])
                .args(&self.0)
                .output();
        }
    }
}

/// The parts of an image's config that `docker compose build` decides.
fn config_of(image: &str) -> BTreeMap<&'static str, Value> {
    let out = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "no image {image}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v[0]["Config"];
    // No labels is `null` from one builder and `{}` from another: the same thing.
    let mut labels = match &c["Labels"] {
        Value::Null => Value::Object(Default::default()),
        l => l.clone(),
    };
    if let Some(m) = labels.as_object_mut() {
        // compose stamps its own project/service/version labels on what it builds.
        m.retain(|k, _| !k.starts_with("com.docker.compose."));
    }
    BTreeMap::from([
        ("Env", c["Env"].clone()),
        ("Cmd", c["Cmd"].clone()),
        ("Entrypoint", c["Entrypoint"].clone()),
        ("User", c["User"].clone()),
        ("WorkingDir", c["WorkingDir"].clone()),
        ("Labels", labels),
        ("Healthcheck", c["Healthcheck"].clone()),
        ("ExposedPorts", c["ExposedPorts"].clone()),
    ])
}

/// Every path of the image's file system with its type, mode, size and content digest.
fn tree_of(image: &str) -> BTreeMap<String, String> {
    let created = Command::new("docker")
        .args(["create", image, "true"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "cannot create a container of {image}"
    );
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let export = Command::new("docker")
        .args(["export", &id])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    assert!(export.status.success(), "cannot export {image}");
    let mut tree = BTreeMap::new();
    let mut ar = tar::Archive::new(&export.stdout[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header().clone();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        let link = h
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let digest = format!("{:x}", fnv(&body));
        tree.insert(
            path.trim_end_matches('/').to_string(),
            format!(
                "{:?} {:o} {} {digest} {link}",
                h.entry_type(),
                h.mode().unwrap_or(0),
                body.len()
            ),
        );
    }
    tree
}

/// FNV-1a: a content fingerprint (no crypto needed to compare two builds).
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100000001b3)
    })
}

/// Builds every service with compose itself (`<project>-<svc>`).
fn compose_build(dir: &std::path::Path, project: &str, services: &[&str]) {
    let out = Command::new("docker")
        .args(["compose", "-p", project, "-f", "compose.yml", "build"])
        .args(services)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker compose build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A script that builds `services` with `docker::build` as `<project>-dh-<svc>`.
fn dockhand_script(project: &str, services: &[&str]) -> String {
    services
        .iter()
        .map(|s| {
            format!(
                "let b = docker::build(#{{ compose_file: \"compose.yml\", service: \"{s}\", project: \"{project}\", tag: \"{project}-dh-{s}:latest\" }});\nprint(`built {s} with ${{b.builder}}`);\n"
            )
        })
        .collect()
}

fn assert_parity(project: &str, services: &[&str]) {
    for s in services {
        let ours = format!("{project}-dh-{s}:latest");
        let theirs = format!("{project}-{s}");
        assert_eq!(
            config_of(&ours),
            config_of(&theirs),
            "{s}: the image config differs from docker compose build's"
        );
        let (a, b) = (tree_of(&ours), tree_of(&theirs));
        let only_ours: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
        let only_theirs: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
        let differ: Vec<_> = a
            .iter()
            .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
            .map(|(k, v)| format!("{k}: {v} vs {}", b[k]))
            .collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty() && differ.is_empty(),
            "{s}: the file tree differs from docker compose build's\nonly ours: {only_ours:?}\nonly compose's: {only_theirs:?}\ndiffer: {differ:?}"
        );
    }
}

fn images_of(project: &str) -> Images {
    Images(
        SERVICES
            .iter()
            .flat_map(|s| [format!("{project}-{s}"), format!("{project}-dh-{s}:latest")])
            .collect(),
    )
}

#[test]
fn buildkit_builds_match_docker_compose_build() {
    if !ready() {
        return;
    }
    let project = format!("dhbk{}", std::process::id());
    let _images = images_of(&project);
    let r = workspace(Test::new())
        .script(&dockhand_script(&project, SERVICES))
        .stderr_has("built cache with buildkit")
        .stderr_has("built secret with buildkit")
        .run();
    compose_build(r.dir.path(), &project, SERVICES);
    assert_parity(&project, SERVICES);
    // The features really took effect (parity alone would pass if both ignored them).
    let tree = tree_of(&format!("{project}-dh-ignored:latest"));
    assert!(tree.contains_key("src/app.py") && tree.contains_key("src/secret/public.txt"));
    assert!(tree.contains_key("src/sub/nested.log"));
    for gone in [
        "src/build.log",
        "src/secret/key.pem",
        "src/sub/mod.pyc",
        "src/tmp/scratch",
    ] {
        assert!(!tree.contains_key(gone), "{gone} should be .dockerignored");
    }
    let ms = tree_of(&format!("{project}-dh-multistage:latest"));
    assert!(ms.contains_key("usr/local/bin/app") && !ms.contains_key("debug"));
    let secret = tree_of(&format!("{project}-dh-secret:latest"));
    assert!(secret.contains_key("token-length") && !secret.contains_key("run/secrets/pip_token"));
    let env = &config_of(&format!("{project}-dh-argsdefaults:latest"))["Env"];
    assert!(
        env.to_string().contains("VERSION=3") && env.to_string().contains("FLAVOR=plain"),
        "{env}"
    );
    // The build log has BuildKit's own steps.
    let log =
        std::fs::read_to_string(r.path(&format!("logs/builds/{project}-dh-cache_latest.log")))
            .unwrap();
    assert!(log.contains("--mount=type=cache"), "{log}");
}

#[test]
fn classic_fallback_matches_what_it_can_and_refuses_the_rest() {
    if !ready() {
        return;
    }
    let project = format!("dhcl{}", std::process::id());
    let _images = images_of(&project);
    let r = workspace(Test::new())
        .env("DOCKHAND_BUILDER", "classic")
        .script(&dockhand_script(&project, CLASSIC_OK))
        .stderr_has("built inline with classic")
        .run();
    compose_build(r.dir.path(), &project, CLASSIC_OK);
    assert_parity(&project, CLASSIC_OK);

    // What only BuildKit can do is refused by name, before anything is built.
    let t = workspace(Test::new())
        .env("DOCKHAND_BUILDER", "classic")
        .script(&dockhand_script(&project, &["secret"]))
        .status(1)
        .stderr_has("secrets need BuildKit")
        .stderr_has("[build config invalid]")
        .run();
    drop(t);
    // The same refusal, caught: its kind is data ("config": not worth a retry).
    let caught = format!(
        "let k = ();\ntry {{ {} }} catch (e) {{ k = docker::failure_kind(e); }}\nprint(`kind=${{k}}`);\n",
        dockhand_script(&project, &["secret"])
    );
    let t = workspace(Test::new())
        .env("DOCKHAND_BUILDER", "classic")
        .script(&caught)
        .stderr_has("kind=config")
        .run();
    drop(t);
    // A cache mount is the engine's refusal, with the fix named.
    workspace(Test::new())
        .env("DOCKHAND_BUILDER", "classic")
        .script(&dockhand_script(&project, &["cache"]))
        .status(1)
        .stderr_has("requires BuildKit")
        .stderr_has("install Compose v2")
        .run();
}

#[test]
fn unknown_build_keys_are_named_with_their_line_before_anything_runs() {
    // No engine needed: the compose file is checked first.
    Test::new()
        .file(
            "compose.yml",
            "services:\n  app:\n    build:\n      context: .\n      dockerfle: Other\n",
        )
        .script(
            "docker::build(#{ compose_file: \"compose.yml\", service: \"app\", tag: \"x:1\" });",
        )
        .status(2)
        .stderr_has("compose.yml:5: services.app.build.dockerfle: unknown key")
        .run();
    Test::new()
        .file("compose.yml", "services:\n  app:\n    image: busybox\n")
        .script("docker::build(#{ compose_file: \"compose.yml\", service: \"app\" });")
        .status(2)
        .stderr_has("has no build: section")
        .run();
    Test::new()
        .file("compose.yml", "services:\n  app:\n    build: .\n")
        .script(
            "docker::build(#{ compose_file: \"compose.yml\", service: \"app\", context: \".\" });",
        )
        .status(2)
        .stderr_has("option 'context' cannot be combined with 'service'")
        .run();
}

/// `timeout` stops a build that hangs (the rebuild passes `build_timeout_s`), and the builder
/// goes with it: nothing is left running, nothing is tagged.
#[test]
fn a_build_past_its_timeout_is_stopped() {
    if !ready() {
        return;
    }
    let tag = format!("dhbk-slow{}:latest", std::process::id());
    let _images = Images(vec![tag.clone()]);
    let started = std::time::Instant::now();
    Test::new()
        .file(
            "slow/Dockerfile",
            &format!(
                "FROM {BASE}\nRUN echo slow-step-{} && sleep 60\n",
                std::process::id()
            ),
        )
        .script(&format!(
            "docker::build(#{{ context: \"slow\", tag: \"{tag}\", timeout: \"3s\" }});"
        ))
        .status(1)
        .stderr_has("did not finish within")
        .stderr_has("[engine error]")
        .run();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(45),
        "the build was not stopped at its timeout"
    );
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines()
            .any(|l| l.contains("compose") && l.contains("dockhand-build") && l.contains("build")),
        "a compose build is still running:\n{ps}"
    );
    let exists = Command::new("docker")
        .args(["image", "inspect", &tag])
        .output()
        .unwrap();
    assert!(!exists.status.success(), "a stopped build tagged {tag}");
}

/// `batch: true`: builds asked for together go to BuildKit as one solve, and a solve that
/// fails is built again service by service, so the good services still get their images and
/// the bad one its own step failure.
#[test]
fn batched_builds_share_a_solve_and_a_failure_stays_with_its_service() {
    if !ready() {
        return;
    }
    let project = format!("dhbkbatch{}", std::process::id());
    let tag = |s: &str| format!("{project}-dh-{s}:latest");
    let _images = Images(["a", "b", "c", "bad"].iter().map(|s| tag(s)).collect());
    let mut compose = String::from("services:\n");
    for s in ["a", "b", "c", "bad"] {
        compose += &format!("  {s}:\n    build: ./{s}\n");
    }
    let file = |s: &str| {
        format!(
            "FROM {BASE}\nRUN echo {s}-{} > /built\n",
            std::process::id()
        )
    };
    let script = format!(
        r#"
fn build_one(s) {{
    let b = docker::build(#{{ compose_file: "compose.yml", service: s, project: "{project}",
        tag: `{project}-dh-${{s}}:latest`, batch: true, log: `logs/${{s}}.log` }});
    #{{ service: s, together: b.together, image: b.image_id }}
}}
let good = parallel(["a", "b", "c"], 3, Fn("build_one"));
for r in good {{ print(`ok ${{r.service}} together=${{r.together}} image=${{r.image}}`); }}
print(`max together=${{good.map(|r| r.together).reduce(|a, b| if a > b {{ a }} else {{ b }})}}`);
let mixed = parallel(["a", "bad"], 2, Fn("build_one"));
print(`a after a failed solve: ${{if is_error(mixed[0]) {{ mixed[0].message }} else {{ "built" }}}}`);
print(`bad: ${{mixed[1].message}}`);
"#
    );
    let out = Test::new()
        .file("compose.yml", &compose)
        .file("a/Dockerfile", &file("a"))
        .file("b/Dockerfile", &file("b"))
        .file("c/Dockerfile", &file("c"))
        .file(
            "bad/Dockerfile",
            &format!("FROM {BASE}\nRUN echo failing-on-purpose && exit 3\n"),
        )
        .script(&script)
        .stderr_has("ok a together=")
        .stderr_has("ok c together=")
        .stderr_has("max together=")
        .stderr_has("a after a failed solve: built")
        .stderr_has("[build step failed]")
        .run();
    let printed = out.stderr();
    let max: usize = printed
        .lines()
        .find_map(|l| l.strip_prefix("max together="))
        .and_then(|v| v.trim().parse().ok())
        .expect("max together line");
    assert!(
        max >= 2,
        "three builds asked for at once were never solved together:\n{printed}"
    );
    for s in ["a", "b", "c"] {
        let ok = Command::new("docker")
            .args(["image", "inspect", &tag(s)])
            .output()
            .unwrap();
        assert!(ok.status.success(), "no image {} after the batch", tag(s));
    }
    assert!(
        !printed.contains("image=()"),
        "a batched build returned no image id:\n{printed}"
    );
    let log = std::fs::read_to_string(out.path("logs/a.log")).unwrap_or_default();
    assert!(
        log.contains("builds in one BuildKit solve with")
            && log.contains(&format!("a-{}", std::process::id())),
        "a's build log lacks its solve or its step:\n{log}"
    );
}

/// A batched solve that hangs (here: a step that sleeps past the build's time-out) is
/// stopped, and what it printed until then is in the build log, with a line saying why it
/// ends there: the log is written as the solve prints, not when it ends.
#[test]
fn a_batched_solve_stopped_at_its_timeout_leaves_its_output_in_the_log() {
    if !ready() {
        return;
    }
    let project = format!("dhbkhang{}", std::process::id());
    let tag = |s: &str| format!("{project}-dh-{s}:latest");
    let _images = Images(["slow1", "slow2"].iter().map(|s| tag(s)).collect());
    let pid = std::process::id();
    let slow = format!("FROM {BASE}\nRUN echo hang-step-{pid} && sleep 120\n");
    // Two at once, so they go in one solve (a lone build is not batched).
    let out = Test::new()
        .file(
            "compose.yml",
            "services:\n  slow1:\n    build: ./slow1\n  slow2:\n    build: ./slow2\n",
        )
        .file("slow1/Dockerfile", &slow)
        .file("slow2/Dockerfile", &slow)
        .script(&format!(
            r#"
fn build_one(s) {{
    docker::build(#{{ compose_file: "compose.yml", service: s, project: "{project}",
        tag: `{project}-dh-${{s}}:latest`, batch: true, timeout: "15s", log: `logs/${{s}}.log` }});
}}
let r = parallel(["slow1", "slow2"], 2, Fn("build_one"));
for x in r {{ print(if is_error(x) {{ x.message }} else {{ "built" }}); }}
"#
        ))
        .stderr_has("did not finish within")
        .stderr_lacks("built\n")
        .run();
    let log = std::fs::read_to_string(out.path("logs/slow1.log")).unwrap_or_default();
    assert!(
        log.contains("builds in one BuildKit solve") && log.contains("building with"),
        "the stopped solve's output is not in the log:\n{log}"
    );
    assert!(
        log.contains(
            "stopped waiting for this build (time-out or cancel); its output until then is above"
        ),
        "the log does not say why the solve ends there:\n{log}"
    );
}
