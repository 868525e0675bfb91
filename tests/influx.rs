//! `influx::` and the `influx::Client` under it against a real InfluxDB 1.x: each test
//! starts its own `influxd` (Debian's `influxdb` package, see tests/common/influx.rs) on free
//! loopback ports with its data, meta and WAL directories in a temporary directory, waits
//! for `/ping`, and kills it when done — no system service is used or touched. Without `/usr/bin/influxd` the tests skip with the reason printed, unless
//! `DOCKHAND_REQUIRE_DOCKER=1` ("require everything", as CI sets it).
//!
//! The token tests use a tiny fake server instead, which echoes the credentials it receives
//! back in its error body: the worst case for redaction.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::influx::{Influxd, InfluxdConfig, fixture_server, free_port, influxd_available};
use common::{Reply, Test};
use dockhand::influx::{Client, Error, Options, Value, Version};

/// A private `influxd`, with or without authentication.
fn influxd(auth: bool) -> Influxd {
    Influxd::start(InfluxdConfig {
        auth,
        max_row_limit: None,
    })
}

fn script(src: &str, url: &str) -> Test {
    Test::new().script(&src.replace("URL", url))
}

#[test]
fn write_then_query_back_typed_values_and_count() {
    if !influxd_available("influx write/query test") {
        return;
    }
    let db = influxd(false);
    let ran = script(
        r#"
let db = influx::connect(#{ url: "URL", db: "dh" });
let p = db.ping();
if !p.ok { throw `ping failed: ${p.error}`; }
print(`ping ok=${p.ok} version=${p.version}`);
db.query("CREATE DATABASE dh");
let w = db.write([
    "cpu,host=a,region=eu usage=0.5,n=3i,up=true,note=\"hi, \\\"there\\\"\"",
    "cpu,host=b,region=eu usage=2.25,n=-7i,up=false,note=\"plain\"",
    "cpu,host=c,region=us usage=9.75,n=1i,up=true,note=\"old\" 1600000000000000000",
]);
print(`written=${w.lines} ok=${w.ok}`);
let rows = db.query("SELECT usage, n, up, note, host FROM cpu WHERE host = 'a'");
let r = rows[0];
print(`rows=${rows.len()}`);
print(`usage=${r.usage}:${type_of(r.usage)}`);
print(`n=${r.n}:${type_of(r.n)}`);
print(`up=${r.up}:${type_of(r.up)}`);
print(`note=${r.note}`);
print(`time:${type_of(r.time)} ends_z=${r.time.ends_with("Z")}`);
print(`measurement=${r._measurement}`);
let g = db.query("SELECT last(usage) FROM cpu GROUP BY region");
let regions = g.map(|r| `${r.region}=${r.last}`);
regions.sort();
print(`grouped=${regions}`);
let b = db.query("SELECT n FROM cpu WHERE host = 'b'");
print(`negative=${b[0].n}`);
print(`count_1h=${db.count("cpu", "1h")}`);
print(`count_all=${db.count("cpu")}`);
print(`count_missing=${db.count("nothing_here", "1h")}`);
let dbs = db.query("SHOW DATABASES").map(|r| r.name);
print(`has_db=${dbs.contains("dh")}`);
"#,
        &db.url(),
    )
    .stderr_has("ping ok=true version=1.")
    .stderr_has("written=3 ok=true")
    .stderr_has("rows=1")
    .stderr_has("usage=0.5:f64")
    .stderr_has("n=3:i64")
    .stderr_has("up=true:bool")
    .stderr_has("note=hi, \"there\"")
    .stderr_has("time:string ends_z=true")
    .stderr_has("measurement=cpu")
    .stderr_has("grouped=[\"eu=2.25\", \"us=9.75\"]")
    .stderr_has("negative=-7")
    .stderr_has("count_1h=2")
    .stderr_has("count_all=3")
    .stderr_has("count_missing=0")
    .stderr_has("has_db=true")
    .run();
    drop(ran);
}

#[test]
fn errors_from_a_real_server_are_clear() {
    if !influxd_available("influx error test") {
        return;
    }
    let db = influxd(false);
    script(
        r#"
let ok = influx::connect(#{ url: "URL", db: "dh" });
ok.query("CREATE DATABASE dh");
let missing = influx::connect(#{ url: "URL", db: "nope" });
try { missing.query("SELECT * FROM cpu"); print("E1 none"); } catch (e) { print(`E1 ${e}`); }
try { ok.query("SELEC * FROM cpu"); print("E2 none"); } catch (e) { print(`E2 ${e}`); }
ok.write("m v=1.5");
try { ok.write(["m v=2.5", "m v=\"text\""]); print("E3 none"); } catch (e) { print(`E3 ${e}`); }
try { missing.write("m v=1"); print("E4 none"); } catch (e) { print(`E4 ${e}`); }
try { ok.write("not line protocol"); print("E5 none"); } catch (e) { print(`E5 ${e}`); }
print(`kept=${ok.count("m")}`);
"#,
        &db.url(),
    )
    .stderr_has("E1 InfluxQL query failed: statement 0: database not found: nope (create it with CREATE DATABASE")
    .stderr_has("E2 InfluxDB at http://127.0.0.1:")
    .stderr_has("rejected the query (HTTP 400): error parsing query: found SELEC")
    .stderr_has("E3 InfluxDB rejected the write to http://127.0.0.1:")
    .stderr_has("partial write: field type conflict")
    .stderr_has("the other lines of the batch (2 in all) were written")
    .stderr_has("E4 InfluxDB rejected the write to ")
    .stderr_has("database not found")
    .stderr_has("E5 InfluxDB rejected the write")
    .stderr_has("unable to parse")
    // 1.5 then 2.5 were written; the string was refused.
    .stderr_has("kept=2")
    .stderr_lacks(" none")
    .run();
}

#[test]
fn dry_run_plans_writes_and_read_only_refuses_them() {
    if !influxd_available("influx dry-run test") {
        return;
    }
    let db = influxd(false);
    let url = db.url();
    let body = r#"
let c = influx::connect(#{ url: "URL", db: "planned" });
c.query("CREATE DATABASE planned");
let w = c.write("m v=1");
print(`dry=${w.dry_run} lines=${w.lines}`);
print(`dbs=${c.query("SHOW DATABASES").map(|r| r.name)}`);
"#;
    script(body, &url)
        .args(&["--dry-run"])
        .stderr_has("dry=true lines=1")
        .stderr_lacks("\"planned\"")
        .stderr_has("influx::query")
        .stderr_has("CREATE DATABASE planned")
        .stderr_has("influx::write")
        .run();
    // Nothing reached the server.
    script(
        r#"let c = influx::connect(#{ url: "URL" });
print(`dbs=${c.query("SHOW DATABASES").map(|r| r.name)}`);"#,
        &url,
    )
    .stderr_lacks("planned")
    .stderr_has("dbs=")
    .run();
    // --read-only: reads run, the write is refused.
    script(
        r#"let c = influx::connect(#{ url: "URL", db: "x" });
print(`read=${c.query("SHOW DATABASES").len() >= 0}`);
c.write("m v=1");"#,
        &url,
    )
    .args(&["--read-only"])
    .status(2)
    .stderr_has("read=true")
    .stderr_has("read-only")
    .stderr_has("influx::write")
    .run();
}

#[test]
fn unreachable_server_names_the_url() {
    let (l, port) = free_port();
    drop(l); // nothing listens there now
    let url = format!("http://127.0.0.1:{port}");
    script(
        r#"let c = influx::connect(#{ url: "URL", db: "x", timeout: "3s" });
let p = c.ping();
print(`ping ok=${p.ok} error=${p.error}`);
c.query("SELECT * FROM m");"#,
        &url,
    )
    .status(1)
    .stderr_has("ping ok=false error=cannot reach InfluxDB at http://127.0.0.1:")
    .stderr_has(&format!("cannot reach InfluxDB at {url}"))
    .stderr_has("InfluxDB may be down")
    .run();
}

/// A one-route HTTP server answering 401 with the request's `Authorization` header in its
/// body, the way a careless proxy might. Records every header it saw.
fn echoing_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let auths = Arc::new(Mutex::new(Vec::new()));
    let auths2 = Arc::clone(&auths);
    let (url, _) = common::http_server(move |req| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        auths2.lock().unwrap().push(auth.clone());
        let json = format!("{{\"error\":\"authorization failed for {auth}\"}}");
        Reply::new(401, "application/json", json)
    });
    (url, auths)
}

#[test]
fn v2_flux_query_reads_documented_annotated_csv() {
    let (url, seen) = fixture_server(200, "v2-multiple-tables-schema-change.csv", "text/csv");
    script(
        r#"let c = influx::connect(#{ url: "URL", version: 2, org: "my org", bucket: "b", token_env: "DH_TOK" });
let rows = c.query(`from(bucket: "b") |> range(start: -1h)`);
print(`n=${rows.len()}`);
print(`first=${rows[0]._value}:${type_of(rows[0]._value)} table=${rows[0].table}:${type_of(rows[0].table)}`);
print(`last=${rows[5]._value}:${type_of(rows[5]._value)} field=${rows[5]._field} result=${rows[5].result}`);
print(`time=${rows[0]._time}`);"#,
        &url,
    )
    .env("DH_TOK", "v2token-abc")
    .stderr_has("n=6")
    .stderr_has("first=15.43:f64 table=0:i64")
    .stderr_has("last=info:string field=mem_level result=_result")
    .stderr_has("time=2023-01-01T00:00:00Z")
    .run();
    let seen = seen.lock().unwrap();
    let r = &seen[0];
    assert_eq!(r.request, "POST /api/v2/query?org=my+org HTTP/1.1");
    assert_eq!(r.header("authorization"), Some("Token v2token-abc"));
    assert_eq!(r.header("accept"), Some("application/csv"));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["query"], "from(bucket: \"b\") |> range(start: -1h)");
    assert_eq!(body["dialect"]["annotations"][0], "datatype");
}

#[test]
fn v2_error_table_after_results_fails_the_query() {
    let (url, _) = fixture_server(200, "v2-error-after-table.csv", "text/csv");
    script(
        r#"let c = influx::connect(#{ url: "URL", version: 2, org: "o" });
c.query("from(bucket: \"b\") |> range(start: -1h) |> mean()");"#,
        &url,
    )
    .status(1)
    .stderr_has("Flux query failed: query terminated: reached maximum allowed memory limits")
    .run();
}

#[test]
fn v3_sql_query_and_partial_write_from_documented_bodies() {
    let (url, seen) = fixture_server(200, "v3-query-sql.jsonl", "application/jsonl");
    script(
        r#"let c = influx::connect(#{ url: "URL", version: 3, db: "sensors", token_env: "DH_TOK" });
let rows = c.query("SELECT * FROM home LIMIT 5");
print(`n=${rows.len()} room=${rows[1].room} temp=${rows[1].temp}:${type_of(rows[1].temp)} co=${rows[1].co}:${type_of(rows[1].co)}`);"#,
        &url,
    )
    .env("DH_TOK", "v3token-abc")
    .stderr_has("n=5 room=Kitchen temp=21.0:f64 co=0:i64")
    .run();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].request, "POST /api/v3/query_sql HTTP/1.1");
        assert_eq!(seen[0].header("authorization"), Some("Bearer v3token-abc"));
        let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(body["db"], "sensors");
        assert_eq!(body["format"], "jsonl");
    }
    let (url, seen) = fixture_server(400, "v3-write-partial.json", "application/json");
    script(
        r#"let c = influx::connect(#{ url: "URL", version: 3, db: "sensors", precision: "s" });
c.write(["home,room=Sunroom temp=96 1735545600", "home,room=Sunroom temp=\"hi\" 1735549200"]);"#,
        &url,
    )
    .status(1)
    .stderr_has("partial write of line protocol occurred")
    .stderr_has("line 2: invalid column type for column 'temp'")
    .stderr_has("the other lines of the batch (2 in all) were written")
    .run();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].request,
        "POST /api/v3/write_lp?db=sensors&precision=second HTTP/1.1"
    );
    assert!(
        seen[0].body.ends_with("temp=\"hi\" 1735549200"),
        "{:?}",
        seen[0].body
    );
}

#[test]
fn token_is_redacted_in_every_output() {
    const TOKEN: &str = "tok-3f9a1c77e2-secret";
    let (url, seen) = echoing_server();
    let src = r#"
let c = influx::connect(#{ url: "URL", version: 2, org: "o", bucket: "b", token_env: "DH_INFLUX_TOKEN" });
print(c);
debug(c);
print(`interpolated ${c}`);
try { c.query("from(bucket: \"b\") |> range(start: -1h)"); } catch (e) { print(`caught ${e}`); }
try { c.write("m v=1"); } catch (e) { print(`caught ${e}`); }
c.query("buckets()");
"#;
    for json in [false, true] {
        let mut t = script(src, &url).env("DH_INFLUX_TOKEN", TOKEN).status(1);
        if json {
            t = t.args(&["--json"]);
        }
        let ran = t
            .stdout_lacks(TOKEN)
            .stderr_lacks(TOKEN)
            .stderr_has("token=<redacted> from $DH_INFLUX_TOKEN")
            .run();
        let all = format!("{}{}", ran.stdout(), ran.stderr());
        assert!(
            all.contains("refused the token from $DH_INFLUX_TOKEN"),
            "{all}"
        );
        assert!(
            all.contains("authorization failed for Token <redacted>"),
            "{all}"
        );
    }
    // The token was really sent, as `Token <token>` for v2.
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 6, "{seen:?}");
    assert!(
        seen.iter().all(|a| a == &format!("Token {TOKEN}")),
        "{seen:?}"
    );
}

#[test]
fn auth_enabled_server_refuses_without_leaking_the_token() {
    if !influxd_available("influx auth test") {
        return;
    }
    const TOKEN: &str = "not-a-valid-token-8812";
    let db = influxd(true);
    script(
        r#"let c = influx::connect(#{ url: "URL", db: "x", token_env: "DH_INFLUX_TOKEN" });
c.query("SHOW DATABASES");"#,
        &db.url(),
    )
    .env("DH_INFLUX_TOKEN", TOKEN)
    .status(1)
    .stderr_has("refused the token from $DH_INFLUX_TOKEN")
    .stderr_lacks(TOKEN)
    .run();
    // No token at all: say how to provide one.
    script(
        r#"let c = influx::connect(#{ url: "URL", db: "x" });
c.query("SHOW DATABASES");"#,
        &db.url(),
    )
    .status(1)
    .stderr_has("requires authentication")
    .stderr_has("token_env")
    .run();
}

/// A client for `url` (v1, database `db`), a plain HTTP client, and a runtime to drive them.
fn client(url: &str, db: &str) -> (Client, reqwest::Client, tokio::runtime::Runtime) {
    dockhand::host::install_crypto_provider();
    let c = Client::connect(Options {
        url: Some(url.to_string()),
        version: Version::V1,
        db: Some(db.to_string()),
        timeout: Some(Duration::from_secs(5)),
        ..Options::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (c, reqwest::Client::new(), rt)
}

#[test]
fn client_returns_typed_rows_and_says_what_failed() {
    if !influxd_available("influx client test") {
        return;
    }
    let db = influxd(false);
    let (c, http, rt) = client(&db.url(), "typed");
    rt.block_on(async {
        let ping = c.ping(&http).await.unwrap();
        assert!(ping.ok && ping.version.as_deref().is_some_and(|v| v.starts_with("1.")));
        let create = c.plan_query("CREATE DATABASE typed").unwrap();
        assert!(create.mutation().is_some());
        c.query(&http, &create).await.unwrap();
        let plan = c
            .plan_write("m,host=a v=1.5,n=2i 1600000000000000000".into())
            .unwrap();
        assert_eq!(c.write(&http, plan).await.unwrap().lines, 1);
        let rows = c
            .query(&http, &c.plan_query("SELECT v, n, host FROM m").unwrap())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["time"], Value::Time("2020-09-13T12:26:40Z".into()));
        assert_eq!(rows[0]["v"], Value::Float(1.5));
        assert_eq!(rows[0]["n"], Value::Int(2));
        assert_eq!(rows[0]["host"], Value::String("a".into()));
        let cq = c.count_query("m", None).unwrap();
        let counted = c.query(&http, &c.plan_query(&cq.text).unwrap()).await;
        assert_eq!(cq.total(&counted.unwrap()), 1);
        // A field that changes type: the server says which, and that the rest was written.
        let now = c.plan_write("m v=2.5".into()).unwrap();
        c.write(&http, now).await.unwrap();
        let plan = c.plan_write("m v=3.5\nm v=\"x\"".into()).unwrap();
        match c.write(&http, plan).await {
            Err(Error::WriteRejected {
                status: 400,
                partial: true,
                message,
            }) => assert!(message.contains("field type conflict"), "{message}"),
            other => panic!("{other:?}"),
        }
        let syntax = c.plan_query("SELEC 1").unwrap();
        match c.query(&http, &syntax).await {
            Err(Error::Rejected {
                status: 400,
                message,
            }) => {
                assert!(message.contains("rejected the query"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    });
    // A database that does not exist: InfluxDB answers 200 with a failed statement.
    let (missing, http, rt) = client(&db.url(), "nope");
    let plan = missing.plan_query("SELECT * FROM m").unwrap();
    match rt.block_on(missing.query(&http, &plan)) {
        Err(Error::Rejected {
            status: 200,
            message,
        }) => {
            assert!(message.contains("database not found"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_errors_for_no_answer_and_refused_credentials() {
    let (l, port) = free_port();
    drop(l);
    let (c, http, rt) = client(&format!("http://127.0.0.1:{port}"), "x");
    let plan = c.plan_query("SHOW DATABASES").unwrap();
    match rt.block_on(c.query(&http, &plan)) {
        Err(Error::Unreachable {
            timed_out: false,
            message,
        }) => {
            assert!(message.contains("cannot reach InfluxDB"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let ping = rt.block_on(c.ping(&http)).unwrap();
    assert!(!ping.ok && ping.status == 0 && ping.error.contains("cannot reach"));
    let (url, _) = echoing_server();
    let (c, http, rt) = client(&url, "x");
    let plan = c.plan_query("SHOW DATABASES").unwrap();
    match rt.block_on(c.query(&http, &plan)) {
        Err(Error::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("requires authentication"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
