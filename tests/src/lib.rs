//! Shared harness for Sandtable's integration tests.
//!
//! [`fresh_database`] gives each test a new, uniquely named database with the
//! `vector` extension, on the server from `DATABASE_URL`, or else on an
//! embedded cluster under `target/test-pg` that all test binaries of a run
//! share. The first test of a process starts that cluster; the cluster's
//! lock keeps test binaries that run at once from both running initdb.

pub mod api;
pub mod http;
pub mod machine;
pub mod search;
pub mod tables;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use sandtable::pg::EmbeddedCluster;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

/// The prefix of every test database's name, followed by the process id and
/// a counter, such as `sandtable_test_4242_7`.
pub const TEST_DATABASE_PREFIX: &str = "sandtable_test_";

/// How many connections each test database's pool opens at most, so that
/// parallel tests stay below the server's default `max_connections` of 100.
const POOL_MAX_CONNECTIONS: u32 = 4;

static SERVER: OnceCell<TestServer> = OnceCell::const_new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// The server that test databases are created on.
struct TestServer {
    /// Options for a connection that may create and drop databases.
    admin: PgConnectOptions,
    /// The same connection as a URL, password included, for processes that
    /// read `DATABASE_URL`.
    url: String,
}

/// Returns the root of the Cargo workspace.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lies inside the workspace")
        .to_owned()
}

/// Returns the `SANDTABLE_HOME` of the embedded cluster that tests share.
pub fn test_cluster_home() -> PathBuf {
    workspace_root().join("target").join("test-pg")
}

/// A database made for one test, dropped when this value is dropped.
///
/// Dropping terminates the database's remaining connections (`DROP DATABASE
/// ... WITH (FORCE)`), so drop it only after the test is done with the pool.
#[derive(Debug)]
pub struct TestDb {
    pool: PgPool,
    name: String,
    admin: PgConnectOptions,
    url: String,
}

impl TestDb {
    /// Returns a pool of connections to this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Returns the database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns options that connect to this database, for code under test
    /// that builds its own pool.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// Returns a URL of this database, for a `sandtable` process started
    /// with it as `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDb {
    /// Drops the database, best effort: a failure is printed, not raised.
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // A thread with a runtime of its own, since drop may run on the
        // thread of a current-thread runtime that must not block on itself.
        let outcome = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&admin, &name))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("failed to drop test database `{}`: {error:#}", self.name),
            Err(_) => eprintln!(
                "failed to drop test database `{}`: the thread panicked",
                self.name
            ),
        }
    }
}

/// Creates a new database with the `vector` extension and returns it with a
/// pool.
///
/// # Errors
///
/// Fails when `DATABASE_URL` is invalid or its server unreachable, when the
/// embedded cluster cannot start, or when the server refuses to create the
/// database or the extension.
pub async fn fresh_database() -> anyhow::Result<TestDb> {
    let server = SERVER.get_or_try_init(start_server).await?;
    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );

    let mut admin = PgConnection::connect_with(&server.admin)
        .await
        .context("failed to connect to the test server")?;
    // The name is made of the prefix and digits, so it needs no quoting.
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("failed to create test database `{name}`"))?;
    let _ = admin.close().await;

    let db = TestDb {
        pool: sandtable::pg::pool_options()
            .max_connections(POOL_MAX_CONNECTIONS)
            .connect_lazy_with(server.admin.clone().database(&name)),
        url: url_with_database(&server.url, &name)?,
        name,
        admin: server.admin.clone(),
    };
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(db.pool())
        .await
        .with_context(|| {
            format!(
                "failed to create extension `vector` in `{}`; run `scripts/setup`, which \
                 builds pgvector",
                db.name()
            )
        })?;
    Ok(db)
}

async fn start_server() -> anyhow::Result<TestServer> {
    if let Some(url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        let admin = url
            .parse()
            .context("invalid `DATABASE_URL`; expected `postgres://user:password@host/database`")?;
        return Ok(TestServer { admin, url });
    }

    let home = test_cluster_home();
    let report = EmbeddedCluster::new(&home)
        .start()
        .await
        .with_context(|| format!("failed to start the test cluster in `{}`", home.display()))?;
    let admin = report.status.connect_options().database("postgres");
    drop_abandoned_databases(&admin).await?;
    let url = socket_url(&admin)?;
    Ok(TestServer { admin, url })
}

/// Returns the URL of a server reached over a Unix socket, such as
/// `postgresql://sandtable@%2Ftmp%2Fpg:5432/postgres`, in the form that both
/// libpq and sqlx read. The embedded cluster trusts its socket, so the URL
/// needs no password.
fn socket_url(options: &PgConnectOptions) -> anyhow::Result<String> {
    let socket = options
        .get_socket()
        .context("the test cluster's connection options have no socket directory")?;
    let socket = socket
        .to_str()
        .context("the test cluster's socket directory is not UTF-8")?;
    Ok(format!(
        "postgresql://{}@{}:{}/{}",
        percent_encode(options.get_username()),
        percent_encode(socket),
        options.get_port(),
        percent_encode(options.get_database().unwrap_or("postgres"))
    ))
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

/// Returns `url` with its database, the path after the host, replaced by
/// `database`; the query string is kept.
fn url_with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("the server URL has no `://`: {}", redact(url)))?;
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location.split_once('/').map_or(location, |(host, _)| host);
    let mut replaced = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        replaced.push('?');
        replaced.push_str(query);
    }
    Ok(replaced)
}

/// Returns `url` without the user information, which may hold a password.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://...@{host}"),
            None => url.to_owned(),
        },
        None => "(not a URL)".to_owned(),
    }
}

/// Drops the test databases of processes that are gone, such as those of an
/// interrupted run. Only the embedded cluster is cleaned, since the pids in
/// the names of another server's databases may be of other machines.
async fn drop_abandoned_databases(admin: &PgConnectOptions) -> anyhow::Result<()> {
    let mut connection = PgConnection::connect_with(admin)
        .await
        .context("failed to connect to the test cluster")?;
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database")
        .fetch_all(&mut connection)
        .await
        .context("failed to list the test cluster's databases")?;
    let _ = connection.close().await;

    for name in names {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            drop_database(admin, &name).await?;
        }
    }
    Ok(())
}

/// Returns the process id in a test database's name, or `None` for any
/// other name.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, counter) = name.strip_prefix(TEST_DATABASE_PREFIX)?.split_once('_')?;
    counter.parse::<u32>().ok()?;
    pid.parse().ok()
}

async fn drop_database(admin: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        owner_pid(name).is_some(),
        "refusing to drop `{name}`, which is not a test database"
    );
    let mut connection = PgConnection::connect_with(admin).await?;
    let oid: Option<i64> =
        sqlx::query_scalar("SELECT oid::bigint FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut connection)
            .await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut connection)
    .await?;
    // Roles belong to the cluster, so the tenant roles that tests made in
    // the database outlive it; their names start with its oid.
    if let Some(oid) = oid {
        let roles: Vec<String> =
            sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
                .bind(format!("sandtable\\_{oid}\\_%"))
                .fetch_all(&mut connection)
                .await?;
        for role in roles {
            sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{role}\"")))
                .execute(&mut connection)
                .await?;
        }
    }
    let _ = connection.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_test_names_only() {
        assert_eq!(owner_pid("sandtable_test_4242_7"), Some(4242));
        assert_eq!(owner_pid("sandtable_test_4242_x"), None);
        assert_eq!(owner_pid("sandtable_test_4242"), None);
        assert_eq!(owner_pid("sandtable"), None);
        assert_eq!(owner_pid("postgres"), None);
        assert_eq!(owner_pid("sandtable_test_1_2; DROP TABLE x"), None);
    }

    #[test]
    fn url_with_database_keeps_host_and_query() {
        let cases = [
            (
                "postgres://app:pw@db:5432/postgres",
                "postgres://app:pw@db:5432/t_1",
            ),
            ("postgres://app@db", "postgres://app@db/t_1"),
            (
                "postgres://app@db/x?sslmode=disable",
                "postgres://app@db/t_1?sslmode=disable",
            ),
            (
                "postgresql://sandtable@%2Ftmp%2Fpg:5432/postgres",
                "postgresql://sandtable@%2Ftmp%2Fpg:5432/t_1",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(url_with_database(url, "t_1").unwrap(), expected, "{url}");
        }
        assert!(url_with_database("db:5432", "t_1").is_err());
    }

    #[test]
    fn socket_url_parses_back() {
        let options = PgConnectOptions::new_without_pgpass()
            .socket("/tmp/st pg")
            .port(5433)
            .username("sandtable")
            .database("postgres");
        let url = socket_url(&options).unwrap();
        assert_eq!(url, "postgresql://sandtable@%2Ftmp%2Fst%20pg:5433/postgres");
        let parsed: PgConnectOptions = url.parse().unwrap();
        assert_eq!(
            parsed.get_socket().map(|path| path.to_str().unwrap()),
            Some("/tmp/st pg")
        );
        assert_eq!(parsed.get_port(), 5433);
        assert_eq!(parsed.get_database(), Some("postgres"));
    }
}
