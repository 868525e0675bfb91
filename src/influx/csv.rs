//! Flux annotated CSV, the body of InfluxDB 2.x `POST /api/v2/query`.
//!
//! The format, as InfluxData documents it (docs.influxdata.com, "Annotated CSV"):
//!
//! * annotation rows start with `#`: `#datatype` (column types), `#group` (group-key flags),
//!   `#default` (the value of an empty cell); the first column of every row is the
//!   annotation column, empty on header and record rows;
//! * then one header row, then record rows; the `result` and `table` columns name the result
//!   and the table each record belongs to, so several tables can share one header;
//! * a table whose schema differs starts a new block: a blank line, new annotations and a new
//!   header;
//! * an error is an in-band table with the columns `error,reference`, possibly after tables
//!   that were already sent with a 200 status.
//!
//! Records are read with the `csv` crate rather than by splitting lines: Flux quotes string
//! values that contain commas, quotes or newlines (RFC 4180), and a hand-rolled splitter gets
//! exactly those cases wrong.

use super::{Error, Row, Value, parse_duration_ns};

const WHAT: &str = "annotated CSV";

/// One column of a table, with its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// `#datatype` value (`long`, `double`, `dateTime:RFC3339`, ...); `string` when absent.
    pub datatype: String,
    /// `#group`: part of the group key.
    pub group: bool,
    /// `#default`: the value of an empty cell (empty when there is none).
    pub default: String,
}

/// One Flux table: the records sharing a `result` and a `table` id.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub result: String,
    pub table: i64,
    pub columns: Vec<Column>,
    /// Values in column order.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The rows as name → value maps.
    pub fn records(&self) -> impl Iterator<Item = Row> + '_ {
        self.rows.iter().map(|r| {
            self.columns
                .iter()
                .zip(r.iter())
                .map(|(c, v)| (c.name.clone(), v.clone()))
                .collect()
        })
    }
}

#[derive(Default)]
struct Annotations {
    datatype: Option<Vec<String>>,
    group: Option<Vec<String>>,
    default: Option<Vec<String>>,
}

impl Annotations {
    fn any(&self) -> bool {
        self.datatype.is_some() || self.group.is_some() || self.default.is_some()
    }
}

struct Block {
    columns: Vec<Column>,
    /// Whether rows carry the leading annotation column.
    skip_first: bool,
    result_idx: Option<usize>,
    table_idx: Option<usize>,
}

/// Parses a whole annotated-CSV body into tables. An error table in the body (even after
/// good tables) makes the whole parse an [`Error::Server`]: the results before it are
/// incomplete, and a partial answer must not pass for a complete one.
pub fn parse(body: &str) -> Result<Vec<Table>, Error> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut tables: Vec<Table> = Vec::new();
    let mut ann = Annotations::default();
    let mut block: Option<Block> = None;
    let mut block_index: i64 = -1;
    let mut error_block = false;
    let mut last_end: u64 = 0;
    let mut rec = ::csv::StringRecord::new();
    loop {
        let more = rdr.read_record(&mut rec).map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
            Error::malformed(WHAT, line, e.to_string())
        })?;
        if !more {
            break;
        }
        let start = rec.position().map(|p| p.byte()).unwrap_or(last_end) as usize;
        let mut line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        // The csv reader skips blank lines, and a record's position is where the reader
        // stood before them: line breaks at the start of this record's text are blank lines
        // (minus the `\n` of a previous `\r\n` terminator), and a blank line ends a block.
        let bytes = body.as_bytes();
        let lead = bytes
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .filter(|b| **b == b'\n')
            .count();
        let split_crlf =
            start > 0 && bytes.get(start - 1) == Some(&b'\r') && bytes.get(start) == Some(&b'\n');
        let blank = lead.saturating_sub(usize::from(split_crlf));
        line += blank;
        if blank > 0 && block.is_some() {
            block = None;
            ann = Annotations::default();
        }
        last_end = rdr.position().byte();

        let first = rec.get(0).unwrap_or("");
        if let Some(name) = first.strip_prefix('#') {
            // Annotations after records start the next block.
            if block.is_some() {
                block = None;
                ann = Annotations::default();
            }
            let values: Vec<String> = rec.iter().skip(1).map(str::to_string).collect();
            match name.trim() {
                "datatype" => ann.datatype = Some(values),
                "group" => ann.group = Some(values),
                "default" => ann.default = Some(values),
                _ => {} // other annotations and comments carry nothing we use
            }
            continue;
        }

        let Some(b) = &block else {
            // Header row of a new block.
            let skip_first = ann.any() || first.is_empty();
            let names: Vec<String> = rec
                .iter()
                .skip(usize::from(skip_first))
                .map(str::to_string)
                .collect();
            if names.iter().all(|n| n.is_empty()) {
                return Err(Error::malformed(
                    WHAT,
                    line,
                    "header row has no column names",
                ));
            }
            let pick = |v: &Option<Vec<String>>, i: usize| {
                v.as_ref()
                    .and_then(|v| v.get(i))
                    .cloned()
                    .unwrap_or_default()
            };
            let columns: Vec<Column> = names
                .iter()
                .enumerate()
                .map(|(i, n)| Column {
                    name: n.clone(),
                    datatype: match pick(&ann.datatype, i) {
                        d if d.is_empty() => "string".to_string(),
                        d => d,
                    },
                    group: pick(&ann.group, i) == "true",
                    default: pick(&ann.default, i),
                })
                .collect();
            let real: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| !n.is_empty())
                .collect();
            error_block = real == ["error", "reference"] || real == ["error"];
            block_index += 1;
            block = Some(Block {
                result_idx: names.iter().position(|n| n == "result"),
                table_idx: names.iter().position(|n| n == "table"),
                columns,
                skip_first,
            });
            continue;
        };

        // A record row.
        let cells: Vec<&str> = rec.iter().skip(usize::from(b.skip_first)).collect();
        if error_block {
            let col = |name: &str| {
                b.columns
                    .iter()
                    .position(|c| c.name == name)
                    .and_then(|i| cells.get(i))
                    .map(|s| s.to_string())
                    .filter(|s| !s.is_empty())
            };
            return Err(Error::Server {
                message: col("error")
                    .unwrap_or_else(|| "InfluxDB returned an error table".to_string()),
                reference: col("reference"),
            });
        }
        if cells.len() > b.columns.len() && cells[b.columns.len()..].iter().any(|c| !c.is_empty()) {
            return Err(Error::malformed(
                WHAT,
                line,
                format!("{} values for {} columns", cells.len(), b.columns.len()),
            ));
        }
        let mut values = Vec::with_capacity(b.columns.len());
        for (i, col) in b.columns.iter().enumerate() {
            let raw = cells.get(i).copied().unwrap_or("");
            let raw = if raw.is_empty() {
                col.default.as_str()
            } else {
                raw
            };
            let v = if raw.is_empty() {
                Value::Null
            } else {
                convert(raw, &col.datatype).map_err(|m| {
                    Error::malformed(WHAT, line, format!("column {:?}: {m}", col.name))
                })?
            };
            values.push(v);
        }
        let result = b
            .result_idx
            .and_then(|i| values[i].as_str())
            .unwrap_or("")
            .to_string();
        let table = b
            .table_idx
            .and_then(|i| match &values[i] {
                Value::String(s) => s.parse().ok(),
                v => v.as_i64(),
            })
            .unwrap_or(block_index);
        let same = tables.last().is_some_and(|t: &Table| {
            t.result == result && t.table == table && t.columns == b.columns
        });
        if !same {
            tables.push(Table {
                result,
                table,
                columns: b.columns.clone(),
                rows: Vec::new(),
            });
        }
        if let Some(t) = tables.last_mut() {
            t.rows.push(values);
        }
    }
    if error_block {
        return Err(Error::Server {
            message: "InfluxDB returned an error table without a message".to_string(),
            reference: None,
        });
    }
    Ok(tables)
}

/// All records of all tables, flattened (each keeps its `result` and `table` columns).
pub fn rows(body: &str) -> Result<Vec<Row>, Error> {
    Ok(parse(body)?
        .iter()
        .flat_map(|t| t.records().collect::<Vec<_>>())
        .collect())
}

/// Converts one non-empty cell by its `#datatype`.
fn convert(raw: &str, datatype: &str) -> Result<Value, String> {
    let (base, format) = match datatype.split_once(':') {
        Some((b, f)) => (b, f),
        None => (datatype, ""),
    };
    let bad = |what: &str| format!("{raw:?} is not a valid {what}");
    Ok(match base {
        "long" => Value::Int(raw.parse().map_err(|_| bad("long"))?),
        "unsignedLong" => Value::UInt(raw.parse().map_err(|_| bad("unsignedLong"))?),
        "double" => Value::Float(raw.parse().map_err(|_| bad("double"))?),
        "boolean" => Value::Bool(match raw {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => true,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => false,
            _ => return Err(bad("boolean")),
        }),
        "dateTime" | "time" => {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if format == "number" || digits.bytes().all(|b| b.is_ascii_digit()) {
                Value::Int(raw.parse().map_err(|_| bad("dateTime:number"))?)
            } else if !raw.as_bytes()[0].is_ascii_digit() {
                return Err(bad("dateTime"));
            } else {
                Value::Time(raw.to_string())
            }
        }
        "duration" => Value::Duration(parse_duration_ns(raw)?),
        // string, base64Binary, line-protocol elements (tag, field, measurement, ignored)
        // and types we do not know: the text as is.
        _ => Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use proptest::prelude::*;

    /// A fixture body as stored (tests/fixtures/influx/README.md names each one's source).
    fn body(name: &str) -> String {
        fixture(name)
    }

    #[test]
    fn documented_single_block_three_tables() {
        let tables = parse(&body("v2-annotated-csv.csv")).unwrap();
        assert_eq!(tables.len(), 3);
        assert_eq!(
            tables.iter().map(|t| t.table).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let t = &tables[1];
        // `result` is empty in every record and comes from #default.
        assert_eq!(t.result, "mean");
        let r: Vec<Row> = t.records().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["_value"], Value::Float(59.25));
        assert_eq!(r[0]["table"], Value::Int(1));
        assert_eq!(r[0]["host"], Value::String("B".into()));
        assert_eq!(r[0]["_time"], Value::Time("2023-01-01T00:52:00Z".into()));
        assert_eq!(r[0]["result"], Value::String("mean".into()));
        let groups: Vec<&str> = t
            .columns
            .iter()
            .filter(|c| c.group)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            groups,
            [
                "_start",
                "_stop",
                "_field",
                "_measurement",
                "host",
                "region"
            ]
        );
    }

    #[test]
    fn documented_schema_change_between_blocks() {
        let tables = parse(&body("v2-multiple-tables-schema-change.csv")).unwrap();
        assert_eq!(tables.len(), 6);
        // First block: _value is a double; second block: a string, columns reordered.
        assert_eq!(tables[0].rows[0][5], Value::Float(15.43));
        let second: Vec<Row> = tables[3].records().collect();
        assert_eq!(tables[3].table, 3);
        assert_eq!(second[0]["_value"], Value::String("ok".into()));
        assert_eq!(second[0]["_field"], Value::String("mem_level".into()));
        assert_eq!(tables[3].columns[2].name, "_field");
        assert_eq!(tables[3].columns[2].datatype, "string");
        let all = rows(&body("v2-multiple-tables-schema-change.csv")).unwrap();
        assert_eq!(all.len(), 6);
        assert!(
            all.iter()
                .all(|r| r["result"] == Value::String("_result".into()))
        );
        assert_eq!(
            all.iter().map(|r| r["host"].clone()).collect::<Vec<_>>(),
            ["A", "B", "C", "A", "B", "C"].map(|s| Value::String(s.into()))
        );
    }

    #[test]
    fn documented_long_timestamps_and_grouped_tables() {
        let tables = parse(&body("flux-csv-from.csv")).unwrap();
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].rows.len(), 2);
        let r: Vec<Row> = tables[1].records().collect();
        assert_eq!(r[0]["timestamp"], Value::Int(1_627_049_400_000_000_000));
        assert_eq!(r[1]["value"], Value::Float(35.67));
        assert_eq!(r[0]["sensorID"], Value::String("TLM0200".into()));
    }

    #[test]
    fn documented_error_table() {
        let e = parse(&body("v2-error.csv")).unwrap_err();
        assert_eq!(
            e,
            Error::Server {
                message: "Failed to parse query".into(),
                reference: Some("897".into())
            }
        );
    }

    #[test]
    fn documented_error_after_partial_results() {
        let e = parse(&body("v2-error-after-table.csv")).unwrap_err();
        match e {
            Error::Server { message, reference } => {
                assert_eq!(
                    message,
                    "query terminated: reached maximum allowed memory limits"
                );
                assert_eq!(reference.as_deref(), Some("576"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn documented_datatypes_including_duration() {
        let all = rows(&body("v2-datatypes.csv")).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["m"], Value::String("test".into()));
        assert_eq!(all[0]["s"], Value::String("str1".into()));
        assert_eq!(all[0]["d"], Value::Float(1.0));
        assert_eq!(all[0]["b"], Value::Bool(true));
        assert_eq!(all[1]["b"], Value::Bool(false));
        assert_eq!(all[0]["l"], Value::Int(1));
        assert_eq!(all[0]["ul"], Value::UInt(1));
        assert_eq!(all[0]["dur"], Value::Duration(1_000_000));
        assert_eq!(all[1]["dur"], Value::Duration(2_000));
        // A dateTime that is a bare number is nanoseconds since the epoch.
        assert_eq!(all[0]["time"], Value::Int(1));
        assert_eq!(all[1]["time"], Value::Time("2020-01-11T10:10:10Z".into()));
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let body = "#datatype,string,long,string,double\n\
                    #group,false,false,true,false\n\
                    #default,_result,,,\n\
                    ,result,table,msg,_value\n\
                    ,,0,\"a, b\",1.5\n\
                    ,,0,\"say \"\"hi\"\"\",2\n\
                    ,,0,\"two\nlines\",3\n";
        let r = rows(body).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0]["msg"], Value::String("a, b".into()));
        assert_eq!(r[1]["msg"], Value::String("say \"hi\"".into()));
        assert_eq!(r[2]["msg"], Value::String("two\nlines".into()));
        assert_eq!(r[2]["_value"], Value::Float(3.0));
    }

    #[test]
    fn crlf_and_empty_cells_use_default_or_null() {
        let body = "#datatype,string,long,long,string\r\n\
                    #group,false,false,false,false\r\n\
                    #default,_result,,7,\r\n\
                    ,result,table,n,s\r\n\
                    ,,0,,\r\n\
                    ,,0,3,x\r\n";
        let r = rows(body).unwrap();
        assert_eq!(r[0]["n"], Value::Int(7));
        assert_eq!(r[0]["s"], Value::Null);
        assert_eq!(r[1]["n"], Value::Int(3));
    }

    #[test]
    fn blank_line_without_annotations_starts_a_new_header() {
        let body = "result,table,a\n_result,0,1\n\nresult,table,b,c\n_result,1,x,y\n";
        let t = parse(body).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].columns.len(), 4);
        assert_eq!(t[1].table, 1);
        assert_eq!(t[1].rows[0][3], Value::String("y".into()));
        let crlf = body.replace('\n', "\r\n");
        assert_eq!(parse(&crlf).unwrap(), t);
    }

    #[test]
    fn bad_values_are_errors_with_line_and_column() {
        let body = "#datatype,string,long,long\n,result,table,n\n,,0,1\n,,0,zz\n";
        let e = parse(body).unwrap_err().to_string();
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("\"n\""), "{e}");
        assert!(e.contains("long"), "{e}");
        let body = "#datatype,string,long\n,result,table\n,,0,extra\n";
        assert!(
            parse(body)
                .unwrap_err()
                .to_string()
                .contains("3 values for 2 columns")
        );
    }

    #[test]
    fn empty_body_has_no_tables() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("\r\n\r\n").unwrap(), vec![]);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn arbitrary_bytes_as_text_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&String::from_utf8_lossy(&b));
        }

        /// Structured-random annotated CSV: plausible annotation, header and record rows in
        /// random order and number, with random types, quotes, blanks and short rows.
        #[test]
        fn structured_annotated_csv_never_panics(
            lines in proptest::collection::vec(
                prop_oneof![
                    "#datatype(,(string|long|unsignedLong|double|boolean|dateTime:RFC3339|dateTime:number|duration|base64Binary)){0,6}",
                    "#group(,(true|false)){0,6}",
                    "#default(,[a-z0-9_]{0,4}){0,6}",
                    ",(result|table|_value|_time|error|reference|[a-z]{1,3})(,(result|table|_value|_time|error|reference|[a-z]{1,3})){0,5}",
                    "(,(-?[0-9]{0,4}(\\.[0-9]{1,3})?|true|false|[a-z]{0,3}|\"[a-z, \"\n]{0,5}\"|[0-9]{1,3}(ms|s|h|mo)|2023-01-01T00:00:00Z)){0,7}",
                    Just(String::new()),
                ],
                0..14,
            )
        ) {
            let body = lines.join("\n");
            match parse(&body) {
                Ok(tables) => for t in &tables {
                    for r in &t.rows { prop_assert_eq!(r.len(), t.columns.len()); }
                },
                Err(e) => { let _ = e.to_string(); }
            }
        }
    }
}
