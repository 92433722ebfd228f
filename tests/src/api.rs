//! The HTTP API of `sandtable serve` for tests and benchmarks.
//! [`ApiServer`] serves the router in this process on a loopback port, and
//! [`ServeProcess`] runs the built binary as a child process.
//! [`streamed_body`] makes a request body that a test feeds while the
//! request runs.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::body::Bytes;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use sandtable::table::Tables;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

/// A server on a loopback port, stopped when dropped.
pub struct ApiServer {
    /// The server's address, as `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for requests to it.
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A response: its status, headers and body text.
#[derive(Debug)]
pub struct ApiResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub text: String,
}

impl ApiResponse {
    /// Parses the body as JSON, and panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("the body is not JSON ({error}): {}", self.text))
    }
}

impl ApiServer {
    /// Starts the router over `host`'s catalog, as the host's role, and its
    /// engine.
    ///
    /// # Errors
    ///
    /// Fails when no loopback port can be bound.
    pub async fn start(host: &Tables) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = sandtable::server::router(host.catalog().clone(), host.engine().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sandtable::server::serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        Ok(ApiServer {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
        })
    }

    /// Returns the URL of `path`, such as `/v1/tables`, on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with `key` as the bearer key and `body`, if any.
    ///
    /// # Errors
    ///
    /// Fails when the request cannot be sent or its body read.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<ApiResponse> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(ApiResponse {
            status,
            headers,
            text,
        })
    }

    /// Sends a GET with `key`.
    ///
    /// # Errors
    ///
    /// As [`ApiServer::send`].
    pub async fn get(&self, path: &str, key: Option<&str>) -> anyhow::Result<ApiResponse> {
        self.send(reqwest::Method::GET, path, key, None).await
    }

    /// Sends a POST of `body` as JSON with `key`.
    ///
    /// # Errors
    ///
    /// As [`ApiServer::send`].
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> anyhow::Result<ApiResponse> {
        self.send(
            reqwest::Method::POST,
            path,
            Some(key),
            Some(body.to_string()),
        )
        .await
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Checks that `body` is the API's error body with `code`, and returns its
/// message.
pub fn assert_error(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}

/// Returns the path of the `sandtable` binary that Cargo built beside the
/// running test or benchmark.
///
/// Cargo builds the binary for `cargo test --workspace`, but not for a test
/// of `sandtable-tests` alone, so the binary may be missing or older than
/// the host's source.
///
/// # Errors
///
/// Fails when the binary is missing, or when a file of the host's source is
/// newer than the binary, with the command that builds it.
pub fn sandtable_binary() -> anyhow::Result<PathBuf> {
    let executable = std::env::current_exe()?;
    // Test and benchmark executables are in `<target>/release/deps`.
    let profile_dir = executable
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("`{}` is not in a target directory", executable.display()))?;
    let binary = profile_dir.join("sandtable");
    const BUILD: &str = "cargo build --release -p sandtable-host";
    let built = std::fs::metadata(&binary)
        .and_then(|metadata| metadata.modified())
        .map_err(|error| {
            anyhow::anyhow!(
                "the binary `{}` is missing ({error}); build it with `{BUILD}`",
                binary.display()
            )
        })?;
    let host = crate::workspace_root().join("host");
    for source in [
        host.join("src"),
        host.join("migrations"),
        host.join("Cargo.toml"),
    ] {
        if let Some(newer) = newer_file(&source, built)? {
            anyhow::bail!(
                "the binary `{}` is older than `{}`; rebuild it with `{BUILD}`",
                binary.display(),
                newer.display()
            );
        }
    }
    Ok(binary)
}

/// Returns a file at or under `path` modified after `time`, if any.
fn newer_file(path: &Path, time: SystemTime) -> anyhow::Result<Option<PathBuf>> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    if metadata.is_file() {
        return Ok((metadata.modified()? > time).then(|| path.to_owned()));
    }
    for entry in std::fs::read_dir(path)? {
        if let Some(newer) = newer_file(&entry?.path(), time)? {
            return Ok(Some(newer));
        }
    }
    Ok(None)
}

/// A `sandtable serve` process on a loopback port, killed with SIGKILL if
/// it still runs when dropped.
pub struct ServeProcess {
    child: tokio::process::Child,
    pid: Pid,
    base: String,
    /// The standard output so far, read by a task so that the server never
    /// blocks on, or dies of, a full or closed pipe.
    stdout: Arc<Mutex<String>>,
    /// The file that receives the server's standard error.
    log: PathBuf,
    /// The `application_name` of the server's Postgres connections.
    application_name: String,
}

impl ServeProcess {
    /// Starts `sandtable serve --listen 127.0.0.1:0` on the database at
    /// `database_url`, with `home` as `SANDTABLE_HOME`, and waits until it
    /// prints the address it listens on. Its log records, at the `info`
    /// level, go to `serve.log` in `home`. Its Postgres connections carry
    /// an `application_name` of their own, see
    /// [`application_name`](Self::application_name).
    ///
    /// # Errors
    ///
    /// Fails when the binary is missing or stale (see [`sandtable_binary`]),
    /// or when the server exits or prints no address within 60 s.
    pub async fn start(database_url: &str, home: &Path) -> anyhow::Result<Self> {
        let binary = sandtable_binary()?;
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let application_name = format!(
            "sandtable-serve-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let separator = if database_url.contains('?') { '&' } else { '?' };
        let database_url = format!("{database_url}{separator}application_name={application_name}");
        let log = home.join("serve.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("failed to open `{}`", log.display()))?;
        let mut child = tokio::process::Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", &database_url)
            .env("SANDTABLE_HOME", home)
            .env("SANDTABLE_LOG", "info,sqlx::postgres::notice=warn")
            .env_remove("SANDTABLE_CONFIG")
            .env_remove("SANDTABLE_TENANT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to run `{}`", binary.display()))?;
        let pid = child
            .id()
            .context("the server exited before its pid was read")?;
        let pid = Pid::from_raw(i32::try_from(pid)?);
        let stdout = child.stdout.take().context("the server has no stdout")?;

        let printed = Arc::new(Mutex::new(String::new()));
        let (address_sender, address) = tokio::sync::oneshot::channel::<String>();
        let reading = printed.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let mut address_sender = Some(address_sender);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix("listening on ")
                    && let Some(sender) = address_sender.take()
                {
                    let _ = sender.send(address.to_owned());
                }
                let mut printed = reading.lock().unwrap_or_else(|e| e.into_inner());
                printed.push_str(&line);
                printed.push('\n');
            }
        });

        let mut server = ServeProcess {
            child,
            pid,
            base: String::new(),
            stdout: printed,
            log,
            application_name,
        };
        match tokio::time::timeout(Duration::from_secs(60), address).await {
            Ok(Ok(base)) => {
                server.base = base;
                Ok(server)
            }
            Ok(Err(_)) => {
                let status = server.child.wait().await?;
                anyhow::bail!(
                    "`sandtable serve` exited ({status}) before it listened: {}",
                    server.log()
                )
            }
            Err(_) => anyhow::bail!(
                "`sandtable serve` printed no address within 60 s: {}",
                server.log()
            ),
        }
    }

    /// Returns the URL of `path`, such as `/v1/tables`, on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Returns the `application_name` that every Postgres connection of this
    /// server, the tenants' included, reports in `pg_stat_activity`.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Sends `signal` to the server.
    ///
    /// # Errors
    ///
    /// Fails when the process is gone and reaped.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(self.pid, signal)
            .with_context(|| format!("failed to send {signal} to the server, pid {}", self.pid))
    }

    /// Waits up to `timeout` for the server to exit, and returns its status.
    ///
    /// # Errors
    ///
    /// Fails when it still runs after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => anyhow::bail!(
                "the server, pid {}, still runs after {timeout:?}: {}",
                self.pid,
                self.log()
            ),
        }
    }

    /// Returns what the server printed so far: standard output, then the
    /// last 4,000 bytes of its log.
    pub fn log(&self) -> String {
        let stdout = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let log = std::fs::read(&self.log).unwrap_or_default();
        let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(4000)..]).into_owned();
        format!("\n--- stdout\n{stdout}--- end of the log\n{tail}")
    }

    /// Returns the server's standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The sending end of a request body made by [`streamed_body`].
pub struct BodySender(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl BodySender {
    /// Sends `chunk` as the next part of the body, waiting while the
    /// request has not taken the previous one.
    ///
    /// # Errors
    ///
    /// Fails when the request has ended.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> anyhow::Result<()> {
        self.0
            .send(Ok(chunk.into()))
            .await
            .map_err(|_| anyhow::anyhow!("the request took no more of its body"))
    }
}

/// Returns a request body that ends when the returned sender is dropped,
/// and the sender. Until then the request stays open, waiting for more.
pub fn streamed_body() -> (BodySender, reqwest::Body) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    (BodySender(sender), reqwest::Body::wrap_stream(stream))
}
