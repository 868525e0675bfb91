//! The HTTP side of the client: one request, the errors of an answer outside 2xx, and `/ping`.
//! Queries are in [`query`](super::query), writes in [`write`](super::write).
//!
//! The caller passes the `reqwest::Client` to each call rather than the `Client` owning one,
//! so a program keeps one connection pool (and one TLS setup) for every service it talks to.

use std::time::Instant;

use super::error::snippet;
use super::settings::{Settings, Version};
use super::{Error, Options};
use crate::util::root_cause;

/// A connection to one InfluxDB server. Cheap to share behind an `Arc`; sends nothing until
/// asked.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) settings: Settings,
}

/// An HTTP answer, whatever its status.
pub(crate) struct Answer {
    pub status: u16,
    pub version: Option<String>,
    /// Redacted as it arrived, so no later cut or parse can show a part of the token.
    pub body: String,
    pub ms: u64,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One HTTP request, before it is sent.
pub(crate) struct Request<'a> {
    pub method: reqwest::Method,
    pub path: &'a str,
    pub params: &'a [(&'a str, &'a str)],
    pub body: Option<(&'static str, String)>,
    pub accept: Option<&'static str>,
}

impl<'a> Request<'a> {
    pub fn new(method: reqwest::Method, path: &'a str) -> Self {
        Request {
            method,
            path,
            params: &[],
            body: None,
            accept: None,
        }
    }
}

/// The answer to `/ping`: whether the server is up, and which version it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    pub ok: bool,
    /// The HTTP status; 0 when no answer came back.
    pub status: u16,
    /// From the `X-Influxdb-Version` header or the JSON body.
    pub version: Option<String>,
    pub ms: u64,
    /// Empty when `ok`.
    pub error: String,
}

impl Client {
    /// Checks the options and reads the token (see [`Settings::new`]). Sends nothing.
    pub fn connect(opts: Options) -> Result<Client, Error> {
        Ok(Client {
            settings: Settings::new(opts)?,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Pings the server. Only a request that cannot be built is an error; a server that is
    /// down is a [`Ping`] with `ok: false` and the reason.
    pub async fn ping(&self, http: &reqwest::Client) -> Result<Ping, Error> {
        let a = match self
            .send(http, Request::new(reqwest::Method::GET, "/ping"))
            .await
        {
            Ok(a) => a,
            Err(Error::Unreachable { message, .. }) => {
                return Ok(Ping {
                    ok: false,
                    status: 0,
                    version: None,
                    ms: 0,
                    error: message,
                });
            }
            Err(e) => return Err(e),
        };
        let version = a.version.clone().or_else(|| {
            serde_json::from_str::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| v.get("version")?.as_str().map(str::to_string))
        });
        let error = if a.ok() {
            String::new()
        } else {
            let s = &self.settings;
            s.redact(format!("InfluxDB at {} answered HTTP {}", s.url, a.status))
        };
        Ok(Ping {
            ok: a.ok(),
            status: a.status,
            version,
            ms: a.ms,
            error,
        })
    }

    /// Sends one request; [`Error::Unreachable`] when no answer came back.
    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        req: Request<'_>,
    ) -> Result<Answer, Error> {
        let s = &self.settings;
        let mut url = reqwest::Url::parse(&format!("{}{}", s.url, req.path))
            .map_err(|e| Error::Invalid(s.redact(format!("bad InfluxDB url {}: {e}", s.url))))?;
        if !req.params.is_empty() {
            url.query_pairs_mut().extend_pairs(req.params);
        }
        let mut rb = http.request(req.method.clone(), url).timeout(s.timeout);
        if let Some(auth) = self.authorization()? {
            rb = rb.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(a) = req.accept {
            rb = rb.header(reqwest::header::ACCEPT, a);
        }
        if let Some((ctype, b)) = req.body {
            rb = rb.header(reqwest::header::CONTENT_TYPE, ctype).body(b);
        }
        let start = Instant::now();
        let no_answer = |e: reqwest::Error| self.unreachable(&req.method, req.path, &e);
        let resp = rb.send().await.map_err(no_answer)?;
        let status = resp.status().as_u16();
        let version = resp
            .headers()
            .get("x-influxdb-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(no_answer)?;
        Ok(Answer {
            status,
            version,
            body: match &s.token {
                Some(t) => crate::secrets::redact(&body, t),
                None => body,
            },
            ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// `Token …` (v1, v2) or `Bearer …` (v3), marked sensitive so it is never logged.
    fn authorization(&self) -> Result<Option<reqwest::header::HeaderValue>, Error> {
        let s = &self.settings;
        let Some(t) = &s.token else {
            return Ok(None);
        };
        let scheme = if s.version == Version::V3 {
            "Bearer"
        } else {
            "Token"
        };
        let mut v =
            reqwest::header::HeaderValue::from_str(&format!("{scheme} {t}")).map_err(|_| {
                Error::Invalid(format!(
                    "the token in ${} has characters an HTTP header cannot carry",
                    s.token_env.as_deref().unwrap_or("?")
                ))
            })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// The error for "no answer came back".
    fn unreachable(&self, method: &reqwest::Method, path: &str, e: &reqwest::Error) -> Error {
        let s = &self.settings;
        let base = &s.url;
        let message = if e.is_timeout() {
            format!(
                "InfluxDB at {base} did not answer {method} {path} within {}: it may be down or \
                 overloaded (raise 'timeout' in influx::connect if queries are slow)",
                crate::util::human::duration(s.timeout)
            )
        } else if e.is_connect() {
            format!(
                "cannot reach InfluxDB at {base} ({}): InfluxDB may be down, or listening on \
                 another address; check the url in influx::connect",
                root_cause(e)
            )
        } else {
            format!("{method} {base}{path} failed: {}", root_cause(e))
        };
        Error::Unreachable {
            message: s.redact(message),
            timed_out: e.is_timeout(),
        }
    }

    /// The error for an answer outside 2xx that is not more specifically understood.
    pub(crate) fn status_error(&self, what: &str, a: &Answer) -> Error {
        let s = &self.settings;
        let msg = super::v3::error_message(&a.body).unwrap_or_else(|| snippet(&a.body));
        let msg = if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        };
        let (url, status) = (&s.url, a.status);
        let message = match status {
            401 | 403 => {
                let message = match &s.token_env {
                    Some(env) => format!(
                        "{what}: InfluxDB at {url} refused the token from ${env} (HTTP \
                         {status}{msg}); check that the token is valid and may access this {}",
                        if s.version == Version::V2 {
                            "bucket"
                        } else {
                            "database"
                        }
                    ),
                    None => format!(
                        "{what}: InfluxDB at {url} requires authentication (HTTP {status}{msg}); \
                         put a token in an environment variable and pass its name as token_env"
                    ),
                };
                let message = s.redact(message);
                return Error::Auth { status, message };
            }
            404 => format!(
                "{what}: not found at {url} (HTTP 404{msg}); check the url, version ({}) and \
                 the database or bucket name",
                s.version.number()
            ),
            _ => format!("{what}: InfluxDB at {url} answered HTTP {status}{msg}"),
        };
        Error::Status {
            status,
            message: s.redact(message),
        }
    }

    /// A rejection the server explained.
    pub(crate) fn rejected(&self, status: u16, message: String) -> Error {
        Error::Rejected {
            status,
            message: self.settings.redact(message),
        }
    }
}

/// Used by the unit tests of this module's siblings.
#[cfg(test)]
pub(crate) fn test_client(version: Version, url: &str) -> Client {
    Client {
        settings: Settings {
            url: url.into(),
            version,
            db: Some("d".into()),
            bucket: Some("b".into()),
            org: Some("o".into()),
            token: Some("s3cret".into()),
            token_env: Some("TOK".into()),
            timeout: std::time::Duration::from_secs(5),
            precision: None,
            format: super::Format::Jsonl,
        },
    }
}
