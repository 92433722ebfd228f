//! `/metrics` and the resource monitor of `sandtable serve` on loopback,
//! against a real Postgres and real plugins. The text parses as
//! Prometheus's format and counts the calls and requests that ran, and
//! alerts fire when thresholds set low in the configuration are crossed.
//!
//! Every test of this binary shares the process's one metrics recorder, so
//! each tags its calls with a tenant name of its own.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_parse::{LineInfo, Scrape, Value};
use sandtable::config::{Config, MonitorSettings};
use sandtable::sandbox::{CallContext, Column, DataType, LoadedPlugin};
use sandtable::table::Tables;
use sandtable_tests::api::ApiServer;
use sandtable_tests::tables::{load_plugin, setup_with};
use serde_json::{Value as Json, json};

fn int(value: i64) -> Column {
    Column::from_json(&DataType::Int, &[json!(value)]).expect("an int fits")
}

fn string(value: &str) -> Column {
    Column::from_json(&DataType::String, &[json!(value)]).expect("a string fits")
}

/// Scrapes `/metrics` with `key`, checks that every line is a comment, a
/// sample or empty, and parses it.
async fn scrape(server: &ApiServer, key: &str) -> anyhow::Result<Scrape> {
    let response = server.get("/metrics", Some(key)).await?;
    assert_eq!(response.status, 200, "{}", response.text);
    for line in response.text.lines() {
        assert_ne!(
            LineInfo::parse(line),
            LineInfo::Ignored,
            "not Prometheus text: {line}"
        );
    }
    Ok(Scrape::parse(
        response.text.lines().map(|line| Ok(line.to_owned())),
    )?)
}

/// Returns the value of the sample `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .find(|sample| {
            labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .map(|sample| match sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => value,
            ref other => panic!("`{metric}` is not a single value: {other:?}"),
        })
}

/// Runs `function` of `plugin` once for each of `args`, one row each, on a
/// thread that may block.
async fn call_each(
    plugin: &LoadedPlugin,
    context: &CallContext,
    tables: &Tables,
    function: &'static str,
    args: Vec<Column>,
) -> anyhow::Result<()> {
    let engine = tables.engine().clone();
    let plugin = plugin.clone();
    let context = context.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for arg in args {
            engine.call(&plugin, &context, function, &[arg], 1)?;
        }
        Ok(())
    })
    .await?
}

/// Polls the monitor's report until `ready` holds, for up to 10 s.
async fn report_when(
    server: &ApiServer,
    key: &str,
    ready: impl Fn(&Json) -> bool,
) -> anyhow::Result<Json> {
    let started = Instant::now();
    loop {
        let response = server.get("/v1/admin/metrics.json", Some(key)).await?;
        assert_eq!(response.status, 200, "{}", response.text);
        let report = response.json();
        if ready(&report) {
            return Ok(report);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the monitor's report did not get there in 10 s: {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast_monitor(settings: MonitorSettings) -> Config {
    let mut config = Config::default();
    config.monitor = MonitorSettings {
        sample_interval: Duration::from_millis(100),
        ..settings
    };
    config
}

#[tokio::test]
async fn metrics_count_calls_and_requests() -> anyhow::Result<()> {
    let plugins = [("text", "text.wasm"), ("hostile", "hostile.wasm")];
    let (_db, host) = setup_with(fast_monitor(MonitorSettings::default()), &plugins).await?;
    let admin = host.catalog().rotate_admin_key().await?;
    let acme = host.catalog().create_tenant("metrics_api").await?;
    let server = ApiServer::start(&host).await?;

    const CALLS: usize = 7;
    let (text, mut context) = load_plugin(&host, "text").await?;
    context.tenant = "metrics_calls".to_owned();
    let words: Vec<Column> = (0..CALLS).map(|n| string(&format!("word {n}"))).collect();
    call_each(&text, &context, &host, "upper", words).await?;
    let (hostile, mut context) = load_plugin(&host, "hostile").await?;
    context.tenant = "metrics_calls".to_owned();
    call_each(&hostile, &context, &host, "spin", vec![int(-1)]).await?;

    for _ in 0..3 {
        assert_eq!(
            server.get("/v1/tables", Some(&acme.api_key)).await?.status,
            200
        );
    }
    let missing = server
        .get("/v1/tables/missing", Some(&acme.api_key))
        .await?;
    assert_eq!(missing.status, 404);

    let scrape = scrape(&server, &admin).await?;
    let upper = [
        ("tenant", "metrics_calls"),
        ("plugin", "text"),
        ("function", "upper"),
    ];
    assert_eq!(
        value(&scrape, "sandtable_calls_total", &upper),
        Some(CALLS as f64)
    );
    assert_eq!(
        value(&scrape, "sandtable_call_rows_total", &upper),
        Some(CALLS as f64)
    );
    assert_eq!(
        value(&scrape, "sandtable_call_duration_seconds_count", &upper),
        Some(CALLS as f64),
        "the latency histogram holds every call"
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == "sandtable_call_duration_seconds"
                && upper
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .map(|sample| &sample.value);
    let Some(Value::Histogram(buckets)) = histogram else {
        panic!("no latency histogram of text.upper: {histogram:?}");
    };
    let last = buckets.last().expect("the histogram has buckets");
    assert_eq!(last.less_than, f64::INFINITY);
    assert_eq!(last.count, CALLS as f64);
    assert!(
        buckets.len() > 10,
        "the buckets are the engine's latency bounds: {buckets:?}"
    );
    assert!(
        value(&scrape, "sandtable_call_fuel_used_total", &upper).unwrap() > 0.0,
        "fuel is counted"
    );
    assert_eq!(
        value(&scrape, "sandtable_call_faults_total", &upper),
        None,
        "a call without a fault counts none"
    );
    let spin = [
        ("tenant", "metrics_calls"),
        ("plugin", "hostile"),
        ("function", "spin"),
        ("class", "fuel_exhausted"),
    ];
    assert_eq!(
        value(&scrape, "sandtable_call_faults_total", &spin),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            "sandtable_slot_queue_wait_seconds_count",
            &[("tenant", "metrics_calls")]
        ),
        Some(CALLS as f64 + 1.0)
    );

    let requests = |route: &str, status: &str| {
        value(
            &scrape,
            "sandtable_api_requests_total",
            &[
                ("method", "GET"),
                ("route", route),
                ("status", status),
                ("tenant", "metrics_api"),
            ],
        )
    };
    assert_eq!(requests("/v1/tables", "200"), Some(3.0));
    assert_eq!(requests("/v1/tables/:table", "404"), Some(1.0));
    assert!(
        scrape.docs.contains_key("sandtable_calls_total"),
        "series have HELP lines"
    );

    // The host gauges appear from the monitor's second sample on.
    report_when(&server, &admin, |report| {
        report["samples"]
            .as_array()
            .is_some_and(|samples| samples.iter().any(|sample| !sample["host"].is_null()))
    })
    .await?;
    let scrape = self::scrape(&server, &admin).await?;
    assert!(value(&scrape, "sandtable_host_memory_total_bytes", &[]).unwrap() > 0.0);
    let cpu = value(&scrape, "sandtable_host_cpu_usage_ratio", &[]).unwrap();
    assert!((0.0..=1.0).contains(&cpu), "{cpu}");
    assert_eq!(value(&scrape, "sandtable_slot_queue_depth", &[]), Some(0.0));
    Ok(())
}

/// Returns the log of target `sandtable::monitor` at WARN and above, which
/// a subscriber of this process writes from the first call on.
fn monitor_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_env_filter("sandtable::monitor=warn")
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .init();
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write_all(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn alerts_fire_on_crossed_thresholds() -> anyhow::Result<()> {
    let log = monitor_log();
    let config = fast_monitor(MonitorSettings {
        host_memory_percent: 1,
        call_memory_percent: 5,
        fuel_exhausted_per_minute: 2,
        ..MonitorSettings::default()
    });
    let (_db, host) = setup_with(config, &[("hostile", "hostile.wasm")]).await?;
    let admin = host.catalog().rotate_admin_key().await?;
    let server = ApiServer::start(&host).await?;
    let (hostile, mut context) = load_plugin(&host, "hostile").await?;
    context.tenant = "alerts".to_owned();

    // `hog` allocates until its fuel runs out, at about 11 MiB of its
    // 128 MiB, which is over 5 %; `spin` stays near 1 MiB.
    call_each(&hostile, &context, &host, "hog", vec![int(-1)]).await?;
    // `hog` ran out of fuel too, so the first `spin` makes the second fuel
    // fault, which reaches 2 a minute. The later ones, while the rate stays
    // at or over the threshold, raise nothing more.
    let spins = vec![int(-1), int(-1), int(-1)];
    call_each(&hostile, &context, &host, "spin", spins).await?;

    // Every sample shows the host over 1 % of its memory, but the alert is
    // raised when it is first crossed only.
    let report = report_when(&server, &admin, |report| {
        report["samples"].as_array().is_some_and(|samples| {
            samples
                .iter()
                .filter(|sample| !sample["host"].is_null())
                .count()
                >= 3
        })
    })
    .await?;
    let counts = &report["alert_counts"];
    assert_eq!(counts["host_memory"], 1, "{report}");
    assert_eq!(counts["call_memory_near_limit"], 1, "{report}");
    assert_eq!(counts["fuel_exhaustion_rate"], 1, "{report}");
    assert_eq!(counts["warm_memory_growth"], 0, "{report}");
    let alerts = report["alerts"].as_array().unwrap();
    let subjects: Vec<&str> = alerts
        .iter()
        .map(|alert| alert["subject"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&"alerts/hostile@1.hog"), "{subjects:?}");
    assert!(subjects.contains(&"alerts/hostile"), "{subjects:?}");
    assert!(subjects.contains(&"host"), "{subjects:?}");

    let scrape = scrape(&server, &admin).await?;
    for alert in [
        "host_memory",
        "call_memory_near_limit",
        "fuel_exhaustion_rate",
    ] {
        let count = value(&scrape, "sandtable_alerts_total", &[("alert", alert)]);
        assert!(
            count.is_some_and(|count| count >= 1.0),
            "{alert}: {count:?}"
        );
    }

    let log = String::from_utf8(log.lock().unwrap().clone())?;
    for alert in [
        "host_memory",
        "call_memory_near_limit",
        "fuel_exhaustion_rate",
    ] {
        let line = log
            .lines()
            .find(|line| line.contains(&format!("alert=\"{alert}\"")))
            .unwrap_or_else(|| panic!("no WARN record of `{alert}` in:\n{log}"));
        assert!(line.contains("WARN"), "{line}");
    }
    Ok(())
}
