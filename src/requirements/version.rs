//! PEP 440 versions and specifiers: parsing a specifier list (`>=2.0, <3`) and telling
//! whether a version satisfies one, enough for the file stories' pin checks.

/// One version clause: `>=` `2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub op: String,
    pub version: String,
}

pub(super) const OPS: [&str; 8] = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
