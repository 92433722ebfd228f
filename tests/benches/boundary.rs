//! The cost of the sandbox boundary, printed as tables.
//!
//! Run with `cargo bench -p sandtable-tests --bench boundary`. Every figure
//! is measured in the same run as the figure it is compared with, since the
//! machines are shared and noisy: a ratio is more telling than a rate.
//! `RUST_BACKTRACE` is removed first, because with it wasmtime captures a
//! backtrace on every error.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use sandtable::sandbox::{CallContext, Column, DataType, EngineConfig, LoadedPlugin, UdfEngine};
use serde_json::json;

const TOTAL_ROWS: usize = 1_000_000;
const BATCH_SIZES: [usize; 4] = [1, 32, 1024, 8192];
/// Small batches run fewer rows, so that batch size 1 does not take minutes.
const MAX_CALLS: usize = 20_000;
/// Calls of the fresh-instance section.
const FRESH_CALLS: usize = 20_000;

fn plugin_bytes(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("SANDTABLE_PLUGIN_DIR")).join(file)).expect("plugins are built")
}

fn new_engine(fuel: bool, epochs: bool) -> UdfEngine {
    UdfEngine::new(EngineConfig {
        fuel,
        epochs,
        ..EngineConfig::default()
    })
    .expect("the engine starts")
}

fn context() -> CallContext {
    CallContext {
        tenant: "bench".into(),
        plugin: "bench".into(),
        version: 1,
        ..CallContext::default()
    }
}

/// Texts of 5 to 40 characters, some of them not ASCII.
fn texts(rows: usize) -> Vec<String> {
    let words = [
        "sandbox", "Wörter", "column", "batch", "ÉLAN", "fuel", "tenant", "x",
    ];
    (0..rows)
        .map(|i| {
            (0..1 + i % 5)
                .map(|j| words[(i + j * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn string_column(texts: &[String]) -> Column {
    let values: Vec<_> = texts.iter().map(|text| json!(text)).collect();
    Column::from_json(&DataType::String, &values).unwrap()
}

fn int_column(values: &[i64]) -> Column {
    let values: Vec<_> = values.iter().map(|value| json!(value)).collect();
    Column::from_json(&DataType::Int, &values).unwrap()
}

/// Runs every batch through a function; returns the wall time.
fn run_sandboxed(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    function: &str,
    batches: &[Vec<Column>],
) -> Duration {
    let context = context();
    let started = Instant::now();
    for args in batches {
        let rows = args[0].len();
        let output = engine.call(plugin, &context, function, args, rows).unwrap();
        assert!(output.errors.is_empty(), "{:?}", output.errors.first());
        black_box(output);
    }
    started.elapsed()
}

fn chunks<T: Clone>(values: &[T], batch: usize) -> Vec<Vec<T>> {
    values.chunks(batch).map(<[T]>::to_vec).collect()
}

struct Case {
    label: &'static str,
    file: &'static str,
    function: &'static str,
}

/// The benchmark's sections, run in this order; naming some on the command
/// line (`cargo bench --bench boundary -- fresh`) runs only those.
const SECTIONS: [(&str, fn()); 4] = [
    ("throughput", throughput),
    ("fresh", fresh_instance),
    ("compile", compile),
    ("metering", metering),
];

fn main() {
    // SAFETY: the benchmark is single-threaded at this point.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    for name in &chosen {
        if !SECTIONS.iter().any(|(section, _)| section == name) {
            let names: Vec<&str> = SECTIONS.iter().map(|(section, _)| *section).collect();
            eprintln!(
                "unknown section `{name}`; the sections are {}",
                names.join(", ")
            );
            std::process::exit(2);
        }
    }
    for (name, run) in SECTIONS {
        if chosen.is_empty() || chosen.iter().any(|chosen| chosen == name) {
            run();
        }
    }
}

fn throughput() {
    let engine = new_engine(true, true);
    let text = engine.load(&plugin_bytes("text.wasm")).unwrap();
    let arith = engine.load(&plugin_bytes("arith.wasm")).unwrap();

    println!("Rows a second through the sandbox against the same work native in the host");
    println!("(ratio = sandboxed time / native time; lower is better)\n");
    println!(
        "{:<14} {:>6} {:>9} {:>14} {:>14} {:>7}",
        "function", "batch", "rows", "wasm rows/s", "native rows/s", "ratio"
    );
    let cases = [
        Case {
            label: "text.upper",
            file: "text",
            function: "upper",
        },
        Case {
            label: "text.length",
            file: "text",
            function: "length",
        },
        Case {
            label: "arith.add",
            file: "arith",
            function: "add",
        },
    ];
    for case in &cases {
        for batch in BATCH_SIZES {
            let rows = TOTAL_ROWS.min(batch * MAX_CALLS);
            let plugin = if case.file == "text" { &text } else { &arith };
            let (sandboxed, native) = match case.function {
                "add" => {
                    let a: Vec<i64> = (0..rows as i64).collect();
                    let b: Vec<i64> = (0..rows as i64).map(|x| x * 3).collect();
                    let batches: Vec<Vec<Column>> = chunks(&a, batch)
                        .iter()
                        .zip(chunks(&b, batch))
                        .map(|(a, b)| vec![int_column(a), int_column(&b)])
                        .collect();
                    let sandboxed = run_sandboxed(&engine, plugin, "add", &batches);
                    let started = Instant::now();
                    for (a, b) in chunks(&a, batch).iter().zip(chunks(&b, batch)) {
                        let sum: Vec<i64> =
                            a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect();
                        black_box(sum);
                    }
                    (sandboxed, started.elapsed())
                }
                function => {
                    let texts = texts(rows);
                    let batches: Vec<Vec<Column>> = chunks(&texts, batch)
                        .iter()
                        .map(|chunk| vec![string_column(chunk)])
                        .collect();
                    let sandboxed = run_sandboxed(&engine, plugin, function, &batches);
                    let started = Instant::now();
                    for chunk in chunks(&texts, batch) {
                        if function == "upper" {
                            let out: Vec<String> = chunk.iter().map(|s| s.to_uppercase()).collect();
                            black_box(out);
                        } else {
                            let out: Vec<i64> =
                                chunk.iter().map(|s| s.chars().count() as i64).collect();
                            black_box(out);
                        }
                    }
                    (sandboxed, started.elapsed())
                }
            };
            println!(
                "{:<14} {:>6} {:>9} {:>14.0} {:>14.0} {:>6.2}x",
                case.label,
                batch,
                rows,
                rows as f64 / sandboxed.as_secs_f64(),
                rows as f64 / native.as_secs_f64(),
                sandboxed.as_secs_f64() / native.as_secs_f64()
            );
        }
    }
}

fn fresh_instance() {
    let engine = new_engine(true, true);
    let arith = engine.load(&plugin_bytes("arith.wasm")).unwrap();
    println!("\nFresh-instance call of one row (arith.add), {FRESH_CALLS} calls");
    let args = vec![int_column(&[1]), int_column(&[2])];
    let context = context();
    let mut wall = Vec::new();
    let mut instantiate = Vec::new();
    let mut guest = Vec::new();
    for _ in 0..FRESH_CALLS {
        let started = Instant::now();
        let output = engine.call(&arith, &context, "add", &args, 1).unwrap();
        wall.push(started.elapsed().as_micros() as u64);
        instantiate.push(output.records[0].instantiate_us);
        guest.push(output.records[0].guest_us);
    }
    println!(
        "  wall p50 {} us, p99 {} us; instantiate p50 {} us; guest p50 {} us",
        percentile(&mut wall, 50),
        percentile(&mut wall, 99),
        percentile(&mut instantiate, 50),
        percentile(&mut guest, 50)
    );
}

fn compile() {
    println!("\nCompiling text.wasm against loading it from the compiled cache");
    let dir = tempfile::tempdir().unwrap();
    let bytes = plugin_bytes("text.wasm");
    let cached = UdfEngine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    })
    .unwrap();
    let compile = cached.load(&bytes).unwrap();
    let load = cached.load(&bytes).unwrap();
    assert!(!compile.cache_hit() && load.cache_hit());
    println!(
        "  compile {} us, cached load {} us ({:.0}x)",
        compile.compile_us(),
        load.compile_us(),
        compile.compile_us() as f64 / load.compile_us().max(1) as f64
    );
}

fn metering() {
    let bytes = plugin_bytes("text.wasm");
    println!("\nThe cost of fuel and epochs: text.upper, batch 1024, {TOTAL_ROWS} rows");
    let texts = texts(TOTAL_ROWS);
    let batches: Vec<Vec<Column>> = chunks(&texts, 1024)
        .iter()
        .map(|chunk| vec![string_column(chunk)])
        .collect();
    let mut baseline = None;
    for (fuel, epochs) in [(false, false), (true, false), (false, true), (true, true)] {
        let engine = new_engine(fuel, epochs);
        let plugin = engine.load(&bytes).unwrap();
        let time = run_sandboxed(&engine, &plugin, "upper", &batches);
        let base = *baseline.get_or_insert(time);
        println!(
            "  fuel {:<5} epochs {:<5} {:>8.1} ms  {:.2}x",
            fuel,
            epochs,
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / base.as_secs_f64()
        );
    }
}

fn percentile(values: &mut [u64], p: usize) -> u64 {
    values.sort_unstable();
    values[(values.len() - 1) * p / 100]
}
