//! The operating-system user that runs initdb, pg_ctl and the server.
//!
//! PostgreSQL refuses to run as root. A non-root process runs the server as
//! itself; a root process runs it as the dedicated system user
//! [`SYSTEM_USER`], which owns only the cluster's directory.

use std::env;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::process::Stdio;

use nix::unistd::{Gid, Uid, User};
use tokio::process::Command;

use super::Error;
use super::layout::SHARED_CLUSTERS_DIR;
use super::lock::FileLock;

/// The system user that runs the server when sandtable runs as root.
pub const SYSTEM_USER: &str = "sandtable-pg";

/// The lock file, in [`SHARED_CLUSTERS_DIR`], held while creating
/// [`SYSTEM_USER`].
const USER_LOCK_FILE: &str = ".useradd.lock";

/// An identity that server processes run as.
#[derive(Debug, Clone)]
pub(crate) struct ServerUser {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    /// Whether processes must switch to this user, which is the case only
    /// when the current process is root.
    switch: bool,
}

impl ServerUser {
    /// Returns the user that server processes run as, creating
    /// [`SYSTEM_USER`] when running as root and it does not exist yet.
    pub(crate) async fn ensure() -> Result<Self, Error> {
        if !Uid::effective().is_root() {
            return Ok(Self::current());
        }
        if let Some(user) = Self::lookup_system()? {
            return Ok(user);
        }

        // Concurrent useradd runs can each report success while their
        // writes of /etc/passwd overwrite each other (seen with shadow-utils
        // 4.13 on Debian bookworm), leaving a uid that no longer exists in
        // the hands of a process. So only one sandtable process looks up
        // and creates the user at a time.
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(SHARED_CLUSTERS_DIR)
            .map_err(|source| Error::io("create directory", SHARED_CLUSTERS_DIR, source))?;
        let _lock = FileLock::acquire(&Path::new(SHARED_CLUSTERS_DIR).join(USER_LOCK_FILE)).await?;
        if let Some(user) = Self::lookup_system()? {
            return Ok(user);
        }
        create_system_user().await?;
        Self::lookup_system()?.ok_or_else(|| Error::CreateUser {
            user: SYSTEM_USER,
            detail: "useradd succeeded, but the user is still not found".to_owned(),
        })
    }

    /// Returns the user that server processes run as, or `None` when running
    /// as root and [`SYSTEM_USER`] does not exist, in which case no embedded
    /// cluster of this machine can have been started as root.
    pub(crate) fn existing() -> Result<Option<Self>, Error> {
        if !Uid::effective().is_root() {
            return Ok(Some(Self::current()));
        }
        Self::lookup_system()
    }

    fn current() -> Self {
        let uid = Uid::effective();
        let name = User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |user| user.name);
        ServerUser {
            name,
            uid,
            gid: Gid::effective(),
            switch: false,
        }
    }

    fn lookup_system() -> Result<Option<Self>, Error> {
        let user = User::from_name(SYSTEM_USER).map_err(|errno| Error::CreateUser {
            user: SYSTEM_USER,
            detail: format!("looking the user up failed: {errno}"),
        })?;
        Ok(user.map(|user| ServerUser {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            switch: true,
        }))
    }

    /// Returns whether server processes switch to this user, which they do
    /// when the current process is root.
    pub(crate) fn switches(&self) -> bool {
        self.switch
    }

    /// Builds a command for `program` that runs as this user in `dir`, with
    /// a minimal environment, so that variables such as `PGDATA` or `PGPORT`
    /// of the caller cannot redirect it.
    pub(crate) fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(dir)
            .env_clear()
            .env(
                "PATH",
                env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if self.switch {
            // std drops supplementary groups (setgroups) before setuid.
            command.uid(self.uid.as_raw()).gid(self.gid.as_raw());
        }
        command
    }

    /// Makes this user the owner of `path`, when the process switches users.
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        if !self.switch {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
            .map_err(|source| Error::io("change the owner of", path, source))
    }

    /// Checks that this user owns `path`.
    pub(crate) fn check_owner(&self, path: &Path) -> Result<(), Error> {
        let metadata =
            fs::metadata(path).map_err(|source| Error::io("read metadata of", path, source))?;
        if metadata.uid() == self.uid.as_raw() {
            return Ok(());
        }
        Err(Error::WrongOwner {
            path: path.to_owned(),
            owner: metadata.uid(),
            user: self.name.clone(),
            expected: self.uid.as_raw(),
        })
    }
}

/// Returns the first of `dir` and its ancestors that `uid`/`gid` cannot
/// search (enter), judged by the permission bits. `None` for `uid` stands
/// for a user that does not exist yet, which owns no directory and so only
/// has the "other" permissions.
///
/// NOTE: ACLs and supplementary groups are not considered, so a directory
/// that an ACL opens is still reported as unsearchable.
pub(crate) fn first_unsearchable(
    dir: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Option<std::path::PathBuf>, Error> {
    for ancestor in dir.ancestors() {
        let metadata = fs::metadata(ancestor)
            .map_err(|source| Error::io("read metadata of", ancestor, source))?;
        let mode = metadata.mode();
        let searchable = if uid == Some(metadata.uid()) {
            mode & 0o100 != 0
        } else if gid == Some(metadata.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Ok(Some(ancestor.to_owned()));
        }
    }
    Ok(None)
}

async fn create_system_user() -> Result<(), Error> {
    // A process other than sandtable may have created the user since the
    // lookup; useradd then exits with 9 ("username already in use").
    const USERNAME_IN_USE: i32 = 9;

    let output = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
        .args(["--comment", "Sandtable embedded PostgreSQL", SYSTEM_USER])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| Error::CreateUser {
            user: SYSTEM_USER,
            detail: format!("running useradd failed: {source}"),
        })?;
    if output.status.success() || output.status.code() == Some(USERNAME_IN_USE) {
        tracing::info!(user = SYSTEM_USER, "created system user for PostgreSQL");
        return Ok(());
    }
    Err(Error::CreateUser {
        user: SYSTEM_USER,
        detail: format!(
            "useradd exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn unsearchable_finds_closed_ancestor() {
        let root = tempfile::tempdir().unwrap();
        let closed = root.path().join("closed");
        let inner = closed.join("inner");
        fs::create_dir_all(&inner).unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();

        let owner = fs::metadata(&closed).unwrap().uid();
        let other = owner.wrapping_add(12345);

        assert_eq!(
            first_unsearchable(&inner, None, None).unwrap(),
            Some(closed.clone())
        );
        assert_eq!(
            first_unsearchable(&inner, Some(other), None).unwrap(),
            Some(closed)
        );
        assert_eq!(first_unsearchable(&inner, Some(owner), None).unwrap(), None);
    }

    #[test]
    fn unsearchable_none_for_open_path() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let other = fs::metadata(root.path()).unwrap().uid().wrapping_add(12345);

        // The check also covers the temporary directory's ancestors, such as
        // `/tmp`, which are open to everyone.
        assert_eq!(
            first_unsearchable(root.path(), Some(other), None).unwrap(),
            None
        );
    }
}
