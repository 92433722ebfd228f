//! What a store holds for one guest: its WASI context with least authority,
//! the limiter, the `log` and `usage` imports, the hooks of its outbound
//! requests, and the captured stdout and stderr.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::log::{self, Level};
use super::bindings::usage;
use super::fault::{FaultEvidence, RUST_OOM_MESSAGE};
use super::limits::Limiter;
use super::outbound::{CallRequests, RequestHooks};

/// The maximum number of log records a guest may write in one call; later
/// ones are counted and dropped.
pub const MAX_LOG_RECORDS_PER_CALL: u32 = 256;
/// The log records a second that one tenant's plugin may write across all
/// its calls, after a burst of [`MAX_LOG_RECORDS_PER_CALL`].
pub const LOG_RECORDS_PER_SECOND: u32 = 100;
/// The maximum number of characters kept of a log message.
pub const MAX_LOG_MESSAGE_CHARS: usize = 1024;
/// The maximum number of fields kept of a log record.
pub const MAX_LOG_FIELDS: usize = 16;
/// The maximum number of characters kept of a field key or value.
pub const MAX_LOG_FIELD_CHARS: usize = 256;
/// The maximum number of bytes kept of stdout, and separately of stderr, in
/// one call.
pub const MAX_CAPTURED_OUTPUT_BYTES: usize = 64 << 10;

/// A directory the operator grants a plugin, mounted read-only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectoryGrant {
    /// The path of the directory inside the guest, such as `/model`.
    pub guest_path: String,
    /// The directory on the host.
    pub host_path: PathBuf,
}

/// The rate limit on guest log records, keyed by tenant and plugin.
pub(crate) type LogLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Creates the log limiter: [`LOG_RECORDS_PER_SECOND`] with a burst of
/// [`MAX_LOG_RECORDS_PER_CALL`].
pub(crate) fn log_limiter() -> LogLimiter {
    let rate = std::num::NonZeroU32::new(LOG_RECORDS_PER_SECOND).expect("the rate is not 0");
    let burst = std::num::NonZeroU32::new(MAX_LOG_RECORDS_PER_CALL).expect("the burst is not 0");
    LogLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
}

/// Names that appear in every log record a guest writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct GuestLabels {
    pub tenant: String,
    pub plugin: String,
    pub function: String,
}

/// The state of one store.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub labels: GuestLabels,
    log_limiter: Arc<LogLimiter>,
    log_key: String,
    pub log_records: u32,
    pub log_dropped: u32,
    /// When the current guest entry must end; clock subscriptions are cut
    /// short at this instant.
    pub deadline: Option<std::time::Instant>,
    http: wasmtime_wasi_http::WasiHttpCtx,
    pub requests: RequestHooks,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}

impl StoreState {
    /// Builds a store state whose guest has no environment, no arguments, no
    /// network, and only the granted directories, read-only.
    pub fn new(
        grants: &[DirectoryGrant],
        memory_bytes: u64,
        labels: GuestLabels,
        log_limiter: Arc<LogLimiter>,
        requests: RequestHooks,
    ) -> wasmtime::Result<Self> {
        let stdout = CapturedOutput::new(MAX_CAPTURED_OUTPUT_BYTES);
        let stderr = CapturedOutput::new(MAX_CAPTURED_OUTPUT_BYTES);
        let mut builder = WasiCtx::builder();
        builder.stdout(stdout.clone()).stderr(stderr.clone());
        builder
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // Calls run on a thread reserved for blocking work, so file reads need
        // no hand-off to another thread.
        builder.allow_blocking_current_thread(true);
        for grant in grants {
            builder.preopened_dir(&grant.host_path, &grant.guest_path, FsPerms::ReadOnly)?;
        }
        Ok(StoreState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            log_key: format!("{}/{}", labels.tenant, labels.plugin),
            log_limiter,
            labels,
            log_records: 0,
            log_dropped: 0,
            deadline: None,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            requests,
            stdout,
            stderr,
        })
    }

    /// Returns what the store saw that helps classify a failed call.
    pub fn fault_evidence(&self) -> FaultEvidence {
        FaultEvidence {
            growth_denied: self.limiter.growth_denied,
            oom_message: self.stderr.contains(RUST_OOM_MESSAGE),
        }
    }

    /// The instant the current guest entry must end: its deadline pushed
    /// back by the time its requests waited for pool permits, since a
    /// guest does not control how long its pool makes it wait.
    pub fn effective_deadline(&self) -> Option<std::time::Instant> {
        Some(self.deadline? + self.requests.call.pool_wait())
    }

    /// Returns the requests of the current call.
    pub fn call_requests(&self) -> &Arc<CallRequests> {
        &self.requests.call
    }

    /// Starts a new call on a warm instance.
    pub fn reset_call(
        &mut self,
        memory_bytes: u64,
        current_memory: usize,
        function: &str,
        requests: RequestHooks,
    ) {
        self.limiter.reset(memory_bytes, current_memory);
        self.labels.function = function.to_owned();
        self.requests = requests;
        self.log_records = 0;
        self.log_dropped = 0;
        self.stdout.clear();
        self.stderr.clear();
    }

    /// Writes what the guest printed to the host log, sanitized, and a count
    /// of dropped log records.
    pub fn flush_output(&mut self) {
        let labels = &self.labels;
        for (stream, output) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (text, dropped) = output.take();
            for line in text.lines().filter(|line| !line.is_empty()) {
                tracing::debug!(
                    target: "sandtable::guest",
                    tenant = %labels.tenant,
                    plugin = %labels.plugin,
                    function = %labels.function,
                    stream,
                    "{}",
                    sanitize(line, MAX_LOG_MESSAGE_CHARS)
                );
            }
            if dropped > 0 {
                tracing::info!(
                    target: "sandtable::guest",
                    tenant = %labels.tenant,
                    plugin = %labels.plugin,
                    function = %labels.function,
                    stream,
                    dropped_bytes = dropped,
                    "guest output over the capture cap was dropped"
                );
            }
        }
        if self.log_dropped > 0 {
            tracing::info!(
                target: "sandtable::guest",
                tenant = %labels.tenant,
                plugin = %labels.plugin,
                function = %labels.function,
                dropped_records = self.log_dropped,
                "guest log records over the rate limit were dropped"
            );
            self.log_dropped = 0;
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for StoreState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.requests,
        }
    }
}

impl usage::Host for StoreState {
    fn report_tokens(&mut self, tokens: u64) {
        let reported = &self.requests.call.reported_tokens;
        let _ = reported.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |sum| Some(sum.saturating_add(tokens)),
        );
    }
}

impl log::Host for StoreState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let over_call_cap = self.log_records >= MAX_LOG_RECORDS_PER_CALL;
        if over_call_cap || self.log_limiter.check_key(&self.log_key).is_err() {
            self.log_dropped = self.log_dropped.saturating_add(1);
            return;
        }
        self.log_records += 1;
        let message = sanitize(&message, MAX_LOG_MESSAGE_CHARS);
        let fields = sanitize_fields(&fields);
        let labels = &self.labels;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "sandtable::guest",
                    $level,
                    tenant = %labels.tenant,
                    plugin = %labels.plugin,
                    function = %labels.function,
                    fields = %fields,
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
    }
}

/// The `HasData` marker for the `log` import.
pub(crate) struct LogImport;

impl HasData for LogImport {
    type Data<'a> = &'a mut StoreState;
}

/// Adds the host's imports to `linker`: `log`, `usage`, the WASI interfaces
/// a guest may use, and `wasi:http`, whose requests go only to the hosts on
/// the plugin's allow-list. `wasi:sockets` is left out, so a component
/// importing it fails at load with the import named.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    log::add_to_linker::<StoreState, LogImport>(linker, |state| state)?;
    usage::add_to_linker::<StoreState, LogImport>(linker, |state| state)?;
    wasi_to_linker(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)
}

fn wasi_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
    use wasmtime_wasi::random::WasiRandom;

    type T = StoreState;
    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, IoImport>(l, |t| &mut t.table)?;
    sync::io::poll::add_to_linker::<T, IoImport>(l, |t| &mut t.table)?;
    sync::io::streams::add_to_linker::<T, IoImport>(l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, DeadlineClocks>(l, |t| DeadlineClock {
        deadline: t.effective_deadline(),
        inner: t.clocks(),
    })?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    // TODO: opening or reading a FIFO or device inside a granted directory
    // blocks in the host past the deadline. Only regular files and
    // directories should be opened.
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    Ok(())
}

/// The `HasData` marker for the monotonic clock that stops at the deadline.
struct DeadlineClocks;

impl HasData for DeadlineClocks {
    type Data<'a> = DeadlineClock<'a>;
}

/// `wasi:clocks/monotonic-clock` with every subscription cut short at the
/// call's deadline.
///
/// Epoch interruption only stops a guest that is running wasm code, so a
/// guest asleep in `wasi:io/poll` would otherwise wait out its own timeout.
/// Waking it at the deadline returns it to wasm code, where the next epoch
/// check traps.
struct DeadlineClock<'a> {
    inner: wasmtime_wasi::clocks::WasiClocksCtxView<'a>,
    deadline: Option<std::time::Instant>,
}

impl DeadlineClock<'_> {
    /// Shortens `nanos` so that it ends 1 ms past the deadline at the latest,
    /// leaving the epoch ticker time to fire first.
    fn clamp(&self, nanos: u64) -> u64 {
        let Some(deadline) = self.deadline else {
            return nanos;
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now())
            + std::time::Duration::from_millis(1);
        nanos.min(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host for DeadlineClock<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        self.inner.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        self.inner.resolution()
    }

    fn subscribe_instant(
        &mut self,
        when: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        let now = self.inner.now()?;
        let nanos = self.clamp(when.saturating_sub(now));
        self.inner.subscribe_duration(nanos)
    }

    fn subscribe_duration(
        &mut self,
        nanos: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        let nanos = self.clamp(nanos);
        self.inner.subscribe_duration(nanos)
    }
}

struct IoImport;

impl HasData for IoImport {
    type Data<'a> = &'a mut ResourceTable;
}

/// Escapes control characters, line separators and bidirectional controls,
/// and caps the length at `max_chars` characters, so that a guest's text
/// cannot start a new log line, move the terminal's cursor or reverse the
/// text around it.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_add(16)));
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            let rest = text.chars().count() - max_chars;
            out.push_str(&format!("… ({rest} more characters)"));
            break;
        }
        if super::describe::is_unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn sanitize_fields(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in fields.iter().take(MAX_LOG_FIELDS) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&sanitize(key, MAX_LOG_FIELD_CHARS));
        out.push('=');
        out.push_str(&format!("{:?}", sanitize(value, MAX_LOG_FIELD_CHARS)));
    }
    if fields.len() > MAX_LOG_FIELDS {
        out.push_str(&format!(
            " … ({} more fields)",
            fields.len() - MAX_LOG_FIELDS
        ));
    }
    out
}

/// A stdout or stderr sink that keeps the first bytes up to a cap and counts
/// the rest, so a chatty guest is never failed for writing too much.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    buffer: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

impl CapturedOutput {
    fn new(capacity: usize) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Captured {
                buffer: Vec::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = captured.capacity - captured.buffer.len();
        let kept = bytes.len().min(room);
        captured.buffer.extend_from_slice(&bytes[..kept]);
        captured.dropped += (bytes.len() - kept) as u64;
    }

    /// Whether the text so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        let captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&captured.buffer).contains(needle)
    }

    /// Removes and returns the text so far and the count of dropped bytes.
    fn take(&self) -> (String, u64) {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&captured.buffer).into_owned();
        captured.buffer.clear();
        let dropped = std::mem::take(&mut captured.dropped);
        (text, dropped)
    }

    fn clear(&self) {
        let _ = self.take();
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_control_characters() {
        let text = sanitize("line\nforged\x1b[31m\r", 100);
        assert_eq!(text, "line\\nforged\\u{1b}[31m\\r");
    }

    #[test]
    fn sanitize_escapes_separators_and_bidi_controls() {
        assert_eq!(
            sanitize("a\u{2028}b\u{202e}c", 100),
            "a\\u{2028}b\\u{202e}c"
        );
    }

    #[test]
    fn sanitize_caps_length() {
        let text = sanitize(&"x".repeat(10), 4);
        assert_eq!(text, "xxxx… (6 more characters)");
    }

    #[test]
    fn sanitize_without_a_cap() {
        assert_eq!(sanitize("a\tb", usize::MAX), "a\\tb");
    }

    #[test]
    fn sanitize_fields_caps_count_and_quotes_values() {
        let fields: Vec<_> = (0..20)
            .map(|i| (format!("k{i}"), "v\n".to_owned()))
            .collect();
        let text = sanitize_fields(&fields);
        assert!(text.starts_with("k0=\"v\\\\n\" k1="), "{text}");
        assert!(text.ends_with("… (4 more fields)"), "{text}");
    }

    #[test]
    fn captured_output_keeps_prefix_and_counts_rest() {
        let output = CapturedOutput::new(4);
        output.write_bytes(b"abcdef");
        let (text, dropped) = output.take();
        assert_eq!(text, "abcd");
        assert_eq!(dropped, 2);
    }
}
