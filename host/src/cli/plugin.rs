//! `sandtable plugin ...`: add, list, show, remove, check, grant and call.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::backend::Backend;
use super::client::Payload;
use super::{Env, present};
use crate::catalog::call::{
    CallReport, argument_columns, find_function, row_arguments, run_batch, signature,
};
use crate::catalog::{FunctionLimits, PluginDetails, PluginRef};
use crate::sandbox::{
    Column, DataType, Description, DirectoryGrant, EngineConfig, Function, HostPattern,
    LoadedPlugin, UdfEngine, check_name,
};

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Validate a component, store it in the catalog, and print its version.
    Add {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// The catalog name; by default the name the plugin describes itself with.
        #[arg(long)]
        name: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every stored version of every plugin.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one version: functions, effective limits, capabilities and grants.
    Show {
        /// `NAME`, `NAME@VERSION` or `NAME@SHA256-PREFIX`; the latest version by default.
        reference: String,
        /// Print the details as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove one version, or every version with `--all-versions`.
    Remove {
        /// `NAME@VERSION`, `NAME@SHA256-PREFIX`, or `NAME` with `--all-versions`.
        reference: String,
        /// Remove every version of the name.
        #[arg(long)]
        all_versions: bool,
    },
    /// Validate a component without storing it, and print its functions and limits.
    Check {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grant a plugin (all its versions) a host directory, mounted
    /// read-only, or outbound HTTP to hosts.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["dir", "host"]))]
    Grant {
        /// The plugin's catalog name.
        name: String,
        /// `GUEST=HOST`: the guest path the plugin reads, such as `/model`, and the host directory.
        #[arg(long, value_name = "GUEST=HOST")]
        dir: Option<String>,
        /// `HOST:PORT` the plugin may send requests to, such as
        /// `api.openai.com:443`; the host may start with `*.` and the port
        /// may be `*`. Names are not resolved: `localhost` and `127.0.0.1`
        /// are distinct.
        #[arg(long, value_name = "HOST:PORT")]
        host: Option<String>,
    },
    /// Revoke a directory or host grant.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["dir", "host"]))]
    Revoke {
        /// The plugin's catalog name.
        name: String,
        /// The guest path of the grant, such as `/model`.
        #[arg(long, value_name = "GUEST")]
        dir: Option<String>,
        /// The host pattern of the grant, as it was granted.
        #[arg(long, value_name = "HOST:PORT")]
        host: Option<String>,
    },
    /// Run one batch through a function under the usual limits, and print the
    /// results, per-row errors and timing records.
    Call {
        /// `NAME[@VERSION].FUNCTION`, such as `text.upper`.
        target: String,
        /// One argument of a one-row call, in parameter order. A string
        /// parameter takes the text as it is; other types take JSON (`42`,
        /// `true`, `[0.5, 1]`, `null`).
        #[arg(
            long = "arg",
            value_name = "VALUE",
            conflicts_with = "input",
            allow_hyphen_values = true
        )]
        args: Vec<String>,
        /// A JSON Lines file of rows: each line an array of arguments in
        /// parameter order, or an object keyed by parameter name.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(command: PluginCommand, env: &Env) -> anyhow::Result<()> {
    match command {
        PluginCommand::Add { file, name, json } => add(env, &file, name, json).await,
        PluginCommand::List { json } => list(env, json).await,
        PluginCommand::Show { reference, json } => show(env, &reference, json).await,
        PluginCommand::Remove {
            reference,
            all_versions,
        } => remove(env, &reference, all_versions).await,
        PluginCommand::Check { file, json } => check(env, &file, json).await,
        PluginCommand::Grant { name, dir, host } => match (dir, host) {
            (Some(dir), _) => grant(env, &name, &dir).await,
            (None, Some(host)) => grant_host(env, &name, &host).await,
            (None, None) => unreachable!("clap requires --dir or --host"),
        },
        PluginCommand::Revoke { name, dir, host } => match (dir, host) {
            (Some(dir), _) => revoke(env, &name, &dir).await,
            (None, Some(host)) => revoke_host(env, &name, &host).await,
            (None, None) => unreachable!("clap requires --dir or --host"),
        },
        PluginCommand::Call {
            target,
            args,
            input,
            json,
        } => call(env, &target, &args, input.as_deref(), json).await,
    }
}

/// Reads a component file, rejecting one over the size cap of `config`
/// before reading it.
pub(super) fn read_component(config: &EngineConfig, file: &Path) -> anyhow::Result<Vec<u8>> {
    read_bounded(file, config.max_component_bytes as u64, "component size")
}

/// The largest `--input` file `plugin call` reads: 256 MiB.
const MAX_INPUT_BYTES: u64 = 256 << 20;

/// Reads a regular file of at most `max` bytes. The limit is checked while
/// reading too, since a file can grow after its size was read.
fn read_bounded(file: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;

    let cannot_read = || format!("cannot read `{}`", file.display());
    let not_regular = || {
        anyhow::anyhow!(
            "`{}` is not a regular file; give the path of a file",
            file.display()
        )
    };
    // Checked before opening too, since opening a FIFO blocks until a
    // writer appears.
    if !std::fs::metadata(file).with_context(cannot_read)?.is_file() {
        return Err(not_regular());
    }
    let opened = std::fs::File::open(file).with_context(cannot_read)?;
    let metadata = opened.metadata().with_context(cannot_read)?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    let too_large = |bytes: u64| {
        anyhow::anyhow!(
            "`{}` is {bytes} bytes, over the maximum {what} of {max} bytes",
            file.display()
        )
    };
    if metadata.len() > max {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    opened
        .take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(cannot_read)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

pub(super) async fn load_file(
    engine: &UdfEngine,
    file: &Path,
) -> anyhow::Result<(Vec<u8>, LoadedPlugin)> {
    let bytes = read_component(engine.config(), file)?;
    let engine = engine.clone();
    let (bytes, loaded) = tokio::task::spawn_blocking(move || {
        let loaded = engine.load(&bytes);
        (bytes, loaded)
    })
    .await?;
    let plugin = loaded.with_context(|| format!("cannot load `{}`", file.display()))?;
    Ok((bytes, plugin))
}

async fn add(env: &Env, file: &Path, name: Option<String>, json: bool) -> anyhow::Result<()> {
    if let Some(name) = &name {
        check_name("plugin name", name).map_err(anyhow::Error::msg)?;
    }
    let added = env.backend().add_plugin(file, name.as_deref()).await?;
    let entry = &added.entry;
    let described = &entry.description.name;
    if described != &entry.name && !json {
        // Under another plugin's name, the new version becomes what
        // `NAME.FUNCTION` without a version calls.
        eprintln!(
            "note: the component describes itself as `{described}`, and is stored as a version \
             of `{name}`; expressions that name `{name}` without a version now call it",
            name = entry.name
        );
    }
    if json {
        let value = json!({ "entry": present::entry(entry), "created": added.created });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if added.created {
        println!(
            "added {} ({} {}, sha256 {}, {} functions)",
            entry.reference(),
            described,
            entry.plugin_version,
            &entry.sha256[..12],
            entry.description.functions.len()
        );
    } else {
        println!(
            "{} already holds this component (sha256 {}); nothing added",
            entry.reference(),
            &entry.sha256[..12]
        );
    }
    Ok(())
}

async fn list(env: &Env, json: bool) -> anyhow::Result<()> {
    let entries = env.backend().list_plugins().await?;
    if json {
        let entries: Vec<Value> = entries.iter().map(present::entry).collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no plugins; add one with `sandtable plugin add FILE`");
        return Ok(());
    }
    let mut table = super::table([
        "NAME",
        "VERSION",
        "PLUGIN VERSION",
        "SHA256",
        "SIZE",
        "FUNCTIONS",
        "ADDED",
    ]);
    for entry in &entries {
        table.add_row([
            entry.name.clone(),
            entry.version.to_string(),
            entry.plugin_version.clone(),
            entry.sha256[..12].to_owned(),
            entry.size_bytes.to_string(),
            entry.description.functions.len().to_string(),
            entry.added_at.clone(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn show(env: &Env, reference: &str, json: bool) -> anyhow::Result<()> {
    let reference: PluginRef = reference.parse()?;
    let details = env.backend().plugin_details(&reference).await?;
    let PluginDetails {
        entry,
        effective_limits,
        directories,
        hosts,
        pools,
    } = &details;
    if json {
        let value = json!({
            "entry": present::entry(entry),
            "effective_limits": effective_limits,
            "directories": directories,
            "hosts": hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "pools": pools,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{}", entry.reference());
    println!(
        "  plugin:   {} {}",
        entry.description.name, entry.plugin_version
    );
    println!("  sha256:   {}", entry.sha256);
    println!("  size:     {} bytes", entry.size_bytes);
    println!("  added:    {}", entry.added_at);
    print_description(&entry.description, effective_limits);
    print_grants(&entry.name, &entry.description, directories);
    print_hosts(&entry.name, &entry.description, hosts);
    for (function, pool) in pools {
        println!("  pool of {function}: {pool}");
    }
    Ok(())
}

fn print_hosts(name: &str, description: &Description, hosts: &[HostPattern]) {
    let declared = &description.capabilities.outbound_hosts;
    if declared.is_empty() && hosts.is_empty() {
        return;
    }
    if hosts.is_empty() {
        println!(
            "  outbound hosts: none granted; grant one with `sandtable plugin grant {name} --host HOST:PORT`"
        );
        return;
    }
    let hosts: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    println!("  outbound hosts granted: {}", hosts.join(", "));
}

/// Prints the functions of `description` with the limits they run under,
/// by function name.
fn print_description(description: &Description, limits: &BTreeMap<String, FunctionLimits>) {
    let mut table = super::table([
        "FUNCTION", "BATCH", "NULLS", "POOL", "FUEL/ROW", "MEMORY", "DEADLINE", "OUTPUT",
    ]);
    for function in &description.functions {
        let limits = limits
            .get(&function.name)
            .copied()
            .unwrap_or(FunctionLimits {
                fuel_per_row: 0,
                memory_bytes: 0,
                deadline_ms: 0,
                output_bytes: 0,
            });
        table.add_row([
            signature(function),
            function.batch_size.to_string(),
            if function.takes_nulls {
                "takes"
            } else {
                "strict"
            }
            .to_owned(),
            function.pool.clone().unwrap_or_else(|| "-".into()),
            limits.fuel_per_row.to_string(),
            format!("{} MiB", limits.memory_bytes >> 20),
            format!("{} ms", limits.deadline_ms),
            format!("{} MiB", limits.output_bytes >> 20),
        ]);
    }
    println!("{table}");
    let capabilities = &description.capabilities;
    if capabilities.warm_instance {
        println!("  keeps a warm instance between calls");
    }
    if !capabilities.outbound_hosts.is_empty() {
        println!(
            "  requests outbound hosts: {}",
            capabilities.outbound_hosts.join(", ")
        );
    }
}

fn print_grants(name: &str, description: &Description, directories: &[DirectoryGrant]) {
    let declared = &description.capabilities.directories;
    for path in declared {
        match directories.iter().find(|grant| &grant.guest_path == path) {
            Some(grant) => println!("  directory {path}: granted {}", grant.host_path.display()),
            None => println!(
                "  directory {path}: not granted; grant it with `sandtable plugin grant {name} --dir {path}=HOST_DIR`"
            ),
        }
    }
    for grant in directories
        .iter()
        .filter(|grant| !declared.contains(&grant.guest_path))
    {
        println!(
            "  directory {}: granted {}, but this version does not ask for it, so it is not mounted",
            grant.guest_path,
            grant.host_path.display()
        );
    }
}

async fn remove(env: &Env, reference: &str, all_versions: bool) -> anyhow::Result<()> {
    let reference: PluginRef = reference.parse()?;
    if reference.selector.is_none() && !all_versions {
        bail!(
            "`{reference}` names no version: give one (`{reference}@1`) or pass `--all-versions` \
             to remove every version"
        );
    }
    let removed = env
        .backend()
        .remove_plugin(&reference, all_versions)
        .await?;
    for entry in removed {
        println!("removed {}", entry.reference());
    }
    Ok(())
}

async fn check(env: &Env, file: &Path, json: bool) -> anyhow::Result<()> {
    let engine = env.engine()?;
    let (_, plugin) = load_file(&engine, file).await?;
    let description = plugin.description();
    let quotas = env.settings.tenant_quotas(&env.tenant).calls;
    let limits = FunctionLimits::of_functions(description, &engine.config().policy, &quotas);
    if json {
        let value = json!({
            "sha256": plugin.sha256(),
            "size_bytes": plugin.size_bytes(),
            "description": present::description(description),
            "effective_limits": limits,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{}: valid plugin {} {} (sha256 {}, {} bytes)",
        file.display(),
        description.name,
        description.version,
        &plugin.sha256()[..12],
        plugin.size_bytes()
    );
    print_description(description, &limits);
    Ok(())
}

async fn grant(env: &Env, name: &str, dir: &str) -> anyhow::Result<()> {
    check_name("plugin name", name).map_err(anyhow::Error::msg)?;
    let Some((guest, host)) = dir.split_once('=') else {
        bail!("`--dir {dir}` must be `GUEST=HOST`, such as `/model=/srv/models/minilm`");
    };
    if !guest.starts_with('/') || guest.split('/').any(|part| part == "..") {
        bail!("guest path `{guest}` must be absolute and without `..`, such as `/model`");
    }
    let host_path = std::fs::canonicalize(host)
        .with_context(|| format!("host directory `{host}` cannot be opened"))?;
    if !host_path.is_dir() {
        bail!("`{}` is not a directory", host_path.display());
    }
    let (catalog, tenant) = env.operator_catalog().await?;
    let grant = DirectoryGrant {
        guest_path: guest.to_owned(),
        host_path,
    };
    catalog.grant_directory(&tenant, name, &grant).await?;
    println!(
        "granted `{name}` {} read-only at {guest}",
        grant.host_path.display()
    );
    Ok(())
}

async fn grant_host(env: &Env, name: &str, host: &str) -> anyhow::Result<()> {
    check_name("plugin name", name).map_err(anyhow::Error::msg)?;
    let pattern: HostPattern = host
        .parse()
        .map_err(|error: String| anyhow::anyhow!("`--host {host}`: {error}"))?;
    let (catalog, tenant) = env.operator_catalog().await?;
    catalog.grant_host(&tenant, name, &pattern).await?;
    println!("granted `{name}` outbound HTTP to {pattern}");
    Ok(())
}

async fn revoke_host(env: &Env, name: &str, host: &str) -> anyhow::Result<()> {
    let pattern: HostPattern = host
        .parse()
        .map_err(|error: String| anyhow::anyhow!("`--host {host}`: {error}"))?;
    let (catalog, tenant) = env.catalog().await?;
    if !catalog.revoke_host(&tenant, name, &pattern).await? {
        let granted = catalog.hosts(&tenant, name).await?;
        let granted: Vec<String> = granted.iter().map(ToString::to_string).collect();
        bail!(
            "plugin `{name}` has no host grant `{pattern}`; its host grants are {}",
            if granted.is_empty() {
                "none".to_owned()
            } else {
                granted.join(", ")
            }
        );
    }
    println!("revoked `{name}` outbound HTTP to {pattern}");
    Ok(())
}

async fn revoke(env: &Env, name: &str, guest: &str) -> anyhow::Result<()> {
    let (catalog, tenant) = env.catalog().await?;
    if !catalog.revoke_directory(&tenant, name, guest).await? {
        bail!("plugin `{name}` has no directory granted at `{guest}`");
    }
    println!("revoked `{name}` directory {guest}");
    Ok(())
}

async fn call(
    env: &Env,
    target: &str,
    args: &[String],
    input: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let Some((reference, function_name)) = target.rsplit_once('.') else {
        bail!("`{target}` must be `PLUGIN.FUNCTION`, such as `text.upper`");
    };
    let reference: PluginRef = reference.parse()?;
    let report = match env.backend() {
        Backend::Local(env) => {
            let engine = env.engine()?;
            let (catalog, tenant) = env.catalog().await?;
            let (entry, plugin, context) =
                catalog.load_plugin(&engine, &tenant, &reference).await?;
            let function = find_function(&entry, function_name)
                .map_err(anyhow::Error::msg)?
                .clone();
            let rows = call_rows(&function, args, input)?;
            let columns = argument_columns(&function, &rows).map_err(anyhow::Error::msg)?;
            let output = run_batch(
                &engine,
                &plugin,
                &context,
                &function.name,
                columns,
                rows.len(),
            )
            .await?;
            catalog.flush_stats(&engine).await?;
            CallReport::new(&entry, &function.name, &output)
        }
        Backend::Remote(client) => {
            // The version is resolved once, so that the rows are checked
            // against the same parameters that the call runs with.
            let details = Backend::Remote(client).plugin_details(&reference).await?;
            let function =
                find_function(&details.entry, function_name).map_err(anyhow::Error::msg)?;
            let rows = call_rows(function, args, input)?;
            let body = json!({"function": function.name, "rows": rows});
            let version = details.entry.reference();
            let path = ["v1", "plugins", version.as_str(), "call"];
            client
                .send(reqwest::Method::POST, &path, &[], Payload::Json(body))
                .await?
        }
    };
    print_call(&report, json)
}

/// Returns the rows of a call: one row of `--arg` values, or the rows of
/// the `--input` file.
fn call_rows(
    function: &Function,
    args: &[String],
    input: Option<&Path>,
) -> anyhow::Result<Vec<Vec<Value>>> {
    match input {
        Some(file) => read_input_rows(file, function),
        None => Ok(vec![parse_arg_row(function, args)?]),
    }
}

fn parse_arg_row(function: &Function, args: &[String]) -> anyhow::Result<Vec<Value>> {
    let expected = function.params.len();
    if args.len() != expected {
        let hint = if args.is_empty() {
            "; pass them with `--arg VALUE` in parameter order, or rows with `--input FILE`"
        } else {
            ""
        };
        bail!(
            "`{}` takes {expected} {}, but {} `--arg` {} given{hint}",
            signature(function),
            plural(expected, "argument", "arguments"),
            args.len(),
            plural(args.len(), "was", "were"),
        );
    }
    function
        .params
        .iter()
        .zip(args)
        .map(|(param, text)| {
            let not_of_type = || {
                anyhow::anyhow!(
                    "`--arg {text}` for `{}: {}` is not of type {}; write it like `{}`",
                    param.name,
                    param.type_,
                    param.type_,
                    example_of(&param.type_)
                )
            };
            let value = match param.type_ {
                DataType::String => Value::String(text.clone()),
                _ => serde_json::from_str(text).map_err(|_| not_of_type())?,
            };
            match Column::from_json(&param.type_, std::slice::from_ref(&value)) {
                Ok(_) => Ok(value),
                Err(_) => Err(not_of_type()),
            }
        })
        .collect()
}

/// Returns a value of `data_type` as `--arg` takes it, for error messages.
fn example_of(data_type: &DataType) -> String {
    match data_type {
        DataType::Bool => "true".into(),
        DataType::Int => "7".into(),
        DataType::Float => "0.5".into(),
        DataType::String => "some text".into(),
        DataType::Bytes => "\"00ff\"".into(),
        DataType::Json => "{\"key\": 1}".into(),
        DataType::Timestamp => "1700000000000000".into(),
        DataType::Vector(dimension) => {
            let elements: Vec<&str> = (0..(*dimension).min(3)).map(|_| "0.5").collect();
            let more = if *dimension > 3 { ", ..." } else { "" };
            format!("[{}{more}] (with {dimension} numbers)", elements.join(", "))
        }
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

fn read_input_rows(file: &Path, function: &Function) -> anyhow::Result<Vec<Vec<Value>>> {
    let bytes = read_bounded(file, MAX_INPUT_BYTES, "input size")?;
    let mut rows = Vec::new();
    for (index, line) in bytes.lines().enumerate() {
        let line_number = index + 1;
        let line = line.with_context(|| format!("`{}` is not UTF-8 text", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|error| {
            // serde_json ends its message with the position in the one line.
            let text = error.to_string();
            let reason = text.split(" at line ").next().unwrap_or(&text);
            anyhow::anyhow!(
                "`{}` line {line_number}, column {}, is not JSON: {reason}",
                file.display(),
                error.column()
            )
        })?;
        let row = row_arguments(function, value).map_err(|message| {
            anyhow::anyhow!("`{}` line {line_number} {message}", file.display())
        })?;
        rows.push(row);
    }
    if rows.is_empty() {
        bail!(
            "`{}` contains no rows; write one JSON array or object a line",
            file.display()
        );
    }
    Ok(rows)
}

/// The maximum number of characters printed in a table cell. `--json` prints
/// every value whole.
const MAX_CELL_CHARS: usize = 200;

/// Escapes characters that could rewrite the terminal and shortens the text
/// for a table cell.
fn display_cell(text: &str) -> String {
    crate::sandbox::escape_for_display(text, MAX_CELL_CHARS)
}

fn print_call(report: &CallReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let mut table = super::table(["ROW", "VALUE", "ERROR"]);
    for row in &report.rows {
        let error = match (&row.error_type, &row.error) {
            (Some(class), Some(message)) => format!("{class}: {message}"),
            _ => String::new(),
        };
        table.add_row([
            row.row.to_string(),
            display_cell(&row.value.to_string()),
            display_cell(&error),
        ]);
    }
    println!("{table}");
    // Only a strict function leaves rows out of its first call: those with
    // a null argument, which it computes as null without the guest.
    let sent = report
        .records
        .first()
        .map_or(0, |record| record.rows as usize);
    let skipped = report.rows.len().saturating_sub(sent);
    if skipped > 0 {
        println!(
            "{skipped} of {} rows had a null argument and were not sent to the guest, since `{}` is strict",
            report.rows.len(),
            report.function
        );
    }
    for record in &report.records {
        println!(
            "call {}: {} rows, {} bytes in, {} bytes out, instantiate {} us, guest {} us, fuel {}, \
             memory peak {} bytes, cache hit {}, outcome {}",
            record.attempt,
            record.rows,
            record.bytes_in,
            record.bytes_out,
            record.instantiate_us,
            record.guest_us,
            record.fuel_used,
            record.memory_peak_bytes,
            record.cache_hit,
            record.outcome
        );
    }
    if report.records.is_empty() {
        println!("no guest call was made: every row had a null argument of a strict function");
    }
    Ok(())
}
