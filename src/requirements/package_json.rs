//! Surgical edits of `package.json` text: only the edited value's characters change, so
//! indentation, key order, spacing and the trailing newline are the file's own. A text edit
//! (rather than parse and re-serialize) is the only way to keep a hand-formatted file's
//! diff to the lines that really changed.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_json_edit_keeps_formatting() {
        let text = "{\n    \"name\": \"x\",\n    \"devDependencies\": {\n        \"vitest\": \"^3.2.4\",\n        \"msw\": \"2.10.0\"\n    }\n}\n";
        let out = set_dependency(text, "devDependencies", "vitest", "4.0.17")
            .unwrap()
            .unwrap();
        assert_eq!(out, text.replace("^3.2.4", "^4.0.17"));
        assert_eq!(
            set_dependency(&out, "devDependencies", "vitest", "4.0.17"),
            Ok(None)
        );
        let added = set_dependency(text, "devDependencies", "happy-dom", "20.5.0")
            .unwrap()
            .unwrap();
        assert!(added.contains("\"msw\": \"2.10.0\",\n        \"happy-dom\": \"20.5.0\"\n    }"));
        assert!(set_dependency("{", "d", "x", "1").is_err());
    }
}
