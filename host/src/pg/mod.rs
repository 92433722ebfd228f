//! The catalog database: an external PostgreSQL server, or an embedded
//! cluster that sandtable runs itself.
//!
//! With `DATABASE_URL` set, [`connect`] uses that server and starts nothing.
//! Otherwise it starts, on demand, a private cluster under sandtable's data
//! directory (`SANDTABLE_HOME`, by default `~/.sandtable`), see
//! [`EmbeddedCluster`]. Either way it creates the `vector` extension
//! (pgvector) and returns a connection pool.
//!
//! ```no_run
//! # async fn example() -> Result<(), sandtable::pg::Error> {
//! let config = sandtable::pg::DatabaseConfig::from_env()?;
//! let pool = sandtable::pg::connect(&config).await?;
//! let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
//! # Ok(())
//! # }
//! ```

mod binaries;
pub mod cli;
mod cluster;
mod error;
mod layout;
mod lock;
mod postmaster;
mod server_user;

use std::env;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nix::unistd::{Uid, User};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

pub use cluster::{ClusterState, ClusterStatus, EmbeddedCluster, StartReport};
pub use error::Error;
pub use server_user::SYSTEM_USER;

/// The database that contains sandtable's catalog in the embedded cluster.
pub const DATABASE_NAME: &str = "sandtable";

/// The superuser of the embedded cluster. The cluster trusts every
/// connection over its private socket, which only its server's user and root
/// can open.
pub const SUPERUSER: &str = "sandtable";

/// The location of the catalog database: an external server or the embedded
/// cluster.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// A connection URL for an external server, from `DATABASE_URL`. `None`
    /// selects the embedded cluster.
    pub database_url: Option<String>,
    /// Sandtable's data directory, from `SANDTABLE_HOME`, by default
    /// `~/.sandtable`. It contains the embedded cluster in `pg/`.
    pub home: PathBuf,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL` and `SANDTABLE_HOME`. An empty variable counts as
    /// unset. Without `SANDTABLE_HOME`, the home is `$HOME/.sandtable`, or
    /// `.sandtable` in the user's home directory from the password database.
    ///
    /// # Errors
    ///
    /// Fails with [`Error::HomeNotFound`] when no home directory can be found.
    pub fn from_env() -> Result<Self, Error> {
        let database_url = env::var("DATABASE_URL").ok().filter(|url| !url.is_empty());
        let home = match env::var_os("SANDTABLE_HOME").filter(|home| !home.is_empty()) {
            Some(home) => PathBuf::from(home),
            None => default_home()?,
        };
        Ok(DatabaseConfig { database_url, home })
    }

    /// Creates a configuration that uses the embedded cluster under `home`.
    pub fn embedded(home: impl Into<PathBuf>) -> Self {
        DatabaseConfig {
            database_url: None,
            home: home.into(),
        }
    }

    /// Returns the external server as a URL without its password, or `None`
    /// for the embedded cluster.
    pub fn external_server(&self) -> Option<String> {
        let url = self.database_url.as_deref()?;
        Some(match url.parse::<PgConnectOptions>() {
            Ok(options) => describe_server(&options),
            Err(_) => "(invalid URL)".to_owned(),
        })
    }
}

/// Shows the URL without its password, since a `Debug` print may end up in
/// a log.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("database_url", &self.external_server())
            .field("home", &self.home)
            .finish()
    }
}

fn default_home() -> Result<PathBuf, Error> {
    let base = env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let user = User::from_uid(Uid::effective()).ok()??;
            Some(user.dir)
        })
        .ok_or(Error::HomeNotFound)?;
    Ok(base.join(".sandtable"))
}

/// Connects to the catalog database that `config` selects, creates the
/// `vector` extension there, and returns a pool.
///
/// With [`DatabaseConfig::database_url`] set, this connects to that server.
/// Otherwise it starts the embedded cluster if needed (see
/// [`EmbeddedCluster::start`]) and connects to its `sandtable` database.
/// The pool opens further connections on demand.
///
/// # Errors
///
/// Fails when the URL is invalid, the server cannot be reached, the embedded
/// cluster cannot start, or the server lacks pgvector
/// ([`Error::VectorMissing`]).
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, Error> {
    let result = match &config.database_url {
        Some(url) => connect_external(url).await,
        None => connect_embedded(config).await,
    };
    if let Err(error) = &result {
        tracing::debug!(%error, "failed to connect to the catalog database");
    }
    result
}

async fn connect_external(url: &str) -> Result<PgPool, Error> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|source| Error::InvalidDatabaseUrl { source })?;
    let server = describe_server(&options);

    // A direct connection fails at once with the cause, where a pool would
    // retry a refused connection until its acquire timeout.
    let mut connection = PgConnection::connect_with(&options)
        .await
        .map_err(|source| Error::Connect {
            server: server.clone(),
            source,
        })?;
    create_vector_extension(&mut connection, &server).await?;
    let _ = connection.close().await;

    Ok(pool(options))
}

async fn connect_embedded(config: &DatabaseConfig) -> Result<PgPool, Error> {
    let report = EmbeddedCluster::new(&config.home).start().await?;
    let options = report.status.connect_options();
    let server = describe_server(&options);

    let mut connection = PgConnection::connect_with(&options)
        .await
        .map_err(|source| Error::EmbeddedConnect {
            socket_dir: report.status.socket_dir.clone(),
            log_file: report.status.log_file.clone(),
            source,
        })?;
    create_vector_extension(&mut connection, &server).await?;
    let _ = connection.close().await;

    Ok(pool(options))
}

/// Creates a lazy pool over `options` with [`pool_options`]. A statement
/// that waits on a table lock, as writes to one table do in turn, is slow
/// without being wrong, so sqlx's slow-statement records go to the debug
/// level instead of warnings.
fn pool(options: PgConnectOptions) -> PgPool {
    let options = options.log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
    pool_options().connect_lazy_with(options)
}

/// Returns the options of the host's pools: each connection sets the HNSW
/// settings of a search when it opens, so that a search of up to 25 rows
/// needs no transaction to set them. They are `SET` statements rather than
/// startup options, which connection poolers may reject. A pool made
/// elsewhere works too, with a slower search.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new().after_connect(|connection, _| {
        Box::pin(async move {
            let statements: String = crate::table::SESSION_SETTINGS
                .iter()
                .map(|(name, value)| format!("SET {name} = {value}; "))
                .collect();
            sqlx::raw_sql(sqlx::AssertSqlSafe(statements))
                .execute(connection)
                .await?;
            Ok(())
        })
    })
}

/// Runs `CREATE EXTENSION IF NOT EXISTS vector`.
async fn create_vector_extension(connection: &mut PgConnection, server: &str) -> Result<(), Error> {
    // Two sessions that create the extension at once can both pass the
    // IF NOT EXISTS check. The later one then fails on the unique index of
    // pg_extension, so a second try finds the extension.
    const UNIQUE_VIOLATION: &str = "23505";
    // PostgreSQL 15 reports a missing control file as undefined_file;
    // PostgreSQL 16 and later report feature_not_supported.
    const MISSING_EXTENSION: [&str; 2] = ["58P01", "0A000"];

    let mut retried = false;
    loop {
        let result = sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(&mut *connection)
            .await;
        let Err(error) = result else {
            return Ok(());
        };
        let code = error
            .as_database_error()
            .and_then(|database_error| database_error.code())
            .map(|code| code.into_owned());
        match code.as_deref() {
            Some(UNIQUE_VIOLATION) if !retried => retried = true,
            Some(code) if MISSING_EXTENSION.contains(&code) => {
                return Err(Error::VectorMissing {
                    server: server.to_owned(),
                    source: error,
                });
            }
            _ => {
                return Err(Error::Sql {
                    operation: "create extension `vector`",
                    server: server.to_owned(),
                    source: error,
                });
            }
        }
    }
}

/// Formats connection options as a URL without the password, such as
/// `postgresql://app@db.internal:5432/catalog`. A Unix socket directory goes
/// percent-encoded into the host part, as in
/// `postgresql://sandtable@%2Ftmp%2Fsandtable-0123456789abcdef:5432/sandtable`,
/// which both libpq and sqlx accept, so the URL works as `DATABASE_URL`.
pub(crate) fn describe_server(options: &PgConnectOptions) -> String {
    let user = percent_encode(options.get_username());
    let database = percent_encode(options.get_database().unwrap_or(options.get_username()));
    let port = options.get_port();

    let host = options.get_host();
    let socket = options
        .get_socket()
        .map(|socket| socket.to_string_lossy().into_owned())
        .or_else(|| host.starts_with('/').then(|| host.to_owned()));
    let host = match socket {
        Some(socket) => percent_encode(&socket),
        // sqlx keeps the brackets of an IPv6 address from a URL, but not of
        // one set with `PgConnectOptions::host`.
        None if host.contains(':') && !host.starts_with('[') => format!("[{host}]"),
        None => host.to_owned(),
    };
    format!("postgresql://{user}@{host}:{port}/{database}")
}

/// Percent-encodes every byte but the unreserved characters of RFC 3986.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_server_drops_password() {
        let options: PgConnectOptions = "postgres://app:hunter2@db.internal:6543/catalog"
            .parse()
            .unwrap();

        assert_eq!(
            describe_server(&options),
            "postgresql://app@db.internal:6543/catalog"
        );
    }

    #[test]
    fn describe_server_drops_password_parameter() {
        let options: PgConnectOptions = "postgres://app@127.0.0.1/catalog?password=hunter2"
            .parse()
            .unwrap();

        let described = describe_server(&options);

        assert!(!described.contains("hunter2"), "{described}");
        assert!(described.contains("127.0.0.1"), "{described}");
    }

    #[test]
    fn describe_server_brackets_ipv6() {
        let options: PgConnectOptions = "postgres://app@[::1]:5433/catalog".parse().unwrap();

        assert_eq!(
            describe_server(&options),
            "postgresql://app@[::1]:5433/catalog"
        );
    }

    #[test]
    fn describe_server_brackets_ipv6_host() {
        let options = PgConnectOptions::new_without_pgpass()
            .host("::1")
            .port(5433)
            .username("app")
            .database("catalog");

        assert_eq!(
            describe_server(&options),
            "postgresql://app@[::1]:5433/catalog"
        );
    }

    #[test]
    fn describe_server_encodes_socket_dir() {
        let options = PgConnectOptions::new_without_pgpass()
            .socket("/tmp/sandtable-0123456789abcdef")
            .port(5432)
            .username("sandtable")
            .database("sandtable");

        assert_eq!(
            describe_server(&options),
            "postgresql://sandtable@%2Ftmp%2Fsandtable-0123456789abcdef:5432/sandtable"
        );
    }

    #[test]
    fn describe_server_socket_url_parses_back() {
        let options = PgConnectOptions::new_without_pgpass()
            .socket("/tmp/it's a dir")
            .port(5433)
            .username("sandtable")
            .database("sand table");

        let parsed: PgConnectOptions = describe_server(&options).parse().unwrap();

        assert_eq!(
            parsed.get_socket().map(|socket| socket.as_path()),
            Some(std::path::Path::new("/tmp/it's a dir"))
        );
        assert_eq!(parsed.get_port(), 5433);
        assert_eq!(parsed.get_username(), "sandtable");
        assert_eq!(parsed.get_database(), Some("sand table"));
    }

    #[test]
    fn config_debug_hides_password() {
        let config = DatabaseConfig {
            database_url: Some("postgres://app:hunter2@db.internal/catalog".to_owned()),
            home: PathBuf::from("/home/ada/.sandtable"),
        };

        let printed = format!("{config:?}");

        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal"), "{printed}");
    }
}
