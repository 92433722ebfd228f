//! The `sandtable` binary end to end, on an embedded cluster of its own.
//!
//! The plugins come from `plugins/target/wasm32-wasip2/release`, which the
//! `sandtable-tests` build script fills before any test of the workspace
//! runs (`scripts/test` also builds them first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn plugin(file: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing; build the plugins with `scripts/test` or \
         `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`",
        path.display()
    );
    path
}

struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        // A short path, since the cluster's socket path must stay under 107 bytes.
        let home = tempfile::Builder::new()
            .prefix("st-cli-")
            .tempdir_in("/tmp")
            .unwrap();
        Cli { home }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sandtable"))
            .args(args)
            .env("SANDTABLE_HOME", self.home.path())
            .env_remove("DATABASE_URL")
            .env_remove("SANDTABLE_LOG")
            .output()
            .expect("the binary runs")
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "`sandtable {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must fail with exit code 1; returns its standard
    /// error.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "`sandtable {}`",
            args.join(" ")
        );
        String::from_utf8(output.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("the command prints JSON")
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.run(&["db", "stop"]);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn cli_plugin_lifecycle() {
    let cli = Cli::new();
    let text = plugin("text.wasm");
    let arith = plugin("arith.wasm");

    let checked = cli.ok(&["plugin", "check", path_str(&text)]);
    assert!(checked.contains("valid plugin text"), "{checked}");
    assert!(checked.contains("upper(s: string) -> string"), "{checked}");

    let added = cli.ok(&["plugin", "add", path_str(&text)]);
    assert!(added.starts_with("added text@1"), "{added}");
    let again = cli.ok(&["plugin", "add", path_str(&text)]);
    assert!(again.contains("already holds this component"), "{again}");
    let second = cli.ok(&["plugin", "add", path_str(&arith), "--name", "text"]);
    assert!(second.starts_with("added text@2"), "{second}");

    let listed = cli.json(&["plugin", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let shown = cli.json(&["plugin", "show", "text@1", "--json"]);
    assert_eq!(shown["entry"]["version"], 1);
    assert!(shown["effective_limits"]["upper"]["fuel_per_row"].is_u64());

    let called = cli.json(&["plugin", "call", "text@1.upper", "--arg", "hi", "--json"]);
    assert_eq!(called["rows"][0]["value"], "HI");
    assert_eq!(called["records"].as_array().unwrap().len(), 1);
    let divided = cli.json(&[
        "plugin",
        "call",
        "text@2.div",
        "--arg",
        "-7",
        "--arg",
        "0",
        "--json",
    ]);
    assert_eq!(divided["rows"][0]["value"], Value::Null);
    assert_eq!(divided["rows"][0]["error_type"], "guest_error");

    cli.ok(&["plugin", "add", path_str(&plugin("hostile.wasm"))]);
    let spun = cli.json(&["plugin", "call", "hostile.spin", "--arg", "-1", "--json"]);
    assert_eq!(spun["rows"][0]["error_type"], "fuel_exhausted", "{spun}");

    let stats = cli.json(&["stats", "--json"]);
    let upper = stats["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["function"] == "upper")
        .expect("stats list the call to upper");
    assert_eq!(upper["calls"], 1);
    assert_eq!(upper["error_rate"], 0.0);
    let div = stats["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["function"] == "div")
        .expect("stats list the call to div");
    assert_eq!(
        div["error_rate"], 0.0,
        "a row error that the guest returns is no fault of the call"
    );
    let spin = stats["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["function"] == "spin")
        .expect("stats list the call to spin");
    assert_eq!(spin["error_rate"], 1.0);
    assert!(
        stats["host"]["memory_total_bytes"].as_u64().unwrap() > 0,
        "{}",
        stats["host"]
    );
    let text = cli.ok(&["stats"]);
    assert!(text.contains("ERRORS"), "{text}");
    assert!(text.contains("memory"), "{text}");

    let removed = cli.ok(&["plugin", "remove", "text@1"]);
    assert_eq!(removed.trim(), "removed text@1");
    let listed = cli.json(&["plugin", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[test]
fn cli_errors_name_value_and_fix() {
    let cli = Cli::new();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["plugin".into(), "check".into(), path_str(&readme).into()],
            "not a WebAssembly component",
        ),
        (
            vec!["plugin".into(), "add".into(), "/nonexistent.wasm".into()],
            "cannot read `/nonexistent.wasm`",
        ),
        (
            vec!["plugin".into(), "show".into(), "missing".into()],
            "plugin `missing` not found",
        ),
        (
            vec!["plugin".into(), "show".into(), "bad name".into()],
            "invalid plugin reference `bad name`",
        ),
        (
            vec!["plugin".into(), "remove".into(), "missing".into()],
            "pass `--all-versions`",
        ),
        (
            vec!["plugin".into(), "call".into(), "upper".into()],
            "must be `PLUGIN.FUNCTION`",
        ),
    ];
    for (args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = cli.fails(&args);
        assert!(stderr.contains(expected), "`{}`: {stderr}", args.join(" "));
    }

    cli.ok(&["plugin", "add", path_str(&plugin("arith.wasm"))]);
    let stderr = cli.fails(&["plugin", "call", "arith.nope", "--arg", "1"]);
    assert!(stderr.contains("no function `nope`"), "{stderr}");
    assert!(stderr.contains("add(a: int, b: int) -> int"), "{stderr}");
    let stderr = cli.fails(&["plugin", "call", "arith.add", "--arg", "one", "--arg", "2"]);
    assert!(stderr.contains("`--arg one`"), "{stderr}");
    assert!(stderr.contains("is not of type int"), "{stderr}");
    assert!(stderr.contains("write it like `7`"), "{stderr}");
    let stderr = cli.fails(&["plugin", "call", "arith.add", "--arg", "7.5", "--arg", "2"]);
    assert!(
        stderr.contains("`--arg 7.5` for `a: int` is not of type int"),
        "{stderr}"
    );
    let stderr = cli.fails(&["plugin", "call", "arith.add", "--arg", "1"]);
    assert!(
        stderr.contains("takes 2 arguments, but 1 `--arg` was given"),
        "{stderr}"
    );

    let input = cli.home.path().join("rows.jsonl");
    std::fs::write(&input, "{\"a\": 1, \"bee\": 2}\n").unwrap();
    let input = path_str(&input);
    let stderr = cli.fails(&["plugin", "call", "arith.add", "--input", input]);
    assert!(
        stderr.contains("has key `bee`, which is not a parameter"),
        "{stderr}"
    );
    let stderr = cli.fails(&["plugin", "call", "arith.add", "--input", "/dev/zero"]);
    assert!(stderr.contains("is not a regular file"), "{stderr}");
    // Opening a FIFO would block until a writer appears.
    let fifo = cli.home.path().join("component.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let stderr = cli.fails(&["plugin", "check", path_str(&fifo)]);
    assert!(stderr.contains("is not a regular file"), "{stderr}");
}

#[test]
fn cli_table_lifecycle() {
    let cli = Cli::new();
    cli.ok(&["plugin", "add", path_str(&plugin("text.wasm"))]);
    cli.ok(&[
        "table",
        "create",
        "films",
        "--column",
        "title:string",
        "--column",
        "year:int",
    ]);
    let rows = cli.home.path().join("films.csv");
    std::fs::write(&rows, "title,year\nAlien,1979\nHeat,1995\nRan,1985\n").unwrap();
    let inserted = cli.ok(&["insert", "films", path_str(&rows)]);
    assert!(inserted.contains("inserted 3 rows"), "{inserted}");
    let added = cli.ok(&["column", "add", "films", "shout", "text.upper(title)"]);
    assert!(added.contains("text@1.upper(title)"), "{added}");

    let selected = cli.ok(&[
        "select",
        "films",
        "--where",
        "year > 1980",
        "--order-by",
        "year",
        "--desc",
        "--format",
        "json",
    ]);
    let lines: Vec<Value> = selected
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"title": "Heat", "year": 1995, "shout": "HEAT"}),
            serde_json::json!({"title": "Ran", "year": 1985, "shout": "RAN"}),
        ]
    );
    let csv = cli.ok(&[
        "select",
        "films",
        "--columns",
        "title,shout",
        "--format",
        "csv",
        "--limit",
        "1",
    ]);
    assert_eq!(csv, "title,shout\nAlien,ALIEN\n");

    // A row of the wrong type rejects the whole insert, naming row and column.
    let bad = cli.home.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"title\": \"Up\", \"year\": 2009}\n{\"title\": \"Brazil\", \"year\": \"1985\"}\n",
    )
    .unwrap();
    let stderr = cli.fails(&["insert", "films", path_str(&bad)]);
    assert!(
        stderr.contains("row 2") && stderr.contains("year"),
        "{stderr}"
    );
    let stderr = cli.fails(&["select", "films", "--where", "year >"]);
    assert!(stderr.contains("year >"), "{stderr}");
    let stderr = cli.fails(&["select", "nope"]);
    assert!(
        stderr.contains("no table or snapshot named `nope`"),
        "{stderr}"
    );

    cli.ok(&["snapshot", "create", "before", "--table", "films"]);
    cli.ok(&["delete", "films", "--where", "year < 1980"]);
    let stderr = cli.fails(&["table", "drop", "films"]);
    assert!(stderr.contains("--with-snapshots"), "{stderr}");
    let history = cli.json(&["table", "history", "films", "--json"]);
    let operations: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["create", "insert", "add_column", "delete"]);
    let snapshot = cli.ok(&["select", "before", "--format", "csv", "--columns", "title"]);
    assert_eq!(snapshot, "title\nAlien\nHeat\nRan\n");
    let reverted = cli.ok(&["table", "revert", "films"]);
    assert!(
        reverted.contains("reverted version 3 (delete)"),
        "{reverted}"
    );
    let shown = cli.json(&["table", "show", "films", "--json"]);
    assert_eq!(shown["rows"], 3);
    assert_eq!(
        shown["columns"][2]["computed"]["expression"]["call"]["plugin"],
        "text@1"
    );
    cli.ok(&["table", "drop", "films", "--with-snapshots"]);
    let listed = cli.json(&["snapshot", "list", "--json"]);
    assert_eq!(listed, serde_json::json!([]));
}

#[test]
fn cli_tenants_keep_apart() {
    let cli = Cli::new();
    let created = cli.ok(&["tenant", "create", "acme"]);
    assert!(
        created.contains("API key, shown only now: st_"),
        "{created}"
    );
    cli.ok(&[
        "--tenant",
        "acme",
        "plugin",
        "add",
        path_str(&plugin("text.wasm")),
    ]);
    cli.ok(&[
        "--tenant",
        "acme",
        "table",
        "create",
        "films",
        "--column",
        "title:string",
    ]);
    let listed = cli.json(&["--tenant", "acme", "table", "list", "--json"]);
    assert_eq!(listed[0]["name"], "films", "{listed}");
    // Grants go through the host's role, since the tenant's may not make them.
    cli.ok(&[
        "--tenant",
        "acme",
        "plugin",
        "add",
        path_str(&plugin("http_json.wasm")),
    ]);
    let granted = cli.ok(&[
        "--tenant",
        "acme",
        "plugin",
        "grant",
        "http-json",
        "--host",
        "127.0.0.1:9",
    ]);
    assert!(granted.contains("granted `http-json`"), "{granted}");
    let listed = cli.json(&["table", "list", "--json"]);
    assert_eq!(
        listed,
        serde_json::json!([]),
        "the default tenant sees acme's table"
    );
    let plugins = cli.json(&["plugin", "list", "--json"]);
    assert_eq!(
        plugins,
        serde_json::json!([]),
        "the default tenant sees acme's plugin"
    );

    let tenants = cli.json(&["tenant", "list", "--json"]);
    assert_eq!(tenants[1]["name"], "acme", "{tenants}");
    assert_eq!(tenants[1]["has_key"], true, "{tenants}");
    let error = cli.fails(&["--tenant", "nobody", "table", "list"]);
    assert!(
        error.contains("tenant `nobody` not found") && error.contains("sandtable tenant list"),
        "{error}"
    );
    let error = cli.fails(&["tenant", "create", "Acme"]);
    assert!(error.contains("invalid tenant name `Acme`"), "{error}");

    let rotated = cli.ok(&["tenant", "rotate-key", "acme"]);
    assert!(rotated.contains("st_"), "{rotated}");
    cli.ok(&["tenant", "remove", "acme"]);
    let error = cli.fails(&["--tenant", "acme", "table", "list"]);
    assert!(error.contains("tenant `acme` not found"), "{error}");
}

#[test]
fn cli_concurrent_insert_processes() {
    let cli = Cli::new();
    cli.ok(&["plugin", "add", path_str(&plugin("text.wasm"))]);
    cli.ok(&[
        "table", "create", "t", "--column", "n:int", "--column", "s:string",
    ]);
    cli.ok(&["column", "add", "t", "up", "text.upper(s)"]);
    const INSERTS: usize = 4;
    const ROWS: usize = 20_000;
    let mut files = Vec::new();
    for writer in 0..2 {
        for insert in 0..INSERTS {
            let path = cli.home.path().join(format!("w{writer}-{insert}.jsonl"));
            let mut text = String::new();
            for row in 0..ROWS {
                let n = (writer * INSERTS + insert) * ROWS + row;
                text.push_str(&format!("{{\"n\": {n}, \"s\": \"w{writer}\"}}\n"));
            }
            std::fs::write(&path, text).unwrap();
            files.push((writer, path));
        }
    }
    // Each writer is a thread that runs its inserts one after another as
    // separate processes, so the two writers' processes overlap.
    let home = cli.home.path().to_owned();
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let paths: Vec<PathBuf> = files
                .iter()
                .filter(|(w, _)| *w == writer)
                .map(|(_, p)| p.clone())
                .collect();
            let home = home.clone();
            std::thread::spawn(move || {
                for path in paths {
                    let output = Command::new(env!("CARGO_BIN_EXE_sandtable"))
                        .args(["insert", "t", path.to_str().unwrap()])
                        .env("SANDTABLE_HOME", &home)
                        .env_remove("DATABASE_URL")
                        .output()
                        .unwrap();
                    assert!(
                        output.status.success(),
                        "{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            })
        })
        .collect();
    // A snapshot taken while they run.
    let mut snapshot = None;
    while snapshot.is_none() {
        let history = cli.json(&["table", "history", "t", "--json"]);
        if history.as_array().unwrap().len() >= 3 {
            cli.ok(&["snapshot", "create", "mid", "--table", "t"]);
            snapshot = Some(cli.ok(&["select", "mid", "--format", "csv"]));
        }
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let shown = cli.json(&["table", "show", "t", "--json"]);
    assert_eq!(shown["rows"], 2 * INSERTS * ROWS);
    let history = cli.json(&["table", "history", "t", "--json"]);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2 + 2 * INSERTS);
    for (i, entry) in history.iter().enumerate() {
        assert_eq!(entry["version"], i);
    }
    let wrong = cli.ok(&[
        "select",
        "t",
        "--where",
        "up != 'W0' and up != 'W1'",
        "--format",
        "csv",
    ]);
    assert_eq!(wrong, "n,s,up\n", "every row is computed");
    let snapshot = snapshot.unwrap();
    assert_eq!((snapshot.lines().count() - 1) % ROWS, 0);
    assert_eq!(cli.ok(&["select", "mid", "--format", "csv"]), snapshot);
}

/// A loopback HTTP server that responds to every request with `{"n": 1}` and
/// records when each request arrived.
struct Answerer {
    port: u16,
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl Answerer {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = arrivals.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut length = 0usize;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(value) =
                            line.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        line.clear();
                    }
                    recorded.lock().unwrap().push(std::time::Instant::now());
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let answer = "{\"n\": 1}";
                    let _ = write!(
                        reader.get_mut(),
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                });
            }
        });
        Answerer { port, arrivals }
    }

    /// Returns the arrival times, sorted.
    fn arrivals(&self) -> Vec<std::time::Instant> {
        let mut arrivals = self.arrivals.lock().unwrap().clone();
        arrivals.sort();
        arrivals
    }
}

#[test]
fn cli_two_backfill_processes_share_one_pool() {
    let cli = Cli::new();
    let server = Answerer::start();
    std::fs::write(
        cli.home.path().join("config.toml"),
        "[pools.\"request-rate:http-json\"]\nrequests_per_minute = 600\nburst = 1\n",
    )
    .unwrap();
    cli.ok(&[
        "plugin",
        "add",
        path_str(&plugin("http_json.wasm")),
        "--name",
        "web",
    ]);
    let authority = format!("127.0.0.1:{}", server.port);
    let granted = cli.ok(&["plugin", "grant", "web", "--host", &authority]);
    assert!(granted.contains(&authority), "{granted}");
    let shown = cli.ok(&["plugin", "show", "web"]);
    assert!(
        shown.contains(&format!("outbound hosts granted: {authority}")),
        "{shown}"
    );
    assert!(
        shown.contains("pool of post: request-rate:http-json (600 requests a minute, burst 1"),
        "{shown}"
    );
    const ROWS: usize = 30;
    let url = format!("http://{authority}/answer");
    for table in ["a", "b"] {
        cli.ok(&[
            "table",
            "create",
            table,
            "--column",
            "url:string",
            "--column",
            "body:json",
        ]);
        let rows: String = (0..ROWS)
            .map(|n| format!("{{\"url\": \"{url}\", \"body\": {{\"row\": {n}}}}}\n"))
            .collect();
        let path = cli.home.path().join(format!("{table}.jsonl"));
        std::fs::write(&path, rows).unwrap();
        cli.ok(&["insert", table, path_str(&path)]);
    }
    // Two processes backfill at once; each alone would send 10 a second.
    let home = cli.home.path().to_owned();
    let backfills: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|table| {
            let home = home.clone();
            std::thread::spawn(move || {
                Command::new(env!("CARGO_BIN_EXE_sandtable"))
                    .args(["column", "add", table, "n", "web.post(url, body, 'n')"])
                    .env("SANDTABLE_HOME", &home)
                    .env_remove("DATABASE_URL")
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for backfill in backfills {
        let output = backfill.join().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2 * ROWS);
    let busiest = arrivals
        .iter()
        .map(|start| {
            arrivals
                .iter()
                .filter(|t| {
                    **t >= *start && t.duration_since(*start) < std::time::Duration::from_secs(1)
                })
                .count()
        })
        .max()
        .unwrap();
    // The pool lets at most 10 + burst go in a second. The server stamps a
    // request when it reads it, after the client process's scheduling and
    // connect, so one more may land in a window.
    assert!(busiest <= 12, "{busiest} requests in one second");
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(span >= std::time::Duration::from_millis(5700), "{span:?}");
    let csv = cli.ok(&[
        "select",
        "b",
        "--columns",
        "n",
        "--format",
        "csv",
        "--limit",
        "2",
    ]);
    assert_eq!(csv, "n\n1\n1\n");

    let pools = cli.json(&["pool", "list", "--json"]);
    let pool = pools
        .as_array()
        .unwrap()
        .iter()
        .find(|pool| pool["name"] == "request-rate:http-json")
        .unwrap_or_else(|| panic!("{pools}"));
    assert_eq!(pool["requests"], 2 * ROWS, "{pool}");
    assert_eq!(pool["requests_per_minute"], 600);
    assert!(pool["waits"].as_i64().unwrap() > 0, "{pool}");
    let listed = cli.ok(&["pool", "list"]);
    assert!(listed.contains("request-rate:http-json"), "{listed}");
}

#[test]
fn cli_config_errors_name_key_and_file() {
    let cli = Cli::new();
    let config = cli.home.path().join("sandtable.toml");
    std::fs::write(&config, "[pools.\"request-rate:x\"]\nrpm = 60\n").unwrap();
    let stderr = cli.fails(&["--config", path_str(&config), "pool", "list"]);
    assert!(stderr.contains("unknown key `rpm`"), "{stderr}");
    assert!(stderr.contains(path_str(&config)), "{stderr}");
    assert!(stderr.contains("requests_per_minute"), "{stderr}");
    std::fs::write(&config, "[openai]\ntokens_per_minute = \"lots\"\n").unwrap();
    let stderr = cli.fails(&["--config", path_str(&config), "pool", "list"]);
    assert!(stderr.contains("`tokens_per_minute`"), "{stderr}");
    let missing = cli.home.path().join("missing.toml");
    let stderr = cli.fails(&["--config", path_str(&missing), "pool", "list"]);
    assert!(stderr.contains("missing.toml"), "{stderr}");
    let output = cli.run(&["pool", "list"]);
    assert!(output.status.success());

    cli.ok(&["plugin", "add", path_str(&plugin("text.wasm"))]);
    let stderr = cli.fails(&["plugin", "grant", "text", "--host", "example.com"]);
    assert!(stderr.contains("has no port"), "{stderr}");
    let stderr = cli.fails(&["plugin", "grant", "text", "--host", "127.0.0.1:80"]);
    assert!(stderr.contains("does not ask to reach"), "{stderr}");
}

/// Returns the model directory that `scripts/setup` fills under `target/models`.
fn minilm_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/models/all-minilm-l6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} has no model.safetensors; run scripts/setup, which downloads all-MiniLM-L6-v2",
        dir.display()
    );
    dir
}

#[test]
fn cli_demo_runs_twice_and_its_table_searches() {
    let cli = Cli::new();
    let plugins = plugin("text.wasm").parent().unwrap().to_owned();
    let model = minilm_dir();
    let demo = [
        "demo",
        "--limit",
        "120",
        "--plugins",
        path_str(&plugins),
        "--model",
        path_str(&model),
    ];
    let first = cli.ok(&demo);
    for expected in [
        "added text@1",
        "added minilm@1",
        "inserted 110 rows",
        "added `words` = text@1.word_count(text): 110 rows",
        "added index `text_embed` = minilm@1.embed(text): embedded 110 fortunes",
        "\"love and marriage\" in `fortunes`",
        "`fortunes` has 120 rows; `fortunes_before_more` still has 110",
        "the snapshot's search for \"a computer program full of bugs\" is unchanged",
        "refused: ",
        "minilm@1.embed",
        "text@1.word_count",
        "demo finished",
    ] {
        assert!(
            first.contains(expected),
            "the demo printed no `{expected}`:\n{first}"
        );
    }
    // Three hits for each of the four searches and the snapshot's search.
    let hits = first
        .lines()
        .filter(|line| line.starts_with("  0.") || line.starts_with("  -0."))
        .count();
    assert_eq!(hits, 15, "{first}");

    let second = cli.ok(&demo);
    for expected in [
        "found stored text@1",
        "found stored minilm@1",
        "precompiled",
        "dropped `fortunes` of an earlier run",
        "`fortunes` has 120 rows",
    ] {
        assert!(
            second.contains(expected),
            "the second run printed no `{expected}`:\n{second}"
        );
    }

    let found = cli.ok(&["search", "fortunes", "love", "-k", "2", "--format", "json"]);
    let rows: Vec<Value> = found
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{found}");
    let similarity = rows[0]["similarity"].as_f64().unwrap();
    assert!(similarity > 0.0, "{found}");
    assert!(similarity <= 1.0, "{found}");
    assert!(
        rows[0]["text"].is_string() && rows[0].get("text_embed").is_none(),
        "{found}"
    );
    let listed = cli.ok(&["index", "list", "fortunes"]);
    assert!(
        listed.contains("text_embed") && listed.contains("vector(384)"),
        "{listed}"
    );
    let error = cli.fails(&["search", "fortunes", "--vector", "[1, 2]"]);
    assert!(error.contains("vector(384)"), "{error}");
}
