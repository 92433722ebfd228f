//! Resource pools and outbound HTTP against a real HTTP server on 127.0.0.1,
//! real Postgres and really built plugins: rates, retries, tokens,
//! allow-lists and redirects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandtable::config::Config;
use sandtable::sandbox::{
    BatchOutput, CallContext, Column, DataType, EngineConfig, LoadedPlugin, UdfEngine,
};
use sandtable::table::Tables;
use sandtable_tests::http::{
    ConnectionCounter, LoopbackServer, RateLimitHeaders, ServerOptions, max_in_window, span,
};
use sandtable_tests::tables::{
    add_plugin, columns, dump, ignore, insert_jsonl, load_plugin, setup_with,
};
use serde_json::{Value, json};

/// Parses a configuration given as TOML.
fn config(text: &str) -> Config {
    Config::parse(text, "test config").expect("a valid test configuration")
}

/// Adds `http-json` as `web` and `hostile-http` as `rogue`, and grants both
/// the server's host.
async fn http_tables(
    config: Config,
    server: &LoopbackServer,
) -> anyhow::Result<(sandtable_tests::TestDb, Tables)> {
    let (db, tables) = setup_with(
        config,
        &[("web", "http_json.wasm"), ("rogue", "hostile_http.wasm")],
    )
    .await?;
    for plugin in ["web", "rogue"] {
        tables
            .catalog()
            .grant_host(
                tables.tenant(),
                plugin,
                &server.authority().parse().unwrap(),
            )
            .await?;
    }
    Ok((db, tables))
}

fn strings(values: &[&str]) -> Column {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    Column::from_json(&DataType::String, &values).unwrap()
}

fn jsons(values: &[Value]) -> Column {
    Column::from_json(&DataType::Json, values).unwrap()
}

/// Calls `function` on a thread for blocking work, as the tables do.
async fn call(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: &CallContext,
    function: &str,
    args: Vec<Column>,
) -> BatchOutput {
    let (engine, plugin, context, function) = (
        engine.clone(),
        plugin.clone(),
        context.clone(),
        function.to_owned(),
    );
    let rows = args.first().map_or(0, Column::len);
    tokio::task::spawn_blocking(move || engine.call(&plugin, &context, &function, &args, rows))
        .await
        .unwrap()
        .expect("the call runs")
}

/// Builds the arguments of one `web.post` of `{"n": n}` to the server's `/echo`.
fn post_args(server: &LoopbackServer, n: usize) -> Vec<Column> {
    vec![
        strings(&[&server.url("/echo")]),
        jsons(&[json!({ "n": n })]),
        strings(&["/echo/n"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_pool_paces_16_callers() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    // No section: `request-rate:http-json` gets the default 600 a minute
    // with a burst of 1.
    let (_db, tables) = http_tables(Config::default(), &server).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;
    let run = Duration::from_secs(20);
    let started = Instant::now();
    let mut callers = Vec::new();
    for caller in 0..16 {
        let (engine, plugin, context) = (tables.engine().clone(), plugin.clone(), context.clone());
        let args = post_args(&server, caller);
        callers.push(tokio::task::spawn_blocking(move || {
            let mut calls = 0;
            while started.elapsed() < run {
                let output = engine.call(&plugin, &context, "post", &args, 1).unwrap();
                assert!(output.errors.is_empty(), "{:?}", output.errors);
                calls += 1;
            }
            calls
        }));
    }
    let mut calls = 0;
    for caller in callers {
        calls += caller.await?;
    }
    // Requests that started before the end count; a caller may have been
    // waiting for its permit when the run ended.
    let arrivals: Vec<Instant> = server
        .arrivals("/echo")
        .into_iter()
        .filter(|arrived| arrived.duration_since(started) < run)
        .collect();
    let total = arrivals.len();
    let busiest = max_in_window(&arrivals, Duration::from_secs(1));
    eprintln!("{total} requests in 20 s from {calls} calls, at most {busiest} in one second");
    assert!(
        (194..=206).contains(&total),
        "{total} requests in 20 s ({calls} calls)"
    );
    let busiest = max_in_window(&arrivals, Duration::from_secs(1));
    assert!(busiest <= 11, "{busiest} requests in one second");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unlisted_host_gets_no_connection() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let counter = ConnectionCounter::start().await;
    let (_db, tables) = http_tables(Config::default(), &server).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;
    let target = counter.url("/echo");
    let output = call(
        tables.engine(),
        &plugin,
        &context,
        "post",
        vec![strings(&[&target]), jsons(&[json!({})]), strings(&["x"])],
    )
    .await;
    assert_eq!(output.errors.len(), 1);
    let message = &output.errors[0].message;
    assert!(message.contains(&counter.authority()), "{message}");
    assert!(message.contains("not on the allow-list"), "{message}");
    assert!(
        message.contains("sandtable plugin grant web --host"),
        "{message}"
    );
    // The request record shows the refusal too.
    assert_eq!(output.requests.len(), 1);
    assert_eq!(output.requests[0].outcome, "denied");
    assert_eq!(output.requests[0].status, 0);
    assert_eq!(counter.connections().await, 0);

    // `localhost` is not `127.0.0.1`.
    let port = server.addr().port();
    let output = call(
        tables.engine(),
        &plugin,
        &context,
        "post",
        vec![
            strings(&[&format!("http://localhost:{port}/echo")]),
            jsons(&[json!({})]),
            strings(&["x"]),
        ],
    )
    .await;
    assert!(
        output.errors[0].message.contains("not on the allow-list"),
        "{:?}",
        output.errors
    );
    assert_eq!(server.count("/echo"), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugin_without_host_grants_reaches_nothing() -> anyhow::Result<()> {
    let counter = ConnectionCounter::start().await;
    let (_db, tables) = setup_with(Config::default(), &[("web", "http_json.wasm")]).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;
    let output = call(
        tables.engine(),
        &plugin,
        &context,
        "post",
        vec![
            strings(&[&counter.url("/")]),
            jsons(&[json!({})]),
            strings(&["x"]),
        ],
    )
    .await;
    let message = &output.errors[0].message;
    assert!(message.contains("may reach no host"), "{message}");
    assert_eq!(counter.connections().await, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirect_to_unlisted_host_rejected() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let counter = ConnectionCounter::start().await;
    let (_db, tables) = http_tables(Config::default(), &server).await?;
    let (plugin, context) = load_plugin(&tables, "rogue").await?;
    let redirect = server.url(&format!("/redirect?to={}", counter.url("/stolen")));
    // `fetch` follows redirects itself; the host checks each hop again.
    let output = call(
        tables.engine(),
        &plugin,
        &context,
        "fetch",
        vec![strings(&[&redirect])],
    )
    .await;
    assert_eq!(output.errors.len(), 1, "{:?}", output.column);
    assert!(
        output.errors[0].message.contains("not on the allow-list"),
        "{:?}",
        output.errors
    );
    assert_eq!(server.count("/redirect"), 1);
    assert_eq!(counter.connections().await, 0);
    let outcomes: Vec<(&str, u16)> = output
        .requests
        .iter()
        .map(|record| (record.outcome.as_str(), record.status))
        .collect();
    assert_eq!(outcomes, [("ok", 302), ("denied", 0)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_pauses_then_stops() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions {
        limited_failures: 1,
        retry_after_secs: Some(1),
        ..ServerOptions::default()
    })
    .await;
    let settings = config("[http]\nretries = 2\nbackoff_ms = 10\n");
    let (_db, tables) = http_tables(settings, &server).await?;
    tables
        .create_table("jobs", &columns(&["url:string", "body:json"]))
        .await?;
    let rows = [
        json!({"url": server.url("/always-429"), "body": {"n": 0}}),
        json!({"url": server.url("/echo"), "body": {"n": 1}}),
        json!({"url": server.url("/limited"), "body": {"n": 2}}),
        json!({"url": server.url("/echo"), "body": {"n": 3}}),
    ];
    insert_jsonl(&tables, "jobs", &rows).await?;
    tables
        .add_computed_column(
            "jobs",
            "response",
            "web.post(url, body, '')",
            &ignore(),
            &(),
        )
        .await?;
    let stored = dump(&tables, "jobs").await?;

    // Three attempts: the first and two retries, each after the pause.
    let tries = server.arrivals("/always-429");
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert!(
        span(&tries) >= Duration::from_millis(1900),
        "{:?}",
        span(&tries)
    );
    assert_eq!(stored[0]["response"], Value::Null);
    assert_eq!(stored[0]["response.errortype"], "guest_error");
    let message = stored[0]["response.errormsg"].as_str().unwrap();
    assert!(message.contains("429"), "{message}");

    // `/limited` fails once, then the retry after its `Retry-After` works.
    let limited = server.arrivals("/limited");
    assert_eq!(limited.len(), 2);
    assert!(
        span(&limited) >= Duration::from_millis(950),
        "{:?}",
        span(&limited)
    );
    assert_eq!(stored[2]["response"], json!({"ok": true}));
    for row in [1, 3] {
        assert_eq!(
            stored[row]["response"]["echo"],
            json!({"n": row}),
            "{}",
            stored[row]
        );
        assert_eq!(stored[row]["response.errortype"], Value::Null);
    }
    Ok(())
}

/// Returns server options whose chat responses count 1,000 tokens each, and
/// a pool whose budget allows 2,000 at once and 1,000 a second after.
fn token_setup() -> (ServerOptions, Config) {
    let options = ServerOptions {
        prompt_tokens: 700,
        completion_tokens: 300,
        ..ServerOptions::default()
    };
    let settings = config(
        "[openai]\nrequests_per_minute = 60000\nburst = 10\ntokens_per_minute = 60000\ntoken_burst = 2000\n",
    );
    (options, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_budget_ignores_lower_reports() -> anyhow::Result<()> {
    for (plugin, function, extra) in [("web", "chat", true), ("rogue", "chat_underreport", false)] {
        let (options, settings) = token_setup();
        let server = LoopbackServer::start(options).await;
        let (_db, tables) = http_tables(settings, &server).await?;
        let (loaded, context) = load_plugin(&tables, plugin).await?;
        let url = server.url("/v1/chat/completions");
        let prompts = ["a", "b", "c", "d", "e", "f"];
        let mut args = vec![strings(&[url.as_str(); 6])];
        if extra {
            args.push(strings(&["gpt-test"; 6]));
        }
        args.push(strings(&prompts));
        let output = call(tables.engine(), &loaded, &context, function, args).await;
        assert!(output.errors.is_empty(), "{:?}", output.errors);
        // Three fit the budget at once (the third takes it to 3,000 against
        // a burst of 2,000); the other three wait 1 s each.
        let arrivals = server.arrivals("/v1/chat/completions");
        assert_eq!(arrivals.len(), 6);
        assert!(
            span(&arrivals) >= Duration::from_millis(2700),
            "{plugin}: {:?}",
            span(&arrivals)
        );
        assert!(
            max_in_window(&arrivals, Duration::from_millis(900)) <= 3,
            "{plugin}: {arrivals:?}"
        );
        let record = &output.records[0];
        assert_eq!(record.pool.as_deref(), Some("openai"));
        assert_eq!(
            record.tokens, 6000,
            "{plugin}: the host counts the responses"
        );
        assert!(output.requests.iter().all(|request| request.tokens == 1000));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_headers_hold_the_pool_until_their_reset() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions {
        rate_limit_headers: Some(RateLimitHeaders {
            remaining_requests: 0,
            reset_requests: "1s".to_owned(),
            ..RateLimitHeaders::default()
        }),
        ..ServerOptions::default()
    })
    .await;
    let settings =
        config("[openai]\nrequests_per_minute = 6000\nburst = 5\ntokens_per_minute = 90000\n");
    let (_db, tables) = http_tables(settings, &server).await?;
    let (plugin, context) = load_plugin(&tables, "web").await?;
    let url = server.url("/v1/chat/completions");
    let output = call(
        tables.engine(),
        &plugin,
        &context,
        "chat",
        vec![
            strings(&[&url, &url, &url]),
            strings(&["m", "m", "m"]),
            strings(&["x", "y", "z"]),
        ],
    )
    .await;
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    assert_eq!(
        output.column.json_at(0),
        json!("echo: x"),
        "the response's content comes back"
    );
    // Each response reports that no request remains until 1 s from now.
    let arrivals = server.arrivals("/v1/chat/completions");
    assert!(
        span(&arrivals) >= Duration::from_millis(1900),
        "{:?}",
        span(&arrivals)
    );
    assert_eq!(output.records[0].tokens, 300);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_operations_sharing_a_pool_stay_within_it() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let settings = config("[pools.\"request-rate:http-json\"]\nrequests_per_minute = 600\n");
    let (_db, tables) = http_tables(settings, &server).await?;
    for table in ["a", "b"] {
        tables
            .create_table(table, &columns(&["url:string", "body:json"]))
            .await?;
        let rows: Vec<Value> = (0..25)
            .map(|n| json!({"url": server.url("/echo"), "body": {"n": n}}))
            .collect();
        insert_jsonl(&tables, table, &rows).await?;
    }
    let add = |table: &'static str| {
        let tables = tables.clone();
        async move {
            tables
                .add_computed_column(
                    table,
                    "response",
                    "web.post(url, body, '/echo/n')",
                    &ignore(),
                    &(),
                )
                .await
        }
    };
    let (a, b) = tokio::join!(add("a"), add("b"));
    assert_eq!(a?.summary.cell_errors, 0);
    assert_eq!(b?.summary.cell_errors, 0);
    let arrivals = server.arrivals("/echo");
    assert_eq!(arrivals.len(), 50);
    let busiest = max_in_window(&arrivals, Duration::from_secs(1));
    assert!(busiest <= 11, "{busiest} requests in one second");
    assert!(
        span(&arrivals) >= Duration::from_millis(4800),
        "{:?}",
        span(&arrivals)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_plugin_charged_per_call() -> anyhow::Result<()> {
    let settings = config(
        "[pools.\"request-rate:slow\"]\nrequests_per_minute = 600\n[plugins.text]\npool = \"request-rate:slow\"\n",
    );
    let (_db, tables) = setup_with(settings, &[("text", "text.wasm")]).await?;
    let (plugin, context) = load_plugin(&tables, "text").await?;
    let started = Instant::now();
    let mut waited_us = 0;
    for _ in 0..6 {
        let output = call(
            tables.engine(),
            &plugin,
            &context,
            "upper",
            vec![strings(&["a", "b"])],
        )
        .await;
        assert_eq!(output.column.json_at(1), json!("B"));
        let record = &output.records[0];
        assert_eq!(record.pool.as_deref(), Some("request-rate:slow"));
        assert_eq!(record.requests, 0);
        waited_us += record.pool_wait_us;
    }
    // Six calls at 10 a second: the last starts 500 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(480),
        "{:?}",
        started.elapsed()
    );
    assert!(waited_us >= 400_000, "{waited_us} us of waits");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn denied_pool_fails_its_calls_naming_it() -> anyhow::Result<()> {
    let settings = config(
        "[pools.\"request-rate:slow\"]\ndeny = true\n[plugins.text]\npool = \"request-rate:slow\"\n",
    );
    let (_db, tables) = setup_with(settings, &[("text", "text.wasm")]).await?;
    let (plugin, context) = load_plugin(&tables, "text").await?;
    let engine = tables.engine().clone();
    let error = tokio::task::spawn_blocking(move || {
        engine.call(&plugin, &context, "upper", &[strings(&["a"])], 1)
    })
    .await?
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("request-rate:slow") && error.contains("denied"),
        "{error}"
    );
    assert!(error.contains("test config"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_waiting_on_a_pool_leave_slots_for_other_plugins() -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    // A pool of one request a second, and an engine of 8 slots: the 8
    // callers of `web` may hold at most 4 of them while they wait.
    let settings = config("[pools.\"request-rate:http-json\"]\nrequests_per_minute = 60\n");
    let (db, _) = http_tables(settings.clone(), &server).await?;
    let engine = UdfEngine::new(EngineConfig {
        max_instances: 8,
        ..EngineConfig::default()
    })?;
    let catalog = sandtable::catalog::Catalog::open(db.pool().clone())
        .await?
        .with_config(Arc::new(settings));
    let tenant = catalog.tenant(sandtable::catalog::DEFAULT_TENANT).await?;
    let tables = Tables::new(catalog, engine, tenant);
    add_plugin(&tables, "text", "text.wasm").await?;
    let (web, web_context) = load_plugin(&tables, "web").await?;
    let (text, text_context) = load_plugin(&tables, "text").await?;
    let mut waiting = Vec::new();
    for n in 0..8 {
        let (engine, web, context) = (tables.engine().clone(), web.clone(), web_context.clone());
        let args = post_args(&server, n);
        waiting.push(tokio::task::spawn_blocking(move || {
            engine.call(&web, &context, "post", &args, 1).unwrap();
            Instant::now()
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let output = call(
        tables.engine(),
        &text,
        &text_context,
        "upper",
        vec![strings(&["ok"])],
    )
    .await;
    let text_done = Instant::now();
    assert_eq!(output.column.json_at(0), json!("OK"));
    let mut last_web = text_done;
    for caller in waiting {
        last_web = last_web.max(caller.await?);
    }
    // The pool lets the eighth request go 7 s after the first; the text
    // call finished long before that, since it never queued behind them.
    assert!(
        last_web > text_done + Duration::from_secs(3),
        "{:?}",
        last_web - text_done
    );
    assert_eq!(server.count("/echo"), 8);
    Ok(())
}
