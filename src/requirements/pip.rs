//! The pip requirements-file format: logical lines (continuations, comments, options,
//! includes) and PEP 508 requirements, parsed so that rendering gives back the exact text,
//! and edited in place. See the [module docs](super) for what is understood.

use std::ops::Range;

use super::marker::check_marker;
use super::normalize;
pub use super::version::Spec;
use super::version::parse_specifiers;

/// Why an edit could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("no requirement named '{0}' in the file")]
    NotFound(String),
    #[error(
        "'{0}' is a direct reference (`name @ url`); its version is the URL's, not a specifier"
    )]
    DirectReference(String),
    #[error("'{spec}' is not a valid version specifier: {why} (write e.g. ==2.0.46 or >=2.0,<3)")]
    BadSpecifier { spec: String, why: String },
}

/// A parsed requirement (PEP 508, plus pip's per-requirement options).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirement {
    /// The project name as written; `None` for a bare URL or path.
    pub name: Option<String>,
    pub extras: Vec<String>,
    /// The specifier text as written (`>=2.0, <3`), empty when there is none.
    pub specifier: String,
    pub specifiers: Vec<Spec>,
    /// `name @ url`, or the bare URL / path.
    pub url: Option<String>,
    /// The environment marker text after `;`, trimmed.
    pub marker: Option<String>,
    /// `--hash=` values (`sha256:...`).
    pub hashes: Vec<String>,
    /// Other per-requirement options, as written (`--config-settings=k=v`).
    pub options: Vec<String>,
    /// Logical-line span of the specifier (an empty span where one would be inserted).
    spec_span: Range<usize>,
    /// The specifier was written inside parentheses.
    parens: bool,
}

impl Requirement {
    /// The PEP 503 normalized name (`None` for a bare URL).
    pub fn normalized(&self) -> Option<String> {
        self.name.as_deref().map(normalize)
    }
}

/// What a logical line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Blank,
    /// A line with only a comment.
    Comment,
    /// `-r FILE` (`constraint: false`) or `-c FILE` (`constraint: true`).
    Include {
        constraint: bool,
        target: String,
    },
    /// `-e TARGET`.
    Editable {
        target: String,
    },
    /// Any other option line: `--index-url URL`, `--pre`.
    Option {
        name: String,
        value: Option<String>,
    },
    Requirement(Requirement),
    /// A line that could not be parsed; kept verbatim.
    Invalid {
        error: String,
    },
}

/// One logical line: one or more physical lines joined by `\` continuations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based number of its first physical line.
    pub line: usize,
    /// The exact source text, continuations and line terminator included.
    pub raw: String,
    /// The trailing or full-line comment, from `#` on, without the line terminator.
    pub comment: Option<String>,
    pub kind: Kind,
    /// `map[i]` = offset in `raw` of byte `i` of the logical line (plus one past the end).
    map: Vec<usize>,
}

/// A parsed requirements file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReqFile {
    pub entries: Vec<Entry>,
}

impl ReqFile {
    /// Parses `text`. Never fails: lines that are not understood become [`Kind::Invalid`].
    pub fn parse(text: &str) -> ReqFile {
        let mut entries = Vec::new();
        let physical = split_lines(text);
        let mut lineno = 1;
        let mut i = 0;
        while i < physical.len() {
            let first = i;
            // Join continuations: a line ending in `\` continues, unless it is a comment line.
            while i < physical.len() {
                let (content, _) = physical[i];
                let continues = content.ends_with('\\') && !is_comment_line(content);
                i += 1;
                if !continues {
                    break;
                }
            }
            let group = &physical[first..i];
            let mut raw = String::new();
            let mut logical = String::new();
            let mut map = Vec::new();
            let mut end = 0;
            for (k, (content, term)) in group.iter().enumerate() {
                let last = k + 1 == group.len();
                let body = if !last {
                    &content[..content.len() - 1]
                } else if content.ends_with('\\') && !is_comment_line(content) {
                    // A continuation at the end of the file: nothing follows.
                    &content[..content.len() - 1]
                } else {
                    content
                };
                for b in 0..body.len() {
                    map.push(raw.len() + b);
                }
                logical.push_str(body);
                end = raw.len() + body.len();
                raw.push_str(content);
                raw.push_str(term);
            }
            map.push(end);
            let (kind, comment) = classify(&logical);
            entries.push(Entry {
                line: lineno,
                raw,
                comment,
                kind,
                map,
            });
            lineno += group.len();
        }
        ReqFile { entries }
    }

    /// The file's text: byte-identical to the parsed input unless entries were edited.
    pub fn render(&self) -> String {
        self.entries.iter().map(|e| e.raw.as_str()).collect()
    }

    /// Requirements (named or not), in file order.
    pub fn requirements(&self) -> impl Iterator<Item = (&Entry, &Requirement)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            Kind::Requirement(r) => Some((e, r)),
            _ => None,
        })
    }

    /// The first requirement whose normalized name is `name`'s.
    pub fn find(&self, name: &str) -> Option<&Requirement> {
        let n = normalize(name);
        self.requirements()
            .map(|(_, r)| r)
            .find(|r| r.normalized().as_deref() == Some(n.as_str()))
    }

    /// Replaces the specifier of every requirement named `name` (PEP 503 comparison) with
    /// `spec` (a bare version `2.0.46` means `==2.0.46`). Returns how many entries changed
    /// (0 when they already had exactly that specifier).
    pub fn set_version(&mut self, name: &str, spec: &str) -> Result<usize, EditError> {
        let spec = spec.trim();
        let spec = if spec.starts_with(|c: char| c.is_ascii_digit()) {
            format!("=={spec}")
        } else {
            spec.to_string()
        };
        parse_specifiers(&spec).map_err(|why| EditError::BadSpecifier {
            spec: spec.clone(),
            why,
        })?;
        if spec.is_empty() {
            return Err(EditError::BadSpecifier {
                spec,
                why: "it is empty".into(),
            });
        }
        let n = normalize(name);
        let mut found = false;
        let mut changed = 0;
        for e in &mut self.entries {
            let Kind::Requirement(r) = &e.kind else {
                continue;
            };
            if r.normalized().as_deref() != Some(n.as_str()) {
                continue;
            }
            found = true;
            if r.url.is_some() {
                return Err(EditError::DirectReference(name.to_string()));
            }
            if r.specifier == spec {
                continue;
            }
            let start = e.map[r.spec_span.start];
            let end = if r.spec_span.is_empty() {
                start
            } else {
                e.map[r.spec_span.end - 1] + 1
            };
            let mut raw = String::with_capacity(e.raw.len() + spec.len());
            raw.push_str(&e.raw[..start]);
            raw.push_str(&spec);
            raw.push_str(&e.raw[end..]);
            let line = e.line;
            let mut again = ReqFile::parse(&raw);
            // A single physical-line group re-parses into one entry (the edit added no
            // line break); keep the numbering of the original.
            if again.entries.len() == 1 {
                let mut ne = again.entries.remove(0);
                ne.line = line;
                *e = ne;
            } else {
                e.raw = raw;
            }
            changed += 1;
        }
        if !found {
            return Err(EditError::NotFound(name.to_string()));
        }
        Ok(changed)
    }

    /// Inserts a full-line comment (`# text`) just above the first requirement named `name`
    /// (with the file's line terminator). Returns false when there is no such requirement.
    pub fn comment_above(&mut self, name: &str, text: &str) -> bool {
        let n = normalize(name);
        let nl = if self.entries.iter().any(|e| e.raw.ends_with("\r\n")) {
            "\r\n"
        } else {
            "\n"
        };
        let Some(pos) = self.entries.iter().position(|e| match &e.kind {
            Kind::Requirement(r) => r.normalized().as_deref() == Some(n.as_str()),
            _ => false,
        }) else {
            return false;
        };
        let indent: String = self.entries[pos]
            .raw
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        let line = format!("{indent}# {text}{nl}");
        let mut parsed = ReqFile::parse(&line);
        let mut e = parsed.entries.remove(0);
        e.line = self.entries[pos].line;
        self.entries.insert(pos, e);
        for later in &mut self.entries[pos + 1..] {
            later.line += 1;
        }
        true
    }
}

/// Physical lines as (content, terminator).
fn split_lines(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (line, term) = if i > 0 && rest.as_bytes()[i - 1] == b'\r' {
                    (&rest[..i - 1], &rest[i - 1..=i])
                } else {
                    (&rest[..i], &rest[i..=i])
                };
                out.push((line, term));
                rest = &rest[i + 1..];
            }
            None => {
                out.push((rest, ""));
                rest = "";
            }
        }
    }
    out
}

/// pip's `^(\s*)#`: a full-line comment.
fn is_comment_line(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Where a comment starts: `#` at the start or after whitespace (pip's `(^|\s+)#`).
fn comment_start(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()))
}

fn classify(logical: &str) -> (Kind, Option<String>) {
    let (body, comment) = match comment_start(logical) {
        Some(i) => (&logical[..i], Some(logical[i..].to_string())),
        None => (logical, None),
    };
    let t = body.trim();
    if t.is_empty() {
        return (
            if comment.is_some() {
                Kind::Comment
            } else {
                Kind::Blank
            },
            comment,
        );
    }
    let lead = body.len() - body.trim_start().len();
    let kind = if t.starts_with('-') {
        option_line(t)
    } else {
        match parse_requirement(body, lead) {
            Ok(r) => Kind::Requirement(r),
            Err(error) => Kind::Invalid { error },
        }
    };
    (kind, comment)
}

/// Splits `--name=value`, `--name value`, `-xvalue`, `-x value`.
fn option_line(t: &str) -> Kind {
    let (name, value) = if let Some(rest) = t.strip_prefix("--") {
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let v = rest[end..].trim_start_matches('=').trim();
        (format!("--{}", &rest[..end]), v)
    } else {
        let short = &t[..t.char_indices().nth(2).map(|(i, _)| i).unwrap_or(t.len())];
        let v = t[short.len()..].trim_start_matches('=').trim();
        (short.to_string(), v)
    };
    let value = (!value.is_empty()).then(|| value.to_string());
    let need = |kind: Kind| match &value {
        Some(_) => kind,
        None => Kind::Invalid {
            error: format!("option {name} needs a value"),
        },
    };
    let v = value.clone().unwrap_or_default();
    match name.as_str() {
        "-r" | "--requirement" | "--requirements" => need(Kind::Include {
            constraint: false,
            target: v,
        }),
        "-c" | "--constraint" | "--constraints" => need(Kind::Include {
            constraint: true,
            target: v,
        }),
        "-e" | "--editable" => need(Kind::Editable { target: v }),
        _ => Kind::Option { name, value },
    }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
}

fn looks_like_url_or_path(tok: &str) -> bool {
    // `name@https://...` (no spaces) is a direct reference, not a bare URL.
    if let Some(at) = tok.find('@') {
        let head = tok[..at].split('[').next().unwrap_or("");
        if !head.is_empty() && head.bytes().all(is_name_char) && !head.contains("://") {
            return false;
        }
    }
    tok.contains("://")
        || tok.starts_with("./")
        || tok.starts_with("../")
        || tok.starts_with('/')
        || tok.starts_with('~')
        || tok.starts_with("file:")
        || [".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2"]
            .iter()
            .any(|s| tok.ends_with(s))
}

/// Parses a requirement line's body (comment removed). `lead` is the offset of its first
/// non-blank byte; spans are offsets into the logical line.
/// Parses a requirement line's body (comment removed). `lead` is the offset of its first
/// non-blank byte; spans are offsets into the logical line.
fn parse_requirement(body: &str, lead: usize) -> Result<Requirement, String> {
    let (req_end, opts) = split_options(body, lead);
    let mut r = Requirement::default();
    join_options(&opts, &mut r)?;
    let s = &body[..req_end];
    let first_tok = s[lead..].split_whitespace().next().unwrap_or("");
    if looks_like_url_or_path(first_tok) {
        return bare_url(s, lead, r);
    }
    let i = parse_name(s, lead, &mut r)?;
    let i = parse_extras(s, i, &mut r)?;
    r.spec_span = i..i;
    parse_version_part(s, skip_ws(s.as_bytes(), i), r)
}

/// pip: the requirement ends at the first space-separated token starting with `-`; the
/// tokens from there on are its options.
fn split_options(body: &str, lead: usize) -> (usize, Vec<&str>) {
    let b = body.as_bytes();
    let mut i = lead;
    while i < b.len() {
        if i > lead && b[i] == b'-' && b[i - 1].is_ascii_whitespace() {
            return (i, body[i..].split_whitespace().collect());
        }
        i += 1;
    }
    (body.len(), Vec::new())
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// A bare URL or path, with an optional `; marker`.
fn bare_url(s: &str, lead: usize, mut r: Requirement) -> Result<Requirement, String> {
    let (url, marker) = match s[lead..].find("; ") {
        Some(k) => (&s[lead..lead + k], Some(s[lead + k + 1..].trim())),
        None => (s[lead..].trim_end(), None),
    };
    r.url = Some(url.trim().to_string());
    if let Some(m) = marker {
        check_marker(m)?;
        r.marker = Some(m.to_string());
    }
    r.spec_span = lead..lead;
    Ok(r)
}

/// The project name at `lead`; returns where it ends.
fn parse_name(s: &str, lead: usize, r: &mut Requirement) -> Result<usize, String> {
    let b = s.as_bytes();
    let mut i = lead;
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let name = &s[lead..i];
    if name.is_empty() {
        return Err(format!(
            "expected a project name at '{}'",
            s[lead..].trim_end()
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric()
        || !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
    {
        return Err(format!(
            "'{name}' is not a valid project name (it must start and end with a letter or digit)"
        ));
    }
    r.name = Some(name.to_string());
    Ok(i)
}

/// `[extra, ...]` after the name, if any; returns where the requirement goes on.
fn parse_extras(s: &str, i: usize, r: &mut Requirement) -> Result<usize, String> {
    let j = skip_ws(s.as_bytes(), i);
    if s.as_bytes().get(j) != Some(&b'[') {
        return Ok(i);
    }
    let name = r.name.clone().unwrap_or_default();
    let close = s[j..]
        .find(']')
        .ok_or_else(|| format!("unclosed '[' in the extras of {name}"))?
        + j;
    for x in s[j + 1..close].split(',') {
        let x = x.trim();
        if x.is_empty() {
            continue;
        }
        if !x.bytes().all(is_name_char) {
            return Err(format!("'{x}' is not a valid extra name"));
        }
        r.extras.push(x.to_string());
    }
    Ok(close + 1)
}

/// What follows the name and extras (from `j`): `@ url`, `(specifiers)` or specifiers,
/// then an optional `; marker`.
fn parse_version_part(s: &str, j: usize, mut r: Requirement) -> Result<Requirement, String> {
    let b = s.as_bytes();
    let name = r.name.clone().unwrap_or_default();
    if j < b.len() && b[j] == b'@' {
        let u0 = skip_ws(b, j + 1);
        let mut u1 = u0;
        while u1 < b.len() && !b[u1].is_ascii_whitespace() {
            u1 += 1;
        }
        if u0 == u1 {
            return Err(format!("'{name} @' has no URL after the '@'"));
        }
        let mut url = &s[u0..u1];
        let mut k = skip_ws(b, u1);
        if let Some(stripped) = url.strip_suffix(';') {
            url = stripped;
            k = u1 - 1;
        }
        r.url = Some(url.to_string());
        return finish_marker(s, k, r);
    }
    if j < b.len() && b[j] == b'(' {
        let close = s[j..]
            .find(')')
            .ok_or_else(|| format!("unclosed '(' in the version of {name}"))?
            + j;
        let inner = &s[j + 1..close];
        let t0 = j + 1 + (inner.len() - inner.trim_start().len());
        let t1 = t0 + inner.trim().len();
        r.specifier = s[t0..t1].to_string();
        r.specifiers = parse_specifiers(&r.specifier)?;
        r.spec_span = t0..t1;
        r.parens = true;
        let k = skip_ws(b, close + 1);
        return finish_marker(s, k, r);
    }
    let stop = s[j..].find(';').map(|k| k + j).unwrap_or(s.len());
    let spec = s[j..stop].trim_end();
    if !spec.is_empty() {
        r.specifiers = parse_specifiers(spec)?;
        r.specifier = spec.to_string();
        r.spec_span = j..j + spec.len();
    }
    finish_marker(s, stop, r)
}

fn finish_marker(s: &str, k: usize, mut r: Requirement) -> Result<Requirement, String> {
    let rest = s[k..].trim();
    if rest.is_empty() {
        return Ok(r);
    }
    let Some(m) = rest.strip_prefix(';') else {
        return Err(format!("unexpected '{rest}' (a marker must follow ';')"));
    };
    let m = m.trim();
    check_marker(m)?;
    r.marker = Some(m.to_string());
    Ok(r)
}

fn join_options(opts: &[&str], r: &mut Requirement) -> Result<(), String> {
    let mut k = 0;
    while k < opts.len() {
        let o = opts[k];
        if let Some(h) = o.strip_prefix("--hash=") {
            r.hashes.push(h.to_string());
        } else if o == "--hash" {
            let h = opts
                .get(k + 1)
                .ok_or("--hash needs a value (--hash=sha256:...)")?;
            r.hashes.push((*h).to_string());
            k += 1;
        } else if o.starts_with('-') {
            r.options.push(o.to_string());
        } else if let Some(last) = r.options.last_mut() {
            // The value of `--config-settings KEY=VALUE` written with a space.
            last.push(' ');
            last.push_str(o);
        } else {
            return Err(format!("unexpected '{o}' after the requirement's options"));
        }
        k += 1;
    }
    Ok(())
}
