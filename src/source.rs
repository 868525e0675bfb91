//! Reading and vetting script text before Rhai compiles it.
//!
//! Every playbook, module, validation and REPL line passes through here, because Rhai's
//! parser has blind spots that a hostile (or just unlucky) input turns into harm:
//!
//! * **Size.** A file is read with a hard cap ([`MAX_SOURCE_BYTES`]), so `dockhand run
//!   /dev/zero` fails at once instead of eating memory until the OOM killer comes.
//! * **Positions.** Rhai stores line and column in 16 bits and saturates past 65,535, so an
//!   error on line 70,000 would point at line 65,535. A script longer or wider than that is
//!   refused with the real line number, so every position we print is right.
//! * **Map literals.** Rhai checks a map literal's keys for duplicates one by one against all
//!   earlier keys, which is quadratic: 20,000 keys take half a minute to *compile*, and
//!   compiling is not covered by `--timeout`. A literal over [`MAX_MAP_LITERAL`] entries is
//!   refused before the parser sees it (large data belongs in a JSON/YAML file, read with
//!   `fs::read_json`), which bounds compile work to a few milliseconds per literal.
//! * **Silent surprises.** An unterminated `/*` makes Rhai ignore the rest of the file; an
//!   integer literal too large for 64 bits silently becomes a float. Both are errors here.
//!   A UTF-8 byte-order mark at the start (some Windows editors write one) is accepted.
//!
//! The checks run on Rhai's own tokenizer, so they see exactly the tokens the parser will.

use std::io::Read;
use std::path::Path;

use rhai::{Engine, Position, Token};

use crate::error::Error;

/// Largest script file dockhand reads (4 MiB: the whole shipped stdlib is under 100 KB).
pub const MAX_SOURCE_BYTES: u64 = 4 * 1024 * 1024;
/// Most lines, and most characters on one line, whose positions Rhai can report exactly.
pub const MAX_POSITION: usize = u16::MAX as usize;
/// Most entries in one `#{ ... }` literal.
pub const MAX_MAP_LITERAL: usize = 4096;
/// Most key comparisons Rhai's parser may make for all map literals of one script together
/// (four literals of the largest size): many literals just under [`MAX_MAP_LITERAL`] must
/// not add up to minutes of compiling either.
pub const MAX_MAP_LITERAL_WORK: usize = 4 * MAX_MAP_LITERAL * MAX_MAP_LITERAL / 2;

/// Opens `path` for reading only if it is a regular file. Opened non-blocking, so a FIFO (or a
/// device) planted where a file is expected is refused at once instead of blocking the run
/// past `--timeout` and Ctrl-C: opening a FIFO with no writer would wait forever.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if meta.is_dir() || meta.is_file() {
        return Ok(f);
    }
    Err(std::io::Error::other(
        "not a regular file (a FIFO, socket or device would block or never end); dockhand reads regular files only",
    ))
}

/// Reads a script (or config) file as UTF-8 with a hard size cap. A leading byte-order mark
/// is dropped. `what` names the file's role in messages ("playbook", "module").
pub fn read_capped(path: &Path, what: &str) -> Result<String, Error> {
    let io = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = open_regular(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a directory, not a {what} file",
            path.display()
        )));
    }
    let mut buf = Vec::new();
    f.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_SOURCE_BYTES {
        return Err(Error::Usage(format!(
            "{} is larger than {} MiB; a {what} this big is not a script (large data belongs \
             in a JSON or YAML file read with fs::read_json / fs::read_yaml)",
            path.display(),
            MAX_SOURCE_BYTES / (1024 * 1024)
        )));
    }
    let text = String::from_utf8(buf).map_err(|e| {
        Error::Usage(format!(
            "{} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok(strip_bom(&text).to_string())
}

/// `text` without a leading UTF-8 byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A problem found before compiling: what, and where (1-based line and column; these are
/// real numbers, not Rhai's saturated ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl SourceProblem {
    /// The position to hand to Rhai-shaped errors (exact, since [`vet`] refuses anything
    /// Rhai cannot place).
    pub fn position(&self) -> Position {
        let l = u16::try_from(self.line.max(1)).unwrap_or(u16::MAX);
        let c = u16::try_from(self.column).unwrap_or(u16::MAX);
        Position::new(l, c)
    }
}

/// Checks `text` (already without BOM) for what Rhai's parser would get wrong or take too
/// long over. Linear in the size of `text`.
pub fn vet(engine: &Engine, text: &str) -> Result<(), SourceProblem> {
    if text.len() as u64 > MAX_SOURCE_BYTES {
        return Err(SourceProblem {
            message: format!(
                "the script is larger than {} MiB",
                MAX_SOURCE_BYTES / (1024 * 1024)
            ),
            line: 1,
            column: 1,
        });
    }
    for (i, line) in text.split('\n').enumerate() {
        if i >= MAX_POSITION {
            return Err(SourceProblem {
                message: format!(
                    "the script has more than {MAX_POSITION} lines; split it into modules \
                     (import \"lib/part\")"
                ),
                line: i + 1,
                column: 1,
            });
        }
        let width = line.chars().count();
        if width >= MAX_POSITION {
            return Err(SourceProblem {
                message: format!(
                    "line {} is {width} characters long (at most {} are allowed); break it up",
                    i + 1,
                    MAX_POSITION - 1
                ),
                line: i + 1,
                column: 1,
            });
        }
    }
    scan_tokens(engine, text)
}

/// One open bracket while scanning: which kind, and for a map literal its entry count.
enum Open {
    Map {
        entries: usize,
        pos: Position,
    },
    Other,
    /// `${` inside a back-tick string: its `}` resumes the string.
    Interp,
}

/// One more entry in an open map literal: refused once the literal, or the script's map
/// literals together, would make the parser's pairwise key comparison too slow.
fn count_map_entry(entries: &mut usize, map_work: &mut usize) -> Result<(), String> {
    *entries += 1;
    // Rhai compares each key with every earlier one of its literal.
    *map_work += *entries;
    if *map_work > MAX_MAP_LITERAL_WORK {
        return Err(
            "the map literals of this script are too large in total for the parser \
                    (it compares keys pairwise); keep large data in a JSON or YAML file and \
                    read it with fs::read_json / fs::read_yaml"
                .to_string(),
        );
    }
    if *entries >= MAX_MAP_LITERAL {
        return Err(format!(
            "this map literal has more than {MAX_MAP_LITERAL} entries; keep large data in a \
             JSON or YAML file and read it with fs::read_json / fs::read_yaml"
        ));
    }
    Ok(())
}

/// The tokenizer turns an integer literal too large for 64 bits into a float silently.
fn too_big_integer(literal: &str) -> Result<(), String> {
    let digits = literal.trim_start_matches('-').replace('_', "");
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the integer {literal} does not fit in 64 bits (largest: {}); write it as a float \
             ({literal}.0) if that is what you mean",
            i64::MAX
        ));
    }
    Ok(())
}

fn scan_tokens(engine: &Engine, text: &str) -> Result<(), SourceProblem> {
    let inputs = [text];
    let (mut tokens, control) = engine.lex(&inputs);
    let at = |pos: Position, message: String| SourceProblem {
        message,
        line: pos.line().unwrap_or(1),
        column: pos.position().unwrap_or(1),
    };
    let mut stack: Vec<Open> = Vec::new();
    let mut last_pos = Position::new(1, 1);
    let mut interp_next = false;
    let mut map_work = 0usize;
    // A LexError ends our scan: the parser reports it with its own words.
    for (tok, pos) in tokens.by_ref() {
        last_pos = pos;
        match tok {
            Token::EOF => break,
            Token::LexError(_) => return Ok(()),
            Token::MapStart => stack.push(Open::Map { entries: 0, pos }),
            // After `${` the tokenizer yields the string's text, then a `{`.
            Token::InterpolatedString(_) => interp_next = true,
            Token::LeftBrace if interp_next => {
                interp_next = false;
                stack.push(Open::Interp);
            }
            Token::LeftBrace | Token::LeftBracket | Token::LeftParen => stack.push(Open::Other),
            Token::Comma => {
                if let Some(Open::Map { entries, pos }) = stack.last_mut() {
                    count_map_entry(entries, &mut map_work).map_err(|m| at(*pos, m))?;
                }
            }
            Token::RightBrace => {
                if let Some(Open::Interp) = stack.pop() {
                    // What the parser does at the end of `${...}`: back to string text.
                    control.borrow_mut().is_within_text = true;
                }
            }
            Token::RightBracket | Token::RightParen => {
                stack.pop();
            }
            Token::FloatConstant(f) => too_big_integer(&f.1).map_err(|m| at(pos, m))?,
            _ => {}
        }
    }
    if tokens.state.comment_level > 0 {
        return Err(at(
            last_pos,
            "a /* block comment is never closed with */, so everything after it would be \
             ignored"
                .to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::new_raw()
    }

    #[test]
    fn refuses_an_unterminated_block_comment_but_not_one_in_a_string() {
        let e = engine();
        let p = vet(&e, "let x = 1;\n/* never closed\nlet y = 2;\n").unwrap_err();
        assert!(p.message.contains("never closed"), "{p:?}");
        vet(
            &e,
            "let s = \"/* not a comment\"; /* closed */ let t = `a ${s} /* b`;",
        )
        .unwrap();
    }

    #[test]
    fn refuses_integers_over_64_bits_and_keeps_floats() {
        let e = engine();
        let p = vet(&e, "let x = 1;\nlet big = 99999999999999999999;").unwrap_err();
        assert_eq!((p.line, p.column), (2, 11), "{p:?}");
        assert!(p.message.contains("does not fit in 64 bits"), "{p:?}");
        vet(
            &e,
            "let f = 1.5e300; let g = 9223372036854775807; let h = 2.0;",
        )
        .unwrap();
    }

    #[test]
    fn bounds_map_literals_but_not_arrays() {
        let e = engine();
        let keys: Vec<String> = (0..MAX_MAP_LITERAL + 1)
            .map(|i| format!("k{i}: {i}"))
            .collect();
        let p = vet(&e, &format!("let m = #{{{}}};", keys.join(",\n"))).unwrap_err();
        assert!(p.message.contains("map literal"), "{p:?}");
        let items: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
        vet(&e, &format!("let a = [{}];", items.join(",\n"))).unwrap();
        // Many literals just under the bound add up, and are refused too.
        let one: Vec<String> = (0..MAX_MAP_LITERAL - 10)
            .map(|i| format!("k{i}: {i}"))
            .collect();
        let one = format!("#{{{}}}", one.join(",\n"));
        let many = vec![one; 6].join(",\n");
        let p = vet(&e, &format!("let a = [{many}];")).unwrap_err();
        assert!(p.message.contains("in total"), "{p:?}");
        // Many small maps are fine.
        let small: Vec<String> = (0..5000).map(|i| format!("#{{a: {i}}}")).collect();
        vet(&e, &format!("let a = [{}];", small.join(",\n"))).unwrap();
    }

    #[test]
    fn refuses_positions_rhai_cannot_represent() {
        let e = engine();
        let long = format!("let s = \"{}\";", "x".repeat(70_000));
        assert!(
            vet(&e, &long)
                .unwrap_err()
                .message
                .contains("characters long")
        );
        let many = "1;\n".repeat(70_000);
        let p = vet(&e, &many).unwrap_err();
        assert_eq!(p.line, MAX_POSITION + 1);
    }

    #[test]
    fn reads_with_a_cap_and_drops_the_bom() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.rhai");
        std::fs::write(&p, "\u{feff}let x = 1;").unwrap();
        assert_eq!(read_capped(&p, "playbook").unwrap(), "let x = 1;");
        let err = read_capped(Path::new("/dev/zero"), "playbook").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let big = dir.path().join("big.rhai");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_SOURCE_BYTES + 1)
            .unwrap();
        let err = read_capped(&big, "playbook").unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
