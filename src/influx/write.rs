//! Writes of line protocol to `/write` (v1), `/api/v2/write` (v2), `/api/v3/write_lp` (v3).
//!
//! Like a query, a write is planned first ([`Client::plan_write`]) so the caller can hold it
//! back or refuse it before it is sent; a rejected write becomes an
//! [`Error::WriteRejected`] that names the failing lines and how to fix them.

use super::client::{Answer, Request};
use super::error::preview;
use super::settings::Version;
use super::{Client, Error, Mutation};

/// A batch of lines checked and ready to send.
#[derive(Debug, Clone)]
pub struct WritePlan {
    text: String,
    lines: usize,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    mutation: Mutation,
}

impl WritePlan {
    /// The lines that carry points (not blank, not `#` comments). With none, there is
    /// nothing to send.
    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn mutation(&self) -> &Mutation {
        &self.mutation
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub lines: usize,
    /// Round trip in milliseconds; 0 when nothing was sent.
    pub ms: u64,
}

impl Client {
    /// Counts the lines of `text` and checks that the settings say where they go (`db`, or
    /// `org` and `bucket`). A batch with no lines needs nothing.
    pub fn plan_write(&self, text: String) -> Result<WritePlan, Error> {
        let s = &self.settings;
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        let (path, mut params): (&str, Vec<(&str, String)>) = if lines == 0 {
            ("", Vec::new())
        } else {
            match s.version {
                Version::V1 => ("/write", vec![("db", s.need(&s.db, "db", "write")?.into())]),
                Version::V2 => (
                    "/api/v2/write",
                    vec![
                        ("org", s.need(&s.org, "org", "write")?.into()),
                        ("bucket", s.need(&s.bucket, "bucket", "write")?.into()),
                    ],
                ),
                Version::V3 => (
                    "/api/v3/write_lp",
                    vec![("db", s.need(&s.db, "db", "write")?.into())],
                ),
            }
        };
        if let Some(p) = s.precision {
            params.push(("precision", p.param(s.version).into()));
        }
        let detail = format!(
            "{lines} line{} of line protocol: {}",
            if lines == 1 { "" } else { "s" },
            preview(text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""))
        );
        let mutation = Mutation {
            target: s.target(),
            detail,
        };
        Ok(WritePlan {
            text,
            lines,
            path,
            params,
            mutation,
        })
    }

    /// Sends a planned batch.
    pub async fn write(&self, http: &reqwest::Client, plan: WritePlan) -> Result<Written, Error> {
        if plan.lines == 0 {
            return Ok(Written { lines: 0, ms: 0 });
        }
        let params: Vec<(&str, &str)> = plan.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut req = Request::new(reqwest::Method::POST, plan.path);
        req.params = &params;
        req.body = Some(("text/plain; charset=utf-8", plan.text));
        let a = self.send(http, req).await?;
        if a.ok() {
            return Ok(Written {
                lines: plan.lines,
                ms: a.ms,
            });
        }
        Err(self.write_error(&a, plan.lines))
    }

    /// Why InfluxDB refused a batch of `lines` lines, with the lines it named (up to 5) and
    /// a fix for the common causes.
    fn write_error(&self, a: &Answer, lines: usize) -> Error {
        if matches!(a.status, 401 | 403) {
            return self.status_error("write failed", a);
        }
        let s = &self.settings;
        let where_ = s.target();
        let Some(w) = super::write_error(&a.body) else {
            return self.status_error(&format!("write to {where_} failed"), a);
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
        msg.push_str(hint(&w.message));
        Error::WriteRejected {
            status: a.status,
            message: s.redact(msg),
            partial: w.partial,
        }
    }
}

/// The fix for a rejection InfluxDB explains in known words, or "".
fn hint(message: &str) -> &'static str {
    if message.contains("not found") {
        "\ncreate the database or bucket first, or fix the name in influx::connect"
    } else if message.contains("field type conflict") || message.contains("column type") {
        "\na field keeps the type of its first value in a shard: write the same type \
         (e.g. 1.0 for a float, 1i for an integer)"
    } else {
        ""
    }
}
