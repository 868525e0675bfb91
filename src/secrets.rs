//! Keeping secrets out of everything dockhand prints.
//!
//! A secret reaches a playbook only through an environment variable named in its options
//! (`influx::connect(#{ token_env: "INFLUX_TOKEN" })`); dockhand never needs to print it.
//! Yet it can still leak: a server echoes the token back in an error body, a URL carries
//! `user:password@` or `?p=...`. So:
//!
//! * every secret read is **registered** here, and every error message dockhand renders is
//!   **scrubbed** of all registered secrets ([`scrub`]) — after any cutting to length, so a
//!   token cut in half at the edge of a snippet cannot slip through half-visible;
//! * matching is **case-insensitive** and ignores **line breaks** inside the secret (servers
//!   wrap and upper-case what they echo);
//! * a secret shorter than [`MIN_SECRET_LEN`] is **refused** where it is read: redacting `a`
//!   would mask every `a` in every message, and not redacting it would leak it;
//! * every URL printed has its **userinfo** and **credential query parameters** masked
//!   ([`mask_url`], [`mask_urls_in`]).

use std::sync::{LazyLock, Mutex};

/// What replaces a secret in output.
pub const REDACTED: &str = "<redacted>";

/// Shortest secret dockhand accepts (and so can redact without masking unrelated text).
pub const MIN_SECRET_LEN: usize = 8;

/// Query parameters whose values are credentials (compared case-insensitively).
pub const CREDENTIAL_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "passwd",
    "pwd",
    "pass",
    "p",
    "u",
    "user",
    "username",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "key",
    "auth",
    "authorization",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
];

static SECRETS: LazyLock<Mutex<Vec<String>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Checks that `secret` (read from `$source`) can be redacted safely, and registers it so
/// every later [`scrub`] removes it.
pub fn register(secret: &str, source: &str) -> Result<(), String> {
    let n = secret.chars().count();
    if n < MIN_SECRET_LEN {
        return Err(format!(
            "the secret in {source} is {n} character(s) long; dockhand refuses secrets shorter \
             than {MIN_SECRET_LEN} characters, because it could not redact one from its output \
             without also masking unrelated text (real tokens are much longer)"
        ));
    }
    let mut s = crate::util::lock(&SECRETS);
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
    }
    Ok(())
}

/// `text` with every registered secret replaced, and every URL masked.
pub fn scrub(text: &str) -> String {
    let secrets = crate::util::lock(&SECRETS).clone();
    let mut out = text.to_string();
    for s in &secrets {
        out = redact(&out, s);
    }
    mask_urls_in(&out)
}

/// Replaces every occurrence of `secret` in `text`, ignoring case and any line breaks
/// (`\r`, `\n`) inside the occurrence.
pub fn redact(text: &str, secret: &str) -> String {
    let needle: Vec<char> = secret.chars().flat_map(char::to_lowercase).collect();
    let Some(&first) = needle.first() else {
        return text.to_string();
    };
    // Where an occurrence starting at byte `start` ends (exclusive), if there is one.
    let match_at = |start: usize| -> Option<usize> {
        let mut want = needle.iter();
        let mut pending = want.next();
        for (i, c) in text[start..].char_indices() {
            if c == '\n' || c == '\r' {
                if i == 0 {
                    return None;
                }
                continue;
            }
            for l in c.to_lowercase() {
                match pending {
                    Some(w) if *w == l => pending = want.next(),
                    _ => return None,
                }
            }
            if pending.is_none() {
                return Some(start + i + c.len_utf8());
            }
        }
        None
    };
    let mut out = String::new();
    let mut copied = 0;
    for (i, c) in text.char_indices() {
        if i < copied || c.to_lowercase().next().is_none_or(|l| l != first) {
            continue;
        }
        if let Some(end) = match_at(i) {
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            copied = end;
        }
    }
    if copied == 0 {
        return text.to_string();
    }
    out.push_str(&text[copied..]);
    out
}

/// `url` with the password of its userinfo and the values of credential query parameters
/// replaced by `***`. Text that is not a URL comes back unchanged. The userinfo of an
/// `ssh://` URL without a password is a login name, not a token, and is kept: an engine
/// address `ssh://root@edge` must read as such in an error.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let login_only =
        |at: usize| head.eq_ignore_ascii_case("ssh://") && !authority[..at].contains(':');
    let authority = match authority.rfind('@') {
        Some(at) if login_only(at) => authority.to_string(),
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let user = if user.is_empty() { "" } else { user };
            format!("{user}:***@{}", &authority[at + 1..])
        }
        None => authority.to_string(),
    };
    let (path, query_and_frag) = match tail.find('?') {
        Some(q) => tail.split_at(q),
        None => (tail, ""),
    };
    let mut out = format!("{head}{authority}{path}");
    if let Some(q) = query_and_frag.strip_prefix('?') {
        let (query, frag) = match q.find('#') {
            Some(f) => q.split_at(f),
            None => (q, ""),
        };
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_credential(k) => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
        out.push_str(frag);
    }
    out
}

fn is_credential(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    CREDENTIAL_PARAMS.contains(&k.as_str())
}

/// Masks every `http://` / `https://` URL inside `text` (see [`mask_url`]).
pub fn mask_urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(rel) = text[at..].find("://") {
        let sep = at + rel;
        // Back up over the scheme (`https`, `postgres+ssl`, ...).
        let start = text[at..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
            .last()
            .map_or(sep, |(i, _)| at + i);
        let end = text[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(text.len(), |e| sep + e);
        out.push_str(&text[at..start]);
        out.push_str(&mask_url(&text[start..end]));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_in_any_case_and_across_line_breaks() {
        let t = "Sup3rSecretToken";
        assert_eq!(
            redact("bad token sup3rsecrettoken!", t),
            "bad token <redacted>!"
        );
        assert_eq!(redact("x SUP3RSEC\nRETTOKEN y", t), "x <redacted> y");
        assert_eq!(
            redact("a Sup3rSecretTokenSup3rSecretToken", t),
            "a <redacted><redacted>"
        );
        assert_eq!(redact("nothing here", t), "nothing here");
    }

    #[test]
    fn short_secrets_are_refused_not_redacted_everywhere() {
        let e = register("a", "$TOK").unwrap_err();
        assert!(e.contains("shorter than 8"), "{e}");
        register("long-enough-token", "$TOK").unwrap();
        assert_eq!(scrub("see long-enough-token"), "see <redacted>");
    }

    #[test]
    fn masks_userinfo_and_credential_parameters() {
        assert_eq!(
            mask_url("http://admin:hunter2@db:8086/query?db=x&u=admin&p=hunter2&q=SELECT"),
            "http://admin:***@db:8086/query?db=x&u=***&p=***&q=SELECT"
        );
        assert_eq!(
            mask_url("https://h/x?Token=abc#frag"),
            "https://h/x?Token=***#frag"
        );
        assert_eq!(
            mask_urls_in("GET http://u:pw@h/x failed; see https://h/?access_token=z."),
            "GET http://u:***@h/x failed; see https://h/?access_token=***"
        );
        assert_eq!(mask_url("not a url"), "not a url");
        assert_eq!(mask_url("ssh://root@edge:22"), "ssh://root@edge:22");
        assert_eq!(mask_url("ssh://root:pw@edge"), "ssh://root:***@edge");
        assert_eq!(mask_url("ssh://u@h/?token=t"), "ssh://u@h/?token=***");
    }
}
