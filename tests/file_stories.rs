//! The file stories (1, 2, 10) and the requirements parser behind them.
//!
//! * The parser on real-world requirements files (tests/fixtures/requirements/, sources in
//!   its README): byte-identical round trip, and the names, specifiers, markers, hashes and
//!   includes pip would see. Property tests: any string parses without panicking and
//!   renders back unchanged; generated requirement lines parse to their parts and an edit
//!   changes only the specifier.
//! * Golden tests: each playbook runs on a copy of the lab workspace (examples/homeiq and
//!   playbooks in a temp root, as tests/stories.rs does), its files are compared byte for
//!   byte with tests/fixtures/file_stories/, a second run changes nothing, and `--dry-run`
//!   writes nothing but prints the diff.
//! * Story 10's rebuild on a real lab with the two frontends (Docker; skipped with a reason
//!   when no engine is here, failing under `DOCKHAND_REQUIRE_DOCKER=1`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;
use dockhand::requirements::{Kind, ReqFile, Requirement, normalize};
use proptest::prelude::*;

fn src() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(src().join("tests/fixtures/requirements").join(name)).unwrap()
}

fn reqs(f: &ReqFile) -> Vec<&Requirement> {
    f.requirements().map(|(_, r)| r).collect()
}

fn by_name(f: &ReqFile) -> BTreeMap<String, Requirement> {
    reqs(f)
        .into_iter()
        .map(|r| (r.normalized().unwrap(), r.clone()))
        .collect()
}

fn invalid(f: &ReqFile) -> Vec<(usize, String)> {
    f.entries
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::Invalid { error } => Some((e.line, error.clone())),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- real-world files

#[test]
fn real_world_files_round_trip_byte_for_byte() {
    for name in [
        "django-tests-py3.txt",
        "flask-dev.txt",
        "warehouse-pip.txt",
        "home-assistant-requirements_test.txt",
    ] {
        let text = fixture(name);
        let f = ReqFile::parse(&text);
        assert_eq!(f.render(), text, "{name} does not round-trip");
        assert_eq!(invalid(&f), vec![], "{name} has lines the parser rejects");
    }
}

#[test]
fn django_specifiers_and_markers() {
    let f = ReqFile::parse(&fixture("django-tests-py3.txt"));
    let all = by_name(&f);
    assert_eq!(all.len(), 20);
    let pillow = &all["pillow"];
    assert_eq!(pillow.name.as_deref(), Some("Pillow"));
    assert_eq!(pillow.specifier, ">= 6.2.1");
    assert_eq!(pillow.specifiers[0].op, ">=");
    assert_eq!(pillow.specifiers[0].version, "6.2.1");
    assert_eq!(
        pillow.marker.as_deref(),
        Some("sys.platform != 'win32' or python_version < '3.13'")
    );
    assert_eq!(all["pyyaml"].specifier, "");
    assert_eq!(all["pyyaml"].marker, None);
    assert_eq!(
        all["geoip2"].marker.as_deref(),
        Some("python_version < '3.13'")
    );
    assert_eq!(
        all["colorama"].marker.as_deref(),
        Some("sys.platform == 'win32'")
    );
    let comments = f.entries.iter().filter(|e| e.kind == Kind::Comment).count();
    assert_eq!(comments, 1);
}

#[test]
fn flask_trailing_comments_are_kept_apart_from_the_pin() {
    let f = ReqFile::parse(&fixture("flask-dev.txt"));
    let all = by_name(&f);
    assert_eq!(all.len(), 49);
    assert_eq!(all["pallets-sphinx-themes"].specifier, "==1.2.3");
    let (e, r) = f
        .requirements()
        .find(|(_, r)| r.name.as_deref() == Some("packaging"))
        .unwrap();
    assert_eq!(r.specifier, "==20.4");
    assert_eq!(
        e.comment.as_deref(),
        Some("# via -r requirements/docs.in, pallets-sphinx-themes, pytest, sphinx, tox")
    );
    // The `-r` inside a comment is not an include.
    assert!(
        !f.entries
            .iter()
            .any(|e| matches!(e.kind, Kind::Include { .. }))
    );
}

#[test]
fn warehouse_hashes_span_continuation_lines() {
    let text = fixture("warehouse-pip.txt");
    let f = ReqFile::parse(&text);
    let all = by_name(&f);
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["pip", "setuptools", "wheel"]
    );
    let wheel = &all["wheel"];
    assert_eq!(wheel.specifier, "==0.37.0");
    assert_eq!(
        wheel.hashes,
        [
            "sha256:21014b2bd93c6d0034b6ba5d35e4eb284340e09d63c59aef6fc14b0f346146fd",
            "sha256:e2ef7239991699e3355d54f8e968a21bb940a1dbf34a4d226741e64462516fad"
        ]
    );
    let (e, _) = f
        .requirements()
        .find(|(_, r)| r.name.as_deref() == Some("pip"))
        .unwrap();
    assert_eq!(e.line, 13);
    assert_eq!(e.raw.lines().count(), 3);

    // An edit changes the version characters only: hashes, continuations and the
    // `# via` line after it stay.
    let mut f = f;
    assert_eq!(f.set_version("PIP", "==21.3"), Ok(1));
    let out = f.render();
    let changed: Vec<(&str, &str)> = text
        .lines()
        .zip(out.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed, [("pip==21.2.4 \\", "pip==21.3 \\")]);
    assert_eq!(text.lines().count(), out.lines().count());
    let again = ReqFile::parse(&out);
    assert_eq!(by_name(&again)["pip"].hashes, by_name(&f)["pip"].hashes);
}

#[test]
fn home_assistant_includes_are_reported() {
    let f = ReqFile::parse(&fixture("home-assistant-requirements_test.txt"));
    let includes: Vec<&Kind> = f
        .entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::Include { .. }))
        .map(|e| &e.kind)
        .collect();
    assert_eq!(
        includes,
        [
            &Kind::Include {
                constraint: true,
                target: "homeassistant/package_constraints.txt".into()
            },
            &Kind::Include {
                constraint: false,
                target: "requirements_test_pre_commit.txt".into()
            },
        ]
    );
    let all = by_name(&f);
    assert_eq!(all.len(), 45);
    assert_eq!(all["types-pyyaml"].name.as_deref(), Some("types-PyYAML"));
    assert_eq!(all["pytest-asyncio"].specifier, "==1.3.0");
}

// ---------------------------------------------------------------- property tests

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9._-]{0,10}[A-Za-z0-9]"
}

fn spec_strategy() -> impl Strategy<Value = String> {
    let clause = (
        prop::sample::select(vec!["==", ">=", "<=", "!=", "~=", "<", ">"]),
        "[0-9]{1,2}(\\.[0-9]{1,3}){0,3}",
    )
        .prop_map(|(op, v)| format!("{op}{v}"));
    prop::collection::vec(clause, 0..3).prop_map(|c| c.join(","))
}

fn marker_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "; python_version < \"3.11\"",
        " ; sys_platform != 'win32' and (os_name == \"posix\" or extra == 'db')",
        ";platform_machine in 'x86_64 aarch64'",
    ])
    .prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_and_round_trips(text in "(?s).{0,200}") {
        let f = ReqFile::parse(&text);
        prop_assert_eq!(f.render(), text);
    }

    #[test]
    fn requirement_like_text_round_trips(
        lines in prop::collection::vec(
            "[-a-zA-Z0-9_.\\[\\],;<>=!~@:/'\" #()\\\\]{0,40}(\r?\n)?", 0..8)
    ) {
        let text: String = lines.concat();
        let mut f = ReqFile::parse(&text);
        prop_assert_eq!(f.render(), text.clone());
        // Editing whatever the first named requirement is never panics, and touches only
        // its own entry.
        let first = f.requirements().find_map(|(_, r)| r.name.clone());
        if let Some(n) = first {
            let before = f.entries.clone();
            if f.set_version(&n, "==9.9").is_ok() {
                for (a, b) in before.iter().zip(&f.entries) {
                    let same_req = matches!(&a.kind, Kind::Requirement(r)
                        if r.normalized() == Some(normalize(&n)));
                    if !same_req { prop_assert_eq!(&a.raw, &b.raw); }
                }
            }
        }
    }

    #[test]
    fn structured_lines_parse_to_their_parts(
        name in name_strategy(),
        extras in prop::collection::vec("[a-z]{1,6}", 0..3),
        spec in spec_strategy(),
        marker in marker_strategy(),
        hashes in prop::collection::vec("[0-9a-f]{8}", 0..3),
        comment in prop::sample::select(vec!["", "  # pinned", " #x"]),
        continued in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let ex = if extras.is_empty() { String::new() } else { format!("[{}]", extras.join(",")) };
        let mut line = format!("{name}{ex}{spec}{marker}");
        for h in &hashes {
            line += if continued { " \\" } else { "" };
            if continued { line += nl; line += "    "; } else { line += " "; }
            line += &format!("--hash=sha256:{h}");
        }
        line += comment;
        line += nl;
        let text = format!("# head{nl}{line}tail==1.0{nl}");
        let mut f = ReqFile::parse(&text);
        prop_assert_eq!(f.render(), text.clone());
        let r = f.find(&name).cloned();
        prop_assert!(r.is_some(), "{:?} did not parse: {:?}", line, f.entries[1].kind);
        let r = r.unwrap();
        prop_assert_eq!(r.name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(&r.extras, &extras);
        prop_assert_eq!(&r.specifier, &spec);
        let m = marker.trim().trim_start_matches(';').trim();
        prop_assert_eq!(r.marker.as_deref(), if m.is_empty() { None } else { Some(m) });
        let want: Vec<String> = hashes.iter().map(|h| format!("sha256:{h}")).collect();
        prop_assert_eq!(&r.hashes, &want);
        prop_assert_eq!(f.entries[1].comment.as_deref(),
                        if comment.is_empty() { None } else { Some(comment.trim_start()) });

        // The edit: only the specifier changes; marker, hashes, comment and position stay.
        prop_assert_eq!(f.set_version(&name.to_uppercase(), ">=7.7,<8"), Ok(1));
        let out = f.render();
        let expected = text.replacen(&format!("{name}{ex}{spec}"), &format!("{name}{ex}>=7.7,<8"), 1);
        prop_assert_eq!(&out, &expected);
        let again = ReqFile::parse(&out);
        let r2 = again.find(&name).unwrap();
        prop_assert_eq!(&r2.marker, &r.marker);
        prop_assert_eq!(&r2.hashes, &r.hashes);
        prop_assert_eq!(again.entries.len(), f.entries.len());
    }
}

// ---------------------------------------------------------------- golden playbook runs

/// A temp workspace with the lab (`homeiq/`) and the playbooks.
struct Ws {
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// stdout and stderr (`print` goes to stderr when stdout carries `--json`).
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Ws {
    fn new() -> Ws {
        let dir = tempfile::tempdir().unwrap();
        common::copy_dir(&src().join("examples/homeiq"), &dir.path().join("homeiq"));
        common::copy_dir(&src().join("playbooks"), &dir.path().join("playbooks"));
        Ws { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn run(&self, playbook: &str, args: &[&str]) -> Out {
        let out = common::dockhand()
            .arg("run")
            .arg(format!("playbooks/{playbook}"))
            .arg("--root")
            .arg(self.dir.path())
            .args(["--dir", "homeiq"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let o = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_eq!(
            o.code, 0,
            "{playbook} {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            o.stdout, o.stderr
        );
        o
    }

    /// Every file of the workspace's lab, for "nothing changed" assertions.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.path("homeiq"), &mut out);
        out
    }
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(src().join("tests/fixtures/file_stories").join(name))
        .unwrap_or_else(|e| panic!("golden {name}: {e}"))
}

const BASE: &str = "homeiq/requirements-base.txt";

#[test]
fn story_01_matches_golden_is_idempotent_and_dry_run_writes_nothing() {
    let ws = Ws::new();
    let original = ws.read(BASE);
    assert!(original.contains("SQLAlchemy[asyncio]==2.0.45"));

    let before = ws.snapshot();
    let dry = ws.run(
        "story-01-requirements-base.rhai",
        &["--date", "2026-02-04", "--dry-run"],
    );
    assert_eq!(ws.snapshot(), before, "--dry-run changed files");
    let all = dry.all();
    for line in [
        "--- a/homeiq/requirements-base.txt",
        "-SQLAlchemy[asyncio]==2.0.45  # async engine; 2.0.x only (see ADR-012)",
        "+SQLAlchemy[asyncio]==2.0.46  # async engine; 2.0.x only (see ADR-012)",
        "+# Phase 1 (2026-02-04): aiosqlite ==0.21.0 -> ==0.22.1",
    ] {
        assert!(
            all.lines().any(|l| l == line),
            "dry run lacks {line:?}:\n{all}"
        );
    }

    ws.run("story-01-requirements-base.rhai", &["--date", "2026-02-04"]);
    let updated = ws.read(BASE);
    assert_eq!(updated, golden("requirements-base.txt"));
    // Only the two pins changed and two notes appeared: everything else is the original.
    let removed: Vec<&str> = original
        .lines()
        .filter(|l| !updated.lines().any(|u| u == *l))
        .collect();
    assert_eq!(
        removed,
        [
            "SQLAlchemy[asyncio]==2.0.45  # async engine; 2.0.x only (see ADR-012)",
            "aiosqlite==0.21.0"
        ]
    );
    assert_eq!(updated.lines().count(), original.lines().count() + 2);

    // Idempotent, even on another day: nothing changes and it says so.
    let before = ws.snapshot();
    let again = ws.run("story-01-requirements-base.rhai", &["--date", "2026-02-05"]);
    assert_eq!(ws.snapshot(), before);
    assert!(
        again.all().contains("already at the Phase 1 versions"),
        "second run did not say it changed nothing"
    );
}

#[test]
fn story_02_matrix_matches_golden_and_is_stable() {
    let ws = Ws::new();
    ws.run("story-01-requirements-base.rhai", &["--date", "2026-02-04"]);
    let before = ws.snapshot();
    ws.run("story-02-compatibility-matrix.rhai", &["--dry-run"]);
    assert_eq!(ws.snapshot(), before, "--dry-run wrote the matrix");

    ws.run("story-02-compatibility-matrix.rhai", &[]);
    let md = "homeiq/docs/planning/phase1-compatibility-matrix.md";
    let json = "homeiq/docs/planning/phase1-compatibility-matrix.json";
    assert_eq!(ws.read(md), golden("phase1-compatibility-matrix.md"));
    assert_eq!(ws.read(json), golden("phase1-compatibility-matrix.json"));

    // What the matrix says, independently of the golden's bytes.
    let v: serde_json::Value = serde_json::from_str(&ws.read(json)).unwrap();
    let svc = |n: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == n)
            .unwrap_or_else(|| panic!("{n} not in the matrix"))
            .clone()
    };
    assert_eq!(v["services"].as_array().unwrap().len(), 8);
    assert_eq!(svc("data-api")["extends_base"], true);
    assert_eq!(svc("data-api")["packages"]["SQLAlchemy"]["source"], "base");
    assert_eq!(svc("data-api")["strategy"], "rebuild");
    assert_eq!(svc("device-database-client")["extends_base"], false);
    assert_eq!(
        svc("device-database-client")["packages"]["aiosqlite"]["specifier"],
        "==0.21.0"
    );
    assert_eq!(svc("device-database-client")["strategy"], "update-own-pins");
    let conflicts = svc("ai-training-service")["conflicts"].clone();
    assert_eq!(conflicts.as_array().unwrap().len(), 1, "{conflicts}");
    assert!(conflicts[0].as_str().unwrap().contains("aiosqlite==0.20.0"));
    assert_eq!(
        svc("admin-api")["packages"]["SQLAlchemy"]["phase1_ok"],
        true
    );

    // Stable: a second run writes the same bytes.
    let first = ws.snapshot();
    ws.run("story-02-compatibility-matrix.rhai", &[]);
    assert_eq!(ws.snapshot(), first);

    // Paths are options.
    ws.run(
        "story-02-compatibility-matrix.rhai",
        &["--markdown", "out/m.md", "--json-out", "out/m.json"],
    );
    assert_eq!(
        ws.read("out/m.md"),
        golden("phase1-compatibility-matrix.md")
    );
}

#[test]
fn story_10_package_json_matches_golden_and_is_idempotent() {
    let ws = Ws::new();
    let files = [
        (
            "homeiq/services/health-dashboard/package.json",
            "health-dashboard.package.json",
        ),
        (
            "homeiq/services/ai-automation-ui/package.json",
            "ai-automation-ui.package.json",
        ),
    ];
    let before = ws.snapshot();
    let dry = ws.run("story-10-frontends.rhai", &["--no-rebuild", "--dry-run"]);
    assert_eq!(ws.snapshot(), before, "--dry-run changed files");
    let all = dry.all();
    assert!(all.contains("-    \"vitest\": \"^2.1.8\""), "{all}");
    assert!(all.contains("+    \"vitest\": \"^4.0.17\""), "{all}");
    assert!(all.contains("+        \"msw\": \"2.12.8\","), "{all}");

    ws.run("story-10-frontends.rhai", &["--no-rebuild"]);
    for (path, g) in files {
        let text = ws.read(path);
        assert_eq!(text, golden(g), "{path}");
        // Same key order and line count as before: only values changed.
        let orig = String::from_utf8(before[&ws.path(path)].clone()).unwrap();
        assert_eq!(text.lines().count(), orig.lines().count());
        let keys = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.split(':').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(keys(&text), keys(&orig));
    }

    let before = ws.snapshot();
    let again = ws.run("story-10-frontends.rhai", &["--no-rebuild"]);
    assert_eq!(ws.snapshot(), before);
    assert_eq!(
        again
            .all()
            .matches("already at the story 10 versions; nothing to change")
            .count(),
        2
    );
}

// ---------------------------------------------------------------- story 10 on a real lab

#[test]
fn story_10_rebuilds_both_frontends_and_they_load_within_3s() {
    if !common::docker_lab_ready("story 10 lab test") {
        return;
    }
    let ws = Ws::new();
    let project = format!("files{}", std::process::id());
    struct Down<'a>(&'a Ws, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = Command::new(BIN)
                .args(["lab", "--dir"])
                .arg(self.0.path("homeiq"))
                .args(["--project", self.1, "down"])
                .output();
        }
    }
    let _down = Down(&ws, &project);
    let up = Command::new(BIN)
        .args(["lab", "--dir"])
        .arg(ws.path("homeiq"))
        .args([
            "--project",
            &project,
            "up",
            "--wait",
            "3m",
            "--only",
            "health-dashboard,ai-automation-ui",
        ])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "lab up failed:\n{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let out = ws.run(
        "story-10-frontends.rhai",
        &[
            "--json",
            "--config",
            "homeiq/services.yaml",
            "--project",
            &project,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    assert_eq!(v["exit_code"], 0, "{}", out.stderr);
    let rebuilt = v["value"]["rebuilt"].as_array().unwrap();
    assert_eq!(rebuilt.len(), 2);
    for r in rebuilt {
        assert_eq!(r["result"], "completed", "{r}");
    }
    let loads = v["value"]["loads"].as_array().unwrap();
    eprintln!("story 10 load times: {}", v["value"]["loads"]);
    assert_eq!(loads.len(), 2);
    for l in loads {
        assert_eq!(l["ok"], true, "{l}");
        let ms = l["ms"].as_i64().unwrap();
        assert!((0..3000).contains(&ms), "{l}");
    }
    assert_eq!(v["value"]["status"], "completed");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{}",
        v["checks"]
    );
    assert_eq!(
        ws.read("homeiq/services/health-dashboard/package.json"),
        golden("health-dashboard.package.json")
    );
}

// ---------------------------------------------------------------- reqs:: from a script

#[test]
fn reqs_read_follows_includes_and_reports_what_it_cannot() {
    let r = common::Test::new()
        .file(
            "base.txt",
            "SQLAlchemy==2.0.45\n-c constraints/pins.txt\n",
        )
        .file("constraints/pins.txt", "aiosqlite<0.23  # cap\n")
        .file(
            "svc/requirements.txt",
            "-r ../base.txt\n-r missing.txt\n-r ../../outside.txt\n-r https://example.invalid/r.txt\nhttpx[http2]>=0.28 ; python_version >= \"3.9\"\nbad line here\n",
        )
        .script(
            r#"
let r = reqs::read("svc/requirements.txt");
print(`REQS ${r.requirements.map(|x| x.file + ":" + x.normalized + x.specifier)}`);
print(`CONS ${r.constraints.map(|x| x.file + ":" + x.name + x.specifier)}`);
for i in r.includes { print(`INC ${i.kind} ${i.target} -> ${i.path} found=${i.found} err=${i.error != ()}`); }
print(`ERRS ${r.errors.map(|e| e.file + ":" + e.line)}`);
let t = fs::read("svc/requirements.txt");
let n = reqs::set_version(t, "HTTPX", ">=0.28.1");
print(`EDIT ${reqs::find(n, "httpx").specifier} ${reqs::find(n, "httpx").marker}`);
print(`SAME ${reqs::parse(t).len() == reqs::parse(n).len()}`);
print(`SAT ${reqs::satisfies("0.22.1", "<0.23")} ${reqs::satisfies("0.23.0", "<0.23")} ${reqs::satisfies("x", "<1") == ()}`);
"#,
        )
        .run();
    let out = format!("{}{}", r.stdout(), r.stderr());
    for want in [
        "REQS [\"base.txt:sqlalchemy==2.0.45\", \"svc/requirements.txt:httpx>=0.28\"]",
        "CONS [\"constraints/pins.txt:aiosqlite<0.23\"]",
        "INC include ../base.txt -> base.txt found=true err=false",
        "INC constraint constraints/pins.txt -> constraints/pins.txt found=true err=false",
        "INC include missing.txt -> svc/missing.txt found=false err=true",
        "INC include ../../outside.txt -> ../outside.txt found=false err=true",
        "found=false err=true",
        "ERRS [\"svc/requirements.txt:6\"]",
        "EDIT >=0.28.1 python_version >= \"3.9\"",
        "SAME true",
        "SAT true false true",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        out.contains("INC include https://example.invalid/r.txt"),
        "{out}"
    );
}
