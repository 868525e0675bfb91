//! The command line: playbook parameters and `--help`, every error class with its position,
//! snippet and exit code, `check`, `docs`, `completions`.

mod common;
use common::Test;

const PARAMS: &str = r#"//! Deploys things.
//!
//! Longer description of the playbook.
let p = params(#{
    batch_size: #{ type: "int", default_value: 5, help: "Concurrent builds" },
    category:   #{ type: "string", help: "Only this category", choices: ["integration", "ai-ml"] },
    no_cache:   #{ type: "bool", help: "Build without cache" },
    wait:       #{ type: "duration", default_value: "30s", help: "How long to wait" },
    services:   #{ type: "list", help: "Services to touch" },
    ratio:      0.5,
});
fs::write("ran.txt", "yes");
print(`batch_size=${p.batch_size} type=${type_of(p.batch_size)}`);
print(`category=${p.category}`);
print(`no_cache=${p.no_cache}`);
print(`wait=${p.wait}`);
print(`services=${p.services}`);
print(`ratio=${p.ratio}`);
"#;

#[test]
fn playbook_help_lists_declared_parameters() {
    let r = Test::new()
        .script(PARAMS)
        .args(&["--help"])
        .stdout_has("Deploys things.")
        .stdout_has("--batch-size <INT>")
        .stdout_has("Concurrent builds")
        .stdout_has("[default: 5]")
        .stdout_has("--category <TEXT>")
        .stdout_has("integration")
        .stdout_has("--no-cache")
        .stdout_has("--wait <DURATION>")
        .stdout_has("--services <A,B,..>")
        .stdout_has("--dry-run")
        .run();
    assert!(
        !r.path("ran.txt").exists(),
        "--help must not run the script"
    );
}

#[test]
fn defaults_apply_without_options() {
    Test::new()
        .script(PARAMS)
        .stderr_has("batch_size=5 type=i64")
        .stderr_has("category=\n")
        .stderr_has("no_cache=false")
        .stderr_has("wait=30000")
        .stderr_has("ratio=0.5")
        .run();
}

#[test]
fn options_set_typed_values() {
    Test::new()
        .script(PARAMS)
        .args(&[
            "--batch-size",
            "8",
            "--category",
            "ai-ml",
            "--no-cache",
            "--wait",
            "2m",
            "--services",
            "a, b,c",
            "--ratio",
            "1.5",
        ])
        .stderr_has("batch_size=8 type=i64")
        .stderr_has("category=ai-ml")
        .stderr_has("no_cache=true")
        .stderr_has("wait=120000")
        .stderr_has(r#"services=["a", "b", "c"]"#)
        .stderr_has("ratio=1.5")
        .run();
}

#[test]
fn unknown_option_is_an_error_before_anything_runs() {
    let r = Test::new()
        .script(PARAMS)
        .args(&["--bach-size", "8"])
        .status(2)
        .stderr_has("unexpected argument '--bach-size'")
        .stderr_has("--batch-size")
        .run();
    assert!(!r.path("ran.txt").exists());
}

#[test]
fn mistyped_values_are_errors_before_anything_runs() {
    for args in [
        &["--batch-size", "eight"][..],
        &["--wait", "5 parsecs"][..],
        &["--category", "nope"][..],
        &["--no-cache=maybe"][..],
    ] {
        let r = Test::new()
            .script(PARAMS)
            .args(args)
            .status(2)
            .stderr_has("invalid value")
            .run();
        assert!(!r.path("ran.txt").exists(), "ran with {args:?}");
    }
}

#[test]
fn required_parameter_must_be_given() {
    Test::new()
        .script(
            "let p = params(#{ target: #{ required: true, help: \"Where\" } }); print(p.target);",
        )
        .status(2)
        .stderr_has("--target")
        .run();
    Test::new()
        .script("let p = params(#{ target: #{ required: true } }); print(`to ${p.target}`);")
        .args(&["--target", "prod"])
        .stderr_has("to prod")
        .run();
}

#[test]
fn run_options_work_after_the_playbook_name() {
    let r = Test::new()
        .script(PARAMS)
        .args(&["--dry-run", "--json"])
        .run();
    let v = r.json();
    assert_eq!(v["mode"], "dry-run");
    assert_eq!(v["plan"][0]["action"], "fs::write");
    assert!(!r.path("ran.txt").exists(), "dry run wrote a file");
}

#[test]
fn a_non_literal_declaration_is_reported_at_its_position() {
    Test::new()
        .script("let d = 5;\nlet p = params(#{ n: #{ default_value: d } });\n")
        .status(2)
        .stderr_has("literal map of constants")
        .stderr_has("main.rhai:2:")
        .run();
}

#[test]
fn bad_declarations_name_the_problem() {
    Test::new()
        .script("let p = params(#{ n: #{ type: \"integer-ish\" } });")
        .status(2)
        .stderr_has("unknown type 'integer-ish'")
        .run();
    Test::new()
        .script("let p = params(#{ dry_run: #{ type: \"bool\" } });")
        .status(2)
        .stderr_has("clashes with dockhand's own --dry-run")
        .run();
    Test::new()
        .script("let p = params(#{ n: #{ type: \"int\", default_value: \"x\" } });")
        .status(2)
        .stderr_has("default does not fit its type")
        .run();
}

// ---- error classes: position, snippet, caret, exit code ----

/// Asserts the rustc-style rendering: `--> file:line:col`, the line, and a caret under col.
fn assert_snippet(stderr: &str, file: &str, line: usize, text: &str) {
    let arrow = format!("--> {file}:{line}:");
    let at = stderr
        .find(&arrow)
        .unwrap_or_else(|| panic!("no {arrow:?} in:\n{stderr}"));
    let col: usize = stderr[at + arrow.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap();
    let src_line = format!("{line} | {text}");
    let src_at = stderr
        .find(&src_line)
        .unwrap_or_else(|| panic!("no source line {src_line:?} in:\n{stderr}"));
    let caret_line = stderr[src_at..].lines().nth(1).expect("caret line");
    let bar = caret_line.find("| ").expect("caret gutter") + 2;
    let caret = caret_line.find('^').expect("caret");
    assert_eq!(
        caret - bar + 1,
        col,
        "caret under the wrong column:\n{stderr}"
    );
}

#[test]
fn syntax_error_shows_position_snippet_and_exits_2() {
    let r = Test::new()
        .script("let a = 1;\nlet b = (a + ;\n")
        .status(2)
        .stderr_has("error: syntax error")
        .run();
    assert_snippet(&r.stderr(), "main.rhai", 2, "let b = (a + ;");
}

#[test]
fn undefined_variable_is_a_compile_error() {
    let r = Test::new()
        .script("let count = 1;\nprint(cuont);\n")
        .status(2)
        .stderr_has("cuont")
        .run();
    assert_snippet(&r.stderr(), "main.rhai", 2, "print(cuont);");
}

#[test]
fn script_bug_at_runtime_exits_2_with_position() {
    let r = Test::new()
        .script("let x = 1;\nlet y = no_such_function(x);\n")
        .status(2)
        .stderr_has("function not found: no_such_function")
        .run();
    assert_snippet(&r.stderr(), "main.rhai", 2, "let y = no_such_function(x);");
}

#[test]
fn throw_is_a_playbook_failure_exit_1() {
    let r = Test::new()
        .script("print(\"step 1\");\n  throw \"data-api did not become healthy\";\n")
        .status(1)
        .stderr_has("error: data-api did not become healthy")
        .run();
    assert_snippet(
        &r.stderr(),
        "main.rhai",
        2,
        "  throw \"data-api did not become healthy\";",
    );
}

#[test]
fn failed_host_call_is_a_playbook_failure_exit_1() {
    let r = Test::new()
        .script("let cfg = fs::read(\"missing.yaml\");\n")
        .status(1)
        .stderr_has("cannot read 'missing.yaml'")
        .run();
    assert_snippet(
        &r.stderr(),
        "main.rhai",
        1,
        "let cfg = fs::read(\"missing.yaml\");",
    );
}

#[test]
fn host_call_misuse_is_a_script_error_exit_2() {
    Test::new()
        .script("time::sleep(\"5 fortnights-ish\");")
        .status(2)
        .stderr_has("invalid argument: '5 fortnights-ish' is not a duration")
        .stderr_has("--> main.rhai:1:")
        .run();
}

#[test]
fn error_inside_imported_module_shows_module_position_and_call_chain() {
    let r = Test::new()
        .file(
            "lib/util.rhai",
            "fn gate(svc) {\n    let r = svc.port * 2;\n    r + missing_fn()\n}\n",
        )
        .script("import \"lib/util\" as util;\n\nlet x = util::gate(#{ port: 1 });\n")
        .status(2)
        .stderr_has("function not found: missing_fn")
        .stderr_has("in call to function 'gate' at main.rhai:3:")
        .run();
    assert_snippet(&r.stderr(), "lib/util.rhai", 3, "    r + missing_fn()");
}

#[test]
fn syntax_error_in_imported_module_points_into_the_module() {
    let r = Test::new()
        .file("lib/bad.rhai", "fn ok() { 1 }\nfn broken( { 2 }\n")
        .script("import \"lib/bad\" as bad;\nprint(bad::ok());\n")
        .status(2)
        .stderr_has("syntax error")
        .stderr_has("importing module 'lib/bad.rhai' at main.rhai:1:")
        .run();
    assert_snippet(&r.stderr(), "lib/bad.rhai", 2, "fn broken( { 2 }");
}

#[test]
fn unknown_import_is_reported() {
    Test::new()
        .script("import \"lib/nope\" as nope;\n")
        .status(2)
        .stderr_has("module not found")
        .stderr_has("lib/nope")
        .stderr_has("--> main.rhai:1:")
        .run();
    Test::new()
        .script("import \"stdlib/nope\" as nope;\n")
        .status(2)
        .stderr_has("no standard module 'stdlib/nope'")
        .stderr_has("stdlib/fmt")
        .run();
}

#[test]
fn embedded_stdlib_imports_and_can_be_overridden() {
    Test::new()
        .script("import \"stdlib/fmt\" as fmt;\nprint(fmt::ms(2500));\n")
        .stderr_has("2.5s")
        .run();
    Test::new()
        .file("mystd/fmt.rhai", "fn ms(n) { \"overridden\" }\n")
        .script("import \"stdlib/fmt\" as fmt;\nprint(fmt::ms(2500));\n")
        .args(&["--stdlib", "mystd"])
        .stderr_has("overridden")
        .run();
}

#[test]
fn missing_playbook_file_is_a_usage_error() {
    Test::new()
        .args(&["run", "nope.rhai"])
        .status(2)
        .stderr_has("cannot read nope.rhai")
        .run();
}

#[test]
fn bad_cli_usage_exits_2() {
    Test::new()
        .args(&["frobnicate"])
        .status(2)
        .stderr_has("unrecognized subcommand")
        .run();
    Test::new()
        .args(&["--timeout", "soon", "check", "x"])
        .status(2)
        .stderr_has("not a duration")
        .run();
}

#[test]
fn json_errors_carry_location() {
    let r = Test::new()
        .script("let a = 1;\nthrow \"boom\";\n")
        .args(&["--json"])
        .status(1)
        .run();
    let v = r.json();
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["error"]["kind"], "failure");
    assert_eq!(v["error"]["message"], "boom");
    assert_eq!(v["error"]["location"]["line"], 2);
    assert_eq!(v["error"]["location"]["source"], "main.rhai");
}

// ---- checks ----

#[test]
fn failed_checks_exit_1_with_a_table() {
    let r = Test::new()
        .script("check(\"one is one\", 1 == 1);\ncheck(\"two is three\", 2 == 3, \"math broke\");\ncheck(\"closure throws\", || { throw \"unreachable\"; });\ncheck(\"map result\", || #{ ok: true, reason: \"fine\" });\n")
        .status(1)
        .stdout_has("2 passed, 2 failed")
        .stdout_has("math broke")
        .stdout_has("unreachable")
        .run();
    let out = r.stdout();
    assert!(out.contains("one is one") && out.contains("pass"), "{out}");
}

// ---- check / docs / completions ----

#[test]
fn check_compiles_without_running() {
    let r = Test::new()
        .file(
            "good.rhai",
            "import \"lib/util\" as u;\nfs::write(\"ran.txt\", \"x\");\n",
        )
        .file("lib/util.rhai", "fn f() { 1 }\n")
        .args(&["check", "good.rhai"])
        .stdout_has("ok: good.rhai")
        .run();
    assert!(!r.path("ran.txt").exists(), "check ran the script");
}

#[test]
fn check_reports_each_broken_file_and_exits_2() {
    Test::new()
        .file("good.rhai", "print(1);\n")
        .file("syntax.rhai", "let = ;\n")
        .file("import.rhai", "import \"lib/missing\" as m;\n")
        .file("nested.rhai", "import \"lib/bad\" as b;\n")
        .file("lib/bad.rhai", "fn f( {\n")
        .args(&[
            "check",
            "good.rhai",
            "syntax.rhai",
            "import.rhai",
            "nested.rhai",
        ])
        .status(2)
        .stdout_has("ok: good.rhai")
        .stderr_has("--> syntax.rhai:1:")
        .stderr_has("lib/missing")
        .stderr_has("--> lib/bad.rhai:1:")
        .stderr_has("3 of 4 file(s) failed to check")
        .run();
}

#[test]
fn shipped_playbooks_check_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files: Vec<String> = std::fs::read_dir(format!("{root}/playbooks"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".rhai"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut args = vec!["--root", root, "check"];
    args.extend(files.iter().map(String::as_str));
    Test::new().args(&args).run();
}

#[test]
fn docs_document_every_host_module() {
    let r = Test::new()
        .args(&["docs"])
        .stdout_has("# dockhand API reference")
        .stdout_has("## time")
        .stdout_has("### `time::wait_until`")
        .stdout_has("### `http::probe`")
        .stdout_has("### `fs::write`")
        .stdout_has("### `state::open`")
        .stdout_has("### `parallel`")
        .stdout_has("### `check`")
        .stdout_has("### `params`")
        .run();
    // Every function carries its doc comment.
    let md = r.stdout();
    let undocumented: Vec<&str> = md
        .split("\n### ")
        .skip(1)
        .filter(|sec| sec.lines().filter(|l| !l.trim().is_empty()).count() < 3)
        .map(|sec| sec.lines().next().unwrap_or(""))
        .collect();
    assert!(
        undocumented.is_empty(),
        "functions without docs: {undocumented:?}"
    );
}

#[test]
fn completions_are_generated() {
    Test::new()
        .args(&["completions", "bash"])
        .stdout_has("_dockhand()")
        .run();
}

/// Parses `.d.rhai` files into `module::function` names (`get x` for property getters).
fn definitions_in(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let module = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("module ")
                    .map(|m| m.trim_end_matches(';').to_string())
            })
            .expect("module header");
        for l in text.lines().filter_map(|l| l.strip_prefix("fn ")) {
            let name = l.split('(').next().unwrap().trim().to_string();
            let module = if module == "static" {
                String::new()
            } else {
                module.clone()
            };
            out.insert(format!("{module}::{name}"));
        }
    }
    out
}

#[test]
fn definitions_match_a_fresh_engine() {
    let r = Test::new()
        .args(&["docs", "--definitions", "defs"])
        .stderr_has("wrote Rhai definitions")
        .run();
    let written = definitions_in(&r.path("defs"));
    assert!(written.contains("time::wait_until"), "{written:?}");
    assert!(written.contains("http::probe"), "{written:?}");
    assert!(written.contains("::parallel"), "{written:?}");
    // A fresh engine, built through the library API, has exactly these host functions.
    let rt = dockhand::Runtime::builder()
        .root(r.path("."))
        .build()
        .unwrap();
    let mut engine_fns = std::collections::BTreeSet::new();
    for (module, fns) in dockhand::docs::host_functions(rt.engine()).unwrap() {
        for f in fns {
            let name = match f.property() {
                Some(p) => format!("get {p}"),
                None => f.name.clone(),
            };
            engine_fns.insert(format!("{module}::{name}"));
        }
    }
    let missing: Vec<_> = engine_fns.difference(&written).collect();
    let extra: Vec<_> = written
        .difference(&engine_fns)
        .filter(|n| !n.ends_with("to_string") && !n.ends_with("to_debug"))
        .collect();
    assert!(
        missing.is_empty(),
        "engine functions missing from the definitions: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "definitions of functions the engine lacks: {extra:?}"
    );
    // And every definition compiles as a call site in a fresh engine's strict mode: the
    // module names it declares exist.
    let modules: std::collections::BTreeSet<&str> = written
        .iter()
        .filter_map(|n| n.split("::").next())
        .filter(|m| !m.is_empty())
        .collect();
    let probe: String = modules
        .iter()
        .map(|m| format!("if false {{ {m}::__probe(); }}\n"))
        .collect();
    rt.compile_str("probe", &probe)
        .expect("every definition module is known to a fresh engine");
}

// ---- safety limits ----

#[test]
fn operations_limit_stops_runaway_scripts() {
    Test::new()
        .script("let i = 0;\nloop { i += 1; }\n")
        .args(&["--max-operations", "10000"])
        .status(2)
        .stderr_has("too many operations")
        .stderr_has("--> main.rhai:2:")
        .run();
}

#[test]
fn call_depth_limit_stops_runaway_recursion_on_every_thread() {
    Test::new()
        .script("fn f(n) { f(n + 1) }\nf(0);\n")
        .status(2)
        .stderr_has("stack overflow")
        .run();
    Test::new()
        .script(
            "fn depth(n) { if n == 0 { 0 } else { 1 + depth(n - 1) } }\n\
             let r = parallel([50, 60, 100000], 3, |n| depth(n));\n\
             print(`${r[0]} ${r[1]} ${is_error(r[2])}`);\n",
        )
        .stderr_has("50 60 true")
        .run();
}

#[test]
fn logging_and_root_options_work_after_the_playbook_name() {
    // -q hides the script's prints; before, it was rejected as an unknown option.
    Test::new()
        .script("print(\"chatty\");\n")
        .args(&["-q"])
        .stderr_lacks("chatty")
        .run();
    Test::new()
        .script("print(\"chatty\");\n")
        .args(&["--quiet"])
        .stderr_lacks("chatty")
        .run();
    Test::new()
        .script("debug(\"detail\");\n")
        .args(&["-v"])
        .stderr_has("detail")
        .run();
    let r = Test::new()
        .file("ws/data.txt", "inside")
        .script("print(fs::read(\"data.txt\"));\n")
        .args(&["--root", "ws"])
        .stderr_has("inside")
        .run();
    drop(r);
}

#[test]
fn a_run_needs_nothing_from_the_environment() {
    // The Test builder's clean environment: no DOCKHAND_*, no DOCKER_*, no user HOME.
    Test::new()
        .clean_env()
        .no_docker()
        .script(
            "print(`sum=${1 + 1}`);\ntry { docker::ps(); } catch (e) { print(`docker: ${e}`); }\n",
        )
        .stderr_has("sum=2")
        .stderr_has("cannot reach Docker at unix:///nonexistent/docker.sock")
        .run();
}

#[test]
fn watch_refuses_trace_before_anything_runs() {
    let r = Test::new()
        .file("main.rhai", PARAMS)
        .args(&["watch", "main.rhai", "--trace", "t.json"])
        .status(2)
        .stderr_has("--trace writes one run's trace: use it with `dockhand run`, not `watch`")
        .run();
    assert!(!r.path("ran.txt").exists());
    assert!(!r.path("t.json").exists());
    let r = Test::new()
        .file("main.rhai", PARAMS)
        .args(&["watch", "main.rhai", "--otlp", "http://127.0.0.1:1"])
        .status(2)
        .stderr_has("--otlp exports one run's spans: use it with `dockhand run`, not `watch`")
        .run();
    assert!(!r.path("ran.txt").exists());
}
