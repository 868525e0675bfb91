//! InfluxQL JSON, the body of InfluxDB 1.x `GET|POST /query`.
//!
//! ```json
//! {"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},
//!   "columns":["time","value"],"values":[["2017-03-01T00:16:18Z",33.1]]}]}]}
//! ```
//!
//! A statement that fails does not fail the request: its result carries `error` (HTTP 200),
//! e.g. `database not found: x`. A query that does not parse is a top-level `error`
//! (HTTP 400). Each row becomes a map of the series' columns, plus its `tags` (from
//! `GROUP BY`) and `_measurement` (the series name).
//!
//! JSON has one number type: InfluxDB 1.x writes a float field whose value is whole (`1.0`)
//! as `1`, so such a value comes back as an integer. Numbers with a fraction or exponent are
//! floats; integers beyond `i64` are [`Value::UInt`].

use serde_json::Value as Json;

use super::{ParseError, Row, Value, json_value};

const WHAT: &str = "InfluxQL JSON";

/// Parses a `/query` body into rows (all statements, in order). The first statement error
/// makes the whole result an error.
pub fn rows(body: &str) -> Result<Vec<Row>, ParseError> {
    let body = super::strip_bom(body);
    let doc: Json = serde_json::from_str(body)
        .map_err(|e| ParseError::malformed(WHAT, e.line(), e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| ParseError::malformed(WHAT, 1, "expected a JSON object"))?;
    if let Some(e) = obj.get("error") {
        return Err(ParseError::Server {
            message: text(e),
            reference: None,
        });
    }
    let Some(results) = obj.get("results") else {
        return Err(ParseError::malformed(
            WHAT,
            1,
            "no \"results\" and no \"error\"",
        ));
    };
    let results = results
        .as_array()
        .ok_or_else(|| ParseError::malformed(WHAT, 1, "\"results\" is not an array"))?;
    let mut out = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let statement = r
            .get("statement_id")
            .and_then(Json::as_u64)
            .map(|s| s as usize)
            .unwrap_or(i);
        if let Some(e) = r.get("error") {
            return Err(ParseError::Statement {
                statement,
                message: text(e),
            });
        }
        let Some(series) = r.get("series") else {
            continue; // a statement with no rows (or a CREATE/DROP) has no series
        };
        let series = series.as_array().ok_or_else(|| {
            ParseError::malformed(
                WHAT,
                1,
                format!("statement {statement}: \"series\" is not an array"),
            )
        })?;
        for s in series {
            series_rows(s, statement, &mut out)?;
        }
    }
    Ok(out)
}

fn series_rows(s: &Json, statement: usize, out: &mut Vec<Row>) -> Result<(), ParseError> {
    let bad = |m: &str| ParseError::malformed(WHAT, 1, format!("statement {statement}: {m}"));
    let columns: Vec<String> = match s.get("columns") {
        Some(Json::Array(c)) => c.iter().map(text).collect(),
        Some(_) => return Err(bad("\"columns\" is not an array")),
        None => Vec::new(),
    };
    let name = s.get("name").map(text);
    let tags: Vec<(String, Value)> = match s.get("tags") {
        Some(Json::Object(t)) => t.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
        Some(Json::Null) | None => Vec::new(),
        Some(_) => return Err(bad("\"tags\" is not an object")),
    };
    let values = match s.get("values") {
        Some(Json::Array(v)) => v.as_slice(),
        Some(_) => return Err(bad("\"values\" is not an array")),
        None => &[],
    };
    for v in values {
        let cells = v.as_array().ok_or_else(|| bad("a row is not an array"))?;
        if cells.len() != columns.len() {
            return Err(bad(&format!(
                "a row has {} values for {} columns",
                cells.len(),
                columns.len()
            )));
        }
        let mut row = Row::with_capacity(columns.len() + tags.len() + 1);
        for (c, cell) in columns.iter().zip(cells) {
            let val = match (c.as_str(), cell) {
                ("time", Json::String(t)) => Value::Time(t.clone()),
                _ => json_value(cell),
            };
            row.insert(c.clone(), val);
        }
        for (k, t) in &tags {
            row.entry(k.clone()).or_insert_with(|| t.clone());
        }
        if let Some(n) = &name {
            row.entry("_measurement".to_string())
                .or_insert_with(|| Value::String(n.clone()));
        }
        out.push(row);
    }
    Ok(())
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_series() {
        let r = rows(&fixture("v1-query.json")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["time"], Value::Time("2017-03-01T00:16:18Z".into()));
        assert_eq!(r[0]["myfield"], Value::Float(33.1));
        assert_eq!(r[0]["mytag1"], Value::Null);
        assert_eq!(r[1]["mytag1"], Value::String("12".into()));
        assert_eq!(r[1]["_measurement"], Value::String("mymeas".into()));
        assert_eq!(r[1].keys().next().map(String::as_str), Some("time"));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let body = fixture("v1-query.json");
        assert_eq!(
            rows(&format!("\u{feff}{body}")).unwrap(),
            rows(&body).unwrap()
        );
    }

    #[test]
    fn documented_errors() {
        assert_eq!(
            rows(&fixture("v1-database-not-found.json")).unwrap_err(),
            ParseError::Statement {
                statement: 0,
                message: "database not found: mydb1".into()
            }
        );
        assert_eq!(
            rows(&fixture("v1-parse-error.json"))
                .unwrap_err()
                .to_string(),
            "error parsing query: found EOF, expected FROM at line 1, char 9"
        );
        assert_eq!(
            rows(&fixture("v1-auth-failed.json"))
                .unwrap_err()
                .to_string(),
            "authorization failed"
        );
    }

    #[test]
    fn tags_statements_and_types() {
        let body = r#"{"results":[
            {"statement_id":0,"series":[
              {"name":"cpu","tags":{"host":"a"},"columns":["time","n","ok","big"],
               "values":[["2024-01-01T00:00:00Z",3,true,18446744073709551615]]},
              {"name":"cpu","tags":{"host":"b"},"columns":["time","n","ok","big"],
               "values":[["2024-01-01T00:00:00Z",-4,false,1.5e3]]}]},
            {"statement_id":1},
            {"statement_id":2,"series":[{"name":"databases","columns":["name"],"values":[["_internal"],["lab"]]}]}
        ]}"#;
        let r = rows(body).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0]["host"], Value::String("a".into()));
        assert_eq!(r[1]["host"], Value::String("b".into()));
        assert_eq!(r[0]["n"], Value::Int(3));
        assert_eq!(r[1]["n"], Value::Int(-4));
        assert_eq!(r[0]["ok"], Value::Bool(true));
        assert_eq!(r[0]["big"], Value::UInt(u64::MAX));
        assert_eq!(r[1]["big"], Value::Float(1500.0));
        assert_eq!(r[3]["name"], Value::String("lab".into()));
        assert_eq!(r[3]["_measurement"], Value::String("databases".into()));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            "",
            "[]",
            "{}",
            "{\"results\":3}",
            "{\"results\":[{\"series\":[{\"columns\":[\"a\"],\"values\":[[1,2]]}]}]}",
            "{\"results\":[{\"series\":[{\"columns\":[\"a\"],\"values\":[3]}]}]}",
            "<html>502 Bad Gateway</html>",
        ] {
            assert!(
                matches!(rows(body), Err(ParseError::Malformed { .. })),
                "{body}: {:?}",
                rows(body)
            );
        }
    }

    fn json_leaf() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<f64>().prop_map(Json::from),
            "[a-z]{0,4}".prop_map(Json::String),
        ]
    }

    fn json_tree() -> impl Strategy<Value = Json> {
        json_leaf().prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("results".to_string()),
                        Just("series".to_string()),
                        Just("columns".to_string()),
                        Just("values".to_string()),
                        Just("tags".to_string()),
                        Just("name".to_string()),
                        Just("error".to_string()),
                        Just("statement_id".to_string()),
                        "[a-z]{1,3}",
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = rows(&s);
        }

        /// Structured-random JSON using the protocol's keys at every level.
        #[test]
        fn structured_json_never_panics(j in json_tree()) {
            let _ = rows(&j.to_string());
            let wrapped = serde_json::json!({"results": [{"series": [j]}]});
            let _ = rows(&wrapped.to_string());
        }
    }
}
