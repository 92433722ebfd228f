//! The `embed-minilm` plugin through the real host: its embeddings against
//! golden vectors from an independent implementation (numpy and a
//! pure-Python tokenizer, `plugins/embed-minilm/reference/make_golden.py`),
//! batches over the batch size, null rows, a computed column, and the error
//! when the model directory is not granted.
//!
//! The model comes from `scripts/setup`, which puts it in
//! `target/models/all-minilm-l6-v2`.

use std::path::PathBuf;
use std::sync::OnceLock;

use sandtable::sandbox::{
    BatchOutput, CallContext, Column, DataType, DirectoryGrant, EngineConfig, LoadedPlugin,
    UdfEngine,
};
use sandtable::table::values::cell_json;
use sandtable_tests::tables::{abort, columns, dump, insert_jsonl, plugin_bytes, setup};
use serde::Deserialize;
use serde_json::{Value, json};

/// The catalog name the tests add the plugin under.
const PLUGIN: &str = "minilm";

/// The minimum cosine similarity to a golden vector that counts as equal.
/// The plugin's float32 vectors differed from the float64 golden ones by at
/// most 2.4e-7 an element, so their cosines round to 1.
const MIN_GOLDEN_COSINE: f32 = 0.9999;

#[derive(Deserialize)]
struct Golden {
    sentences: Vec<GoldenSentence>,
}

#[derive(Deserialize)]
struct GoldenSentence {
    text: String,
    embedding: Vec<f32>,
}

fn golden() -> Golden {
    let path = sandtable_tests::workspace_root().join("tests/data/minilm-golden.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read `{}`: {error}", path.display()));
    serde_json::from_str(&text).expect("the golden file is valid JSON")
}

/// Returns the model directory, and fails the test when it is missing.
fn model_dir() -> PathBuf {
    let dir = sandtable_tests::workspace_root().join("target/models/all-minilm-l6-v2");
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(
            dir.join(file).is_file(),
            "the model file `{}` is missing; run `scripts/setup`, which downloads \
             all-MiniLM-L6-v2 into `{}`",
            dir.join(file).display(),
            dir.display()
        );
    }
    dir
}

/// The engine the direct calls share, with the compiled-component cache of
/// the other sandbox tests, so that the 4.5 MB component compiles once.
fn engine() -> &'static UdfEngine {
    static ENGINE: OnceLock<UdfEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        UdfEngine::new(EngineConfig {
            cache_dir: Some(sandtable_tests::workspace_root().join("target/test-cache")),
            ..EngineConfig::default()
        })
        .expect("the engine starts")
    })
}

fn plugin() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<LoadedPlugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        engine()
            .load(&plugin_bytes("embed_minilm.wasm"))
            .unwrap_or_else(|error| panic!("embed_minilm.wasm does not load: {error}"))
    })
}

/// Returns a call context of `plugin`, granted the model directory at
/// `/model` when `granted`. Warm instances are kept by tenant and plugin,
/// so contexts that differ in grants must differ in `plugin` too.
fn context(plugin: &str, granted: bool) -> CallContext {
    let directories = if granted {
        vec![DirectoryGrant {
            guest_path: "/model".into(),
            host_path: model_dir(),
        }]
    } else {
        Vec::new()
    };
    CallContext {
        tenant: "test".into(),
        plugin: plugin.into(),
        version: 1,
        directories,
        ..CallContext::default()
    }
}

fn strings(values: &[Option<&str>]) -> Column {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    Column::from_json(&DataType::String, &values).expect("text fits a string column")
}

fn embed(context: &CallContext, texts: &[Option<&str>]) -> BatchOutput {
    engine()
        .call(plugin(), context, "embed", &[strings(texts)], texts.len())
        .unwrap_or_else(|error| panic!("the call of `embed` failed: {error}"))
}

/// Returns row `row` of a vector column, or `None` for null.
fn vector(output: &BatchOutput, row: usize) -> Option<Vec<f32>> {
    match cell_json(&output.column, row) {
        Value::Null => None,
        value => Some(serde_json::from_value(value).expect("a vector cell is an array")),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn embed_matches_golden_vectors() {
    let golden = golden();
    let texts: Vec<Option<&str>> = golden
        .sentences
        .iter()
        .map(|sentence| Some(sentence.text.as_str()))
        .collect();

    let output = embed(&context(PLUGIN, true), &texts);
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    assert_eq!(output.records.len(), 1, "one guest call for the batch");
    let mut embeddings = Vec::new();
    for (row, sentence) in golden.sentences.iter().enumerate() {
        let embedding = vector(&output, row).expect("every row has an embedding");
        assert_eq!(embedding.len(), 384, "row {row}");
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "row {row} has norm {norm}");
        let similarity = cosine(&embedding, &sentence.embedding);
        assert!(
            similarity >= MIN_GOLDEN_COSINE,
            "{:?}: cosine {similarity} to the golden vector",
            sentence.text
        );
        embeddings.push(embedding);
    }

    // The similarities that the model's card lists for these sentences.
    let find = |text: &str| {
        let row = golden
            .sentences
            .iter()
            .position(|sentence| sentence.text == text)
            .unwrap_or_else(|| panic!("{text:?} is not a golden sentence"));
        &embeddings[row]
    };
    let food = find("A man is eating food.");
    let bread = cosine(food, find("A man is eating a piece of bread."));
    let baby = cosine(food, find("The girl is carrying a baby."));
    assert!(bread > baby, "bread {bread} is not above baby {baby}");
    assert!((bread - 0.755).abs() < 0.01, "cosine with bread is {bread}");
    assert!((baby + 0.105).abs() < 0.01, "cosine with baby is {baby}");
}

#[test]
fn batch_over_batch_size_keeps_null_row() {
    let function = plugin()
        .description()
        .functions
        .iter()
        .find(|function| function.name == "embed")
        .expect("the plugin has `embed`");
    assert_eq!(function.batch_size, 32);
    let golden = golden();
    const ROWS: usize = 40;
    const NULL_ROW: usize = 17;
    let texts: Vec<Option<&str>> = (0..ROWS)
        .map(|row| {
            let sentence = &golden.sentences[row % golden.sentences.len()];
            (row != NULL_ROW).then_some(sentence.text.as_str())
        })
        .collect();

    let output = embed(&context(PLUGIN, true), &texts);
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    assert_eq!(output.column.len(), ROWS);
    for (row, text) in texts.iter().enumerate() {
        let embedding = vector(&output, row);
        if text.is_none() {
            assert_eq!(embedding, None, "the null row {row} stays null");
            continue;
        }
        let embedding = embedding.unwrap_or_else(|| panic!("row {row} is null"));
        let expected = &golden.sentences[row % golden.sentences.len()].embedding;
        let similarity = cosine(&embedding, expected);
        assert!(
            similarity >= MIN_GOLDEN_COSINE,
            "row {row}: cosine {similarity} to the golden vector"
        );
    }
}

/// The catalog's path: a grant stored in Postgres, and a computed column
/// that calls the plugin in batches as inserts do.
#[tokio::test]
async fn computed_column_embeds_rows() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[(PLUGIN, "embed_minilm.wasm")]).await?;
    let grant = DirectoryGrant {
        guest_path: "/model".into(),
        host_path: model_dir(),
    };
    tables
        .catalog()
        .grant_directory(tables.tenant(), PLUGIN, &grant)
        .await?;
    let golden = golden();
    let sentences = &golden.sentences[..3];
    tables.create_table("t", &columns(&["text:string"])).await?;
    let mut rows: Vec<Value> = sentences
        .iter()
        .map(|sentence| json!({"text": sentence.text}))
        .collect();
    rows.push(json!({"text": null}));
    insert_jsonl(&tables, "t", &rows).await?;
    tables
        .add_computed_column("t", "embedding", "minilm.embed(text)", &abort(), &())
        .await?;

    let dumped = dump(&tables, "t").await?;
    assert_eq!(dumped.len(), 4);
    for (row, sentence) in sentences.iter().enumerate() {
        let embedding: Vec<f32> = serde_json::from_value(dumped[row]["embedding"].clone())?;
        let similarity = cosine(&embedding, &sentence.embedding);
        assert!(
            similarity >= MIN_GOLDEN_COSINE,
            "row {row}: cosine {similarity} to the golden vector"
        );
    }
    assert_eq!(dumped[3]["embedding"], Value::Null);
    assert_eq!(dumped[3]["embedding.errormsg"], Value::Null);
    Ok(())
}

#[test]
fn missing_model_grant_fails_clearly() {
    let output = embed(
        &context("minilm-ungranted", false),
        &[Some("A man is eating food.")],
    );
    assert_eq!(vector(&output, 0), None);
    let [error] = output.errors.as_slice() else {
        panic!("expected one cell error, got {:?}", output.errors);
    };
    let message = &error.message;
    assert!(message.contains("`init` failed"), "{message}");
    assert!(message.contains("`/model` is not granted"), "{message}");
    assert!(
        message.contains("sandtable plugin grant NAME --dir /model=DIR"),
        "{message}"
    );
}
