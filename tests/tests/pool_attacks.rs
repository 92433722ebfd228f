//! Attacks on resource pools and outbound HTTP, as a hostile plugin author
//! or a careless operator would make them: forged authorities, abusive
//! servers, floods, token reports, deadline games and odd configuration.
//!
//! Every server is one the test starts on 127.0.0.1. No case lets a request
//! resolve a name: a name that is not an address is rejected before any
//! connection, so nothing leaves the loopback interface.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sandtable::catalog::{Catalog, DEFAULT_TENANT};
use sandtable::config::Config;
use sandtable::pool::PoolStore;
use sandtable::sandbox::{
    BatchOutput, CallContext, Column, DataType, EngineConfig, FaultClass, HostPattern, LimitPolicy,
    LoadedPlugin, UdfEngine,
};
use sandtable::table::Tables;
use sandtable_tests::TestDb;
use sandtable_tests::http::{
    ConnectionCounter, LoopbackServer, RateLimitHeaders, ServerOptions, max_in_window, span,
};
use sandtable_tests::tables::{add_plugin, load_plugin};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Parses a configuration given as TOML.
fn config(text: &str) -> Config {
    Config::parse(text, "test config").expect("a valid test configuration")
}

/// Returns a limit policy whose calls get `deadline` unless they request one.
fn deadline_policy(deadline: Duration) -> LimitPolicy {
    LimitPolicy {
        default_deadline: deadline,
        ..LimitPolicy::default()
    }
}

/// Creates a fresh database with tables under `config` and `policy`, and
/// adds `http-json` as `web` and `hostile-http` as `rogue`, neither granted
/// any host.
async fn attack_tables(config: Config, policy: LimitPolicy) -> anyhow::Result<(TestDb, Tables)> {
    let db = sandtable_tests::fresh_database().await?;
    let tables = tables_over(&db, config, policy).await?;
    add_plugin(&tables, "web", "http_json.wasm").await?;
    add_plugin(&tables, "rogue", "hostile_http.wasm").await?;
    Ok((db, tables))
}

/// Opens a second set of tables over `db`, with an engine and pools of its
/// own, as another process would.
async fn tables_over(db: &TestDb, config: Config, policy: LimitPolicy) -> anyhow::Result<Tables> {
    let catalog = Catalog::open(db.pool().clone())
        .await?
        .with_config(Arc::new(config));
    let tenant = catalog.tenant(DEFAULT_TENANT).await?;
    let engine = UdfEngine::new(EngineConfig {
        policy,
        ..EngineConfig::default()
    })?;
    Ok(Tables::new(catalog, engine, tenant))
}

/// Grants `plugin` the host pattern `pattern`.
async fn grant(tables: &Tables, plugin: &str, pattern: &str) -> anyhow::Result<()> {
    let pattern: HostPattern = pattern.parse().map_err(anyhow::Error::msg)?;
    tables
        .catalog()
        .grant_host(tables.tenant(), plugin, &pattern)
        .await?;
    Ok(())
}

fn strings<S: AsRef<str>>(values: &[S]) -> Column {
    let values: Vec<Value> = values.iter().map(|value| json!(value.as_ref())).collect();
    Column::from_json(&DataType::String, &values).unwrap()
}

fn ints(values: &[i64]) -> Column {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    Column::from_json(&DataType::Int, &values).unwrap()
}

fn jsons(values: &[Value]) -> Column {
    Column::from_json(&DataType::Json, values).unwrap()
}

/// Calls `function` on a thread for blocking work, as the tables do, and
/// returns the output with the call's wall-clock time.
async fn call(
    tables: &Tables,
    plugin: &LoadedPlugin,
    context: &CallContext,
    function: &str,
    args: Vec<Column>,
) -> (BatchOutput, Duration) {
    let (engine, plugin, context, function) = (
        tables.engine().clone(),
        plugin.clone(),
        context.clone(),
        function.to_owned(),
    );
    let rows = args.first().map_or(0, Column::len);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = engine
            .call(&plugin, &context, &function, &args, rows)
            .expect("the call runs");
        (output, started.elapsed())
    })
    .await
    .unwrap()
}

/// Returns the error message of `row`, or `None` when the row has a value.
fn row_error(output: &BatchOutput, row: usize) -> Option<&str> {
    output
        .errors
        .iter()
        .find(|error| error.row == row)
        .map(|error| error.message.as_str())
}

/// One row of `rogue.forge`: a request from raw `wasi:http` parts.
#[derive(Clone, Copy)]
struct Forge<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    header: &'a str,
    concurrent: i64,
    sleep_ms: i64,
    tokens: i64,
}

impl<'a> Forge<'a> {
    /// Returns one plain GET of `path` from `authority` over `http`.
    fn get(authority: &'a str, path: &'a str) -> Self {
        Forge {
            scheme: "http",
            authority,
            path,
            header: "",
            concurrent: 1,
            sleep_ms: 0,
            tokens: 0,
        }
    }
}

fn forge_args(rows: &[Forge<'_>]) -> Vec<Column> {
    let texts: [Vec<&str>; 4] = [
        rows.iter().map(|row| row.scheme).collect(),
        rows.iter().map(|row| row.authority).collect(),
        rows.iter().map(|row| row.path).collect(),
        rows.iter().map(|row| row.header).collect(),
    ];
    let numbers: [Vec<i64>; 3] = [
        rows.iter().map(|row| row.concurrent).collect(),
        rows.iter().map(|row| row.sleep_ms).collect(),
        rows.iter().map(|row| row.tokens).collect(),
    ];
    let mut args: Vec<Column> = texts.iter().map(|column| strings(column)).collect();
    args.extend(numbers.iter().map(|column| ints(column)));
    args
}

/// One step of a [`RawServer`]'s response on a connection.
enum Step {
    /// Writes these bytes.
    Send(Vec<u8>),
    /// Waits this long, at most [`RAW_MAX_WAIT`] in all.
    Wait(Duration),
}

/// The maximum time a [`RawServer`] connection waits in all, so that every
/// test ends on its own.
const RAW_MAX_WAIT: Duration = Duration::from_secs(20);

/// The response script of a [`RawServer`]: the steps for the request's path
/// and query, given the number of earlier requests to the same path.
type Script = dyn Fn(&str, usize) -> Vec<Step> + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 that responds to each request with the
/// raw bytes and pauses that a script gives, then closes the connection. It
/// can send what a well-behaved server never would: bodies that drip, no
/// response at all, bad `usage` fields or any header.
struct RawServer {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    task: JoinHandle<()>,
}

impl RawServer {
    async fn start(script: impl Fn(&str, usize) -> Vec<Step> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let recorded = arrivals.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, seen, recorded) = (script.clone(), seen.clone(), recorded.clone());
                tokio::spawn(async move {
                    let _ = serve_raw(stream, &*script, &seen, &recorded).await;
                });
            }
        });
        RawServer {
            addr,
            arrivals,
            task,
        }
    }

    fn authority(&self) -> String {
        self.addr.to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Returns the arrival times of the requests whose path starts with
    /// `prefix`.
    fn arrivals(&self, prefix: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, path)| path.starts_with(prefix))
            .map(|(arrived, _)| *arrived)
            .collect()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and its `content-length` body, records it, and
/// plays the script's steps.
async fn serve_raw(
    mut stream: TcpStream,
    script: &Script,
    seen: &Mutex<HashMap<String, usize>>,
    recorded: &Mutex<Vec<(Instant, String)>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 || buffer.len() > 64 << 10 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };

    let arrived = Instant::now();
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let body_len: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body_read = buffer.len() - head_end;
    while body_read < body_len {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        body_read += read;
    }

    recorded.lock().unwrap().push((arrived, path.clone()));
    let earlier = {
        let mut seen = seen.lock().unwrap();
        let count = seen.entry(path.clone()).or_default();
        *count += 1;
        *count - 1
    };

    let mut waited = Duration::ZERO;
    for step in script(&path, earlier) {
        match step {
            Step::Send(bytes) => stream.write_all(&bytes).await?,
            Step::Wait(pause) => {
                let pause = pause.min(RAW_MAX_WAIT.saturating_sub(waited));
                waited += pause;
                tokio::time::sleep(pause).await;
            }
        }
    }
    stream.shutdown().await
}

/// Builds a whole HTTP/1.1 response with a `content-length` body.
fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("connection: close\r\n\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// Builds an OpenAI chat completion whose `usage` is `usage`, given as JSON
/// text.
fn completion(usage: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}}}}],"usage":{usage}}}"#
    );
    response(200, &[("content-type", "application/json")], &body)
}

/// Formats `time` as an HTTP date, such as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970, after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[test]
fn http_date_formats_known_days() {
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    let day = UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(http_date(day), "Sun, 06 Nov 1994 08:49:37 GMT");
}

// Allow-list bypasses.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_authority_reaches_no_unlisted_host() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let counter = ConnectionCounter::start().await;
    let (_db, tables) = attack_tables(Config::default(), LimitPolicy::default()).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    let allowed = server.authority();
    let port = counter.addr().port();
    let off_list = |host: &str| format!("{host}:{port}");
    let stolen = counter.url("/stolen");
    let off_list_error = "not on the allow-list";
    let authorities = [
        off_list("127.0.0.1"),
        // User info before `@`, naming the allowed host.
        format!("{allowed}@127.0.0.1:{port}"),
        off_list("127.0.0.1."),
        off_list("0x7f.0.0.1"),
        off_list("0x7f000001"),
        off_list("2130706433"),
        off_list("0177.0.0.1"),
        off_list("127.1"),
        off_list("LOCALHOST"),
        off_list("[::1]"),
        off_list("[::ffff:127.0.0.1]"),
        off_list("[::ffff:7f00:1]"),
        "127.0.0.1:0".to_owned(),
        format!("127.0.0.1:{}", u32::from(port) + 65_536),
    ];
    // Each row goes with the text expected in its error.
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    for authority in &authorities {
        rows.push(Forge::get(authority, "/stolen"));
        // User info is refused before the allow-list is checked.
        let error = if authority.contains('@') {
            "user info in a URL is not allowed"
        } else {
            off_list_error
        };
        expected.push(error.to_owned());
    }
    let two_ports = format!("127.0.0.1:{port}:{}", server.addr().port());
    let special = [
        // A request target in absolute form, to the allowed host.
        (
            Forge::get(&allowed, &stolen),
            format!("path `{stolen}` rejected"),
        ),
        (
            Forge {
                header: "host: 127.0.0.1:1",
                ..Forge::get(&allowed, "/ok")
            },
            "header `host` rejected: forbidden".to_owned(),
        ),
        (
            Forge {
                header: "HOST: 127.0.0.1:1",
                ..Forge::get(&allowed, "/ok")
            },
            "header `HOST` rejected: forbidden".to_owned(),
        ),
        (
            Forge::get(&two_ports, "/stolen"),
            format!("authority `{two_ports}` rejected"),
        ),
        (
            Forge {
                scheme: "ftp",
                ..Forge::get(&allowed, "/ok")
            },
            "HTTP-protocol-error".to_owned(),
        ),
        (Forge::get("", "/ok"), "HTTP-request-URI-invalid".to_owned()),
        // Default ports: 80 for http, 443 for https and for no scheme,
        // which wasmtime takes as https.
        (
            Forge::get("127.0.0.1", "/ok"),
            "`127.0.0.1:80` refused".to_owned(),
        ),
        (
            Forge {
                scheme: "https",
                ..Forge::get("127.0.0.1", "/ok")
            },
            "`127.0.0.1:443` refused".to_owned(),
        ),
        (
            Forge {
                scheme: "",
                ..Forge::get("127.0.0.1", "/ok")
            },
            "`127.0.0.1:443` refused".to_owned(),
        ),
    ];
    for (row, text) in special.iter().cloned() {
        rows.push(row);
        expected.push(text);
    }
    // The one request that may go: the allowed host itself.
    rows.push(Forge::get(&allowed, "/ok"));

    let (output, _) = call(&tables, &plugin, &context, "forge", forge_args(&rows)).await;
    for (row, text) in expected.iter().enumerate() {
        let message = row_error(&output, row);
        assert!(
            message.is_some_and(|message| message.contains(text.as_str())),
            "row {row} ({} {}{}): expected `{text}`, got {message:?}",
            rows[row].scheme,
            rows[row].authority,
            rows[row].path,
        );
    }
    let last = rows.len() - 1;
    assert_eq!(row_error(&output, last), None);
    assert_eq!(output.column.json_at(last), json!("200"));
    assert_eq!(counter.connections().await, 0);
    let reached: Vec<String> = server
        .requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(reached, ["/ok"]);
    Ok(())
}

#[test]
fn host_patterns_compare_forms_as_written() {
    let pattern = |text: &str| text.parse::<HostPattern>().unwrap();
    // Case does not matter, since names are case-insensitive.
    assert!(pattern("LocalHost:8080").matches("LOCALHOST", 8080));
    assert!(pattern("*.Example.com:443").matches("API.EXAMPLE.COM", 443));

    // Every other spelling of an address or name is another host.
    let loopback = pattern("127.0.0.1:8080");
    for other in [
        "127.0.0.1.",
        "0x7f.0.0.1",
        "2130706433",
        "127.1",
        "[::ffff:127.0.0.1]",
        "127.0.0.1%00",
    ] {
        assert!(!loopback.matches(other, 8080), "{other}");
    }

    // A wildcard does not match the bare domain, another domain ending in
    // the same letters, or the domain with a trailing dot.
    let wildcard = pattern("*.example.com:443");
    for other in [
        "example.com",
        "evilexample.com",
        "a.example.com.",
        "a.example.com.evil",
    ] {
        assert!(!wildcard.matches(other, 443), "{other}");
    }

    for bad in ["127.0.0.1.:80", "*.127.0.0.1:80x", "[::1%lo]:80", "a@b:80"] {
        assert!(bad.parse::<HostPattern>().is_err(), "{bad} parsed");
    }
}

// Abusive responses.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_response_fails_the_row() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    // A chunked body with no length, 40 chunks of 64 KiB.
    let raw = RawServer::start(|_, _| {
        let mut steps = vec![Step::Send(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
        )];
        let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
        chunk.extend(std::iter::repeat_n(b'x', 64 << 10));
        chunk.extend_from_slice(b"\r\n");
        for _ in 0..40 {
            steps.push(Step::Send(chunk.clone()));
        }
        steps.push(Step::Send(b"0\r\n\r\n".to_vec()));
        steps
    })
    .await;
    let settings = config("[http]\nmax_response_bytes = 1000000\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    grant(&tables, "rogue", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    let urls = [
        server.url("/big?bytes=2000000"),
        raw.url("/chunked"),
        server.url("/big?bytes=1000000"),
    ];
    let (output, _) = call(&tables, &plugin, &context, "fetch", vec![strings(&urls)]).await;
    for row in [0, 1] {
        let message = row_error(&output, row).unwrap_or_default();
        assert!(
            message.contains("max_response_bytes"),
            "row {row}: {message}"
        );
        assert_eq!(output.requests[row].outcome, "failed");
    }
    assert_eq!(row_error(&output, 2), None, "exactly the cap is allowed");
    assert_eq!(
        output.column.json_at(2).as_str().map(str::len),
        Some(1_000_000)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_silent_servers_time_out() -> anyhow::Result<()> {
    let raw = RawServer::start(|path, _| match path {
        // 100 bytes promised, one every 100 ms: 10 s for the whole body.
        "/drip" => {
            let mut steps = vec![Step::Send(
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n".to_vec(),
            )];
            for _ in 0..100 {
                steps.push(Step::Send(b"x".to_vec()));
                steps.push(Step::Wait(Duration::from_millis(100)));
            }
            steps
        }
        // Reads the request and never responds.
        _ => vec![Step::Wait(RAW_MAX_WAIT)],
    })
    .await;
    let settings = config("[http]\ntimeout_ms = 1000\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "rogue", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    let urls = [raw.url("/drip"), raw.url("/silent")];
    let (output, elapsed) = call(&tables, &plugin, &context, "fetch", vec![strings(&urls)]).await;
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    for row in [0, 1] {
        let message = row_error(&output, row).unwrap_or_default();
        assert!(
            message.contains("timed out") || message.contains("timeout"),
            "row {row}: {message}"
        );
        let record = &output.requests[row];
        assert_eq!(record.outcome, "failed");
        assert!(
            record
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("timeout"),
            "{record:?}"
        );
    }
    assert_eq!(
        raw.arrivals("/").len(),
        2,
        "a timed-out request is not sent again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeout_errors_name_timeout_ms() -> anyhow::Result<()> {
    let raw = RawServer::start(|_, _| vec![Step::Wait(Duration::from_secs(5))]).await;
    let settings = config("[http]\ntimeout_ms = 300\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "rogue", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;
    let (output, _) = call(
        &tables,
        &plugin,
        &context,
        "fetch",
        vec![strings(&[raw.url("/silent")])],
    )
    .await;
    let record = output.requests[0].error.as_deref().unwrap_or_default();
    assert!(record.contains("timeout_ms"), "record: {record}");
    let message = row_error(&output, 0).unwrap_or_default();
    assert!(message.contains("timeout_ms"), "row: {message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_of_503_stop_at_setting() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions {
        limited_failures: 100,
        limited_status: 503,
        retry_after_secs: None,
        ..ServerOptions::default()
    })
    .await;
    let settings = config("[http]\nretries = 2\nbackoff_ms = 10\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "web", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    let args = vec![
        strings(&[server.url("/limited")]),
        jsons(&[json!({})]),
        strings(&[""]),
    ];
    let (output, _) = call(&tables, &plugin, &context, "post", args).await;
    assert_eq!(server.count("/limited"), 3);
    let message = row_error(&output, 0).unwrap_or_default();
    assert!(message.contains("503"), "{message}");
    let record = &output.requests[0];
    assert_eq!(record.retries, 2);
    assert_eq!(record.status, 503);
    assert_eq!(record.outcome, "throttled");
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("after 2 retries"),
        "{record:?}"
    );
    assert_eq!(output.records[0].requests, 3, "each attempt is counted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_dates_and_bad_values() -> anyhow::Result<()> {
    let raw = RawServer::start(|path, earlier| {
        let now = SystemTime::now();
        let retry_after = match path {
            "/future" => http_date(now + Duration::from_secs(2)),
            "/past" => http_date(now - Duration::from_secs(3600)),
            "/negative" => "-5".to_owned(),
            _ => "1e999".to_owned(),
        };
        if earlier == 0 {
            vec![Step::Send(response(
                429,
                &[("retry-after", &retry_after)],
                "slow down",
            ))]
        } else {
            vec![Step::Send(response(200, &[], r#"{"ok":true}"#))]
        }
    })
    .await;
    let settings = config("[http]\nretries = 3\nbackoff_ms = 10\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "web", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    for (path, at_least, at_most) in [
        (
            "/future",
            Duration::from_millis(900),
            Duration::from_millis(2600),
        ),
        ("/past", Duration::ZERO, Duration::from_millis(500)),
        ("/negative", Duration::ZERO, Duration::from_millis(500)),
        ("/infinite", Duration::ZERO, Duration::from_millis(500)),
    ] {
        let args = vec![
            strings(&[raw.url(path)]),
            jsons(&[json!({})]),
            strings(&["/ok"]),
        ];
        let (output, _) = call(&tables, &plugin, &context, "post", args).await;
        assert_eq!(row_error(&output, 0), None, "{path}");
        assert_eq!(output.column.json_at(0), json!(true), "{path}");
        let arrivals = raw.arrivals(path);
        assert_eq!(arrivals.len(), 2, "{path}");
        let waited = span(&arrivals);
        assert!(
            waited >= at_least && waited <= at_most,
            "{path}: retried after {waited:?}"
        );
        assert_eq!(output.requests[0].retries, 1, "{path}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_retry_after_pauses_for_the_cap() -> anyhow::Result<()> {
    let raw = RawServer::start(|path, _| match path {
        "/seconds" => vec![Step::Send(response(429, &[("retry-after", "100000")], ""))],
        "/date" => vec![Step::Send(response(
            503,
            &[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")],
            "",
        ))],
        _ => vec![Step::Send(response(200, &[], r#"{"ok":true}"#))],
    })
    .await;
    let settings = config("[http]\nretries = 5\nmax_retry_after_s = 1\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "web", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    let post = |path: &str| {
        vec![
            strings(&[raw.url(path)]),
            jsons(&[json!({})]),
            strings(&[""]),
        ]
    };
    for path in ["/seconds", "/date"] {
        let (output, elapsed) = call(&tables, &plugin, &context, "post", post(path)).await;
        assert_eq!(raw.arrivals(path).len(), 1, "{path}: no retry");
        assert!(row_error(&output, 0).is_some(), "{path}");
        let record = &output.requests[0];
        assert_eq!(record.outcome, "throttled", "{path}");
        assert!(
            record
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("max_retry_after_s"),
            "{path}: {record:?}"
        );
        assert!(elapsed < Duration::from_millis(2500), "{path}: {elapsed:?}");
    }
    // The pool is paused for the cap, 1 s, not for the requested 100,000 s.
    let (output, elapsed) = call(&tables, &plugin, &context, "post", post("/ok")).await;
    assert_eq!(row_error(&output, 0), None);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(
        output.requests[0].pool_wait_us >= 500_000,
        "{:?}",
        output.requests[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_reset_capped_by_max_retry_after() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions {
        rate_limit_headers: Some(RateLimitHeaders {
            remaining_requests: 0,
            reset_requests: "8s".to_owned(),
            ..RateLimitHeaders::default()
        }),
        ..ServerOptions::default()
    })
    .await;
    let settings =
        config("[http]\nmax_retry_after_s = 1\n[openai]\nrequests_per_minute = 6000\nburst = 5\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "web", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    let url = server.url("/v1/chat/completions");
    let args = vec![
        strings(&[&url, &url]),
        strings(&["m", "m"]),
        strings(&["a", "b"]),
    ];
    let (output, _) = call(&tables, &plugin, &context, "chat", args).await;
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    let arrivals = server.arrivals("/v1/chat/completions");
    assert_eq!(arrivals.len(), 2);
    assert!(
        span(&arrivals) < Duration::from_secs(3),
        "{:?}",
        span(&arrivals)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirect_loop_stops_after_five_hops() -> anyhow::Result<()> {
    let raw =
        RawServer::start(|_, _| vec![Step::Send(response(302, &[("location", "/loop")], ""))])
            .await;
    let (_db, tables) = attack_tables(Config::default(), LimitPolicy::default()).await?;
    grant(&tables, "rogue", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;
    let (output, _) = call(
        &tables,
        &plugin,
        &context,
        "fetch",
        vec![strings(&[raw.url("/loop")])],
    )
    .await;
    let message = row_error(&output, 0).unwrap_or_default();
    assert!(message.contains("after 5 redirects"), "{message}");
    assert_eq!(raw.arrivals("/loop").len(), 6);
    assert_eq!(output.records[0].requests, 6, "every hop is charged");
    assert!(output.requests.iter().all(|record| record.status == 302));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_request_body_is_never_sent() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let settings = config("[http]\nmax_request_bytes = 1000\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "web", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    let big = "x".repeat(256 << 10);
    let args = vec![
        strings(&[server.url("/echo"), server.url("/echo")]),
        jsons(&[json!({ "big": big }), json!({ "small": 1 })]),
        strings(&["", ""]),
    ];
    let (output, elapsed) = call(&tables, &plugin, &context, "post", args).await;
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let message = row_error(&output, 0).unwrap_or_default();
    assert!(message.contains("body"), "{message}");
    assert_eq!(row_error(&output, 1), None);
    assert_eq!(server.count("/echo"), 1, "only the small body is sent");
    Ok(())
}

// Pools.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_cannot_outrun_the_pool() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    // `request-rate:hostile-http` has no section: 600 a minute, burst 1.
    let (_db, tables) = attack_tables(Config::default(), LimitPolicy::default()).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    let mut callers = Vec::new();
    for _ in 0..3 {
        let (tables, plugin, context) = (tables.clone(), plugin.clone(), context.clone());
        let url = server.url("/ok");
        callers.push(tokio::spawn(async move {
            let args = vec![strings(&[url]), ints(&[20])];
            call(&tables, &plugin, &context, "flood", args).await.0
        }));
    }
    for caller in callers {
        let output = caller.await?;
        assert_eq!(output.column.json_at(0), json!(20), "{:?}", output.errors);
    }
    let arrivals = server.arrivals("/ok");
    assert_eq!(arrivals.len(), 60);
    let busiest = max_in_window(&arrivals, Duration::from_secs(1));
    assert!(busiest <= 11, "{busiest} requests in one second");
    assert!(
        span(&arrivals) >= Duration::from_millis(5600),
        "{:?}",
        span(&arrivals)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_keep_the_rate() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let settings = config("[openai]\nrequests_per_minute = 600\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    let authority = server.authority();
    let row = Forge {
        concurrent: 30,
        ..Forge::get(&authority, "/ok")
    };
    let (output, _) = call(&tables, &plugin, &context, "forge", forge_args(&[row])).await;
    assert_eq!(row_error(&output, 0), None);
    assert_eq!(output.column.json_at(0), json!(vec!["200"; 30].join(",")));
    let arrivals = server.arrivals("/ok");
    assert_eq!(arrivals.len(), 30);
    let busiest = max_in_window(&arrivals, Duration::from_secs(1));
    assert!(busiest <= 11, "{busiest} requests in one second");
    assert!(
        span(&arrivals) >= Duration::from_millis(2800),
        "{:?}",
        span(&arrivals)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_keep_burst_1_spacing() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    // 100 a second, so a request every 10 ms, and a lease of 25 slots.
    let settings = "[pools.\"request-rate:hostile-http\"]\nrequests_per_minute = 6000\n";
    let (db, first) = attack_tables(config(settings), LimitPolicy::default()).await?;
    grant(&first, "rogue", &server.authority()).await?;
    let second = tables_over(&db, config(settings), LimitPolicy::default()).await?;
    let mut callers = Vec::new();
    for tables in [first, second] {
        let (plugin, context) = load_plugin(&tables, "rogue").await?;

        for _ in 0..10 {
            let url = server.url("/ok");
            let (tables, plugin, context) = (tables.clone(), plugin.clone(), context.clone());
            callers.push(tokio::spawn(async move {
                let args = vec![strings(&[url]), ints(&[15])];
                call(&tables, &plugin, &context, "flood", args).await.0
            }));
        }
    }
    for caller in callers {
        let output = caller.await?;
        assert_eq!(output.column.json_at(0), json!(15), "{:?}", output.errors);
    }
    let arrivals = server.arrivals("/ok");
    assert_eq!(arrivals.len(), 300);
    // Evenly spaced requests put at most 2 in any 10 ms, with jitter.
    let bunched = max_in_window(&arrivals, Duration::from_millis(10));
    assert!(bunched <= 2, "{bunched} requests within 10 ms");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_the_rate() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let (db, first) = attack_tables(Config::default(), LimitPolicy::default()).await?;
    grant(&first, "rogue", &server.authority()).await?;
    let second = tables_over(&db, Config::default(), LimitPolicy::default()).await?;
    let mut callers = Vec::new();
    for tables in [first, second] {
        let url = server.url("/ok");
        callers.push(tokio::spawn(async move {
            let (plugin, context) = load_plugin(&tables, "rogue").await.unwrap();
            let args = vec![strings(&[url]), ints(&[15])];
            call(&tables, &plugin, &context, "flood", args).await.0
        }));
    }
    for caller in callers {
        let output = caller.await?;
        assert_eq!(output.column.json_at(0), json!(15), "{:?}", output.errors);
    }
    // The rate holds on average; the spacing within it is the test above.
    let arrivals = server.arrivals("/ok");
    assert_eq!(arrivals.len(), 30);
    assert!(
        span(&arrivals) >= Duration::from_millis(2800),
        "{:?}",
        span(&arrivals)
    );
    let busiest = max_in_window(&arrivals, Duration::from_secs(2));
    assert!(busiest <= 22, "{busiest} requests in two seconds");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn denied_pool_sends_nothing() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let settings = config("[pools.\"request-rate:hostile-http\"]\ndeny = true\n");
    let (_db, tables) = attack_tables(settings, LimitPolicy::default()).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;
    let (output, _) = call(
        &tables,
        &plugin,
        &context,
        "fetch",
        vec![strings(&[server.url("/ok")])],
    )
    .await;
    let message = row_error(&output, 0).unwrap_or_default();
    assert!(
        message.contains("denied") && message.contains("test config"),
        "{message}"
    );
    assert_eq!(output.requests[0].outcome, "denied");

    let args = vec![strings(&[server.url("/ok")]), ints(&[5])];
    let (output, _) = call(&tables, &plugin, &context, "flood", args).await;
    assert_eq!(output.column.json_at(0), json!(0));
    assert_eq!(output.requests.len(), 5);
    assert!(
        output
            .requests
            .iter()
            .all(|record| record.outcome == "denied")
    );
    assert_eq!(server.requests().len(), 0);
    Ok(())
}

/// A budget of 1,000 tokens a second with a burst of 1,000, for `openai`.
const TOKEN_POOL: &str = "[openai]\nrequests_per_minute = 60000\nburst = 10\ntokens_per_minute = 60000\ntoken_burst = 1000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reported_tokens_cannot_stall_other_plugins() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let elsewhere = ConnectionCounter::start().await;
    let (_db, tables) = attack_tables(config(TOKEN_POOL), LimitPolicy::default()).await?;
    // Only `web` may reach the provider. `rogue` may reach a host of its
    // own, which it never calls, but declares the provider's pool.
    grant(&tables, "web", &server.authority()).await?;
    grant(&tables, "rogue", &elsewhere.authority()).await?;
    let (rogue, rogue_context) = load_plugin(&tables, "rogue").await?;
    let (web, web_context) = load_plugin(&tables, "web").await?;

    let report = Forge {
        concurrent: 0,
        tokens: 5_000,
        ..Forge::get("", "")
    };
    let (output, _) = call(
        &tables,
        &rogue,
        &rogue_context,
        "forge",
        forge_args(&[report]),
    )
    .await;
    assert_eq!(row_error(&output, 0), None);
    assert_eq!(output.records[0].requests, 0);

    let url = server.url("/v1/chat/completions");
    let args = vec![strings(&[url]), strings(&["m"]), strings(&["hi"])];
    let (output, elapsed) = call(&tables, &web, &web_context, "chat", args).await;
    assert_eq!(row_error(&output, 0), None);
    assert!(
        output.requests[0].pool_wait_us < 1_000_000,
        "`web` waited {:?} for tokens it never spent ({elapsed:?} in all)",
        Duration::from_micros(output.requests[0].pool_wait_us)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn u64_max_token_report_keeps_stats_sane() -> anyhow::Result<()> {
    let elsewhere = ConnectionCounter::start().await;
    let (_db, tables) = attack_tables(config(TOKEN_POOL), LimitPolicy::default()).await?;
    grant(&tables, "rogue", &elsewhere.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    let report = Forge {
        concurrent: 0,
        tokens: -1,
        ..Forge::get("", "")
    };
    let (output, _) = call(&tables, &plugin, &context, "forge", forge_args(&[report])).await;
    assert_eq!(row_error(&output, 0), None);
    // A call that sent no request is not charged what it reports.
    assert_eq!(output.records[0].tokens, 0);
    tables.catalog().pools().flush().await?;
    let store = PoolStore::new(tables.catalog().pool().clone());
    let pools = store.list(tables.tenant().id, 5).await?;
    let openai = pools.iter().find(|pool| pool.name == "openai").unwrap();
    assert!(
        openai.tokens >= 0,
        "pool list shows {} tokens",
        openai.tokens
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_usage_counts_no_tokens() -> anyhow::Result<()> {
    let raw = RawServer::start(|path, _| {
        let usage = match path {
            "/negative" => r#"{"total_tokens":-5}"#,
            "/float" => r#"{"total_tokens":1.5e3}"#,
            "/text" => r#"{"total_tokens":"1000"}"#,
            "/null" => "null",
            "/number" => "7",
            "/huge" => r#"{"total_tokens":1e400}"#,
            _ => r#"{"total_tokens":18446744073709551616}"#,
        };
        vec![Step::Send(completion(usage))]
    })
    .await;
    let (_db, tables) = attack_tables(config(TOKEN_POOL), LimitPolicy::default()).await?;
    grant(&tables, "web", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    let paths = [
        "/negative",
        "/float",
        "/text",
        "/null",
        "/number",
        "/huge",
        "/over",
    ];
    let urls: Vec<String> = paths.iter().map(|path| raw.url(path)).collect();
    let args = vec![
        strings(&urls),
        strings(&vec!["m"; paths.len()]),
        strings(&vec!["hi"; paths.len()]),
    ];
    let (output, elapsed) = call(&tables, &plugin, &context, "chat", args).await;
    // Only the guest's own JSON parser may reject a number out of range.
    let huge = paths.iter().position(|path| *path == "/huge").unwrap();
    assert!(
        output.errors.iter().all(|error| error.row == huge),
        "{:?}",
        output.errors
    );
    assert_eq!(output.requests.len(), paths.len());
    for (path, record) in paths.iter().zip(&output.requests) {
        assert_eq!(record.tokens, 0, "{path}");
        assert_eq!(record.outcome, "ok", "{path}");
    }
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overflowing_usage_parts_saturate() -> anyhow::Result<()> {
    let raw = RawServer::start(|_, _| {
        vec![Step::Send(completion(
            r#"{"prompt_tokens":18446744073709551615,"completion_tokens":1}"#,
        ))]
    })
    .await;
    let (_db, tables) = attack_tables(config(TOKEN_POOL), LimitPolicy::default()).await?;
    grant(&tables, "web", &raw.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;

    let args = vec![
        strings(&[raw.url("/v1/chat/completions")]),
        strings(&["m"]),
        strings(&["hi"]),
    ];
    let (output, _) = call(&tables, &plugin, &context, "chat", args).await;
    assert_eq!(row_error(&output, 0), None);
    assert_eq!(output.requests[0].tokens, u64::MAX);
    Ok(())
}

// Deadlines.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_waits_extend_the_deadline() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let policy = deadline_policy(Duration::from_secs(2));
    let (_db, tables) = attack_tables(Config::default(), policy).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    // 30 requests at 10 a second wait about 2.9 s, past the 2 s deadline.
    let args = vec![strings(&[server.url("/ok")]), ints(&[30])];
    let (output, elapsed) = call(&tables, &plugin, &context, "flood", args).await;
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    assert_eq!(output.column.json_at(0), json!(30));
    assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
    assert!(
        output.records[0].pool_wait_us >= 2_000_000,
        "{:?}",
        output.records[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pool_waits_extend_deadline_once() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let settings = config("[openai]\nrequests_per_minute = 600\n");
    let policy = deadline_policy(Duration::from_secs(2));
    let (_db, tables) = attack_tables(settings, policy).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    // 20 requests at once wait 0, 0.1, ..., 1.9 s: 19 s in sum but 1.9 s of
    // wall-clock time. Then the guest sleeps 6 s.
    let authority = server.authority();
    let row = Forge {
        concurrent: 20,
        sleep_ms: 6_000,
        ..Forge::get(&authority, "/ok")
    };
    let (output, elapsed) = call(&tables, &plugin, &context, "forge", forge_args(&[row])).await;
    assert_eq!(
        output.errors.first().map(|error| error.class),
        Some(FaultClass::DeadlineExceeded),
        "the call ran {elapsed:?} with a 2 s deadline and about 1.9 s of waiting, \
         counted as {:?}: {:?}",
        Duration::from_micros(output.records[0].pool_wait_us),
        output.column.json_at(0)
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_request_ends_at_deadline() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let policy = deadline_policy(Duration::from_secs(1));
    let (_db, tables) = attack_tables(Config::default(), policy).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;
    let (output, elapsed) = call(
        &tables,
        &plugin,
        &context,
        "fetch",
        vec![strings(&[server.url("/slow?ms=4000")])],
    )
    .await;
    assert_eq!(
        output.errors.first().map(|error| error.class),
        Some(FaultClass::DeadlineExceeded)
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "a call with a 1 s deadline held its instance for {elapsed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_that_sent_requests_never_rerun() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let policy = deadline_policy(Duration::from_secs(1));
    let (_db, tables) = attack_tables(Config::default(), policy).await?;
    grant(&tables, "rogue", &server.authority()).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;

    // Row 0 would take 10 requests of 300 ms; the deadline stops it.
    let url = server.url("/slow?ms=300");
    let args = vec![strings(&[&url, &url]), ints(&[10, 10])];
    let (output, _) = call(&tables, &plugin, &context, "flood", args).await;
    assert_eq!(output.errors.len(), 2, "{:?}", output.errors);
    assert!(
        output
            .errors
            .iter()
            .all(|error| error.class == FaultClass::DeadlineExceeded),
        "{:?}",
        output.errors
    );
    assert_eq!(output.records.len(), 1, "the batch ran once");
    let sent = server.count("/slow");
    assert!((3..=5).contains(&sent), "{sent} requests");
    Ok(())
}

// Configuration.

#[test]
fn env_token_burst_sets_token_burst() {
    let mut config = Config::default();
    config
        .apply_env([(
            "SANDTABLE_POOL_OPENAI_TOKEN_BURST".to_owned(),
            "100".to_owned(),
        )])
        .expect("a token burst of 100 is valid");
    assert_eq!(config.pool("openai").token_burst, Some(100));
    assert_eq!(config.pool("openai_token").burst, 1);
}

#[test]
fn env_burst_over_file_rate_is_rejected() {
    let mut config = config("[openai]\nrequests_per_minute = 10\n");
    let result = config.apply_env([("SANDTABLE_POOL_OPENAI_BURST".to_owned(), "500".to_owned())]);
    let spec = config.pool("openai");
    assert!(
        result.is_err(),
        "accepted: {} requests a minute with a burst of {}",
        spec.requests_per_minute,
        spec.burst
    );
}

#[test]
fn env_bad_values_name_the_variable() {
    for (var, value) in [
        ("SANDTABLE_HTTP_RETRIES", "-1"),
        ("SANDTABLE_HTTP_RETRIES", "21"),
        ("SANDTABLE_HTTP_RETRIES", "three"),
        ("SANDTABLE_HTTP_RETRIES", ""),
        ("SANDTABLE_HTTP_TIMEOUT_MS", "0"),
        ("SANDTABLE_HTTP_TIMEOUT_MS", "3600001"),
        ("SANDTABLE_HTTP_TIMEOUT_MS", "99999999999999999999"),
        ("SANDTABLE_HTTP_MAX_RESPONSE_BYTES", "-1"),
        ("SANDTABLE_HTTP_MAX_RESPONSE_BYTES", "0"),
        ("SANDTABLE_HTTP_MAX_RETRY_AFTER_S", "3601"),
        ("SANDTABLE_HTTP_", "1"),
        ("SANDTABLE_POOL_OPENAI_DENY", "1"),
        ("SANDTABLE_POOL_OPENAI_DENY", "yes"),
        ("SANDTABLE_POOL_OPENAI_BURST", "0"),
        ("SANDTABLE_POOL_OPENAI_BURST", " 5"),
        ("SANDTABLE_POOL_OPENAI_REQUESTS_PER_MINUTE", "60000001"),
        ("SANDTABLE_POOL_OPENAI_REQUESTS_PER_MINUTE", "1.5"),
        ("SANDTABLE_POOL_OPENAI_TOKENS_PER_MINUTE", "0"),
        ("SANDTABLE_POOL__BURST", "2"),
        ("SANDTABLE_POOL_BURST", "2"),
    ] {
        let mut config = Config::default();
        let result = config.apply_env([(var.to_owned(), value.to_owned())]);
        let Err(error) = result else {
            panic!("{var}={value:?} was accepted");
        };
        assert!(error.to_string().contains(var), "{var}={value:?}: {error}");
    }
}

#[test]
fn odd_pool_names_are_rejected() {
    let long = format!("request-rate:{}", "a".repeat(120));
    for name in [
        "request-rate:a b",
        "request-rate:ünï",
        "request-rate:x\\\"; DROP TABLE sandtable.pools; --",
        "request-rate:",
        "request-rate:tab\\t",
        long.as_str(),
    ] {
        let text = format!("[pools.\"{name}\"]\nburst = 1\n");
        let error = Config::parse(&text, "c.toml").unwrap_err().to_string();
        assert!(error.contains("c.toml"), "{name}: {error}");
        let text = format!("[plugins.text]\npool = \"{name}\"\n");
        assert!(
            Config::parse(&text, "c.toml").is_err(),
            "plugin pool {name}"
        );
    }
    // Names that are valid stay usable.
    let config = config("[pools.\"request-rate:a.b-c_d:e\"]\nburst = 2\n");
    assert_eq!(config.pool("request-rate:a.b-c_d:e").burst, 2);
}

#[test]
fn env_name_shared_by_two_pools_is_rejected() {
    let mut config = config(
        "[pools.\"request-rate:a.b\"]\nburst = 1\n[pools.\"request-rate:a-b\"]\nburst = 1\n",
    );
    let result = config.apply_env([(
        "SANDTABLE_POOL_REQUEST_RATE_A_B_BURST".to_owned(),
        "5".to_owned(),
    )]);
    let bursts = (
        config.pool("request-rate:a.b").burst,
        config.pool("request-rate:a-b").burst,
    );
    assert!(result.is_err(), "accepted; the bursts are now {bursts:?}");
}
