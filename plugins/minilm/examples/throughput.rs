//! Measures how many texts a second the embedder embeds natively, for the
//! benchmark that compares it with the same code in the sandbox
//! (`tests/benches/minilm.rs`).
//!
//! ```sh
//! cargo run --release --manifest-path plugins/Cargo.toml -p minilm \
//!     --example throughput -- MODEL_DIR TEXTS_JSON [BATCH_SIZE]
//! ```
//!
//! `TEXTS_JSON` is a JSON array of strings. The texts run in batches of
//! `BATCH_SIZE` (default 32) after one batch of warm-up. The output is one
//! `key: value` line each for the texts, the tokens after truncation, the
//! seconds of loading, the seconds of embedding and the sentences a second.
//! candle's matrix products use as many threads as `RAYON_NUM_THREADS`
//! sets, or one a core without it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use minilm::Embedder;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throughput: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_dir, texts_path, batch_size) = match args.as_slice() {
        [model, texts] => (model, texts, 32),
        [model, texts, batch] => {
            let batch = batch
                .parse::<usize>()
                .ok()
                .filter(|&batch| batch > 0)
                .ok_or_else(|| format!("invalid BATCH_SIZE `{batch}`: give a positive integer"))?;
            (model, texts, batch)
        }
        _ => return Err("usage: throughput MODEL_DIR TEXTS_JSON [BATCH_SIZE]".to_owned()),
    };
    let texts_json = std::fs::read(texts_path)
        .map_err(|error| format!("cannot read `{texts_path}`: {error}"))?;
    let texts: Vec<String> = serde_json::from_slice(&texts_json)
        .map_err(|error| format!("`{texts_path}` is not a JSON array of strings: {error}"))?;
    if texts.is_empty() {
        return Err(format!("`{texts_path}` has no texts"));
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    let started = Instant::now();
    let embedder = Embedder::load(&PathBuf::from(model_dir)).map_err(|error| error.to_string())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let mut tokens = 0;
    for text in &texts {
        tokens += embedder
            .token_ids(text)
            .map_err(|error| error.to_string())?
            .len();
    }

    let warm_up = &texts[..batch_size.min(texts.len())];
    embedder.embed(warm_up).map_err(|error| error.to_string())?;
    let started = Instant::now();
    for batch in texts.chunks(batch_size) {
        embedder.embed(batch).map_err(|error| error.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();

    println!("texts: {}", texts.len());
    println!("tokens: {tokens}");
    println!("load seconds: {load_seconds:.3}");
    println!("embed seconds: {seconds:.3}");
    println!("sentences per second: {:.2}", texts.len() as f64 / seconds);
    Ok(())
}
