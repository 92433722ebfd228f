//! Deterministic text embeddings by feature hashing.
//!
//! Each lower-cased word and each character trigram of a word (padded with a
//! space on both sides) adds a signed weight to one element, chosen by a hash
//! of the feature. Texts that share words or spellings share elements, so
//! similar texts have a larger dot product. The vector is scaled to L2 norm 1.
//! The hash is FNV-1a with a SplitMix64 finalizer, so the embedding is the same
//! on every platform and in every instance.

use sandtable_guest::udf;

/// The weight of a whole word.
const WORD_WEIGHT: f32 = 1.0;

/// The weight of one character trigram.
const TRIGRAM_WEIGHT: f32 = 0.5;

/// Distinguishes trigram hashes from word hashes.
const TRIGRAM_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// An FNV-1a hasher over the UTF-32 code points of a feature.
struct Fnv(u64);

impl Fnv {
    fn new(seed: u64) -> Self {
        Self(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    fn write_char(&mut self, c: char) {
        for byte in (c as u32).to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Returns the hash, mixed so that its low bits depend on every input bit.
    fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Adds `weight` to the element that `hash` selects, with the sign from its
/// top bit.
fn add_feature<const N: usize>(vector: &mut [f32; N], hash: u64, weight: f32) {
    let index = (hash % N as u64) as usize;
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[index] += sign * weight;
}

/// Embeds `text` in `N` dimensions with L2 norm 1.
///
/// Text without words embeds as the first unit vector.
fn embed<const N: usize>(text: &str) -> [f32; N] {
    let mut vector = [0.0f32; N];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        let lowered = word.chars().flat_map(char::to_lowercase);

        let mut word_hash = Fnv::new(0);
        for c in lowered.clone() {
            word_hash.write_char(c);
        }
        add_feature(&mut vector, word_hash.finish(), WORD_WEIGHT);

        let mut window = [' '; 3];
        let mut seen = 0;
        for c in std::iter::once(' ')
            .chain(lowered)
            .chain(std::iter::once(' '))
        {
            window = [window[1], window[2], c];
            seen += 1;
            if seen >= 3 {
                let mut trigram_hash = Fnv::new(TRIGRAM_SEED);
                window.iter().for_each(|&c| trigram_hash.write_char(c));
                add_feature(&mut vector, trigram_hash.finish(), TRIGRAM_WEIGHT);
            }
        }
    }

    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        vector[0] = 1.0;
    } else {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Embeds text as a unit vector of 8 dimensions.
#[udf(batch_size = 256)]
fn embed8(text: &str) -> [f32; 8] {
    embed(text)
}

/// Embeds text as a unit vector of 64 dimensions.
#[udf(batch_size = 256)]
fn embed64(text: &str) -> [f32; 64] {
    embed(text)
}

/// Embeds text as a unit vector of 384 dimensions.
#[udf(batch_size = 256)]
fn embed384(text: &str) -> [f32; 384] {
    embed(text)
}

sandtable_guest::plugin!(functions = [embed8, embed64, embed384]);

#[cfg(test)]
mod tests {
    use sandtable_guest::testing;
    use sandtable_guest::types::{Column, DataType, Values};

    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn embeddings_have_unit_norm() {
        for text in ["", "a", "The quick brown fox", "日本語のテキスト", "!!!"] {
            let norm8 = embed::<8>(text).iter().map(|x| x * x).sum::<f32>().sqrt();
            let norm384 = embed::<384>(text).iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                (norm8 - 1.0).abs() < 1e-5,
                "norm of {text:?} in 8 dimensions is {norm8}"
            );
            assert!(
                (norm384 - 1.0).abs() < 1e-5,
                "norm of {text:?} in 384 dimensions is {norm384}"
            );
        }
    }

    #[test]
    fn embeddings_are_deterministic() {
        assert_eq!(embed::<64>("Hello, world"), embed::<64>("Hello, world"));
        assert_eq!(
            embed::<64>("Hello, world"),
            embed::<64>("hello WORLD"),
            "case does not matter"
        );
        assert_ne!(embed::<64>("hello world"), embed::<64>("goodbye world"));
    }

    #[test]
    fn similar_texts_are_closer() {
        let fox = embed::<384>("the quick brown fox jumps");
        let dog = embed::<384>("the quick brown dog jumps");
        let other = embed::<384>("lorem ipsum dolor sit amet");
        assert!(
            dot(&fox, &dog) > dot(&fox, &other) + 0.3,
            "{} vs {}",
            dot(&fox, &dog),
            dot(&fox, &other)
        );
    }

    #[test]
    fn functions_return_declared_dimensions() {
        let input = Column::strings(["a b", ""]);
        for (description, result) in [
            (
                testing::describe::<embed8>(),
                testing::call::<embed8>(std::slice::from_ref(&input)),
            ),
            (
                testing::describe::<embed64>(),
                testing::call::<embed64>(std::slice::from_ref(&input)),
            ),
            (
                testing::describe::<embed384>(),
                testing::call::<embed384>(std::slice::from_ref(&input)),
            ),
        ] {
            let DataType::Vector(dimension) = description.returns else {
                panic!("`{}` returns {:?}", description.name, description.returns);
            };
            assert_eq!(description.batch_size, 256);
            let Values::Vector(vectors) = result.unwrap().column.values else {
                panic!("`{}` returned no vector column", description.name);
            };
            assert_eq!(vectors.dimension, dimension);
            assert_eq!(vectors.data.len(), 2 * dimension as usize);
            assert_eq!(
                vectors.data[dimension as usize], 1.0,
                "empty text is the first unit vector"
            );
        }
    }
}
