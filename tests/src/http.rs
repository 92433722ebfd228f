//! A loopback HTTP server and a TCP connection counter for tests of outbound
//! HTTP, and helpers that measure request rates.
//!
//! [`LoopbackServer`] serves fixed routes on `127.0.0.1` and records every
//! request it reads. [`ConnectionCounter`] accepts and closes TCP connections,
//! so that a test can show that nothing connected to a port off an
//! allow-list. [`max_in_window`] and [`span`] measure recorded arrival times.
//!
//! The routes of [`LoopbackServer`], where `any` accepts every method:
//!
//! | route | response |
//! | --- | --- |
//! | `POST /echo` | 200 `{"echo": BODY, "seq": N}`, or 400 for a body that is not JSON |
//! | `POST /batch` | 200 `[{"echo": ELEMENT}, ...]`, or 400 for a body that is not a JSON array |
//! | `POST /v1/chat/completions` | 200 in the OpenAI chat-completions shape, with `x-ratelimit-*` headers |
//! | `any /limited` | the first [`ServerOptions::limited_failures`] requests fail with `Retry-After`, later ones return 200 `{"ok":true}` |
//! | `any /always-429` | 429 with `Retry-After` |
//! | `any /redirect?to=URL` | 302 with `Location: URL` |
//! | `any /big?bytes=N` | 200 with a body of `N` bytes |
//! | `any /slow?ms=N` | 200 `{"ok":true}` after `N` milliseconds |
//! | `any /ok` | 200 `{"ok":true}` |
//!
//! Any other path returns 404. Request bodies are parsed whatever their
//! `Content-Type`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The largest body that `/big` sends, 256 MiB.
pub const MAX_BIG_BYTES: usize = 256 << 20;

/// The maximum delay of `/slow`, 60 s, so that a test ends on its own.
pub const MAX_SLOW_MS: u64 = 60_000;

/// Settings of a [`LoopbackServer`]. Each field's documentation gives its
/// default.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// How many requests to `/limited` fail before later ones succeed.
    /// Default 1.
    pub limited_failures: usize,
    /// The status of a failed `/limited` request, 429 or 503. Default 429.
    pub limited_status: u16,
    /// The `Retry-After` seconds of `/limited` failures and of `/always-429`,
    /// or `None` to send no `Retry-After`. Default `Some(1)`.
    pub retry_after_secs: Option<u64>,
    /// The `usage.prompt_tokens` of every chat completion. Default 70.
    pub prompt_tokens: u64,
    /// The `usage.completion_tokens` of every chat completion. Default 30, so
    /// that `usage.total_tokens` is 100.
    pub completion_tokens: u64,
    /// The `x-ratelimit-*` headers of every chat completion, or `None` to
    /// send none. Default [`RateLimitHeaders::default`].
    pub rate_limit_headers: Option<RateLimitHeaders>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            limited_failures: 1,
            limited_status: 429,
            retry_after_secs: Some(1),
            prompt_tokens: 70,
            completion_tokens: 30,
            rate_limit_headers: Some(RateLimitHeaders::default()),
        }
    }
}

/// Values of the OpenAI-style `x-ratelimit-*` headers. The server sends the
/// same values with every chat completion.
#[derive(Clone, Debug)]
pub struct RateLimitHeaders {
    /// `x-ratelimit-limit-requests`. Default 60.
    pub limit_requests: u64,
    /// `x-ratelimit-remaining-requests`. Default 59.
    pub remaining_requests: u64,
    /// `x-ratelimit-reset-requests`, a duration such as `1s` or `6m0s`.
    /// Default `1s`.
    pub reset_requests: String,
    /// `x-ratelimit-limit-tokens`. Default 10000.
    pub limit_tokens: u64,
    /// `x-ratelimit-remaining-tokens`. Default 9900.
    pub remaining_tokens: u64,
    /// `x-ratelimit-reset-tokens`, a duration such as `1s` or `20ms`.
    /// Default `1s`.
    pub reset_tokens: String,
}

impl Default for RateLimitHeaders {
    fn default() -> Self {
        Self {
            limit_requests: 60,
            remaining_requests: 59,
            reset_requests: "1s".to_owned(),
            limit_tokens: 10_000,
            remaining_tokens: 9_900,
            reset_tokens: "1s".to_owned(),
        }
    }
}

/// One request that a [`LoopbackServer`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method, such as `POST`.
    pub method: String,
    /// The path and query, such as `/big?bytes=10`.
    pub path: String,
    /// When the server received the request head, before it read the body.
    pub arrived: Instant,
    /// The length of the body in bytes.
    pub body_len: usize,
    /// The `Host` header, or `None` when the request had none.
    pub host: Option<String>,
}

/// An HTTP/1.1 server on `127.0.0.1` with the routes that the module
/// documentation lists, which records the requests it reads.
///
/// The server runs in a task on the current tokio runtime and shuts down
/// gracefully when dropped: it stops accepting at once and closes each
/// connection once the response to its request in flight is sent.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl LoopbackServer {
    /// Binds a free port on `127.0.0.1` and starts serving on it.
    ///
    /// # Panics
    ///
    /// Panics when `options.limited_status` is not 429 or 503, when a reset
    /// duration of `options.rate_limit_headers` is not a valid header value,
    /// when no port on `127.0.0.1` can be bound, or outside a tokio runtime.
    pub async fn start(options: ServerOptions) -> LoopbackServer {
        let state = Arc::new(ServerState::new(options));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("failed to bind a port on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");

        let app = router(Arc::clone(&state));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender ends the server as a sent stop does.
                    let _ = stopped.await;
                })
                .await
        });
        LoopbackServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Returns the address that the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `127.0.0.1:PORT`, the authority of the server's URLs.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Returns `http://127.0.0.1:PORT` followed by `path`, with a `/`
    /// put in front of a path that lacks one.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// Returns a copy of the requests read so far, in the order that the
    /// server finished reading their bodies. A request whose body failed to
    /// arrive in full is not recorded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests().clone()
    }

    /// Counts the requests whose path and query start with `path_prefix`.
    pub fn count(&self, path_prefix: &str) -> usize {
        self.state
            .requests()
            .iter()
            .filter(|request| request.path.starts_with(path_prefix))
            .count()
    }

    /// Returns the arrival times of the requests whose path and query start
    /// with `path_prefix`, for [`max_in_window`] and [`span`].
    pub fn arrivals(&self, path_prefix: &str) -> Vec<Instant> {
        self.state
            .requests()
            .iter()
            .filter(|request| request.path.starts_with(path_prefix))
            .map(|request| request.arrived)
            .collect()
    }

    /// Stops the server and waits until it has closed its port and every
    /// connection. A request in flight, such as one to `/slow`, gets its
    /// response first.
    ///
    /// # Panics
    ///
    /// Panics when the server's task panicked or its listener failed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the loopback server's task panicked")
                .expect("the loopback server's listener failed");
        }
    }
}

impl Drop for LoopbackServer {
    /// Starts a graceful shutdown and returns without waiting for it.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TCP listener on `127.0.0.1` that accepts connections, counts them and
/// closes them at once, without reading a byte. It stops when dropped.
#[derive(Debug)]
pub struct ConnectionCounter {
    addr: SocketAddr,
    shared: Arc<CounterShared>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct CounterShared {
    accepted: AtomicUsize,
    /// The local addresses of the counter's own probe connections, each with
    /// a sender that the accept loop fires when it accepts that probe.
    probes: Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>,
}

impl ConnectionCounter {
    /// Binds a free port on `127.0.0.1` and starts accepting on it.
    ///
    /// # Panics
    ///
    /// Panics when no port on `127.0.0.1` can be bound, or outside a tokio
    /// runtime.
    pub async fn start() -> ConnectionCounter {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("failed to bind a port on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(CounterShared::default());
        let task = tokio::spawn(accept_and_count(listener, Arc::clone(&shared)));
        ConnectionCounter { addr, shared, task }
    }

    /// Returns the address that the counter listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Returns `http://127.0.0.1:PORT` followed by `path`, with a `/` put in
    /// front of a path that lacks one.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// Counts the connections accepted so far, including every connection
    /// whose `connect` returned before this call.
    ///
    /// The kernel completes a handshake before the accept loop accepts the
    /// connection, so the count first waits for a probe connection of its
    /// own, which is not counted. Linux's accept queue is first in, first
    /// out, so every earlier connection has been accepted by then.
    ///
    /// # Panics
    ///
    /// Panics when the probe cannot connect, or when the accept loop ended.
    pub async fn connections(&self) -> usize {
        let socket = TcpSocket::new_v4().expect("failed to create a TCP socket");
        socket
            .bind((Ipv4Addr::LOCALHOST, 0).into())
            .expect("failed to bind a probe socket on 127.0.0.1");
        let local = socket.local_addr().expect("a bound socket has an address");

        let (accepted_tx, accepted_rx) = oneshot::channel();
        lock(&self.shared.probes).insert(local, accepted_tx);
        let probe = socket
            .connect(self.addr)
            .await
            .expect("the probe failed to connect to the connection counter");
        accepted_rx
            .await
            .expect("the connection counter's accept loop ended");
        drop(probe);

        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_and_count(listener: TcpListener, shared: Arc<CounterShared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Errors such as running out of file descriptors pass, so
                // the loop waits a little instead of spinning.
                eprintln!("connection counter failed to accept: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        drop(stream);

        let probe = lock(&shared.probes).remove(&peer);
        match probe {
            Some(accepted) => {
                let _ = accepted.send(());
            }
            None => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Returns the maximum number of instants in any half-open window
/// `[t, t + window)`, so that evenly spaced requests at exactly `n` per
/// `window` give `n`. Returns 0 for an empty slice or a zero window.
///
/// The times need not be sorted. A sliding window over a sorted copy makes
/// the result exact.
pub fn max_in_window(times: &[Instant], window: Duration) -> usize {
    if window.is_zero() {
        return 0;
    }
    let mut sorted = times.to_vec();
    sorted.sort_unstable();

    let mut max = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        // `start` stops at `end` at the latest, since a zero distance is
        // below any positive window.
        while sorted[end] - sorted[start] >= window {
            start += 1;
        }
        max = max.max(end - start + 1);
    }
    max
}

/// Returns the time from the earliest to the latest instant, or zero for
/// fewer than two instants.
pub fn span(times: &[Instant]) -> Duration {
    match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    }
}

/// The state that the routes share.
#[derive(Debug)]
struct ServerState {
    options: ServerOptions,
    limited_status: StatusCode,
    chat_headers: HeaderMap,
    requests: Mutex<Vec<RecordedRequest>>,
    echoes: AtomicU64,
    completions: AtomicU64,
    limited_requests: AtomicUsize,
}

impl ServerState {
    fn new(options: ServerOptions) -> ServerState {
        let limited_status = match options.limited_status {
            429 => StatusCode::TOO_MANY_REQUESTS,
            503 => StatusCode::SERVICE_UNAVAILABLE,
            other => panic!("invalid `limited_status` {other}; use 429 or 503"),
        };
        let chat_headers = options
            .rate_limit_headers
            .as_ref()
            .map(rate_limit_header_map)
            .unwrap_or_default();
        ServerState {
            options,
            limited_status,
            chat_headers,
            requests: Mutex::new(Vec::new()),
            echoes: AtomicU64::new(0),
            completions: AtomicU64::new(0),
            limited_requests: AtomicUsize::new(0),
        }
    }

    fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        lock(&self.requests)
    }

    fn retry_after(&self) -> Option<[(HeaderName, HeaderValue); 1]> {
        let secs = self.options.retry_after_secs?;
        Some([(header::RETRY_AFTER, HeaderValue::from(secs))])
    }
}

/// Locks `mutex`, also after a panic of another holder, since each holder
/// leaves the data whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn rate_limit_header_map(values: &RateLimitHeaders) -> HeaderMap {
    let reset = |name: &str, value: &str| {
        HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("invalid `{name}` {value:?}; use a duration such as `1s`"))
    };
    let entries = [
        (
            "x-ratelimit-limit-requests",
            HeaderValue::from(values.limit_requests),
        ),
        (
            "x-ratelimit-remaining-requests",
            HeaderValue::from(values.remaining_requests),
        ),
        (
            "x-ratelimit-reset-requests",
            reset("reset_requests", &values.reset_requests),
        ),
        (
            "x-ratelimit-limit-tokens",
            HeaderValue::from(values.limit_tokens),
        ),
        (
            "x-ratelimit-remaining-tokens",
            HeaderValue::from(values.remaining_tokens),
        ),
        (
            "x-ratelimit-reset-tokens",
            reset("reset_tokens", &values.reset_tokens),
        ),
    ];
    entries
        .into_iter()
        .map(|(name, value)| (HeaderName::from_static(name), value))
        .collect()
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route("/batch", post(batch))
        .route("/v1/chat/completions", post(chat_completion))
        .route("/limited", any(limited))
        .route("/always-429", any(always_429))
        .route("/redirect", any(redirect))
        .route("/big", any(big))
        .route("/slow", any(slow))
        .route("/ok", any(ok))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Records the request, then passes it on with its body read into memory.
async fn record(State(state): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            let message = format!("failed to read the request body: {error}");
            eprintln!("loopback server: {} {}: {message}", parts.method, parts.uri);
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };

    let path = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let host = parts
        .headers
        .get(header::HOST)
        .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned());
    state.requests().push(RecordedRequest {
        method: parts.method.to_string(),
        path,
        arrived,
        body_len: body.len(),
        host,
    });

    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn ok_body() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn echo(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return bad_request(format!(
                "invalid JSON body for `/echo`: {error}; send a JSON value"
            ));
        }
    };
    let seq = state.echoes.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({ "echo": value, "seq": seq })).into_response()
}

async fn batch(body: Bytes) -> Response {
    let elements = match serde_json::from_slice(&body) {
        Ok(Value::Array(elements)) => elements,
        Ok(other) => {
            return bad_request(format!(
                "invalid body for `/batch`: expected a JSON array, got {}",
                json_kind(&other)
            ));
        }
        Err(error) => {
            return bad_request(format!(
                "invalid JSON body for `/batch`: {error}; send a JSON array"
            ));
        }
    };
    let echoes: Vec<Value> = elements
        .into_iter()
        .map(|element| json!({ "echo": element }))
        .collect();
    Json(Value::Array(echoes)).into_response()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of a chat-completions request that the server reads.
#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    /// A string, or an array of parts such as `{"type":"text","text":..}`.
    #[serde(default)]
    content: Value,
}

impl ChatMessage {
    /// Returns the text of the content: the string itself, or the `text` of
    /// each part joined.
    fn text(&self) -> String {
        match &self.content {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        }
    }
}

async fn chat_completion(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return bad_request(format!(
                "invalid body for `/v1/chat/completions`: {error}; send an object with \
                 `model` and `messages`"
            ));
        }
    };
    let last_user_text = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == "user")
        .map(ChatMessage::text)
        .unwrap_or_default();

    let number = state.completions.fetch_add(1, Ordering::SeqCst) + 1;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let prompt_tokens = state.options.prompt_tokens;
    let completion_tokens = state.options.completion_tokens;
    let completion = json!({
        "id": format!("chatcmpl-{number}"),
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": format!("echo: {last_user_text}") },
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    });
    (state.chat_headers.clone(), Json(completion)).into_response()
}

async fn limited(State(state): State<Arc<ServerState>>) -> Response {
    let earlier = state.limited_requests.fetch_add(1, Ordering::SeqCst);
    let failures = state.options.limited_failures;
    if earlier >= failures {
        return ok_body().into_response();
    }
    let message = format!(
        "request {} of the first {failures} to `/limited` is rejected",
        earlier + 1
    );
    (state.limited_status, state.retry_after(), message).into_response()
}

async fn always_429(State(state): State<Arc<ServerState>>) -> Response {
    let message = "every request to `/always-429` is rejected";
    (StatusCode::TOO_MANY_REQUESTS, state.retry_after(), message).into_response()
}

#[derive(Deserialize)]
struct RedirectQuery {
    to: String,
}

async fn redirect(Query(query): Query<RedirectQuery>) -> Response {
    match HeaderValue::from_str(&query.to) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => bad_request(format!(
            "invalid `to` {:?} for `/redirect`: not a valid header value",
            query.to
        )),
    }
}

#[derive(Deserialize)]
struct BigQuery {
    bytes: usize,
}

async fn big(Query(query): Query<BigQuery>) -> Response {
    if query.bytes > MAX_BIG_BYTES {
        return bad_request(format!(
            "invalid `bytes` {} for `/big`: the maximum is {MAX_BIG_BYTES}",
            query.bytes
        ));
    }
    vec![b'x'; query.bytes].into_response()
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(Query(query): Query<SlowQuery>) -> Response {
    if query.ms > MAX_SLOW_MS {
        return bad_request(format!(
            "invalid `ms` {} for `/slow`: the maximum is {MAX_SLOW_MS}",
            query.ms
        ));
    }
    tokio::time::sleep(Duration::from_millis(query.ms)).await;
    ok_body().into_response()
}

async fn ok() -> Json<Value> {
    ok_body()
}

async fn not_found(request: Request) -> Response {
    let message = format!("no route for `{}`", request.uri().path());
    (StatusCode::NOT_FOUND, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A response read by [`send`].
    struct Reply {
        status: u16,
        /// Header names in lowercase, with their values.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|error| {
                panic!(
                    "invalid JSON response {:?}: {error}",
                    String::from_utf8_lossy(&self.body)
                )
            })
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    /// Sends one HTTP/1.1 request with `Connection: close` and reads the
    /// response to the end of the stream.
    async fn send(addr: SocketAddr, method: &str, target: &str, host: &str, body: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("writes");
        stream.write_all(body).await.expect("writes");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("reads");
        parse_response(&raw)
    }

    async fn get(server: &LoopbackServer, target: &str) -> Reply {
        send(server.addr(), "GET", target, &server.authority(), b"").await
    }

    async fn post_body(server: &LoopbackServer, target: &str, body: &[u8]) -> Reply {
        send(server.addr(), "POST", target, &server.authority(), body).await
    }

    fn parse_response(raw: &[u8]) -> Reply {
        let end = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("the response has a complete head");
        let head = std::str::from_utf8(&raw[..end]).expect("the head is UTF-8");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("the head has a status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("the status line has a code");
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header has a colon");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();

        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
        let body = if chunked {
            decode_chunked(rest)
        } else {
            rest.to_vec()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn decode_chunked(mut rest: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = rest
                .windows(2)
                .position(|window| window == b"\r\n")
                .expect("a chunk has a size line");
            let size_line = std::str::from_utf8(&rest[..line_end]).expect("a size is ASCII");
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).expect("a size is hexadecimal");
            if size == 0 {
                return body;
            }
            let start = line_end + 2;
            body.extend_from_slice(&rest[start..start + size]);
            rest = &rest[start + size + 2..];
        }
    }

    #[tokio::test]
    async fn echo_returns_body_and_sequence() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let first = post_body(&server, "/echo", br#"{"a":[1,2]}"#).await;
        let second = post_body(&server, "/echo", b"\"text\"").await;

        assert_eq!(first.status, 200);
        assert_eq!(first.json(), json!({ "echo": { "a": [1, 2] }, "seq": 1 }));
        assert_eq!(second.status, 200);
        assert_eq!(second.json(), json!({ "echo": "text", "seq": 2 }));
    }

    #[tokio::test]
    async fn echo_rejects_invalid_json() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let reply = post_body(&server, "/echo", b"{not json").await;

        assert_eq!(reply.status, 400);
        assert!(
            reply.text().contains("invalid JSON body for `/echo`"),
            "{}",
            reply.text()
        );
    }

    #[tokio::test]
    async fn batch_echoes_each_element() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let reply = post_body(&server, "/batch", br#"[1,"two",{"three":3}]"#).await;

        assert_eq!(reply.status, 200);
        let expected = json!([{ "echo": 1 }, { "echo": "two" }, { "echo": { "three": 3 } }]);
        assert_eq!(reply.json(), expected);
    }

    #[tokio::test]
    async fn batch_rejects_non_array() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let object = post_body(&server, "/batch", br#"{"a":1}"#).await;
        let garbage = post_body(&server, "/batch", b"[1,").await;

        assert_eq!(object.status, 400);
        assert!(
            object
                .text()
                .contains("expected a JSON array, got an object"),
            "{}",
            object.text()
        );
        assert_eq!(garbage.status, 400);
        assert!(
            garbage.text().contains("invalid JSON body for `/batch`"),
            "{}",
            garbage.text()
        );
    }

    #[tokio::test]
    async fn chat_completion_has_openai_shape() {
        let server = LoopbackServer::start(ServerOptions::default()).await;
        let request = json!({
            "model": "gpt-test",
            "messages": [
                { "role": "system", "content": "be brief" },
                { "role": "user", "content": "first" },
                { "role": "assistant", "content": "ignored" },
                { "role": "user", "content": [{ "type": "text", "text": "last" }] },
            ],
        });

        let reply = post_body(
            &server,
            "/v1/chat/completions",
            request.to_string().as_bytes(),
        )
        .await;

        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body["id"], "chatcmpl-1");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-test");
        assert_eq!(body["choices"][0]["index"], 0);
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "echo: last");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 70);
        assert_eq!(body["usage"]["completion_tokens"], 30);
        assert_eq!(body["usage"]["total_tokens"], 100);
        assert_eq!(reply.header("x-ratelimit-limit-requests"), Some("60"));
        assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some("59"));
        assert_eq!(reply.header("x-ratelimit-reset-requests"), Some("1s"));
        assert_eq!(reply.header("x-ratelimit-limit-tokens"), Some("10000"));
        assert_eq!(reply.header("x-ratelimit-remaining-tokens"), Some("9900"));
        assert_eq!(reply.header("x-ratelimit-reset-tokens"), Some("1s"));
    }

    #[tokio::test]
    async fn chat_completion_follows_options() {
        let options = ServerOptions {
            prompt_tokens: 5,
            completion_tokens: 7,
            rate_limit_headers: None,
            ..ServerOptions::default()
        };
        let server = LoopbackServer::start(options).await;
        let request = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });

        let reply = post_body(
            &server,
            "/v1/chat/completions",
            request.to_string().as_bytes(),
        )
        .await;

        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body["choices"][0]["message"]["content"], "echo: hi");
        assert_eq!(body["usage"]["total_tokens"], 12);
        assert_eq!(reply.header("x-ratelimit-limit-requests"), None);
        assert_eq!(reply.header("x-ratelimit-reset-tokens"), None);
    }

    #[tokio::test]
    async fn chat_completion_rejects_missing_model() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let reply = post_body(&server, "/v1/chat/completions", br#"{"messages":[]}"#).await;

        assert_eq!(reply.status, 400);
        assert!(
            reply.text().contains("missing field `model`"),
            "{}",
            reply.text()
        );
    }

    #[tokio::test]
    async fn limited_fails_first_requests_then_succeeds() {
        let options = ServerOptions {
            limited_failures: 2,
            limited_status: 503,
            retry_after_secs: Some(3),
            ..ServerOptions::default()
        };
        let server = LoopbackServer::start(options).await;

        let mut replies = Vec::new();
        for _ in 0..3 {
            replies.push(get(&server, "/limited").await);
        }

        for reply in &replies[..2] {
            assert_eq!(reply.status, 503);
            assert_eq!(reply.header("retry-after"), Some("3"));
            assert!(reply.text().contains("is rejected"), "{}", reply.text());
        }
        assert_eq!(replies[2].status, 200);
        assert_eq!(replies[2].header("retry-after"), None);
        assert_eq!(replies[2].json(), json!({ "ok": true }));
        assert_eq!(server.count("/limited"), 3);
    }

    #[tokio::test]
    async fn limited_without_retry_after() {
        let options = ServerOptions {
            retry_after_secs: None,
            ..ServerOptions::default()
        };
        let server = LoopbackServer::start(options).await;

        let reply = get(&server, "/limited").await;

        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), None);
    }

    #[tokio::test]
    async fn always_429_never_succeeds() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        for _ in 0..3 {
            let reply = post_body(&server, "/always-429", b"{}").await;
            assert_eq!(reply.status, 429);
            assert_eq!(reply.header("retry-after"), Some("1"));
        }
    }

    #[tokio::test]
    async fn redirect_sets_location() {
        let server = LoopbackServer::start(ServerOptions::default()).await;
        let target = server.url("/ok");

        let reply = get(&server, &format!("/redirect?to={target}")).await;
        let missing = get(&server, "/redirect").await;

        assert_eq!(reply.status, 302);
        assert_eq!(reply.header("location"), Some(target.as_str()));
        assert_eq!(missing.status, 400);
    }

    #[tokio::test]
    async fn big_returns_requested_bytes() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let reply = get(&server, "/big?bytes=100000").await;
        let empty = get(&server, "/big?bytes=0").await;
        let too_big = get(&server, &format!("/big?bytes={}", MAX_BIG_BYTES + 1)).await;

        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), 100_000);
        assert!(reply.body.iter().all(|&byte| byte == b'x'));
        assert_eq!(reply.header("content-length"), Some("100000"));
        assert_eq!(empty.status, 200);
        assert!(empty.body.is_empty());
        assert_eq!(too_big.status, 400);
    }

    #[tokio::test]
    async fn slow_waits_before_answering() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let started = Instant::now();
        let reply = get(&server, "/slow?ms=200").await;
        let elapsed = started.elapsed();
        let too_slow = get(&server, &format!("/slow?ms={}", MAX_SLOW_MS + 1)).await;

        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), json!({ "ok": true }));
        assert!(
            elapsed >= Duration::from_millis(200),
            "answered after {elapsed:?}"
        );
        assert_eq!(too_slow.status, 400);
    }

    #[tokio::test]
    async fn ok_and_unknown_paths() {
        let server = LoopbackServer::start(ServerOptions::default()).await;

        let ok = get(&server, "/ok").await;
        let unknown = get(&server, "/nothing-here").await;

        assert_eq!(ok.status, 200);
        assert_eq!(ok.json(), json!({ "ok": true }));
        assert_eq!(unknown.status, 404);
        assert!(
            unknown.text().contains("/nothing-here"),
            "{}",
            unknown.text()
        );
    }

    #[tokio::test]
    async fn server_records_each_request() {
        let server = LoopbackServer::start(ServerOptions::default()).await;
        let before = Instant::now();

        post_body(&server, "/echo", b"[1,2,3]").await;
        send(server.addr(), "GET", "/ok?x=1", "plugin.invalid:8080", b"").await;
        get(&server, "/nothing-here").await;

        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/echo");
        assert_eq!(requests[0].body_len, 7);
        assert_eq!(requests[0].host, Some(server.authority()));
        assert_eq!(requests[1].method, "GET");
        assert_eq!(requests[1].path, "/ok?x=1");
        assert_eq!(requests[1].body_len, 0);
        assert_eq!(requests[1].host.as_deref(), Some("plugin.invalid:8080"));
        assert_eq!(requests[2].path, "/nothing-here");
        assert!(requests[0].arrived >= before);
        assert!(requests[1].arrived >= requests[0].arrived);
        assert_eq!(server.count("/ok"), 1);
        assert_eq!(server.count("/"), 3);
        assert_eq!(server.count("/limited"), 0);
        assert_eq!(server.arrivals("/ok"), vec![requests[1].arrived]);
    }

    #[tokio::test]
    async fn url_and_authority_name_loopback() {
        let server = LoopbackServer::start(ServerOptions::default()).await;
        let port = server.addr().port();

        assert!(server.addr().ip().is_loopback());
        assert_eq!(server.authority(), format!("127.0.0.1:{port}"));
        assert_eq!(server.url("/echo"), format!("http://127.0.0.1:{port}/echo"));
        assert_eq!(server.url("echo"), format!("http://127.0.0.1:{port}/echo"));
    }

    #[tokio::test]
    async fn shutdown_closes_port() {
        let server = LoopbackServer::start(ServerOptions::default()).await;
        let addr = server.addr();
        assert_eq!(get(&server, "/ok").await.status, 200);

        server.shutdown().await;

        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn drop_stops_server() {
        let server = LoopbackServer::start(ServerOptions::default()).await;
        let addr = server.addr();

        drop(server);

        // The server's task closes the port once it runs, so the test polls
        // for a bounded time.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{addr} still accepts 5 s after the drop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn connection_counter_counts_connections() {
        let counter = ConnectionCounter::start().await;
        assert!(counter.addr().ip().is_loopback());
        assert_eq!(counter.connections().await, 0);

        for _ in 0..3 {
            let mut stream = TcpStream::connect(counter.addr()).await.expect("connects");
            // The counter closes the connection without sending anything.
            let mut buffer = Vec::new();
            let _ = stream.read_to_end(&mut buffer).await;
            assert!(buffer.is_empty());
        }

        assert_eq!(counter.connections().await, 3);
        assert_eq!(counter.connections().await, 3);
        assert_eq!(
            counter.authority(),
            format!("127.0.0.1:{}", counter.addr().port())
        );
    }

    #[tokio::test]
    async fn connection_counter_counts_open_connections() {
        let counter = ConnectionCounter::start().await;

        // The streams stay open, so only the accept loop's count can show
        // them, and `connections` must wait for it.
        let mut streams = Vec::new();
        for _ in 0..5 {
            streams.push(TcpStream::connect(counter.addr()).await.expect("connects"));
        }

        assert_eq!(counter.connections().await, 5);
    }

    fn at(base: Instant, millis: &[u64]) -> Vec<Instant> {
        millis
            .iter()
            .map(|&ms| base + Duration::from_millis(ms))
            .collect()
    }

    #[test]
    fn max_in_window_counts_half_open_windows() {
        let base = Instant::now();
        let even = at(base, &[0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);

        assert_eq!(max_in_window(&even, Duration::from_millis(1000)), 10);
        assert_eq!(max_in_window(&even, Duration::from_millis(900)), 9);
        assert_eq!(max_in_window(&even, Duration::from_millis(250)), 3);
        assert_eq!(max_in_window(&even, Duration::from_millis(100)), 1);
        assert_eq!(max_in_window(&even, Duration::from_millis(101)), 2);
        assert_eq!(max_in_window(&even, Duration::from_millis(1)), 1);
    }

    #[test]
    fn max_in_window_finds_bursts_in_unsorted_times() {
        let base = Instant::now();
        let times = at(base, &[900, 0, 1000, 50, 1000, 10, 1000, 2000, 1999, 1000]);

        // Four at 1000 ms; with 900 ms before them, five in 101 ms.
        assert_eq!(max_in_window(&times, Duration::from_millis(1)), 4);
        assert_eq!(max_in_window(&times, Duration::from_millis(100)), 4);
        assert_eq!(max_in_window(&times, Duration::from_millis(101)), 5);
        assert_eq!(max_in_window(&times, Duration::from_secs(10)), 10);
    }

    #[test]
    fn max_in_window_of_nothing_is_zero() {
        let base = Instant::now();

        assert_eq!(max_in_window(&[], Duration::from_secs(1)), 0);
        assert_eq!(max_in_window(&at(base, &[0, 0]), Duration::ZERO), 0);
        assert_eq!(max_in_window(&at(base, &[5]), Duration::from_secs(1)), 1);
    }

    #[test]
    fn span_measures_first_to_last() {
        let base = Instant::now();

        assert_eq!(span(&[]), Duration::ZERO);
        assert_eq!(span(&at(base, &[7])), Duration::ZERO);
        assert_eq!(
            span(&at(base, &[300, 0, 1250, 40])),
            Duration::from_millis(1250)
        );
    }
}
