//! `/dashboard` in headless Chromium against a server on loopback: the page
//! reads the admin key from its URL fragment, fetches the monitor's figures
//! and draws them as SVG plots.
//!
//! Chromium comes from Debian's `chromium` package, which `scripts/setup`
//! installs.

use std::path::Path;
use std::time::{Duration, Instant};

use sandtable::config::{Config, MonitorSettings, PluginSettings, PoolSpec};
use sandtable::sandbox::{Column, DataType};
use sandtable_tests::api::ApiServer;
use sandtable_tests::tables::{load_plugin, setup_with};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The pool that the configuration puts every function of `text` in, slow
/// enough that calls wait for it.
const POOL: &str = "request-rate:dashboard";

/// Runs headless Chromium on `url` with `extra` arguments in a fresh
/// profile, and returns what it printed.
async fn chromium(url: &str, extra: &[&str]) -> anyhow::Result<String> {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; run `scripts/setup`, which installs Debian's `chromium` package"
    );
    let profile = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .map_err(|_| anyhow::anyhow!("chromium ran for more than 60 s on {url}"))??;
    anyhow::ensure!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test]
async fn dashboard_plots_live_figures() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.monitor = MonitorSettings {
        sample_interval: Duration::from_millis(200),
        ..MonitorSettings::default()
    };
    config.pools.insert(
        POOL.to_owned(),
        PoolSpec {
            requests_per_minute: 1200,
            ..PoolSpec::default()
        },
    );
    config.plugins.insert(
        "text".to_owned(),
        PluginSettings {
            pool: Some(POOL.to_owned()),
        },
    );
    let (_db, host) = setup_with(config, &[("text", "text.wasm")]).await?;
    let admin = host.catalog().rotate_admin_key().await?;
    let server = ApiServer::start(&host).await?;

    // Calls go on for a few samples, each waiting on the pool's 50 ms
    // spacing.
    let (plugin, context) = load_plugin(&host, "text").await?;
    let engine = host.engine().clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for n in 0..20 {
            let word = Column::from_json(&DataType::String, &[json!(format!("word {n}"))])
                .expect("a string fits");
            engine.call(&plugin, &context, "upper", &[word], 1)?;
        }
        Ok(())
    })
    .await??;
    let started = Instant::now();
    loop {
        let report = server
            .get("/v1/admin/metrics.json", Some(&admin))
            .await?
            .json();
        let samples = report["samples"].as_array().unwrap();
        let with_host = samples.iter().filter(|s| !s["host"].is_null()).count();
        if with_host >= 3 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "no host samples in 10 s: {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The page carries no data, so it needs no key, and it allows scripts
    // and requests to its own server only.
    let page = server.get("/dashboard", None).await?;
    assert_eq!(page.status, 200);
    let policy = page.headers["content-security-policy"].to_str()?;
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");

    let url = format!("{}/dashboard#key={admin}", server.base);
    let dom = chromium(&url, &["--dump-dom"]).await?;
    for series in [
        "default/text@1.upper",
        "default/request-rate:dashboard",
        "cpu",
        "memory",
        "disk read",
        "network received",
    ] {
        let marker = format!("data-series=\"{series}\"");
        let drawn = dom
            .split("<path ")
            .skip(1)
            .any(|path| path.contains(&marker) && path.contains("d=\"M"));
        assert!(drawn, "no line of `{series}` in the page:\n{dom}");
    }
    assert!(dom.contains("No alerts."), "the alerts table is drawn");
    assert!(!dom.contains("class=\"error\""), "the page shows an error");

    let dom = chromium(&format!("{}/dashboard", server.base), &["--dump-dom"]).await?;
    assert!(
        dom.contains("No admin key"),
        "a page without a key says how to give one:\n{dom}"
    );
    let wrong = format!("{}/dashboard#key=st_admin_wrong", server.base);
    let dom = chromium(&wrong, &["--dump-dom"]).await?;
    assert!(
        dom.contains("the admin key is not valid"),
        "a wrong key shows the server's message:\n{dom}"
    );

    // One screenshot, kept under target/ for a person to look at.
    let shot = sandtable_tests::workspace_root()
        .join("target")
        .join("dashboard.png");
    chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
        ],
    )
    .await?;
    let bytes = std::fs::read(&shot)?;
    assert!(bytes.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    Ok(())
}
