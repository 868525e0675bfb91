//! When an input continues: the prompt compiles what was typed so far, and an input that
//! fails only because it ends too early gets a `...` line instead of an error.

use rhai::Engine;

/// True when `text` fails to compile only because it ends too early (an open brace, a
/// dangling operator, an unterminated backtick string): the prompt should continue.
/// `engine` should not use strict variables (session variables are unknown to it).
pub fn is_incomplete(engine: &Engine, text: &str) -> bool {
    use rhai::{LexError, ParseErrorType as P};
    if text.trim().is_empty() || text.trim_start().starts_with(':') {
        return false;
    }
    let Err(e) = engine.compile(text) else {
        return false;
    };
    let at_end = {
        let pos = e.position();
        let lines: Vec<&str> = text.split('\n').collect();
        match pos.line() {
            None => true,
            Some(l) if l > lines.len() => true,
            Some(l) if l < lines.len() => lines[l..].iter().all(|r| r.trim().is_empty()),
            Some(l) => pos
                .position()
                .is_none_or(|c| c > lines[l - 1].trim_end().chars().count()),
        }
    };
    match e.err_type() {
        P::UnexpectedEOF => true,
        P::BadInput(LexError::UnterminatedString) => {
            // A backtick string may span lines; an ordinary "..." cannot.
            text.matches('`').count() % 2 == 1
        }
        P::MissingToken(..) | P::MissingSymbol(..) | P::ExprExpected(..) => at_end,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_input_is_an_open_construct_at_the_end() {
        let mut e = crate::engine::bare(&crate::engine::Limits::default());
        e.set_strict_variables(false);
        for open in [
            "fn add(a, b) {",
            "fn add(a, b) {\n  a + b",
            "let x = [1, 2,",
            "if x > 1 {",
            "let s = `multi",
            "let y = 1 +",
            "foo(1,",
        ] {
            assert!(is_incomplete(&e, open), "{open:?} should continue");
        }
        for done in [
            "fn add(a, b) { a + b }",
            "1 + 2",
            "let x = ;; 1",
            "let x = )",
            "\"unterminated",
            ":help",
            "",
        ] {
            assert!(!is_incomplete(&e, done), "{done:?} should be submitted");
        }
    }
}
