//! Connection settings: where the server is, which API it speaks, and the (secret) token.
//!
//! [`Options`] is what a caller asks for, as loose as a script writes it; [`Settings`] is what
//! the [`Client`](super::Client) runs on, checked once here so every request can rely on it
//! (a URL that parses, a token that was read and registered for redaction, a known precision).

use std::time::Duration;

use super::Error;

/// Used when the options give no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const REDACTED: &str = "<redacted>";

/// The HTTP API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// InfluxQL on `/query`, line protocol on `/write`.
    V1,
    /// Flux on `/api/v2/query`, line protocol on `/api/v2/write`.
    V2,
    /// SQL on `/api/v3/query_sql`, line protocol on `/api/v3/write_lp`.
    V3,
}

impl Version {
    /// `1`, `2` or `3` to [`Version`]; anything else is `None`.
    pub fn from_number(n: i64) -> Option<Version> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Timestamp precision of written lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    /// The `precision` parameter as `version` spells it (v3 wants whole words).
    pub fn param(self, version: Version) -> &'static str {
        match (version, self) {
            (Version::V3, Precision::Ns) => "nanosecond",
            (Version::V3, Precision::Us) => "microsecond",
            (Version::V3, Precision::Ms) => "millisecond",
            (Version::V3, Precision::S) => "second",
            (_, Precision::Ns) => "ns",
            (_, Precision::Us) => "us",
            (_, Precision::Ms) => "ms",
            (_, Precision::S) => "s",
        }
    }
}

/// The v3 query answer format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row object per line, streamed by the server (the default).
    Jsonl,
    /// One array of row objects.
    Json,
}

/// What a caller asks for; every field may be left out (see [`Settings::new`]).
#[derive(Debug, Clone)]
pub struct Options {
    pub url: Option<String>,
    pub version: Version,
    pub db: Option<String>,
    pub bucket: Option<String>,
    pub org: Option<String>,
    /// The name of the environment variable holding the token, never the token itself.
    pub token_env: Option<String>,
    pub timeout: Option<Duration>,
    /// `ns`, `us`, `ms` or `s`.
    pub precision: Option<String>,
    /// `jsonl` or `json`.
    pub format: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: None,
            version: Version::V1,
            db: None,
            bucket: None,
            org: None,
            token_env: None,
            timeout: None,
            precision: None,
            format: None,
        }
    }
}

/// Checked connection settings. The token never shows in `Debug` or in [`describe`](Self::describe).
#[derive(Clone)]
pub struct Settings {
    pub(crate) url: String,
    pub(crate) version: Version,
    pub(crate) db: Option<String>,
    pub(crate) bucket: Option<String>,
    pub(crate) org: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) token_env: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) precision: Option<Precision>,
    pub(crate) format: Format,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Settings {
    /// Checks `opts` and reads the token from its variable. Sends nothing.
    pub fn new(opts: Options) -> Result<Settings, Error> {
        let url = checked_url(opts.url, opts.version)?;
        let token = match &opts.token_env {
            None => None,
            Some(env) => Some(read_token(env)?),
        };
        let timeout = opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::Invalid(
                "influx::connect: timeout must be more than 0".into(),
            ));
        }
        let precision = match opts.precision.as_deref() {
            None => None,
            Some("ns") => Some(Precision::Ns),
            Some("us") => Some(Precision::Us),
            Some("ms") => Some(Precision::Ms),
            Some("s") => Some(Precision::S),
            Some(p) => {
                return Err(Error::Invalid(format!(
                    "influx::connect: precision must be ns, us, ms or s, not {p:?}"
                )));
            }
        };
        let format = match opts.format.as_deref() {
            None | Some("jsonl") => Format::Jsonl,
            Some("json") => Format::Json,
            Some(f) => {
                return Err(Error::Invalid(format!(
                    "influx::connect: format must be \"jsonl\" or \"json\", not {f:?}"
                )));
            }
        };
        Ok(Settings {
            url,
            version: opts.version,
            db: opts.db,
            bucket: opts.bucket,
            org: opts.org,
            token,
            token_env: opts.token_env,
            timeout,
            precision,
            format,
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The database (v1, v3).
    pub fn db(&self) -> Option<&str> {
        self.db.as_deref()
    }

    /// The bucket (v2).
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// `InfluxConn(v1 http://… db=…)`, the token shown as `<redacted>`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "InfluxConn(v{} {}",
            self.version.number(),
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

    /// Removes the token, and the passwords of URLs, from any text that leaves the client.
    pub fn redact(&self, text: impl Into<String>) -> String {
        let text = text.into();
        let text = match &self.token {
            Some(t) => crate::secrets::redact(&text, t),
            None => text,
        };
        crate::secrets::mask_urls_in(&text)
    }

    /// Where a change lands, for plans and messages: the URL and the database or bucket.
    pub fn target(&self) -> String {
        match (self.version, &self.db, &self.bucket) {
            (Version::V2, _, Some(b)) => format!("{} bucket={b}", self.url),
            (_, Some(db), _) => format!("{} db={db}", self.url),
            _ => self.url.clone(),
        }
    }

    /// The value of an option `what` cannot do without.
    pub(crate) fn need<'a>(
        &self,
        v: &'a Option<String>,
        key: &str,
        what: &str,
    ) -> Result<&'a str, Error> {
        v.as_deref().ok_or_else(|| {
            Error::Invalid(self.redact(format!(
                "{what} needs option '{key}' in influx::connect (InfluxDB {}.x at {})",
                self.version.number(),
                self.url
            )))
        })
    }
}

/// The base URL: the version's default, or `url` checked to be http(s), without a trailing `/`.
fn checked_url(url: Option<String>, version: Version) -> Result<String, Error> {
    let url = url.unwrap_or_else(|| {
        if version == Version::V3 {
            "http://localhost:8181".into()
        } else {
            "http://localhost:8086".into()
        }
    });
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        Error::Invalid(format!(
            "influx::connect: url {url:?} is not a URL ({e}); e.g. http://localhost:8086"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Invalid(format!(
            "influx::connect: url {url:?} must start with http:// or https://"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The token in `$env`, registered as a secret so every output of the run redacts it.
fn read_token(env: &str) -> Result<String, Error> {
    match std::env::var(env) {
        Ok(t) if !t.trim().is_empty() => {
            crate::secrets::register(t.trim(), &format!("${env}"))
                .map_err(|m| Error::Invalid(format!("influx::connect: {m}")))?;
            Ok(t.trim().to_string())
        }
        _ => Err(Error::MissingToken(format!(
            "influx::connect: the environment variable {env} (token_env) is not set \
             or empty; export the InfluxDB token in it before the run"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows() {
        let s = crate::influx::client::test_client(Version::V2, "http://x").settings;
        assert!(!s.describe().contains("s3cret"));
        assert!(s.describe().contains("token=<redacted> from $TOK"));
        assert_eq!(
            s.redact("bad token s3cret here"),
            "bad token <redacted> here"
        );
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn options_are_checked() {
        let bad = |o: Options| Settings::new(o).unwrap_err();
        let e = bad(Options {
            url: Some("localhost:8086".into()),
            ..Options::default()
        });
        assert!(e.is_invalid(), "{e:?}");
        let e = bad(Options {
            timeout: Some(Duration::ZERO),
            ..Options::default()
        });
        assert_eq!(
            e.to_string(),
            "influx::connect: timeout must be more than 0"
        );
        let e = bad(Options {
            precision: Some("m".into()),
            ..Options::default()
        });
        assert!(e.to_string().contains("precision must be"), "{e}");
        let e = bad(Options {
            token_env: Some("DOCKHAND_TEST_SURELY_UNSET_VAR".into()),
            ..Options::default()
        });
        assert!(matches!(e, Error::MissingToken(_)), "{e:?}");
        let s = Settings::new(Options {
            version: Version::V3,
            url: Some("http://h:1/".into()),
            precision: Some("ms".into()),
            format: Some("json".into()),
            ..Options::default()
        })
        .unwrap();
        assert_eq!(s.url(), "http://h:1");
        assert_eq!(s.precision.map(|p| p.param(s.version)), Some("millisecond"));
        assert_eq!(s.format, Format::Json);
        assert_eq!(
            Settings::new(Options::default()).unwrap().url(),
            "http://localhost:8086"
        );
    }
}
