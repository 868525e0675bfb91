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
//!
//! This file only converts: option maps to [`influx::Options`], rows and summaries to Rhai
//! maps, [`influx::Error`] to a Rhai error. The client is [`crate::influx::Client`].

use std::sync::Arc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Map};

use super::time::to_duration;
use super::{HostCtx, HostResult, at, fail, invalid, with_host};
use crate::influx::{self, Client, Row, Value, Version};

/// A connection as scripts hold it. Cheap to clone.
#[derive(Clone)]
pub struct InfluxConn(Arc<Client>);

impl std::fmt::Debug for InfluxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.settings().describe())
    }
}

/// The Rhai error for a client error: the script's fault (a bad option) ends the run with
/// exit code 2, anything the server or the network did with 1.
fn error(e: influx::Error) -> Box<EvalAltResult> {
    match e {
        influx::Error::Invalid(m) => invalid(m),
        other => fail(other.to_string()),
    }
}

const KNOWN: &str = "url, version, db, bucket, org, token_env, timeout, precision, format";

/// Builds a connection from `influx::connect`'s options (see the module docs).
pub fn connect_with(opts: &Map) -> HostResult<InfluxConn> {
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
        None => Version::V1,
        Some(v) => v
            .as_int()
            .ok()
            .and_then(Version::from_number)
            .ok_or_else(|| {
                invalid(format!(
                    "influx::connect: version must be 1, 2 or 3, not {v}"
                ))
            })?,
    };
    let options = influx::Options {
        url: opt_string(opts, "url")?,
        version,
        token_env: opt_string(opts, "token_env")?,
        timeout: opts.get("timeout").map(to_duration).transpose()?,
        precision: opt_string(opts, "precision")?,
        format: opt_string(opts, "format")?,
        db: opt_string(opts, "db")?,
        bucket: opt_string(opts, "bucket")?,
        org: opt_string(opts, "org")?,
    };
    Ok(InfluxConn(Arc::new(
        Client::connect(options).map_err(error)?,
    )))
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

/// A write's argument as line-protocol text: a string, or an array of string lines.
fn lines_text(c: &Client, lines: Dynamic) -> HostResult<String> {
    if lines.is_string() {
        return Ok(lines.to_string());
    }
    if let Some(arr) = lines.read_lock::<Array>() {
        let mut out = Vec::with_capacity(arr.len());
        for (i, l) in arr.iter().enumerate() {
            if !l.is_string() {
                return Err(invalid(c.settings().redact(format!(
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

/// Runs a query, unless the run's mode holds its mutation back (dry run: no rows) or refuses
/// it (read-only).
fn query_rows(h: &HostCtx, c: &Client, q: &str) -> HostResult<Vec<Row>> {
    let plan = c.plan_query(q).map_err(error)?;
    if let Some(m) = plan.mutation()
        && !h.mutation("influx::query", &m.target, &m.detail)?
    {
        return Ok(Vec::new());
    }
    h.block_on(c.query(h.http_for(c.settings().url()), &plan))?
        .map_err(error)
}

fn write(h: &HostCtx, c: &Client, text: String) -> HostResult<Map> {
    let plan = c.plan_write(text).map_err(error)?;
    let mut out = Map::new();
    out.insert("lines".into(), (plan.lines() as INT).into());
    out.insert("ok".into(), true.into());
    if plan.lines() == 0 {
        return Ok(out);
    }
    let m = plan.mutation();
    if !h.mutation("influx::write", &m.target, &m.detail)? {
        out.insert("dry_run".into(), true.into());
        return Ok(out);
    }
    let written = h
        .block_on(c.write(h.http_for(c.settings().url()), plan))?
        .map_err(error)?;
    out.insert("ms".into(), int(written.ms).into());
    Ok(out)
}

fn ping(h: &HostCtx, c: &Client) -> HostResult<Map> {
    let p = h
        .block_on(c.ping(h.http_for(c.settings().url())))?
        .map_err(error)?;
    let mut m = Map::new();
    m.insert("ok".into(), p.ok.into());
    m.insert("status".into(), INT::from(p.status).into());
    m.insert("ms".into(), int(p.ms).into());
    m.insert(
        "version".into(),
        p.version.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    m.insert("error".into(), p.error.into());
    Ok(m)
}

fn count(
    h: &HostCtx,
    c: &Client,
    measurement: &str,
    since: Option<std::time::Duration>,
) -> HostResult<INT> {
    let cq = c.count_query(measurement, since).map_err(error)?;
    let rows = query_rows(h, c, &cq.text)?;
    Ok(cq.total(&rows))
}

fn int(n: u64) -> INT {
    INT::try_from(n).unwrap_or(INT::MAX)
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

fn rows_array(rows: Vec<Row>) -> Array {
    rows.into_iter()
        .map(|r| {
            let m: Map = r
                .into_iter()
                .map(|(k, v)| (k.into(), value_dynamic(v)))
                .collect();
            Dynamic::from_map(m)
        })
        .collect()
}

fn opt_dynamic(v: Option<&str>) -> Dynamic {
    v.map(|s| Dynamic::from(s.to_string()))
        .unwrap_or(Dynamic::UNIT)
}

#[export_module]
pub mod influx_api {
    use super::*;

    /// Describes a connection to InfluxDB (see the module docs for the options): `url`,
    /// `version` (1, 2, 3), `db`, `bucket`, `org`, `token_env`, `timeout`, `precision`,
    /// `format`. Sends nothing; fails when `token_env` names an unset variable.
    #[rhai_fn(return_raw)]
    pub fn connect(ctx: NativeCallContext, opts: Map) -> Result<InfluxConn, Box<EvalAltResult>> {
        at(ctx.call_position(), || connect_with(&opts))
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
        with_host(&ctx, |h| Ok(rows_array(query_rows(h, &conn.0, q)?)))
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
        let c = &conn.0;
        at(ctx.call_position(), || lines_text(c, lines))
            .and_then(|text| with_host(&ctx, |h| super::write(h, c, text)))
    }

    /// Pings the server (`/ping`). Never fails: returns `#{ ok, status, version, ms, error }`.
    #[rhai_fn(global, name = "ping", return_raw, pure)]
    pub fn ping(ctx: NativeCallContext, conn: &mut InfluxConn) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| super::ping(h, &conn.0))
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
        let c = &conn.0;
        at(ctx.call_position(), || to_duration(&since))
            .and_then(|since| with_host(&ctx, |h| super::count(h, c, measurement, Some(since))))
    }

    /// Points of `measurement` over all time (see `count(measurement, since)`).
    #[rhai_fn(global, name = "count", return_raw, pure)]
    pub fn count_all(
        ctx: NativeCallContext,
        conn: &mut InfluxConn,
        measurement: &str,
    ) -> Result<INT, Box<EvalAltResult>> {
        with_host(&ctx, |h| super::count(h, &conn.0, measurement, None))
    }

    /// The base URL.
    #[rhai_fn(global, get = "url", pure)]
    pub fn url(conn: &mut InfluxConn) -> String {
        conn.0.settings().url().to_string()
    }

    /// The API version (1, 2 or 3).
    #[rhai_fn(global, get = "version", pure)]
    pub fn version(conn: &mut InfluxConn) -> INT {
        conn.0.settings().version().number() as INT
    }

    /// The database (v1, v3), or `()`.
    #[rhai_fn(global, get = "db", pure)]
    pub fn db(conn: &mut InfluxConn) -> Dynamic {
        opt_dynamic(conn.0.settings().db())
    }

    /// The bucket (v2), or `()`.
    #[rhai_fn(global, get = "bucket", pure)]
    pub fn bucket(conn: &mut InfluxConn) -> Dynamic {
        opt_dynamic(conn.0.settings().bucket())
    }

    /// `InfluxConn(v1 http://… db=…)`; the token shows as `<redacted>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(conn: &mut InfluxConn) -> String {
        conn.0.settings().describe()
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

    fn connect_error(pairs: &[(&str, Dynamic)]) -> Box<EvalAltResult> {
        let m: Map = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect();
        connect_with(&m).unwrap_err()
    }

    #[test]
    fn connect_options_are_checked() {
        assert!(
            connect_error(&[("token", "abc".into())])
                .to_string()
                .contains("token_env")
        );
        let e = connect_error(&[("versio", 1.into())]);
        assert!(e.to_string().contains("unknown option 'versio'"), "{e}");
        for bad in [("version", 4.into()), ("url", "localhost:8086".into())] {
            let e = connect_error(&[bad]);
            let fault = crate::diagnostic::Fault::of(&e);
            assert_eq!(
                fault,
                Some(crate::diagnostic::Fault::InvalidArgument),
                "{e}"
            );
        }
        let e = connect_error(&[("token_env", "DOCKHAND_TEST_SURELY_UNSET_VAR".into())]);
        assert!(e.to_string().contains("DOCKHAND_TEST_SURELY_UNSET_VAR"));
        let c = connect_with(&Map::new()).unwrap();
        assert_eq!(format!("{c:?}"), "InfluxConn(v1 http://localhost:8086)");
    }

    #[test]
    fn client_errors_map_to_their_exit_class() {
        use crate::diagnostic::Fault;
        let fault = |e: influx::Error| Fault::of(&error(e));
        assert_eq!(
            fault(influx::Error::Invalid("x".into())),
            Some(Fault::InvalidArgument)
        );
        let status = influx::Error::Status {
            status: 500,
            message: "boom".into(),
        };
        assert_eq!(fault(status.clone()), None);
        assert_eq!(error(status).to_string(), "Runtime error: boom");
        assert_eq!(fault(influx::Error::MissingToken("t".into())), None);
    }
}
