#!/usr/bin/env python3
"""Writes the bad-input corpus that tests/corpus.rs runs through the real binary.

Run from the repository root: `python3 tests/corpus/generate.py`. The files it writes are
committed, so every input is reviewable; rerunning it rewrites them identically.

Layout (one input per file):
  playbooks/*.rhai   run as `dockhand run --timeout 5s FILE` in a fresh workspace
  params/*.rhai      run with the arguments on the file's first line (`// args: ...`)
  configs/*.yaml     copied to services.yaml and loaded with config::load
  journals/*.json    copied to .dockhand/state/j.json, then state::load / state::open
  influx/*.body      served as the InfluxDB answer to v1, v2 and v3 queries (loopback)
  repl/*.txt         piped into `dockhand repl --no-history`

A first line `// expect: 0|1|2` (or `# expect:` in YAML and REPL files) narrows or widens
the accepted exit codes; the default is 1|2 (a clear failure) except for the REPL (0: the
session survives every bad line).
"""
import os
import shutil

ROOT = os.path.dirname(os.path.abspath(__file__))
SECRET_ENV = "CORPUS_TOKEN"   # tests/corpus.rs sets it to a known secret


def write(cat, name, text, mode="w"):
    d = os.path.join(ROOT, cat)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), mode) as f:
        f.write(text)


def reset():
    for cat in ["playbooks", "params", "configs", "journals", "influx", "repl"]:
        shutil.rmtree(os.path.join(ROOT, cat), ignore_errors=True)


# ---------------------------------------------------------------- playbooks
PLAYBOOKS = {
    # syntax
    "unterminated_string": 'let x = "abc;\n',
    "unterminated_block_comment": "print(1);\n/* never closed\nprint(2);\n",
    "unterminated_backtick": "let x = `abc ${1 + ;\n",
    "unbalanced_braces": "fn f() { if true { print(1); }\n",
    "stray_close": "}}}}\n",
    "only_operators": "+ - * / % ** == != <= >= && || !\n",
    "keyword_soup": "let let fn fn if else while loop return throw try catch import export as\n",
    "int_overflow": "let x = 99999999999999999999999999;\n",
    "int_overflow_negative": "let x = -99999999999999999999999999;\n",
    "hex_overflow": "let x = 0xFFFFFFFFFFFFFFFFFFFFFFFF;\n",
    "bad_float": "let x = 1.2.3.4;\n",
    "bad_escape": 'let s = "\\q\\u{zzzz}";\n',
    "undefined_variable": "print(nope);\n",
    "undefined_function": "nope();\n",
    "undefined_module_fn": "fs::nope();\n",
    "wrong_arity": "fs::read();\n",
    "wrong_types": 'fs::read(42);\n',
    "null_byte": "let x = 1;\x00\nprint(x);\n",
    "control_chars": "let x = \x01\x02\x03;\n",
    "bidi_override": 'let x = "\u202eevil";\nthrow x;\n',
    "deep_parens": "let x = " + "(" * 5000 + "1" + ")" * 5000 + ";\n",
    "deep_arrays": "let x = " + "[" * 3000 + "]" * 3000 + ";\n",
    "deep_maps": "let x = " + "#{a:" * 2000 + "1" + "}" * 2000 + ";\n",
    "deep_blocks": "{" * 3000 + "}" * 3000 + "\n",
    "deep_if": "if true { " * 1500 + "1" + " }" * 1500 + "\n",
    "long_chain": "let x = 1" + " + 1" * 30000 + ";\n",
    "long_line": "let x = \"" + "a" * 70000 + "\";\n",
    "many_lines": "1;\n" * 66000,
    "huge_map_literal": "let m = #{\n" + ",\n".join(f"k{i}: {i}" for i in range(20000)) + "\n};\n",
    "dup_map_keys": "let m = #{a: 1, a: 2};\n",
    "many_map_literals": "let a = [" + ",\n".join(["#{" + ",\n".join(f"k{i}: {i}" for i in range(4000)) + "}"] * 6) + "];\n",
    "bom_then_error": "\ufeffthrow \"after bom\";\n",
    "double_bom": "\ufeff\ufeffprint(1);\n",
    "crlf_error": "let x = 1;\r\nthrow \"crlf\";\r\n",
    "lone_cr": "let x = 1;\rthrow \"cr\";\r",
    "empty_throw": "throw;\n",
    "throw_map": "throw #{a: 1};\n",
    "throw_huge": 'throw "x" * 10;\n',
    # runaway
    "infinite_loop": "loop {}\n",
    "infinite_while": "let i = 0; while true { i += 1; }\n",
    "recursion": "fn f(x) { f(x + 1) }\nf(0);\n",
    "mutual_recursion": "fn a(x) { b(x) }\nfn b(x) { a(x) }\na(1);\n",
    "closure_recursion": "let f = 0; f = |x| f.call(x); f.call(1);\n",
    "string_bomb": 'let s = "x"; loop { s += s; }\n',
    "array_bomb": "let a = [1]; loop { a += a; }\n",
    "string_repeat": 'let s = "abc"; let t = s.pad(100000000000, "x");\n',
    "range_bomb": "let a = []; for i in 0..100000000000 { a.push(i); }\n",
    "sleep_forever": "time::sleep(31536000000);\n",
    "catch_terminate": "loop { try { loop {} } catch {} }\n",
    # numbers
    "div_zero": "let x = 1 / 0;\n",
    "mod_zero": "let x = 1 % 0;\n",
    "int_mul_overflow": "let x = 9223372036854775807 * 2;\n",
    "int_add_overflow": "let x = 9223372036854775807 + 1;\n",
    "neg_min": "let x = -9223372036854775807 - 1; let y = -x;\n",
    "pow_overflow": "let x = 2 ** 100;\n",
    "shift_huge": "let x = 1 << 1000;\n",
    "shift_negative": "let x = 1 << -1;\n",
    "float_to_int_nan": "let x = (0.0/0.0).to_int();\n",
    "float_to_int_inf": "let x = (1.0/0.0).to_int();\n",
    "parse_int_huge": 'let x = parse_int("99999999999999999999999");\nthrow `${x}`;\n',
    # time
    "sleep_huge_float": "time::sleep(1e300);\n",
    "sleep_inf": "time::sleep(1.0/0.0);\n",
    "sleep_nan": "time::sleep(0.0/0.0);\n",
    "sleep_negative": "time::sleep(-1);\n",
    "sleep_negative_float": "time::sleep(-0.5);\n",
    "sleep_max_int": "time::sleep(9223372036854775807);\n",
    "sleep_bad_text": 'time::sleep("soon");\n',
    "sleep_huge_text": 'time::sleep("999999999999999999999y");\n',
    "sleep_unit_soup": 'time::sleep("1h-5m");\n',
    "timeout_huge": "time::timeout(1e300, || 1);\n",
    "timeout_negative": "time::timeout(-5, || 1);\n",
    "retry_factor_huge": "time::retry(#{ attempts: 3, backoff: 1, factor: 1e308 }, || throw \"x\");\n",
    "retry_backoff_huge": "time::retry(#{ attempts: 3, backoff: 1e300 }, || throw \"x\");\n",
    "retry_attempts_huge": "time::retry(#{ attempts: 9223372036854775807, backoff: 0 }, || throw \"x\");\n",
    "retry_attempts_zero": "time::retry(#{ attempts: 0 }, || 1);\n",
    "wait_until_huge": "time::wait_until(#{ timeout: 1e300 }, || false);\n",
    "wait_until_interval_zero": "time::wait_until(#{ timeout: 200, interval: 0 }, || false);\n",
    "duration_map": "time::sleep(#{});\n",
    # fs sandbox
    "read_etc_passwd": 'print(fs::read("/etc/passwd"));\n',
    "read_dotdot": 'print(fs::read("../../../../etc/passwd"));\n',
    "read_dotdot_inner": 'print(fs::read("a/../../etc/passwd"));\n',
    "write_outside": 'fs::write("../sentinel/pwned", "x");\n',
    "write_absolute": 'fs::write("/tmp/dockhand-corpus-pwned", "x");\n',
    "write_through_symlink": 'fs::write("out/pwned", "x");\n',
    "append_through_symlink": 'fs::append("out/pwned", "x");\n',
    "mkdir_through_symlink": 'fs::mkdir("out/newdir");\n',
    "remove_through_symlink": 'fs::remove("out");\nfs::remove("out/keep");\nthrow "done";\n',
    "remove_root": 'fs::remove(".");\n',
    "remove_root_slash": 'fs::remove("/");\n',
    "read_proc": 'print(fs::read("/proc/self/environ"));\n',
    "read_dev_zero": 'print(fs::read("/dev/zero"));\n',
    "list_outside": 'print(fs::list("/"));\n',
    "glob_outside": 'print(fs::glob("/etc/*"));\n',
    "glob_dotdot": 'print(fs::glob("../*"));\n',
    "glob_loop": 'let n = fs::glob("**/*").len(); throw `found ${n}`;\n',
    "glob_loop_deep": 'let n = fs::glob("loop/loop/loop/**/x").len(); throw `found ${n}`;\n',
    "glob_bad_pattern": 'fs::glob("[");\n',
    "glob_empty": 'fs::glob("");\n',
    "empty_path": 'fs::read("");\n',
    "nul_in_path": 'fs::read("a\\0b");\n',
    "long_path": 'fs::read("' + "a/" * 3000 + 'x");\n',
    "long_name": 'fs::write("' + "n" * 5000 + '", "x");\n',
    "read_json_bad": 'fs::write("x.json", "{\\"a\\": [1, 2"); fs::read_json("x.json");\n',
    "read_yaml_bomb": 'fs::write("b.yaml", "a: &a [1,1,1,1,1,1,1,1,1]\\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\\n"); fs::read_yaml("b.yaml");\n',
    "parse_json_deep": 'fs::parse_json("' + "[" * 100000 + '");\n',
    "parse_yaml_deep": 'fs::parse_yaml("' + "[" * 100000 + '");\n',
    "to_json_cycle": "let m = #{}; fs::to_json(fs::parse_json(\"1e999\"));\n",
    # state
    "journal_bad_name": 'state::open("../../etc/passwd");\n',
    "journal_dot_name": 'state::open(".hidden");\n',
    "journal_empty_name": 'state::open("");\n',
    "journal_long_name": 'state::open("' + "j" * 300 + '");\n',
    "journal_non_map": 'let j = state::open("x"); j.set("a", 5);\n',
    "journal_load_name": 'state::load("/etc/passwd");\n',
    # imports
    "import_missing": 'import "nope" as n;\n',
    "import_outside": 'import "../../etc/passwd" as p;\n',
    "import_absolute": 'import "/etc/passwd" as p;\n',
    "import_stdlib_traversal": 'import "stdlib/../../etc/passwd" as p;\n',
    "import_stdlib_missing": 'import "stdlib/nope" as p;\n',
    "import_stdlib_empty": 'import "stdlib/" as p;\n',
    "import_self": 'import "main" as m;\n',
    "import_dev_zero": 'import "/dev/zero" as z;\n',
    "import_non_string": "import 42 as n;\n",
    "import_through_symlink": 'import "out/mod" as m;\n',
    # http (loopback only; the port is closed)
    "http_refused": 'http::get("http://127.0.0.1:9/");\n',
    "http_bad_url": 'http::get("not a url");\n',
    "http_bad_scheme": 'http::get("file:///etc/passwd");\n',
    "http_userinfo": 'http::get("http://admin:CorpusPw99@127.0.0.1:9/?token=CorpusPw99");\n',
    "http_bad_header": 'http::get("http://127.0.0.1:9/", #{ headers: #{ "bad\\nname": "v" } });\n',
    "http_bad_option": 'http::get("http://127.0.0.1:9/", #{ nope: 1 });\n',
    "http_timeout_huge": 'http::get("http://127.0.0.1:9/", #{ timeout: 1e300 });\n',
    "http_post_refused_port": 'http::post("http://127.0.0.1:9/", "x");\n',
    "http_safe_not_bool": 'http::post("http://127.0.0.1:9/", "x", #{ safe: "yes" });\n',
    # influx connect options
    "influx_short_token": 'influx::connect(#{ token_env: "CORPUS_SHORT" });\n',
    "influx_missing_token": 'influx::connect(#{ token_env: "CORPUS_UNSET_VAR" });\n',
    "influx_bad_url": 'influx::connect(#{ url: "ftp://u:CorpusPw99@x" });\n',
    "influx_bad_version": "influx::connect(#{ version: 9 });\n",
    "influx_bad_precision": 'influx::connect(#{ precision: "fortnight" });\n',
    "influx_print_conn": 'let c = influx::connect(#{ url: "http://u:CorpusPw99@127.0.0.1:9", token_env: "CORPUS_TOKEN" }); print(c); debug(c); throw `${c}`;\n',
    "influx_down": 'let c = influx::connect(#{ url: "http://127.0.0.1:9", token_env: "CORPUS_TOKEN" }); c.query("SELECT 1");\n',
    # docker (no engine: DOCKER_HOST points nowhere)
    "docker_ps_no_engine": "docker::ps();\n",
    "docker_restart_no_engine": 'docker::restart("x");\n',
    "docker_exec_no_allow": 'docker::exec("x", ["sh"]);\n',
    "docker_exec_empty": 'docker::exec("x", []);\n',
    "docker_logs_huge": 'docker::logs("x", 9223372036854775807);\n',
    # parallel
    "parallel_zero": "parallel([1, 2], 0, |x| x);\n",
    "parallel_negative": "parallel([1, 2], -5, |x| x);\n",
    "parallel_huge_limit": "let a = []; for i in 0..2000 { a.push(i); } let r = parallel(a, 9223372036854775807, |x| x); throw `${r.len()}`;\n",
    "parallel_nested": "let a = [1,2,3,4,5,6,7,8]; parallel(a, 100, |x| parallel(a, 100, |y| parallel(a, 100, |z| z))); throw \"done\";\n",
    "parallel_throwing": "let r = parallel([1, 2, 3], 2, |x| throw x); throw `${r.len()}`;\n",
    "parallel_loop": "parallel([1, 2], 2, |x| loop {});\n",
    "semaphore_zero": "semaphore(0);\n",
    # checks and params at runtime
    "check_bad": "check(42, 43);\n",
    "check_fail": 'check("x", false, "why");\n',
    "params_twice": "let p = params(#{ a: 1 }); let q = params(#{ b: 2 });\n",
    "params_non_literal": "let x = 1; let p = params(#{ a: x });\n",
    # config loading from a script
    "config_missing": 'config::load("nope.yaml");\n',
    "config_outside": 'config::load("/etc/passwd");\n',
    "config_dev_zero": 'config::load("/dev/zero");\n',
}

# ---------------------------------------------------------------- params
PARAMS = {
    "shadow_flag": ("", "let p = params(#{ repl_on_failure: false });\n"),
    "shadow_dry_run": ("", "let p = params(#{ dry_run: false });\n"),
    "shadow_timeout": ("", "let p = params(#{ timeout: 5 });\n"),
    "empty_name": ("", 'let p = params(#{ "": 1 });\n'),
    "empty_choices": ("", "let p = params(#{ env: #{ choices: [] } });\n"),
    "bad_type": ("", 'let p = params(#{ n: #{ type: "matrix" } });\n'),
    "bad_key": ("", "let p = params(#{ n: #{ defualt: 1 } });\n"),
    "default_mismatch": ("", 'let p = params(#{ n: #{ type: "int", default_value: "x" } });\n'),
    "name_with_dash": ("", 'let p = params(#{ "a-b": 1 });\n'),
    "name_underscore": ("", "let p = params(#{ _x: 1 });\n"),
    "name_unicode": ("", 'let p = params(#{ "ñ": 1 });\n'),
    "required_missing": ("", 'let p = params(#{ n: #{ type: "int", required: true } });\n'),
    "required_not_bool": ("", 'let p = params(#{ n: #{ required: "yes" } });\n'),
    "choices_not_array": ("", 'let p = params(#{ n: #{ choices: "a,b" } });\n'),
    "int_not_int": ("--n abc", "let p = params(#{ n: 1 });\n"),
    "int_overflow": ("--n 99999999999999999999999", "let p = params(#{ n: 1 });\n"),
    "float_nan": ("--f NaN", "let p = params(#{ f: 0.5 });\nif p.f != p.f { throw \"nan\"; }\n"),
    "float_inf": ("--f inf", "let p = params(#{ f: 0.5 });\nthrow `${p.f}`;\n"),
    "duration_bad": ("--d soon", 'let p = params(#{ d: #{ type: "duration", default_value: "1s" } });\n'),
    "duration_huge": ("--d 99999999999h", 'let p = params(#{ d: #{ type: "duration", default_value: "1s" } });\n'),
    "bool_bad": ("--b=maybe", "let p = params(#{ b: false });\n"),
    "choice_bad": ("--env prod", 'let p = params(#{ env: #{ choices: ["dev", "test"] } });\n'),
    "unknown_option": ("--nope 1", "let p = params(#{ n: 1 });\n"),
    "missing_value": ("--n", "let p = params(#{ n: 1 });\n"),
    "repeated_scalar": ("--n 1 --n 2", "let p = params(#{ n: 1 });\n"),
    "negative_ok_then_throw": ("--n -5", "let p = params(#{ n: 1 });\nthrow `n=${p.n}`;\n"),
    "negative_float_then_throw": ("--f -2.5", "let p = params(#{ f: 1.0 });\nthrow `f=${p.f}`;\n"),
    "list_huge": ("--l " + ",".join(str(i) for i in range(5000)), 'let p = params(#{ l: #{ type: "list" } });\nthrow `${p.l.len()}`;\n'),
    "value_nul": ("--s a\\0b", "let p = params(#{ s: \"x\" });\nthrow p.s;\n"),
    "many_params": ("", "let p = params(#{ " + ", ".join(f"p{i}: {i}" for i in range(600)) + " });\nthrow \"ok\";\n"),
    "params_map_not_literal": ("", "let m = #{}; let p = params(m);\n"),
    "params_no_args": ("", "let p = params();\n"),
    "params_two_args": ("", "let p = params(#{}, #{});\n"),
    "params_nested": ("", "fn f() { params(#{ a: 1 }) }\nlet p = f();\n"),
    "timeout_flag_huge": ("--timeout 99999999999h", "throw 1;\n"),
    "timeout_flag_bad": ("--timeout never", "throw 1;\n"),
    "root_is_file": ("--root main.rhai", "throw 1;\n"),
    "stdlib_missing": ("--stdlib /nonexistent/dir", "throw 1;\n"),
    "max_operations_small": ("--max-operations 10", "let i = 0; while i < 1000 { i += 1; }\n"),
    "log_format_bad": ("--log-format xml", "throw 1;\n"),
}

# ---------------------------------------------------------------- configs
GOOD = """project: lab
categories:
  web:
    on_failure: stop
services:
  a:
    category: web
    port: 8001
  b:
    category: web
    port: 8002
"""
CONFIGS = {
    "dup_service": GOOD + "  a:\n    category: web\n    port: 8003\n",
    "dup_category": GOOD.replace("categories:\n", "categories:\n  web:\n    risk: high\n"),
    "dup_top_key": GOOD + "project: other\n",
    "dup_in_service": GOOD.replace("    port: 8002\n", "    port: 8002\n    port: 8004\n"),
    "dup_flow": "project: lab\ncategories: {web: {}, web: {}}\nservices: {}\n",
    "dup_infra": GOOD + "infrastructure:\n  influx:\n    port: 8086\n  influx:\n    port: 8087\n",
    "null_project": GOOD.replace("project: lab", "project: ~"),
    "null_project_word": GOOD.replace("project: lab", "project: null"),
    "empty_project": GOOD.replace("project: lab", "project:"),
    "null_category": GOOD.replace("    category: web\n    port: 8001", "    category: ~\n    port: 8001"),
    "null_port": GOOD.replace("port: 8001", "port: ~"),
    "null_service": "project: lab\ncategories:\n  web: {}\nservices:\n  a: ~\n",
    "null_services": "project: lab\ncategories:\n  web: {}\nservices: ~\n",
    "port_zero": GOOD.replace("port: 8001", "port: 0"),
    "port_negative": GOOD.replace("port: 8001", "port: -1"),
    "port_huge": GOOD.replace("port: 8001", "port: 70000"),
    "port_float": GOOD.replace("port: 8001", "port: 80.5"),
    "port_string": GOOD.replace("port: 8001", "port: http"),
    "port_dup": GOOD.replace("port: 8002", "port: 8001"),
    "batch_zero": GOOD.replace("on_failure: stop", "batch_size: 0"),
    "batch_huge": GOOD.replace("on_failure: stop", "batch_size: 99999999"),
    "batch_negative": GOOD.replace("on_failure: stop", "batch_size: -3"),
    "defaults_batch_zero": GOOD + "defaults:\n  batch_size: 0\n",
    "defaults_concurrency_huge": GOOD + "defaults:\n  deploy_concurrency: 100000\n",
    "defaults_timeout_zero": GOOD + "defaults:\n  health_timeout_s: 0\n",
    "health_timeout_zero": GOOD.replace("port: 8001", "port: 8001\n    health_timeout_s: 0"),
    "unknown_key": GOOD.replace("port: 8001", "port: 8001\n    prot: 1"),
    "unknown_category": GOOD.replace("category: web\n    port: 8001", "category: nope\n    port: 8001"),
    "bad_enum": GOOD.replace("on_failure: stop", "on_failure: explode"),
    "health_path_relative": GOOD.replace("port: 8001", "port: 8001\n    health_path: health"),
    "writer_unknown": GOOD + "infrastructure:\n  influx:\n    port: 8086\n    writer: ghost\n",
    "not_yaml": "{{{{ [[[ ::: ",
    "tabs": "project: lab\ncategories:\n\tweb: {}\n",
    "empty_file": "",
    "only_comment": "# nothing\n",
    "list_root": "- a\n- b\n",
    "scalar_root": "42\n",
    "yaml_bomb": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
    "deep_nesting": "a: " + "[" * 20000 + "]" * 20000 + "\n",
    "deep_block_nesting": "".join("  " * i + f"k{i}:\n" for i in range(400)),
    "anchor_undefined": "project: *nope\n",
    "merge_key_loop": "a: &a\n  <<: *a\n",
    "binary_tag": "project: !!binary aGVsbG8=\ncategories: {}\nservices: {}\n",
    "custom_tag": "project: !ruby/object:Foo x\ncategories: {}\nservices: {}\n",
    "huge_int": GOOD.replace("port: 8001", "port: 999999999999999999999999999999"),
    "invalid_utf8": None,  # written as bytes below
    "bom_then_dup": "\ufeff" + GOOD + "project: again\n",
    "crlf_dup": (GOOD + "project: again\n").replace("\n", "\r\n"),
    "long_key": GOOD.replace("  a:\n", "  " + "a" * 100000 + ":\n"),
    "many_services": "project: lab\ncategories:\n  web: {}\nservices:\n" + "".join(f"  s{i}:\n    category: web\n    port: {i % 60000 + 1}\n" for i in range(3000)),
    "quoted_dup": GOOD.replace("  b:\n", '  "a":\n'),
    "multi_doc": GOOD + "---\n" + GOOD,
    "null_in_list": GOOD.replace("port: 8001", "port: 8001\n    endpoints: [~, /x]"),
}

# ---------------------------------------------------------------- journals
JOURNALS = {
    "empty": "",
    "not_json": "this is not json",
    "truncated": '{"version": 1, "records": {"a": {"phase": "built"',
    "array_root": "[1, 2, 3]",
    "no_records": '{"version": 1}',
    "records_array": '{"version": 1, "records": [1, 2]}',
    "records_string": '{"version": 1, "records": "x"}',
    "records_null": '{"version": 1, "records": null}',
    "deep": '{"records": {"a": ' + "[" * 100000 + "]" * 100000 + "}}",
    "huge_number": '{"records": {"a": {"n": 1e999999}}}',
    "huge_int": '{"records": {"a": {"n": 123456789012345678901234567890}}}',
    "nan": '{"records": {"a": {"n": NaN}}}',
    "bad_escape": '{"records": {"a": {"s": "\\uZZZZ"}}}',
    "lone_surrogate": '{"records": {"a": {"s": "\\ud800"}}}',
    "dup_keys": '{"records": {"a": {"x": 1}, "a": {"x": 2}}}',
    "trailing_garbage": '{"records": {}} garbage',
    "comments": '{"records": {} /* c */}',
    "bom": "\ufeff{\"records\": {}}",
    "nul": '{"records": {"a\u0000b": {}}}',
    "many_records": '{"records": {' + ",".join(f'"k{i}": {{"p": {i}}}' for i in range(10000)) + "}}",
    "long_key": '{"records": {"' + "k" * 100000 + '": {}}}',
    "record_not_map": '{"records": {"a": 5}}',
    "records_with_secret_key": '{"records": {"CORPUS_TOKEN": {"v": 1}}}',
    "invalid_utf8": None,
    "zero_bytes": None,
    "whitespace_only": "   \n\t  ",
    "single_quotes": "{'records': {}}",
    "unicode_keys": '{"records": {"\u202eevil": {}, "ü": {}}}',
    "nested_records": '{"records": {"a": {"records": {"records": {}}}}}',
    "number_root": "42",
}

# ---------------------------------------------------------------- influx bodies
INFLUX = {
    "empty": "",
    "not_json": "<html>502 Bad Gateway</html>",
    "truncated_json": '{"results": [{"statement_id": 0, "series": [{"name": "cpu"',
    "results_null": '{"results": null}',
    "results_string": '{"results": "x"}',
    "series_wrong": '{"results": [{"series": 5}]}',
    "columns_mismatch": '{"results": [{"series": [{"name": "m", "columns": ["time", "v"], "values": [[1], [1, 2, 3]]}]}]}',
    "values_not_array": '{"results": [{"series": [{"name": "m", "columns": ["time"], "values": "x"}]}]}',
    "huge_int": '{"results": [{"series": [{"name": "m", "columns": ["v"], "values": [[123456789012345678901234567890]]}]}]}',
    "huge_float": '{"results": [{"series": [{"name": "m", "columns": ["v"], "values": [[1e999]]}]}]}',
    "deep": '{"results": ' + "[" * 50000 + "]" * 50000 + "}",
    "error_with_token": '{"error": "authorization failed for token CORPUS-SECRET-TOKEN-7f3a9"}',
    "error_with_token_upper": '{"error": "bad token ' + "CORPUS-SECRET-TOKEN-7F3A9" + '"}',
    "error_with_token_split": '{"error": "' + "x" * 190 + ' token CORPUS-SECRET-\\nTOKEN-7f3a9 end"}',
    "error_token_at_cut": '{"error": "' + "y" * 185 + 'CORPUS-SECRET-TOKEN-7f3a9"}',
    "statement_error": '{"results": [{"statement_id": 0, "error": "database not found: x"}]}',
    "csv_garbage": "#datatype,string\n,,,\n\"unterminated",
    "csv_annotations_only": "#datatype,string,long\n#group,false,false\n#default,_result,\n",
    "csv_wrong_types": "#datatype,string,long,dateTime:RFC3339\n,result,table,_time\n,_result,abc,notatime\n",
    "csv_huge_long": "#datatype,string,long,long\n,result,table,_value\n,_result,0,99999999999999999999999\n",
    "csv_error": "error,reference\nfailed to parse query CORPUS-SECRET-TOKEN-7f3a9,897\n",
    "jsonl_garbage": '{"a": 1}\n{not json\n',
    "jsonl_deep": "[" * 50000 + "\n",
    "json_array_of_scalars": "[1, 2, 3]",
    "v3_error": '{"error": "query error: CORPUS-SECRET-TOKEN-7f3a9 not allowed"}',
    "binary": None,
    "nul_bytes": None,
    "huge_body": '{"results": [{"series": [{"name": "m", "columns": ["v"], "values": [' + ",".join("[1]" for _ in range(20000)) + "]}]}]}",
    "many_columns": '{"results": [{"series": [{"name": "m", "columns": [' + ",".join(f'"c{i}"' for i in range(20000)) + '], "values": []}]}]}',
    "unicode": '{"results": [{"series": [{"name": "\u202em", "columns": ["v"], "values": [["\\ud800"]]}]}]}',
}

# ---------------------------------------------------------------- REPL sessions
REPL = {
    "invalid_utf8": None,
    "import_cycle": 'import "cyc_a" as a;\n:load cyc_a.rhai\n1 + 1\n',
    "load_missing": ":load nope.rhai\n:load\n:reload\n",
    "load_dev_zero": ":load /dev/zero\n",
    "load_outside": ":load ../sentinel/x.rhai\n:load /etc/passwd\n",
    "unknown_command": ":nope\n:\n::\n:help nope::nope\n",
    "unterminated": "fn f() {\n",
    "unterminated_string": 'let s = "abc\n',
    "syntax_errors": "let = ;\n}}}\n+++\n",
    "runaway": "let i = 0;\nwhile i < 100000000 { i += 1; }\n",
    "huge_line": "let x = " + "1 + " * 20000 + "1;\n",
    "long_string": 'let s = "' + "a" * 100000 + '";\ns.len()\n',
    "deep_parens": "(" * 3000 + ")" * 3000 + "\n",
    "nul_bytes": "let x = 1;\x00\x00\nx\n",
    "control_chars": "\x1b[31mred\x1b[0m\n\x07\x08\n",
    "throw_everything": "throw 1;\nthrow ();\nthrow #{a: 1};\nthrow [1];\n",
    "sleep_bad": "time::sleep(1e300);\ntime::sleep(-1);\n",
    "fs_escape": 'fs::read("/etc/passwd")\nfs::write("../sentinel/p", "x")\nfs::write("out/p", "x")\n',
    "secret_echo": 'influx::connect(#{ token_env: "CORPUS_TOKEN", url: "http://u:CorpusPw99@127.0.0.1:9" })\n',
    "vars_after_errors": "let a = 1;\nnope();\na + 1\n:vars\n",
    "many_blank": "\n" * 5000 + "1\n",
    "bom": "\ufeff1 + 1\n",
    "crlf": "1 + 1\r\n2 + 2\r\n",
    "unterminated_comment": "/* open\n1\n",
    "int_overflow": "99999999999999999999\n",
    "params_in_repl": "params(#{ repl_on_failure: 1 })\n",
    "import_traversal": 'import "stdlib/../../x" as x;\n',
    "parallel_huge": "parallel([1,2,3], 99999999, |x| x)\n",
    "glob_loop": 'fs::glob("**/*").len()\n',
    "only_eof": "",
}

CYC_A = 'import "cyc_b" as b;\n'
CYC_B = 'import "cyc_a" as a;\n'


def main():
    reset()
    n = 0
    for name, text in PLAYBOOKS.items():
        write("playbooks", name + ".rhai", text)
        n += 1
    for name, (args, text) in PARAMS.items():
        write("params", name + ".rhai", f"// args: {args}\n" + text)
        n += 1
    for name, text in CONFIGS.items():
        if text is None:
            write("configs", name + ".yaml", b"project: \xff\xfe\ncategories: {}\nservices: {}\n", "wb")
        else:
            write("configs", name + ".yaml", text)
        n += 1
    for name, text in JOURNALS.items():
        if name == "invalid_utf8":
            write("journals", name + ".json", b'{"records": {"\xff": {}}}', "wb")
        elif name == "zero_bytes":
            write("journals", name + ".json", b"\x00" * 4096, "wb")
        else:
            write("journals", name + ".json", text)
        n += 1
    for name, text in INFLUX.items():
        if name == "binary":
            write("influx", name + ".body", bytes(range(256)) * 16, "wb")
        elif name == "nul_bytes":
            write("influx", name + ".body", b'{"results": [\x00\x00]}', "wb")
        else:
            write("influx", name + ".body", text)
        n += 1
    for name, text in REPL.items():
        if text is None:
            write("repl", name + ".txt", b"1 + \xff\xfe;\n\xc3\x28\n2 + 2\n", "wb")
        else:
            write("repl", name + ".txt", text)
        n += 1
    write("support", "cyc_a.rhai", CYC_A)
    write("support", "cyc_b.rhai", CYC_B)
    print(f"wrote {n} inputs")


if __name__ == "__main__":
    main()
