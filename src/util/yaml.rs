//! A guard for YAML text before a parser sees it.
//!
//! Both readers of YAML — the strict fleet config and `fs::read_yaml` — need it, and neither
//! should depend on the other's layer for it.

/// Deepest `[`/`{` nesting of flow collections accepted in YAML. The YAML parser reads every
/// event of a document before refusing it for depth, in time that grows faster than the
/// input: 20,000 nested `[` took seconds. Counting first bounds that work.
pub const MAX_YAML_FLOW_DEPTH: usize = 128;

/// The line of the first flow collection nested deeper than [`MAX_YAML_FLOW_DEPTH`], if any
/// (quotes and comments are skipped).
pub fn yaml_too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            comment = false;
        }
        if comment {
            prev = c;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' if !prev.is_alphanumeric() => quote = Some(c),
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_YAML_FLOW_DEPTH {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_found_on_its_line() {
        assert_eq!(yaml_too_deep("a: [1, {b: 2}]\n"), None);
        let deep = format!("a: 1\nb: {}", "[".repeat(MAX_YAML_FLOW_DEPTH + 1));
        assert_eq!(yaml_too_deep(&deep), Some(2));
        // Brackets in quotes and comments do not count.
        let quoted = format!("a: '{}'\n# {}\n", "[".repeat(200), "{".repeat(200));
        assert_eq!(yaml_too_deep(&quoted), None);
    }
}
