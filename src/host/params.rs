//! `params(#{...})` — playbook parameters the host can read without running the script.
//!
//! A playbook declares its options once, as a literal map in a top-level `params(...)` call:
//!
//! ```rhai
//! //! Rebuild services in parallel.
//! let opts = params(#{
//!     batch_size: #{ type: "int", default_value: 5, help: "Concurrent builds" },
//!     category:   #{ type: "string", help: "Only this category", choices: ["integration", "ai-ml"] },
//!     no_cache:   #{ type: "bool", help: "Build without the layer cache" },
//!     wait:       #{ type: "duration", default_value: "30s", help: "How long to wait" },
//!     services:   #{ type: "list", help: "Comma-separated service names" },
//!     greeting:   "hello",          // shorthand: default value, type inferred
//! });
//! print(opts.batch_size);
//! ```
//!
//! Because the map is a literal, `dockhand` reads it from the compiled AST: `dockhand run
//! X --help` lists the options with their types, defaults and help; `--batch-size 8` sets
//! `opts.batch_size`; an unknown option, a missing required one or a value of the wrong type
//! is reported **before anything runs**. At run time `params` returns the map of values.
//!
//! Types: `string` (default), `int`, `float`, `bool` (a flag), `duration` (given as "30s",
//! received as milliseconds), `list` (comma-separated, received as an array of strings).
//! Keys: `type`, `default_value` (Rhai reserves the word `default`; `"default"` quoted works
//! too), `help`, `required`, `choices`.

use rhai::plugin::*;
use rhai::{AST, Array, Dynamic, Engine, EvalAltResult, Expr, INT, Map, Position, Stmt};

use super::{invalid, with_host};

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Int,
    Float,
    Bool,
    Duration,
    List,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "string" | "str" => Kind::String,
            "int" | "integer" => Kind::Int,
            "float" | "number" => Kind::Float,
            "bool" | "flag" => Kind::Bool,
            "duration" => Kind::Duration,
            "list" | "array" => Kind::List,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Duration => "duration",
            Kind::List => "list",
        }
    }

    fn infer(v: &Dynamic) -> Kind {
        if v.is_int() {
            Kind::Int
        } else if v.is_float() {
            Kind::Float
        } else if v.is_bool() {
            Kind::Bool
        } else if v.is_array() {
            Kind::List
        } else {
            Kind::String
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// As written in the script (`batch_size`).
    pub name: String,
    pub kind: Kind,
    /// Default as text (for `--help` and for parsing), if any.
    pub default: Option<String>,
    pub help: String,
    pub required: bool,
    pub choices: Vec<String>,
}

impl Param {
    /// The command-line flag: `batch_size` → `batch-size`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Converts command-line text to the value the script receives.
    pub fn convert(&self, text: &str) -> Result<Dynamic, String> {
        let bad = |what: &str| {
            format!(
                "invalid value '{text}' for --{}: expected {what}",
                self.flag()
            )
        };
        if !self.choices.is_empty() && !self.choices.iter().any(|c| c == text) {
            return Err(format!(
                "invalid value '{text}' for --{}: choose one of {}",
                self.flag(),
                self.choices.join(", ")
            ));
        }
        Ok(match self.kind {
            Kind::String => text.into(),
            Kind::Int => text
                .trim()
                .parse::<INT>()
                .map_err(|_| bad("a whole number"))?
                .into(),
            Kind::Float => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| bad("a finite number"))?
                .into(),
            Kind::Bool => match text.trim() {
                "true" | "yes" | "1" | "on" => true.into(),
                "false" | "no" | "0" | "off" => false.into(),
                _ => return Err(bad("true or false")),
            },
            Kind::Duration => {
                let d = super::time::parse_duration(text)
                    .map_err(|e| format!("--{}: {e}", self.flag()))?;
                INT::try_from(d.as_millis()).unwrap_or(INT::MAX).into()
            }
            Kind::List => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Dynamic::from(s.to_string()))
                .collect::<Array>()
                .into(),
        })
    }
}

/// Why a `params(...)` declaration cannot be read.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub message: String,
    pub position: Position,
}

fn spec_err(message: impl Into<String>, position: Position) -> SpecError {
    SpecError {
        message: message.into(),
        position,
    }
}

fn params_call(stmt: &Stmt) -> Option<(&rhai::FnCallExpr, Position)> {
    let expr = match stmt {
        Stmt::Var(x, ..) => &x.1,
        Stmt::Expr(e) => e.as_ref(),
        Stmt::FnCall(call, pos) => {
            return (call.name == "params" && call.namespace.is_empty())
                .then_some((call.as_ref(), *pos));
        }
        _ => return None,
    };
    match expr {
        Expr::FnCall(call, pos) if call.name == "params" && call.namespace.is_empty() => {
            Some((call.as_ref(), *pos))
        }
        _ => None,
    }
}

/// Reads the parameter declaration of a compiled script. `Ok(vec![])` when it declares none.
pub fn extract(ast: &AST) -> Result<Vec<Param>, SpecError> {
    let mut found = None;
    for stmt in ast.statements() {
        if let Some((call, pos)) = params_call(stmt) {
            if found.is_some() {
                return Err(spec_err(
                    "params(...) may be called only once, at the top level",
                    pos,
                ));
            }
            found = Some((call, pos));
        }
    }
    let Some((call, pos)) = found else {
        return Ok(Vec::new());
    };
    if call.args.len() != 1 {
        return Err(spec_err(
            "params takes one map: params(#{ name: #{ type: \"int\", default_value: 1 } })",
            pos,
        ));
    }
    let arg = &call.args[0];
    let value = arg.get_literal_value(None).ok_or_else(|| {
        spec_err(
            "params(...) must be given a literal map of constants, so dockhand can read it without running the script",
            arg.position(),
        )
    })?;
    let map = value.try_cast::<Map>().ok_or_else(|| {
        spec_err(
            "params(...) takes a map: params(#{ name: ... })",
            arg.position(),
        )
    })?;
    parse_spec(&map).map_err(|m| spec_err(m, arg.position()))
}

/// Turns a declaration map into parameters.
pub fn parse_spec(map: &Map) -> Result<Vec<Param>, String> {
    let mut out = Vec::new();
    for (name, decl) in map {
        let name = name.to_string();
        check_param_name(&name)?;
        let param = match decl.read_lock::<Map>() {
            Some(d) => declared(&name, &d)?,
            None => Param {
                name: name.clone(),
                kind: Kind::infer(decl),
                default: (!decl.is_unit()).then(|| default_text(decl)),
                help: String::new(),
                required: false,
                choices: Vec::new(),
            },
        };
        if let Some(d) = &param.default {
            let _ = param
                .convert(d)
                .map_err(|e| format!("parameter '{name}': default does not fit its type: {e}"))?;
        }
        out.push(param);
    }
    Ok(out)
}

/// A parameter name becomes a `--option`: letters, digits and `_`, and none of dockhand's own.
fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(
            "a parameter name is empty (\"\"); it would become a bare `--` option — \
             give it a name like `batch_size`"
                .to_string(),
        );
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.starts_with('_') {
        return Err(format!(
            "parameter name '{name}' must be letters, digits and '_'"
        ));
    }
    if RESERVED.contains(&name.replace('_', "-").as_str()) {
        return Err(format!(
            "parameter '{name}' clashes with dockhand's own --{} option; the script can read the run mode with mode()",
            name.replace('_', "-")
        ));
    }
    Ok(())
}

/// A parameter declared with a map: `#{ type, default_value, help, required, choices }`.
fn declared(name: &str, d: &Map) -> Result<Param, String> {
    for k in d.keys() {
        if !matches!(
            k.as_str(),
            "type" | "default_value" | "default" | "help" | "required" | "choices"
        ) {
            return Err(format!(
                "parameter '{name}': unknown key '{k}' (known: type, default_value, help, required, choices)"
            ));
        }
    }
    let default = d
        .get("default_value")
        .or_else(|| d.get("default"))
        .filter(|v| !v.is_unit());
    let kind = match d.get("type") {
        Some(t) => {
            let t = t.to_string();
            Kind::parse(&t).ok_or_else(|| {
                format!("parameter '{name}': unknown type '{t}' (use string, int, float, bool, duration or list)")
            })?
        }
        None => default.map(Kind::infer).unwrap_or(Kind::String),
    };
    let help = d.get("help").map(|h| h.to_string()).unwrap_or_default();
    let required = match d.get("required") {
        Some(r) => r
            .as_bool()
            .map_err(|_| format!("parameter '{name}': 'required' must be true or false"))?,
        None => false,
    };
    let choices = match d.get("choices") {
        Some(c) => c
            .read_lock::<Array>()
            .ok_or_else(|| format!("parameter '{name}': 'choices' must be an array"))?
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<String>>(),
        None => Vec::new(),
    };
    if d.contains_key("choices") && choices.is_empty() {
        return Err(format!(
            "parameter '{name}': 'choices' is empty, so no value could be given; \
             list the allowed values or leave 'choices' out"
        ));
    }
    Ok(Param {
        name: name.to_string(),
        kind,
        default: default.map(default_text),
        help,
        required,
        choices,
    })
}

fn default_text(v: &Dynamic) -> String {
    match v.read_lock::<Array>() {
        Some(a) => a
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(","),
        None => v.to_string(),
    }
}

/// dockhand's own run options, which a playbook parameter may not shadow.
pub const RESERVED: &[&str] = &[
    "help",
    "version",
    "repl-on-failure",
    "allow-writes",
    "param",
    "junit",
    "dry-run",
    "read-only",
    "json",
    "timeout",
    "root",
    "allow-exec",
    "verbose",
    "quiet",
    "log-format",
    "stdlib",
    "max-operations",
    "max-memory",
    "trace",
];

/// The value map a script receives: given values, else defaults; `()` for optional
/// parameters without a default (and `false` for flags).
pub fn resolve(params: &[Param], given: &Map) -> Result<Map, String> {
    for k in given.keys() {
        if !params.iter().any(|p| p.name == k.as_str()) {
            return Err(format!("unknown parameter '{k}'"));
        }
    }
    let mut out = Map::new();
    for p in params {
        let v = match given.get(p.name.as_str()) {
            Some(v) => v.clone(),
            None => match &p.default {
                Some(d) => p.convert(d)?,
                None if p.required => {
                    return Err(format!("missing required option --{}", p.flag()));
                }
                None if p.kind == Kind::Bool => false.into(),
                None => Dynamic::UNIT,
            },
        };
        out.insert(p.name.as_str().into(), v);
    }
    Ok(out)
}

/// Values given for this run (set by the runner before the script starts).
#[derive(Default)]
pub struct ParamValues(pub std::sync::Mutex<Map>);

#[export_module]
pub mod params_api {
    use super::*;

    /// Declares the playbook's parameters and returns their values for this run (command-line
    /// values over defaults). Call it once, at the top level, with a literal map — see
    /// `dockhand docs` for the declaration format.
    #[rhai_fn(return_raw)]
    pub fn params(ctx: NativeCallContext, spec: Map) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let declared = parse_spec(&spec).map_err(invalid)?;
            let given = super::super::lock(&h.params.0).clone();
            resolve(&declared, &given).map_err(invalid)
        })
    }

    /// The run mode: "normal", "dry-run" or "read-only".
    #[rhai_fn(return_raw)]
    pub fn mode(ctx: NativeCallContext) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            Ok(match h.mode {
                super::super::Mode::Normal => "normal",
                super::super::Mode::DryRun => "dry-run",
                super::super::Mode::ReadOnly => "read-only",
            }
            .to_string())
        })
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(params_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_global_module(MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<Vec<Param>, SpecError> {
        let engine = Engine::new_raw();
        extract(&engine.compile(text).unwrap())
    }

    #[test]
    fn reads_declarations_and_infers_types() {
        let p = spec(
            r#"let p = params(#{ n: #{ type: "int", default_value: 5, help: "N" }, s: "x", f: 1.5, b: true, l: ["a", "b"] });"#,
        )
        .unwrap();
        let kind = |n: &str| p.iter().find(|x| x.name == n).unwrap().kind;
        assert_eq!(kind("n"), Kind::Int);
        assert_eq!(kind("s"), Kind::String);
        assert_eq!(kind("f"), Kind::Float);
        assert_eq!(kind("b"), Kind::Bool);
        assert_eq!(kind("l"), Kind::List);
        assert_eq!(
            p.iter().find(|x| x.name == "l").unwrap().default.as_deref(),
            Some("a,b")
        );
        assert_eq!(p.iter().find(|x| x.name == "n").unwrap().help, "N");
    }

    #[test]
    fn no_declaration_means_no_params() {
        assert!(spec("print(1);").unwrap().is_empty());
    }

    #[test]
    fn rejects_non_literal_and_duplicate_declarations() {
        assert!(
            spec("let d = 1; let p = params(#{ n: d });")
                .unwrap_err()
                .message
                .contains("literal")
        );
        assert!(
            spec("params(#{}); params(#{});")
                .unwrap_err()
                .message
                .contains("only once")
        );
        assert!(
            spec(r#"params(#{ n: #{ kind: "int" } });"#)
                .unwrap_err()
                .message
                .contains("unknown key 'kind'")
        );
    }

    #[test]
    fn rejects_shadowing_empty_names_and_empty_choices_with_the_position() {
        for (text, says) in [
            ("params(#{ repl_on_failure: false });", "clashes"),
            ("params(#{ \"\": 1 });", "empty"),
            ("params(#{ env: #{ choices: [] } });", "'choices' is empty"),
        ] {
            let e = spec(text).unwrap_err();
            assert!(e.message.contains(says), "{text}: {}", e.message);
            assert_eq!(e.position.line(), Some(1), "{text}");
        }
    }

    #[test]
    fn converts_values_by_type() {
        let p = |kind| Param {
            name: "x_y".into(),
            kind,
            default: None,
            help: String::new(),
            required: false,
            choices: vec![],
        };
        assert_eq!(p(Kind::Int).convert(" 42 ").unwrap().as_int().unwrap(), 42);
        assert!(p(Kind::Int).convert("4.2").unwrap_err().contains("--x-y"));
        assert!(p(Kind::Bool).convert("yes").unwrap().as_bool().unwrap());
        assert!(p(Kind::Bool).convert("maybe").is_err());
        assert_eq!(
            p(Kind::Duration).convert("1m").unwrap().as_int().unwrap(),
            60_000
        );
        assert_eq!(
            p(Kind::List)
                .convert("a, ,b")
                .unwrap()
                .into_array()
                .unwrap()
                .len(),
            2
        );
        let mut c = p(Kind::String);
        c.choices = vec!["a".into()];
        assert!(c.convert("b").unwrap_err().contains("choose one of a"));
    }

    #[test]
    fn resolve_applies_defaults_and_requires() {
        let mut params = parse_spec(&rhai::Map::from_iter([(
            "n".into(),
            Dynamic::from(3 as INT),
        )]))
        .unwrap();
        let v = resolve(&params, &Map::new()).unwrap();
        assert_eq!(v["n"].as_int().unwrap(), 3);
        params[0].required = true;
        params[0].default = None;
        assert!(resolve(&params, &Map::new()).unwrap_err().contains("--n"));
        assert!(resolve(&params, &Map::from_iter([("zz".into(), Dynamic::UNIT)])).is_err());
    }
}
