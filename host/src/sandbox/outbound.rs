//! Outbound HTTP for guests: `wasi:http` requests checked against the
//! plugin's allow-list, charged to its pool, retried on 429 and 503, capped
//! in size and time, and recorded one by one.
//!
//! The host sends each request itself and reads the whole response before the
//! guest sees it, so that it can count the tokens of the response and cap its
//! size. Redirects are responses like any other: the host never follows one,
//! and a guest that follows one itself sends a new request, which the
//! allow-list checks again.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::HttpSettings;
use crate::pool::Pool;

/// The tracing target of request records.
pub const REQUEST_RECORD_TARGET: &str = "sandtable::http";

/// One entry of a plugin's allow-list: `host:port`, where the host may
/// start with `*.` for any name under a domain and the port may be `*`.
///
/// Names are compared as written, after lower-casing: `localhost` and
/// `127.0.0.1` are distinct entries, and no name is resolved to check it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    host: String,
    suffix: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Returns whether a request to `host` on `port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|allowed| allowed != port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        if self.suffix {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let example = "give `host:port`, such as `api.example.com:443`, `*.example.com:443` or \
                       `127.0.0.1:*`";
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => (host, port),
            _ => return Err(format!("`{text}` has no port; {example}")),
        };
        if host.contains("://") || port.contains('/') {
            return Err(format!("`{text}` is a URL, not a host; {example}"));
        }
        let port = match port {
            "*" => None,
            digits => match digits.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return Err(format!("`{digits}` in `{text}` is not a port; {example}")),
            },
        };
        let (suffix, host) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let bracketed = host.starts_with('[') && host.ends_with(']');
        let bare = if bracketed {
            &host[1..host.len() - 1]
        } else {
            host
        };
        let valid = if bracketed {
            bare.parse::<std::net::Ipv6Addr>().is_ok() && !suffix
        } else {
            !bare.is_empty()
                && !bare.starts_with('.')
                && !bare.ends_with('.')
                && bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        if !valid {
            let hint = if bare.contains('*') {
                "`*` may only stand for the port or, as `*.`, start the host".to_owned()
            } else {
                example.to_owned()
            };
            return Err(format!(
                "`{host}` in `{text}` is not a host name or address; {hint}"
            ));
        }
        Ok(HostPattern {
            host: bare.to_ascii_lowercase(),
            suffix,
            port,
        })
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<HostPattern> for String {
    fn from(pattern: HostPattern) -> String {
        pattern.to_string()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suffix {
            f.write_str("*.")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => f.write_str(":*"),
        }
    }
}

/// The reach of a plugin and the pools it is charged to: the operator's
/// allow-list, the HTTP settings, and the pool of each function.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// The hosts the plugin may send requests to; empty allows none.
    pub hosts: Vec<HostPattern>,
    /// Timeouts, size caps and retries.
    pub settings: Arc<HttpSettings>,
    /// The pool of each function that has one, by function name.
    pub pools: HashMap<String, Arc<Pool>>,
}

impl Outbound {
    /// Returns whether the allow-list admits `host` on `port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|pattern| pattern.matches(host, port))
    }
}

/// The record of one outbound request: one for each request a guest
/// makes, its retries included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The tenant.
    pub tenant: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The function whose call made the request.
    pub function: String,
    /// The pool charged, if any.
    pub pool: Option<String>,
    /// The request's method.
    pub method: String,
    /// The host and port, as the guest gave them.
    pub host: String,
    /// The path and query.
    pub path: String,
    /// The status of the last response; 0 when no response came.
    pub status: u16,
    /// Time from the guest's request to the response the guest gets,
    /// retries and pool waits included.
    pub latency_us: u64,
    /// The size of the request body.
    pub bytes_out: u64,
    /// The size of the last response's body.
    pub bytes_in: u64,
    /// Time spent waiting for pool permits, over every attempt.
    pub pool_wait_us: u64,
    /// How many times the host sent the request again.
    pub retries: u32,
    /// Tokens counted from the response.
    pub tokens: u64,
    /// `ok`, `denied`, `throttled` (a 429 or 503 after the last retry) or
    /// `failed`.
    pub outcome: String,
    /// The reason the request was rejected or failed.
    pub error: Option<String>,
}

impl RequestRecord {
    /// Writes the record as an INFO `tracing` event on
    /// [`REQUEST_RECORD_TARGET`].
    pub fn emit(&self) {
        tracing::info!(
            target: REQUEST_RECORD_TARGET,
            tenant = %self.tenant,
            plugin = %self.plugin,
            function = %self.function,
            pool = self.pool.as_deref().unwrap_or(""),
            method = %self.method,
            host = %self.host,
            path = %self.path,
            status = self.status,
            latency_us = self.latency_us,
            bytes_out = self.bytes_out,
            bytes_in = self.bytes_in,
            pool_wait_us = self.pool_wait_us,
            retries = self.retries,
            tokens = self.tokens,
            outcome = %self.outcome,
            error = self.error.as_deref().unwrap_or(""),
            "outbound request"
        );
    }
}

/// The totals of the requests of one call.
#[derive(Debug, Default)]
pub(crate) struct CallRequests {
    pub requests: AtomicU32,
    /// The pool waits of every request, summed.
    pub pool_wait_us: AtomicU64,
    pub tokens: AtomicU64,
    pub reported_tokens: AtomicU64,
    pub records: Mutex<Vec<RequestRecord>>,
    /// The wall-clock time during which at least one request waited.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    count: u32,
    since: Option<Instant>,
    total: Duration,
}

impl CallRequests {
    /// Returns the wall-clock time during which at least one of the call's
    /// requests waited for a permit. Requests that wait at once count once,
    /// so sending many cannot stretch the deadline.
    pub fn pool_wait(&self) -> Duration {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let current = waiting
            .since
            .map_or(Duration::ZERO, |since| since.elapsed());
        waiting.total + current
    }

    fn start_waiting(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.count == 0 {
            waiting.since = Some(Instant::now());
        }
        waiting.count += 1;
    }

    fn stop_waiting(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.count = waiting.count.saturating_sub(1);
        if waiting.count == 0
            && let Some(since) = waiting.since.take()
        {
            waiting.total += since.elapsed();
        }
    }

    pub fn take_records(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The `wasi:http` hooks of one store: where its requests may go and what
/// they are charged to.
#[derive(Default)]
pub(crate) struct RequestHooks {
    pub outbound: Option<Arc<Outbound>>,
    /// The current guest entry's deadline, before pool waits move it back.
    pub deadline: Option<Instant>,
    pub pool: Option<Arc<Pool>>,
    pub call: Arc<CallRequests>,
    pub tenant: String,
    pub plugin: String,
    pub function: String,
}

impl WasiHttpHooks for RequestHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_error: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        let sender = Sender {
            outbound: self.outbound.clone().unwrap_or_default(),
            pool: self.pool.clone(),
            call: self.call.clone(),
            deadline: self.deadline,
            record: RequestRecord {
                tenant: self.tenant.clone(),
                plugin: self.plugin.clone(),
                function: self.function.clone(),
                pool: self.pool.as_ref().map(|pool| pool.name().to_owned()),
                method: request.method().to_string(),
                host: request
                    .uri()
                    .authority()
                    .map(|authority| authority.to_string())
                    .unwrap_or_default(),
                path: request
                    .uri()
                    .path_and_query()
                    .map(|path| path.to_string())
                    .unwrap_or_default(),
                status: 0,
                latency_us: 0,
                bytes_out: 0,
                bytes_in: 0,
                pool_wait_us: 0,
                retries: 0,
                tokens: 0,
                outcome: String::new(),
                error: None,
            },
        };
        Box::new(async move {
            let response = sender.send(request, options).await?;
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// One request on its way.
struct Sender {
    outbound: Arc<Outbound>,
    pool: Option<Arc<Pool>>,
    call: Arc<CallRequests>,
    deadline: Option<Instant>,
    record: RequestRecord,
}

/// A response read whole.
struct Answer {
    parts: http::response::Parts,
    body: Bytes,
}

impl Sender {
    async fn send(
        mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let started = Instant::now();
        let result = self.send_inner(request, options).await;
        self.record.latency_us = started.elapsed().as_micros() as u64;
        if let Err(error) = &result {
            if self.record.outcome.is_empty() {
                self.record.outcome = "failed".to_owned();
            }
            if self.record.error.is_none() {
                self.record.error = Some(error_text(error));
            }
        }
        self.record.emit();
        self.call
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.record);
        result
    }

    async fn send_inner(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let settings = self.outbound.settings.clone();
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default().to_owned();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // User info before the host (`user@host`) would reach the client
        // with the authority, so a request that has any is refused.
        if self.record.host.contains('@') {
            let message = format!(
                "request to `{}` refused: user info in a URL is not allowed; send credentials \
                 in a header",
                self.record.host
            );
            self.record.outcome = "denied".to_owned();
            self.record.error = Some(message.clone());
            return Err(HttpError::InternalError(Some(message)));
        }
        if !self.outbound.allows(&host, port) {
            if let Some(pool) = &self.pool {
                pool.count_denied();
            }
            let message = self.denied_message(&host, port);
            self.record.outcome = "denied".to_owned();
            self.record.error = Some(message.clone());
            return Err(HttpError::InternalError(Some(message)));
        }

        let (parts, body) = request.into_parts();
        let limit = usize::try_from(settings.max_request_bytes).unwrap_or(usize::MAX);
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                let message = format!(
                    "the request body to `{}` is larger than {} bytes (`max_request_bytes` in \
                     `[http]`)",
                    self.record.host, settings.max_request_bytes
                );
                self.record.error = Some(message);
                return Err(HttpError::HttpRequestBodySize(Some(
                    settings.max_request_bytes,
                )));
            }
        };
        self.record.bytes_out = body.len() as u64;

        let mut attempt = 0u32;
        loop {
            if let Some(pool) = &self.pool {
                self.call.start_waiting();
                let acquired = pool.acquire().await;
                self.call.stop_waiting();
                let waited = acquired.map_err(|error| {
                    self.record.outcome = "denied".to_owned();
                    HttpError::InternalError(Some(error.to_string()))
                })?;
                let waited_us = waited.as_micros() as u64;
                self.record.pool_wait_us += waited_us;
                self.call
                    .pool_wait_us
                    .fetch_add(waited_us, Ordering::Relaxed);
            }
            self.call.requests.fetch_add(1, Ordering::Relaxed);
            let mut builder = http::Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone())
                .version(parts.version);
            for (name, value) in &parts.headers {
                builder = builder.header(name, value);
            }
            let request = builder
                .body(full(body.clone()))
                .map_err(|error| HttpError::InternalError(Some(error.to_string())))?;
            // An attempt ends at `timeout_ms`, or at the call's deadline
            // (moved back by its pool waits) when that comes first, since
            // the guest cannot return before its response does.
            let started = Instant::now();
            let mut end = started + settings.timeout;
            let call_deadline = self
                .deadline
                .map(|deadline| deadline + self.call.pool_wait());
            let cut_by_deadline = call_deadline.is_some_and(|deadline| deadline < end);
            if let Some(deadline) = call_deadline.filter(|_| cut_by_deadline) {
                end = deadline;
            }
            let answer = match tokio::time::timeout_at(
                end.into(),
                attempt_once(request, options, &settings),
            )
            .await
            {
                Ok(answer) => answer?,
                Err(_) => {
                    let message = if cut_by_deadline {
                        format!(
                            "no whole response from `{}` before the call's deadline, {} ms after \
                             the request was sent",
                            self.record.host,
                            started.elapsed().as_millis()
                        )
                    } else {
                        format!(
                            "no whole response from `{}` within {} ms (`timeout_ms` in `[http]`)",
                            self.record.host,
                            settings.timeout.as_millis()
                        )
                    };
                    self.record.error = Some(message.clone());
                    return Err(HttpError::InternalError(Some(message)));
                }
            };
            self.record.status = answer.parts.status.as_u16();
            self.record.bytes_in = answer.body.len() as u64;
            let status = answer.parts.status.as_u16();
            if status == 429 || status == 503 {
                let retry_after = retry_after(&answer.parts.headers);
                let over_cap = retry_after.is_some_and(|wait| wait > settings.max_retry_after);
                if let Some(pool) = &self.pool {
                    match retry_after {
                        Some(wait) => {
                            let pause = wait.min(settings.max_retry_after);
                            tracing::warn!(
                                pool = %pool.name(),
                                host = %self.record.host,
                                status,
                                pause_ms = pause.as_millis() as u64,
                                "a server asked to wait: the pool is paused for every caller"
                            );
                            pool.pause(pause).await;
                        }
                        None => pool.count_throttled(),
                    }
                }
                if attempt < settings.retries && !over_cap {
                    attempt += 1;
                    self.record.retries = attempt;
                    // Full jitter over an exponential backoff; a pause that
                    // `Retry-After` set is waited out in `acquire`.
                    let ceiling = settings.backoff.saturating_mul(1 << (attempt - 1).min(16));
                    let wait = ceiling.mul_f64(fastrand::f64());
                    let wait = if self.pool.is_none() {
                        wait.max(retry_after.unwrap_or_default())
                    } else {
                        wait
                    };
                    tokio::time::sleep(wait).await;
                    continue;
                }
                self.record.outcome = "throttled".to_owned();
                self.record.error = Some(if over_cap {
                    format!(
                        "`{}` responded with {status} and `Retry-After` of {} s, longer than the {} s \
                         the host waits (`max_retry_after_s` in `[http]`)",
                        self.record.host,
                        retry_after.unwrap_or_default().as_secs(),
                        settings.max_retry_after.as_secs()
                    )
                } else {
                    format!(
                        "`{}` responded with {status} after {attempt} retries (`retries` in `[http]`)",
                        self.record.host
                    )
                });
            } else {
                self.record.outcome = "ok".to_owned();
            }
            self.observe_limits(&answer).await;
            return Ok(http::Response::from_parts(answer.parts, full(answer.body)));
        }
    }

    /// Charges the tokens of a response and honours its rate-limit headers.
    async fn observe_limits(&mut self, answer: &Answer) {
        let tokens = usage_tokens(&answer.parts.headers, &answer.body);
        self.record.tokens = tokens;
        crate::pool::add_saturating(&self.call.tokens, tokens);
        let Some(pool) = &self.pool else {
            return;
        };
        pool.charge_tokens(tokens).await;
        for kind in ["requests", "tokens"] {
            let remaining = header_text(
                &answer.parts.headers,
                &format!("x-ratelimit-remaining-{kind}"),
            );
            if remaining.map(str::trim) == Some("0")
                && let Some(reset) =
                    header_text(&answer.parts.headers, &format!("x-ratelimit-reset-{kind}"))
                        .and_then(parse_reset)
            {
                // As with `Retry-After`, no server pauses a pool longer than
                // the operator allows.
                let reset = reset.min(self.outbound.settings.max_retry_after);
                pool.hold_until(Instant::now() + reset);
            }
        }
    }

    fn denied_message(&self, host: &str, port: u16) -> String {
        let plugin = &self.record.plugin;
        if self.outbound.hosts.is_empty() {
            format!(
                "request to `{host}:{port}` refused: plugin `{plugin}` may reach no host; the \
                 operator allows one with `sandtable plugin grant {plugin} --host {host}:{port}`"
            )
        } else {
            let allowed: Vec<String> = self
                .outbound
                .hosts
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "request to `{host}:{port}` refused: it is not on the allow-list of plugin \
                 `{plugin}` ({}); the operator adds it with `sandtable plugin grant {plugin} \
                 --host {host}:{port}`",
                allowed.join(", ")
            )
        }
    }
}

/// Sends one attempt and reads the whole response, within the size cap.
async fn attempt_once(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    settings: &HttpSettings,
) -> Result<Answer, HttpError> {
    let guest = options.unwrap_or_default();
    let cap =
        |asked: Option<Duration>, limit: Duration| Some(asked.map_or(limit, |d| d.min(limit)));
    // The host's own `timeout_ms` bounds the whole attempt and names the
    // setting when it fires, so the client's timeouts apply only when the
    // guest requests shorter ones.
    let options = RequestOptions {
        connect_timeout: cap(guest.connect_timeout, settings.connect_timeout),
        first_byte_timeout: cap(guest.first_byte_timeout, settings.timeout * 2),
        between_bytes_timeout: cap(guest.between_bytes_timeout, settings.timeout * 2),
    };
    // TODO: every attempt opens a connection of its own. Keeping
    // connections to a host alive across requests would spare a handshake
    // each, most of all for TLS.
    let (response, connection) =
        wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "an outbound connection ended with an error");
        }
    });
    let (parts, body) = response.into_parts();
    let limit = usize::try_from(settings.max_response_bytes).unwrap_or(usize::MAX);
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return Err(match error.downcast::<HttpError>() {
                Ok(error) => *error,
                Err(_) => HttpError::InternalError(Some(format!(
                    "the response is larger than {} bytes (`max_response_bytes` in `[http]`)",
                    settings.max_response_bytes
                ))),
            });
        }
    };
    Ok(Answer { parts, body })
}

fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn error_text(error: &HttpError) -> String {
    match error {
        HttpError::InternalError(Some(message)) => message.clone(),
        other => other.to_string(),
    }
}

fn header_text<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// Reads `Retry-After`: seconds, or an HTTP date.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let text = header_text(headers, "retry-after")?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let date =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = date - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or_default())
}

/// Reads a provider's reset time, such as `1s`, `6m0s`, `20ms` or `1h2m3.5s`.
pub(crate) fn parse_reset(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total <= 86_400.0).then(|| Duration::from_secs_f64(total))
}

/// Counts the tokens of a response from its JSON `usage` field: OpenAI's
/// `total_tokens` (or `prompt_tokens` plus `completion_tokens`), or
/// `input_tokens` plus `output_tokens`.
pub(crate) fn usage_tokens(headers: &http::HeaderMap, body: &[u8]) -> u64 {
    let json = header_text(headers, "content-type").is_some_and(|kind| kind.contains("json"))
        || body.first() == Some(&b'{');
    if !json {
        return 0;
    }
    #[derive(Deserialize)]
    struct Usage {
        total_tokens: Option<u64>,
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
    }
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<Usage>,
    }
    let Ok(WithUsage { usage: Some(usage) }) = serde_json::from_slice::<WithUsage>(body) else {
        return 0;
    };
    usage.total_tokens.unwrap_or_else(|| {
        [
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.input_tokens,
            usage.output_tokens,
        ]
        .into_iter()
        .flatten()
        .fold(0, u64::saturating_add)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn exact_pattern_matches_only_its_host_and_port() {
        let p = pattern("127.0.0.1:8080");
        assert!(p.matches("127.0.0.1", 8080));
        assert!(!p.matches("127.0.0.1", 8081));
        assert!(!p.matches("localhost", 8080));
        assert!(pattern("LocalHost:80").matches("localhost", 80));
    }

    #[test]
    fn wildcards_cover_subdomains_and_ports() {
        let p = pattern("*.example.com:443");
        assert!(p.matches("api.example.com", 443));
        assert!(p.matches("a.b.example.com", 443));
        assert!(!p.matches("example.com", 443));
        assert!(!p.matches("badexample.com", 443));
        assert!(!p.matches("api.example.com", 80));
        let any_port = pattern("127.0.0.1:*");
        assert!(any_port.matches("127.0.0.1", 1));
        assert!(any_port.matches("127.0.0.1", 65535));
        assert!(pattern("[::1]:80").matches("[::1]", 80));
    }

    #[test]
    fn bad_patterns_say_what_to_give() {
        for bad in [
            "example.com",
            "http://example.com:80",
            "*:80",
            "*.*.com:80",
            "ex ample.com:80",
            ":80",
            "example.com:0",
            "example.com:99999",
            "a*.com:80",
        ] {
            let error = bad.parse::<HostPattern>().unwrap_err();
            assert!(
                error.contains("give `host:port`") || error.contains('*'),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn pattern_round_trips_through_text() {
        for text in [
            "api.example.com:443",
            "*.example.com:443",
            "127.0.0.1:*",
            "[::1]:8080",
        ] {
            assert_eq!(pattern(text).to_string(), text);
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = http::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn reset_times_parse_in_the_providers_format() {
        assert_eq!(parse_reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_reset("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_reset("soon"), None);
    }

    #[test]
    fn usage_counts_openai_and_other_shapes() {
        let headers = http::HeaderMap::new();
        assert_eq!(
            usage_tokens(&headers, br#"{"usage":{"total_tokens":42}}"#),
            42
        );
        assert_eq!(
            usage_tokens(
                &headers,
                br#"{"usage":{"prompt_tokens":2,"completion_tokens":3}}"#
            ),
            5
        );
        assert_eq!(
            usage_tokens(
                &headers,
                br#"{"usage":{"input_tokens":7,"output_tokens":1}}"#
            ),
            8
        );
        assert_eq!(usage_tokens(&headers, b"not json"), 0);
        assert_eq!(usage_tokens(&headers, br#"{"usage":"lots"}"#), 0);
    }
}
