//! all-MiniLM-L6-v2 in the sandbox against the same code native, printed as
//! tables.
//!
//! Run with `cargo bench -p sandtable-tests --bench minilm`; naming sections
//! (`-- throughput`, `-- limits`) runs only those. It needs the model that
//! `scripts/setup` puts in `target/models/all-minilm-l6-v2`, and it embeds
//! fortune cookies from `/usr/share/games/fortunes` (the Debian package
//! `fortunes`, which setup installs), or the golden sentences of the test
//! when they are missing.
//!
//! The native figures come from the `throughput` example of
//! `plugins/minilm`, the crate that the plugin wraps, which the benchmark
//! builds with cargo and runs as a child process: the host's workspace does
//! not build candle. The sandbox runs one thread, so the ratio is taken
//! against native with one thread (`RAYON_NUM_THREADS=1`). Native and
//! sandbox alternate in each round, since the machines are shared and noisy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sandtable::fortunes;
use sandtable::sandbox::{
    BatchOutput, CallContext, CallRecord, Column, DataType, DirectoryGrant, EngineConfig,
    LoadedPlugin, UdfEngine,
};
use sandtable_tests::machine::{Figures, chosen_sections, free_cores, load_average};
use serde_json::{Value, json};

/// The benchmark's sections, run in this order.
const SECTIONS: [&str; 2] = ["throughput", "limits"];

/// Texts embedded in each round of the throughput section.
const TEXTS: usize = 512;

/// Rounds of the throughput section.
const ROUNDS: usize = 2;

/// Rows of one call: the batch size that `embed` declares.
const BATCH_SIZE: usize = 32;

fn main() -> anyhow::Result<()> {
    // SAFETY: the benchmark is single-threaded at this point.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let chosen = chosen_sections(&SECTIONS)?;
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|c| c == section);
    let root = sandtable_tests::workspace_root();
    let model = root.join("target/models/all-minilm-l6-v2");
    anyhow::ensure!(
        model.join("model.safetensors").is_file(),
        "the model is missing in `{}`; run `scripts/setup`, which downloads it",
        model.display()
    );
    println!("load average at start: {}", load_average());
    println!("cores free at start: {:.2}\n", free_cores()?);

    let bytes = std::fs::read(Path::new(env!("SANDTABLE_PLUGIN_DIR")).join("embed_minilm.wasm"))
        .context("the plugins are built by the tests' build script")?;
    let engine = UdfEngine::new(EngineConfig {
        cache_dir: Some(root.join("target/test-cache")),
        ..EngineConfig::default()
    })?;
    let started = Instant::now();
    let plugin = engine.load(&bytes)?;
    println!(
        "loading the {} byte component took {:.2} s (cache hit: {})\n",
        bytes.len(),
        started.elapsed().as_secs_f64(),
        plugin.cache_hit()
    );
    let context = CallContext {
        tenant: "bench".into(),
        plugin: "minilm".into(),
        version: 1,
        directories: vec![DirectoryGrant {
            guest_path: "/model".into(),
            host_path: model.clone(),
        }],
        ..CallContext::default()
    };
    let sandbox = Sandbox {
        engine: &engine,
        plugin: &plugin,
        context: &context,
    };

    if runs("throughput") {
        // The same component in an engine without fuel metering, to show
        // what metering costs.
        let unmetered_engine = UdfEngine::new(EngineConfig {
            cache_dir: Some(root.join("target/test-cache")),
            fuel: false,
            ..EngineConfig::default()
        })?;
        let unmetered_plugin = unmetered_engine.load(&bytes)?;
        let unmetered = Sandbox {
            engine: &unmetered_engine,
            plugin: &unmetered_plugin,
            context: &context,
        };
        throughput(&root, &model, &sandbox, &unmetered)?;
    }
    if runs("limits") {
        limits(&sandbox)?;
    }
    println!("load average at end: {}", load_average());
    println!("cores free at end: {:.2}", free_cores()?);
    Ok(())
}

/// The plugin loaded in an engine, with the context that grants `/model`.
struct Sandbox<'a> {
    engine: &'a UdfEngine,
    plugin: &'a LoadedPlugin,
    context: &'a CallContext,
}

impl Sandbox<'_> {
    /// Embeds `texts` in one call and fails unless every row succeeded.
    fn embed(&self, texts: &[String]) -> anyhow::Result<BatchOutput> {
        let values: Vec<Value> = texts.iter().map(|text| json!(text)).collect();
        let column = Column::from_json(&DataType::String, &values).map_err(anyhow::Error::msg)?;
        let output =
            self.engine
                .call(self.plugin, self.context, "embed", &[column], texts.len())?;
        anyhow::ensure!(
            output.errors.is_empty(),
            "`embed` failed on {} rows; the first: {}",
            output.errors.len(),
            output.errors[0].message
        );
        Ok(output)
    }
}

/// Compares sentences a second in the sandbox and natively.
fn throughput(
    root: &Path,
    model: &Path,
    sandbox: &Sandbox<'_>,
    unmetered: &Sandbox<'_>,
) -> anyhow::Result<()> {
    let (texts, source) = match fortune_texts(TEXTS)? {
        Some(texts) => (
            texts,
            format!("{TEXTS} fortune cookies from {}", fortunes::DEFAULT_DIR),
        ),
        None => (
            golden_sentences(root)?,
            format!(
                "the golden sentences ({} is missing)",
                fortunes::DEFAULT_DIR
            ),
        ),
    };
    let texts_file = tempfile::NamedTempFile::new()?;
    std::fs::write(texts_file.path(), serde_json::to_vec(&texts)?)?;
    let example = build_native_example(root)?;

    // The first call starts the warm instance and loads the model.
    let started = Instant::now();
    sandbox.embed(&texts[..1])?;
    println!(
        "the first call, which loads the model, took {:.2} s\n",
        started.elapsed().as_secs_f64()
    );
    unmetered.embed(&texts[..1])?;

    let mut table = Figures::new(["run", "round", "sentences/s", "vs native, 1 thread"]);
    for round in 1..=ROUNDS {
        let native_one = run_native(&example, model, texts_file.path(), Some(1))?;
        let native_all = run_native(&example, model, texts_file.path(), None)?;
        let started = Instant::now();
        let mut fuel = 0;
        for batch in texts.chunks(BATCH_SIZE) {
            let output = sandbox.embed(batch)?;
            fuel += output.records.iter().map(|r| r.fuel_used).sum::<u64>();
        }
        let sandboxed = texts.len() as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for batch in texts.chunks(BATCH_SIZE) {
            unmetered.embed(batch)?;
        }
        let without_fuel = texts.len() as f64 / started.elapsed().as_secs_f64();
        for (run, rate) in [
            ("native, 1 thread".to_owned(), native_one),
            ("native, all cores".to_owned(), native_all),
            (
                format!("sandbox, {} fuel a row", fuel / texts.len() as u64),
                sandboxed,
            ),
            ("sandbox, fuel off".to_owned(), without_fuel),
        ] {
            table.add_row([
                run,
                round.to_string(),
                format!("{rate:.1}"),
                format!("{:.2}", rate / native_one),
            ]);
        }
    }
    println!("Sentences a second on {source}, batches of {BATCH_SIZE}\n{table}\n");
    Ok(())
}

/// Measures one call of rows truncated at 256 tokens, the most a row
/// costs, against the limits that `embed` declares.
fn limits(sandbox: &Sandbox<'_>) -> anyhow::Result<()> {
    let function = sandbox
        .plugin
        .description()
        .functions
        .iter()
        .find(|function| function.name == "embed")
        .context("the plugin has no `embed`")?;
    let limits = &function.limits;
    println!(
        "`embed` requests fuel {:?} a row, memory {:?} bytes, deadline {:?} ms",
        limits.fuel_per_row, limits.memory_bytes, limits.deadline_ms
    );

    // About 400 words, which the tokenizer cuts at 256 tokens.
    let long = "The sandbox runs each plugin with fuel, memory and a deadline, \
                and the host stores the results next to the rows. "
        .repeat(20);
    sandbox.embed(std::slice::from_ref(&long))?;
    let mut table = Figures::new([
        "rows of 256 tokens",
        "guest s",
        "fuel",
        "fuel a row",
        "memory peak MiB",
    ]);
    for rows in [1, 8, BATCH_SIZE, BATCH_SIZE] {
        let texts: Vec<String> = (0..rows).map(|row| format!("{row}. {long}")).collect();
        let output = sandbox.embed(&texts)?;
        let record: &CallRecord = output.records.last().context("the call has a record")?;
        table.add_row([
            rows.to_string(),
            format!(
                "{:.2}",
                Duration::from_micros(record.guest_us).as_secs_f64()
            ),
            record.fuel_used.to_string(),
            (record.fuel_used / rows as u64).to_string(),
            format!(
                "{:.0}",
                record.memory_peak_bytes as f64 / f64::from(1 << 20)
            ),
        ]);
    }
    println!("Calls of rows cut at 256 tokens, in a warm instance\n{table}\n");
    Ok(())
}

/// Returns `count` fortune cookies spread over all of them, or `None` when
/// the directory is missing or has fewer.
fn fortune_texts(count: usize) -> anyhow::Result<Option<Vec<String>>> {
    let dir = Path::new(fortunes::DEFAULT_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    let all = fortunes::read_corpus(dir)?;
    if all.len() < count {
        return Ok(None);
    }
    let step = all.len() / count;
    Ok(Some(
        all.into_iter()
            .step_by(step)
            .take(count)
            .map(|fortune| fortune.text)
            .collect(),
    ))
}

fn golden_sentences(root: &Path) -> anyhow::Result<Vec<String>> {
    let golden: Value =
        serde_json::from_slice(&std::fs::read(root.join("tests/data/minilm-golden.json"))?)?;
    let sentences = golden["sentences"]
        .as_array()
        .context("the golden file has no `sentences`")?;
    Ok(sentences
        .iter()
        .filter_map(|sentence| sentence["text"].as_str().map(str::to_owned))
        .collect())
}

/// Builds the `throughput` example of `plugins/minilm` natively in the
/// plugins' own target directory, and returns its path.
fn build_native_example(root: &Path) -> anyhow::Result<PathBuf> {
    let manifest = root.join("plugins/Cargo.toml");
    let target_dir = root.join("plugins/target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "-p",
            "minilm",
            "--example",
            "throughput",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the benchmark's own build must not reach this one.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(variable);
    }
    println!("building the native `throughput` example of plugins/minilm ...");
    let status = command.status().context("cannot run cargo")?;
    anyhow::ensure!(
        status.success(),
        "building the `throughput` example failed ({status})"
    );
    Ok(target_dir.join("release/examples/throughput"))
}

/// Runs the native example over the texts in `texts_file`, with `threads`
/// threads or one a core, and returns its sentences a second.
fn run_native(
    example: &Path,
    model: &Path,
    texts_file: &Path,
    threads: Option<usize>,
) -> anyhow::Result<f64> {
    let mut command = Command::new(example);
    command
        .arg(model)
        .arg(texts_file)
        .arg(BATCH_SIZE.to_string());
    match threads {
        Some(threads) => command.env("RAYON_NUM_THREADS", threads.to_string()),
        None => command.env_remove("RAYON_NUM_THREADS"),
    };
    let output = command
        .output()
        .with_context(|| format!("cannot run `{}`", example.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "`{}` failed ({}): {}",
        example.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let rate = stdout
        .lines()
        .find_map(|line| line.strip_prefix("sentences per second: "))
        .with_context(|| format!("no `sentences per second` in the output: {stdout}"))?;
    Ok(rate.trim().parse()?)
}
