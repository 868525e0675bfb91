//! PEP 508 environment markers (`python_version < "3.11" and sys_platform == "linux"`):
//! checked against the grammar so a typo is reported on its line, never evaluated (the
//! parser describes files; it does not install anything).

use super::version::OPS;

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
