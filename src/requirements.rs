//! A pip requirements-file parser that round-trips, and surgical edits of it.
//!
//! Playbooks edit real requirements files (story 1 bumps SQLAlchemy in
//! `requirements-base.txt`), and a reviewer must see a one-line diff, not a reformatted
//! file. So the parser never normalizes anything: every entry keeps its exact source text
//! (`raw`, including line continuations and the line terminator), and [`ReqFile::render`]
//! concatenates them back — parsing then rendering is byte-identical for *any* input,
//! including lines it could not understand (they become [`Kind::Invalid`] entries rather
//! than failing the whole file, because one odd line in a 200-line file must not stop a
//! playbook from reporting on the other 199).
//!
//! What is understood, following pip's own reader and PEP 508:
//! * names (compared after PEP 503 normalization: `Foo_Bar.baz` == `foo-bar-baz`), extras,
//!   version specifiers (`==`, `!=`, `<=`, `>=`, `<`, `>`, `~=`, `===`, comma-separated,
//!   optionally in parentheses), environment markers after `;` (grammar-checked), direct
//!   references `name @ url`, and bare URLs or paths;
//! * `-r`/`--requirement` and `-c`/`--constraint` includes (reported; resolving them against
//!   the file's directory is the caller's job, the parser does no I/O), `-e`/`--editable`,
//!   other option lines (`--index-url`, `--extra-index-url`, `-f`, `--pre`, ...);
//! * per-requirement options (`--hash=sha256:...`, `--config-settings`), comments (full
//!   line, and trailing: `#` at the start or after whitespace, like pip), blank lines, and
//!   `\` line continuations (not after a full-line comment, like pip).
//!
//! [`ReqFile::set_version`] changes only the specifier of the named requirement(s): the
//! comment, markers, hashes, extras, spacing and position stay as they were.

use std::ops::Range;

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

/// One version clause: `>=` `2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub op: String,
    pub version: String,
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

/// PEP 503 normalization: runs of `-`, `_`, `.` become one `-`, lowercased.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    if sep {
        out.push('-');
    }
    out
}

const OPS: [&str; 8] = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

/// Parses a specifier list (`>=2.0, <3`); errors say what is wrong.
pub fn parse_specifiers(s: &str) -> Result<Vec<Spec>, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for clause in s.split(',') {
        let c = clause.trim();
        let Some(op) = OPS.iter().find(|op| c.starts_with(**op)) else {
            return Err(format!(
                "'{c}' does not start with a comparison operator (==, >=, ~=, ...)"
            ));
        };
        let version = c[op.len()..].trim();
        if version.is_empty() {
            return Err(format!("'{c}' has no version"));
        }
        let ok = if *op == "===" {
            !version.contains(char::is_whitespace)
        } else {
            version
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._*+!-".contains(ch))
        };
        if !ok {
            return Err(format!("'{version}' is not a valid version"));
        }
        out.push(Spec {
            op: (*op).to_string(),
            version: version.to_string(),
        });
    }
    Ok(out)
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
fn parse_requirement(body: &str, lead: usize) -> Result<Requirement, String> {
    // pip: the requirement ends at the first space-separated token starting with `-`.
    let mut req_end = body.len();
    let mut opts = Vec::new();
    {
        let b = body.as_bytes();
        let mut i = lead;
        while i < b.len() {
            if i > lead && b[i] == b'-' && b[i - 1].is_ascii_whitespace() {
                req_end = i;
                break;
            }
            i += 1;
        }
        if req_end < body.len() {
            opts = body[req_end..].split_whitespace().collect();
        }
    }
    let mut r = Requirement::default();
    join_options(&opts, &mut r)?;
    let s = &body[..req_end];
    let b = s.as_bytes();
    let mut i = lead;
    let first_tok = s[lead..].split_whitespace().next().unwrap_or("");
    if looks_like_url_or_path(first_tok) {
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
        return Ok(r);
    }
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
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut j = skip_ws(i);
    if j < b.len() && b[j] == b'[' {
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
        i = close + 1;
        j = skip_ws(i);
    }
    r.spec_span = i..i;
    if j < b.len() && b[j] == b'@' {
        let u0 = skip_ws(j + 1);
        let mut u1 = u0;
        while u1 < b.len() && !b[u1].is_ascii_whitespace() {
            u1 += 1;
        }
        if u0 == u1 {
            return Err(format!("'{name} @' has no URL after the '@'"));
        }
        let mut url = &s[u0..u1];
        let mut k = skip_ws(u1);
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
        let k = skip_ws(close + 1);
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

const MARKER_VARS: [&str; 17] = [
    "python_version",
    "python_full_version",
    "os_name",
    "sys_platform",
    "platform_release",
    "platform_system",
    "platform_version",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "implementation_version",
    "extra",
    "dependency_groups",
    "extras",
    "os.name",
    "sys.platform",
    "platform.version",
];

/// Checks an environment marker against PEP 508's grammar.
pub fn check_marker(m: &str) -> Result<(), String> {
    let toks = marker_tokens(m)?;
    if toks.is_empty() {
        return Err("empty environment marker after ';'".into());
    }
    let mut p = 0;
    marker_or(&toks, &mut p)?;
    if p != toks.len() {
        return Err(format!(
            "unexpected '{}' in the environment marker '{m}'",
            toks[p]
        ));
    }
    Ok(())
}

fn marker_tokens(m: &str) -> Result<Vec<String>, String> {
    let b = m.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let end = m[i + 1..]
                .find(c as char)
                .ok_or_else(|| format!("unterminated string in the marker '{m}'"))?;
            out.push(m[i..i + end + 2].to_string());
            i += end + 2;
        } else if c == b'(' || c == b')' {
            out.push((c as char).to_string());
            i += 1;
        } else if b"<>=!~".contains(&c) {
            let mut j = i;
            while j < b.len() && b"<>=!~".contains(&b[j]) {
                j += 1;
            }
            out.push(m[i..j].to_string());
            i = j;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.') {
                j += 1;
            }
            out.push(m[i..j].to_string());
            i = j;
        } else {
            let ch = m[i..].chars().next().unwrap_or('?');
            return Err(format!("unexpected '{ch}' in the environment marker '{m}'"));
        }
    }
    Ok(out)
}

fn marker_or(t: &[String], p: &mut usize) -> Result<(), String> {
    marker_and(t, p)?;
    while t.get(*p).map(String::as_str) == Some("or") {
        *p += 1;
        marker_and(t, p)?;
    }
    Ok(())
}

fn marker_and(t: &[String], p: &mut usize) -> Result<(), String> {
    marker_expr(t, p)?;
    while t.get(*p).map(String::as_str) == Some("and") {
        *p += 1;
        marker_expr(t, p)?;
    }
    Ok(())
}

fn marker_expr(t: &[String], p: &mut usize) -> Result<(), String> {
    if t.get(*p).map(String::as_str) == Some("(") {
        *p += 1;
        marker_or(t, p)?;
        if t.get(*p).map(String::as_str) != Some(")") {
            return Err("missing ')' in the environment marker".into());
        }
        *p += 1;
        return Ok(());
    }
    marker_value(t, p)?;
    match t.get(*p).map(String::as_str) {
        Some("in") => *p += 1,
        Some("not") if t.get(*p + 1).map(String::as_str) == Some("in") => *p += 2,
        Some(op) if OPS.contains(&op) => *p += 1,
        Some(other) => {
            return Err(format!(
                "expected a comparison (==, <, in, ...) in the marker, found '{other}'"
            ));
        }
        None => return Err("the environment marker ends before its comparison".into()),
    }
    marker_value(t, p)
}

fn marker_value(t: &[String], p: &mut usize) -> Result<(), String> {
    let Some(v) = t.get(*p) else {
        return Err("the environment marker ends where a value was expected".into());
    };
    if v.starts_with('\'') || v.starts_with('"') || MARKER_VARS.contains(&v.as_str()) {
        *p += 1;
        Ok(())
    } else {
        Err(format!(
            "'{v}' is not a marker variable (python_version, sys_platform, ...) or a quoted string"
        ))
    }
}

/// A PEP 440 version, enough to compare release pins: epoch, release numbers, pre-release
/// (`a`, `b`, `rc`), `.post`, `.dev`. Local versions (`+abc`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// (0 dev-only, 1 a, 2 b, 3 rc, 4 final) so that a dev release sorts first.
    pre: (u8, u64),
    post: Option<u64>,
    /// `None` sorts after any `Some`: a final release is newer than its dev releases.
    dev: DevKey,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum DevKey {
    Dev(u64),
    None,
}

impl Version {
    /// Parses `2.0.46`, `1!2.0`, `1.0rc1`, `1.0.post2`, `1.0.dev3`, `v1.2`; `None` otherwise.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let s = s.split('+').next()?;
        let (epoch, rest) = match s.split_once('!') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, s),
        };
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let rel = rest[..end].trim_end_matches('.');
        let mut tail = &rest[rel.len()..];
        let release: Vec<u64> = rel
            .split('.')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let num = |t: &mut &str| -> u64 {
            let t2 = t.trim_start_matches(['.', '-', '_']);
            let e = t2.find(|c: char| !c.is_ascii_digit()).unwrap_or(t2.len());
            let n = t2[..e].parse().unwrap_or(0);
            *t = &t2[e..];
            n
        };
        let mut pre = (4, 0);
        let mut post = None;
        let mut dev = DevKey::None;
        let mut guard = 0;
        while !tail.is_empty() && guard < 4 {
            guard += 1;
            let t = tail.trim_start_matches(['.', '-', '_']);
            let (kind, len) = [
                ("alpha", 1u8),
                ("beta", 2),
                ("preview", 3),
                ("pre", 3),
                ("rc", 3),
                ("c", 3),
                ("a", 1),
                ("b", 2),
            ]
            .iter()
            .find(|(k, _)| t.starts_with(k))
            .map(|(k, r)| (*r, k.len()))
            .unwrap_or((0, 0));
            if kind > 0 {
                tail = &t[len..];
                pre = (kind, num(&mut tail));
            } else if let Some(r) = t.strip_prefix("post").or_else(|| t.strip_prefix("rev")) {
                tail = r;
                post = Some(num(&mut tail));
            } else if let Some(r) = t.strip_prefix("dev") {
                tail = r;
                dev = DevKey::Dev(num(&mut tail));
            } else {
                return None;
            }
        }
        if !tail.is_empty() {
            return None;
        }
        if pre == (4, 0) && post.is_none() && matches!(dev, DevKey::Dev(_)) {
            pre = (0, 0);
        }
        let mut release = release;
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
        })
    }
}

/// Whether `version` satisfies every clause of `specifier` (`>=2.0,<2.1`, `==2.0.*`,
/// `~=0.21`). `None` when either cannot be parsed (then the caller cannot decide).
pub fn satisfies(version: &str, specifier: &str) -> Option<bool> {
    let v = Version::parse(version)?;
    for sp in parse_specifiers(specifier).ok()? {
        let ok = match sp.op.as_str() {
            "===" => sp.version == version.trim(),
            "==" | "!=" => {
                let eq = match sp.version.strip_suffix(".*") {
                    Some(prefix) => {
                        let p = Version::parse(prefix)?;
                        let vr = &v.release;
                        let pr: Vec<u64> = prefix
                            .split('.')
                            .map(|x| x.parse().unwrap_or(u64::MAX))
                            .collect();
                        p.epoch == v.epoch
                            && (0..pr.len()).all(|i| vr.get(i).copied().unwrap_or(0) == pr[i])
                    }
                    None => v == Version::parse(&sp.version)?,
                };
                if sp.op == "==" { eq } else { !eq }
            }
            "~=" => {
                let p = Version::parse(&sp.version)?;
                let parts: Vec<&str> = sp.version.split('.').collect();
                if parts.len() < 2 {
                    return None;
                }
                let prefix = parts[..parts.len() - 1].join(".");
                v >= p && satisfies(version, &format!("=={prefix}.*"))?
            }
            op => {
                let p = Version::parse(&sp.version)?;
                match op {
                    "<" => v < p,
                    "<=" => v <= p,
                    ">" => v > p,
                    _ => v >= p,
                }
            }
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

/// Surgical edits of `package.json` text: only the edited value's characters change, so
/// indentation, key order, spacing and the trailing newline are the file's own. A text edit
/// (rather than parse and re-serialize) is the only way to keep a hand-formatted file's
/// diff to the lines that really changed.
pub mod package_json {
    /// Why a `package.json` edit failed.
    #[derive(Debug, thiserror::Error, PartialEq, Eq)]
    pub enum JsonEditError {
        #[error("not valid JSON: {0}")]
        Invalid(String),
        #[error("the top level is not an object")]
        NotObject,
        #[error("\"{0}\" is not an object")]
        SectionNotObject(String),
        #[error("\"{section}\".\"{name}\" is not a string")]
        NotString { section: String, name: String },
    }

    /// Sets `section.name` (e.g. `devDependencies` / `vitest`) to `version`, keeping the
    /// range prefix the file used (`^`, `~`, `>=`) when `version` has none, as
    /// `npm install x@1.2.3` does. A missing entry is added after the section's last one,
    /// with its indentation; a missing section is an error. Returns `None` when the value
    /// is already that.
    pub fn set_dependency(
        text: &str,
        section: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<String>, JsonEditError> {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| JsonEditError::Invalid(e.to_string()))?;
        let b = text.as_bytes();
        let root = ws(b, 0);
        if b.get(root) != Some(&b'{') {
            return Err(JsonEditError::NotObject);
        }
        let sec = members(text, root)
            .into_iter()
            .find(|m| m.key == section)
            .ok_or_else(|| JsonEditError::SectionNotObject(section.to_string()))?;
        if b[sec.value.start] != b'{' {
            return Err(JsonEditError::SectionNotObject(section.to_string()));
        }
        let deps = members(text, sec.value.start);
        if let Some(m) = deps.iter().find(|m| m.key == name) {
            if b[m.value.start] != b'"' {
                return Err(JsonEditError::NotString {
                    section: section.into(),
                    name: name.into(),
                });
            }
            let old = &text[m.value.start + 1..m.value.end - 1];
            let new = with_prefix(old, version);
            if old == new {
                return Ok(None);
            }
            let mut out = String::with_capacity(text.len() + 8);
            out.push_str(&text[..m.value.start + 1]);
            out.push_str(&escape(&new));
            out.push_str(&text[m.value.end - 1..]);
            return Ok(Some(out));
        }
        let entry = format!("\"{}\": \"{}\"", escape(name), escape(version));
        let mut out = String::with_capacity(text.len() + entry.len() + 8);
        match deps.last() {
            Some(last) => {
                // The whitespace before the last key is the indentation to repeat.
                let before = &text[..last.key_start];
                let lead_start = before
                    .rfind(|c: char| !c.is_whitespace())
                    .map(|i| i + 1)
                    .unwrap_or(0);
                let lead = &text[lead_start..last.key_start];
                out.push_str(&text[..last.value.end]);
                out.push(',');
                out.push_str(lead);
                out.push_str(&entry);
                out.push_str(&text[last.value.end..]);
            }
            None => {
                let open = sec.value.start;
                out.push_str(&text[..=open]);
                out.push_str(&entry);
                out.push_str(&text[open + 1..]);
            }
        }
        Ok(Some(out))
    }

    fn with_prefix(old: &str, version: &str) -> String {
        if version.starts_with(|c: char| c.is_ascii_digit()) {
            let prefix: String = old
                .chars()
                .take_while(|c| matches!(c, '^' | '~' | '>' | '<' | '=' | ' '))
                .collect();
            format!("{prefix}{version}")
        } else {
            version.to_string()
        }
    }

    fn escape(s: &str) -> String {
        let v = serde_json::Value::String(s.to_string()).to_string();
        v[1..v.len() - 1].to_string()
    }

    struct Member {
        key: String,
        key_start: usize,
        value: std::ops::Range<usize>,
    }

    fn ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }

    /// End (exclusive) of the string starting at the quote `i`.
    fn string_end(b: &[u8], mut i: usize) -> usize {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        b.len()
    }

    /// End (exclusive) of the value starting at `i` (the text is known to be valid JSON).
    fn value_end(b: &[u8], i: usize) -> usize {
        match b[i] {
            b'"' => string_end(b, i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut k = i;
                while k < b.len() {
                    match b[k] {
                        b'"' => {
                            k = string_end(b, k);
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return k + 1;
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
                b.len()
            }
            _ => {
                let mut k = i;
                while k < b.len() && !b",}] \t\r\n".contains(&b[k]) {
                    k += 1;
                }
                k
            }
        }
    }

    /// The members of the object whose `{` is at `open`.
    fn members(text: &str, open: usize) -> Vec<Member> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = ws(b, open + 1);
        while i < b.len() && b[i] == b'"' {
            let key_end = string_end(b, i);
            let key = serde_json::from_str::<String>(&text[i..key_end]).unwrap_or_default();
            let colon = ws(b, key_end);
            let v0 = ws(b, colon + 1);
            let v1 = value_end(b, v0);
            out.push(Member {
                key,
                key_start: i,
                value: v0..v1,
            });
            i = ws(b, v1);
            if b.get(i) == Some(&b',') {
                i = ws(b, i + 1);
            } else {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Requirement {
        match ReqFile::parse(line).entries.remove(0).kind {
            Kind::Requirement(r) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn names_normalize_per_pep_503() {
        assert_eq!(normalize("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(normalize("SQLAlchemy"), "sqlalchemy");
        assert_eq!(normalize("a--__b"), "a-b");
    }

    #[test]
    fn parses_pep508_parts() {
        let r = req(
            "SQLAlchemy[asyncio, mypy] >= 2.0.45 , <2.1 ; python_version >= \"3.9\" and sys_platform != 'win32'  # db\n",
        );
        assert_eq!(r.name.as_deref(), Some("SQLAlchemy"));
        assert_eq!(r.extras, ["asyncio", "mypy"]);
        assert_eq!(r.specifier, ">= 2.0.45 , <2.1");
        assert_eq!(r.specifiers.len(), 2);
        assert_eq!(r.specifiers[1].op, "<");
        assert_eq!(
            r.marker.as_deref(),
            Some("python_version >= \"3.9\" and sys_platform != 'win32'")
        );
        let r = req("pip @ https://github.com/pypa/pip/archive/22.0.2.zip ; python_version<'3.12'");
        assert_eq!(
            r.url.as_deref(),
            Some("https://github.com/pypa/pip/archive/22.0.2.zip")
        );
        assert!(r.marker.is_some());
        let r = req("pip[x]@https://h/p.zip");
        assert_eq!(r.name.as_deref(), Some("pip"));
        assert_eq!(r.url.as_deref(), Some("https://h/p.zip"));
        let r = req("https://h/p-1.0.tar.gz#egg=p");
        assert_eq!(r.name, None);
        let r = req("foo (>=1.0,<2)");
        assert_eq!(r.specifier, ">=1.0,<2");
        let r = req("aiosqlite==0.21.0 --hash=sha256:aa --hash=sha256:bb");
        assert_eq!(r.hashes, ["sha256:aa", "sha256:bb"]);
        assert_eq!(r.specifier, "==0.21.0");
    }

    #[test]
    fn options_includes_and_invalid_lines() {
        let f = ReqFile::parse(
            "-r ../../requirements-base.txt\n--constraint=c.txt\n-e ./lib\n--index-url https://x/simple\n--pre\nfoo ==\n",
        );
        let kinds: Vec<_> = f.entries.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds[0],
            Kind::Include {
                constraint: false,
                target: "../../requirements-base.txt".into()
            }
        );
        assert_eq!(
            kinds[1],
            Kind::Include {
                constraint: true,
                target: "c.txt".into()
            }
        );
        assert_eq!(
            kinds[2],
            Kind::Editable {
                target: "./lib".into()
            }
        );
        assert_eq!(
            kinds[3],
            Kind::Option {
                name: "--index-url".into(),
                value: Some("https://x/simple".into())
            }
        );
        assert!(matches!(kinds[5], Kind::Invalid { .. }));
        assert!(matches!(
            ReqFile::parse("foo; bogus == '1'").entries[0].kind,
            Kind::Invalid { .. }
        ));
    }

    #[test]
    fn continuations_and_roundtrip() {
        let text = "# top \\\nfoo==1.0 \\\n    --hash=sha256:abc \\\r\n    --hash=sha256:def  # c\r\nbar\\";
        let f = ReqFile::parse(text);
        assert_eq!(f.render(), text);
        assert_eq!(f.entries.len(), 3);
        assert_eq!(f.entries[1].line, 2);
        let Kind::Requirement(r) = &f.entries[1].kind else {
            panic!()
        };
        assert_eq!(r.hashes, ["sha256:abc", "sha256:def"]);
        assert_eq!(f.entries[1].comment.as_deref(), Some("# c"));
    }

    #[test]
    fn set_version_changes_only_the_specifier() {
        let text = "# db\nSQLAlchemy[asyncio]==2.0.45 ; python_version >= '3.9'  # pinned\nsqlalchemy-utils==0.41\naiosqlite \\\n  --hash=sha256:x\n";
        let mut f = ReqFile::parse(text);
        assert_eq!(f.set_version("sqlalchemy", "==2.0.46"), Ok(1));
        assert_eq!(f.set_version("AIOSQLITE", "0.22.1"), Ok(1));
        assert_eq!(
            f.render(),
            "# db\nSQLAlchemy[asyncio]==2.0.46 ; python_version >= '3.9'  # pinned\nsqlalchemy-utils==0.41\naiosqlite==0.22.1 \\\n  --hash=sha256:x\n"
        );
        assert_eq!(f.set_version("sqlalchemy", "==2.0.46"), Ok(0));
        assert_eq!(
            f.set_version("nope", "==1"),
            Err(EditError::NotFound("nope".into()))
        );
        assert!(matches!(
            f.set_version("sqlalchemy", "2 0"),
            Err(EditError::BadSpecifier { .. })
        ));
    }

    #[test]
    fn versions_compare_per_pep_440() {
        assert_eq!(satisfies("2.0.46", ">=2.0,<2.1"), Some(true));
        assert_eq!(satisfies("2.1.0", ">=2.0,<2.1"), Some(false));
        assert_eq!(satisfies("2.0.46", "==2.0.*"), Some(true));
        assert_eq!(satisfies("0.22.1", "~=0.21.0"), Some(false));
        assert_eq!(satisfies("0.21.5", "~=0.21.0"), Some(true));
        assert_eq!(satisfies("0.22.1", "~=0.21"), Some(true));
        assert_eq!(satisfies("1.0rc1", "<1.0"), Some(true));
        assert_eq!(satisfies("1.0.post1", ">1.0"), Some(true));
        assert_eq!(satisfies("1.0.dev1", "<1.0a1"), Some(true));
        assert_eq!(satisfies("2.0", "==2.0.0"), Some(true));
        assert_eq!(satisfies("2.0.45", "!=2.0.45"), Some(false));
        assert_eq!(satisfies("x", ">=1"), None);
    }

    #[test]
    fn package_json_edit_keeps_formatting() {
        let text = "{\n    \"name\": \"x\",\n    \"devDependencies\": {\n        \"vitest\": \"^3.2.4\",\n        \"msw\": \"2.10.0\"\n    }\n}\n";
        let out = package_json::set_dependency(text, "devDependencies", "vitest", "4.0.17")
            .unwrap()
            .unwrap();
        assert_eq!(out, text.replace("^3.2.4", "^4.0.17"));
        assert_eq!(
            package_json::set_dependency(&out, "devDependencies", "vitest", "4.0.17"),
            Ok(None)
        );
        let added = package_json::set_dependency(text, "devDependencies", "happy-dom", "20.5.0")
            .unwrap()
            .unwrap();
        assert!(added.contains("\"msw\": \"2.10.0\",\n        \"happy-dom\": \"20.5.0\"\n    }"));
        assert!(package_json::set_dependency("{", "d", "x", "1").is_err());
    }
}
