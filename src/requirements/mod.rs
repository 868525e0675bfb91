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
//!
//! Where things are: [`pip`] reads and edits the file format, [`marker`] checks PEP 508
//! environment markers, [`version`] parses PEP 440 versions and specifiers, and
//! [`package_json`] edits `package.json` dependencies the same surgical way.

pub mod marker;
pub mod package_json;
pub mod pip;
pub mod version;

pub use marker::check_marker;
pub use pip::{EditError, Entry, Kind, ReqFile, Requirement, Spec};
pub use version::{Version, parse_specifiers, satisfies};

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
}
