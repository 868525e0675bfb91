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

use super::{ParseError, Row, Value, parse_duration_ns};

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
/// good tables) makes the whole parse an [`ParseError::Server`]: the results before it are
/// incomplete, and a partial answer must not pass for a complete one.
pub fn parse(body: &str) -> Result<Vec<Table>, ParseError> {
    let body = super::strip_bom(body);
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
            ParseError::malformed(WHAT, line, e.to_string())
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
                return Err(ParseError::malformed(
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
            return Err(ParseError::Server {
                message: col("error")
                    .unwrap_or_else(|| "InfluxDB returned an error table".to_string()),
                reference: col("reference"),
            });
        }
        if cells.len() > b.columns.len() && cells[b.columns.len()..].iter().any(|c| !c.is_empty()) {
            return Err(ParseError::malformed(
                WHAT,
                line,
                format!("{} values for {} columns", cells.len(), b.columns.len()),
            ));
        }
        // Flux rejects a record with fewer cells than the header: padding it with nulls
        // would invent values, and a truncated body would pass for a complete one.
        if cells.len() < b.columns.len() {
            return Err(ParseError::malformed(
                WHAT,
                line,
                format!(
                    "{} values for {} columns: column {:?} (column {}) is missing",
                    cells.len(),
                    b.columns.len(),
                    b.columns[cells.len()].name,
                    cells.len() + 1
                ),
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
                    ParseError::malformed(
                        WHAT,
                        line,
                        format!("column {:?} (column {}): {m}", col.name, i + 1),
                    )
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
        return Err(ParseError::Server {
            message: "InfluxDB returned an error table without a message".to_string(),
            reference: None,
        });
    }
    Ok(tables)
}

/// All records of all tables, flattened (each keeps its `result` and `table` columns).
pub fn rows(body: &str) -> Result<Vec<Row>, ParseError> {
    Ok(parse(body)?
        .iter()
        .flat_map(|t| t.records().collect::<Vec<_>>())
        .collect())
}

/// Converts one non-empty cell by its `#datatype`, by the rules of Flux's CSV decoder (Go's
/// `strconv` and `time.Parse(time.RFC3339Nano)`), so a value Flux would refuse is an error
/// here too rather than a guess:
///
/// * `long`: a signed decimal; `unsignedLong`: an unsigned decimal (no sign), kept exact;
/// * `double`: a decimal or exponent float, `NaN`, `Inf`; a finite number out of range (`1e400`)
///   is an error, as `strconv.ParseFloat` reports it, not infinity;
/// * `boolean`: `true`/`false`, `t`/`f`, `1`/`0`, `TRUE`, `True`, ... (Go's `ParseBool`);
/// * `dateTime:RFC3339` (what Flux sends) and `dateTime:RFC3339Nano`: a real date and time
///   (`2023-02-30T25:61:00Z` is an error), kept as text; a bare number there is an error;
/// * `dateTime:number`: nanoseconds since the epoch, an int;
/// * `dateTime` with no format (the `influx write` CSV dialect, which accepts either): a
///   number is normalised to RFC3339 text, so one column holds one type;
/// * `duration`: a Flux duration, in nanoseconds.
fn convert(raw: &str, datatype: &str) -> Result<Value, String> {
    let (base, format) = match datatype.split_once(':') {
        Some((b, f)) => (b, f),
        None => (datatype, ""),
    };
    let bad = |what: &str| format!("{raw:?} is not a valid {what}");
    Ok(match base {
        "long" => Value::Int(raw.parse().map_err(|_| bad("long"))?),
        "unsignedLong" => {
            // Rust would take "+1"; Go's ParseUint (and so Flux) does not.
            if !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("unsignedLong"));
            }
            Value::UInt(raw.parse().map_err(|_| bad("unsignedLong"))?)
        }
        "double" => {
            let f: f64 = raw.parse().map_err(|_| bad("double"))?;
            let spelled = raw.trim_start_matches(['+', '-']).to_ascii_lowercase();
            if f.is_infinite() && spelled != "inf" && spelled != "infinity" {
                return Err(format!("{raw:?} is out of the range of a double"));
            }
            Value::Float(f)
        }
        "boolean" => Value::Bool(match raw {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => true,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => false,
            _ => return Err(bad("boolean")),
        }),
        "dateTime" | "time" => match format {
            "number" => Value::Int(raw.parse().map_err(|_| bad("dateTime:number"))?),
            "RFC3339" | "RFC3339Nano" => {
                check_rfc3339(raw)
                    .map_err(|why| format!("{raw:?} is not a valid {datatype} ({why})"))?;
                Value::Time(raw.to_string())
            }
            "" => match raw.parse::<i64>() {
                Ok(ns) => Value::Time(rfc3339_from_ns(ns)),
                Err(_) => {
                    check_rfc3339(raw)
                        .map_err(|why| format!("{raw:?} is not a valid dateTime ({why})"))?;
                    Value::Time(raw.to_string())
                }
            },
            // A Go layout (`dateTime:2006-01-02`): the text as the file wrote it.
            _ => Value::Time(raw.to_string()),
        },
        "duration" => Value::Duration(parse_duration_ns(raw)?),
        // string, base64Binary, line-protocol elements (tag, field, measurement, ignored)
        // and types we do not know: the text as is.
        _ => Value::String(raw.to_string()),
    })
}

/// Checks `s` the way Go's `time.Parse(time.RFC3339Nano, s)` does:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with a real month, day of that month, hour,
/// minute and second. Returns what is wrong.
pub fn check_rfc3339(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let t = b.get(from..from + len)?;
        t.iter()
            .all(u8::is_ascii_digit)
            .then(|| t.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let shape = "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset";
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return Err(shape.into());
    };
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return Err(shape.into());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day} is out of range for {year:04}-{month:02}"
        ));
    }
    if hour > 23 {
        return Err(format!("hour {hour} is out of range"));
    }
    if min > 59 {
        return Err(format!("minute {min} is out of range"));
    }
    if sec > 59 {
        return Err(format!("second {sec} is out of range"));
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err("no digits after the decimal point".into());
        }
        i += digits;
    }
    match &b[i..] {
        b"Z" => Ok(()),
        [b'+' | b'-', ..] if b.len() - i == 6 && at(i + 3, b':') => {
            match (num(i + 1, 2), num(i + 4, 2)) {
                (Some(h), Some(m)) if h <= 23 && m <= 59 => Ok(()),
                (Some(_), Some(_)) => Err("time zone offset out of range".into()),
                _ => Err(shape.into()),
            }
        }
        _ => Err(shape.into()),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Nanoseconds since the Unix epoch as RFC3339 text in UTC, with the fraction trimmed the
/// way Go's `RFC3339Nano` trims it.
pub fn rfc3339_from_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
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
            ParseError::Server {
                message: "Failed to parse query".into(),
                reference: Some("897".into())
            }
        );
    }

    #[test]
    fn documented_error_after_partial_results() {
        let e = parse(&body("v2-error-after-table.csv")).unwrap_err();
        match e {
            ParseError::Server { message, reference } => {
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
        // A bare number in a `dateTime` column with no format is nanoseconds since the
        // epoch, normalised to RFC3339 so the column holds one type.
        assert_eq!(
            all[0]["time"],
            Value::Time("1970-01-01T00:00:00.000000001Z".into())
        );
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

    /// The annotations and header every body below shares: Flux's own layout.
    const HEAD: &str = "#datatype,string,long,dateTime:RFC3339,double,string\n\
                        #group,false,false,false,false,true\n\
                        #default,_result,,,,\n\
                        ,result,table,_time,_value,host\n";

    #[test]
    fn short_row_is_an_error_with_line_and_column() {
        let body = format!("{HEAD},,0,2023-01-01T00:00:00Z,1.5,a\n,,0,2023-01-01T00:00:01Z,2.5\n");
        let e = parse(&body).unwrap_err();
        assert!(matches!(e, ParseError::Malformed { line: 6, .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("4 values for 5 columns"), "{e}");
        assert!(e.contains("\"host\" (column 5) is missing"), "{e}");
    }

    #[test]
    fn impossible_rfc3339_time_is_an_error() {
        let body = format!("{HEAD},,0,2023-02-30T25:61:00Z,1.5,a\n");
        let e = parse(&body).unwrap_err();
        assert!(matches!(e, ParseError::Malformed { line: 5, .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("\"_time\" (column 3)"), "{e}");
        assert!(e.contains("day 30 is out of range for 2023-02"), "{e}");
        for (t, why) in [
            ("2023-01-01T25:00:00Z", "hour 25"),
            ("2023-01-01T00:61:00Z", "minute 61"),
            ("2023-01-01T00:00:60Z", "second 60"),
            ("2023-13-01T00:00:00Z", "month 13"),
            ("2023-01-01 00:00:00Z", "expected YYYY-MM-DD"),
            ("2023-01-01T00:00:00", "expected YYYY-MM-DD"),
            ("2023-01-01T00:00:00.Z", "no digits"),
            ("2023-01-01T00:00:00+24:00", "offset out of range"),
        ] {
            let e = parse(&format!("{HEAD},,0,{t},1.5,a\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
        for ok in [
            "2024-02-29T23:59:59Z",
            "2023-01-01T00:00:00.123456789Z",
            "2023-01-01T00:00:00+05:30",
            "2000-02-29T00:00:00-08:00",
        ] {
            let r = rows(&format!("{HEAD},,0,{ok},1.5,a\n")).unwrap();
            assert_eq!(r[0]["_time"], Value::Time(ok.into()));
        }
        let e = parse(&format!("{HEAD},,0,1900-02-29T00:00:00Z,1.5,a\n")).unwrap_err();
        assert!(e.to_string().contains("day 29"), "{e}");
    }

    #[test]
    fn bare_number_in_rfc3339_column_is_an_error() {
        let body = format!("{HEAD},,0,2023-01-01T00:00:00Z,1.5,a\n,,0,1672531200000000000,2,b\n");
        let e = parse(&body).unwrap_err();
        assert!(matches!(e, ParseError::Malformed { line: 6, .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("\"_time\" (column 3)"), "{e}");
        assert!(e.contains("not a valid dateTime:RFC3339"), "{e}");
        // `dateTime:number` is the documented way to send numbers.
        let body = "#datatype,string,long,dateTime:number\n,result,table,t\n,,0,-5\n";
        assert_eq!(rows(body).unwrap()[0]["t"], Value::Int(-5));
        assert!(parse("#datatype,string,long,dateTime:number\n,result,table,t\n,,0,x\n").is_err());
    }

    #[test]
    fn go_number_rules() {
        let one = |ty: &str, v: &str| {
            rows(&format!(
                "#datatype,string,long,{ty}\n,result,table,v\n,,0,{v}\n"
            ))
            .map(|r| r[0]["v"].clone())
        };
        assert_eq!(
            one("unsignedLong", "18446744073709551615"),
            Ok(Value::UInt(u64::MAX))
        );
        assert!(one("unsignedLong", "+1").is_err());
        assert!(one("unsignedLong", "-1").is_err());
        assert!(one("unsignedLong", "18446744073709551616").is_err());
        assert_eq!(one("long", "+7"), Ok(Value::Int(7)));
        assert!(one("long", "9223372036854775808").is_err());
        assert_eq!(one("double", "-Inf"), Ok(Value::Float(f64::NEG_INFINITY)));
        assert_eq!(one("double", "1e3"), Ok(Value::Float(1000.0)));
        let e = one("double", "1e400").unwrap_err().to_string();
        assert!(e.contains("out of the range of a double"), "{e}");
    }

    #[test]
    fn rfc3339_from_nanoseconds() {
        assert_eq!(rfc3339_from_ns(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_from_ns(1_672_531_200_500_000_000),
            "2023-01-01T00:00:00.5Z"
        );
        assert_eq!(
            rfc3339_from_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(rfc3339_from_ns(-1), "1969-12-31T23:59:59.999999999Z");
        for ns in [i64::MIN, i64::MAX, 0, 1, -1_000_000_000] {
            assert_eq!(check_rfc3339(&rfc3339_from_ns(ns)), Ok(()), "{ns}");
        }
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let body = format!("{HEAD},,0,2023-01-01T00:00:00Z,1.5,a\n");
        assert_eq!(
            parse(&format!("\u{feff}{body}")).unwrap(),
            parse(&body).unwrap()
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

    /// Differential test against an oracle of Flux's CSV decoder rules, written apart from
    /// the parser: each generated cell carries the value Flux would decode it to, computed
    /// from the parts it was built from (never by parsing its text), or is marked as one Flux
    /// rejects. Times are built from year, month, day, ... and judged by their ranges; numbers
    /// from integers; a row may be cut short. The parser must return exactly the oracle's
    /// values, or an error at the oracle's line naming the oracle's column.
    mod differential {
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
                "long" => prop_oneof![
                    any::<i64>().prop_map(|n| good(n.to_string(), Value::Int(n))),
                    (0i64..1000).prop_map(|n| good(format!("+{n}"), Value::Int(n))),
                    Just(Cell::Bad("9223372036854775808".into())),
                    Just(Cell::Bad("1.5".into())),
                    "[a-z]{1,3}".prop_map(Cell::Bad),
                ]
                .boxed(),
                "unsignedLong" => prop_oneof![
                    any::<u64>().prop_map(|n| good(n.to_string(), Value::UInt(n))),
                    Just(Cell::Bad("-1".into())),
                    Just(Cell::Bad("+1".into())),
                    Just(Cell::Bad("18446744073709551616".into())),
                ]
                .boxed(),
                "double" => prop_oneof![
                    (any::<i32>(), 0usize..4).prop_map(|(i, q)| {
                        let frac = q as f64 * 0.25;
                        let v = if i < 0 { i as f64 - frac } else { i as f64 + frac };
                        good(format!("{i}.{}", ["0", "25", "5", "75"][q]), Value::Float(v))
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
                .boxed(),
                "boolean" => prop_oneof![
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
                    proptest::sample::select(vec!["yes", "tRUE", "2", "no"])
                        .prop_map(|t| Cell::Bad(t.into())),
                ]
                .boxed(),
                "dateTime:RFC3339" => prop_oneof![
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
                .boxed(),
                "string" => "[a-z ,\"]{1,6}"
                    .prop_map(|t| good(t.clone(), Value::String(t)))
                    .boxed(),
                _ => prop_oneof![
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
                .boxed(),
            }
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
    }
}
