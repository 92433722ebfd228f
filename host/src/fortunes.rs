//! The fortune-cookie corpus that the demo and the benchmarks read: files
//! of texts, each ending at a line `%`, as Debian's `fortunes` package
//! installs them under `/usr/share/games/fortunes`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The directory of Debian's `fortunes` package.
pub const DEFAULT_DIR: &str = "/usr/share/games/fortunes";

/// A fortune: its text and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fortune {
    /// The text, without the trailing newline.
    pub text: String,
    /// The file's name, such as `computers`.
    pub source: String,
}

/// Reads every fortune of the fortune files in `dir`: the files without an
/// extension, each fortune ending at a line `%`, in file order.
///
/// # Errors
///
/// Fails when the directory cannot be read or contains no fortune.
pub fn read_corpus(dir: &Path) -> anyhow::Result<Vec<Fortune>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read the corpus directory `{}`; run scripts/setup, which installs Debian's \
             `fortunes`, or give --corpus DIR",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_none() && path.is_file() && !path.is_symlink())
        .collect();
    files.sort();
    let mut fortunes = Vec::new();
    for file in files {
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
        let source = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let mut current = String::new();
        for line in text.lines() {
            if line == "%" {
                push_fortune(&mut fortunes, &mut current, &source);
            } else {
                current.push_str(line);
                current.push('\n');
            }
        }
        push_fortune(&mut fortunes, &mut current, &source);
    }
    if fortunes.is_empty() {
        bail!(
            "no fortunes in `{}`; give --corpus a directory of fortune files",
            dir.display()
        );
    }
    Ok(fortunes)
}

fn push_fortune(fortunes: &mut Vec<Fortune>, current: &mut String, source: &str) {
    let text = current.trim_end();
    if !text.trim().is_empty() {
        fortunes.push(Fortune {
            text: text.to_owned(),
            source: source.to_owned(),
        });
    }
    current.clear();
}

/// Encodes the fortunes as JSON Lines with the columns `text`, `source` and
/// `length` (in characters), as `insert` reads them.
pub fn jsonl(fortunes: &[Fortune]) -> Vec<u8> {
    let mut text = Vec::new();
    for fortune in fortunes {
        let row = serde_json::json!({
            "text": fortune.text,
            "source": fortune.source,
            "length": fortune.text.chars().count(),
        });
        text.extend_from_slice(row.to_string().as_bytes());
        text.push(b'\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortunes_split_at_percent_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b"), "one\n%\ntwo\nlines\n%\n\n%\nthree").unwrap();
        std::fs::write(dir.path().join("b.dat"), "index").unwrap();
        std::fs::write(dir.path().join("a"), "first\n").unwrap();
        let fortunes = read_corpus(dir.path()).unwrap();
        let texts: Vec<(&str, &str)> = fortunes
            .iter()
            .map(|f| (f.source.as_str(), f.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("a", "first"),
                ("b", "one"),
                ("b", "two\nlines"),
                ("b", "three")
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        let error = read_corpus(empty.path()).unwrap_err().to_string();
        assert!(error.contains("no fortunes"), "{error}");
    }
}
