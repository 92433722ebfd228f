//! The operator's configuration: `config.toml` in the data directory, or the
//! file that `--config` names, with environment variables over it.
//!
//! ```toml
//! [http]
//! timeout_ms = 30000
//! retries = 3
//!
//! [pools."request-rate:my_service"]
//! requests_per_minute = 120
//! burst = 1
//!
//! # A provider section: the pool that plugins declare as `openai`.
//! [openai]
//! requests_per_minute = 500
//! tokens_per_minute = 90000
//!
//! [plugins.text]
//! pool = "request-rate:my_service"
//!
//! # Quotas of every tenant, and of one tenant.
//! [quotas]
//! requests_per_minute = 6000
//! max_memory_bytes = 268435456
//! max_fuel_per_row = 1000000000
//! fuel_per_minute = 1000000000000
//! max_concurrent_calls = 8
//! max_rows = 10000000
//!
//! [quotas.acme]
//! requests_per_minute = 600
//!
//! # How often `sandtable serve` samples the host, and when it raises alerts.
//! [monitor]
//! sample_interval_ms = 5000
//! host_memory_percent = 90
//! ```
//!
//! Every key is checked: an unknown one, or a value out of range, fails the
//! load with an error that names the key and the file.
//!
//! Environment variables override the file. `SANDTABLE_HTTP_<KEY>` sets a key
//! of `[http]`, such as `SANDTABLE_HTTP_RETRIES=5`, and
//! `SANDTABLE_POOL_<POOL>_<KEY>` sets a key of a pool, where `<POOL>` is the
//! pool's name upper-cased with every other character than a letter or digit
//! replaced by `_`: `SANDTABLE_POOL_REQUEST_RATE_MY_SERVICE_BURST=2`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sandbox::{CallQuotas, MIN_MEMORY_BYTES};

mod monitor;

pub use monitor::MonitorSettings;

/// The file name of the configuration in the data directory.
pub const CONFIG_FILE_NAME: &str = "config.toml";

/// The rate of a `request-rate:` pool that no configuration names, as in
/// Pixeltable.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;

/// The burst of a pool that sets none: requests are spaced evenly.
pub const DEFAULT_BURST: u32 = 1;

/// The prefix of a pool that limits requests only.
pub const REQUEST_RATE_PREFIX: &str = "request-rate:";

/// The prefix of environment variables that set a key of a pool.
const POOL_ENV_PREFIX: &str = "SANDTABLE_POOL_";

/// The prefix of environment variables that set a key of `[http]`.
const HTTP_ENV_PREFIX: &str = "SANDTABLE_HTTP_";

/// The providers whose pools have a top-level section of their own, such as
/// `[openai]`. Any other pool is set as `[pools."NAME"]`, so that a
/// misspelt section fails instead of making a pool nothing uses.
pub const PROVIDERS: &[&str] = &[
    "anthropic",
    "cohere",
    "deepseek",
    "fireworks",
    "gemini",
    "groq",
    "mistral",
    "openai",
    "together",
    "voyage",
];

/// The keys of a pool, in the order of error messages.
const POOL_KEYS: &[&str] = &[
    "requests_per_minute",
    "burst",
    "tokens_per_minute",
    "token_burst",
    "deny",
];

/// The API requests a minute that a tenant may send when no quota sets
/// another number.
pub const DEFAULT_TENANT_REQUESTS_PER_MINUTE: u32 = 6000;

/// The largest rate a pool may set, a million requests a second.
const MAX_REQUESTS_PER_MINUTE: u32 = 60_000_000;

/// A configuration that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("`{origin}` is not valid TOML: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// A key that its section does not take.
    #[error("unknown key `{key}` in {section} of `{origin}`; the keys there are {expected}")]
    UnknownKey {
        /// The file, or the environment variable.
        origin: String,
        /// The section, such as `[http]`.
        section: String,
        /// The key.
        key: String,
        /// The keys that the section takes.
        expected: String,
    },
    /// A value of the wrong type or out of range.
    #[error("bad value for `{key}` in {section} of `{origin}`: {reason}")]
    BadValue {
        /// The file, or the environment variable.
        origin: String,
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// The problem, and the value expected.
        reason: String,
    },
    /// A pool or provider name that is not valid.
    #[error("bad pool name `{name}` in `{origin}`: {reason}")]
    BadPoolName {
        /// The file.
        origin: String,
        /// The name.
        name: String,
        /// The problem.
        reason: String,
    },
}

/// Settings for the outbound HTTP requests of guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The maximum time of an attempt, from connecting to the last byte of
    /// the response.
    pub timeout: Duration,
    /// The maximum time of connecting.
    pub connect_timeout: Duration,
    /// The largest response body the host reads; a larger one fails the
    /// request.
    pub max_response_bytes: u64,
    /// The largest request body a guest may send.
    pub max_request_bytes: u64,
    /// How many times the host sends a request again after a 429 or 503.
    pub retries: u32,
    /// The base of the jittered exponential backoff between attempts.
    pub backoff: Duration,
    /// The longest `Retry-After` the host waits out; a longer one fails the
    /// request at once, and pauses the pool for this long.
    pub max_retry_after: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 16 << 20,
            max_request_bytes: 16 << 20,
            retries: 3,
            backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The limits of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// Requests a minute, spaced evenly after the burst.
    pub requests_per_minute: u32,
    /// How many requests may go at once after an idle spell.
    pub burst: u32,
    /// Tokens a minute, counted from the responses; `None` counts without a
    /// limit.
    pub tokens_per_minute: Option<u64>,
    /// How many tokens may be spent at once after an idle spell; by default
    /// a minute's worth.
    pub token_burst: Option<u64>,
    /// Whether the operator refuses the pool: calls to functions that use
    /// it fail.
    pub deny: bool,
    /// The source of the limits, for `pool list` and errors: a file, the
    /// environment, or `default`.
    pub origin: String,
}

/// The limits of a pool that no configuration names.
impl Default for PoolSpec {
    fn default() -> Self {
        PoolSpec {
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            burst: DEFAULT_BURST,
            tokens_per_minute: None,
            token_burst: None,
            deny: false,
            origin: "default".to_owned(),
        }
    }
}

impl PoolSpec {
    /// Returns the token burst in force: [`PoolSpec::token_burst`], or else
    /// a minute's worth.
    pub fn effective_token_burst(&self) -> Option<u64> {
        self.tokens_per_minute
            .map(|rate| self.token_burst.unwrap_or(rate))
    }
}

/// The operator's settings for one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSettings {
    /// The pool that every function of the plugin uses, whatever the
    /// plugin declares.
    pub pool: Option<String>,
}

/// A tenant's quotas. Only `requests_per_minute` has a default; the
/// others are unlimited unless the configuration sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// API requests a minute in `sandtable serve`; over it, requests get
    /// 429.
    pub requests_per_minute: u32,
    /// The quotas on the tenant's plugin calls.
    pub calls: CallQuotas,
    /// The live rows that the tenant's tables may hold together; an insert
    /// that would pass it fails and stores nothing.
    pub max_rows: Option<u64>,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            requests_per_minute: DEFAULT_TENANT_REQUESTS_PER_MINUTE,
            calls: CallQuotas::default(),
            max_rows: None,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Outbound HTTP.
    pub http: HttpSettings,
    /// Pools by name, provider sections included.
    pub pools: BTreeMap<String, PoolSpec>,
    /// Settings by plugin name.
    pub plugins: BTreeMap<String, PluginSettings>,
    /// Every tenant's quotas, unless `tenant_quotas` names the tenant.
    pub quotas: Quotas,
    /// Quotas by tenant name.
    pub tenant_quotas: BTreeMap<String, Quotas>,
    /// The resource monitor of `sandtable serve`.
    pub monitor: MonitorSettings,
    /// Pool keys set by environment variables, by normalized pool name.
    pool_env: BTreeMap<String, Vec<(String, String, String)>>,
    /// The file the configuration came from, if any.
    pub path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    max_response_bytes: Option<u64>,
    max_request_bytes: Option<u64>,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    max_retry_after_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSection {
    requests_per_minute: Option<u32>,
    burst: Option<u32>,
    tokens_per_minute: Option<u64>,
    token_burst: Option<u64>,
    deny: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginSection {
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSection {
    requests_per_minute: Option<u32>,
    max_memory_bytes: Option<u64>,
    max_fuel_per_row: Option<u64>,
    fuel_per_minute: Option<u64>,
    max_concurrent_calls: Option<u32>,
    max_rows: Option<u64>,
}

impl Config {
    /// Loads the configuration: `explicit` when given (it must exist), else
    /// `config.toml` in `home` when present, else the defaults; then applies
    /// the environment.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be read or parsed, or a key or value in it
    /// or in the environment is not valid.
    pub fn load(home: &Path, explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(path) => Some(path.to_owned()),
            None => Some(home.join(CONFIG_FILE_NAME)).filter(|path| path.exists()),
        };
        let mut config = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let mut config = Config::parse(&text, &path.display().to_string())?;
                config.path = Some(path.clone());
                config
            }
            None => Config::default(),
        };
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Parses a configuration from TOML text; `origin` names it in errors.
    ///
    /// # Errors
    ///
    /// Fails on invalid TOML, an unknown key or a bad value.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        let mut config = Config::default();
        for (name, value) in table {
            match name.as_str() {
                "http" => {
                    let section: HttpSection = section(value, origin, "[http]")?;
                    config.http = http_settings(section, origin)?;
                }
                "pools" => {
                    let toml::Value::Table(pools) = value else {
                        return Err(not_a_table(origin, "pools"));
                    };
                    for (pool, value) in pools {
                        check_pool_name(&pool, origin)?;
                        let label = format!("[pools.\"{pool}\"]");
                        let spec = pool_spec(section(value, origin, &label)?, origin, &label)?;
                        if config.pools.contains_key(&pool) {
                            return Err(both_sections(origin, &pool));
                        }
                        config.pools.insert(pool, spec);
                    }
                }
                "quotas" => {
                    let toml::Value::Table(quotas) = value else {
                        return Err(not_a_table(origin, "quotas"));
                    };
                    // Tables are tenants; the other keys are every tenant's.
                    let (tenants, defaults): (toml::Table, toml::Table) = quotas
                        .into_iter()
                        .partition(|(_, value)| matches!(value, toml::Value::Table(_)));
                    let defaults = section(toml::Value::Table(defaults), origin, "[quotas]")?;
                    config.quotas = quotas_from(defaults, Quotas::default(), origin, "[quotas]")?;
                    for (tenant, value) in tenants {
                        let label = format!("[quotas.{tenant}]");
                        let quotas = quotas_from(
                            section(value, origin, &label)?,
                            config.quotas,
                            origin,
                            &label,
                        )?;
                        config.tenant_quotas.insert(tenant, quotas);
                    }
                }
                "monitor" => config.monitor = monitor::monitor_settings(value, origin)?,
                "plugins" => {
                    let toml::Value::Table(plugins) = value else {
                        return Err(not_a_table(origin, "plugins"));
                    };
                    for (plugin, value) in plugins {
                        let label = format!("[plugins.\"{plugin}\"]");
                        let section: PluginSection = section(value, origin, &label)?;
                        if let Some(pool) = &section.pool {
                            check_pool_name(pool, origin)?;
                        }
                        config
                            .plugins
                            .insert(plugin, PluginSettings { pool: section.pool });
                    }
                }
                provider => {
                    if !matches!(value, toml::Value::Table(_)) || !PROVIDERS.contains(&provider) {
                        return Err(ConfigError::UnknownKey {
                            origin: origin.to_owned(),
                            section: "the top level".to_owned(),
                            key: provider.to_owned(),
                            expected: format!(
                                "the sections `[http]`, `[pools.\"NAME\"]`, `[plugins.NAME]`, \
                                 `[quotas]` and `[monitor]`, and the provider sections {}; set any \
                                 other pool as `[pools.\"NAME\"]`",
                                quote_list(PROVIDERS)
                            ),
                        });
                    }
                    check_pool_name(provider, origin)?;
                    let label = format!("[{provider}]");
                    let spec = pool_spec(section(value, origin, &label)?, origin, &label)?;
                    if config.pools.contains_key(provider) {
                        return Err(both_sections(origin, provider));
                    }
                    config.pools.insert(provider.to_owned(), spec);
                }
            }
        }
        for (plugin, settings) in &config.plugins {
            let Some(pool) = &settings.pool else { continue };
            let known = pool.starts_with(REQUEST_RATE_PREFIX)
                || PROVIDERS.contains(&pool.as_str())
                || config.pools.contains_key(pool);
            if !known {
                return Err(ConfigError::BadPoolName {
                    origin: origin.to_owned(),
                    name: pool.clone(),
                    reason: format!(
                        "`[plugins.\"{plugin}\"]` names a pool that is neither \
                         `request-rate:NAME`, a provider ({}), nor set in `[pools.\"NAME\"]`",
                        PROVIDERS.join(", ")
                    ),
                });
            }
        }
        Ok(config)
    }

    /// Returns the quotas of tenant `name`.
    pub fn tenant_quotas(&self, name: &str) -> Quotas {
        self.tenant_quotas.get(name).copied().unwrap_or(self.quotas)
    }

    /// Applies `SANDTABLE_HTTP_*` and `SANDTABLE_POOL_*` variables.
    ///
    /// # Errors
    ///
    /// Fails on a variable whose key is unknown or whose value is bad,
    /// naming the variable.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (var, value) in vars {
            if let Some(key) = var.strip_prefix(HTTP_ENV_PREFIX) {
                let key = key.to_ascii_lowercase();
                let origin = format!("environment variable {var}");
                let mut table = toml::Table::new();
                table.insert(key, env_value(&value));
                let section: HttpSection =
                    self::section(toml::Value::Table(table), &origin, "[http]")?;
                let overrides = http_settings(section, &origin)?;
                self.http = merge_http(&self.http, &overrides, &var.to_ascii_lowercase());
            } else if let Some(rest) = var.strip_prefix(POOL_ENV_PREFIX) {
                let origin = format!("environment variable {var}");
                // The longest key first, so that `_TOKEN_BURST` is not read
                // as `_BURST` of a pool named `..._TOKEN`.
                let mut keys = POOL_KEYS.to_vec();
                keys.sort_by_key(|key| std::cmp::Reverse(key.len()));
                let found = keys.iter().find_map(|key| {
                    let suffix = format!("_{}", key.to_ascii_uppercase());
                    rest.strip_suffix(&suffix)
                        .filter(|pool| !pool.is_empty())
                        .map(|pool| (pool.to_owned(), *key))
                });
                let Some((pool, key)) = found else {
                    return Err(ConfigError::UnknownKey {
                        origin,
                        section: "a pool".to_owned(),
                        key: rest.to_owned(),
                        expected: format!(
                            "{}, as in SANDTABLE_POOL_REQUEST_RATE_MY_SERVICE_REQUESTS_PER_MINUTE",
                            quote_list(POOL_KEYS)
                        ),
                    });
                };
                // The value is checked now, so that a bad one fails the load.
                let mut table = toml::Table::new();
                table.insert(key.to_owned(), env_value(&value));
                let section: PoolSection =
                    self::section(toml::Value::Table(table), &origin, "a pool")?;
                pool_spec(section, &origin, "a pool")?;
                self.pool_env
                    .entry(pool)
                    .or_default()
                    .push((key.to_owned(), value, origin));
            }
        }
        self.check_env_overrides()
    }

    /// Checks each pool's limits with the environment over the file, and
    /// that no two configured pools share one environment name.
    fn check_env_overrides(&self) -> Result<(), ConfigError> {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for name in self.pools.keys() {
            if let Some(other) = seen.insert(env_name(name), name) {
                return Err(ConfigError::BadPoolName {
                    origin: self.origin(),
                    name: name.clone(),
                    reason: format!(
                        "it and `{other}` share the environment name `{}`, so one variable would \
                         set both; rename one",
                        env_name(name)
                    ),
                });
            }
        }
        for (env, overrides) in &self.pool_env {
            let name = seen.get(env).copied().unwrap_or(env.as_str());
            let spec = self.pool(name);
            if spec.burst > spec.requests_per_minute {
                let vars: Vec<&str> = overrides
                    .iter()
                    .map(|(_, _, origin)| origin.as_str())
                    .collect();
                return Err(ConfigError::BadValue {
                    origin: vars.join(", "),
                    section: format!("pool `{name}`"),
                    key: "burst".to_owned(),
                    reason: format!(
                        "{} is more than the {} requests a minute",
                        spec.burst, spec.requests_per_minute
                    ),
                });
            }
        }
        Ok(())
    }

    /// Returns the limits of pool `name`: its section, else the defaults,
    /// with the environment over either.
    pub fn pool(&self, name: &str) -> PoolSpec {
        let mut spec = self.pools.get(name).cloned().unwrap_or_default();
        if let Some(overrides) = self.pool_env.get(&env_name(name)) {
            for (key, value, origin) in overrides {
                let mut table = toml::Table::new();
                table.insert(key.clone(), env_value(value));
                // Checked in `apply_env`.
                if let Ok(section) = section::<PoolSection>(toml::Value::Table(table), origin, "") {
                    apply_pool_section(&mut spec, &section);
                    spec.origin.clone_from(origin);
                }
            }
        }
        spec
    }

    /// Returns the name under which errors report this configuration.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "the defaults".to_owned(),
        }
    }
}

/// Returns the form of a pool name in environment variables.
pub fn env_name(pool: &str) -> String {
    pool.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Checks a pool name: `request-rate:` and a name, or a provider name, of
/// letters, digits, `_`, `-`, `.` and `:`.
///
/// # Errors
///
/// Returns [`ConfigError::BadPoolName`] naming `origin`.
pub fn check_pool_name(name: &str, origin: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::BadPoolName {
        origin: origin.to_owned(),
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = name.strip_prefix(REQUEST_RATE_PREFIX).unwrap_or(name);
    if rest.is_empty() {
        return Err(bad(
            "give a name after `request-rate:`, as in `request-rate:my_service`",
        ));
    }
    if name.len() > 128 {
        return Err(bad("it is longer than 128 characters"));
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if !rest.chars().all(valid) {
        return Err(bad(
            "a pool name takes letters, digits, `_`, `-`, `.` and `:` only",
        ));
    }
    Ok(())
}

fn section<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    origin: &str,
    label: &str,
) -> Result<T, ConfigError> {
    let keys: Vec<String> = match &value {
        toml::Value::Table(table) => table.keys().cloned().collect(),
        _ => {
            return Err(ConfigError::BadValue {
                origin: origin.to_owned(),
                section: "the top level".to_owned(),
                key: label.to_owned(),
                reason: "it must be a section (a table)".to_owned(),
            });
        }
    };
    T::deserialize(value).map_err(|error| {
        let message = error.message().to_owned();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let key = rest.split('`').next().unwrap_or_default().to_owned();
            let expected = rest
                .split_once("expected ")
                .map(|(_, expected)| expected.replace("one of ", ""))
                .unwrap_or_default();
            ConfigError::UnknownKey {
                origin: origin.to_owned(),
                section: label.to_owned(),
                key,
                expected,
            }
        } else {
            // serde names no key in a type error, so the keys are tried one
            // by one to find it.
            let key = keys
                .iter()
                .find(|key| message.contains(key.as_str()))
                .cloned()
                .unwrap_or_else(|| keys.join(", "));
            ConfigError::BadValue {
                origin: origin.to_owned(),
                section: label.to_owned(),
                key,
                reason: message,
            }
        }
    })
}

/// Returns `base` with the keys that `section` sets.
fn quotas_from(
    section: QuotaSection,
    base: Quotas,
    origin: &str,
    label: &str,
) -> Result<Quotas, ConfigError> {
    let bad = |key: &str, reason: &str| ConfigError::BadValue {
        origin: origin.to_owned(),
        section: label.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let mut quotas = base;
    if let Some(requests) = section.requests_per_minute {
        if requests == 0 {
            return Err(bad(
                "requests_per_minute",
                "0 would refuse every request; give at least 1",
            ));
        }
        quotas.requests_per_minute = requests;
    }
    if let Some(bytes) = section.max_memory_bytes {
        if bytes < MIN_MEMORY_BYTES {
            return Err(bad(
                "max_memory_bytes",
                &format!(
                    "a plugin cannot start in less than {MIN_MEMORY_BYTES} bytes (17 wasm \
                     pages); give at least that"
                ),
            ));
        }
        quotas.calls.max_memory_bytes = Some(bytes);
    }
    let positive = [
        ("max_fuel_per_row", section.max_fuel_per_row),
        ("fuel_per_minute", section.fuel_per_minute),
        (
            "max_concurrent_calls",
            section.max_concurrent_calls.map(u64::from),
        ),
    ];
    for (key, value) in positive {
        if value == Some(0) {
            return Err(bad(key, "0 would refuse every call; give at least 1"));
        }
    }
    quotas.calls.max_fuel_per_row = section.max_fuel_per_row.or(quotas.calls.max_fuel_per_row);
    quotas.calls.fuel_per_minute = section.fuel_per_minute.or(quotas.calls.fuel_per_minute);
    quotas.calls.max_concurrent_calls = section
        .max_concurrent_calls
        .or(quotas.calls.max_concurrent_calls);
    quotas.max_rows = section.max_rows.or(quotas.max_rows);
    Ok(quotas)
}

fn both_sections(origin: &str, name: &str) -> ConfigError {
    ConfigError::BadPoolName {
        origin: origin.to_owned(),
        name: name.to_owned(),
        reason: format!("it is set both as `[{name}]` and as `[pools.\"{name}\"]`; keep one"),
    }
}

fn not_a_table(origin: &str, key: &str) -> ConfigError {
    ConfigError::BadValue {
        origin: origin.to_owned(),
        section: "the top level".to_owned(),
        key: key.to_owned(),
        reason: format!("`{key}` must be a section, as in `[{key}.NAME]`"),
    }
}

fn http_settings(section: HttpSection, origin: &str) -> Result<HttpSettings, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError::BadValue {
        origin: origin.to_owned(),
        section: "[http]".to_owned(),
        key: key.to_owned(),
        reason,
    };
    let positive_ms = |key: &str, value: Option<u64>, default: Duration| match value {
        None => Ok(default),
        Some(0) => Err(bad(key, "give at least 1 (milliseconds)".to_owned())),
        Some(ms) if ms > 3_600_000 => Err(bad(
            key,
            format!("{ms} is over an hour; give at most 3600000"),
        )),
        Some(ms) => Ok(Duration::from_millis(ms)),
    };
    let defaults = HttpSettings::default();
    let retries = section.retries.unwrap_or(defaults.retries);
    if retries > 20 {
        return Err(bad("retries", format!("{retries} is more than 20")));
    }
    let bytes = |key: &str, value: Option<u64>, default: u64| match value {
        None => Ok(default),
        Some(0) => Err(bad(key, "give at least 1 byte".to_owned())),
        Some(bytes) => Ok(bytes),
    };
    Ok(HttpSettings {
        timeout: positive_ms("timeout_ms", section.timeout_ms, defaults.timeout)?,
        connect_timeout: positive_ms(
            "connect_timeout_ms",
            section.connect_timeout_ms,
            defaults.connect_timeout,
        )?,
        max_response_bytes: bytes(
            "max_response_bytes",
            section.max_response_bytes,
            defaults.max_response_bytes,
        )?,
        max_request_bytes: bytes(
            "max_request_bytes",
            section.max_request_bytes,
            defaults.max_request_bytes,
        )?,
        retries,
        backoff: positive_ms("backoff_ms", section.backoff_ms, defaults.backoff)?,
        max_retry_after: match section.max_retry_after_s {
            None => defaults.max_retry_after,
            Some(s) if s > 3600 => {
                return Err(bad(
                    "max_retry_after_s",
                    format!("{s} is over an hour; give at most 3600"),
                ));
            }
            Some(s) => Duration::from_secs(s),
        },
    })
}

/// Keeps the settings of `base` except the one key that `var` set.
fn merge_http(base: &HttpSettings, overrides: &HttpSettings, var: &str) -> HttpSettings {
    let mut merged = base.clone();
    let key = var.trim_start_matches("sandtable_http_");
    match key {
        "timeout_ms" => merged.timeout = overrides.timeout,
        "connect_timeout_ms" => merged.connect_timeout = overrides.connect_timeout,
        "max_response_bytes" => merged.max_response_bytes = overrides.max_response_bytes,
        "max_request_bytes" => merged.max_request_bytes = overrides.max_request_bytes,
        "retries" => merged.retries = overrides.retries,
        "backoff_ms" => merged.backoff = overrides.backoff,
        "max_retry_after_s" => merged.max_retry_after = overrides.max_retry_after,
        _ => {}
    }
    merged
}

fn pool_spec(section: PoolSection, origin: &str, label: &str) -> Result<PoolSpec, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError::BadValue {
        origin: origin.to_owned(),
        section: label.to_owned(),
        key: key.to_owned(),
        reason,
    };
    match section.requests_per_minute {
        Some(0) => return Err(bad("requests_per_minute", "give at least 1".to_owned())),
        Some(rate) if rate > MAX_REQUESTS_PER_MINUTE => {
            return Err(bad(
                "requests_per_minute",
                format!("{rate} is more than {MAX_REQUESTS_PER_MINUTE}"),
            ));
        }
        _ => {}
    }
    if section.burst == Some(0) {
        return Err(bad("burst", "give at least 1".to_owned()));
    }
    if let (Some(burst), rate) = (section.burst, section.requests_per_minute) {
        let rate = rate.unwrap_or(DEFAULT_REQUESTS_PER_MINUTE);
        if burst > rate {
            return Err(bad(
                "burst",
                format!("{burst} is more than the {rate} requests a minute"),
            ));
        }
    }
    if section.tokens_per_minute == Some(0) {
        return Err(bad("tokens_per_minute", "give at least 1".to_owned()));
    }
    if section.token_burst == Some(0) {
        return Err(bad("token_burst", "give at least 1".to_owned()));
    }
    let mut spec = PoolSpec {
        origin: origin.to_owned(),
        ..PoolSpec::default()
    };
    apply_pool_section(&mut spec, &section);
    Ok(spec)
}

fn apply_pool_section(spec: &mut PoolSpec, section: &PoolSection) {
    if let Some(rate) = section.requests_per_minute {
        spec.requests_per_minute = rate;
    }
    if let Some(burst) = section.burst {
        spec.burst = burst;
    }
    if let Some(tokens) = section.tokens_per_minute {
        spec.tokens_per_minute = Some(tokens);
    }
    if let Some(burst) = section.token_burst {
        spec.token_burst = Some(burst);
    }
    if let Some(deny) = section.deny {
        spec.deny = deny;
    }
}

/// Reads an environment value as TOML (numbers and booleans), else as a
/// string, so that the section's type check reports it.
fn env_value(value: &str) -> toml::Value {
    if let Ok(number) = value.parse::<i64>() {
        return toml::Value::Integer(number);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for PoolSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests a minute, burst {}",
            self.requests_per_minute, self.burst
        )?;
        if let Some(tokens) = self.tokens_per_minute {
            write!(f, ", {tokens} tokens a minute")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_pools_providers_http_and_plugins() {
        let config = Config::parse(
            r#"
            [http]
            retries = 5
            timeout_ms = 1000

            [pools."request-rate:svc"]
            requests_per_minute = 120
            burst = 2

            [openai]
            requests_per_minute = 500
            tokens_per_minute = 90000

            [plugins.text]
            pool = "request-rate:svc"
            "#,
            "test.toml",
        )
        .unwrap();
        assert_eq!(config.http.retries, 5);
        assert_eq!(config.http.timeout, Duration::from_secs(1));
        let svc = config.pool("request-rate:svc");
        assert_eq!((svc.requests_per_minute, svc.burst), (120, 2));
        let openai = config.pool("openai");
        assert_eq!(openai.tokens_per_minute, Some(90_000));
        assert_eq!(openai.effective_token_burst(), Some(90_000));
        assert_eq!(
            config.plugins["text"].pool.as_deref(),
            Some("request-rate:svc")
        );
    }

    #[test]
    fn unnamed_pool_gets_default_rate() {
        let spec = Config::default().pool("request-rate:anything");
        assert_eq!((spec.requests_per_minute, spec.burst), (600, 1));
        assert_eq!(spec.origin, "default");
    }

    #[test]
    fn unknown_key_names_key_section_and_file() {
        let error = Config::parse(
            "[pools.\"request-rate:x\"]\nrequest_per_minute = 5\n",
            "/etc/st.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`request_per_minute`"), "{error}");
        assert!(error.contains("[pools.\"request-rate:x\"]"), "{error}");
        assert!(error.contains("/etc/st.toml"), "{error}");
        assert!(error.contains("requests_per_minute"), "{error}");
    }

    #[test]
    fn unknown_http_key_is_refused() {
        let error = Config::parse("[http]\ntimeout = 5\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`timeout`") && error.contains("timeout_ms"),
            "{error}"
        );
    }

    #[test]
    fn quotas_default_and_per_tenant() {
        let config = Config::parse(
            "[quotas]\nrequests_per_minute = 100\n[quotas.acme]\nrequests_per_minute = 5\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(config.tenant_quotas("acme").requests_per_minute, 5);
        assert_eq!(config.tenant_quotas("globex").requests_per_minute, 100);
        let config = Config::parse("", "c.toml").unwrap();
        assert_eq!(
            config.tenant_quotas("acme").requests_per_minute,
            DEFAULT_TENANT_REQUESTS_PER_MINUTE
        );
        for (text, expected) in [
            (
                "[quotas]\nrequests_per_minute = 0\n",
                "`requests_per_minute`",
            ),
            ("[quotas.acme]\nrequests_per_minute = 0\n", "[quotas.acme]"),
            (
                "[quotas.acme]\nrequest_per_minute = 9\n",
                "`request_per_minute`",
            ),
            ("[quotas]\nfuel = 9\n", "`fuel`"),
            ("quotas = 3\n", "quotas"),
        ] {
            let error = Config::parse(text, "c.toml").unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains("c.toml"), "{error}");
        }
    }

    #[test]
    fn call_quotas_inherit_and_reject_zero() {
        let config = Config::parse(
            "[quotas]\nfuel_per_minute = 1000\nmax_rows = 5\n\
             [quotas.acme]\nmax_concurrent_calls = 2\nmax_memory_bytes = 2000000\n",
            "c.toml",
        )
        .unwrap();
        let acme = config.tenant_quotas("acme");
        assert_eq!(acme.calls.fuel_per_minute, Some(1000));
        assert_eq!(acme.calls.max_concurrent_calls, Some(2));
        assert_eq!(acme.calls.max_memory_bytes, Some(2_000_000));
        assert_eq!(acme.max_rows, Some(5));
        let other = config.tenant_quotas("globex");
        assert_eq!(other.calls.max_concurrent_calls, None);
        assert_eq!(other.calls.fuel_per_minute, Some(1000));
        for (text, key) in [
            ("[quotas]\nfuel_per_minute = 0\n", "`fuel_per_minute`"),
            (
                "[quotas.acme]\nmax_concurrent_calls = 0\n",
                "`max_concurrent_calls`",
            ),
            ("[quotas]\nmax_fuel_per_row = 0\n", "`max_fuel_per_row`"),
            ("[quotas]\nmax_memory_bytes = 4096\n", "`max_memory_bytes`"),
            ("[quotas]\nmax_rows = -1\n", "`max_rows`"),
        ] {
            let error = Config::parse(text, "c.toml").unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (text, key) in [
            (
                "[pools.\"request-rate:x\"]\nrequests_per_minute = 0\n",
                "requests_per_minute",
            ),
            (
                "[pools.\"request-rate:x\"]\nrequests_per_minute = \"ten\"\n",
                "requests_per_minute",
            ),
            (
                "[pools.\"request-rate:x\"]\nrequests_per_minute = -3\n",
                "requests_per_minute",
            ),
            ("[openai]\nburst = 0\n", "burst"),
            ("[openai]\nrequests_per_minute = 10\nburst = 11\n", "burst"),
            ("[http]\nretries = 99\n", "retries"),
            ("[http]\ntimeout_ms = 0\n", "timeout_ms"),
        ] {
            let error = Config::parse(text, "c.toml").unwrap_err().to_string();
            assert!(error.contains(&format!("`{key}`")), "{text}: {error}");
            assert!(error.contains("c.toml"), "{error}");
        }
    }

    #[test]
    fn top_level_value_and_bad_names_are_refused() {
        let error = Config::parse("retries = 3\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`retries`") && error.contains("top level"),
            "{error}"
        );
        let error = Config::parse("[pools.\"request-rate:\"]\nburst = 1\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("give a name after"), "{error}");
        let error = Config::parse("[pools.\"a b\"]\nburst = 1\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`a b`"), "{error}");
        let error = Config::parse("[http\n", "c.toml").unwrap_err().to_string();
        assert!(
            error.contains("not valid TOML") && error.contains("c.toml"),
            "{error}"
        );
    }

    #[test]
    fn misspelt_sections_are_refused() {
        for text in [
            "[opeani]\nburst = 1\n",
            "[pool.\"request-rate:x\"]\nburst = 1\n",
            "[plugin.web]\npool = \"openai\"\n",
        ] {
            let error = Config::parse(text, "c.toml").unwrap_err().to_string();
            assert!(error.contains("unknown key"), "{text}: {error}");
            assert!(error.contains("[pools.\"NAME\"]"), "{text}: {error}");
        }
    }

    #[test]
    fn plugin_pool_of_unknown_kind_is_refused() {
        let error = Config::parse("[plugins.web]\npool = \"ratelimit:x\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`ratelimit:x`") && error.contains("neither"),
            "{error}"
        );
        let config = Config::parse(
            "[pools.\"custom\"]\nburst = 1\n[plugins.web]\npool = \"custom\"\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(config.plugins["web"].pool.as_deref(), Some("custom"));
    }

    #[test]
    fn provider_and_pool_section_of_one_name_conflict() {
        let error = Config::parse("[pools.openai]\nburst = 1\n[openai]\nburst = 1\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("keep one"), "{error}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::parse(
            "[pools.\"request-rate:my-svc\"]\nrequests_per_minute = 120\n",
            "c.toml",
        )
        .unwrap();
        config
            .apply_env([
                (
                    "SANDTABLE_POOL_REQUEST_RATE_MY_SVC_REQUESTS_PER_MINUTE".to_owned(),
                    "60".to_owned(),
                ),
                (
                    "SANDTABLE_POOL_OPENAI_TOKENS_PER_MINUTE".to_owned(),
                    "1000".to_owned(),
                ),
                ("SANDTABLE_HTTP_RETRIES".to_owned(), "7".to_owned()),
                ("UNRELATED".to_owned(), "x".to_owned()),
            ])
            .unwrap();
        assert_eq!(config.pool("request-rate:my-svc").requests_per_minute, 60);
        assert!(
            config
                .pool("request-rate:my-svc")
                .origin
                .contains("SANDTABLE_POOL_")
        );
        assert_eq!(config.pool("openai").tokens_per_minute, Some(1000));
        assert_eq!(config.http.retries, 7);
        assert_eq!(config.http.timeout, HttpSettings::default().timeout);
    }

    #[test]
    fn bad_environment_variables_are_named() {
        let mut config = Config::default();
        let error = config
            .apply_env([("SANDTABLE_POOL_OPENAI_RPM".to_owned(), "5".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(error.contains("SANDTABLE_POOL_OPENAI_RPM"), "{error}");
        let error = config
            .apply_env([("SANDTABLE_POOL_OPENAI_BURST".to_owned(), "zero".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("SANDTABLE_POOL_OPENAI_BURST") && error.contains("`burst`"),
            "{error}"
        );
        let error = config
            .apply_env([("SANDTABLE_HTTP_TIMEOUT".to_owned(), "5".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(error.contains("SANDTABLE_HTTP_TIMEOUT"), "{error}");
    }

    #[test]
    fn env_name_upper_cases_and_replaces_punctuation() {
        assert_eq!(env_name("request-rate:my.svc"), "REQUEST_RATE_MY_SVC");
    }
}
