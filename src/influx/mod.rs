//! InfluxDB 1.x, 2.x and 3.x for Rust: a typed [`Client`] over HTTP, and the pure response
//! parsers it is built on.
//!
//! The client ([`client`], [`query`], [`write`]) owns the connection settings and answers
//! with typed values ([`Row`]s, [`Written`], [`Ping`]) or an [`Error`] that says what failed;
//! it knows nothing of Rhai, so the host module `influx::` (src/host/influx.rs) is only a
//! conversion layer, and other Rust programs can use it as it is.
//!
//! The parsers are pure functions from a response body to typed rows, with no I/O, so they
//! can be tested on documented bodies, fuzzed, and reused:
//!
//! * [`csv`] — Flux **annotated CSV** (InfluxDB 2.x `/api/v2/query`): `#datatype`, `#group`,
//!   `#default`, several tables and schema changes in one body, in-band error tables.
//! * [`v1`] — InfluxQL JSON (InfluxDB 1.x `/query`): `results[].series[]`, statement errors.
//! * [`v3`] — InfluxDB 3 `/api/v3/query_sql` in `json` and `jsonl` formats, and the JSON
//!   error bodies of every version's write endpoint ([`write_error`]).
//!
//! Every parser returns `Err` for bad input and never panics (each is fuzzed with proptest).

pub mod client;
pub mod csv;
mod error;
pub mod query;
pub mod readonly;
pub mod settings;
pub mod v1;
pub mod v3;
pub mod write;

use indexmap::IndexMap;

pub use client::{Client, Ping};
pub use error::Error;
pub use query::{CountQuery, Mutation, QueryPlan};
pub use settings::{Format, Options, Precision, Settings, Version};
pub use v3::{WriteError, write_error};
pub use write::{WritePlan, Written};

/// One typed value of a row.
///
/// Times stay text (RFC3339, as the server wrote them): a script compares them as strings or
/// hands them to another query, and converting would lose nanoseconds or the server's zone.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An empty cell with no default, or JSON `null`.
    Null,
    Bool(bool),
    Int(i64),
    /// An `unsignedLong`, or a JSON integer above `i64::MAX`: exact (the host module gives
    /// scripts an int when it fits, else its decimal text, never a rounded float).
    UInt(u64),
    Float(f64),
    String(String),
    /// A timestamp, RFC3339 text as the server sent it.
    Time(String),
    /// A Flux duration, in nanoseconds.
    Duration(i64),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Duration(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Time(s) => Some(s),
            _ => None,
        }
    }
}

/// A record: column name → value, in the server's column order.
pub type Row = IndexMap<String, Value>;

/// Why a response could not be turned into rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The server answered with an error (top-level `error`, an error table, a JSON error body).
    #[error("{message}")]
    Server {
        message: String,
        /// The annotated-CSV error table's `reference` code, when there is one.
        reference: Option<String>,
    },
    /// One statement of a multi-statement InfluxQL query failed.
    #[error("statement {statement}: {message}")]
    Statement { statement: usize, message: String },
    /// The body is not what the protocol says it should be.
    #[error("malformed {what} at line {line}: {message}")]
    Malformed {
        what: &'static str,
        line: usize,
        message: String,
    },
}

impl ParseError {
    fn malformed(what: &'static str, line: usize, message: impl Into<String>) -> Self {
        ParseError::Malformed {
            what,
            line,
            message: message.into(),
        }
    }
}

/// The body without a leading UTF-8 byte-order mark. Every parser strips it the same way
/// (Windows tools and some proxies add one), so a body reads the same whatever its format.
pub(crate) fn strip_bom(body: &str) -> &str {
    body.strip_prefix('\u{feff}').unwrap_or(body)
}

/// Converts a JSON value to a [`Value`]; nested arrays and objects become their JSON text.
pub fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// Parses a Flux/Go duration (`1h2m3.5s`, `150ms`, `2us`, `1µs`, `-5s`, `3d`, `1w`) or a plain
/// integer number of nanoseconds into nanoseconds. Calendar units (`mo`, `y`) have no fixed
/// length and are an error.
pub fn parse_duration_ns(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let (neg, mut rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: bad number"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "" => return Err(format!("invalid duration {s:?}: missing unit")),
            "mo" | "y" => {
                return Err(format!(
                    "duration {s:?} uses a calendar unit ({unit}) with no fixed length"
                ));
            }
            other => return Err(format!("invalid duration {s:?}: unknown unit {other:?}")),
        };
        total += n * scale;
    }
    if !total.is_finite() || total >= 9.2e18 {
        return Err(format!("duration {s:?} is out of range"));
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// A recorded response body from tests/fixtures/influx (its README names each source).
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/influx")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("1ms"), Ok(1_000_000));
        assert_eq!(parse_duration_ns("2us"), Ok(2_000));
        assert_eq!(parse_duration_ns("1µs"), Ok(1_000));
        assert_eq!(parse_duration_ns("1h0m0s"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns("-5s"), Ok(-5_000_000_000));
        assert_eq!(parse_duration_ns("42"), Ok(42));
        assert_eq!(parse_duration_ns("0"), Ok(0));
        assert!(parse_duration_ns("1mo").unwrap_err().contains("calendar"));
        assert!(parse_duration_ns("5").is_ok());
        assert!(parse_duration_ns("s").is_err());
        assert!(parse_duration_ns("1x").is_err());
        assert!(parse_duration_ns("").is_err());
        assert!(parse_duration_ns("99999999999999h").is_err());
    }

    proptest! {
        #[test]
        fn duration_never_panics(s in "\\PC*") {
            let _ = parse_duration_ns(&s);
        }

        #[test]
        fn duration_of_units_never_panics(s in "[-+]?([0-9.]{0,6}(ns|us|µs|ms|s|m|h|d|w|mo|y)?){0,4}") {
            let _ = parse_duration_ns(&s);
        }
    }
}
