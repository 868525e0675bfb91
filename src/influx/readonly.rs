//! Whether an InfluxQL or Flux query only reads — decided by parsing, not by looking for
//! known writers.
//!
//! `--read-only` promises that a run changes nothing, and `--dry-run` that it only plans.
//! A text heuristic ("contains `|> to(`") is beaten by any legal form its author did not
//! think of: a comment between `to` and `(`, an aliased function (`w = to`), `wideTo`,
//! `influxdb.api(method: "POST")`, `http.post` inside Flux, `EXPLAIN ANALYZE SELECT … INTO`.
//! So the rule is inverted:
//!
//! * **InfluxQL**: the query is split into statements by a real tokenizer (strings, quoted
//!   identifiers, `--` and `/* */` comments), and every statement must be a `SHOW`, a
//!   `SELECT` without `INTO`, or an `EXPLAIN [ANALYZE]` of such a `SELECT` (`EXPLAIN
//!   ANALYZE` *executes* its statement).
//! * **Flux**: every function *called* must be on an allow-list of read-only functions
//!   (`from`, `range`, `filter`, aggregates, …; pure packages like `strings`). Calls are
//!   found by a tokenizer that knows strings (with `${}` interpolation), comments and
//!   imports, so `import x "experimental"` cannot rename a writer into a reader. Functions
//!   the query defines itself (`f = (r) => …`) may be called; their bodies are checked like
//!   the rest.
//!
//! Anything that does not tokenize cleanly counts as a mutation: a wrong "mutation" costs a
//! plan entry, a wrong "read" would let a `--read-only` run write.

use std::collections::{HashMap, HashSet};

/// Why a query is not a read, or `Ok` when it only reads.
pub type Verdict = Result<(), String>;

// ------------------------------------------------------------------------------ InfluxQL

#[derive(Debug, Clone, PartialEq)]
enum QlTok {
    Word(String),
    Semi,
    Other,
}

fn influxql_tokens(q: &str) -> Result<Vec<QlTok>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ';' => out.push(QlTok::Semi),
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err("an unterminated /* comment".into());
                }
            }
            '\'' | '"' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err("an unterminated quote".into());
                }
                out.push(QlTok::Other);
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut w = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(QlTok::Word(w.to_ascii_uppercase()));
            }
            _ => out.push(QlTok::Other),
        }
    }
    Ok(out)
}

/// `Ok` when every statement of the InfluxQL query only reads.
pub fn influxql_verdict(q: &str) -> Verdict {
    let toks = influxql_tokens(q).map_err(|e| format!("the query has {e}"))?;
    for stmt in toks.split(|t| *t == QlTok::Semi) {
        if stmt.is_empty() {
            continue;
        }
        let mut words = stmt.iter().filter_map(|t| match t {
            QlTok::Word(w) => Some(w.as_str()),
            _ => None,
        });
        let mut first = words.next().unwrap_or("");
        if first == "EXPLAIN" {
            first = words.next().unwrap_or("");
            if first == "ANALYZE" {
                first = words.next().unwrap_or("");
            }
        }
        match first {
            "SHOW" => {}
            "SELECT" => {
                if stmt.iter().any(|t| *t == QlTok::Word("INTO".into())) {
                    return Err("SELECT … INTO writes into a measurement".into());
                }
            }
            "" => return Err("a statement does not start with a keyword".into()),
            other => return Err(format!("{other} statements change the database")),
        }
    }
    Ok(())
}

/// Whether every statement of an InfluxQL query only reads.
pub fn influxql_is_read(q: &str) -> bool {
    influxql_verdict(q).is_ok()
}

// ---------------------------------------------------------------------------------- Flux

/// Flux's built-in (universe) functions that only read or compute.
const FLUX_UNIVERSE_READS: &[&str] = &[
    "aggregateWindow",
    "bool",
    "bottom",
    "buckets",
    "bytes",
    "chandeMomentumOscillator",
    "columns",
    "contains",
    "count",
    "cov",
    "covariance",
    "cumulativeSum",
    "derivative",
    "difference",
    "display",
    "distinct",
    "doubleEMA",
    "drop",
    "duplicate",
    "duration",
    "elapsed",
    "exponentialMovingAverage",
    "fill",
    "filter",
    "findColumn",
    "findRecord",
    "first",
    "float",
    "from",
    "getColumn",
    "getRecord",
    "group",
    "highestAverage",
    "highestCurrent",
    "highestMax",
    "histogram",
    "histogramQuantile",
    "holtWinters",
    "hourSelection",
    "increase",
    "int",
    "integral",
    "join",
    "kaufmansAMA",
    "kaufmansER",
    "keep",
    "keyValues",
    "keys",
    "last",
    "length",
    "limit",
    "linearBins",
    "logarithmicBins",
    "lowestAverage",
    "lowestCurrent",
    "lowestMin",
    "map",
    "max",
    "mean",
    "median",
    "min",
    "mode",
    "movingAverage",
    "now",
    "pearsonr",
    "pivot",
    "quantile",
    "range",
    "reduce",
    "relativeStrengthIndex",
    "rename",
    "sample",
    "set",
    "skew",
    "sort",
    "spread",
    "stateCount",
    "stateDuration",
    "stddev",
    "string",
    "sum",
    "tableFind",
    "tail",
    "time",
    "timeShift",
    "timedMovingAverage",
    "today",
    "top",
    "tripleEMA",
    "tripleExponentialDerivative",
    "truncateTimeColumn",
    "uint",
    "union",
    "unique",
    "window",
    "yield",
];

/// Packages whose every function is pure (no I/O).
const FLUX_PURE_PACKAGES: &[&str] = &[
    "strings",
    "math",
    "regexp",
    "date",
    "types",
    "timezone",
    "dict",
    "experimental/array",
    "array",
    "influxdata/influxdb/schema",
    "influxdata/influxdb/v1",
];

#[derive(Debug, Clone, PartialEq)]
enum FluxTok {
    Ident(String),
    Str(String),
    Dot,
    LParen,
    RParen,
    Assign,
    Other,
}

/// Tokenizes Flux; string interpolations (`"${expr}"`) are tokenized as code.
fn flux_tokens(q: &str) -> Result<Vec<FluxTok>, String> {
    let mut lx = FluxLexer {
        chars: q.chars().collect(),
        i: 0,
        out: Vec::new(),
        interp: Vec::new(),
        depth: 0,
        text: String::new(),
    };
    while let Some(&c) = lx.chars.get(lx.i) {
        lx.i += 1;
        lx.code(c)?;
    }
    if !lx.interp.is_empty() {
        return Err("an unterminated string interpolation".into());
    }
    Ok(lx.out)
}

/// The tokenizer's position and what it has read.
struct FluxLexer {
    chars: Vec<char>,
    i: usize,
    out: Vec<FluxTok>,
    /// Brace depth of each `${` we are inside (code inside a string).
    interp: Vec<usize>,
    depth: usize,
    /// The text of the string being read, kept across its interpolations.
    text: String,
}

impl FluxLexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    /// Takes one character of code (`c`, already consumed) and what it starts.
    fn code(&mut self, c: char) -> Result<(), String> {
        match c {
            c if c.is_whitespace() => {}
            '/' if self.peek() == Some('/') => self.line_comment(),
            // Flux has no block comments, but if a server ever took one, a call must still be
            // seen through it.
            '/' if self.peek() == Some('*') => self.block_comment(),
            '"' => {
                self.text.clear();
                self.string()?
            }
            '{' => {
                self.depth += 1;
                self.out.push(FluxTok::Other);
            }
            '}' => self.close_brace()?,
            '.' => self.out.push(FluxTok::Dot),
            '(' => self.out.push(FluxTok::LParen),
            ')' => self.out.push(FluxTok::RParen),
            '=' if !matches!(self.peek(), Some('=') | Some('~') | Some('>')) => {
                self.out.push(FluxTok::Assign)
            }
            '=' => {
                self.i += 1;
                self.out.push(FluxTok::Other)
            }
            c if c.is_alphabetic() || c == '_' => self.ident(c),
            _ => self.out.push(FluxTok::Other),
        }
        Ok(())
    }

    fn line_comment(&mut self) {
        while let Some(d) = self.peek() {
            self.i += 1;
            if d == '\n' {
                break;
            }
        }
    }

    fn block_comment(&mut self) {
        let (chars, mut i) = (&self.chars, self.i + 1);
        while i < chars.len() && !(chars[i - 1] == '*' && chars[i] == '/' && i >= 2) {
            i += 1;
        }
        self.i = i + 1;
    }

    /// A `}` that closes an interpolation resumes its string; any other closes a block.
    fn close_brace(&mut self) -> Result<(), String> {
        if self.interp.last() == Some(&self.depth) {
            self.interp.pop();
            self.string()
        } else {
            self.depth = self.depth.saturating_sub(1);
            self.out.push(FluxTok::Other);
            Ok(())
        }
    }

    fn ident(&mut self, first: char) {
        let mut w = String::from(first);
        while let Some(d) = self.peek().filter(|d| d.is_alphanumeric() || *d == '_') {
            w.push(d);
            self.i += 1;
        }
        self.out.push(FluxTok::Ident(w));
    }

    /// Reads a string's text up to its closing `"` (then the string is a token) or an
    /// interpolation `${` (then its brace depth is remembered and code follows); `\`
    /// escapes the next character.
    fn string(&mut self) -> Result<(), String> {
        loop {
            let Some(c) = self.peek() else {
                return Err("an unterminated string".into());
            };
            self.i += 1;
            match c {
                '\\' => self.i += 1,
                '"' => {
                    self.out.push(FluxTok::Str(std::mem::take(&mut self.text)));
                    return Ok(());
                }
                '$' if self.peek() == Some('{') => {
                    self.i += 1;
                    self.interp.push(self.depth);
                    return Ok(());
                }
                c => self.text.push(c),
            }
        }
    }
}

/// `Ok` when every function the Flux query calls is a known read-only one.
pub fn flux_verdict(q: &str) -> Verdict {
    let toks = flux_tokens(q).map_err(|e| format!("the query has {e}"))?;
    // Imports: alias → package path.
    let mut imports: HashMap<String, String> = HashMap::new();
    // Names the query binds to a function literal (`f = (r) => ...`).
    let mut own_functions: HashSet<String> = HashSet::new();
    for (k, t) in toks.iter().enumerate() {
        if *t == FluxTok::Ident("import".into()) {
            match (toks.get(k + 1), toks.get(k + 2)) {
                (Some(FluxTok::Str(path)), _) => {
                    let alias = path.rsplit('/').next().unwrap_or(path).to_string();
                    imports.insert(alias, path.clone());
                }
                (Some(FluxTok::Ident(alias)), Some(FluxTok::Str(path))) => {
                    imports.insert(alias.clone(), path.clone());
                }
                _ => return Err("an import the checker cannot read".into()),
            }
        }
        if let (FluxTok::Ident(name), Some(FluxTok::Assign), Some(FluxTok::LParen)) =
            (t, toks.get(k + 1), toks.get(k + 2))
        {
            own_functions.insert(name.clone());
        }
    }
    // Calls: a dotted name right before `(`.
    for (k, t) in toks.iter().enumerate() {
        if *t != FluxTok::LParen || k == 0 {
            continue;
        }
        let mut parts: Vec<&str> = Vec::new();
        let mut j = k;
        while j > 0 {
            match &toks[j - 1] {
                FluxTok::Ident(n) => {
                    parts.push(n);
                    if j >= 2 && toks[j - 2] == FluxTok::Dot {
                        j -= 2;
                        continue;
                    }
                    break;
                }
                _ => break,
            }
        }
        if parts.is_empty() {
            // `f()(...)`: calling what an expression returned cannot be checked.
            if toks[k - 1] == FluxTok::RParen {
                return Err("it calls the result of an expression, which cannot be checked".into());
            }
            // `(r) => ...`, or grouping parentheses.
            continue;
        }
        parts.reverse();
        let name = parts.join(".");
        let allowed = if parts.len() == 1 {
            FLUX_UNIVERSE_READS.contains(&parts[0]) || own_functions.contains(parts[0])
        } else {
            let pkg = imports.get(parts[0]).map(String::as_str);
            parts.len() == 2 && pkg.is_some_and(|p| FLUX_PURE_PACKAGES.contains(&p))
        };
        // `import "x"` is followed by a string, never `(`; keywords are not calls.
        if !allowed && !matches!(parts[0], "if" | "then" | "else" | "and" | "or" | "not") {
            let shown = match parts.first().and_then(|p| imports.get(*p)) {
                Some(path) if parts.len() > 1 => format!("{name} (package \"{path}\")"),
                _ => name,
            };
            return Err(format!(
                "it calls {shown}, which is not a known read-only Flux function"
            ));
        }
    }
    Ok(())
}

/// Whether a Flux query only reads.
pub fn flux_is_read(q: &str) -> bool {
    flux_verdict(q).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases the host module's own (retired) text heuristics were tested on.
    #[test]
    fn former_heuristic_cases() {
        for q in [
            "select count(*) from \"m\" where time > now() - 1h",
            "SELECT * FROM m WHERE t = 'INTO'",
            " ; SELECT 1 FROM m ;",
        ] {
            assert!(influxql_is_read(q), "{q}");
        }
        for q in [
            "CREATE DATABASE lab",
            "DROP MEASUREMENT cpu",
            "DELETE FROM cpu",
            "SELECT * INTO other FROM cpu",
            "SHOW DATABASES; DROP DATABASE lab",
            "GRANT ALL TO bob",
            "ALTER RETENTION POLICY autogen ON lab DURATION 1d",
        ] {
            assert!(!influxql_is_read(q), "{q}");
        }
        assert!(!flux_is_read(
            "from(bucket:\"a\") |> range(start:-1h) |> to(bucket: \"b\")"
        ));
        assert!(!flux_is_read(
            "import \"experimental\"\ndata |> experimental.to(bucket: \"b\")"
        ));
        assert!(flux_is_read(
            "from(bucket:\"a\") |> range(start:-1h) |> count()"
        ));
    }

    #[test]
    fn influxql_reads_and_writes() {
        for q in [
            "SELECT * FROM cpu WHERE time > now() - 1h",
            "SHOW DATABASES; SHOW MEASUREMENTS",
            "SELECT \"into\" FROM m WHERE t = 'INTO'",
            "EXPLAIN SELECT * FROM cpu",
            "select mean(v) from m -- into\n",
        ] {
            assert!(influxql_is_read(q), "{q}");
        }
        for q in [
            "EXPLAIN ANALYZE SELECT * INTO copy FROM cpu",
            "SELECT * INTO copy FROM cpu",
            "SELECT 1; DROP DATABASE x",
            "/* SELECT */ DROP DATABASE x",
            "CREATE DATABASE y",
            "DELETE FROM cpu",
            "SELECT 'unterminated",
            "SELECT 1 /* open",
        ] {
            assert!(!influxql_is_read(q), "{q}");
        }
        assert!(
            influxql_verdict("EXPLAIN ANALYZE SELECT * INTO c FROM m")
                .unwrap_err()
                .contains("INTO")
        );
    }

    #[test]
    fn flux_reads_pass() {
        for q in [
            r#"from(bucket: "b") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "cpu") |> count()"#,
            r#"import "strings"
               from(bucket: "b") |> range(start: -1h) |> map(fn: (r) => ({r with n: strings.toUpper(v: r.host)}))"#,
            r#"f = (tables=<-) => tables |> mean()
               from(bucket: "b") |> range(start: -5m) |> f()"#,
            r#"x = "to(bucket: \"no\")" from(bucket: "b") |> range(start: -1h) // |> to(bucket: "c")"#,
            r#"import "influxdata/influxdb/schema" schema.measurements(bucket: "b")"#,
        ] {
            assert_eq!(flux_verdict(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn flux_writers_in_any_disguise_are_caught() {
        for q in [
            r#"from(bucket: "b") |> range(start: -1h) |> to(bucket: "c")"#,
            "from(bucket: \"b\") |> range(start: -1h) |> to /* sneaky */ (bucket: \"c\")",
            "from(bucket: \"b\") |> range(start: -1h) |> to // line\n (bucket: \"c\")",
            r#"w = to
               from(bucket: "b") |> range(start: -1h) |> w(bucket: "c")"#,
            r#"from(bucket: "b") |> range(start: -1h) |> wideTo(bucket: "c")"#,
            r#"import "experimental" from(bucket: "b") |> range(start: -1h) |> experimental.to(bucket: "c")"#,
            r#"import strings "experimental" from(bucket: "b") |> range(start: -1h) |> strings.to(bucket: "c")"#,
            r#"import "influxdata/influxdb" influxdb.api(method: "post", path: "/api/v2/delete")"#,
            r#"import "http" http.post(url: "http://x", data: bytes(v: "x"))"#,
            r#"x = "${http.post(url: "http://x")}" from(bucket: "b")"#,
            r#"import "sql" from(bucket: "b") |> range(start: -1h) |> sql.to(driverName: "x")"#,
            r#"f = () => to f()(bucket: "c")"#,
            "from(bucket: \"unterminated",
        ] {
            assert!(flux_verdict(q).is_err(), "{q}");
        }
        let why = flux_verdict(r#"import "http" http.post(url: "u")"#).unwrap_err();
        assert!(why.contains("http.post"), "{why}");
    }
}
