//! The on-disk cache of compiled components.
//!
//! A file is keyed by the component's sha256 and sits in a directory named by
//! the engine's compatibility hash, so a change of wasmtime version or engine
//! settings misses the cache instead of loading incompatible code. Each file
//! is `MAGIC`, the sha256 of the component it was compiled from, the sha256
//! of the payload, then the payload from `Component::serialize`, so that a
//! file renamed or copied over another component's is rejected too. `Component::deserialize` is unsafe because it
//! trusts its input to be code that this wasmtime produced, so the payload's
//! hash is checked first: a truncated or corrupted file is deleted and the
//! component compiled again. The check guards against damage, not against
//! someone who can write to the cache directory, who could also write the
//! host's binary.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"STCWASM2";
const HEADER_LEN: usize = MAGIC.len() + 32 + 32;

/// A directory of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub(crate) struct CompiledCache {
    dir: PathBuf,
}

/// The outcome of a cache lookup.
pub(crate) enum Lookup {
    /// Loaded from the cache.
    Hit(Component),
    /// Not in the cache.
    Miss,
    /// In the cache but damaged or incompatible; the file was removed.
    Corrupt(String),
}

impl CompiledCache {
    /// Opens the cache under `root` for `engine`'s configuration.
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut hasher = HashWriter(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let digest = hasher.0.finalize();
        CompiledCache {
            dir: root.join(hex::encode(&digest[..8])),
        }
    }

    /// Returns the directory of this engine's cache files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// Looks up the compiled form of the component whose sha256 is `sha256`.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Lookup {
        let path = self.path_for(sha256);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) => return Lookup::Miss,
        };
        let reason = match verify(&bytes, sha256) {
            Ok(payload) => {
                // SAFETY: the payload's sha256 matches the one written beside
                // it by `put`, which wrote the output of
                // `Component::serialize` from an engine with this
                // compatibility hash.
                match unsafe { Component::deserialize(engine, payload) } {
                    Ok(component) => return Lookup::Hit(component),
                    Err(error) => format!("wasmtime rejected it: {error}"),
                }
            }
            Err(reason) => reason,
        };
        let _ = fs::remove_file(&path);
        Lookup::Corrupt(format!("{}: {reason}", path.display()))
    }

    /// Stores the compiled form of `component`. A failure is logged, not
    /// returned, since the cache only saves time.
    pub fn put(&self, sha256: &str, component: &Component) {
        if let Err(error) = self.try_put(sha256, component) {
            tracing::warn!(
                target: "sandtable::sandbox",
                dir = %self.dir.display(),
                %error,
                "could not write the compiled-component cache"
            );
        }
    }

    fn try_put(&self, sha256: &str, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize()?;
        fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&hex::decode(sha256)?)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        file.as_file().sync_data()?;
        file.persist(self.path_for(sha256))?;
        Ok(())
    }
}

/// Checks a cache file's header against the component's sha256 (lowercase
/// hex) and its payload; returns the payload.
fn verify<'a>(bytes: &'a [u8], component_sha256: &str) -> Result<&'a [u8], String> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a cache file".into());
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    let (component, payload_sha) = header[MAGIC.len()..].split_at(32);
    if hex::encode(component) != component_sha256 {
        return Err(format!(
            "it was compiled from component {}, not {component_sha256}",
            hex::encode(component)
        ));
    }
    if Sha256::digest(payload)[..] != *payload_sha {
        return Err("its sha256 does not match its contents".into());
    }
    Ok(payload)
}

struct HashWriter(Sha256);

impl std::hash::Hasher for HashWriter {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: [u8; 32] = [7; 32];

    fn cache_file(payload: &[u8]) -> Vec<u8> {
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&COMPONENT);
        file.extend_from_slice(&Sha256::digest(payload));
        file.extend_from_slice(payload);
        file
    }

    #[test]
    fn verify_rejects_flipped_byte() {
        let payload = b"compiled code";
        let mut file = cache_file(payload);
        let sha = hex::encode(COMPONENT);
        assert_eq!(verify(&file, &sha).unwrap(), payload);

        let last = file.len() - 1;
        file[last] ^= 1;
        assert!(verify(&file, &sha).unwrap_err().contains("does not match"));
    }

    #[test]
    fn verify_rejects_file_of_another_component() {
        let file = cache_file(b"compiled code");
        let other = hex::encode([8u8; 32]);
        assert!(
            verify(&file, &other)
                .unwrap_err()
                .contains("was compiled from component")
        );
    }

    #[test]
    fn verify_rejects_short_file() {
        assert_eq!(verify(b"STC", "00").unwrap_err(), "not a cache file");
    }
}
