//! Differential test against an oracle of Flux's CSV decoder rules, written apart from
//! the parser: each generated cell carries the value Flux would decode it to, computed
//! from the parts it was built from (never by parsing its text), or is marked as one Flux
//! rejects. Times are built from year, month, day, ... and judged by their ranges; numbers
//! from integers; a row may be cut short. The parser must return exactly the oracle's
//! values, or an error at the oracle's line naming the oracle's column.

use super::*;

#[derive(Debug, Clone)]
enum Cell {
    /// Text and the value Flux decodes it to.
    Good(String, Value),
    /// Text Flux rejects.
    Bad(String),
}

const TYPES: [&str; 7] = [
    "long",
    "unsignedLong",
    "double",
    "boolean",
    "dateTime:RFC3339",
    "string",
    "duration",
];

fn good(text: String, v: Value) -> Cell {
    Cell::Good(text, v)
}

fn cell(ty: &'static str) -> BoxedStrategy<Cell> {
    match ty {
        "long" => long_cell(),
        "unsignedLong" => unsigned_long_cell(),
        "double" => double_cell(),
        "boolean" => boolean_cell(),
        "dateTime:RFC3339" => date_time_cell(),
        "string" => string_cell(),
        _ => duration_cell(),
    }
}

/// A `long` cell: any i64, a leading `+` (Go accepts it), or one out of range or not an integer.
fn long_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
        any::<i64>().prop_map(|n| good(n.to_string(), Value::Int(n))),
        (0i64..1000).prop_map(|n| good(format!("+{n}"), Value::Int(n))),
        Just(Cell::Bad("9223372036854775808".into())),
        Just(Cell::Bad("1.5".into())),
        "[a-z]{1,3}".prop_map(Cell::Bad),
    ]
    .boxed()
}

/// An `unsignedLong` cell: any u64, or a sign or a value beyond 64 bits (Go refuses both).
fn unsigned_long_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
        any::<u64>().prop_map(|n| good(n.to_string(), Value::UInt(n))),
        Just(Cell::Bad("-1".into())),
        Just(Cell::Bad("+1".into())),
        Just(Cell::Bad("18446744073709551616".into())),
    ]
    .boxed()
}

/// A `double` cell: exact quarters, exponents, infinities; out-of-range and malformed text.
fn double_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
        (any::<i32>(), 0usize..4).prop_map(|(i, q)| {
            let frac = q as f64 * 0.25;
            let v = if i < 0 {
                i as f64 - frac
            } else {
                i as f64 + frac
            };
            good(
                format!("{i}.{}", ["0", "25", "5", "75"][q]),
                Value::Float(v),
            )
        }),
        (any::<i32>(), 0i32..5).prop_map(|(i, e)| {
            good(format!("{i}e{e}"), Value::Float(i as f64 * 10f64.powi(e)))
        }),
        Just(good("Inf".into(), Value::Float(f64::INFINITY))),
        Just(good("-Inf".into(), Value::Float(f64::NEG_INFINITY))),
        Just(Cell::Bad("1e400".into())),
        Just(Cell::Bad("1.2.3".into())),
        Just(Cell::Bad("0x".into())),
        "[g-z]{1,3}".prop_map(Cell::Bad),
    ]
    .boxed()
}

/// A `boolean` cell: every spelling Go's `ParseBool` takes, and some it does not.
fn boolean_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
        proptest::sample::select(vec![
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("t", true),
            ("T", true),
            ("1", true),
            ("false", false),
            ("False", false),
            ("FALSE", false),
            ("f", false),
            ("F", false),
            ("0", false),
        ])
        .prop_map(|(t, b)| good(t.into(), Value::Bool(b))),
        proptest::sample::select(vec!["yes", "tRUE", "2", "no"]).prop_map(|t| Cell::Bad(t.into())),
    ]
    .boxed()
}

/// A `dateTime:RFC3339` cell, built from its parts and judged by their ranges; or a bare number.
fn date_time_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
    4 => (
        (0u32..10_000, 0u32..14, 0u32..33),
        (0u32..26, 0u32..62, 0u32..62),
        proptest::option::of("[0-9]{1,9}"),
        prop_oneof![Just(None), (0u32..26, 0u32..62, any::<bool>()).prop_map(Some)],
    )
        .prop_map(|((y, mo, d), (h, mi, s), frac, zone)| {
            let mut t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
            if let Some(f) = &frac {
                t.push('.');
                t.push_str(f);
            }
            let zone_ok = match zone {
                None => {
                    t.push('Z');
                    true
                }
                Some((zh, zm, east)) => {
                    t.push_str(&format!(
                        "{}{zh:02}:{zm:02}",
                        if east { '+' } else { '-' }
                    ));
                    zh < 24 && zm < 60
                }
            };
            let leap = y.is_multiple_of(400) || (y.is_multiple_of(4) && !y.is_multiple_of(100));
            let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let ok = (1..=12).contains(&mo)
                && d >= 1
                && d <= mdays[(mo.max(1) - 1) as usize]
                && h < 24
                && mi < 60
                && s < 60
                && zone_ok;
            if ok { good(t.clone(), Value::Time(t)) } else { Cell::Bad(t) }
        }),
    1 => any::<i64>().prop_map(|n| Cell::Bad(n.to_string())),
]
.boxed()
}

/// A `string` cell: any text, commas and quotes included.
fn string_cell() -> BoxedStrategy<Cell> {
    "[a-z ,\"]{1,6}"
        .prop_map(|t| good(t.clone(), Value::String(t)))
        .boxed()
}

/// A `duration` cell in one unit, or an unknown unit.
fn duration_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
        (0i64..100_000, 0usize..6).prop_map(|(n, u)| {
            let (unit, scale) = [
                ("ns", 1),
                ("us", 1_000),
                ("ms", 1_000_000),
                ("s", 1_000_000_000),
                ("m", 60_000_000_000),
                ("h", 3_600_000_000_000),
            ][u];
            good(format!("{n}{unit}"), Value::Duration(n * scale))
        }),
        (0i64..100).prop_map(|n| Cell::Bad(format!("{n}x"))),
    ]
    .boxed()
}

/// A cell, or an empty one (null: the columns have no `#default`).
fn maybe(ty: &'static str) -> BoxedStrategy<Option<Cell>> {
    prop_oneof![1 => Just(None), 6 => cell(ty).prop_map(Some)].boxed()
}

fn quote(t: &str) -> String {
    if t.contains([',', '"']) {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t.to_string()
    }
}

type Case = (
    Vec<&'static str>,
    Vec<Vec<Option<Cell>>>,
    Option<(usize, usize)>,
);

fn case() -> impl Strategy<Value = Case> {
    proptest::collection::vec(proptest::sample::select(TYPES.to_vec()), 1..6).prop_flat_map(
        |types| {
            let row: Vec<_> = types.iter().map(|t| maybe(t)).collect();
            (
                Just(types.clone()),
                proptest::collection::vec(row, 0..8),
                proptest::option::weighted(0.2, (0usize..8, 0usize..6)),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn parser_agrees_with_flux_rules((types, rows_in, short) in case()) {
        let names: Vec<String> = (0..types.len()).map(|i| format!("c{i}")).collect();
        let mut body = format!(
            "#datatype,string,long,{}\n#group,false,false{}\n#default,_result,{}\n,result,table,{}\n",
            types.join(","),
            ",false".repeat(types.len()),
            ",".repeat(types.len()),
            names.join(",")
        );
        // The oracle: the first short row or rejected cell, in reading order.
        let mut expect_err: Option<(usize, String)> = None;
        for (k, row) in rows_in.iter().enumerate() {
            let line = 5 + k;
            let keep = match short {
                Some((r, keep)) if r == k && keep < row.len() => keep,
                _ => row.len(),
            };
            let texts: Vec<String> = row[..keep]
                .iter()
                .map(|c| match c {
                    None => String::new(),
                    Some(Cell::Good(t, _)) | Some(Cell::Bad(t)) => quote(t),
                })
                .collect();
            body.push_str(",,0");
            for t in &texts {
                body.push(',');
                body.push_str(t);
            }
            body.push('\n');
            if expect_err.is_none() {
                if keep < row.len() {
                    expect_err = Some((line, names[keep].clone()));
                } else if let Some(i) = row.iter().position(|c| matches!(c, Some(Cell::Bad(_)))) {
                    expect_err = Some((line, names[i].clone()));
                }
            }
        }
        match (parse(&body), expect_err) {
            (Err(ParseError::Malformed { line, message, .. }), Some((want_line, col))) => {
                prop_assert_eq!(line, want_line, "{}\n{}", message, body);
                prop_assert!(message.contains(&format!("{col:?}")), "{} lacks {}\n{}", message, col, body);
            }
            (Ok(tables), None) => {
                let got: Vec<&Vec<Value>> = tables.iter().flat_map(|t| &t.rows).collect();
                prop_assert_eq!(got.len(), rows_in.len());
                for (g, want) in got.iter().zip(&rows_in) {
                    prop_assert_eq!(&g[0], &Value::String("_result".into()));
                    prop_assert_eq!(&g[1], &Value::Int(0));
                    for (i, c) in want.iter().enumerate() {
                        let v = match c {
                            None => Value::Null,
                            Some(Cell::Good(_, v)) => v.clone(),
                            Some(Cell::Bad(_)) => unreachable!(),
                        };
                        prop_assert_eq!(&g[2 + i], &v, "column {}\n{}", i, body);
                    }
                }
            }
            (got, want) => prop_assert!(false, "parser: {:?}\noracle: {:?}\n{}", got, want, body),
        }
    }
}
