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

mod convert;

pub use convert::{check_rfc3339, rfc3339_from_ns};

use super::{ParseError, Row, Value};
use convert::convert;

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

    /// The columns of a header row with these annotations (`string` when untyped).
    fn columns(&self, names: &[String]) -> Vec<Column> {
        let pick = |v: &Option<Vec<String>>, i: usize| {
            v.as_ref()
                .and_then(|v| v.get(i))
                .cloned()
                .unwrap_or_default()
        };
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Column {
                name: n.clone(),
                datatype: match pick(&self.datatype, i) {
                    d if d.is_empty() => "string".to_string(),
                    d => d,
                },
                group: pick(&self.group, i) == "true",
                default: pick(&self.default, i),
            })
            .collect()
    }
}

struct Block {
    /// Counts blocks from 0: the table id of records with no `table` column.
    index: i64,
    columns: Vec<Column>,
    /// Whether rows carry the leading annotation column.
    skip_first: bool,
    result_idx: Option<usize>,
    table_idx: Option<usize>,
}

impl Block {
    /// The `result` and `table` of a row; a row with no `table` column belongs to its block.
    fn key(&self, values: &[Value]) -> (String, i64) {
        let result = self
            .result_idx
            .and_then(|i| values[i].as_str())
            .unwrap_or("")
            .to_string();
        let table = self
            .table_idx
            .and_then(|i| match &values[i] {
                Value::String(s) => s.parse().ok(),
                v => v.as_i64(),
            })
            .unwrap_or(self.index);
        (result, table)
    }
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
    let mut parser = Parser::default();
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
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let blank = blank_lines_before(body.as_bytes(), start);
        last_end = rdr.position().byte();
        parser.record(&rec, line + blank, blank > 0)?;
    }
    parser.finish()
}

/// How many blank lines stand before the record starting at byte `start`. The csv reader
/// skips blank lines, and a record's position is where the reader stood before them: line
/// breaks at the start of the record's text are blank lines (minus the `\n` of a previous
/// `\r\n` terminator).
fn blank_lines_before(bytes: &[u8], start: usize) -> usize {
    let lead = bytes
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| **b == b'\n' || **b == b'\r')
        .filter(|b| **b == b'\n')
        .count();
    let split_crlf =
        start > 0 && bytes.get(start - 1) == Some(&b'\r') && bytes.get(start) == Some(&b'\n');
    lead.saturating_sub(usize::from(split_crlf))
}

/// The state between records: the annotations read so far, the block (header) the records
/// belong to, and the tables built.
#[derive(Default)]
struct Parser {
    tables: Vec<Table>,
    ann: Annotations,
    block: Option<Block>,
    /// How many blocks have started.
    blocks: i64,
    /// Whether the current block is an in-band error table.
    error_block: bool,
}

impl Parser {
    /// Takes one record (annotation, header or data row) at `line`.
    fn record(
        &mut self,
        rec: &::csv::StringRecord,
        line: usize,
        after_blank: bool,
    ) -> Result<(), ParseError> {
        let first = rec.get(0).unwrap_or("");
        let annotation = first.strip_prefix('#');
        // A blank line ends a block, and so do annotations after records.
        if (after_blank || annotation.is_some()) && self.block.is_some() {
            self.block = None;
            self.ann = Annotations::default();
        }
        if let Some(name) = annotation {
            self.annotation(name, rec);
            return Ok(());
        }
        let Some(b) = &self.block else {
            return self.header(rec, first.is_empty(), line);
        };
        let cells: Vec<&str> = rec.iter().skip(usize::from(b.skip_first)).collect();
        if self.error_block {
            return Err(error_table(b, &cells));
        }
        let values = values(b, &cells, line)?;
        let (result, table) = b.key(&values);
        let same = self.tables.last().is_some_and(|t: &Table| {
            t.result == result && t.table == table && t.columns == b.columns
        });
        if !same {
            self.tables.push(Table {
                result,
                table,
                columns: b.columns.clone(),
                rows: Vec::new(),
            });
        }
        if let Some(t) = self.tables.last_mut() {
            t.rows.push(values);
        }
        Ok(())
    }

    fn annotation(&mut self, name: &str, rec: &::csv::StringRecord) {
        let values: Vec<String> = rec.iter().skip(1).map(str::to_string).collect();
        match name.trim() {
            "datatype" => self.ann.datatype = Some(values),
            "group" => self.ann.group = Some(values),
            "default" => self.ann.default = Some(values),
            _ => {} // other annotations and comments carry nothing we use
        }
    }

    /// The header row of a new block: column names, typed by the annotations before it.
    fn header(
        &mut self,
        rec: &::csv::StringRecord,
        first_empty: bool,
        line: usize,
    ) -> Result<(), ParseError> {
        let skip_first = self.ann.any() || first_empty;
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
        let real: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .collect();
        self.error_block = real == ["error", "reference"] || real == ["error"];
        self.block = Some(Block {
            index: self.blocks,
            result_idx: names.iter().position(|n| n == "result"),
            table_idx: names.iter().position(|n| n == "table"),
            columns: self.ann.columns(&names),
            skip_first,
        });
        self.blocks += 1;
        Ok(())
    }

    fn finish(self) -> Result<Vec<Table>, ParseError> {
        if self.error_block {
            return Err(ParseError::Server {
                message: "InfluxDB returned an error table without a message".to_string(),
                reference: None,
            });
        }
        Ok(self.tables)
    }
}

/// The error a data row of an error table carries.
fn error_table(b: &Block, cells: &[&str]) -> ParseError {
    let col = |name: &str| {
        b.columns
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| cells.get(i))
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty())
    };
    ParseError::Server {
        message: col("error").unwrap_or_else(|| "InfluxDB returned an error table".to_string()),
        reference: col("reference"),
    }
}

/// A data row's typed values, one per column. Too many or too few cells are an error.
fn values(b: &Block, cells: &[&str], line: usize) -> Result<Vec<Value>, ParseError> {
    let n = b.columns.len();
    if cells.len() > n && cells[n..].iter().any(|c| !c.is_empty()) {
        return Err(ParseError::malformed(
            WHAT,
            line,
            format!("{} values for {n} columns", cells.len()),
        ));
    }
    // Flux rejects a record with fewer cells than the header: padding it with nulls
    // would invent values, and a truncated body would pass for a complete one.
    if cells.len() < n {
        return Err(ParseError::malformed(
            WHAT,
            line,
            format!(
                "{} values for {n} columns: column {:?} (column {}) is missing",
                cells.len(),
                b.columns[cells.len()].name,
                cells.len() + 1
            ),
        ));
    }
    let mut values = Vec::with_capacity(n);
    for (i, col) in b.columns.iter().enumerate() {
        let raw = match cells.get(i).copied().unwrap_or("") {
            "" => col.default.as_str(),
            raw => raw,
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
    Ok(values)
}

/// All records of all tables, flattened (each keeps its `result` and `table` columns).
pub fn rows(body: &str) -> Result<Vec<Row>, ParseError> {
    Ok(parse(body)?
        .iter()
        .flat_map(|t| t.records().collect::<Vec<_>>())
        .collect())
}

#[cfg(test)]
mod tests;
