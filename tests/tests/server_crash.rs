//! `sandtable serve` as a child process on a test database, killed with
//! SIGKILL or stopped with SIGTERM while a streamed insert runs, then
//! started again. Direct SQL and the API must then agree that the insert
//! is there whole or not at all, that every version has its rows, and that
//! no row lacks a version.
//!
//! The tests run the `sandtable` binary that Cargo built beside them, which
//! `cargo test --workspace` builds. Run alone, they need
//! `cargo build --release -p sandtable-host` first.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::ops::Range;
use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::Signal;
use sandtable::catalog::NewTenant;
use sandtable::table::input::InputFormat;
use sandtable_tests::TestDb;
use sandtable_tests::api::{ServeProcess, streamed_body};
use sandtable_tests::tables::{abort, setup, tenant_tables};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

/// The shutdown grace of `sandtable serve` (`SHUTDOWN_GRACE` in
/// `host/src/cli/serve.rs`, which is not exported).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long a test waits for a state of the server or the database.
const PATIENCE: Duration = Duration::from_secs(60);

/// The value of `n` in the row inserted after a restart. The streamed
/// insert sends the values from 0 up to below it, and the test's own
/// blocking write sends -1.
const AFTER_RESTART: i64 = 1_000_000_000;

/// A test database with tenant `acme`, its table `nums (n int, s string)`
/// made through the API, and a `sandtable serve` process over it.
struct Fixture {
    // Fields drop in this order: the server before the database it uses.
    server: ServeProcess,
    client: reqwest::Client,
    acme_tables: sandtable::table::Tables,
    acme: NewTenant,
    home: tempfile::TempDir,
    db: TestDb,
}

impl Fixture {
    async fn start() -> anyhow::Result<Self> {
        let (db, host) = setup(&[]).await?;
        let acme = host.catalog().create_tenant("acme").await?;
        let acme_tables = tenant_tables(&host, &acme).await?;
        let home = tempfile::Builder::new().prefix("st-crash-").tempdir()?;
        let server = ServeProcess::start(db.url(), home.path()).await?;
        let fixture = Fixture {
            server,
            client: reqwest::Client::new(),
            acme_tables,
            acme,
            home,
            db,
        };
        let create = fixture
            .request(reqwest::Method::POST, "/v1/tables")
            .json(&json!({"name": "nums", "columns": ["n:int", "s:string"]}));
        let (status, body) = send(create).await?;
        anyhow::ensure!(status == 201, "creating `nums` failed: {status} {body}");
        Ok(fixture)
    }

    fn key(&self) -> &str {
        &self.acme.api_key
    }

    /// Returns a request as `acme` to `path` on the server.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.server.url(path))
            .bearer_auth(self.key())
    }

    /// Starts the streamed insert into `nums` on a task of its own, and
    /// returns the sender of its body and the task, which ends with the
    /// response's status and JSON body.
    fn start_insert(
        &self,
    ) -> (
        sandtable_tests::api::BodySender,
        tokio::task::JoinHandle<anyhow::Result<(u16, Value)>>,
    ) {
        let (sender, body) = streamed_body();
        let request = self
            .request(reqwest::Method::POST, "/v1/tables/nums/rows")
            .body(body);
        let insert = tokio::spawn(send(request));
        (sender, insert)
    }

    /// Returns the id of table `nums` and its Postgres table.
    async fn table(&self) -> anyhow::Result<(i64, String)> {
        let id: i64 = sqlx::query_scalar(
            "SELECT t.id FROM sandtable.tables t JOIN sandtable.tenants n ON n.id = t.tenant_id \
             WHERE n.name = 'acme' AND t.name = 'nums'",
        )
        .fetch_one(self.db.pool())
        .await?;
        let schema = &self.acme.tenant.schema_name;
        Ok((id, format!("\"{schema}\".t_{id}")))
    }

    /// Returns the backends that run a `COPY` into `nums`, with the rows
    /// each has copied.
    ///
    /// NOTE: Postgres shows other roles' progress only to superusers and
    /// members of `pg_read_all_stats`. The embedded test cluster connects
    /// as a superuser, but a `DATABASE_URL` role without either sees no
    /// `COPY`, and these tests then time out waiting for one.
    async fn copies(&self) -> anyhow::Result<Vec<(i32, i64)>> {
        let (_, table) = self.table().await?;
        Ok(sqlx::query_as(
            "SELECT pid, tuples_processed FROM pg_stat_progress_copy \
             WHERE datname = current_database() AND relid = $1::regclass",
        )
        .bind(table)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Fails once `started` is [`PATIENCE`] ago, naming `what` the test
    /// waits for.
    fn check_patience(&self, started: Instant, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}: {}",
            self.server.log()
        );
        Ok(())
    }

    /// Waits until `count` backends run a `COPY` into `nums`.
    async fn wait_for_copies(&self, count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let copies = self.copies().await?;
            if copies.len() == count {
                return Ok(());
            }
            let what = format!("{count} COPY into `nums`, with {copies:?} running");
            self.check_patience(started, &what)?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until one backend of the database waits for an advisory lock,
    /// as a write does while an earlier write has not ended.
    async fn wait_for_turn_waiter(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
            )
            .fetch_one(self.db.pool())
            .await?;
            if waiting == 1 {
                return Ok(());
            }
            self.check_patience(started, "a write waiting for its turn to commit")?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the server's port refuses connections.
    async fn wait_until_not_listening(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let address = self.server.url("").replace("http://", "");
        while tokio::net::TcpStream::connect(&address).await.is_ok() {
            self.check_patience(started, "the server to stop listening")?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    async fn kill(&mut self) -> anyhow::Result<()> {
        self.server.signal(Signal::SIGKILL)?;
        let status = self.server.wait_exit(PATIENCE).await?;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status}");
        Ok(())
    }

    /// Waits until every Postgres connection of the stopped server has
    /// closed, then starts the server again on the same database and home.
    /// A COMMIT that reached Postgres before the server died may still
    /// complete until its connection closes, so checks start only after that.
    async fn restart(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            )
            .bind(self.server.application_name())
            .fetch_one(self.db.pool())
            .await?;
            if open == 0 {
                break;
            }
            let what = format!("{open} connections of the stopped server to close");
            self.check_patience(started, &what)?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.server = ServeProcess::start(self.db.url(), self.home.path()).await?;
        Ok(())
    }

    /// Checks, with direct SQL and through the API, that every version of
    /// `nums` has exactly the rows it added and every row has a version.
    /// Returns how many rows with `n` in `streamed` are stored.
    async fn check_consistent(&self, streamed: Range<i64>) -> anyhow::Result<i64> {
        let (id, table) = self.table().await?;
        let versions: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT version, write_id, operation, rows_added FROM sandtable.table_versions \
             WHERE table_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        let rows_by_write: BTreeMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(
            format!("SELECT _v_min, count(*) FROM {table} GROUP BY _v_min"),
        ))
        .fetch_all(self.db.pool())
        .await?
        .into_iter()
        .collect();

        let numbers: Vec<i64> = versions.iter().map(|v| v.0).collect();
        let dense: Vec<i64> = (0..versions.len() as i64).collect();
        assert_eq!(numbers, dense, "versions are not 0, 1, 2, ...");
        for (version, write_id, operation, rows_added) in &versions {
            let stored = rows_by_write.get(write_id).copied().unwrap_or(0);
            assert_eq!(
                stored, *rows_added,
                "version {version} ({operation}, write {write_id}) added {rows_added} rows, \
                 but {stored} rows have that write"
            );
        }
        for (write_id, count) in &rows_by_write {
            assert!(
                versions.iter().any(|v| v.1 == *write_id),
                "{count} rows have write {write_id}, which has no version: {versions:?}"
            );
        }

        // The API lists the same versions.
        let (status, history) =
            send(self.request(reqwest::Method::GET, "/v1/tables/nums/history")).await?;
        assert_eq!(status, 200, "{history}");
        let listed: Vec<(i64, i64)> = history
            .as_array()
            .context("the history is not a list")?
            .iter()
            .map(|entry| {
                (
                    entry["version"].as_i64().unwrap_or(-1),
                    entry["rows_added"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let expected: Vec<(i64, i64)> = versions.iter().map(|v| (v.0, v.3)).collect();
        assert_eq!(
            listed, expected,
            "the API's history differs from the catalog"
        );

        let n_column: i64 = sqlx::query_scalar(
            "SELECT id FROM sandtable.columns WHERE table_id = $1 AND name = 'n'",
        )
        .bind(id)
        .fetch_one(self.db.pool())
        .await?;
        let (low, high) = (streamed.start, streamed.end);
        let stored: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE c_{n_column} >= {low} AND c_{n_column} < {high}"
        )))
        .fetch_one(self.db.pool())
        .await?;
        let select = self
            .request(reqwest::Method::GET, "/v1/tables/nums/rows")
            .query(&[
                ("columns", "n".to_owned()),
                ("where", format!("n >= {low} and n < {high}")),
                ("limit", "1".to_owned()),
            ]);
        let (status, body) = send(select).await?;
        assert_eq!(status, 200, "{body}");
        let seen = body["rows"].as_array().map_or(0, Vec::len) as i64;
        assert_eq!(
            seen,
            stored.min(1),
            "the API and SQL disagree on the rows with n in {streamed:?}: {body}"
        );
        Ok(stored)
    }

    /// Inserts one row through the API, which must get the version after
    /// the latest, so a write cut off by the crash blocks no later write.
    async fn insert_after_restart(&self) -> anyhow::Result<()> {
        let (id, _) = self.table().await?;
        let latest: i64 = sqlx::query_scalar(
            "SELECT max(version) FROM sandtable.table_versions WHERE table_id = $1",
        )
        .bind(id)
        .fetch_one(self.db.pool())
        .await?;
        let line = format!("{{\"n\": {AFTER_RESTART}, \"s\": \"after\"}}\n");
        let insert = send(
            self.request(reqwest::Method::POST, "/v1/tables/nums/rows")
                .body(line),
        );
        let (status, body) = tokio::time::timeout(PATIENCE, insert).await.map_err(|_| {
            anyhow::anyhow!(
                "the insert after the restart timed out after {PATIENCE:?}, so a cut-off \
                 write still blocks later writes"
            )
        })??;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["version"], latest + 1, "{body}");
        Ok(())
    }
}

/// Sends `request` and returns the status and the JSON body.
async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text)
        .with_context(|| format!("the body of a {status} is not JSON: {text}"))?;
    Ok((status, body))
}

/// Returns JSON Lines of the rows with `n` in `range`.
fn lines(range: Range<i64>) -> String {
    range
        .map(|n| format!("{{\"n\": {n}, \"s\": \"row {n}\"}}\n"))
        .collect()
}

/// Returns the response of an insert cut off by the server's end: `None`
/// when the request failed, else the status and body.
async fn cut_off_response(
    insert: tokio::task::JoinHandle<anyhow::Result<(u16, Value)>>,
) -> anyhow::Result<Option<(u16, Value)>> {
    let outcome = tokio::time::timeout(PATIENCE, insert)
        .await
        .map_err(|_| anyhow::anyhow!("the cut-off request timed out after {PATIENCE:?}"))??;
    Ok(outcome.ok())
}

#[tokio::test]
async fn sigkill_early_in_body_keeps_nothing() -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;
    let (sender, insert) = fixture.start_insert();
    sender.send(lines(0..100)).await?;
    // The server's write has begun its COPY and waits for more of the body.
    fixture.wait_for_copies(1).await?;

    fixture.kill().await?;
    drop(sender);
    let response = cut_off_response(insert).await?;
    assert!(response.is_none(), "the cut-off insert got {response:?}");

    fixture.restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    fixture.insert_after_restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    Ok(())
}

#[tokio::test]
async fn sigkill_mid_body_keeps_nothing() -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;
    let (sender, insert) = fixture.start_insert();
    // Chunks of 1,000 rows until Postgres has taken 20,000 of them, with
    // the body still open.
    const COPIED: i64 = 20_000;
    const MAX_ROWS: i64 = 2_000_000;
    let mut sent = 0;
    loop {
        sender.send(lines(sent..sent + 1000)).await?;
        sent += 1000;
        let copied: i64 = fixture.copies().await?.iter().map(|c| c.1).sum();
        if copied >= COPIED {
            break;
        }
        anyhow::ensure!(
            sent < MAX_ROWS,
            "Postgres copied {copied} of {sent} rows sent: {}",
            fixture.server.log()
        );
    }

    fixture.kill().await?;
    drop(sender);
    let response = cut_off_response(insert).await?;
    assert!(response.is_none(), "the cut-off insert got {response:?}");

    fixture.restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    fixture.insert_after_restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    Ok(())
}

/// Sends rows with `n` in `range` as the body of a streamed insert, in
/// chunks of 5,000, and ends the body. Returns the request's task.
async fn send_whole_insert(
    fixture: &Fixture,
    range: Range<i64>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<(u16, Value)>>> {
    let (sender, insert) = fixture.start_insert();
    for start in range.clone().step_by(5000) {
        sender
            .send(lines(start..(start + 5000).min(range.end)))
            .await?;
    }
    Ok(insert)
}

#[tokio::test]
async fn sigkill_at_body_end_keeps_all_or_nothing() -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;
    const ROWS: i64 = 50_000;

    // An insert left to finish gives the time from the body's end to the
    // response, over which the kills below are spread.
    let insert = send_whole_insert(&fixture, 0..ROWS).await?;
    let body_ended = Instant::now();
    let (status, body) = insert.await??;
    let finish = body_ended.elapsed();
    assert_eq!(status, 201, "{body}");
    assert_eq!(fixture.check_consistent(0..ROWS).await?, ROWS);

    // Each kill lands at a fraction of that time after the body ends: in
    // the last COPY, the commit or the response.
    let mut outcomes = Vec::new();
    for (round, fraction) in [0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2]
        .into_iter()
        .enumerate()
    {
        let first = (round as i64 + 1) * ROWS;
        let insert = send_whole_insert(&fixture, first..first + ROWS).await?;
        tokio::time::sleep(finish.mul_f64(fraction)).await;
        fixture.kill().await?;
        let response = cut_off_response(insert).await?;

        fixture.restart().await?;
        let stored = fixture.check_consistent(first..first + ROWS).await?;
        if let Some((status, body)) = &response {
            assert_eq!(*status, 201, "{body}");
            assert_eq!(stored, ROWS, "the insert returned {body}");
        } else {
            assert!(
                stored == 0 || stored == ROWS,
                "{stored} of the {ROWS} rows are stored"
            );
        }
        let ending = if response.is_some() {
            "responded"
        } else {
            "cut off"
        };
        outcomes.push(format!("{fraction}: {stored} rows, {ending}"));
        fixture.insert_after_restart().await?;
    }
    eprintln!(
        "kills at fractions of {finish:?} after the body ended: {}",
        outcomes.join("; ")
    );
    Ok(())
}

#[tokio::test]
async fn sigkill_waiting_to_commit_keeps_nothing() -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;

    // A write of the test's own, begun first and held open, so that the
    // server's insert copies every row and then waits for its turn to
    // commit.
    let (reader, mut writer) = std::io::pipe()?;
    writer.write_all(b"{\"n\": -1, \"s\": \"blocker\"}\n")?;
    let tables = fixture.acme_tables.clone();
    let blocker = tokio::spawn(async move {
        tables
            .insert(
                "nums",
                std::io::BufReader::new(reader),
                InputFormat::Jsonl,
                &abort(),
            )
            .await
    });
    fixture.wait_for_copies(1).await?;

    let (sender, insert) = fixture.start_insert();
    const ROWS: i64 = 50_000;
    for start in (0..ROWS).step_by(5000) {
        sender.send(lines(start..start + 5000)).await?;
    }
    drop(sender);
    fixture.wait_for_turn_waiter().await?;

    fixture.kill().await?;
    let response = cut_off_response(insert).await?;
    assert!(response.is_none(), "the cut-off insert got {response:?}");
    drop(writer);
    let committed = tokio::time::timeout(PATIENCE, blocker)
        .await
        .map_err(|_| anyhow::anyhow!("the blocking write timed out before its commit"))???;
    assert_eq!(committed.version, 1, "{committed:?}");

    fixture.restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    fixture.insert_after_restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_streamed_insert_finish() -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;
    let (sender, insert) = fixture.start_insert();
    const ROWS: i64 = 50_000;
    sender.send(lines(0..10_000)).await?;
    fixture.wait_for_copies(1).await?;

    fixture.server.signal(Signal::SIGTERM)?;
    // The server stops listening at once, and the insert goes on.
    fixture.wait_until_not_listening().await?;
    for start in (10_000..ROWS).step_by(10_000) {
        sender.send(lines(start..start + 10_000)).await?;
    }
    drop(sender);
    let (status, body) = tokio::time::timeout(PATIENCE, insert)
        .await
        .map_err(|_| anyhow::anyhow!("the insert timed out after SIGTERM"))???;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rows_added"], ROWS, "{body}");

    let status = fixture.server.wait_exit(PATIENCE).await?;
    assert!(status.success(), "{status}: {}", fixture.server.log());
    assert!(
        fixture.server.stdout().contains("stopped"),
        "{}",
        fixture.server.log()
    );

    fixture.restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, ROWS);
    fixture.insert_after_restart().await?;
    Ok(())
}

#[tokio::test]
async fn sigterm_past_grace_rolls_back_insert() -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;
    let (sender, insert) = fixture.start_insert();
    sender.send(lines(0..10_000)).await?;
    fixture.wait_for_copies(1).await?;

    // The body never ends, so the server waits out its grace and exits.
    fixture.server.signal(Signal::SIGTERM)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        fixture.copies().await?.len() == 1,
        "the insert ended before the grace did: {}",
        fixture.server.log()
    );
    let status = fixture.server.wait_exit(SHUTDOWN_GRACE + PATIENCE).await?;
    assert!(status.success(), "{status}: {}", fixture.server.log());
    let response = cut_off_response(insert).await?;
    assert!(response.is_none(), "the cut-off insert got {response:?}");
    drop(sender);

    fixture.restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    fixture.insert_after_restart().await?;
    assert_eq!(fixture.check_consistent(0..AFTER_RESTART).await?, 0);
    Ok(())
}
