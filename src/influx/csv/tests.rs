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

mod differential;
