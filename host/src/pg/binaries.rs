//! Discovery of the PostgreSQL server programs.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Error;

/// The directory in which Debian and Ubuntu install one subdirectory per
/// PostgreSQL major version.
const DEBIAN_VERSIONS_DIR: &str = "/usr/lib/postgresql";

const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// A directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub(crate) struct PgBinaries {
    bin_dir: PathBuf,
}

impl PgBinaries {
    /// Finds the server programs. `cluster_major` is the major version of an
    /// existing data directory (its `PG_VERSION`), whose own programs are
    /// preferred because a server refuses a data directory of another major
    /// version. The search order is `/usr/lib/postgresql/<version>/bin`
    /// (that version, else the highest), `pg_config --bindir`, then `PATH`.
    pub(crate) fn find(cluster_major: Option<&str>) -> Result<Self, Error> {
        let mut searched = Vec::new();

        let versions_dir = Path::new(DEBIAN_VERSIONS_DIR);
        searched.push(format!("`{DEBIAN_VERSIONS_DIR}/*/bin`"));
        if let Some(bin_dir) = find_versioned(versions_dir, cluster_major) {
            return Ok(PgBinaries { bin_dir });
        }

        searched.push("`pg_config --bindir`".to_owned());
        if let Some(bin_dir) = pg_config_bindir().filter(|dir| has_required(dir)) {
            return Ok(PgBinaries { bin_dir });
        }

        searched.push("`PATH`".to_owned());
        let path = env::var_os("PATH").unwrap_or_default();
        if let Some(bin_dir) = env::split_paths(&path).find(|dir| has_required(dir)) {
            return Ok(PgBinaries { bin_dir });
        }

        Err(Error::BinariesNotFound {
            searched: searched.join(", "),
        })
    }

    pub(crate) fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    pub(crate) fn pg_ctl(&self) -> PathBuf {
        self.bin_dir.join("pg_ctl")
    }
}

/// Picks `<versions_dir>/<version>/bin`: the one for `preferred` when it is
/// complete, otherwise the highest complete one.
fn find_versioned(versions_dir: &Path, preferred: Option<&str>) -> Option<PathBuf> {
    if let Some(version) = preferred {
        let bin_dir = versions_dir.join(version).join("bin");
        if has_required(&bin_dir) {
            return Some(bin_dir);
        }
    }

    let mut candidates: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(versions_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin_dir)| has_required(bin_dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin_dir)| bin_dir)
}

/// Parses a version directory name such as `15` or `9.6` into its numbers.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim_end()))
}

fn has_required(dir: &Path) -> bool {
    REQUIRED.iter().all(|program| dir.join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_version(root: &Path, version: &str, programs: &[&str]) {
        let bin_dir = root.join(version).join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        for program in programs {
            std::fs::write(bin_dir.join(program), "").unwrap();
        }
    }

    #[test]
    fn versioned_picks_highest_complete() {
        let root = tempfile::tempdir().unwrap();
        fake_version(root.path(), "9.6", &REQUIRED);
        fake_version(root.path(), "15", &REQUIRED);
        fake_version(root.path(), "16", &REQUIRED);
        fake_version(root.path(), "17", &["pg_ctl"]);
        fake_version(root.path(), "README", &REQUIRED);

        let found = find_versioned(root.path(), None).unwrap();

        assert_eq!(found, root.path().join("16/bin"));
    }

    #[test]
    fn versioned_prefers_cluster_version() {
        let root = tempfile::tempdir().unwrap();
        fake_version(root.path(), "15", &REQUIRED);
        fake_version(root.path(), "16", &REQUIRED);

        let found = find_versioned(root.path(), Some("15")).unwrap();

        assert_eq!(found, root.path().join("15/bin"));
    }

    #[test]
    fn versioned_falls_back_when_cluster_version_missing() {
        let root = tempfile::tempdir().unwrap();
        fake_version(root.path(), "16", &REQUIRED);

        let found = find_versioned(root.path(), Some("14")).unwrap();

        assert_eq!(found, root.path().join("16/bin"));
    }

    #[test]
    fn versioned_without_any_is_none() {
        let root = tempfile::tempdir().unwrap();
        fake_version(root.path(), "15", &["initdb"]);

        assert_eq!(find_versioned(root.path(), None), None);
        assert_eq!(find_versioned(&root.path().join("missing"), None), None);
    }
}
