//! The embedded PostgreSQL cluster, run for real: initdb, start, stop, crash
//! recovery, long paths, root, and concurrent starts from several processes.
//!
//! Each test uses its own `SANDTABLE_HOME` under `/tmp`, which keeps the
//! socket paths short, and stops and removes its cluster at the end.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};
use sandtable::pg::{self, ClusterState, DatabaseConfig, EmbeddedCluster};
use tempfile::TempDir;

/// Tells a run of this binary to act as a child of
/// `concurrent_starts_run_initdb_once`, starting the cluster in this home.
const CHILD_HOME_VAR: &str = "SANDTABLE_TEST_CHILD_HOME";

/// Marks the line on which a child prints its start report.
const CHILD_REPORT_PREFIX: &str = "start-report: ";

/// A `SANDTABLE_HOME` for one test. Dropping it stops the cluster and
/// removes the cluster directory, also when it lies outside the home.
struct TestHome {
    // Dropped after `Drop::drop` has stopped the cluster.
    _dir: TempDir,
    home: PathBuf,
    cluster: EmbeddedCluster,
}

impl TestHome {
    /// Creates a home with mode 0755, which the server's user can enter.
    fn open() -> Self {
        let dir = temp_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().to_owned();
        Self::with(dir, home)
    }

    /// Creates a home with mode 0700, as `/root` is.
    fn closed() -> Self {
        let dir = temp_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let home = dir.path().to_owned();
        Self::with(dir, home)
    }

    /// Creates a home at `relative` inside an open temporary directory.
    fn nested(relative: &str) -> Self {
        let dir = temp_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join(relative);
        fs::create_dir_all(&home).unwrap();
        Self::with(dir, home)
    }

    fn with(dir: TempDir, home: PathBuf) -> Self {
        let cluster = EmbeddedCluster::new(&home);
        TestHome {
            _dir: dir,
            home,
            cluster,
        }
    }

    fn config(&self) -> DatabaseConfig {
        DatabaseConfig::embedded(&self.home)
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        let cluster = self.cluster.clone();
        // A runtime of its own, since drop runs inside the test's runtime.
        let stopped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(cluster.stop())?;
            cluster.status()
        })
        .join();
        match stopped {
            Ok(Ok(status)) if status.linked_from.is_some() => {
                let _ = fs::remove_dir_all(&status.cluster_dir);
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => eprintln!("failed to stop the test cluster: {error:#}"),
            Err(_) => eprintln!("failed to stop the test cluster: the thread panicked"),
        }
    }
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("st-")
        .tempdir_in("/tmp")
        .unwrap()
}

fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Returns the real uid of process `pid`, from `/proc/<pid>/status`.
fn process_uid(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Returns whether process `pid` exists and is no zombie.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..].trim_start();
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

fn postmaster_pid(data_dir: &Path) -> u32 {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn cluster_runs_as_unprivileged_user() {
    let home = TestHome::open();

    let started = Instant::now();
    let report = home.cluster.start().await.unwrap();
    eprintln!(
        "initdb and first start: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    assert!(report.initialized, "first start did not run initdb");
    assert!(report.started, "first start did not start the server");
    let status = report.status;
    assert_eq!(status.state, ClusterState::Running);
    assert_eq!(status.linked_from, None);
    assert_eq!(status.cluster_dir, home.home.join("pg"));
    let pid = status.pid.expect("a running cluster reports its pid");

    let server_uid = process_uid(pid);
    if is_root() {
        let system_user = User::from_name(pg::SYSTEM_USER).unwrap().unwrap();
        assert_ne!(server_uid, 0, "the postmaster runs as root");
        assert_eq!(server_uid, system_user.uid.as_raw());
        assert_eq!(status.server_user.as_deref(), Some(pg::SYSTEM_USER));
    } else {
        assert_eq!(server_uid, Uid::effective().as_raw());
    }

    let socket_dir = fs::metadata(&status.socket_dir).unwrap();
    assert_eq!(socket_dir.mode() & 0o777, 0o700);
    assert_eq!(socket_dir.uid(), server_uid);
    let socket = fs::metadata(status.socket_file()).unwrap();
    assert!(socket.file_type().is_socket());
    assert_eq!(socket.mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(&status.data_dir).unwrap().uid(), server_uid);
    assert_eq!(fs::metadata(&status.cluster_dir).unwrap().uid(), server_uid);
    // The home keeps its owner; only the cluster directory changes hands.
    assert_eq!(
        fs::metadata(&home.home).unwrap().uid(),
        Uid::effective().as_raw()
    );

    let pool = pg::connect(&home.config()).await.unwrap();
    let (user, database): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_database()::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(user, pg::SUPERUSER);
    assert_eq!(database, pg::DATABASE_NAME);
    let listen_addresses: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(listen_addresses, "");
    let vector: String = sqlx::query_scalar("SELECT '[1,2,3]'::vector::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(vector, "[1,2,3]");
    pool.close().await;
}

#[tokio::test]
async fn second_start_finds_server_running() {
    let home = TestHome::open();
    let first = home.cluster.start().await.unwrap();

    let second = home.cluster.start().await.unwrap();

    assert!(!second.initialized);
    assert!(!second.started);
    assert_eq!(second.status.pid, first.status.pid);
}

#[tokio::test]
async fn stop_then_status_reports_stopped() {
    let home = TestHome::open();
    let report = home.cluster.start().await.unwrap();
    let pid = report.status.pid.unwrap();

    let stopped = home.cluster.stop().await.unwrap();

    assert!(stopped, "stop did not report stopping a running server");
    let status = home.cluster.status().unwrap();
    assert_eq!(status.state, ClusterState::Stopped);
    assert_eq!(status.pid, None);
    assert!(!status.data_dir.join("postmaster.pid").exists());
    assert!(
        !process_alive(pid),
        "postmaster {pid} still runs after stop"
    );
    assert!(
        !home.cluster.stop().await.unwrap(),
        "a second stop found a server"
    );
}

#[tokio::test]
async fn stopped_cluster_starts_again() {
    let home = TestHome::open();
    home.cluster.start().await.unwrap();
    home.cluster.stop().await.unwrap();

    let started = Instant::now();
    let report = home.cluster.start().await.unwrap();
    eprintln!(
        "start of a stopped cluster: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    assert!(!report.initialized);
    assert!(report.started);
    assert_eq!(report.status.state, ClusterState::Running);
}

#[tokio::test]
async fn connect_restarts_after_postmaster_kill() {
    let home = TestHome::open();
    let pool = pg::connect(&home.config()).await.unwrap();
    sqlx::query("CREATE TABLE survivors (id int PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO survivors VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    // An open session leaves a backend that outlives the postmaster for a
    // moment, which the restart has to wait out.
    let session = pool.acquire().await.unwrap();
    let data_dir = home.cluster.status().unwrap().data_dir;
    let old_pid = postmaster_pid(&data_dir);

    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(old_pid) {
        assert!(
            Instant::now() < deadline,
            "postmaster {old_pid} survived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(home.cluster.status().unwrap().state, ClusterState::Running);
    drop(session);

    let started = Instant::now();
    let pool = pg::connect(&home.config()).await.unwrap();
    eprintln!(
        "restart after kill -9: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM survivors")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let status = home.cluster.status().unwrap();
    assert_eq!(status.state, ClusterState::Running);
    assert_ne!(status.pid, Some(old_pid));
    pool.close().await;
}

#[tokio::test]
async fn connect_right_after_postmaster_kill() {
    let home = TestHome::open();
    let report = home.cluster.start().await.unwrap();
    let old_pid = report.status.pid.unwrap();

    // No wait for the exit: the dying postmaster may still look alive.
    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).unwrap();
    let pool = pg::connect(&home.config()).await.unwrap();

    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_ne!(home.cluster.status().unwrap().pid, Some(old_pid));
    pool.close().await;
}

#[tokio::test]
async fn empty_postmaster_pid_is_cleared() {
    let home = TestHome::open();
    let data_dir = home.cluster.start().await.unwrap().status.data_dir;
    home.cluster.stop().await.unwrap();
    // A postmaster that dies while writing the file leaves it empty.
    fs::write(data_dir.join("postmaster.pid"), "").unwrap();

    let report = home.cluster.start().await.unwrap();

    assert!(report.started);
    assert_eq!(report.status.state, ClusterState::Running);
}

#[tokio::test]
async fn long_home_path_uses_short_socket_dir() {
    let home = TestHome::nested(&format!("{}/{}", "a".repeat(60), "b".repeat(60)));
    assert!(home.home.as_os_str().len() > 107);

    let pool = pg::connect(&home.config()).await.unwrap();

    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let status = home.cluster.status().unwrap();
    assert!(
        status
            .socket_dir
            .to_string_lossy()
            .starts_with("/tmp/sandtable-"),
        "socket directory {} is not the short fallback",
        status.socket_dir.display()
    );
    assert!(status.socket_file().as_os_str().len() <= 107);
    assert!(status.data_dir.starts_with(&home.home));
    pool.close().await;

    home.cluster.stop().await.unwrap();
    assert!(
        !status.socket_dir.exists(),
        "stop left the fallback socket directory behind"
    );
}

#[tokio::test]
async fn closed_home_places_cluster_in_var_lib() {
    if !is_root() {
        eprintln!("skipped: only root runs the server as another user");
        return;
    }
    let home = TestHome::closed();

    let pool = pg::connect(&home.config()).await.unwrap();

    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    pool.close().await;
    let status = home.cluster.status().unwrap();
    let link = home.home.join("pg");
    assert_eq!(status.linked_from.as_deref(), Some(link.as_path()));
    assert!(status.cluster_dir.starts_with("/var/lib/sandtable/"));
    assert_eq!(fs::read_link(&link).unwrap(), status.cluster_dir);
    assert_eq!(
        fs::metadata(&home.home).unwrap().mode() & 0o777,
        0o700,
        "the home's mode changed"
    );
}

#[tokio::test]
async fn status_of_new_home_is_not_initialized() {
    let home = TestHome::open();

    let status = home.cluster.status().unwrap();

    assert_eq!(status.state, ClusterState::NotInitialized);
    assert_eq!(status.pid, None);
    assert!(
        !home.home.join("pg").exists(),
        "status created the cluster directory"
    );
    assert!(!home.cluster.stop().await.unwrap());
}

#[tokio::test]
async fn unreachable_database_url_names_host_without_password() {
    let home = TestHome::open();
    let config = DatabaseConfig {
        database_url: Some("postgres://sandtable:hunter2@127.0.0.1:1/catalog".to_owned()),
        home: home.home.clone(),
    };

    let error = pg::connect(&config).await.unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, pg::Error::Connect { .. }), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(!chain.contains("hunter2"), "{chain}");
    assert!(
        !home.home.join("pg").exists(),
        "an embedded cluster was created"
    );
}

#[tokio::test]
async fn concurrent_starts_run_initdb_once() {
    const CHILDREN: usize = 3;
    let home = TestHome::open();

    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "start_in_child_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_HOME_VAR, &home.home)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<serde_json::Value> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "child failed: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let line = stdout
                .lines()
                .find_map(|line| line.strip_prefix(CHILD_REPORT_PREFIX))
                .unwrap_or_else(|| panic!("child printed no report: {stdout}"));
            serde_json::from_str(line).unwrap()
        })
        .collect();

    let count = |field: &str| {
        reports
            .iter()
            .filter(|report| report[field] == true)
            .count()
    };
    assert_eq!(
        count("initialized"),
        1,
        "initdb ran more or less than once: {reports:?}"
    );
    assert_eq!(
        count("started"),
        1,
        "the server started more or less than once: {reports:?}"
    );
    let status = home.cluster.status().unwrap();
    assert_eq!(status.state, ClusterState::Running);
    for report in &reports {
        assert_eq!(report["status"]["pid"], serde_json::json!(status.pid));
    }
}

#[tokio::test]
async fn fresh_databases_are_separate_and_dropped() {
    let first = sandtable_tests::fresh_database().await.unwrap();
    let second = sandtable_tests::fresh_database().await.unwrap();
    assert_ne!(first.name(), second.name());

    sqlx::query("CREATE TABLE only_in_first (embedding vector(3))")
        .execute(first.pool())
        .await
        .unwrap();
    let in_second: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_first')::text")
        .fetch_one(second.pool())
        .await
        .unwrap();
    assert_eq!(
        in_second, None,
        "a table of one test database shows in another"
    );
    let vector: String = sqlx::query_scalar("SELECT '[4,5,6]'::vector::text")
        .fetch_one(second.pool())
        .await
        .unwrap();
    assert_eq!(vector, "[4,5,6]");

    let first_name = first.name().to_owned();
    drop(first);
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&first_name)
        .fetch_one(second.pool())
        .await
        .unwrap();
    assert_eq!(
        remaining, 0,
        "dropping the test database left `{first_name}` behind"
    );
}

/// Starts the cluster in the home that `concurrent_starts_run_initdb_once`
/// passes, and prints the report. Without that variable it does nothing.
#[tokio::test]
#[ignore = "a child process of concurrent_starts_run_initdb_once"]
async fn start_in_child_process() {
    let Some(home) = std::env::var_os(CHILD_HOME_VAR) else {
        return;
    };
    let report = EmbeddedCluster::new(home).start().await.unwrap();
    println!(
        "{CHILD_REPORT_PREFIX}{}",
        serde_json::to_string(&report).unwrap()
    );
}
