//! The paths of an embedded cluster's files.
//!
//! The cluster directory is `<home>/pg`. It contains the data directory `data/`,
//! the server log `postgres.log`, the lock file `lock` and, when the path is
//! short enough, the socket directory `run/`. When sandtable runs as root and
//! the server's user cannot enter `<home>` (as with `/root`, mode 0700), the
//! cluster lives in `/var/lib/sandtable/<digest of home>/` instead and
//! `<home>/pg` is a symlink to it.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Uid;
use sha2::{Digest, Sha256};

use super::Error;
use super::server_user::{ServerUser, first_unsearchable};

/// The server's port, which only names its socket file since the server
/// listens on no TCP address.
pub(crate) const PORT: u16 = 5432;

/// The socket file's name inside the socket directory, for [`PORT`].
pub(crate) const SOCKET_FILE: &str = ".s.PGSQL.5432";

/// The maximum socket path length: `sun_path` of a Unix socket address has 108
/// bytes on Linux, including the terminating NUL.
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// The parent of cluster directories placed outside their home.
pub(crate) const SHARED_CLUSTERS_DIR: &str = "/var/lib/sandtable";

/// The parent of socket directories whose natural path is too long.
const SHORT_SOCKET_PARENT: &str = "/tmp";

/// The paths of one embedded cluster.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `<home>/pg`: the cluster directory, or a symlink to it.
    pub(crate) link: PathBuf,
    pub(crate) cluster_dir: PathBuf,
    pub(crate) socket_dir: PathBuf,
}

impl Layout {
    /// Computes the layout for `home` without creating anything. `user` is
    /// the server's user, or `None` when it does not exist yet.
    pub(crate) fn resolve(home: &Path, user: Option<&ServerUser>) -> Result<Self, Error> {
        let home = normalize(home)?;
        let link = home.join("pg");

        let cluster_dir = match fs::symlink_metadata(&link) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = fs::read_link(&link)
                    .map_err(|source| Error::io("read symlink", &link, source))?;
                home.join(target)
            }
            Ok(metadata) if metadata.is_dir() => link.clone(),
            Ok(_) => {
                return Err(Error::io(
                    "use as the cluster directory",
                    &link,
                    io::Error::other("it is neither a directory nor a symlink"),
                ));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if needs_shared_dir(&home, user)? {
                    shared_cluster_dir(&home)
                } else {
                    link.clone()
                }
            }
            Err(source) => return Err(Error::io("read metadata of", &link, source)),
        };

        let socket_dir = socket_dir_for(&cluster_dir, &home);
        Ok(Layout {
            link,
            cluster_dir,
            socket_dir,
        })
    }

    /// Creates `home` and the cluster directory owned by `user`, with the
    /// symlink when the cluster lives outside `home`, and returns the layout.
    /// Safe to run from several processes at once.
    pub(crate) fn create(home: &Path, user: &ServerUser) -> Result<Self, Error> {
        fs::create_dir_all(home).map_err(|source| Error::io("create directory", home, source))?;
        let layout = Layout::resolve(home, Some(user))?;

        if let Some(parent) = layout.cluster_dir.parent()
            && parent == Path::new(SHARED_CLUSTERS_DIR)
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|source| Error::io("create directory", parent, source))?;
        }
        create_private_dir(&layout.cluster_dir, user)?;
        if layout.linked_from().is_some() {
            match std::os::unix::fs::symlink(&layout.cluster_dir, &layout.link) {
                Ok(()) => {}
                // A concurrent process made the same link, since the target
                // depends only on `home`.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(Error::io("create symlink", &layout.link, source)),
            }
        }

        // An existing cluster directory must be reachable by the server's
        // user; a new one was placed where it is.
        if user.switches()
            && let Some(parent) = layout.cluster_dir.parent()
            && let Some(ancestor) =
                first_unsearchable(parent, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?
        {
            return Err(Error::Unreachable {
                cluster_dir: layout.cluster_dir.clone(),
                ancestor,
                user: user.name.clone(),
            });
        }
        Ok(layout)
    }

    /// Creates the socket directory with mode 0700, owned by `user`, and
    /// checks that an existing one is safe: a directory, not a symlink, and
    /// owned by `user`. The check matters for the fallback under `/tmp`,
    /// where anyone may create the path first.
    pub(crate) fn create_socket_dir(&self, user: &ServerUser) -> Result<(), Error> {
        create_private_dir(&self.socket_dir, user)?;

        let path = &self.socket_dir;
        let metadata = fs::symlink_metadata(path)
            .map_err(|source| Error::io("read metadata of", path, source))?;
        if !metadata.is_dir() {
            return Err(Error::UnsafeSocketDir {
                path: path.clone(),
                problem: "is not a directory".to_owned(),
            });
        }
        if metadata.uid() != user.uid.as_raw() {
            return Err(Error::UnsafeSocketDir {
                path: path.clone(),
                problem: format!(
                    "is owned by uid {}, not by `{}` (uid {})",
                    metadata.uid(),
                    user.name,
                    user.uid
                ),
            });
        }
        if metadata.mode() & 0o777 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(|source| Error::io("set mode 0700 on", path, source))?;
        }
        Ok(())
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.cluster_dir.join("data")
    }

    pub(crate) fn log_file(&self) -> PathBuf {
        self.cluster_dir.join("postgres.log")
    }

    pub(crate) fn lock_file(&self) -> PathBuf {
        self.cluster_dir.join("lock")
    }

    /// Returns `<home>/pg` when it is a symlink to the cluster directory.
    pub(crate) fn linked_from(&self) -> Option<&Path> {
        (self.link != self.cluster_dir).then_some(&self.link)
    }

    /// Returns whether the socket directory is the fallback under `/tmp`.
    pub(crate) fn socket_dir_is_fallback(&self) -> bool {
        !self.socket_dir.starts_with(&self.cluster_dir)
    }
}

/// Makes `path` absolute and, when it exists, resolves its symlinks, so that
/// one home has one digest.
fn normalize(path: &Path) -> Result<PathBuf, Error> {
    let absolute =
        std::path::absolute(path).map_err(|source| Error::io("resolve path", path, source))?;
    match fs::canonicalize(&absolute) {
        Ok(canonical) => Ok(canonical),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(absolute),
        Err(source) => Err(Error::io("resolve path", &absolute, source)),
    }
}

/// Returns whether the cluster must live outside `home`: when running as
/// root and the server's user cannot search `home` or one of its ancestors.
fn needs_shared_dir(home: &Path, user: Option<&ServerUser>) -> Result<bool, Error> {
    if !Uid::effective().is_root() {
        return Ok(false);
    }
    // Missing directories are created later with the default mode, so only
    // the existing ones decide.
    let Some(existing) = home.ancestors().find(|dir| dir.exists()) else {
        return Ok(false);
    };
    let uid = user.map(|user| user.uid.as_raw());
    let gid = user.map(|user| user.gid.as_raw());
    Ok(first_unsearchable(existing, uid, gid)?.is_some())
}

fn shared_cluster_dir(home: &Path) -> PathBuf {
    Path::new(SHARED_CLUSTERS_DIR).join(home_digest(home))
}

/// Returns `<cluster_dir>/run`, or `/tmp/sandtable-<digest>` when the socket
/// path under the former would exceed [`MAX_SOCKET_PATH`].
fn socket_dir_for(cluster_dir: &Path, home: &Path) -> PathBuf {
    let natural = cluster_dir.join("run");
    if natural.join(SOCKET_FILE).as_os_str().len() <= MAX_SOCKET_PATH {
        natural
    } else {
        Path::new(SHORT_SOCKET_PARENT).join(format!("sandtable-{}", home_digest(home)))
    }
}

/// Returns 16 hex digits of the SHA-256 of the home path: 64 bits, which
/// keeps the homes of one machine apart and the socket path short.
fn home_digest(home: &Path) -> String {
    let digest = Sha256::digest(home.as_os_str().as_bytes());
    hex::encode(&digest[..8])
}

/// Creates `path` with mode 0700 unless it exists, and gives it to `user`
/// when it belongs to root, which is the case for a directory that this or a
/// concurrent root process just made.
fn create_private_dir(path: &Path, user: &ServerUser) -> Result<(), Error> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(Error::io("create directory", path, source)),
    }
    let metadata =
        fs::metadata(path).map_err(|source| Error::io("read metadata of", path, source))?;
    if user.switches() && metadata.uid() == 0 {
        user.chown(path)?;
    }
    user.check_owner(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_short_path_stays_inside() {
        let cluster = Path::new("/home/ada/.sandtable/pg");

        let dir = socket_dir_for(cluster, Path::new("/home/ada/.sandtable"));

        assert_eq!(dir, cluster.join("run"));
    }

    #[test]
    fn socket_dir_long_path_moves_to_tmp() {
        let home = PathBuf::from(format!("/tmp/{}", "h".repeat(100)));
        let cluster = home.join("pg");

        let dir = socket_dir_for(&cluster, &home);

        assert!(
            dir.to_string_lossy().starts_with("/tmp/sandtable-"),
            "{}",
            dir.display()
        );
        assert!(dir.join(SOCKET_FILE).as_os_str().len() <= MAX_SOCKET_PATH);
    }

    #[test]
    fn socket_dir_limit_is_inclusive() {
        // "/x.../run/.s.PGSQL.5432" has 1 + n + 4 + 1 + 13 bytes.
        let fits = Path::new("/").join("x".repeat(MAX_SOCKET_PATH - 19));
        let too_long = Path::new("/").join("x".repeat(MAX_SOCKET_PATH - 18));

        assert_eq!(socket_dir_for(&fits, &fits), fits.join("run"));
        assert_ne!(socket_dir_for(&too_long, &too_long), too_long.join("run"));
    }

    #[test]
    fn home_digest_differs_per_home() {
        let first = home_digest(Path::new("/home/ada/.sandtable"));
        let second = home_digest(Path::new("/home/bob/.sandtable"));

        assert_eq!(first.len(), 16);
        assert_ne!(first, second);
        assert_eq!(first, home_digest(Path::new("/home/ada/.sandtable")));
    }
}
