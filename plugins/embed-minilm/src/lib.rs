//! Sentence embeddings with all-MiniLM-L6-v2 (`minilm`), the model of
//! sentence-transformers, in 384 dimensions with L2 norm 1.
//!
//! The model is read once for each instance, in `init`, from the read-only
//! directory `/model`, which the operator grants with
//! `sandtable plugin grant NAME --dir /model=DIR`. `DIR` contains the
//! model's `config.json`, `tokenizer.json` and `model.safetensors`.

use std::path::Path;
use std::sync::OnceLock;

use minilm::{Embedder, Embedding};
use sandtable_guest::{StrView, udf};

/// The directory the model is read from, inside the guest.
const MODEL_DIR: &str = "/model";

static EMBEDDER: OnceLock<Embedder> = OnceLock::new();

fn init() -> Result<(), String> {
    if EMBEDDER.get().is_some() {
        return Ok(());
    }
    let dir = Path::new(MODEL_DIR);
    if !dir.is_dir() {
        return Err(format!(
            "the model directory `{MODEL_DIR}` is not granted; grant it with \
             `sandtable plugin grant NAME --dir {MODEL_DIR}=DIR`, where DIR contains \
             {}, {} and {} of all-MiniLM-L6-v2",
            minilm::CONFIG_FILE,
            minilm::TOKENIZER_FILE,
            minilm::WEIGHTS_FILE
        ));
    }
    let embedder = Embedder::load(dir).map_err(|error| error.to_string())?;
    let _ = EMBEDDER.set(embedder);
    Ok(())
}

/// Embeds text with all-MiniLM-L6-v2 as a unit vector of 384 dimensions.
///
/// Text past 256 tokens is cut off, as sentence-transformers does.
//
// The limits come from `cargo bench -p sandtable-tests --bench minilm --
// limits`, with every row cut at 256 tokens, the most a row can cost. Such
// a row used 7.4e9 fuel, so the request is the host's cap of 1e10. Memory
// peaked at 243 MiB, because the embedder runs at most 2,048 tokens at once,
// and the request doubles that. A call of 32 such rows took 11 to 18 s on
// a shared 2-core machine, and the deadline allows 120 s.
// NOTE: fuel is the same for the same input and build, but a change of
// candle, of the build profile or of the pass size needs a new measurement.
#[udf(
    batch,
    batch_size = 32,
    dimension = 384,
    fuel_per_row = 10_000_000_000,
    memory_bytes = 512 << 20,
    deadline_ms = 120_000
)]
fn embed(text: StrView<'_>) -> Result<Vec<Embedding>, String> {
    let embedder = EMBEDDER
        .get()
        .ok_or("the model is not loaded, because `init` did not run")?;
    let texts: Vec<&str> = text.iter().collect();
    embedder.embed(&texts).map_err(|error| error.to_string())
}

sandtable_guest::plugin!(
    functions = [embed],
    init = init,
    directories = ["/model"],
    warm_instance = true
);
