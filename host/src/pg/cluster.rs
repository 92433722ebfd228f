//! The embedded cluster's lifecycle: initdb, start, stop and status.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};

use super::binaries::PgBinaries;
use super::layout::{Layout, PORT, SOCKET_FILE};
use super::lock::FileLock;
use super::postmaster::{PostmasterPid, shm_attached};
use super::server_user::ServerUser;
use super::{DATABASE_NAME, Error, SUPERUSER, describe_server};

/// How long pg_ctl waits for the server to accept connections, which
/// includes crash recovery after an unclean stop.
const START_TIMEOUT_SECS: u32 = 120;

/// How long pg_ctl waits for a fast shutdown.
const STOP_TIMEOUT_SECS: u32 = 60;

/// How long to wait for the processes of a crashed server to exit. Backends
/// notice the postmaster's death at their next wait, normally within
/// milliseconds.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a postmaster that refuses connections may take to exit before
/// it counts as a live server that fails.
const DYING_TIMEOUT: Duration = Duration::from_secs(2);

/// How many lines of the server log a start failure quotes.
const LOG_TAIL_LINES: usize = 20;

/// The file, inside the data directory, that contains the settings sandtable
/// manages. `postgresql.conf` includes it; each start rewrites it.
const SETTINGS_FILE: &str = "sandtable.conf";

/// A private PostgreSQL cluster under sandtable's data directory.
///
/// The cluster lives in `<home>/pg` (see the `layout` module for the exceptions) and
/// listens only on a Unix socket with trust authentication, so only the
/// user that runs it, and root, can connect. A lock file serializes initdb,
/// start and stop across processes.
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    home: PathBuf,
}

/// Whether an embedded cluster exists and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterState {
    /// A server runs on the data directory.
    Running,
    /// The data directory exists and no server runs on it.
    Stopped,
    /// No data directory exists yet; the first start runs initdb.
    NotInitialized,
}

/// A snapshot of an embedded cluster, as `sandtable db status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// Whether the cluster exists and runs.
    pub state: ClusterState,
    /// The postmaster's process id, while it runs.
    pub pid: Option<u32>,
    /// The directory that contains the data directory, log and lock file.
    pub cluster_dir: PathBuf,
    /// `<home>/pg`, when it is a symlink to a cluster directory elsewhere.
    pub linked_from: Option<PathBuf>,
    /// The PostgreSQL data directory.
    pub data_dir: PathBuf,
    /// The directory of the server's Unix socket.
    pub socket_dir: PathBuf,
    /// The server's log file.
    pub log_file: PathBuf,
    /// The operating-system user that runs the server, or `None` when that
    /// user does not exist yet.
    pub server_user: Option<String>,
}

/// The outcome of [`EmbeddedCluster::start`].
#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    /// Whether this call ran initdb, creating the cluster.
    pub initialized: bool,
    /// Whether this call started the server, rather than finding it running.
    pub started: bool,
    /// The cluster after the call.
    pub status: ClusterStatus,
}

impl ClusterStatus {
    /// Returns the path of the server's socket file.
    pub fn socket_file(&self) -> PathBuf {
        self.socket_dir.join(SOCKET_FILE)
    }

    /// Returns options that connect to the `sandtable` database over the
    /// socket as the `sandtable` superuser. Use
    /// [`PgConnectOptions::database`] to pick another database.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(DATABASE_NAME)
            .ssl_mode(PgSslMode::Disable)
            .application_name("sandtable")
    }
}

impl EmbeddedCluster {
    /// Creates a handle on the cluster under `home`, sandtable's data
    /// directory. Nothing is touched until [`start`](Self::start).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        EmbeddedCluster { home: home.into() }
    }

    /// Returns sandtable's data directory, which contains this cluster.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Starts the server unless it runs, first running initdb when the
    /// cluster does not exist, and creates the `sandtable` database.
    ///
    /// As root, server processes run as the system user `sandtable-pg`,
    /// which this creates when missing. After a crash, this waits for the
    /// dead server's processes to release its shared memory and removes its
    /// stale `postmaster.pid`.
    ///
    /// # Errors
    ///
    /// Fails when the server programs are missing, or when a directory
    /// cannot be created or belongs to another user. Also fails when initdb
    /// or pg_ctl fail, and the error then quotes the server log, or when
    /// another process holds the cluster's lock for over five minutes.
    pub async fn start(&self) -> Result<StartReport, Error> {
        let result = self.start_locked().await;
        if let Err(error) = &result {
            tracing::debug!(home = %self.home.display(), %error, "failed to start embedded PostgreSQL");
        }
        result
    }

    /// Stops the server with a fast shutdown (`pg_ctl stop -m fast`), which
    /// ends open sessions and rolls back their transactions.
    ///
    /// Returns `true` when a running server was stopped, `false` when none
    /// was running.
    ///
    /// # Errors
    ///
    /// Fails when pg_ctl fails or the cluster's files cannot be read.
    pub async fn stop(&self) -> Result<bool, Error> {
        let result = self.stop_locked().await;
        if let Err(error) = &result {
            tracing::debug!(home = %self.home.display(), %error, "failed to stop embedded PostgreSQL");
        }
        result
    }

    /// Reports whether the cluster exists and runs, and where its files are.
    /// Creates and changes nothing.
    ///
    /// # Errors
    ///
    /// Fails when the cluster's files cannot be read, such as by a non-root
    /// user on a cluster that root started.
    pub fn status(&self) -> Result<ClusterStatus, Error> {
        let user = ServerUser::existing()?;
        let layout = Layout::resolve(&self.home, user.as_ref())?;
        status_of(&layout, user.as_ref())
    }

    async fn start_locked(&self) -> Result<StartReport, Error> {
        let user = ServerUser::ensure().await?;
        let layout = Layout::create(&self.home, &user)?;
        let _lock = FileLock::acquire(&layout.lock_file()).await?;

        let data_dir = layout.data_dir();
        let version = cluster_version(&data_dir)?;
        let binaries = PgBinaries::find(version.as_deref())?;
        let initialized = version.is_none();
        if initialized {
            initdb(&layout, &user, &binaries).await?;
        }

        let mut started = false;
        if !server_alive(&data_dir)? {
            start_server(&layout, &user, &binaries).await?;
            started = true;
        }

        let mut status = status_of(&layout, Some(&user))?;
        if let Err(error) = create_database(&status).await {
            // A postmaster that was just killed looks alive until it has
            // exited, so the server may have been taken for running.
            if started || !wait_for_exit(&data_dir).await? {
                return Err(error);
            }
            start_server(&layout, &user, &binaries).await?;
            started = true;
            status = status_of(&layout, Some(&user))?;
            create_database(&status).await?;
        }
        Ok(StartReport {
            initialized,
            started,
            status,
        })
    }

    async fn stop_locked(&self) -> Result<bool, Error> {
        // As root without the system user, no cluster can have been started.
        let Some(user) = ServerUser::existing()? else {
            return Ok(false);
        };
        let layout = Layout::resolve(&self.home, Some(&user))?;
        if !layout.cluster_dir.is_dir() {
            return Ok(false);
        }
        let _lock = FileLock::acquire(&layout.lock_file()).await?;

        let data_dir = layout.data_dir();
        let Some(postmaster) = PostmasterPid::read(&data_dir)?.filter(PostmasterPid::is_alive)
        else {
            return Ok(false);
        };
        let binaries = PgBinaries::find(cluster_version(&data_dir)?.as_deref())?;

        let started = Instant::now();
        let pg_ctl = binaries.pg_ctl();
        let output = user
            .command(&pg_ctl, &layout.cluster_dir)
            .arg("stop")
            .arg("--pgdata")
            .arg(&data_dir)
            .args(["--mode", "fast", "--wait", "--silent"])
            .arg(format!("--timeout={STOP_TIMEOUT_SECS}"))
            .output()
            .await
            .map_err(|source| Error::io("run", &pg_ctl, source))?;
        check_success(&pg_ctl, output)?;

        if layout.socket_dir_is_fallback() {
            // The server removed its socket and lock files, so only an empty
            // directory under /tmp remains.
            let _ = fs::remove_dir(&layout.socket_dir);
        }
        tracing::info!(
            data_dir = %data_dir.display(),
            pid = postmaster.pid,
            elapsed_secs = started.elapsed().as_secs_f64(),
            "stopped embedded PostgreSQL"
        );
        Ok(true)
    }
}

/// Returns whether a live postmaster owns the data directory.
fn server_alive(data_dir: &Path) -> Result<bool, Error> {
    Ok(PostmasterPid::read(data_dir)?.is_some_and(|postmaster| postmaster.is_alive()))
}

/// Waits up to [`DYING_TIMEOUT`] for the postmaster to exit, returning
/// whether it did.
async fn wait_for_exit(data_dir: &Path) -> Result<bool, Error> {
    let started = Instant::now();
    while server_alive(data_dir)? {
        if started.elapsed() >= DYING_TIMEOUT {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(true)
}

/// Returns the major version in `<data_dir>/PG_VERSION`, or `None` when the
/// data directory does not exist. An empty data directory is removed, so
/// that initdb can create it.
fn cluster_version(data_dir: &Path) -> Result<Option<String>, Error> {
    let version_file = data_dir.join("PG_VERSION");
    match fs::read_to_string(&version_file) {
        Ok(version) => return Ok(Some(version.trim().to_owned())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::io("read", version_file, source)),
    }
    if !data_dir.exists() || fs::remove_dir(data_dir).is_ok() {
        return Ok(None);
    }
    Err(Error::NotACluster {
        data_dir: data_dir.to_owned(),
    })
}

/// Runs initdb into a staging directory and renames it into place, so that
/// an interrupted initdb never leaves a half-made data directory behind.
async fn initdb(layout: &Layout, user: &ServerUser, binaries: &PgBinaries) -> Result<(), Error> {
    let data_dir = layout.data_dir();
    let staging = layout.cluster_dir.join("data.initdb");
    // Only an interrupted initdb leaves this behind, because the lock keeps
    // any other one from running now.
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|source| Error::io("remove directory", &staging, source))?;
    }

    let started = Instant::now();
    let program = binaries.initdb();
    let output = user
        .command(&program, &layout.cluster_dir)
        .arg("--pgdata")
        .arg(&staging)
        .args(["--username", SUPERUSER])
        .args(["--auth-local", "trust", "--auth-host", "reject"])
        .args(["--encoding", "UTF8", "--locale", "C"])
        .output()
        .await
        .map_err(|source| Error::io("run", &program, source))?;
    check_success(&program, output)?;

    let config = staging.join("postgresql.conf");
    let include = format!(
        "\n# Settings that sandtable manages, rewritten before every start.\n\
         include_if_exists = '{SETTINGS_FILE}'\n"
    );
    fs::OpenOptions::new()
        .append(true)
        .open(&config)
        .and_then(|mut file| io::Write::write_all(&mut file, include.as_bytes()))
        .map_err(|source| Error::io("append to", &config, source))?;
    fs::rename(&staging, &data_dir)
        .map_err(|source| Error::io("rename into place", &staging, source))?;

    tracing::info!(
        data_dir = %data_dir.display(),
        elapsed_secs = started.elapsed().as_secs_f64(),
        "initialized embedded PostgreSQL cluster"
    );
    Ok(())
}

async fn start_server(
    layout: &Layout,
    user: &ServerUser,
    binaries: &PgBinaries,
) -> Result<(), Error> {
    let data_dir = layout.data_dir();
    layout.create_socket_dir(user)?;
    let major = cluster_version(&data_dir)?
        .and_then(|version| version.parse::<u32>().ok())
        .unwrap_or(0);
    write_settings(layout, user, major)?;
    clear_crashed_server(layout).await?;

    let started = Instant::now();
    let pg_ctl = binaries.pg_ctl();
    let log_file = layout.log_file();
    let output = user
        .command(&pg_ctl, &layout.cluster_dir)
        .arg("start")
        .arg("--pgdata")
        .arg(&data_dir)
        .arg("--log")
        .arg(&log_file)
        .args(["--wait", "--silent"])
        .arg(format!("--timeout={START_TIMEOUT_SECS}"))
        .output()
        .await
        .map_err(|source| Error::io("run", &pg_ctl, source))?;
    if !output.status.success() {
        return Err(Error::StartFailed {
            data_dir,
            status: output.status,
            log_tail: log_tail(&log_file),
            log_file,
        });
    }

    let pid = PostmasterPid::read(&data_dir)?.map(|postmaster| postmaster.pid);
    tracing::info!(
        data_dir = %data_dir.display(),
        socket_dir = %layout.socket_dir.display(),
        pid,
        elapsed_secs = started.elapsed().as_secs_f64(),
        "started embedded PostgreSQL"
    );
    Ok(())
}

/// Writes [`SETTINGS_FILE`]: no TCP, a private socket in the layout's socket
/// directory, and a fixed port, so that `PGPORT` cannot move the socket.
/// `major` is the cluster's PostgreSQL major version.
fn write_settings(layout: &Layout, user: &ServerUser, major: u32) -> Result<(), Error> {
    let socket_dir = layout.socket_dir.to_string_lossy();
    let mut settings = format!(
        "# Written by sandtable before every start; edits here are lost.\n\
         listen_addresses = ''\n\
         port = {PORT}\n\
         unix_socket_directories = '{}'\n\
         unix_socket_permissions = 0700\n",
        quote_setting(&socket_dir)
    );
    // Crash recovery first syncs the data directory. File by file (the
    // default) that took 3.7 s for a new cluster on an ext4 disk, against
    // 0.3 s with one syncfs(2) call. NOTE: syncfs also flushes other
    // programs' writes to that file system, and Linux before 5.8 does not
    // report its I/O errors. PostgreSQL 14 added the setting.
    if major >= 14 {
        settings.push_str("recovery_init_sync_method = syncfs\n");
    }
    let path = layout.data_dir().join(SETTINGS_FILE);
    fs::write(&path, settings).map_err(|source| Error::io("write", &path, source))?;
    user.chown(&path)
}

/// Escapes a value for a single-quoted string in `postgresql.conf`.
fn quote_setting(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "''")
}

/// Prepares a data directory whose server died without a clean shutdown.
///
/// PostgreSQL refuses to start while processes of the dead server are still
/// attached to its shared memory, so this waits, bounded by
/// [`ORPHAN_TIMEOUT`], for them to exit. It then removes the stale
/// `postmaster.pid` and socket lock file, which PostgreSQL would otherwise
/// take for a live server while the dead postmaster is an unreaped zombie
/// that keeps its pid.
async fn clear_crashed_server(layout: &Layout) -> Result<(), Error> {
    let data_dir = layout.data_dir();
    let pid_file = data_dir.join("postmaster.pid");
    let Some(stale) = PostmasterPid::read(&data_dir)? else {
        // A postmaster that died while writing the file leaves it empty,
        // and PostgreSQL then refuses to start. No live server can be
        // writing it now, since the caller holds the lock and found none.
        return remove_if_present(&pid_file);
    };
    tracing::info!(
        data_dir = %data_dir.display(),
        pid = stale.pid,
        "found postmaster.pid of a crashed server"
    );

    if let Some(shmid) = stale.shmid {
        let started = Instant::now();
        let mut logged = false;
        loop {
            let attached = shm_attached(shmid)?.unwrap_or(0);
            if attached == 0 {
                break;
            }
            if !logged {
                tracing::info!(
                    attached,
                    shmid,
                    "waiting for the crashed server's processes to exit"
                );
                logged = true;
            }
            if started.elapsed() >= ORPHAN_TIMEOUT {
                return Err(Error::OrphanedBackends {
                    data_dir,
                    shmid,
                    attached,
                    secs: ORPHAN_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    remove_if_present(&pid_file)?;
    let socket_dirs = [Some(layout.socket_dir.clone()), stale.socket_dir];
    for socket_dir in socket_dirs.into_iter().flatten() {
        let lock_file = socket_dir.join(format!("{SOCKET_FILE}.lock"));
        let lock_pid = fs::read_to_string(&lock_file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok());
        if lock_pid == Some(stale.pid) {
            remove_if_present(&lock_file)?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::io("remove", path, source)),
    }
}

fn status_of(layout: &Layout, user: Option<&ServerUser>) -> Result<ClusterStatus, Error> {
    let data_dir = layout.data_dir();
    let initialized = data_dir.join("PG_VERSION").is_file();
    let postmaster = if initialized {
        PostmasterPid::read(&data_dir)?.filter(PostmasterPid::is_alive)
    } else {
        None
    };
    let state = match (&postmaster, initialized) {
        (Some(_), _) => ClusterState::Running,
        (None, true) => ClusterState::Stopped,
        (None, false) => ClusterState::NotInitialized,
    };
    let pid = postmaster
        .as_ref()
        .and_then(|postmaster| u32::try_from(postmaster.pid).ok());
    let socket_dir = postmaster
        .and_then(|postmaster| postmaster.socket_dir)
        .unwrap_or_else(|| layout.socket_dir.clone());

    Ok(ClusterStatus {
        state,
        pid,
        cluster_dir: layout.cluster_dir.clone(),
        linked_from: layout.linked_from().map(Path::to_owned),
        data_dir,
        socket_dir,
        log_file: layout.log_file(),
        server_user: user.map(|user| user.name.clone()),
    })
}

/// Creates the `sandtable` database unless it exists. The caller holds the
/// cluster lock, so no other sandtable process creates it at the same time.
async fn create_database(status: &ClusterStatus) -> Result<(), Error> {
    let options = status.connect_options().database("postgres");
    let server = describe_server(&options);
    let mut connection = PgConnection::connect_with(&options)
        .await
        .map_err(|source| Error::EmbeddedConnect {
            socket_dir: status.socket_dir.clone(),
            log_file: status.log_file.clone(),
            source,
        })?;

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE_NAME)
            .fetch_one(&mut connection)
            .await
            .map_err(|source| Error::Sql {
                operation: "look up database `sandtable`",
                server: server.clone(),
                source,
            })?;
    if !exists {
        // The name is DATABASE_NAME; SQL takes no parameter for it.
        sqlx::query("CREATE DATABASE sandtable")
            .execute(&mut connection)
            .await
            .map_err(|source| Error::Sql {
                operation: "create database `sandtable`",
                server,
                source,
            })?;
    }
    let _ = connection.close().await;
    Ok(())
}

/// Turns a failed run of a PostgreSQL program into [`Error::Command`].
fn check_success(program: &Path, output: Output) -> Result<(), Error> {
    if output.status.success() {
        return Ok(());
    }
    let mut printed = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        printed.push('\n');
        printed.push_str(stdout.trim());
    }
    Err(Error::Command {
        program: program.to_owned(),
        status: output.status,
        output: printed,
    })
}

/// Returns the last [`LOG_TAIL_LINES`] lines of the server log.
fn log_tail(log_file: &Path) -> String {
    match fs::read_to_string(log_file) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(the log could not be read: {error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_quotes_are_escaped() {
        assert_eq!(quote_setting("/tmp/plain"), "/tmp/plain");
        assert_eq!(quote_setting("/tmp/it's"), "/tmp/it''s");
        assert_eq!(quote_setting(r"/tmp/back\slash"), r"/tmp/back\\slash");
    }

    #[test]
    fn version_of_missing_data_dir_is_none() {
        let dir = tempfile::tempdir().unwrap();

        assert_eq!(cluster_version(&dir.path().join("data")).unwrap(), None);
    }

    #[test]
    fn version_of_empty_data_dir_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).unwrap();

        assert_eq!(cluster_version(&data_dir).unwrap(), None);
        assert!(!data_dir.exists());
    }

    #[test]
    fn version_of_foreign_data_dir_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).unwrap();
        fs::write(data_dir.join("notes.txt"), "mine").unwrap();

        let error = cluster_version(&data_dir).unwrap_err();

        assert!(matches!(error, Error::NotACluster { .. }), "{error}");
        assert!(data_dir.join("notes.txt").exists());
    }

    #[test]
    fn version_is_read_from_pg_version() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("PG_VERSION"), "15\n").unwrap();

        assert_eq!(cluster_version(dir.path()).unwrap().as_deref(), Some("15"));
    }
}
