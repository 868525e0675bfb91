//! InfluxDB 3 `/api/v3/query_sql` bodies (`format=json`: one array of row objects;
//! `format=jsonl`: one row object per line) and the JSON error bodies of the write endpoints
//! of every version.

use serde_json::Value as Json;

use super::{ParseError, Row, json_value};

const WHAT_JSON: &str = "query_sql JSON";
const WHAT_JSONL: &str = "query_sql JSON lines";

fn object_row(v: &Json, what: &'static str, line: usize) -> Result<Row, ParseError> {
    match v {
        Json::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect()),
        _ => Err(ParseError::malformed(
            what,
            line,
            "a row is not a JSON object",
        )),
    }
}

/// An error body: `{"error": "...", "data": ...}` (v3), `{"code": ..., "message": ...}` (v2)
/// or `{"error": "..."}` (v1). Returns the message with the details of `data` appended.
pub fn error_message(body: &str) -> Option<String> {
    let v: Json = serde_json::from_str(super::strip_bom(body).trim()).ok()?;
    let obj = v.as_object()?;
    let main = obj
        .get("error")
        .or_else(|| obj.get("message"))
        .map(|e| match e {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })?;
    let lines = write_error(body).map(|w| w.lines).unwrap_or_default();
    if lines.is_empty() {
        return Some(main);
    }
    let details: Vec<String> = lines
        .iter()
        .map(|l| format!("line {}: {}", l.line, l.message))
        .collect();
    Some(format!("{main}: {}", details.join("; ")))
}

/// Parses a `format=json` body: an array of objects. An object with `error` instead of the
/// array is the server's documented error shape (rows are always an array, so this cannot
/// be data).
pub fn rows_json(body: &str) -> Result<Vec<Row>, ParseError> {
    let body = super::strip_bom(body);
    let doc: Json = serde_json::from_str(body)
        .map_err(|e| ParseError::malformed(WHAT_JSON, e.line(), e.to_string()))?;
    match &doc {
        Json::Array(items) => items.iter().map(|v| object_row(v, WHAT_JSON, 1)).collect(),
        Json::Object(m) if m.contains_key("error") || m.contains_key("message") => {
            Err(ParseError::Server {
                message: error_message(body).unwrap_or_default(),
                reference: None,
            })
        }
        _ => Err(ParseError::malformed(
            WHAT_JSON,
            1,
            "expected an array of rows",
        )),
    }
}

/// Parses a successful (2xx) `format=jsonl` body: one object per line, every one a row;
/// blank lines are skipped. A line `{"error": "disk full"}` is a row of a table with a column
/// named `error` (`SELECT error FROM logs`): InfluxDB 3 reports a failed query by its status
/// code, with the error body of [`error_message`], never in-band in a 200 answer.
pub fn rows_jsonl(body: &str) -> Result<Vec<Row>, ParseError> {
    let body = super::strip_bom(body);
    let mut out = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Json = serde_json::from_str(line)
            .map_err(|e| ParseError::malformed(WHAT_JSONL, i + 1, e.to_string()))?;
        out.push(object_row(&v, WHAT_JSONL, i + 1)?);
    }
    Ok(out)
}

/// One line a write refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLine {
    /// 1-based line number in the batch.
    pub line: u64,
    pub message: String,
    pub original: String,
}

/// A write error body, from any version.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteError {
    /// `partial write of line protocol occurred`, `partial write: field type conflict: ...`,
    /// `database not found: "x"`, ...
    pub message: String,
    /// Whether some lines were written (v1 `partial write`, v3 `accept_partial`).
    pub partial: bool,
    /// Per-line details (v3 only).
    pub lines: Vec<RejectedLine>,
    /// Points dropped, when the server says (`dropped=N` in v1 messages).
    pub dropped: Option<u64>,
}

/// Parses the JSON body of a failed write; `None` when it is not one.
pub fn write_error(body: &str) -> Option<WriteError> {
    let v: Json = serde_json::from_str(super::strip_bom(body).trim()).ok()?;
    let obj = v.as_object()?;
    let message = match obj.get("error").or_else(|| obj.get("message"))? {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one = |d: &Json| -> Option<RejectedLine> {
        Some(RejectedLine {
            line: d.get("line_number").and_then(Json::as_u64).unwrap_or(0),
            message: d.get("error_message")?.as_str()?.to_string(),
            original: d
                .get("original_line")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
        })
    };
    let lines: Vec<RejectedLine> = match obj.get("data") {
        Some(Json::Array(a)) => a.iter().filter_map(one).collect(),
        Some(d @ Json::Object(_)) => one(d).into_iter().collect(),
        _ => Vec::new(),
    };
    let dropped = message.rsplit_once("dropped=").and_then(|(_, n)| {
        n.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    });
    Some(WriteError {
        partial: message.contains("partial write"),
        message,
        lines,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Value;
    use super::super::fixture;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_json_and_jsonl_agree() {
        let a = rows_json(&fixture("v3-query-sql.json")).unwrap();
        let b = rows_jsonl(&fixture("v3-query-sql.jsonl")).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a, b);
        assert_eq!(a[1]["room"], Value::String("Kitchen".into()));
        assert_eq!(a[1]["co"], Value::Int(0));
        assert_eq!(a[1]["temp"], Value::Float(21.0));
        assert_eq!(a[3]["hum"], Value::Float(36.2));
        assert_eq!(a[4]["time"], Value::String("2022-01-01T10:00:00".into()));
    }

    #[test]
    fn documented_jsonl_with_varying_keys() {
        let r = rows_jsonl(&fixture("v3-columns.jsonl")).unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(r[2]["numeric_precision"], Value::Int(24));
        assert!(!r[0].contains_key("numeric_precision"));
        assert_eq!(
            r[5]["data_type"],
            Value::String("Timestamp(Nanosecond, None)".into())
        );
        assert_eq!(r[7]["ordinal_position"], Value::Int(7));
    }

    #[test]
    fn documented_write_errors() {
        let w = write_error(&fixture("v3-write-partial.json")).unwrap();
        assert!(w.partial);
        assert_eq!(w.lines.len(), 1);
        assert_eq!(w.lines[0].line, 2);
        assert!(
            w.lines[0]
                .message
                .contains("invalid column type for column 'temp'")
        );
        assert_eq!(w.lines[0].original, "home,room=Sunroom temp=hi 1735549200");
        let w = write_error(&fixture("v3-write-rejected.json")).unwrap();
        assert!(!w.partial);
        assert_eq!(w.message, "parsing failed for write_lp endpoint");
        assert_eq!(w.lines[0].line, 2);
        let m = error_message(&fixture("v3-write-partial.json")).unwrap();
        assert!(
            m.starts_with("partial write of line protocol occurred: line 2: invalid column type"),
            "{m}"
        );
    }

    #[test]
    fn v1_and_v2_write_errors() {
        let w = write_error(
            r#"{"error":"partial write: field type conflict: input field \"v\" on measurement \"m\" is type string, already exists as type float dropped=1"}"#,
        )
        .unwrap();
        assert!(w.partial);
        assert_eq!(w.dropped, Some(1));
        assert!(w.message.contains("field type conflict"));
        let w = write_error(r#"{"code":"not found","message":"bucket \"b\" not found"}"#).unwrap();
        assert_eq!(w.message, "bucket \"b\" not found");
        assert!(write_error("not json").is_none());
        assert!(write_error("[1]").is_none());
    }

    #[test]
    fn query_errors() {
        let e = rows_json(r#"{"error":"error while planning query: table 'x' not found"}"#)
            .unwrap_err();
        assert!(matches!(e, ParseError::Server { .. }));
        assert!(e.to_string().contains("table 'x' not found"));
        assert!(matches!(
            rows_json("[1,2]"),
            Err(ParseError::Malformed { .. })
        ));
        assert!(matches!(
            rows_jsonl("{\"a\":1}\nnope"),
            Err(ParseError::Malformed { line: 2, .. })
        ));
        assert!(rows_jsonl("").unwrap().is_empty());
        assert!(rows_json("[]").unwrap().is_empty());
    }

    #[test]
    fn jsonl_column_named_error_is_data() {
        // `SELECT error FROM logs` answered with HTTP 200: rows, not a server error.
        let r = rows_jsonl("{\"error\":\"disk full\"}\n{\"error\":\"ok\"}\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["error"], Value::String("disk full".into()));
        let r = rows_jsonl("{\"error\":\"x\",\"data\":3}\n").unwrap();
        assert_eq!(r[0]["data"], Value::Int(3));
        // The error body itself is read by `error_message` on a non-2xx answer.
        assert_eq!(
            error_message("{\"error\":\"boom\"}").as_deref(),
            Some("boom")
        );
    }

    #[test]
    fn big_integers_stay_exact() {
        let r = rows_jsonl("{\"u\":18446744073709551615,\"i\":-9223372036854775808}").unwrap();
        assert_eq!(r[0]["u"], Value::UInt(u64::MAX));
        assert_eq!(r[0]["i"], Value::Int(i64::MIN));
    }

    #[test]
    fn byte_order_mark_is_ignored_in_json_and_jsonl() {
        let json = fixture("v3-query-sql.json");
        let jsonl = fixture("v3-query-sql.jsonl");
        assert_eq!(
            rows_json(&format!("\u{feff}{json}")).unwrap(),
            rows_json(&json).unwrap()
        );
        assert_eq!(
            rows_jsonl(&format!("\u{feff}{jsonl}")).unwrap(),
            rows_jsonl(&jsonl).unwrap()
        );
        let e = rows_json("\u{feff}{\"error\":\"no table\"}").unwrap_err();
        assert_eq!(e.to_string(), "no table");
        assert!(write_error("\u{feff}{\"error\":\"partial write dropped=2\"}").is_some());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = rows_json(&s);
            let _ = rows_jsonl(&s);
            let _ = write_error(&s);
            let _ = error_message(&s);
        }

        #[test]
        fn structured_lines_never_panic(lines in proptest::collection::vec(
            prop_oneof![
                "\\{(\"[a-z_]{1,6}\":(-?[0-9]{1,20}(\\.[0-9]{1,3})?|true|null|\"[a-z]{0,3}\"|\\[\\]|\\{\\})(,)?){0,4}\\}",
                "\\{\"error\":\"[a-z ]{0,8}\",\"data\":(\\[\\{\"line_number\":[0-9]{1,3},\"error_message\":\"x\"\\}\\]|\\{\\}|null|3)\\}",
                "[\\[\\]{}\",:0-9a-z]{0,12}",
            ],
            0..6,
        )) {
            let body = lines.join("\n");
            let _ = rows_jsonl(&body);
            let _ = rows_json(&format!("[{}]", lines.join(",")));
            for l in &lines { let _ = write_error(l); let _ = error_message(l); }
        }
    }
}
