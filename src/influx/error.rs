//! What can go wrong talking to InfluxDB, one variant per cause.
//!
//! Each variant carries the finished, **redacted** message (the client masks the token and
//! URL passwords where it writes the text, so no caller can forget to) plus what a caller may
//! want to branch on: the HTTP status, whether a write was partial. The message says what
//! failed and how to fix it; callers print it as it is.

use super::ParseError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A setting or argument is wrong or missing (a bad URL, `db` not given for a write):
    /// the caller's mistake, not the server's.
    #[error("{0}")]
    Invalid(String),
    /// The environment variable named for the token is unset or empty.
    #[error("{0}")]
    MissingToken(String),
    /// No HTTP answer came back: refused connection, timeout, reset.
    #[error("{message}")]
    Unreachable { message: String, timed_out: bool },
    /// 401 or 403: the token is missing, wrong, or may not access the database or bucket.
    #[error("{message}")]
    Auth { status: u16, message: String },
    /// The server understood the request and said why it will not run it: a syntax error, an
    /// unknown database, a failed InfluxQL statement, a Flux error table.
    #[error("{message}")]
    Rejected { status: u16, message: String },
    /// The server refused (some of) a write; `partial` when the other lines were written.
    #[error("{message}")]
    WriteRejected {
        status: u16,
        message: String,
        partial: bool,
    },
    /// Any other answer outside 2xx.
    #[error("{message}")]
    Status { status: u16, message: String },
    /// A 2xx answer whose body is not what the protocol says.
    #[error("{message}")]
    Parse {
        message: String,
        #[source]
        cause: ParseError,
    },
}

impl Error {
    /// Whether the caller (not the server or the network) is at fault.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }
}

/// The first 200 characters of a body, for error messages.
pub(crate) fn snippet(body: &str) -> String {
    cut(body.trim(), 200)
}

/// `s` on one line, cut to 80 characters: a query or line in a plan or message.
pub fn preview(s: &str) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    cut(&one, 80)
}

fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
