//! The timeline as OpenTelemetry spans, sent over OTLP/HTTP (protobuf) to a collector,
//! Jaeger, Tempo or anything else that speaks OTLP: one root span per run, a child span per
//! service, a grandchild per phase.
//!
//! The spans are built *after* the run from its final journal, with explicit start and end
//! times, rather than recorded live through a tracer: the journal already holds every
//! phase's duration, a resumed run (`--continue`) is still one run, and nothing about the
//! exporter (a TLS client, a background batch thread) is set up unless an endpoint is given
//! — a plain `dockhand run` pays nothing for this module. Spans go straight to the SDK's
//! OTLP exporter ([`SpanExporter::export`]) on a small runtime of its own, bounded in time:
//! the playbook's runtime is gone by then, and an unreachable collector must cost a warning
//! and a few seconds, never the run's result.
//!
//! Service names, reasons and image names come from files anyone may edit: attribute values
//! are cut to [`MAX_TEXT`] bytes and a run is sent in requests of at most [`CHUNK`] spans.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanExporter, SpanLinks,
};
use serde_json::Value;

use super::model::{Outcome, Row, Segment, Step, Timeline};
use super::{TimelineError, source};

/// The longest attribute value sent, in bytes (a reason can be a whole log excerpt).
pub const MAX_TEXT: usize = 2048;
/// Spans per export request: a 45-service run is ~300 spans, one request; a journal with
/// thousands of records is split rather than sent as one huge body.
pub const CHUNK: usize = 1000;
/// How long one export may take in all when `OTEL_EXPORTER_OTLP_TIMEOUT` does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The standard variables (OpenTelemetry's exporter spec): the base endpoint (the signal's
/// path is appended) and the traces endpoint (used as it is).
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// The URL spans are POSTed to. `--otlp URL` is a base URL like the env variable
/// (`http://localhost:4318` → `http://localhost:4318/v1/traces`) unless it already ends in
/// `/v1/traces`; without it, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as it is), then
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (base). `None`: no export (nothing set up).
pub fn endpoint(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let nonempty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(f) = flag.map(str::to_string).and_then(nonempty) {
        return Some(with_traces_path(&f));
    }
    if let Some(t) = env(ENV_TRACES_ENDPOINT).and_then(nonempty) {
        return Some(t);
    }
    env(ENV_ENDPOINT)
        .and_then(nonempty)
        .map(|b| with_traces_path(&b))
}

fn with_traces_path(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn at(epoch_ms: f64, offset_ms: f64) -> SystemTime {
    let ms = epoch_ms + offset_ms;
    if !ms.is_finite() || ms <= 0.0 {
        return UNIX_EPOCH;
    }
    UNIX_EPOCH + Duration::from_secs_f64(ms / 1000.0)
}

/// What every span of one run shares.
struct Ctx<'a> {
    trace: TraceId,
    epoch_ms: f64,
    ids: &'a dyn IdGenerator,
    scope: InstrumentationScope,
}

impl Ctx<'_> {
    fn span(&self, name: String, parent: SpanId, times: (f64, f64)) -> SpanData {
        let ctx = SpanContext::new(
            self.trace,
            self.ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        SpanData {
            span_context: ctx,
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(cut(&name)),
            start_time: at(self.epoch_ms, times.0),
            end_time: at(self.epoch_ms, times.1.max(times.0)),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: self.scope.clone(),
        }
    }
}

fn text_attr(out: &mut Vec<KeyValue>, key: &'static str, v: Option<&Value>) {
    match v {
        Some(Value::String(s)) if !s.is_empty() => out.push(KeyValue::new(key, cut(s))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => out.push(KeyValue::new(key, i)),
            None => out.push(KeyValue::new(key, n.as_f64().unwrap_or(0.0))),
        },
        Some(Value::Bool(b)) => out.push(KeyValue::new(key, *b)),
        _ => {}
    }
}

/// The gate's result as the journal tells it: passed for a completed service, failed for one
/// that failed or rolled back after its build (a failure kind other than `build_failure`).
fn gate_result(row: &Row, rec: &Value) -> &'static str {
    let failure = rec.get("failure").and_then(Value::as_str).unwrap_or("");
    match row.outcome {
        Outcome::Completed if rec.get("unchanged") == Some(&Value::Bool(true)) => "skipped",
        Outcome::Completed => "passed",
        Outcome::Failed | Outcome::RolledBack if failure == "build_failure" => "not-reached",
        Outcome::Failed | Outcome::RolledBack if !failure.is_empty() => "failed",
        _ => "not-reached",
    }
}

fn service_attrs(row: &Row, rec: &Value) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("dockhand.service", cut(&row.name)),
        KeyValue::new("dockhand.category", cut(&row.category)),
        KeyValue::new("dockhand.outcome", row.outcome.label()),
        KeyValue::new("dockhand.phase", cut(&row.phase)),
        KeyValue::new("dockhand.gate.result", gate_result(row, rec)),
        KeyValue::new("dockhand.critical", row.is_critical()),
    ];
    for (key, field) in [
        ("dockhand.image", "image"),
        ("dockhand.image.old_id", "old_image_id"),
        ("dockhand.image.new_id", "new_image_id"),
        ("dockhand.image.backup", "backup"),
        ("dockhand.gate.healthy_ms", "healthy_ms"),
        ("dockhand.failure.kind", "failure"),
        ("dockhand.rolled_back", "rolled_back"),
        ("dockhand.deploy_order", "order"),
        ("dockhand.attempts", "attempts"),
        ("dockhand.container", "container"),
    ] {
        text_attr(&mut a, key, rec.get(field));
    }
    if let Some(r) = &row.reason {
        a.push(KeyValue::new("dockhand.failure.reason", cut(r)));
    }
    a
}

fn status_of(row: &Row) -> Status {
    let why = || cut(row.reason.as_deref().unwrap_or(row.outcome.label()));
    match row.outcome {
        Outcome::Failed | Outcome::RolledBack => Status::error(why()),
        Outcome::Completed => Status::Ok,
        _ => Status::Unset,
    }
}

fn phase_span(c: &Ctx, row: &Row, parent: SpanId, s: &Segment) -> SpanData {
    let mut span = c.span(s.step.key().to_string(), parent, (s.start_ms, s.end_ms));
    span.attributes = vec![
        KeyValue::new("dockhand.phase", s.step.key()),
        KeyValue::new("dockhand.phase.label", s.step.label()),
        KeyValue::new("dockhand.critical", s.critical),
        KeyValue::new("dockhand.wait", s.step.is_wait()),
    ];
    if matches!(s.step, Step::Rollback | Step::Failure) {
        span.status = status_of(row);
    }
    span
}

/// A service span and its phase spans; a rollback is an event on the service span, at the
/// start of the failed gate + rollback stretch. A service that never started (pending) is a
/// zero-length span at the run's start, so the trace still lists every service.
fn service_spans(c: &Ctx, root: SpanId, row: &Row, rec: &Value, out: &mut Vec<SpanData>) {
    let times = (row.start_ms().unwrap_or(0.0), row.end_ms().unwrap_or(0.0));
    let mut span = c.span(row.name.clone(), root, times);
    span.attributes = service_attrs(row, rec);
    span.status = status_of(row);
    if row.outcome == Outcome::RolledBack
        && let Some(s) = row.segments.iter().find(|s| s.step == Step::Rollback)
    {
        let reason = cut(row.reason.as_deref().unwrap_or(""));
        span.events.events.push(Event::new(
            "rollback",
            at(c.epoch_ms, s.start_ms),
            vec![KeyValue::new("dockhand.failure.reason", reason)],
            0,
        ));
    }
    let id = span.span_context.span_id();
    out.push(span);
    for s in &row.segments {
        out.push(phase_span(c, row, id, s));
    }
}

/// The spans of one run: the root first, then each service followed by its phases. `doc`
/// is the run's journal (for what the timeline does not keep: image ids, failure kinds).
pub fn spans(t: &Timeline, doc: &Value, ids: &dyn IdGenerator) -> Vec<SpanData> {
    let null = Value::Null;
    let records = doc.get("records").unwrap_or(&null);
    let c = Ctx {
        trace: ids.new_trace_id(),
        epoch_ms: t.epoch_ms.unwrap_or(0.0),
        ids,
        scope: InstrumentationScope::builder("dockhand")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    };
    // The root covers every child, whatever a hand-edited journal says.
    let first = t.rows.iter().filter_map(Row::start_ms).fold(0.0, f64::min);
    let last = t
        .rows
        .iter()
        .filter_map(Row::end_ms)
        .fold(t.span_ms, f64::max);
    let mut root = c.span(
        format!("dockhand run {}", t.run),
        SpanId::INVALID,
        (first, last),
    );
    root.span_kind = SpanKind::Server;
    root.attributes = vec![
        KeyValue::new("dockhand.run", cut(&t.run)),
        KeyValue::new("dockhand.status", cut(&t.status)),
        KeyValue::new("dockhand.services", t.rows.len() as i64),
    ];
    if let Some(p) = &t.project {
        root.attributes
            .push(KeyValue::new("dockhand.project", cut(p)));
    }
    for (o, n) in t.counts() {
        let key = format!("dockhand.services.{}", o.label().replace(' ', "_"));
        root.attributes.push(KeyValue::new(key, n as i64));
    }
    root.status = match t.status.as_str() {
        "completed" => Status::Ok,
        "failed" => Status::error("the run failed"),
        _ => Status::Unset,
    };
    let root_id = root.span_context.span_id();
    let mut out = vec![root];
    for row in &t.rows {
        let rec = records.get(&row.name).unwrap_or(&null);
        service_spans(&c, root_id, row, rec, &mut out);
    }
    out
}

fn export_error(endpoint: &str, reason: impl std::fmt::Display) -> TimelineError {
    TimelineError::Export {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    }
}

/// The timeout for one whole export: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, as the spec says), else [`DEFAULT_TIMEOUT`].
fn timeout_from_env() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.trim().parse::<u64>().ok())
    .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

/// Sends `spans` to `endpoint` (the full `/v1/traces` URL) as OTLP/HTTP protobuf, in
/// requests of [`CHUNK`] spans, within the export timeout. Blocks the calling thread on a
/// runtime of its own (call it outside any tokio runtime).
pub fn send(endpoint: &str, spans: Vec<SpanData>) -> Result<(), TimelineError> {
    // reqwest (built with `rustls-no-provider`) asks rustls for the process's provider when
    // it builds any client, even a plain-http one, and panics without one. *ring*, as
    // `host::install_crypto_provider` does for the run's clients (this layer cannot call it);
    // a provider installed earlier (by the run or an embedder) is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeout = timeout_from_env();
    let tls = endpoint.len() >= 8 && endpoint[..8].eq_ignore_ascii_case("https://");
    let mut http = reqwest::Client::builder()
        .user_agent(concat!("dockhand/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout);
    if !tls {
        // Loading the system's TLS roots costs milliseconds a plain URL never needs.
        http = http.tls_certs_only([]);
    }
    let http = http.build().map_err(|e| export_error(endpoint, e))?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .build()
        .map_err(|e| export_error(endpoint, e))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("dockhand")
        .build();
    exporter.set_resource(&resource);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| export_error(endpoint, e))?;
    let mut chunks: Vec<Vec<SpanData>> = Vec::new();
    let mut spans = spans;
    while !spans.is_empty() {
        let rest = spans.split_off(spans.len().min(CHUNK));
        chunks.push(std::mem::replace(&mut spans, rest));
    }
    let sent = rt.block_on(async {
        tokio::time::timeout(timeout, async {
            for chunk in chunks {
                exporter.export(chunk).await?;
            }
            Ok::<_, opentelemetry_sdk::error::OTelSdkError>(())
        })
        .await
    });
    let _ = exporter.shutdown();
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(export_error(endpoint, e)),
        Err(_) => Err(export_error(
            endpoint,
            format!("no answer within {}", humantime::format_duration(timeout)),
        )),
    }
}

/// The spans of every run journal written since `since` under `root`, one trace each.
pub fn spans_since(root: &std::path::Path, since: SystemTime) -> (Vec<String>, Vec<SpanData>) {
    let ids = RandomIdGenerator::default();
    let runs = source::runs_since(root, since);
    let mut out = Vec::new();
    let mut exported = Vec::new();
    for r in runs {
        match source::load_with_doc(root, &r) {
            Ok((t, doc)) => {
                out.extend(spans(&t, &doc, &ids));
                exported.push(r);
            }
            Err(e) => tracing::warn!("--otlp: {e}"),
        }
    }
    (exported, out)
}

/// `dockhand run --otlp URL` (or `OTEL_EXPORTER_OTLP_ENDPOINT`): like
/// [`super::TraceOnExit`], the runs the playbook wrote are found by their journals when the
/// run ends, however it ends, and sent then. Failing to send is a warning, never another exit
/// code: the rebuild's result does not depend on a collector being up.
#[derive(Debug)]
pub struct OtlpOnExit {
    root: PathBuf,
    since: SystemTime,
    endpoint: String,
}

impl OtlpOnExit {
    pub fn start(root: PathBuf, endpoint: String) -> OtlpOnExit {
        OtlpOnExit {
            root,
            // A journal's mtime has the file system's granularity: start a little early.
            since: SystemTime::now() - Duration::from_secs(1),
            endpoint,
        }
    }

    /// Builds and sends the spans; problems are logged as warnings.
    pub fn export(self) {
        let (runs, spans) = spans_since(&self.root, self.since);
        if runs.is_empty() {
            tracing::warn!("--otlp: the playbook wrote no rebuild journal; nothing exported");
            return;
        }
        let n = spans.len();
        match send(&self.endpoint, spans) {
            Ok(()) => tracing::info!(
                "exported run {} as {n} span(s) to {}",
                runs.join(", "),
                self.endpoint
            ),
            Err(e) => tracing::warn!(
                "{e} (the run's result is unchanged; is the collector running? check --otlp \
                 or OTEL_EXPORTER_OTLP_ENDPOINT)"
            ),
        }
    }
}
