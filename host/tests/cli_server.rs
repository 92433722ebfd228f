//! The `sandtable` binary as a client of `sandtable serve`. A server runs
//! as a child process on a loopback port over an embedded cluster of its
//! own. The same commands run with `--server` and on the host, as the
//! tenant of the key, must print the same output.
//!
//! The plugins come from `plugins/target/wasm32-wasip2/release`, which the
//! `sandtable-tests` build script fills before any test of the workspace
//! runs (`scripts/test` also builds them first).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A data directory with a tenant `acme`, and `sandtable serve` over it.
struct Served {
    home: tempfile::TempDir,
    server: Child,
    url: String,
    key: String,
}

impl Served {
    fn start() -> Self {
        // A short path, since the cluster's socket path must stay under 107 bytes.
        let home = tempfile::Builder::new()
            .prefix("st-srv-")
            .tempdir_in("/tmp")
            .unwrap();
        let created = host_command(home.path())
            .args(["tenant", "create", "acme"])
            .output()
            .expect("the binary runs");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let created = String::from_utf8(created.stdout).unwrap();
        let key = created
            .split("API key, shown only now: ")
            .nth(1)
            .expect("tenant create prints the key")
            .trim()
            .to_owned();

        let mut server = host_command(home.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut first = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the server printed `{first}`"))
            .to_owned();
        Served {
            home,
            server,
            url,
            key,
        }
    }

    /// Runs a command against the server with the tenant's key.
    fn remote(&self, args: &[&str]) -> Output {
        self.remote_with_key(args, Some(&self.key))
    }

    fn remote_with_key(&self, args: &[&str], key: Option<&str>) -> Output {
        let mut command = client_command();
        command.args(["--server", &self.url]).args(args);
        if let Some(key) = key {
            command.env("SANDTABLE_API_KEY", key);
        }
        command.output().expect("the binary runs")
    }

    /// Runs a command on the host as tenant `acme`, without the server.
    fn local(&self, args: &[&str]) -> Output {
        host_command(self.home.path())
            .args(["--tenant", "acme"])
            .args(args)
            .output()
            .expect("the binary runs")
    }

    /// Runs a command through the server that must succeed; returns its
    /// standard output.
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.remote(args))
    }

    /// Runs a command through the server and on the host, and checks that
    /// both print the same; returns the output.
    fn same(&self, args: &[&str]) -> String {
        let remote = succeeded(args, self.remote(args));
        let local = succeeded(args, self.local(args));
        assert_eq!(
            remote,
            local,
            "`sandtable {}` printed differently through the server",
            args.join(" ")
        );
        remote
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = host_command(self.home.path()).args(["db", "stop"]).output();
    }
}

/// Returns a command that runs on the host, over the data directory `home`.
fn host_command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandtable"));
    command
        .env("SANDTABLE_HOME", home)
        .env_remove("DATABASE_URL")
        .env_remove("SANDTABLE_LOG")
        .env_remove("SANDTABLE_SERVER")
        .env_remove("SANDTABLE_API_KEY")
        .env_remove("SANDTABLE_TENANT");
    command
}

/// Returns a command with no data directory and no database, as on a
/// machine other than the host.
fn client_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandtable"));
    command
        .env("SANDTABLE_HOME", "/nonexistent/sandtable-client")
        .env("DATABASE_URL", "postgres://127.0.0.1:1/unreachable")
        .env_remove("SANDTABLE_LOG")
        .env_remove("SANDTABLE_SERVER")
        .env_remove("SANDTABLE_API_KEY")
        .env_remove("SANDTABLE_TENANT");
    command
}

fn succeeded(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "`sandtable {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Checks that a command failed with exit code 1 and one line on standard
/// error; returns the line.
fn one_line_error(args: &[&str], output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "`sandtable {}`: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn cli_server_round_trip() {
    let served = Served::start();
    let text = plugin("text.wasm");
    let text_v2 = plugin("text_v2.wasm");
    let embed = plugin("hash_embed.wasm");
    let rows = served.home.path().join("films.jsonl");
    let mut file = std::fs::File::create(&rows).unwrap();
    writeln!(file, r#"{{"title": "Alien", "year": 1979}}"#).unwrap();
    writeln!(file, r#"{{"title": "Heat", "year": 1995}}"#).unwrap();
    writeln!(file, r#"{{"title": "Ran", "year": 1985}}"#).unwrap();
    drop(file);

    let added = served.ok(&["plugin", "add", path_str(&text)]);
    assert!(added.starts_with("added text@1 (text 0.1.0"), "{added}");
    let again = served.ok(&["plugin", "add", path_str(&text)]);
    assert!(again.contains("already holds this component"), "{again}");
    served.ok(&["plugin", "add", path_str(&embed), "--name", "hash-embed"]);
    let listed = served.same(&["plugin", "list", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let shown = served.same(&["plugin", "show", "text"]);
    assert!(shown.contains("upper(s: string) -> string"), "{shown}");
    served.same(&["plugin", "show", "text@1", "--json"]);
    let called = served.ok(&["plugin", "call", "text.upper", "--arg", "hi", "--json"]);
    let called: Value = serde_json::from_str(&called).unwrap();
    assert_eq!(called["plugin"], "text@1", "{called}");
    assert_eq!(called["rows"][0]["value"], "HI", "{called}");
    assert_eq!(
        called["records"].as_array().map(Vec::len),
        Some(1),
        "{called}"
    );
    let called = served.ok(&["plugin", "call", "text.upper", "--arg", "hi"]);
    assert!(called.contains("\"HI\""), "{called}");
    assert!(called.contains("call 1: 1 rows"), "{called}");

    let created = served.ok(&[
        "table",
        "create",
        "films",
        "--column",
        "title:string",
        "--column",
        "year:int",
    ]);
    assert_eq!(created.trim(), "created table `films` with 2 columns");
    let inserted = served.ok(&["insert", "films", path_str(&rows)]);
    assert_eq!(inserted.trim(), "inserted 3 rows in `films`; version 1");
    let column = served.ok(&["column", "add", "films", "shout", "text.upper(title)"]);
    assert_eq!(
        column.trim(),
        "added column `shout` string = text@1.upper(title) to `films`: computed 3 rows; version 2"
    );
    let selected = served.same(&["select", "films", "--format", "json", "--order-by", "year"]);
    let selected = json_lines(&selected);
    assert_eq!(selected.len(), 3, "{selected:?}");
    assert_eq!(
        selected[0],
        serde_json::json!({"title": "Alien", "year": 1979, "shout": "ALIEN"})
    );
    served.same(&[
        "select",
        "films",
        "--format",
        "csv",
        "--where",
        "year > 1980",
    ]);
    let table = served.same(&["select", "films", "--columns", "title,shout.errortype"]);
    assert!(table.ends_with("(3 rows)\n"), "{table}");
    served.same(&[
        "select",
        "films",
        "--where",
        "year > 3000",
        "--format",
        "csv",
    ]);
    served.same(&["table", "show", "films"]);
    served.same(&["table", "list", "--json"]);

    let indexed = served.ok(&[
        "index",
        "add",
        "films",
        "title",
        "--embedding",
        "hash-embed.embed8",
        "--metric",
        "l2",
    ]);
    assert!(
        indexed.starts_with("added index `title_embed8` (l2) on `films`"),
        "{indexed}"
    );
    served.same(&["index", "list"]);
    served.same(&["index", "list", "films", "--json"]);
    let found = served.ok(&[
        "search",
        "films",
        "Heat",
        "-k",
        "1",
        "--columns",
        "title",
        "--format",
        "json",
    ]);
    let found = json_lines(&found);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["title"], "Heat", "{found:?}");
    assert_eq!(found[0]["distance"], 0.0, "{found:?}");
    let found = served.ok(&["search", "films", "Heat", "-k", "2"]);
    assert!(
        found.contains("(2 rows from index `title_embed8` of `films` version 3"),
        "{found}"
    );

    let updated = served.ok(&[
        "update",
        "films",
        "--set",
        "title='Aliens'",
        "--where",
        "year = 1979",
    ]);
    assert_eq!(updated.trim(), "updated 1 row in `films`; version 4");
    let snapshot = served.ok(&["snapshot", "create", "before_delete", "--table", "films"]);
    assert_eq!(
        snapshot.trim(),
        "snapshot `before_delete` pins version 4 of table `films`"
    );
    let deleted = served.ok(&["delete", "films", "--where", "year < 1990"]);
    assert_eq!(deleted.trim(), "deleted 2 rows in `films`; version 5");
    let kept = served.same(&["select", "before_delete", "--format", "json"]);
    assert_eq!(json_lines(&kept).len(), 3, "{kept}");
    served.same(&["snapshot", "list"]);
    let recomputed = served.ok(&["recompute", "films", "shout"]);
    assert_eq!(recomputed.trim(), "recomputed 1 row in `films`; version 6");

    served.ok(&["plugin", "add", path_str(&text_v2), "--name", "text"]);
    let upgraded = served.ok(&["column", "upgrade", "films", "shout"]);
    assert_eq!(
        upgraded.trim(),
        "upgraded column `shout` from text@1.upper(title) to text@2.upper(title): computed 1 \
         row in `films`; version 7"
    );
    let history = served.same(&["table", "history", "films", "--json"]);
    let history: Value = serde_json::from_str(&history).unwrap();
    let operations: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "create",
            "insert",
            "add_column",
            "add_index",
            "update",
            "delete",
            "recompute",
            "upgrade"
        ]
    );
    served.same(&["table", "history", "films"]);
    let reverted = served.ok(&["table", "revert", "films"]);
    assert_eq!(
        reverted.trim(),
        "reverted version 7 (upgrade) of table `films`; it is at version 6 again"
    );
    let dropped = served.ok(&["index", "drop", "films", "title_embed8"]);
    assert_eq!(
        dropped.trim(),
        "dropped index `title_embed8` and its column from `films`; version 7"
    );
    served.ok(&["snapshot", "drop", "before_delete"]);
    let removed = served.ok(&["plugin", "remove", "text@2"]);
    assert_eq!(removed.trim(), "removed text@2");
    let dropped = served.ok(&["table", "drop", "films"]);
    assert_eq!(dropped.trim(), "dropped table `films`");
    assert_eq!(served.same(&["table", "list", "--json"]).trim(), "[]");
}

#[test]
fn cli_server_inserts_from_stdin_and_csv() {
    let served = Served::start();
    served.ok(&[
        "table", "create", "nums", "--column", "n:int", "--column", "s:string",
    ]);
    let csv = served.home.path().join("nums.csv");
    std::fs::write(&csv, "n,s\n1,one\n2,two\n").unwrap();
    let inserted = served.ok(&["insert", "nums", path_str(&csv)]);
    assert_eq!(inserted.trim(), "inserted 2 rows in `nums`; version 1");

    // 20,000 rows from standard input, in no file the server could read.
    let mut child = client_command()
        .args(["--server", &served.url, "insert", "nums", "-", "--json"])
        .env("SANDTABLE_API_KEY", &served.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for n in 0..20_000 {
            writeln!(stdin, r#"{{"n": {n}, "s": "row {n}"}}"#).unwrap();
        }
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let summary: Value = serde_json::from_str(&succeeded(&["insert", "-"], output)).unwrap();
    assert_eq!(summary["rows_added"], 20_000, "{summary}");
    assert_eq!(summary["version"], 2, "{summary}");

    // A select without --limit gets the server's first 1,000 rows and a
    // note that tells how to get the rest.
    let args = ["select", "nums", "--format", "csv"];
    let output = served.remote(&args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let csv = succeeded(&args, output);
    assert_eq!(csv.lines().count(), 1001, "a header and 1,000 rows");
    assert!(stderr.contains("pass --limit N for more"), "{stderr}");
    let all = served.ok(&["select", "nums", "--format", "csv", "--limit", "30000"]);
    assert_eq!(all.lines().count(), 20_003, "a header and every row");
}

#[test]
fn cli_server_errors_name_the_fix() {
    let served = Served::start();

    let args = ["table", "list"];
    let error = one_line_error(&args, served.remote_with_key(&args, None));
    assert!(
        error.contains("SANDTABLE_API_KEY is not set") && error.contains("sandtable tenant create"),
        "{error}"
    );
    let error = one_line_error(&args, served.remote_with_key(&args, Some("st_wrong")));
    assert!(
        error.contains(&format!(
            "the server at {}/ does not accept the API key",
            served.url
        )),
        "{error}"
    );

    let args = ["select", "nothere"];
    let error = one_line_error(&args, served.remote(&args));
    assert!(
        error.contains("no table or snapshot named `nothere`"),
        "{error}"
    );
    let args = ["plugin", "show", "nothere"];
    let error = one_line_error(&args, served.remote(&args));
    assert!(error.contains("nothere"), "{error}");

    let args = ["--server", "http://127.0.0.1:1", "table", "list"];
    let output = client_command()
        .args(args)
        .env("SANDTABLE_API_KEY", &served.key)
        .output()
        .unwrap();
    let error = one_line_error(&args, output);
    assert!(
        error.contains("cannot connect to the server at http://127.0.0.1:1/")
            && error.contains("sandtable serve"),
        "{error}"
    );
    let args = ["--server", "not a url", "table", "list"];
    let output = client_command()
        .args(args)
        .env("SANDTABLE_API_KEY", &served.key)
        .output()
        .unwrap();
    let error = one_line_error(&args, output);
    assert!(
        error.contains("--server `not a url` is not a valid URL"),
        "{error}"
    );

    for args in [
        &["db", "status"][..],
        &["tenant", "list"],
        &["serve"],
        &["demo"],
        &["pool", "list"],
        &["stats"],
        &["plugin", "grant", "text", "--host", "127.0.0.1:9"],
    ] {
        let error = one_line_error(args, served.remote(args));
        let name = if args[0] == "plugin" {
            "plugin grant".to_owned()
        } else {
            args[0].to_owned()
        };
        assert!(
            error.contains(&format!("`sandtable {name}` has no route in the HTTP API"))
                && error.contains("run it on the host"),
            "{error}"
        );
    }

    let args = ["--tenant", "globex", "table", "list"];
    let error = one_line_error(&args, served.remote(&args));
    assert!(error.contains("the API key"), "{error}");
    served.ok(&["table", "create", "t", "--column", "n:int"]);
    let args = ["recompute", "t", "n", "--workers", "2"];
    let error = one_line_error(&args, served.remote(&args));
    assert!(error.contains("leave it out with --server"), "{error}");
    let args = ["recompute", "t", "n"];
    let error = one_line_error(&args, served.remote(&args));
    assert!(error.contains("not computed"), "{error}");
}
