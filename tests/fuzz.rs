//! Property tests over the two parsers hostile input reaches first: script text → engine
//! (compile and run), and `services.yaml` → the config loader. Random "token soups" built
//! from the languages' own pieces get much further into the parsers than random bytes.
//! Bounded for CI: a fixed number of cases, each run with a small operations limit and a
//! `--timeout`-style deadline.

use proptest::prelude::*;

use dockhand::config::FleetConfig;
use dockhand::engine::Limits;
use dockhand::{Mode, Runtime};

const RHAI_TOKENS: &[&str] = &[
    "let",
    "x",
    "y",
    "=",
    ";",
    "fn",
    "f",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "#{",
    ",",
    ":",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "<<",
    ">>",
    "==",
    "!=",
    "<",
    ">",
    "&&",
    "||",
    "!",
    "if",
    "else",
    "while",
    "loop",
    "for",
    "in",
    "..",
    "break",
    "return",
    "throw",
    "try",
    "catch",
    "import",
    "as",
    "\"stdlib/fmt\"",
    "\"a\"",
    "`t ${x} `",
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "99999999999999999999",
    "1e300",
    "0.0",
    "/*",
    "*/",
    "//",
    "\n",
    "'c'",
    "|x|",
    "x.len()",
    "time::sleep",
    "time::timeout",
    "time::retry",
    "fs::read",
    "fs::write",
    "fs::glob",
    "state::open",
    "state::load",
    "parallel",
    "http::get",
    "params",
    "check",
    "\"**/*\"",
    "\"../x\"",
    "\"/etc/passwd\"",
    "#{ attempts: 2, backoff: 1e300, factor: 1e308 }",
    "print",
    "debug",
    "type_of",
    "Fn(\"f\")",
    "\u{feff}",
    "\\",
    "\"",
    "$",
    "?",
    ".",
    "::",
];

const YAML_PIECES: &[&str] = &[
    "project: lab\n",
    "project: ~\n",
    "project:\n",
    "categories:\n",
    "services:\n",
    "infrastructure:\n",
    "defaults:\n",
    "  web:\n",
    "  web: {}\n",
    "  a:\n",
    "  a: ~\n",
    "    category: web\n",
    "    category: ~\n",
    "    port: 8001\n",
    "    port: 0\n",
    "    port: -1\n",
    "    port: 99999\n",
    "    batch_size: 0\n",
    "    batch_size: 3\n",
    "    on_failure: stop\n",
    "    health_path: /h\n",
    "    health_path: h\n",
    "  batch_size: 0\n",
    "- x\n",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "&a ",
    "*a ",
    "!!binary ",
    "\"",
    "'",
    "#",
    "\t",
    "---\n",
    "  b:\n",
    "    writer: a\n",
    "    endpoints: [/x, ~]\n",
    "\u{feff}",
    "\r\n",
];

fn soup(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(pieces), 0..max).prop_map(|v| v.join(" "))
}

fn runtime(dir: &std::path::Path) -> Runtime {
    let limits = Limits {
        max_operations: 50_000,
        ..Limits::default()
    };
    Runtime::builder()
        .root(dir)
        .mode(Mode::DryRun)
        .timeout(Some(std::time::Duration::from_millis(300)))
        .limits(limits)
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any token soup either runs or fails with an error; the engine never panics, and an
    /// error renders to bounded text.
    #[test]
    fn scripts_never_panic_the_engine(text in soup(RHAI_TOKENS, 40)) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.compile_str("fuzz.rhai", &text)
                .and_then(|s| rt.run(&s, Default::default()))
        }));
        let result = outcome.map_err(|_| format!("panicked on {text:?}")).unwrap();
        if let Err(e) = result {
            let shown = e.to_string();
            prop_assert!(shown.len() < 20_000, "error text of {} bytes", shown.len());
            prop_assert!(!shown.contains("internal error"), "{shown} for {text:?}");
        }
    }

    /// The config loader never panics, and whatever it accepts has no duplicate keys, no
    /// port 0 and no batch of 0.
    #[test]
    fn config_loader_never_panics_and_accepts_only_sane_configs(text in soup(YAML_PIECES, 30)) {
        let parsed = std::panic::catch_unwind(|| FleetConfig::parse(&text, "fuzz.yaml"));
        let parsed = parsed.map_err(|_| format!("panicked on {text:?}")).unwrap();
        if let Ok(cfg) = parsed {
            prop_assert!(dockhand::config::duplicate_key(&text).is_none());
            for s in cfg.services.values() {
                prop_assert!(s.port != 0);
            }
            for c in cfg.categories.values() {
                prop_assert!(c.batch_size != Some(0));
            }
            prop_assert!(cfg.project != "~");
        }
    }

    /// Arbitrary text (not just our pieces) through the source checks and the parser.
    #[test]
    fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = rt.compile_str("any.rhai", &text);
        }));
        prop_assert!(r.is_ok(), "panicked on {text:?}");
    }
}
