//! How the REPL shows a value: maps as aligned lines, arrays of maps as a table (so
//! `docker::ps()` reads like `docker ps`), everything else on one line.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rhai::{Dynamic, Map};

/// Columns shown first when present, so `docker::ps()` reads like `docker ps`.
const FIRST_COLUMNS: &[&str] = &[
    "name", "service", "id", "image", "state", "health", "status", "ports",
];

/// A value as the REPL shows it: maps as aligned `key  value` lines, arrays of maps as a
/// table, strings as their text, the rest on one line.
pub fn render(v: &Dynamic) -> String {
    if v.is_unit() {
        return String::new();
    }
    if let Some(m) = v.read_lock::<Map>() {
        if m.is_empty() {
            return "#{}\n".into();
        }
        let width = m.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, val) in m.iter() {
            let _ = writeln!(out, "{:<width$}  {}", k.as_str(), short(val, false));
        }
        return out;
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        if !a.is_empty() && a.iter().all(|x| x.is_map()) {
            return table_of_maps(&a);
        }
        return format!("{}\n", short(v, true));
    }
    if v.is_string() {
        let s = v.to_string();
        return if s.ends_with('\n') { s } else { s + "\n" };
    }
    format!("{}\n", short(v, true))
}

/// One-line form. Strings are quoted only inside containers (`quote`), where an unquoted
/// `a, b` would be ambiguous.
pub fn short(v: &Dynamic, quote: bool) -> String {
    if v.is_unit() {
        return if quote { "()".into() } else { String::new() };
    }
    if v.is_string() {
        let s = v.to_string();
        return if quote { format!("{s:?}") } else { s };
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        let items: Vec<String> = a.iter().map(|x| short(x, true)).collect();
        return format!("[{}]", items.join(", "));
    }
    if let Some(m) = v.read_lock::<Map>() {
        let items: Vec<String> = m
            .iter()
            .map(|(k, x)| format!("{}: {}", k.as_str(), short(x, true)))
            .collect();
        return format!("#{{{}}}", items.join(", "));
    }
    v.to_string()
}

/// `s` on one line (newlines as `\n`), cut to `max` characters with an ellipsis.
pub(super) fn truncate(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn table_of_maps(rows: &[Dynamic]) -> String {
    let maps: Vec<Map> = rows
        .iter()
        .filter_map(|r| r.read_lock::<Map>().map(|m| m.clone()))
        .collect();
    let mut keys: Vec<String> = maps
        .iter()
        .flat_map(|m| m.keys().map(|k| k.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by_key(|k| {
        FIRST_COLUMNS
            .iter()
            .position(|f| f == k)
            .unwrap_or(FIRST_COLUMNS.len())
    });
    let header: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
    let cells: Vec<Vec<String>> = maps
        .iter()
        .map(|m| {
            keys.iter()
                .map(|k| {
                    m.get(k.as_str())
                        .map(|v| truncate(&short(v, false), 40))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    crate::util::table::render(&header, &cells, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_maps_as_aligned_lines_and_arrays_of_maps_as_tables() {
        let mut m = Map::new();
        m.insert("name".into(), "data-api".into());
        m.insert("restarts".into(), (2 as rhai::INT).into());
        let text = render(&Dynamic::from(m));
        assert_eq!(text, "name      data-api\nrestarts  2\n");

        let row = |name: &str, state: &str, extra: Option<i64>| {
            let mut m = Map::new();
            m.insert("state".into(), state.into());
            m.insert("name".into(), name.into());
            if let Some(x) = extra {
                m.insert("age_s".into(), x.into());
            }
            Dynamic::from(m)
        };
        let rows: rhai::Array = vec![
            row("data-api", "running", Some(12)),
            row("weather-api-long", "exited", None),
        ];
        let text = render(&Dynamic::from(rows));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME              STATE    AGE_S");
        assert_eq!(lines[1], "data-api          running  12");
        assert_eq!(lines[2], "weather-api-long  exited");
    }

    #[test]
    fn renders_scalars_and_nested_values_on_one_line() {
        assert_eq!(render(&Dynamic::UNIT), "");
        assert_eq!(render(&Dynamic::from("text")), "text\n");
        let arr: rhai::Array = vec![(1 as rhai::INT).into(), "a".into()];
        assert_eq!(render(&Dynamic::from(arr)), "[1, \"a\"]\n");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
