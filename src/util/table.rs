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
    render_aligned(header, rows, indent, &[])
}

/// As [`render`], with the columns numbered in `right` aligned to the right (counts and
/// times read better that way).
pub fn render_aligned<H, R, C>(header: &[H], rows: &[R], indent: &str, right: &[usize]) -> String
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
        for (i, (w, c)) in widths.iter().zip(cells).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            if right.contains(&i) {
                l.push_str(&pad);
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&pad);
            }
            l.push_str("  ");
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
    fn right_aligned_columns_pad_on_the_left() {
        let rows = [["a", "5"], ["bb", "1234"]];
        let t = render_aligned(&["NAME", "MS"], &rows, "", &[1]);
        assert_eq!(t, "NAME    MS\na        5\nbb    1234\n");
    }

    #[test]
    fn short_rows_and_no_rows() {
        let rows: Vec<Vec<String>> = vec![vec!["x".into()]];
        assert_eq!(render(&["A", "B"], &rows, ""), "A  B\nx\n");
        let none: [[&str; 2]; 0] = [];
        assert_eq!(render(&["A", "B"], &none, ""), "A  B\n");
    }
}
