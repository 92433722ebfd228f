//! The cost of the Prometheus hooks on a real guest call, printed as a
//! table.
//!
//! Run with `cargo bench -p sandtable-tests --bench metrics`. It times
//! one-row calls of `text.upper` (the cheapest call there is, so the hooks'
//! share is the largest) first with no recorder installed, as every command
//! but `sandtable serve` runs, and then with the server's recorder. The two
//! runs alternate in rounds, since the machines are shared and noisy. It
//! also times rendering `/metrics` once the calls are counted.

use std::path::Path;
use std::time::{Duration, Instant};

use sandtable::sandbox::{CallContext, Column, DataType, EngineConfig, UdfEngine};
use sandtable::telemetry::metrics;
use serde_json::json;

const CALLS_PER_ROUND: usize = 5_000;
const ROUNDS: usize = 4;
/// Distinct tenants the calls are spread over, so that the recorder keeps
/// as many label sets as a busy server might.
const TENANTS: usize = 50;

fn main() {
    // SAFETY: no other thread runs yet.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let engine = UdfEngine::new(EngineConfig::default()).expect("the engine starts");
    let bytes = std::fs::read(Path::new(env!("SANDTABLE_PLUGIN_DIR")).join("text.wasm"))
        .expect("plugins are built");
    let plugin = engine.load(&bytes).expect("text loads");
    let contexts: Vec<CallContext> = (0..TENANTS)
        .map(|n| CallContext {
            tenant: format!("tenant_{n}"),
            plugin: "text".into(),
            version: 1,
            ..CallContext::default()
        })
        .collect();
    let word = Column::from_json(&DataType::String, &[json!("hello, sandbox")]).unwrap();
    let run = || {
        let started = Instant::now();
        for n in 0..CALLS_PER_ROUND {
            engine
                .call(
                    &plugin,
                    &contexts[n % TENANTS],
                    "upper",
                    std::slice::from_ref(&word),
                    1,
                )
                .expect("the call runs");
        }
        started.elapsed() / CALLS_PER_ROUND as u32
    };

    // Warm up the pooling allocator and caches.
    run();
    let mut without = Vec::new();
    for _ in 0..ROUNDS {
        without.push(run());
    }
    let handle = metrics::install().expect("no other recorder is installed");
    let mut with = Vec::new();
    for _ in 0..ROUNDS {
        with.push(run());
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (without, with) = (median(&mut without), median(&mut with));
    let started = Instant::now();
    let text = handle.render();
    let render = started.elapsed();

    println!("one-row calls of text.upper, median of {ROUNDS} rounds of {CALLS_PER_ROUND}");
    println!("{:<28} {:>12}", "", "per call");
    println!("{:<28} {:>9.2} us", "no recorder (CLI)", us(without));
    println!("{:<28} {:>9.2} us", "recorder installed (serve)", us(with));
    println!(
        "{:<28} {:>9.2} us ({:+.1} %)",
        "difference",
        us(with) - us(without),
        (us(with) / us(without) - 1.0) * 100.0
    );
    println!(
        "rendering /metrics: {:.2} ms for {} lines over {TENANTS} tenants",
        render.as_secs_f64() * 1e3,
        text.lines().count()
    );
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
