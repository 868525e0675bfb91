//! Queries: InfluxQL (v1), Flux (v2), SQL (v3), and the point count built on them.
//!
//! A query is planned before it is sent ([`Client::plan_query`]): the plan says whether the
//! query changes anything ([`QueryPlan::mutation`]), decided by parsing
//! ([`readonly`](super::readonly)), so the caller can hold a mutation back (a dry run) or
//! refuse it (a read-only run) before a byte leaves. The client itself has no such modes.

use std::time::Duration;

use super::client::{Answer, Request};
use super::error::{preview, snippet};
use super::settings::{Format, Version};
use super::{Client, Error, ParseError, Row, Value, csv, readonly, v1, v3};

/// A change a request would make: where, and what (one line, for a plan).
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub target: String,
    pub detail: String,
}

/// A query checked and ready to send.
#[derive(Debug, Clone)]
pub struct QueryPlan<'q> {
    text: &'q str,
    mutation: Option<Mutation>,
}

impl QueryPlan<'_> {
    /// `Some` when the query is not a pure read.
    pub fn mutation(&self) -> Option<&Mutation> {
        self.mutation.as_ref()
    }
}

/// The query behind [`Client::count`]-style counting, and how to read its answer.
#[derive(Debug, Clone)]
pub struct CountQuery {
    pub text: String,
    /// Which columns hold counts.
    column: CountColumn,
}

#[derive(Debug, Clone, Copy)]
enum CountColumn {
    /// InfluxQL's `count_<field>`, one per field.
    Prefix,
    /// Flux's `_value`, one table per field.
    Value,
    /// The SQL query's `n`.
    N,
}

impl CountQuery {
    /// The largest count in `rows`: the number of points when every point carries the
    /// most-written field (v1, v2 count per field); 0 when there is none.
    pub fn total(&self, rows: &[Row]) -> i64 {
        let pick = |k: &str| match self.column {
            CountColumn::Prefix => k.starts_with("count"),
            CountColumn::Value => k == "_value",
            CountColumn::N => k == "n",
        };
        rows.iter()
            .flat_map(|r| r.iter().filter(|(k, _)| pick(k)))
            .filter_map(|(_, v)| match v {
                Value::Int(i) | Value::Duration(i) => Some(*i),
                Value::UInt(u) => i64::try_from(*u).ok(),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

impl Client {
    /// Checks that the settings allow the query and whether it changes anything.
    pub fn plan_query<'q>(&self, q: &'q str) -> Result<QueryPlan<'q>, Error> {
        let s = &self.settings;
        let mutation = |lang: &str| Mutation {
            target: s.target(),
            detail: format!("{lang}: {}", preview(q)),
        };
        let mutation = match s.version {
            Version::V1 => (!readonly::influxql_is_read(q)).then(|| mutation("InfluxQL")),
            Version::V2 => {
                s.need(&s.org, "org", "a Flux query")?;
                (!readonly::flux_is_read(q)).then(|| mutation("Flux"))
            }
            Version::V3 => {
                s.need(&s.db, "db", "an SQL query")?;
                None
            }
        };
        Ok(QueryPlan { text: q, mutation })
    }

    /// Runs a planned query and returns its rows.
    pub async fn query(
        &self,
        http: &reqwest::Client,
        plan: &QueryPlan<'_>,
    ) -> Result<Vec<Row>, Error> {
        match self.settings.version {
            Version::V1 => self.influxql(http, plan).await,
            Version::V2 => self.flux(http, plan.text).await,
            Version::V3 => self.sql(http, plan.text).await,
        }
    }

    async fn influxql(
        &self,
        http: &reqwest::Client,
        plan: &QueryPlan<'_>,
    ) -> Result<Vec<Row>, Error> {
        let s = &self.settings;
        let mut params = vec![("q", plan.text)];
        if let Some(db) = &s.db {
            params.push(("db", db.as_str()));
        }
        // Reads may be cached and retried by proxies; InfluxDB 1.x wants POST for the rest.
        let method = if plan.mutation.is_none() {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let mut req = Request::new(method, "/query");
        req.params = &params;
        let a = self.send(http, req).await?;
        let status = a.status;
        match v1::rows(&a.body) {
            Ok(rows) if a.ok() => Ok(rows),
            Err(e @ ParseError::Statement { .. }) => {
                let hint = if e.to_string().contains("database not found") {
                    " (create it with CREATE DATABASE, or fix 'db' in influx::connect)"
                } else {
                    ""
                };
                Err(self.rejected(status, format!("InfluxQL query failed: {e}{hint}")))
            }
            Err(ParseError::Server { message, .. }) if !matches!(status, 401 | 403) => Err(self
                .rejected(
                    status,
                    format!(
                        "InfluxDB at {} rejected the query (HTTP {status}): {message}",
                        s.url
                    ),
                )),
            _ if !a.ok() => Err(self.status_error("InfluxQL query failed", &a)),
            Err(e) => Err(self.parse_error("InfluxQL query", status, e)),
            Ok(_) => unreachable!("guarded above"),
        }
    }

    async fn flux(&self, http: &reqwest::Client, q: &str) -> Result<Vec<Row>, Error> {
        let s = &self.settings;
        let org = s.need(&s.org, "org", "a Flux query")?;
        let body = serde_json::json!({
            "query": q,
            "type": "flux",
            "dialect": {
                "header": true,
                "annotations": ["datatype", "group", "default"],
            },
        });
        let mut req = Request::new(reqwest::Method::POST, "/api/v2/query");
        let params = [("org", org)];
        req.params = &params;
        req.body = Some(("application/json", body.to_string()));
        req.accept = Some("application/csv");
        let a = self.send(http, req).await?;
        if !a.ok() {
            // A CSV error table or a JSON {code, message}.
            if let Err(ParseError::Server { message, .. }) = csv::parse(&a.body)
                && !matches!(a.status, 401 | 403)
            {
                let m = format!(
                    "InfluxDB at {} rejected the Flux query (HTTP {}): {message}",
                    s.url, a.status
                );
                return Err(self.rejected(a.status, m));
            }
            return Err(self.status_error("Flux query failed", &a));
        }
        csv::rows(&a.body).map_err(|e| self.parse_error("Flux query failed", a.status, e))
    }

    async fn sql(&self, http: &reqwest::Client, q: &str) -> Result<Vec<Row>, Error> {
        let s = &self.settings;
        let db = s.need(&s.db, "db", "an SQL query")?;
        let format = match s.format {
            Format::Jsonl => "jsonl",
            Format::Json => "json",
        };
        let body = serde_json::json!({ "db": db, "q": q, "format": format });
        let mut req = Request::new(reqwest::Method::POST, "/api/v3/query_sql");
        req.body = Some(("application/json", body.to_string()));
        let a = self.send(http, req).await?;
        if !a.ok() {
            return Err(self.sql_status_error(&a));
        }
        let parsed = match s.format {
            Format::Jsonl => v3::rows_jsonl(&a.body),
            Format::Json => v3::rows_json(&a.body),
        };
        parsed.map_err(|e| self.parse_error("SQL query failed", a.status, e))
    }

    fn sql_status_error(&self, a: &Answer) -> Error {
        if a.status == 400 || a.status == 404 {
            let msg = v3::error_message(&a.body).unwrap_or_else(|| snippet(&a.body));
            let m = format!(
                "InfluxDB at {} rejected the SQL query (HTTP {}): {msg}",
                self.settings.url, a.status
            );
            return self.rejected(a.status, m);
        }
        self.status_error("SQL query failed", a)
    }

    /// A body that did not parse: an in-band server error is a rejection, the rest malformed.
    fn parse_error(&self, what: &str, status: u16, e: ParseError) -> Error {
        let message = format!("{what}: {e}");
        match e {
            ParseError::Malformed { .. } => Error::Parse {
                message: self.settings.redact(message),
                cause: e,
            },
            _ => self.rejected(status, message),
        }
    }

    /// The query counting the points of `measurement` written within `since` before now
    /// (all time when `None`). v1 and v2 count per field; v3 counts rows.
    pub fn count_query(
        &self,
        measurement: &str,
        since: Option<Duration>,
    ) -> Result<CountQuery, Error> {
        if measurement.is_empty() {
            return Err(Error::Invalid(
                "influx count: the measurement name is empty".into(),
            ));
        }
        let s = &self.settings;
        let ms = since.map(|d| d.as_millis());
        let (text, column) = match s.version {
            Version::V1 => {
                s.need(&s.db, "db", "count")?;
                let mut q = format!("SELECT COUNT(*) FROM {}", influxql_ident(measurement));
                if let Some(ms) = ms {
                    q.push_str(&format!(" WHERE time > now() - {ms}ms"));
                }
                (q, CountColumn::Prefix)
            }
            Version::V2 => {
                let bucket = s.need(&s.bucket, "bucket", "count")?;
                let start = ms.map_or_else(|| "0".into(), |ms| format!("-{ms}ms"));
                let q = format!(
                    "from(bucket: {}) |> range(start: {start}) \
                     |> filter(fn: (r) => r._measurement == {}) \
                     |> group(columns: [\"_field\"]) |> count()",
                    flux_string(bucket),
                    flux_string(measurement)
                );
                (q, CountColumn::Value)
            }
            Version::V3 => {
                let mut q = format!("SELECT COUNT(*) AS n FROM {}", sql_ident(measurement));
                if let Some(ms) = ms {
                    q.push_str(&format!(
                        " WHERE time > now() - INTERVAL '{ms} milliseconds'"
                    ));
                }
                (q, CountColumn::N)
            }
        };
        Ok(CountQuery { text, column })
    }
}

fn influxql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn flux_string(s: &str) -> String {
    influxql_ident(s)
}

fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
