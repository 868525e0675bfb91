//! Planning and counting without a server; the requests themselves are tested against a real
//! `influxd` and recorded bodies in tests/influx.rs.

use super::*;
use crate::influx::client::test_client;

#[test]
fn quoting() {
    assert_eq!(influxql_ident("a\"b"), "\"a\\\"b\"");
    assert_eq!(flux_string("x\"y\\"), "\"x\\\"y\\\\\"");
    assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
}

#[test]
fn plans_say_which_queries_change_things() {
    let v1 = test_client(Version::V1, "http://x");
    assert!(
        v1.plan_query("SHOW DATABASES")
            .unwrap()
            .mutation()
            .is_none()
    );
    let m = v1.plan_query("DROP  DATABASE\n d").unwrap();
    let m = m.mutation().unwrap();
    assert_eq!(m.target, "http://x db=d");
    assert_eq!(m.detail, "InfluxQL: DROP DATABASE d");
    let v2 = test_client(Version::V2, "http://x");
    let q = "from(bucket:\"a\") |> range(start:-1h) |> to(bucket: \"b\")";
    let p = v2.plan_query(q).unwrap();
    assert_eq!(p.mutation().unwrap().target, "http://x bucket=b");
    let v3 = test_client(Version::V3, "http://x");
    assert!(v3.plan_query("DELETE it all").unwrap().mutation().is_none());
}

#[test]
fn missing_settings_are_invalid_before_anything_is_sent() {
    let mut v2 = test_client(Version::V2, "http://u:pw@x");
    v2.settings.org = None;
    let e = v2.plan_query("buckets()").unwrap_err();
    assert!(e.is_invalid(), "{e:?}");
    assert!(
        e.to_string().starts_with("a Flux query needs option 'org'"),
        "{e}"
    );
    assert!(!e.to_string().contains("pw"), "{e}");
    let mut v3 = test_client(Version::V3, "http://x");
    v3.settings.db = None;
    assert!(v3.plan_query("SELECT 1").unwrap_err().is_invalid());
    assert!(v3.count_query("", None).unwrap_err().is_invalid());
    let mut v1 = test_client(Version::V1, "http://x");
    v1.settings.db = None;
    assert!(v1.count_query("cpu", None).unwrap_err().is_invalid());
}

#[test]
fn counts_take_the_largest_count_column() {
    let v1 = test_client(Version::V1, "http://x");
    let cq = v1
        .count_query("c\"pu", Some(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(
        cq.text,
        "SELECT COUNT(*) FROM \"c\\\"pu\" WHERE time > now() - 3600000ms"
    );
    let row = |pairs: &[(&str, Value)]| -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let rows = [row(&[
        ("time", Value::Time("1970-01-01T00:00:00Z".into())),
        ("count_a", Value::Int(3)),
        ("count_b", Value::UInt(5)),
        ("count_c", Value::Float(9.0)),
    ])];
    assert_eq!(cq.total(&rows), 5);
    assert_eq!(cq.total(&[]), 0);
    let v3 = test_client(Version::V3, "http://x");
    let cq = v3.count_query("home", None).unwrap();
    assert_eq!(cq.text, "SELECT COUNT(*) AS n FROM \"home\"");
    assert_eq!(cq.total(&[row(&[("n", Value::Int(7))])]), 7);
    let v2 = test_client(Version::V2, "http://x");
    let cq = v2.count_query("m", None).unwrap();
    assert!(
        cq.text
            .starts_with("from(bucket: \"b\") |> range(start: 0)"),
        "{}",
        cq.text
    );
    assert_eq!(
        cq.total(&[row(&[("_value", Value::Int(2)), ("n", Value::Int(9))])]),
        2
    );
}
