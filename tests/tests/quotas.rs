//! Tenant quotas against really built plugins: concurrent calls, fuel a
//! minute, caps on memory and fuel per row, rows stored, the fair share of
//! instance slots between tenants, and how the API reports each.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sandtable::config::Config;
use sandtable::sandbox::{
    CallContext, CallError, CallQuotas, CallRecord, Column, EngineConfig, FaultClass, LimitPolicy,
    LoadedPlugin, UdfEngine,
};
use sandtable::table::values::cell_json;
use sandtable::table::{TableError, Tables};
use sandtable_tests::api::ApiServer;
use sandtable_tests::tables::{
    add_plugin, columns, dump, insert_jsonl, plugin_bytes, setup_with, tenant_tables,
};
use serde_json::{Value, json};

/// How long each call of `hostile.stamped_sleep` sleeps, in milliseconds.
const SLEEP_MS: i64 = 150;

/// Starts an engine with `slots` instance slots for fresh instances.
fn engine_with_slots(slots: u32) -> UdfEngine {
    engine_with_policy(slots, LimitPolicy::default())
}

/// Starts an engine with `slots` instance slots and the limits `policy`.
fn engine_with_policy(slots: u32, policy: LimitPolicy) -> UdfEngine {
    UdfEngine::new(EngineConfig {
        policy,
        cache_dir: Some(
            sandtable_tests::workspace_root()
                .join("target")
                .join("test-cache"),
        ),
        max_instances: slots + 1,
        max_warm_instances: 1,
        ..EngineConfig::default()
    })
    .expect("the engine starts")
}

fn hostile(engine: &UdfEngine) -> LoadedPlugin {
    engine
        .load(&plugin_bytes("hostile.wasm"))
        .expect("hostile.wasm loads")
}

fn context(tenant: &str, quotas: CallQuotas) -> CallContext {
    CallContext {
        tenant: tenant.into(),
        plugin: "hostile".into(),
        version: 1,
        quotas,
        ..CallContext::default()
    }
}

fn ints(values: &[i64]) -> Column {
    Column::from_json(
        &sandtable::sandbox::DataType::Int,
        &values.iter().map(|&v| json!(v)).collect::<Vec<_>>(),
    )
    .expect("ints fit an int column")
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as i64
}

/// Calls `hostile.stamped_sleep` once and returns the wall-clock time its
/// guest code started, in microseconds, with the call's record.
fn stamped_call(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: &CallContext,
) -> (i64, CallRecord) {
    let output = engine
        .call(plugin, context, "stamped_sleep", &[ints(&[SLEEP_MS])], 1)
        .expect("the call runs");
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    let started = cell_json(&output.column, 0)
        .as_i64()
        .expect("an int start time");
    (
        started,
        output.records.into_iter().next().expect("one record"),
    )
}

/// Returns the largest number of calls that ran at once, given their start
/// times in microseconds, each running `SLEEP_MS`. Each interval is
/// shortened by 10 ms at both ends, so that a call that starts as another
/// ends does not count as running beside it.
fn max_overlap(starts: &[i64]) -> usize {
    let margin = 10_000;
    let length = SLEEP_MS * 1000;
    let mut events: Vec<(i64, i32)> = starts
        .iter()
        .flat_map(|&start| [(start + margin, 1), (start + length - margin, -1)])
        .collect();
    events.sort();
    let mut running = 0i32;
    let mut most = 0i32;
    for (_, change) in events {
        running += change;
        most = most.max(running);
    }
    most as usize
}

/// When a call got its instance slot and when its guest code started, in
/// microseconds of the wall clock.
#[derive(Debug, Clone, Copy)]
struct CallTimes {
    acquired: i64,
    started: i64,
}

/// Calls `hostile.stamped_sleep` once and returns its times with its record.
/// The slot's time is the time of the call plus its queue wait, since the
/// call queues for its slot as soon as it starts.
fn timed_call(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: &CallContext,
) -> (CallTimes, CallRecord) {
    let called = now_us();
    let (started, record) = stamped_call(engine, plugin, context);
    let acquired = called + record.queue_wait_us as i64;
    (CallTimes { acquired, started }, record)
}

/// Starts `threads` threads that each wait at `barrier`, then make
/// `calls_each` calls of `stamped_sleep` in `context`. Each thread returns
/// its calls' times.
fn spawn_calls(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: CallContext,
    threads: usize,
    calls_each: usize,
    barrier: Arc<Barrier>,
) -> Vec<thread::JoinHandle<Vec<CallTimes>>> {
    (0..threads)
        .map(|_| {
            let (engine, plugin, context, barrier) = (
                engine.clone(),
                plugin.clone(),
                context.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                (0..calls_each)
                    .map(|_| timed_call(&engine, &plugin, &context).0)
                    .collect()
            })
        })
        .collect()
}

fn join_all(handles: Vec<thread::JoinHandle<Vec<CallTimes>>>) -> Vec<CallTimes> {
    handles
        .into_iter()
        .flat_map(|handle| handle.join().expect("a calling thread does not panic"))
        .collect()
}

fn start_times(times: &[CallTimes]) -> Vec<i64> {
    times.iter().map(|times| times.started).collect()
}

#[test]
fn concurrent_quota_holds_beside_other_tenant() {
    let engine = engine_with_slots(8);
    let plugin = hostile(&engine);
    let limited = CallQuotas {
        max_concurrent_calls: Some(2),
        ..CallQuotas::default()
    };
    let barrier = Arc::new(Barrier::new(6 + 4));
    let a = spawn_calls(
        &engine,
        &plugin,
        context("a", limited),
        6,
        1,
        barrier.clone(),
    );
    let b = spawn_calls(
        &engine,
        &plugin,
        context("b", CallQuotas::default()),
        4,
        1,
        barrier,
    );
    let a_starts = start_times(&join_all(a));
    let b_starts = start_times(&join_all(b));

    let a_overlap = max_overlap(&a_starts);
    assert!(
        a_overlap <= 2,
        "tenant a ran {a_overlap} calls at once under a quota of 2"
    );
    assert!(
        a_overlap >= 2,
        "tenant a never ran 2 calls at once: {a_starts:?}"
    );
    // Six calls two at a time take three rounds. Tenant b's four calls do
    // not wait behind a's queue, so all of them start before a's last round.
    let a_last = *a_starts.iter().max().unwrap();
    for start in &b_starts {
        assert!(
            *start < a_last,
            "tenant b's call started at {start}, after tenant a's last call at {a_last}"
        );
    }
}

#[test]
fn fair_slots_admit_other_tenant() {
    // Four slots; tenant a keeps eight callers busy, so four of its calls
    // always wait. A slot that frees goes to the tenant holding the fewest,
    // so tenant b's one call waits for one of a's calls to end, not for a's
    // queue.
    let engine = engine_with_slots(4);
    let plugin = hostile(&engine);
    let barrier = Arc::new(Barrier::new(8 + 1));
    let a = spawn_calls(
        &engine,
        &plugin,
        context("a", CallQuotas::default()),
        8,
        8,
        barrier.clone(),
    );
    barrier.wait();
    thread::sleep(Duration::from_millis(3 * SLEEP_MS as u64));
    let queued = now_us();
    let (b_times, b_record) = timed_call(&engine, &plugin, &context("b", CallQuotas::default()));
    let a_times = join_all(a);

    // Under first come, first served, the four calls of a that were queued
    // before b would all get slots before it.
    let a_ahead: Vec<CallTimes> = a_times
        .iter()
        .copied()
        .filter(|times| times.acquired > queued && times.acquired < b_times.acquired)
        .collect();
    // One call of a may have taken a slot that freed as b was queuing.
    assert!(
        a_ahead.len() <= 1,
        "{} calls of tenant a got slots after b queued and before b did (b waited {} us): \
         {a_ahead:?}",
        a_ahead.len(),
        b_record.queue_wait_us
    );
    assert!(
        a_times
            .iter()
            .any(|times| times.acquired > b_times.acquired),
        "tenant a's calls ended before b's call, so b never competed: {a_times:?}"
    );
    assert!(
        b_times.started >= b_times.acquired,
        "b's guest code started before its slot: {b_times:?}"
    );
}

#[test]
fn fuel_quota_rejects_until_refilled() {
    let engine = engine_with_slots(4);
    let plugin = hostile(&engine);
    let quotas = CallQuotas {
        fuel_per_minute: Some(5_000_000),
        ..CallQuotas::default()
    };
    let a = context("a", quotas);
    // `spin(-1)` loops until its fuel, 10 million for one row, runs out:
    // twice the minute's budget.
    let output = engine
        .call(&plugin, &a, "spin", &[ints(&[-1])], 1)
        .expect("the first call runs");
    assert_eq!(output.errors[0].class, FaultClass::FuelExhausted);
    let error = engine
        .call(&plugin, &a, "spin", &[ints(&[1])], 1)
        .expect_err("the budget is spent");
    let CallError::FuelQuota {
        tenant,
        fuel_per_minute,
        retry_after,
    } = &error
    else {
        panic!("expected a fuel quota error, got {error}");
    };
    assert_eq!(tenant, "a");
    assert_eq!(*fuel_per_minute, 5_000_000);
    // 10 million fuel at 5 million a minute is paid off in two minutes, and
    // a minute's budget may run ahead.
    assert!(
        retry_after > &Duration::from_secs(50) && retry_after <= &Duration::from_secs(60),
        "retry after {retry_after:?}"
    );
    let message = error.to_string();
    assert!(message.contains("fuel_per_minute"), "{message}");
    assert!(message.contains("retry after"), "{message}");

    // Another tenant's calls go on.
    let output = engine
        .call(&plugin, &context("b", quotas), "spin", &[ints(&[7])], 1)
        .expect("tenant b has its own budget");
    assert_eq!(cell_json(&output.column, 0), json!(7));
}

#[test]
fn quota_caps_memory_and_fuel() {
    // Fuel to spare, so that the memory cap is what stops `hog`.
    let engine = engine_with_policy(
        4,
        LimitPolicy {
            default_fuel_per_row: 1_000_000_000_000,
            max_fuel_per_row: 1_000_000_000_000,
            ..LimitPolicy::default()
        },
    );
    let plugin = hostile(&engine);
    let memory_capped = context(
        "a",
        CallQuotas {
            max_memory_bytes: Some(32 << 20),
            ..CallQuotas::default()
        },
    );
    let output = engine
        .call(&plugin, &memory_capped, "hog", &[ints(&[-1])], 1)
        .expect("the call runs");
    assert_eq!(output.errors[0].class, FaultClass::MemoryLimit);
    let peak = output.records.last().unwrap().memory_peak_bytes;
    assert!(peak <= 32 << 20, "peak {peak} bytes under a cap of 32 MiB");

    let fuel_capped = context(
        "a",
        CallQuotas {
            max_fuel_per_row: Some(1_000_000),
            ..CallQuotas::default()
        },
    );
    let output = engine
        .call(&plugin, &fuel_capped, "spin", &[ints(&[-1])], 1)
        .expect("the call runs");
    assert_eq!(output.errors[0].class, FaultClass::FuelExhausted);
    let fuel = output.records.last().unwrap().fuel_used;
    assert!(
        fuel <= 1_000_000,
        "used {fuel} fuel under a cap of 1,000,000 a row"
    );

    // Without the quota the same call grows past the cap.
    let output = engine
        .call(
            &plugin,
            &context("b", CallQuotas::default()),
            "hog",
            &[ints(&[-1])],
            1,
        )
        .expect("the call runs");
    let peak = output.records.last().unwrap().memory_peak_bytes;
    assert!(peak > 32 << 20, "peak {peak} bytes with no quota");
}

fn quota_config(text: &str) -> Config {
    Config::parse(text, "test config").expect("a valid test configuration")
}

async fn live_count(tables: &Tables, table: &str) -> usize {
    dump(tables, table).await.expect("the table reads").len()
}

#[tokio::test]
async fn rows_quota_rejects_whole_insert() -> anyhow::Result<()> {
    let (_db, host) = setup_with(quota_config("[quotas.acme]\nmax_rows = 10\n"), &[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let tables = tenant_tables(&host, &acme).await?;
    tables.create_table("a", &columns(&["n:int"])).await?;
    tables.create_table("b", &columns(&["n:int"])).await?;
    let rows = |count: i64| (0..count).map(|n| json!({"n": n})).collect::<Vec<_>>();
    insert_jsonl(&tables, "a", &rows(6)).await?;
    insert_jsonl(&tables, "b", &rows(3)).await?;
    let history = tables.history("b").await?.len();

    let error = insert_jsonl(&tables, "b", &rows(2))
        .await
        .expect_err("9 stored and 2 more pass 10");
    assert!(
        matches!(
            error,
            TableError::RowsQuota {
                max_rows: 10,
                stored: 9,
                adding: 2,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("acme"), "{message}");
    assert!(message.contains("max_rows"), "{message}");
    assert_eq!(live_count(&tables, "b").await, 3);
    assert_eq!(tables.history("b").await?.len(), history);

    // Deleted rows free their share, and other tenants are not counted.
    tables.delete("a", Some("n < 4")).await?;
    insert_jsonl(&tables, "b", &rows(5)).await?;
    assert_eq!(live_count(&tables, "b").await, 8);
    // Undoing the delete would bring its 4 rows back past the quota.
    let error = tables
        .revert("a")
        .await
        .expect_err("10 stored and 4 restored pass 10");
    assert!(
        matches!(
            error,
            TableError::RowsQuota {
                stored: 10,
                adding: 4,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(live_count(&tables, "a").await, 2);
    host.create_table("c", &columns(&["n:int"])).await?;
    insert_jsonl(&host, "c", &rows(20)).await?;
    Ok(())
}

#[tokio::test]
async fn api_reports_quota_errors() -> anyhow::Result<()> {
    let config = quota_config("[quotas.acme]\nfuel_per_minute = 5000000\nmax_rows = 2\n");
    let (_db, host) = setup_with(config, &[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let tables = tenant_tables(&host, &acme).await?;
    add_plugin(&tables, "hostile", "hostile.wasm").await?;
    tables.create_table("t", &columns(&["n:int"])).await?;
    let server = ApiServer::start(&host).await?;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let insert = |body: &'static str| {
        client
            .post(format!("{base}/v1/tables/t/rows?on_error=ignore"))
            .bearer_auth(&acme.api_key)
            .body(body)
            .send()
    };

    let response = insert("{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n").await?;
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "quota", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_rows"),
        "{body}"
    );

    // One row whose computed cell spins through a minute's fuel, then a
    // call that the spent budget refuses.
    let response = insert("{\"n\": -1}\n").await?;
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await?
    );
    let response = client
        .post(format!("{base}/v1/tables/t/columns"))
        .bearer_auth(&acme.api_key)
        .json(&json!({"name": "spun", "expression": "hostile.spin(n)", "on_error": "ignore"}))
        .send()
        .await?;
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await?
    );
    let response = insert("{\"n\": 2}\n").await?;
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Retry-After in {:?}", response.headers()))?;
    assert!(
        (50..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "quota", "{body}");
    assert_eq!(live_count(&tables, "t").await, 1);

    // A direct call meets the same spent budget.
    let response = client
        .post(format!("{base}/v1/plugins/hostile/call"))
        .bearer_auth(&acme.api_key)
        .json(&json!({"function": "spin", "rows": [1]}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429);
    assert!(
        response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    Ok(())
}
