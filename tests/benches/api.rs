//! The cost of the HTTP API, printed as tables: inserts through
//! `POST /v1/tables/{table}/rows` on loopback against `Tables::insert` with
//! the same JSON Lines bodies, and the latency of a small request while
//! inserts of another tenant, or of the same one, run.
//!
//! Run with `cargo bench -p sandtable-tests --bench api`; naming sections
//! (`-- insert`, `-- latency`) runs only those. `SANDTABLE_BENCH_ROWS` sets
//! the rows of each insert run (default 200,000). The server runs in the
//! benchmark's process, on the same runtime as its clients, so both paths
//! share the same two worker threads. Every compared figure comes from the
//! same run, in alternating turns whose order flips each round, since the
//! machines are shared and noisy. The load average, and the cores that two
//! spinning threads get, are printed at the start and the end.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use sandtable::config::Config;
use sandtable::sandbox::{Column, DataType};
use sandtable::table::input::InputFormat;
use sandtable::table::{Tables, WriteOptions};
use sandtable_tests::api::ApiServer;
use sandtable_tests::machine::{Figures, chosen_sections, free_cores, load_average};
use sandtable_tests::tables::{add_plugin, columns, load_plugin, setup_with, tenant_tables};
use serde_json::json;

/// The benchmark's sections, run in this order.
const SECTIONS: [&str; 2] = ["insert", "latency"];

const DEFAULT_ROWS: usize = 200_000;

/// Rows in each request body of the insert section.
const BODY_ROWS: [usize; 2] = [1_000, 10_000];

/// Clients that insert at once.
const CLIENTS: [usize; 2] = [1, 4];

/// Rounds of each case. Each round runs both paths.
const ROUNDS: usize = 3;

/// Requests timed in each case of the latency section.
const LATENCY_CALLS: usize = 500;

/// Rows in each body of the load that runs during the latency section.
const LOAD_BODY_ROWS: usize = 10_000;

/// The small request that the latency section times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SmallCall {
    /// `POST /v1/plugins/text/call` of `upper` over one row.
    PluginCall,
    /// A one-row insert into a table with the computed column
    /// `text.upper(s)`, which calls the plugin once. It replaces the
    /// plugin call on a server without that route.
    Insert,
}

impl SmallCall {
    /// Describes the request in the benchmark's output.
    fn describe(self) -> &'static str {
        match self {
            SmallCall::PluginCall => "one-row calls of `text.upper` (POST /v1/plugins/text/call)",
            SmallCall::Insert => {
                "one-row inserts into a table with a computed column `text.upper(s)`\n\
                 (the server has no plugin-call route, so the insert replaces a call)"
            }
        }
    }

    /// Names the direct path that does the same work without HTTP.
    fn direct_path(self) -> &'static str {
        match self {
            SmallCall::PluginCall => "catalog load + UdfEngine::call, alone",
            SmallCall::Insert => "Tables::insert, alone",
        }
    }
}

fn main() -> anyhow::Result<()> {
    // SAFETY: the benchmark is single-threaded at this point.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let chosen = chosen_sections(&SECTIONS)?;
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|c| c == section);
    let rows = env_count("SANDTABLE_BENCH_ROWS", DEFAULT_ROWS)?;

    println!("load average at start: {}", load_average());
    println!("cores free at start: {:.2}", free_cores()?);
    println!(
        "{} cores available, {rows} rows an insert run\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let bench = Bench::start().await?;
        if runs("insert") {
            bench.insert(rows).await?;
        }
        if runs("latency") {
            bench.latency().await?;
        }
        anyhow::Ok(())
    })?;
    println!("load average at end: {}", load_average());
    println!("cores free at end: {:.2}", free_cores()?);
    Ok(())
}

/// Returns the count in environment variable `name`, or `default` when it
/// is unset.
fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => {
            let count: usize = text.replace('_', "").parse().map_err(|_| {
                anyhow::anyhow!("invalid `{name}={text}`: expected a row count such as 100000")
            })?;
            anyhow::ensure!(count > 0, "invalid `{name}=0`: give at least 1 row");
            Ok(count)
        }
    }
}

/// Returns a JSON Lines body of `rows` rows of an int, a float and a string
/// of 10 to 30 characters.
fn jsonl_body(rows: usize) -> Bytes {
    let mut body = String::new();
    for i in 0..rows {
        let name: String = "sandbox tenant élan column batch"
            .chars()
            .cycle()
            .skip(i % 7)
            .take(10 + (i * 7) % 21)
            .collect();
        let line = json!({"id": i, "score": i as f64 / 7.0, "name": name.trim()});
        body.push_str(&line.to_string());
        body.push('\n');
    }
    Bytes::from(body)
}

/// Returns the value at `fraction` (0 to 1) of sorted `times`.
fn percentile(times: &[Duration], fraction: f64) -> Duration {
    let index = ((times.len() - 1) as f64 * fraction).round() as usize;
    times[index]
}

/// Posts `body` to `url` with `key`, and fails unless the response is 2xx.
async fn post_rows(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: Bytes,
) -> anyhow::Result<()> {
    let response = client.post(url).bearer_auth(key).body(body).send().await?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "`POST {url}` returned {status}: {}",
        response.text().await.unwrap_or_default()
    );
    Ok(())
}

fn rate(rows: usize, time: Duration) -> f64 {
    rows as f64 / time.as_secs_f64()
}

struct Bench {
    /// Keeps the database until the end.
    _db: sandtable_tests::TestDb,
    /// The tables of tenant `bench`, which the insert runs use.
    tables: Tables,
    /// The API key of tenant `bench`.
    key: String,
    /// The tables and API key of tenant `probe`, whose requests the latency
    /// section times.
    probe_tables: Tables,
    probe_key: String,
    server: ApiServer,
    client: reqwest::Client,
}

impl Bench {
    /// Creates a database with tenants `bench` and `probe` under a quota no
    /// run reaches, and serves the API over it.
    async fn start() -> anyhow::Result<Self> {
        let config = Config::parse(
            "[quotas]\nrequests_per_minute = 100000000\n",
            "benchmark config",
        )?;
        let (db, host) = setup_with(config, &[]).await?;
        let bench = host.catalog().create_tenant("bench").await?;
        let probe = host.catalog().create_tenant("probe").await?;
        let tables = tenant_tables(&host, &bench).await?;
        let probe_tables = tenant_tables(&host, &probe).await?;
        let server = ApiServer::start(&host).await?;
        Ok(Bench {
            _db: db,
            tables,
            key: bench.api_key,
            probe_tables,
            probe_key: probe.api_key,
            server,
            client: reqwest::Client::new(),
        })
    }

    /// Posts `body` as rows of `table` with `key`, and checks the response.
    async fn post_rows(&self, key: &str, table: &str, body: Bytes) -> anyhow::Result<()> {
        let url = self.server.url(&format!("/v1/tables/{table}/rows"));
        post_rows(&self.client, &url, key, body).await
    }

    /// Inserts `requests` bodies from `clients` clients at once into a new
    /// table, through the API or directly, and returns the time taken. Each
    /// client is a task of its own, as each request is in the server.
    async fn run(
        &self,
        api: bool,
        table: &str,
        body: &Bytes,
        requests: usize,
        clients: usize,
    ) -> anyhow::Result<Duration> {
        self.tables
            .create_table(table, &columns(&["id:int", "score:float", "name:string"]))
            .await?;
        let url = self.server.url(&format!("/v1/tables/{table}/rows"));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let (http, url, key) = (self.client.clone(), url.clone(), self.key.clone());
                let (tables, table, body) = (self.tables.clone(), table.to_owned(), body.clone());
                tokio::spawn(async move {
                    for _ in (client..requests).step_by(clients) {
                        if api {
                            post_rows(&http, &url, &key, body.clone()).await?;
                        } else {
                            tables
                                .insert(
                                    &table,
                                    Cursor::new(body.clone()),
                                    InputFormat::Jsonl,
                                    &WriteOptions::default(),
                                )
                                .await
                                .with_context(|| format!("failed to insert into `{table}`"))?;
                        }
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let time = started.elapsed();
        self.tables.drop_table(table, false).await?;
        Ok(time)
    }

    async fn insert(&self, rows: usize) -> anyhow::Result<()> {
        println!("Inserts of JSON Lines (id int, score float, name string): through the API");
        println!("on loopback, and by `Tables::insert` with the same bodies, in turns whose");
        println!("order flips each round; each run inserts about {rows} rows into a new table");
        println!("(ratio = API rows/s / direct rows/s)\n");
        let mut table = Figures::new([
            "body rows",
            "clients",
            "round",
            "API rows/s",
            "direct rows/s",
            "ratio",
        ]);
        let mut summary = Figures::new([
            "body rows",
            "clients",
            "best API rows/s",
            "best direct rows/s",
            "ratio of bests",
        ]);
        for body_rows in BODY_ROWS {
            let body = jsonl_body(body_rows);
            for clients in CLIENTS {
                // Whole rounds of one request a client, at least one round.
                let requests = (rows / body_rows).div_ceil(clients).max(1) * clients;
                let total = requests * body_rows;
                let mut best = [Duration::MAX; 2];
                for round in 1..=ROUNDS {
                    let mut times = [Duration::ZERO; 2];
                    let order = if round % 2 == 1 {
                        [true, false]
                    } else {
                        [false, true]
                    };
                    for api in order {
                        let path = if api { "api" } else { "direct" };
                        let name = format!("{path}_{body_rows}_{clients}_{round}");
                        let time = self.run(api, &name, &body, requests, clients).await?;
                        let slot = usize::from(!api);
                        times[slot] = time;
                        best[slot] = best[slot].min(time);
                    }
                    table.add_row([
                        body_rows.to_string(),
                        clients.to_string(),
                        round.to_string(),
                        format!("{:.0}", rate(total, times[0])),
                        format!("{:.0}", rate(total, times[1])),
                        format!("{:.2}", times[1].as_secs_f64() / times[0].as_secs_f64()),
                    ]);
                }
                summary.add_row([
                    body_rows.to_string(),
                    clients.to_string(),
                    format!("{:.0}", rate(total, best[0])),
                    format!("{:.0}", rate(total, best[1])),
                    format!("{:.2}", best[1].as_secs_f64() / best[0].as_secs_f64()),
                ]);
            }
        }
        println!("{table}\n{summary}");
        println!("load average after the inserts: {}\n", load_average());
        Ok(())
    }

    /// Returns the small request that the server takes: the plugin-call
    /// route when it has one, else the one-row insert.
    async fn small_call(&self) -> anyhow::Result<SmallCall> {
        let response = self
            .client
            .post(self.server.url("/v1/plugins/text/call"))
            .bearer_auth(&self.probe_key)
            .json(&json!({"function": "upper", "rows": ["hello, sandbox"]}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await?;
        let no_route = body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("no route"));
        match status {
            200 => Ok(SmallCall::PluginCall),
            404 if no_route => Ok(SmallCall::Insert),
            405 => Ok(SmallCall::Insert),
            _ => anyhow::bail!("`POST /v1/plugins/text/call` returned {status}: {body}"),
        }
    }

    /// Times `LATENCY_CALLS` small requests of `kind` for the tenant of
    /// `tables`, one after another, through the API with `key` or directly.
    /// Returns the times, sorted.
    async fn time_calls(
        &self,
        kind: SmallCall,
        tables: &Tables,
        key: Option<&str>,
    ) -> anyhow::Result<Vec<Duration>> {
        let row = Bytes::from_static(b"{\"s\": \"hello, sandbox\"}\n");
        let call = json!({"function": "upper", "rows": ["hello, sandbox"]});
        let call_url = self.server.url("/v1/plugins/text/call");
        let mut times = Vec::with_capacity(LATENCY_CALLS);
        for _ in 0..LATENCY_CALLS {
            let started = Instant::now();
            match (kind, key) {
                (SmallCall::PluginCall, Some(key)) => {
                    let response = self
                        .client
                        .post(&call_url)
                        .bearer_auth(key)
                        .json(&call)
                        .send()
                        .await?;
                    let status = response.status();
                    anyhow::ensure!(
                        status.is_success(),
                        "`POST {call_url}` returned {status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                    response.bytes().await?;
                }
                (SmallCall::PluginCall, None) => {
                    let (plugin, context) = load_plugin(tables, "text").await?;
                    let engine = tables.engine().clone();
                    tokio::task::spawn_blocking(move || {
                        let args =
                            [
                                Column::from_json(&DataType::String, &[json!("hello, sandbox")])
                                    .map_err(anyhow::Error::msg)?,
                            ];
                        engine.call(&plugin, &context, "upper", &args, 1)?;
                        anyhow::Ok(())
                    })
                    .await??;
                }
                (SmallCall::Insert, Some(key)) => self.post_rows(key, "probe", row.clone()).await?,
                (SmallCall::Insert, None) => {
                    tables
                        .insert(
                            "probe",
                            Cursor::new(row.clone()),
                            InputFormat::Jsonl,
                            &WriteOptions::default(),
                        )
                        .await?;
                }
            }
            times.push(started.elapsed());
        }
        times.sort();
        Ok(times)
    }

    /// Starts 4 clients of tenant `bench` that insert bodies of
    /// `LOAD_BODY_ROWS` rows through the API until `stop` is set. Returns
    /// their tasks and the count of rows they inserted.
    fn start_load(
        &self,
        stop: &Arc<AtomicBool>,
    ) -> (
        Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
        Arc<AtomicU64>,
    ) {
        let inserted = Arc::new(AtomicU64::new(0));
        let body = jsonl_body(LOAD_BODY_ROWS);
        let url = self.server.url("/v1/tables/load/rows");
        let tasks = (0..4)
            .map(|_| {
                let (client, url, key, body) = (
                    self.client.clone(),
                    url.clone(),
                    self.key.clone(),
                    body.clone(),
                );
                let (stop, inserted) = (stop.clone(), inserted.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        post_rows(&client, &url, &key, body.clone()).await?;
                        inserted.fetch_add(LOAD_BODY_ROWS as u64, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        (tasks, inserted)
    }

    async fn latency(&self) -> anyhow::Result<()> {
        for tables in [&self.tables, &self.probe_tables] {
            add_plugin(tables, "text", "text.wasm").await?;
            tables
                .create_table("probe", &columns(&["s:string"]))
                .await?;
            tables
                .add_computed_column(
                    "probe",
                    "loud",
                    "text.upper(s)",
                    &WriteOptions::default(),
                    &(),
                )
                .await?;
        }
        self.tables
            .create_table("load", &columns(&["id:int", "score:float", "name:string"]))
            .await?;
        let kind = self.small_call().await?;
        println!("Latency of {}:", kind.describe());
        println!("{LATENCY_CALLS} requests one after another, alone and while 4 clients");
        println!("of tenant `bench` insert bodies of {LOAD_BODY_ROWS} rows through the API");
        println!("as fast as they can\n");

        let mut table = Figures::new(["case", "p50 ms", "p99 ms", "load rows/s"]);
        let mut add = |case: &str, times: &[Duration], load: Option<f64>| {
            table.add_row([
                case.to_owned(),
                format!("{:.2}", percentile(times, 0.5).as_secs_f64() * 1e3),
                format!("{:.2}", percentile(times, 0.99).as_secs_f64() * 1e3),
                load.map_or("-".to_owned(), |rate| format!("{rate:.0}")),
            ]);
        };
        let direct = self.time_calls(kind, &self.probe_tables, None).await?;
        add(kind.direct_path(), &direct, None);
        let alone = self
            .time_calls(kind, &self.probe_tables, Some(&self.probe_key))
            .await?;
        add("API, alone", &alone, None);

        let cases = [
            (
                "API, another tenant inserting",
                &self.probe_tables,
                &self.probe_key,
            ),
            ("API, the same tenant inserting", &self.tables, &self.key),
        ];
        for (case, tables, key) in cases {
            let stop = Arc::new(AtomicBool::new(false));
            let (load, inserted) = self.start_load(&stop);
            // Let the load's first requests reach the server.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = inserted.load(Ordering::Relaxed);
            let started = Instant::now();
            let times = self.time_calls(kind, tables, Some(key)).await?;
            let load_rate = (inserted.load(Ordering::Relaxed) - before) as f64
                / started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            for task in load {
                task.await??;
            }
            add(case, &times, Some(load_rate));
        }
        println!("{table}");
        println!(
            "(a tenant runs at most {} requests at once, so the same tenant's request",
            sandtable::server::MAX_TENANT_REQUESTS
        );
        println!(" waits for one of its 4 inserts to end)\n");
        Ok(())
    }
}
