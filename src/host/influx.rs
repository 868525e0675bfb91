//! `influx::` — query, write and ping InfluxDB 1.x, 2.x and 3.x over HTTP.
//!
//! ```rhai
//! let db = influx::connect(#{ url: "http://localhost:8086", version: 1, db: "homeiq" });
//! db.write(["cpu,host=a value=0.5", "cpu,host=b value=1i"]);
//! for r in db.query("SELECT * FROM cpu WHERE time > now() - 1h") {
//!     print(`${r.time} ${r.host} ${r.value}`);
//! }
//! check("data flowing", db.count("cpu", "1h") > 0);
//! print(db.ping());                       // #{ ok: true, version: "1.6.7~rc0", ms: 1, ... }
//!
//! let v2 = influx::connect(#{ url: "http://influx:8086", version: 2, org: "lab",
//!                             bucket: "homeiq", token_env: "INFLUX_TOKEN" });
//! let rows = v2.query(`from(bucket: "homeiq") |> range(start: -1h) |> count()`);
//! let v3 = influx::connect(#{ url: "http://localhost:8181", version: 3, db: "homeiq",
//!                             token_env: "INFLUX_TOKEN" });
//! let rows = v3.query("SELECT room, temp FROM home LIMIT 5");
//! ```
//!
//! **`influx::connect(options)`** checks the options and reads the token; it sends nothing
//! (use `ping()` to see whether the server is up). Options:
//!
//! | option | meaning |
//! | --- | --- |
//! | `url` | base URL; default `http://localhost:8086` (v1, v2) or `http://localhost:8181` (v3) |
//! | `version` | `1` (InfluxQL, `/query`, `/write`), `2` (Flux, `/api/v2/query`, `/api/v2/write`), `3` (SQL, `/api/v3/query_sql`, `/api/v3/write_lp`); default 1 |
//! | `db` | database (v1, v3) |
//! | `bucket`, `org` | bucket and organization (v2) |
//! | `token_env` | name of the environment variable holding the token (never the token itself) |
//! | `timeout` | per request, `"10s"` or milliseconds; default 30 s |
//! | `precision` | timestamp precision of written lines: `ns` (default), `us`, `ms`, `s` |
//! | `format` | v3 query format, `jsonl` (default, streamed by the server) or `json` |
//!
//! The token is sent as `Authorization: Token …` (v1, v2) or `Bearer …` (v3) and is
//! **redacted** everywhere dockhand prints: `print(conn)`, `debug(conn)` and every error
//! message, including messages the server echoes back.
//!
//! **Rows** (`conn.query(q)`) are maps, typed: integers, floats, booleans, strings; `()` for
//! a null. Times are RFC3339 strings as the server sends them, checked (an impossible date in
//! a Flux `dateTime:RFC3339` column is an error naming its line and column); a
//! `dateTime:number` column gives ints (nanoseconds since the epoch); Flux durations are ints
//! in nanoseconds. An `unsignedLong` (or a JSON integer up to `18446744073709551615`) above the
//! int range (`9223372036854775807`) is kept exact as its decimal **string**, never rounded to
//! a float: `==` compares it exactly; order two such strings by length, then as text. (JSON
//! integers beyond 64 bits, which no InfluxDB type holds, are floats.) v1 rows also carry the
//! series' `GROUP BY` tags and `_measurement`; v2 rows carry Flux's `result` and `table`.
//! InfluxDB 1.x writes a whole float (`1.0`) as `1` in JSON, so it comes back as an int.
//!
//! **Modes.** `write`, InfluxQL statements that change things (`CREATE`, `DROP`,
//! `DELETE`, `SELECT … INTO`, also behind `EXPLAIN ANALYZE`: anything but `SHOW`, `SELECT`
//! without `INTO` and `EXPLAIN` of those) and Flux queries that call any function outside a
//! read-only allow-list (see `dockhand::influx::readonly`) are mutations: in `--dry-run` they are listed in the plan and not sent (`write` returns
//! `#{ ok: true, dry_run: true, lines: N }`, a mutating query `[]`); in `--read-only` they
//! are refused. Reads run in every mode.
//!
//! **Errors** say what failed and how to fix it: the server unreachable (its URL, "InfluxDB
//! may be down"), 401/403 (the token and its variable), database not found, query syntax
//! errors (InfluxDB's own message), rejected writes (partial writes, field type conflicts,
//! with the line numbers InfluxDB 3 gives).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Map};

use super::time::{human, to_duration};
use super::{HostCtx, HostResult, fail, host, invalid};
use crate::influx::{self, Row, Value};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const REDACTED: &str = "<redacted>";

/// A connection: where, which API, and the (secret) token. Cheap to clone.
#[derive(Clone)]
pub struct InfluxConn(Arc<Conn>);

struct Conn {
    url: String,
    version: u8,
    db: Option<String>,
    bucket: Option<String>,
    org: Option<String>,
    token: Option<String>,
    token_env: Option<String>,
    timeout: Duration,
    precision: Option<String>,
    jsonl: bool,
}

impl std::fmt::Debug for InfluxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.describe())
    }
}

/// An HTTP answer, whatever its status.
struct Answer {
    status: u16,
    version: Option<String>,
    body: String,
    ms: INT,
}

impl Conn {
    fn describe(&self) -> String {
        let mut s = format!(
            "InfluxConn(v{} {}",
            self.version,
            crate::secrets::mask_url(&self.url)
        );
        for (k, v) in [
            ("db", &self.db),
            ("org", &self.org),
            ("bucket", &self.bucket),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}={v}"));
            }
        }
        if let Some(env) = &self.token_env {
            s.push_str(&format!(" token={REDACTED} from ${env}"));
        }
        s.push(')');
        s
    }

    /// Removes the token from any text that leaves this module.
    fn redact(&self, text: impl Into<String>) -> String {
        let text = text.into();
        let text = match &self.token {
            Some(t) => crate::secrets::redact(&text, t),
            None => text,
        };
        crate::secrets::mask_urls_in(&text)
    }

    fn err(&self, msg: impl Into<String>) -> Box<EvalAltResult> {
        fail(self.redact(msg))
    }

    fn need<'a>(&self, v: &'a Option<String>, key: &str, what: &str) -> HostResult<&'a str> {
        v.as_deref().ok_or_else(|| {
            invalid(format!(
                "{what} needs option '{key}' in influx::connect (InfluxDB {}.x at {})",
                self.version, self.url
            ))
        })
    }

    /// Sends one request. `Ok(Err(text))` when no HTTP answer came back.
    fn send(
        &self,
        h: &HostCtx,
        method: reqwest::Method,
        path: &str,
        params: &[(&str, &str)],
        body: Option<(&'static str, String)>,
        accept: Option<&'static str>,
    ) -> HostResult<Result<Answer, String>> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.url))
            .map_err(|e| invalid(format!("bad InfluxDB url {}: {e}", self.url)))?;
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        let mut rb = h
            .http_for(&self.url)
            .request(method.clone(), url)
            .timeout(self.timeout);
        if let Some(t) = &self.token {
            let scheme = if self.version == 3 { "Bearer" } else { "Token" };
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("{scheme} {t}")).map_err(|_| {
                    invalid(format!(
                        "the token in ${} has characters an HTTP header cannot carry",
                        self.token_env.as_deref().unwrap_or("?")
                    ))
                })?;
            v.set_sensitive(true);
            rb = rb.header(reqwest::header::AUTHORIZATION, v);
        }
        if let Some(a) = accept {
            rb = rb.header(reqwest::header::ACCEPT, a);
        }
        if let Some((ctype, b)) = body {
            rb = rb.header(reqwest::header::CONTENT_TYPE, ctype).body(b);
        }
        let start = Instant::now();
        let base = self.url.clone();
        let timeout = self.timeout;
        let token = self.token.clone();
        let out = h.block_on(async move {
            let resp = rb
                .send()
                .await
                .map_err(|e| unreachable(&base, &method, path, timeout, &e))?;
            let status = resp.status().as_u16();
            let version = resp
                .headers()
                .get("x-influxdb-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .text()
                .await
                .map_err(|e| unreachable(&base, &method, path, timeout, &e))?;
            Ok::<Answer, String>(Answer {
                status,
                version,
                // Redacted as it arrives, so no later cut or parse can show a part of it.
                body: match &token {
                    Some(t) => crate::secrets::redact(&body, t),
                    None => body,
                },
                ms: INT::try_from(start.elapsed().as_millis()).unwrap_or(INT::MAX),
            })
        })?;
        Ok(out.map_err(|e| self.redact(e)))
    }

    /// Like [`send`](Self::send), failing when no answer came back.
    fn call(
        &self,
        h: &HostCtx,
        method: reqwest::Method,
        path: &str,
        params: &[(&str, &str)],
        body: Option<(&'static str, String)>,
        accept: Option<&'static str>,
    ) -> HostResult<Answer> {
        self.send(h, method, path, params, body, accept)?
            .map_err(fail)
    }

    /// The error for a non-2xx answer that is not more specifically understood.
    fn status_error(&self, what: &str, a: &Answer) -> Box<EvalAltResult> {
        let msg = influx::v3::error_message(&a.body).unwrap_or_else(|| snippet(&a.body));
        let msg = if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        };
        let text = match a.status {
            401 | 403 => match &self.token_env {
                Some(env) => format!(
                    "{what}: InfluxDB at {} refused the token from ${env} (HTTP {}{msg}); \
                     check that the token is valid and may access this {}",
                    self.url,
                    a.status,
                    if self.version == 2 {
                        "bucket"
                    } else {
                        "database"
                    }
                ),
                None => format!(
                    "{what}: InfluxDB at {} requires authentication (HTTP {}{msg}); put a \
                     token in an environment variable and pass its name as token_env",
                    self.url, a.status
                ),
            },
            404 => format!(
                "{what}: not found at {} (HTTP 404{msg}); check the url, version ({}) and \
                 the database or bucket name",
                self.url, self.version
            ),
            s => format!("{what}: InfluxDB at {} answered HTTP {s}{msg}", self.url),
        };
        self.err(text)
    }

    fn query(&self, h: &HostCtx, q: &str) -> HostResult<Array> {
        let rows = match self.version {
            1 => {
                let read = crate::influx::readonly::influxql_is_read(q);
                if !read
                    && !h.mutation(
                        "influx::query",
                        &self.target(),
                        &format!("InfluxQL: {}", preview(q)),
                    )?
                {
                    return Ok(Array::new());
                }
                let mut params = vec![("q", q)];
                if let Some(db) = &self.db {
                    params.push(("db", db.as_str()));
                }
                let method = if read {
                    reqwest::Method::GET
                } else {
                    reqwest::Method::POST
                };
                let a = self.call(h, method, "/query", &params, None, None)?;
                match influx::v1::rows(&a.body) {
                    Ok(rows) if (200..300).contains(&a.status) => rows,
                    Err(e @ influx::Error::Statement { .. }) => {
                        let hint = if e.to_string().contains("database not found") {
                            " (create it with CREATE DATABASE, or fix 'db' in influx::connect)"
                        } else {
                            ""
                        };
                        return Err(self.err(format!("InfluxQL query failed: {e}{hint}")));
                    }
                    Err(influx::Error::Server { message, .. })
                        if !matches!(a.status, 401 | 403) =>
                    {
                        return Err(self.err(format!(
                            "InfluxDB at {} rejected the query (HTTP {}): {message}",
                            self.url, a.status
                        )));
                    }
                    _ if !(200..300).contains(&a.status) => {
                        return Err(self.status_error("InfluxQL query failed", &a));
                    }
                    Err(e) => return Err(self.err(format!("InfluxQL query: {e}"))),
                    Ok(_) => unreachable!("guarded above"),
                }
            }
            2 => {
                let org = self.need(&self.org, "org", "a Flux query")?;
                if !crate::influx::readonly::flux_is_read(q)
                    && !h.mutation(
                        "influx::query",
                        &self.target(),
                        &format!("Flux: {}", preview(q)),
                    )?
                {
                    return Ok(Array::new());
                }
                let body = serde_json::json!({
                    "query": q,
                    "type": "flux",
                    "dialect": {
                        "header": true,
                        "annotations": ["datatype", "group", "default"],
                    },
                });
                let a = self.call(
                    h,
                    reqwest::Method::POST,
                    "/api/v2/query",
                    &[("org", org)],
                    Some(("application/json", body.to_string())),
                    Some("application/csv"),
                )?;
                if !(200..300).contains(&a.status) {
                    // A CSV error table or a JSON {code, message}.
                    if let Err(influx::Error::Server { message, .. }) = influx::csv::parse(&a.body)
                        && !matches!(a.status, 401 | 403)
                    {
                        return Err(self.err(format!(
                            "InfluxDB at {} rejected the Flux query (HTTP {}): {message}",
                            self.url, a.status
                        )));
                    }
                    return Err(self.status_error("Flux query failed", &a));
                }
                influx::csv::rows(&a.body)
                    .map_err(|e| self.err(format!("Flux query failed: {e}")))?
            }
            _ => {
                let db = self.need(&self.db, "db", "an SQL query")?;
                let format = if self.jsonl { "jsonl" } else { "json" };
                let body = serde_json::json!({ "db": db, "q": q, "format": format });
                let a = self.call(
                    h,
                    reqwest::Method::POST,
                    "/api/v3/query_sql",
                    &[],
                    Some(("application/json", body.to_string())),
                    None,
                )?;
                if !(200..300).contains(&a.status) {
                    if a.status == 400 || a.status == 404 {
                        let msg =
                            influx::v3::error_message(&a.body).unwrap_or_else(|| snippet(&a.body));
                        return Err(self.err(format!(
                            "InfluxDB at {} rejected the SQL query (HTTP {}): {msg}",
                            self.url, a.status
                        )));
                    }
                    return Err(self.status_error("SQL query failed", &a));
                }
                let parsed = if self.jsonl {
                    influx::v3::rows_jsonl(&a.body)
                } else {
                    influx::v3::rows_json(&a.body)
                };
                parsed.map_err(|e| self.err(format!("SQL query failed: {e}")))?
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| Dynamic::from_map(row_map(r)))
            .collect())
    }

    fn target(&self) -> String {
        match (self.version, &self.db, &self.bucket) {
            (2, _, Some(b)) => format!("{} bucket={b}", self.url),
            (_, Some(db), _) => format!("{} db={db}", self.url),
            _ => self.url.clone(),
        }
    }

    fn write(&self, h: &HostCtx, text: String) -> HostResult<Map> {
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        let mut out = Map::new();
        out.insert("lines".into(), (lines as INT).into());
        if lines == 0 {
            out.insert("ok".into(), true.into());
            return Ok(out);
        }
        let (path, mut params): (&str, Vec<(&str, &str)>) = match self.version {
            1 => ("/write", vec![("db", self.need(&self.db, "db", "write")?)]),
            2 => (
                "/api/v2/write",
                vec![
                    ("org", self.need(&self.org, "org", "write")?),
                    ("bucket", self.need(&self.bucket, "bucket", "write")?),
                ],
            ),
            _ => (
                "/api/v3/write_lp",
                vec![("db", self.need(&self.db, "db", "write")?)],
            ),
        };
        let detail = format!(
            "{lines} line{} of line protocol: {}",
            if lines == 1 { "" } else { "s" },
            preview(text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""))
        );
        if !h.mutation("influx::write", &self.target(), &detail)? {
            out.insert("ok".into(), true.into());
            out.insert("dry_run".into(), true.into());
            return Ok(out);
        }
        let precision = self.precision.as_deref().map(|p| match (self.version, p) {
            (3, "ns") => "nanosecond",
            (3, "us") => "microsecond",
            (3, "ms") => "millisecond",
            (3, "s") => "second",
            (_, p) => p,
        });
        if let Some(p) = precision {
            params.push(("precision", p));
        }
        let a = self.call(
            h,
            reqwest::Method::POST,
            path,
            &params,
            Some(("text/plain; charset=utf-8", text)),
            None,
        )?;
        if (200..300).contains(&a.status) {
            out.insert("ok".into(), true.into());
            out.insert("ms".into(), a.ms.into());
            return Ok(out);
        }
        if matches!(a.status, 401 | 403) {
            return Err(self.status_error("write failed", &a));
        }
        let where_ = self.target();
        let Some(w) = influx::write_error(&a.body) else {
            return Err(self.status_error(&format!("write to {where_} failed"), &a));
        };
        let mut msg = format!(
            "InfluxDB rejected the write to {where_} (HTTP {}): {}",
            a.status, w.message
        );
        for l in w.lines.iter().take(5) {
            msg.push_str(&format!(
                "\n  line {}: {} ({})",
                l.line,
                l.message,
                preview(&l.original)
            ));
        }
        if w.lines.len() > 5 {
            msg.push_str(&format!("\n  ... and {} more", w.lines.len() - 5));
        }
        if w.partial {
            msg.push_str(&format!(
                "\nthe other lines of the batch ({lines} in all) were written"
            ));
        }
        if w.message.contains("database not found") || w.message.contains("not found") {
            msg.push_str(
                "\ncreate the database or bucket first, or fix the name in influx::connect",
            );
        } else if w.message.contains("field type conflict") || w.message.contains("column type") {
            msg.push_str(
                "\na field keeps the type of its first value in a shard: write the same type \
                 (e.g. 1.0 for a float, 1i for an integer)",
            );
        }
        Err(self.err(msg))
    }

    fn ping(&self, h: &HostCtx) -> HostResult<Map> {
        let mut m = Map::new();
        match self.send(h, reqwest::Method::GET, "/ping", &[], None, None)? {
            Ok(a) => {
                let ok = (200..300).contains(&a.status);
                let version = a.version.clone().or_else(|| {
                    serde_json::from_str::<serde_json::Value>(&a.body)
                        .ok()
                        .and_then(|v| v.get("version")?.as_str().map(str::to_string))
                });
                m.insert("ok".into(), ok.into());
                m.insert("status".into(), (a.status as INT).into());
                m.insert("ms".into(), a.ms.into());
                m.insert(
                    "version".into(),
                    version.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
                );
                let error = if ok {
                    String::new()
                } else {
                    self.redact(format!(
                        "InfluxDB at {} answered HTTP {}",
                        self.url, a.status
                    ))
                };
                m.insert("error".into(), error.into());
            }
            Err(e) => {
                m.insert("ok".into(), false.into());
                m.insert("status".into(), (0 as INT).into());
                m.insert("ms".into(), (0 as INT).into());
                m.insert("version".into(), Dynamic::UNIT);
                m.insert("error".into(), e.into());
            }
        }
        Ok(m)
    }

    fn count(&self, h: &HostCtx, measurement: &str, since: Option<Duration>) -> HostResult<INT> {
        if measurement.is_empty() {
            return Err(invalid("influx count: the measurement name is empty"));
        }
        let ms = since.map(|d| d.as_millis());
        let max_of = |rows: &Array, pick: &dyn Fn(&str) -> bool| -> INT {
            rows.iter()
                .filter_map(|r| r.read_lock::<Map>().map(|m| m.clone()))
                .flat_map(|m| {
                    m.into_iter()
                        .filter(|(k, _)| pick(k))
                        .filter_map(|(_, v)| v.as_int().ok())
                        .collect::<Vec<_>>()
                })
                .max()
                .unwrap_or(0)
        };
        match self.version {
            1 => {
                self.need(&self.db, "db", "count")?;
                let mut q = format!("SELECT COUNT(*) FROM {}", influxql_ident(measurement));
                if let Some(ms) = ms {
                    q.push_str(&format!(" WHERE time > now() - {ms}ms"));
                }
                let rows = self.query(h, &q)?;
                // One count per field: the most-written field's count is the point count
                // when every point carries it.
                Ok(max_of(&rows, &|k| k.starts_with("count")))
            }
            2 => {
                let bucket = self.need(&self.bucket, "bucket", "count")?;
                let start = ms
                    .map(|ms| format!("-{ms}ms"))
                    .unwrap_or_else(|| "0".into());
                let q = format!(
                    "from(bucket: {}) |> range(start: {start}) \
                     |> filter(fn: (r) => r._measurement == {}) \
                     |> group(columns: [\"_field\"]) |> count()",
                    flux_string(bucket),
                    flux_string(measurement)
                );
                let rows = self.query(h, &q)?;
                Ok(max_of(&rows, &|k| k == "_value"))
            }
            _ => {
                let mut q = format!("SELECT COUNT(*) AS n FROM {}", sql_ident(measurement));
                if let Some(ms) = ms {
                    q.push_str(&format!(
                        " WHERE time > now() - INTERVAL '{ms} milliseconds'"
                    ));
                }
                let rows = self.query(h, &q)?;
                Ok(max_of(&rows, &|k| k == "n"))
            }
        }
    }
}

/// Text for "no answer came back".
fn unreachable(
    base: &str,
    method: &reqwest::Method,
    path: &str,
    timeout: Duration,
    e: &reqwest::Error,
) -> String {
    if e.is_timeout() {
        return format!(
            "InfluxDB at {base} did not answer {method} {path} within {}: it may be down or \
             overloaded (raise 'timeout' in influx::connect if queries are slow)",
            human(timeout)
        );
    }
    let root = super::http::root_cause(e);
    if e.is_connect() {
        format!(
            "cannot reach InfluxDB at {base} ({root}): InfluxDB may be down, or listening on \
             another address; check the url in influx::connect"
        )
    } else {
        format!("{method} {base}{path} failed: {root}")
    }
}

/// The first 200 characters of a body, for error messages.
fn snippet(body: &str) -> String {
    let t = body.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

fn preview(s: &str) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// Whether every statement of an InfluxQL query only reads (`SELECT` without `INTO`, `SHOW`,
/// `EXPLAIN`). Anything else is treated as a mutation: a wrong "mutation" only costs a plan
/// entry, a wrong "read" would let a `--read-only` run drop a database.
pub fn influxql_is_read(q: &str) -> bool {
    let mut statements: Vec<Vec<String>> = vec![Vec::new()];
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = q.chars().peekable();
    let flush = |word: &mut String, st: &mut Vec<Vec<String>>| {
        if !word.is_empty() {
            if let Some(last) = st.last_mut() {
                last.push(word.to_ascii_uppercase());
            }
            word.clear();
        }
    };
    while let Some(c) = chars.next() {
        match quote {
            Some(qc) => {
                if c == '\\' {
                    chars.next();
                } else if c == qc {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    flush(&mut word, &mut statements);
                    quote = Some(c);
                }
                ';' => {
                    flush(&mut word, &mut statements);
                    statements.push(Vec::new());
                }
                c if c.is_alphanumeric() || c == '_' => word.push(c),
                _ => flush(&mut word, &mut statements),
            },
        }
    }
    flush(&mut word, &mut statements);
    statements
        .iter()
        .filter(|s| !s.is_empty())
        .all(|s| match s[0].as_str() {
            "SHOW" | "EXPLAIN" => true,
            "SELECT" => !s.iter().any(|w| w == "INTO"),
            _ => false,
        })
}

/// Whether a Flux script writes (`to()`, `experimental.to()`, `sql.to()`): a heuristic on the
/// text, erring towards "writes".
pub fn flux_writes(q: &str) -> bool {
    let compact: String = q.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("|>to(") || compact.contains(".to(")
}

fn influxql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn flux_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn value_dynamic(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Int(i) | Value::Duration(i) => i.into(),
        // Above the int range a float would round (18446744073709551615 → 1.8e19): keep the
        // exact digits as a string instead (documented in the module comment).
        Value::UInt(u) => match INT::try_from(u) {
            Ok(i) => i.into(),
            Err(_) => u.to_string().into(),
        },
        Value::Float(f) => f.into(),
        Value::String(s) | Value::Time(s) => s.into(),
    }
}

fn row_map(r: Row) -> Map {
    r.into_iter()
        .map(|(k, v)| (k.into(), value_dynamic(v)))
        .collect()
}

fn opt_string(opts: &Map, key: &str) -> HostResult<Option<String>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => match v.clone().into_string() {
            Ok(s) if !s.is_empty() => Ok(Some(s)),
            Ok(_) => Err(invalid(format!("influx::connect: option '{key}' is empty"))),
            Err(t) => Err(invalid(format!(
                "influx::connect: option '{key}' must be a string, not {t}"
            ))),
        },
    }
}

/// Builds a connection from `influx::connect`'s options (see the module docs).
pub fn connect_with(opts: &Map) -> HostResult<InfluxConn> {
    const KNOWN: &str = "url, version, db, bucket, org, token_env, timeout, precision, format";
    for k in opts.keys() {
        match k.as_str() {
            "url" | "version" | "db" | "bucket" | "org" | "token_env" | "timeout" | "precision"
            | "format" => {}
            "token" | "password" => {
                return Err(invalid(format!(
                    "influx::connect: do not put the {k} in the script (it would end up in \
                     logs and version control); export it in an environment variable and \
                     pass the variable's name as token_env"
                )));
            }
            other => {
                return Err(invalid(format!(
                    "influx::connect: unknown option '{other}' (known: {KNOWN})"
                )));
            }
        }
    }
    let version = match opts.get("version") {
        None => 1,
        Some(v) => match v.as_int() {
            Ok(n @ 1..=3) => n as u8,
            _ => {
                return Err(invalid(format!(
                    "influx::connect: version must be 1, 2 or 3, not {v}"
                )));
            }
        },
    };
    let url = opt_string(opts, "url")?.unwrap_or_else(|| {
        if version == 3 {
            "http://localhost:8181".into()
        } else {
            "http://localhost:8086".into()
        }
    });
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        invalid(format!(
            "influx::connect: url {url:?} is not a URL ({e}); e.g. http://localhost:8086"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "influx::connect: url {url:?} must start with http:// or https://"
        )));
    }
    let url = url.trim_end_matches('/').to_string();
    let token_env = opt_string(opts, "token_env")?;
    let token = match &token_env {
        None => None,
        Some(env) => match std::env::var(env) {
            Ok(t) if !t.trim().is_empty() => {
                crate::secrets::register(t.trim(), &format!("${env}"))
                    .map_err(|m| invalid(format!("influx::connect: {m}")))?;
                Some(t.trim().to_string())
            }
            _ => {
                return Err(fail(format!(
                    "influx::connect: the environment variable {env} (token_env) is not set \
                     or empty; export the InfluxDB token in it before the run"
                )));
            }
        },
    };
    let timeout = match opts.get("timeout") {
        Some(t) => to_duration(t)?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(invalid("influx::connect: timeout must be more than 0"));
    }
    let precision = opt_string(opts, "precision")?;
    if let Some(p) = &precision
        && !matches!(p.as_str(), "ns" | "us" | "ms" | "s")
    {
        return Err(invalid(format!(
            "influx::connect: precision must be ns, us, ms or s, not {p:?}"
        )));
    }
    let jsonl = match opt_string(opts, "format")?.as_deref() {
        None | Some("jsonl") => true,
        Some("json") => false,
        Some(f) => {
            return Err(invalid(format!(
                "influx::connect: format must be \"jsonl\" or \"json\", not {f:?}"
            )));
        }
    };
    Ok(InfluxConn(Arc::new(Conn {
        url,
        version,
        db: opt_string(opts, "db")?,
        bucket: opt_string(opts, "bucket")?,
        org: opt_string(opts, "org")?,
        token,
        token_env,
        timeout,
        precision,
        jsonl,
    })))
}

fn lines_text(c: &Conn, lines: Dynamic) -> HostResult<String> {
    if lines.is_string() {
        return Ok(lines.to_string());
    }
    if let Some(arr) = lines.read_lock::<Array>() {
        let mut out = Vec::with_capacity(arr.len());
        for (i, l) in arr.iter().enumerate() {
            if !l.is_string() {
                return Err(invalid(c.redact(format!(
                    "write: element {i} of the array is {}, not a line-protocol string",
                    l.type_name()
                ))));
            }
            out.push(l.to_string());
        }
        return Ok(out.join("\n"));
    }
    Err(invalid(format!(
        "write: expected a line-protocol string or an array of lines, not {}",
        lines.type_name()
    )))
}

#[export_module]
pub mod influx_api {
    use super::*;

    /// Describes a connection to InfluxDB (see the module docs for the options): `url`,
    /// `version` (1, 2, 3), `db`, `bucket`, `org`, `token_env`, `timeout`, `precision`,
    /// `format`. Sends nothing; fails when `token_env` names an unset variable.
    #[rhai_fn(return_raw)]
    pub fn connect(ctx: NativeCallContext, opts: Map) -> Result<InfluxConn, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || connect_with(&opts))
    }

    /// Runs a query (InfluxQL for v1, Flux for v2, SQL for v3) and returns its rows as an
    /// array of maps with typed values. Mutating InfluxQL/Flux follows `--dry-run` and
    /// `--read-only`.
    #[rhai_fn(global, name = "query", return_raw, pure)]
    pub fn query(
        ctx: NativeCallContext,
        conn: &mut InfluxConn,
        q: &str,
    ) -> Result<Array, Box<EvalAltResult>> {
        let call = ctx.call_position();
        let c = Arc::clone(&conn.0);
        super::super::at(call, move || {
            let h = host(&ctx)?;
            c.query(&h, q)
        })
    }

    /// Writes line protocol (a string, or an array of lines). Returns
    /// `#{ ok: true, lines: N, ms }`; fails with InfluxDB's reason (partial write, field type
    /// conflict, database not found). Recorded, not sent, in `--dry-run`; refused in
    /// `--read-only`.
    #[rhai_fn(global, name = "write", return_raw, pure)]
    pub fn write(
        ctx: NativeCallContext,
        conn: &mut InfluxConn,
        lines: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        let c = Arc::clone(&conn.0);
        super::super::at(call, move || {
            let text = lines_text(&c, lines)?;
            let h = host(&ctx)?;
            c.write(&h, text)
        })
    }

    /// Pings the server (`/ping`). Never fails: returns `#{ ok, status, version, ms, error }`.
    #[rhai_fn(global, name = "ping", return_raw, pure)]
    pub fn ping(ctx: NativeCallContext, conn: &mut InfluxConn) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        let c = Arc::clone(&conn.0);
        super::super::at(call, move || {
            let h = host(&ctx)?;
            c.ping(&h)
        })
    }

    /// Points of `measurement` written within `since` (`"1h"` or milliseconds) before now.
    /// v1 and v2 count per field and return the largest count (the number of points when
    /// every point carries that field); v3 counts rows.
    #[rhai_fn(global, name = "count", return_raw, pure)]
    pub fn count(
        ctx: NativeCallContext,
        conn: &mut InfluxConn,
        measurement: &str,
        since: Dynamic,
    ) -> Result<INT, Box<EvalAltResult>> {
        let call = ctx.call_position();
        let c = Arc::clone(&conn.0);
        super::super::at(call, move || {
            let since = to_duration(&since)?;
            let h = host(&ctx)?;
            c.count(&h, measurement, Some(since))
        })
    }

    /// Points of `measurement` over all time (see `count(measurement, since)`).
    #[rhai_fn(global, name = "count", return_raw, pure)]
    pub fn count_all(
        ctx: NativeCallContext,
        conn: &mut InfluxConn,
        measurement: &str,
    ) -> Result<INT, Box<EvalAltResult>> {
        let call = ctx.call_position();
        let c = Arc::clone(&conn.0);
        super::super::at(call, move || {
            let h = host(&ctx)?;
            c.count(&h, measurement, None)
        })
    }

    /// The base URL.
    #[rhai_fn(global, get = "url", pure)]
    pub fn url(conn: &mut InfluxConn) -> String {
        conn.0.url.clone()
    }

    /// The API version (1, 2 or 3).
    #[rhai_fn(global, get = "version", pure)]
    pub fn version(conn: &mut InfluxConn) -> INT {
        conn.0.version as INT
    }

    /// The database (v1, v3), or `()`.
    #[rhai_fn(global, get = "db", pure)]
    pub fn db(conn: &mut InfluxConn) -> Dynamic {
        conn.0
            .db
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    }

    /// The bucket (v2), or `()`.
    #[rhai_fn(global, get = "bucket", pure)]
    pub fn bucket(conn: &mut InfluxConn) -> Dynamic {
        conn.0
            .bucket
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    }

    /// `InfluxConn(v1 http://… db=…)`; the token shows as `<redacted>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(conn: &mut InfluxConn) -> String {
        conn.0.describe()
    }
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(influx_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<InfluxConn>("InfluxConn");
    engine.register_static_module("influx", MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_unsigned_values_stay_exact() {
        let d = value_dynamic(Value::UInt(u64::MAX));
        assert_eq!(d.into_string().unwrap(), "18446744073709551615");
        let d = value_dynamic(Value::UInt(i64::MAX as u64 + 1));
        assert_eq!(d.into_string().unwrap(), "9223372036854775808");
        assert_eq!(value_dynamic(Value::UInt(42)).as_int(), Ok(42));
    }

    #[test]
    fn influxql_reads_and_writes() {
        for q in [
            "SELECT * FROM cpu",
            "select count(*) from \"m\" where time > now() - 1h",
            "SHOW DATABASES; SHOW MEASUREMENTS",
            "SELECT \"into\" FROM m",
            "SELECT * FROM m WHERE t = 'INTO'",
            "EXPLAIN SELECT * FROM m",
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
    }

    #[test]
    fn flux_writes_detected() {
        assert!(flux_writes(
            "from(bucket:\"a\") |> range(start:-1h) |> to(bucket: \"b\")"
        ));
        assert!(flux_writes(
            "import \"experimental\"\ndata |> experimental.to(bucket: \"b\")"
        ));
        assert!(!flux_writes(
            "from(bucket:\"a\") |> range(start:-1h) |> count()"
        ));
    }

    #[test]
    fn quoting() {
        assert_eq!(influxql_ident("a\"b"), "\"a\\\"b\"");
        assert_eq!(flux_string("x\"y\\"), "\"x\\\"y\\\\\"");
        assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn connect_options_are_checked_and_token_redacted() {
        let mut m = Map::new();
        m.insert("token".into(), "abc".into());
        assert!(
            connect_with(&m)
                .unwrap_err()
                .to_string()
                .contains("token_env")
        );
        let mut m = Map::new();
        m.insert("versio".into(), 1.into());
        assert!(
            connect_with(&m)
                .unwrap_err()
                .to_string()
                .contains("unknown option 'versio'")
        );
        let mut m = Map::new();
        m.insert("version".into(), 4.into());
        assert!(connect_with(&m).is_err());
        let mut m = Map::new();
        m.insert("url".into(), "localhost:8086".into());
        assert!(connect_with(&m).is_err());
        let mut m = Map::new();
        m.insert("token_env".into(), "DOCKHAND_TEST_SURELY_UNSET_VAR".into());
        assert!(
            connect_with(&m)
                .unwrap_err()
                .to_string()
                .contains("DOCKHAND_TEST_SURELY_UNSET_VAR")
        );
        let c = Conn {
            url: "http://x".into(),
            version: 2,
            db: None,
            bucket: Some("b".into()),
            org: Some("o".into()),
            token: Some("s3cret".into()),
            token_env: Some("TOK".into()),
            timeout: DEFAULT_TIMEOUT,
            precision: None,
            jsonl: true,
        };
        assert!(!c.describe().contains("s3cret"));
        assert!(c.describe().contains("token=<redacted> from $TOK"));
        assert_eq!(
            c.redact("bad token s3cret here"),
            "bad token <redacted> here"
        );
    }
}
