//! `http::` — HTTP requests and health probes.
//!
//! One pooled client serves the whole run, so a validation that probes forty endpoints every
//! few seconds reuses connections instead of paying a TCP handshake each time. Requests race
//! the run's cancellation, so Ctrl-C never waits for a hung server.
//!
//! `get`/`post`/`head` fail only when no HTTP answer came back (refused, timed out, DNS); a
//! 500 is still an answer, returned with its status so the script decides. `probe` never
//! fails: it is the primitive for health checks and reports `ok: false` with the reason.
//!
//! Every response is a map `#{ status, ok, ms, body, headers, json }` (`json` is the parsed
//! body when the server sent JSON, `()` otherwise).
//!
//! **Modes.** `get`, `head` and `probe` run in every mode. A `post` is a mutation: refused
//! under `--read-only` and only planned under `--dry-run`, unless the script declares it
//! free of side effects with `#{ safe: true }` (for read APIs that take POST).
//!
//! ```rhai
//! let r = http::probe("http://localhost:8006/health", #{ timeout: "2s" });
//! if !r.ok { print(`data-api: ${r.error}`); }
//! let r = http::post("http://localhost:8086/write?db=lab", "cpu v=1", #{ timeout_ms: 500 });
//! ```

use std::time::{Duration, Instant};

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Map};

use super::time::{human, to_duration};
use super::{HostCtx, HostResult, fail, invalid, with_host};
use crate::util::root_cause;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

struct Request {
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Dynamic>,
    timeout: Duration,
}

fn options(opts: &Map, default_timeout: Duration) -> HostResult<(Vec<(String, String)>, Duration)> {
    let mut headers = Vec::new();
    if let Some(h) = opts.get("headers") {
        let map = h
            .read_lock::<Map>()
            .ok_or_else(|| invalid("option 'headers' must be a map of name: value"))?;
        for (k, v) in map.iter() {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let mut timeout = default_timeout;
    for key in ["timeout", "timeout_ms"] {
        if let Some(v) = opts.get(key) {
            timeout = to_duration(v)?;
        }
    }
    for key in opts.keys() {
        if !matches!(
            key.as_str(),
            "headers"
                | "safe"
                | "timeout"
                | "timeout_ms"
                | "json"
                | "body"
                | "expect"
                | "budget"
                | "budget_ms"
                | "samples"
        ) {
            return Err(invalid(format!(
                "unknown http option '{key}' (known: headers, safe, timeout, timeout_ms, budget, expect, samples)"
            )));
        }
    }
    Ok((headers, timeout))
}

/// Whether the script declared this POST free of side effects (`#{ safe: true }`): a POST
/// changes things unless its author says otherwise, so under `--read-only` it is refused
/// and under `--dry-run` only planned. Some read APIs take POST (a search, a query
/// endpoint); those say `safe: true`, and then run in every mode.
fn declared_safe(opts: &Map) -> HostResult<bool> {
    match opts.get("safe") {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| invalid("option 'safe' must be true or false")),
    }
}

fn describe_error(
    method: &reqwest::Method,
    url: &str,
    timeout: Duration,
    e: &reqwest::Error,
) -> String {
    // Never print credentials a URL carries (`user:pass@`, `?token=`).
    let url = &crate::secrets::mask_url(url);
    let root = crate::secrets::mask_urls_in(&root_cause(e));
    if e.is_timeout() {
        return format!("{method} {url} timed out after {}", human(timeout));
    }
    if e.is_connect() {
        format!(
            "{method} {url} failed: cannot connect ({root}); is the service running and listening there?"
        )
    } else if e.is_builder() {
        format!("{method} {url}: invalid request ({root})")
    } else {
        format!("{method} {url} failed: {root}")
    }
}

/// Performs a request; `Err(text)` when no HTTP answer came back.
fn perform(h: &HostCtx, req: Request) -> HostResult<Result<Map, String>> {
    let client = h.http_for(&req.url);
    let mut rb = client
        .request(req.method.clone(), &req.url)
        .timeout(req.timeout);
    for (k, v) in &req.headers {
        rb = rb.header(k, v);
    }
    if let Some(body) = req.body {
        if body.is_string() {
            rb = rb.body(body.to_string());
        } else {
            rb = rb.json(&super::fs::dynamic_to_json(&body)?);
        }
    }
    let start = Instant::now();
    let method = req.method.clone();
    let url = req.url.clone();
    let timeout = req.timeout;
    h.block_on(async move {
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return Err(describe_error(&method, &url, timeout, &e)),
        };
        let status = resp.status().as_u16();
        let mut headers = Map::new();
        for (k, v) in resp.headers() {
            headers.insert(k.as_str().into(), v.to_str().unwrap_or("").into());
        }
        let is_json = headers
            .get("content-type")
            .is_some_and(|c| c.to_string().contains("json"));
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) => return Err(describe_error(&method, &url, timeout, &e)),
        };
        let ms = INT::try_from(start.elapsed().as_millis()).unwrap_or(INT::MAX);
        let mut m = Map::new();
        let json = if is_json {
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| rhai::serde::to_dynamic(v).ok())
                .unwrap_or(Dynamic::UNIT)
        } else {
            Dynamic::UNIT
        };
        m.insert("status".into(), (status as INT).into());
        m.insert("ok".into(), (200..300).contains(&status).into());
        m.insert("ms".into(), ms.into());
        m.insert("body".into(), body.into());
        m.insert("headers".into(), headers.into());
        m.insert("json".into(), json);
        Ok(m)
    })
}

fn request(
    ctx: &NativeCallContext,
    method: reqwest::Method,
    url: &str,
    body: Option<Dynamic>,
    opts: &Map,
) -> HostResult<Map> {
    with_host(ctx, |h| request_with(h, method, url, body, opts))
}

fn request_with(
    h: &HostCtx,
    method: reqwest::Method,
    url: &str,
    body: Option<Dynamic>,
    opts: &Map,
) -> HostResult<Map> {
    let (headers, timeout) = options(opts, DEFAULT_TIMEOUT)?;
    if method == reqwest::Method::POST && !declared_safe(opts)? {
        let shown = crate::secrets::mask_url(url);
        let size = body.as_ref().map_or(0, |b| b.to_string().len());
        if !h.mutation("http::post", &shown, &format!("{size} bytes"))? {
            let mut m = Map::new();
            m.insert("status".into(), (0 as INT).into());
            m.insert("ok".into(), true.into());
            m.insert("planned".into(), true.into());
            m.insert("ms".into(), (0 as INT).into());
            m.insert("body".into(), "".into());
            m.insert("headers".into(), Map::new().into());
            m.insert("json".into(), Dynamic::UNIT);
            return Ok(m);
        }
    }
    perform(
        h,
        Request {
            method,
            url: url.to_string(),
            headers,
            body,
            timeout,
        },
    )?
    .map_err(fail)
}

#[export_module]
pub mod http_api {
    use super::*;

    /// GET a URL. Returns `#{status, ok, ms, body, headers, json}`; fails only when no answer
    /// came back. Options: `headers` (map), `timeout` (default 30 s).
    #[rhai_fn(return_raw)]
    pub fn get(ctx: NativeCallContext, url: &str) -> Result<Map, Box<EvalAltResult>> {
        request(&ctx, reqwest::Method::GET, url, None, &Map::new())
    }

    /// GET with options (`headers`, `timeout`).
    #[rhai_fn(name = "get", return_raw)]
    pub fn get_with(
        ctx: NativeCallContext,
        url: &str,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        request(&ctx, reqwest::Method::GET, url, None, &opts)
    }

    /// POST a body: a string is sent as is, a map or array as JSON. A POST is a mutation:
    /// refused under `--read-only`, only planned under `--dry-run` (the answer is then
    /// `#{status: 0, ok: true, planned: true, ...}`) — unless the options say
    /// `safe: true`, the author's word that this endpoint only reads.
    #[rhai_fn(return_raw)]
    pub fn post(
        ctx: NativeCallContext,
        url: &str,
        body: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        request(&ctx, reqwest::Method::POST, url, Some(body), &Map::new())
    }

    /// POST with options (`headers`, `timeout`, `safe`).
    #[rhai_fn(name = "post", return_raw)]
    pub fn post_with(
        ctx: NativeCallContext,
        url: &str,
        body: Dynamic,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        request(&ctx, reqwest::Method::POST, url, Some(body), &opts)
    }

    /// HEAD a URL (status and headers, no body).
    #[rhai_fn(return_raw)]
    pub fn head(ctx: NativeCallContext, url: &str) -> Result<Map, Box<EvalAltResult>> {
        request(&ctx, reqwest::Method::HEAD, url, None, &Map::new())
    }

    /// HEAD with options (`headers`, `timeout`).
    #[rhai_fn(name = "head", return_raw)]
    pub fn head_with(
        ctx: NativeCallContext,
        url: &str,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        request(&ctx, reqwest::Method::HEAD, url, None, &opts)
    }

    /// Health probe: GET `url` and report, never fail. Returns
    /// `#{ok, status, ms, body, error}`: `ok` is true when the status is 2xx (or equals
    /// option `expect`) and, if option `budget` is given ("500ms"), the answer came within it.
    /// `error` says why `ok` is false. Default timeout 5 s.
    #[rhai_fn(return_raw)]
    pub fn probe(ctx: NativeCallContext, url: &str) -> Result<Map, Box<EvalAltResult>> {
        probe_with(ctx, url, Map::new())
    }

    /// Health probe with options: `timeout`, `budget` (latency limit), `expect` (status),
    /// `headers`, `samples` (default 1).
    ///
    /// With `samples: 3` the URL is asked three times and the latency judged on the
    /// median: one answer delayed by a busy machine does not fail a healthy service, while a
    /// service that is slow every time still does. Every sample must have the right status.
    /// `ms` is then the median and `samples_ms` the individual times.
    #[rhai_fn(name = "probe", return_raw)]
    pub fn probe_with(
        ctx: NativeCallContext,
        url: &str,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let spec = ProbeSpec::parse(&opts)?;
            Ok(spec.verdict(spec.sample(h, url)?))
        })
    }
}

/// What `http::probe` was asked to check.
struct ProbeSpec {
    headers: Vec<(String, String)>,
    timeout: Duration,
    budget: Option<Duration>,
    expect: Option<INT>,
    samples: usize,
}

/// What the samples of one probe saw: every time, the last status and body, and the first
/// failure (after which no more samples are taken: the probe has failed already).
struct Sampled {
    times: Vec<INT>,
    status: INT,
    body: Dynamic,
    error: Option<String>,
}

impl ProbeSpec {
    fn parse(opts: &Map) -> HostResult<Self> {
        let (headers, timeout) = options(opts, PROBE_TIMEOUT)?;
        let budget = match opts.get("budget").or_else(|| opts.get("budget_ms")) {
            Some(b) => Some(to_duration(b)?),
            None => None,
        };
        let expect = match opts.get("expect") {
            Some(e) => Some(
                e.as_int()
                    .map_err(|_| invalid("option 'expect' must be a status code like 200"))?,
            ),
            None => None,
        };
        let samples = match opts.get("samples") {
            Some(n) => match n.as_int() {
                Ok(n) if (1..=100).contains(&n) => n as usize,
                _ => return Err(invalid("option 'samples' must be a number from 1 to 100")),
            },
            None => 1,
        };
        Ok(Self {
            headers,
            timeout,
            budget,
            expect,
            samples,
        })
    }

    fn sample(&self, h: &HostCtx, url: &str) -> HostResult<Sampled> {
        let mut s = Sampled {
            times: Vec::with_capacity(self.samples),
            status: 0,
            body: Dynamic::from(""),
            error: None,
        };
        for _ in 0..self.samples {
            let start = Instant::now();
            let req = Request {
                method: reqwest::Method::GET,
                url: url.to_string(),
                headers: self.headers.clone(),
                body: None,
                timeout: self.timeout,
            };
            match perform(h, req)? {
                Ok(resp) => {
                    let int = |k: &str| resp.get(k).and_then(|s| s.as_int().ok()).unwrap_or(0);
                    s.status = int("status");
                    s.times.push(int("ms"));
                    s.body = resp.get("body").cloned().unwrap_or_default();
                    let status = s.status;
                    s.error = match self.expect {
                        Some(e) if status != e => Some(format!("status {status}, expected {e}")),
                        None if !(200..300).contains(&status) => Some(format!("status {status}")),
                        _ => None,
                    };
                }
                Err(e) => {
                    s.status = 0;
                    s.times
                        .push(INT::try_from(start.elapsed().as_millis()).unwrap_or(INT::MAX));
                    s.body = Dynamic::from("");
                    s.error = Some(e);
                }
            }
            if s.error.is_some() {
                break;
            }
        }
        Ok(s)
    }

    /// The probe's map: `ok`, `error` (empty when ok), `status`, `ms` (the median),
    /// `body`, `samples_ms`.
    fn verdict(&self, s: Sampled) -> Map {
        let mut sorted = s.times.clone();
        sorted.sort_unstable();
        let ms = sorted[sorted.len() / 2];
        let error = match (s.error, self.budget) {
            (Some(e), _) => e,
            (None, Some(b)) if ms as u128 > b.as_millis() => {
                let (samples, times) = (self.samples, &s.times);
                if samples > 1 {
                    format!(
                        "answered in {ms} ms (median of {samples}: {times:?}), over the {} budget",
                        human(b)
                    )
                } else {
                    format!("answered in {ms} ms, over the {} budget", human(b))
                }
            }
            (None, _) => String::new(),
        };
        let mut out = Map::new();
        out.insert("ok".into(), error.is_empty().into());
        out.insert("error".into(), error.into());
        out.insert("status".into(), s.status.into());
        out.insert("ms".into(), ms.into());
        out.insert("body".into(), s.body);
        let times: Array = s.times.into_iter().map(Dynamic::from).collect();
        out.insert("samples_ms".into(), times.into());
        out
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(http_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_static_module("http", MODULE.clone());
}
