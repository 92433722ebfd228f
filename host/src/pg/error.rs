use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// The ways in which reaching the catalog database can fail.
///
/// Messages name the offending path or value and the fix. The underlying
/// I/O or database error is exposed through [`std::error::Error::source`]
/// rather than repeated in the message, so print the chain (`{:#}` with
/// `anyhow`) to see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `SANDTABLE_HOME` nor `HOME` is set, and the password database
    /// has no home directory for the current user.
    #[error(
        "cannot find sandtable's data directory: neither `SANDTABLE_HOME` nor `HOME` is set; \
         set `SANDTABLE_HOME` to a directory"
    )]
    HomeNotFound,

    /// A file system operation on a path failed.
    #[error("failed to {operation} `{}`", path.display())]
    Io {
        /// The failed operation, such as "create directory".
        operation: &'static str,
        /// The path that the operation failed on.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },

    /// No directory contains the PostgreSQL server programs.
    #[error(
        "no PostgreSQL server programs (`initdb`, `pg_ctl`, `postgres`) found in {searched}; \
         run `scripts/setup`, or `apt-get install postgresql-15`, or set `DATABASE_URL` to use \
         an existing server"
    )]
    BinariesNotFound {
        /// The places that were searched, for the message.
        searched: String,
    },

    /// Creating the unprivileged system user that runs the server as root failed.
    #[error(
        "failed to create system user `{user}` to run PostgreSQL, since PostgreSQL refuses to \
         run as root: {detail}; create it with `useradd --system --user-group {user}`, or run \
         sandtable as a non-root user"
    )]
    CreateUser {
        /// The user name.
        user: &'static str,
        /// The output of `useradd`, or the reason it could not run.
        detail: String,
    },

    /// A directory of the cluster belongs to another user than the one that runs the server.
    #[error(
        "`{}` is owned by uid {owner}, but the embedded cluster runs as `{user}` (uid {expected}); \
         remove it, or `chown -R {user}` it",
        path.display()
    )]
    WrongOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The name of the user that runs the server.
        user: String,
        /// That user's uid.
        expected: u32,
    },

    /// The server's user cannot reach an existing cluster directory.
    #[error(
        "cluster directory `{}` is unreachable for `{user}`, since `{}` is not searchable by it; \
         move `{}` away so that sandtable creates a cluster it can reach",
        cluster_dir.display(),
        ancestor.display(),
        cluster_dir.display()
    )]
    Unreachable {
        /// The cluster directory.
        cluster_dir: PathBuf,
        /// The first ancestor that the user cannot search.
        ancestor: PathBuf,
        /// The name of the user that runs the server.
        user: String,
    },

    /// A directory exists where the data directory belongs, but contains no cluster.
    #[error(
        "`{}` exists but contains no PostgreSQL cluster (it has no `PG_VERSION`); remove it so that \
         sandtable runs initdb again",
        data_dir.display()
    )]
    NotACluster {
        /// The data directory.
        data_dir: PathBuf,
    },

    /// The socket directory exists but is unsafe to use.
    #[error(
        "socket directory `{}` {problem}; remove it so that sandtable creates it again",
        path.display()
    )]
    UnsafeSocketDir {
        /// The socket directory.
        path: PathBuf,
        /// The problem with it.
        problem: String,
    },

    /// Another process held the cluster's lock for too long.
    #[error(
        "timed out after {secs} s waiting for lock `{}`, which another sandtable process holds \
         while it creates, starts or stops a cluster; wait for that process or end it",
        path.display()
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long the wait lasted, in seconds.
        secs: u64,
    },

    /// A PostgreSQL program (initdb, pg_ctl) failed.
    #[error("`{}` failed ({status}): {output}", program.display())]
    Command {
        /// The program that failed.
        program: PathBuf,
        /// The program's exit status.
        status: ExitStatus,
        /// The program's standard error, followed by its standard output.
        output: String,
    },

    /// The server did not start.
    #[error(
        "failed to start PostgreSQL for data directory `{}`: pg_ctl exited with {status}; the \
         server log `{}` ends with:\n{log_tail}",
        data_dir.display(),
        log_file.display()
    )]
    StartFailed {
        /// The data directory.
        data_dir: PathBuf,
        /// The exit status of pg_ctl.
        status: ExitStatus,
        /// The server's log file.
        log_file: PathBuf,
        /// The last lines of the log file.
        log_tail: String,
    },

    /// Processes of a crashed server still use its shared memory, so no new
    /// server can start on the data directory.
    #[error(
        "{attached} processes of a crashed server still use its shared memory (segment {shmid}) \
         after {secs} s; end the leftover `postgres` processes of `{}`, then retry",
        data_dir.display()
    )]
    OrphanedBackends {
        /// The data directory.
        data_dir: PathBuf,
        /// The System V shared memory id from `postmaster.pid`.
        shmid: i64,
        /// How many processes were still attached.
        attached: u64,
        /// How long the wait lasted, in seconds.
        secs: u64,
    },

    /// `DATABASE_URL` is not a valid connection URL. The value is left out of
    /// the message, since it may contain a password.
    #[error(
        "invalid `DATABASE_URL`; expected `postgres://user:password@host:port/database`, or \
         unset it to use the embedded cluster"
    )]
    InvalidDatabaseUrl {
        /// The parse error.
        #[source]
        source: sqlx::Error,
    },

    /// Connecting to the server that `DATABASE_URL` names failed.
    #[error(
        "failed to connect to PostgreSQL at `{server}` from `DATABASE_URL`; check that the server \
         runs and that the URL is right, or unset `DATABASE_URL` to use the embedded cluster"
    )]
    Connect {
        /// The server, as `user@host:port/database`, without the password.
        server: String,
        /// The connection error.
        #[source]
        source: sqlx::Error,
    },

    /// Connecting to the embedded cluster failed even though it started.
    #[error(
        "failed to connect to the embedded PostgreSQL through socket directory `{}`; see \
         `sandtable db status` and the server log `{}`",
        socket_dir.display(),
        log_file.display()
    )]
    EmbeddedConnect {
        /// The socket directory.
        socket_dir: PathBuf,
        /// The server's log file.
        log_file: PathBuf,
        /// The connection error.
        #[source]
        source: sqlx::Error,
    },

    /// The server has no `vector` extension.
    #[error(
        "the `vector` extension is not installed on PostgreSQL at `{server}`; run `scripts/setup`, \
         which builds pgvector, or install pgvector on that server"
    )]
    VectorMissing {
        /// The server, without the password.
        server: String,
        /// The error from `CREATE EXTENSION`.
        #[source]
        source: sqlx::Error,
    },

    /// A statement that prepares the database failed.
    #[error("failed to {operation} on PostgreSQL at `{server}`")]
    Sql {
        /// The failed operation, such as "create database `sandtable`".
        operation: &'static str,
        /// The server, without the password.
        server: String,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
}

impl Error {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}
