//! Plain-text tables: left-aligned columns two spaces apart, no trailing spaces, no control
//! codes, so CI logs and `grep` read them as well as a terminal does.

/// A header row and `rows` under it, each line prefixed by `indent`. Widths count characters
/// (not bytes), so names with accents line up. A row shorter than the header leaves its last
/// columns empty; cells beyond the header's width are dropped.
pub fn render<H, R, C>(header: &[H], rows: &[R], indent: &str) -> String
where
    H: AsRef<str>,
    R: AsRef<[C]>,
    C: AsRef<str>,
{
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.as_ref()) {
            *w = (*w).max(c.as_ref().chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = indent.to_string();
        for (w, c) in widths.iter().zip(cells) {
            l.push_str(c);
            l.push_str(&" ".repeat(w + 2 - c.chars().count()));
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(&mut header.iter().map(AsRef::as_ref));
    for r in rows {
        let cells = r.as_ref().iter().map(AsRef::as_ref).take(n);
        out.push_str(&line(&mut cells.chain(std::iter::repeat("")).take(n)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_characters_without_trailing_spaces() {
        let rows = [["ümlaut", "1", ""], ["b", "22", "last column"]];
        let t = render(&["NAME", "N", "NOTE"], &rows, "  ");
        assert_eq!(
            t,
            "  NAME    N   NOTE\n  ümlaut  1\n  b       22  last column\n"
        );
    }

    #[test]
    fn short_rows_and_no_rows() {
        let rows: Vec<Vec<String>> = vec![vec!["x".into()]];
        assert_eq!(render(&["A", "B"], &rows, ""), "A  B\nx\n");
        let none: [[&str; 2]; 0] = [];
        assert_eq!(render(&["A", "B"], &none, ""), "A  B\n");
    }
}
