//! The process's one engine, its epoch ticker, and loading components.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{
    LIFECYCLE_INTERFACE, LOG_INTERFACE, PluginPre, TYPES_INTERFACE, UDF_INTERFACE, USAGE_INTERFACE,
};
use super::cache::{CompiledCache, Lookup};
use super::limits::{LimitPolicy, MAX_CORE_INSTANCES};
use super::state::{self, LogLimiter, StoreState};
use super::stats::{FunctionKey, FunctionStats, StatsCollector};
use super::types::Description;
use super::warm::WarmPool;
use super::{LoadError, describe};

/// The largest component accepted by default: 64 MiB.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 64 << 20;
/// The maximum compile time by default.
pub const DEFAULT_MAX_COMPILE_TIME: Duration = Duration::from_secs(120);
/// The interval of the epoch ticker, which bounds how late a deadline fires.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(5);
/// The wasm stack of a call by default: 1 MiB.
pub const DEFAULT_MAX_WASM_STACK: usize = 1 << 20;
/// The number of instances that may exist at once by default.
pub const DEFAULT_MAX_INSTANCES: u32 = 64;

/// Interface prefixes of the WASI imports a guest may have. Everything else,
/// `wasi:sockets` among them, is rejected at load. `wasi:http` requests go
/// only to the hosts the operator allow-lists for the plugin.
const GRANTED_WASI_IMPORTS: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-",
    "wasi:filesystem/",
    "wasi:http/types@",
    "wasi:http/outgoing-handler@",
];

/// Settings fixed for the life of a [`UdfEngine`].
///
/// Stack size and the pooling allocator's slot size are engine settings in
/// wasmtime, so they belong to the host, not to a plugin's request.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The directory of the compiled-component cache. With `None`, every
    /// load compiles.
    pub cache_dir: Option<PathBuf>,
    /// Defaults and caps for every call's limits.
    pub policy: LimitPolicy,
    /// The number of instances that may exist at once, warm ones included.
    pub max_instances: u32,
    /// The maximum number of warm instances kept at once.
    pub max_warm_instances: u32,
    /// The calls a warm instance serves before it is replaced.
    pub warm_max_calls: u64,
    /// How long a warm instance may sit unused before it is dropped.
    pub warm_idle_timeout: Duration,
    /// The interval of the epoch ticker.
    pub epoch_tick: Duration,
    /// The maximum wasm stack of a call, in bytes.
    pub max_wasm_stack: usize,
    /// The largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// The maximum compile time.
    pub max_compile_time: Duration,
    /// Whether calls are metered with fuel. Turning it off removes the fuel
    /// limit; it exists to measure what metering costs.
    pub fuel: bool,
    /// Whether calls are interrupted at their deadline. Turning it off
    /// removes the deadline; it exists to measure what epochs cost.
    pub epochs: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            policy: LimitPolicy::default(),
            max_instances: DEFAULT_MAX_INSTANCES,
            max_warm_instances: 8,
            warm_max_calls: 10_000,
            warm_idle_timeout: Duration::from_secs(300),
            epoch_tick: DEFAULT_EPOCH_TICK,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            max_compile_time: DEFAULT_MAX_COMPILE_TIME,
            fuel: true,
            epochs: true,
        }
    }
}

/// The sandbox: one wasmtime engine with the pooling allocator, fuel and
/// epoch interruption, plus the linker, the compiled cache and warm
/// instances. Cloning is cheap and shares everything.
#[derive(Clone)]
pub struct UdfEngine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub engine: Engine,
    pub linker: Linker<StoreState>,
    pub config: EngineConfig,
    pub cache: Option<CompiledCache>,
    pub slots: Slots,
    /// The slots that calls of plugins with outbound access may hold, a
    /// share of [`EngineInner::slots`], so that calls waiting on responses
    /// or pools never hold every slot.
    pub outbound_slots: Slots,
    pub warm: WarmPool,
    pub stats: StatsCollector,
    pub log_limiter: Arc<LogLimiter>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl UdfEngine {
    /// Creates the engine and starts its epoch ticker thread.
    ///
    /// # Errors
    ///
    /// Fails when wasmtime rejects the configuration, for example when the
    /// pooling allocator cannot reserve its address space.
    pub fn new(config: EngineConfig) -> Result<Self, LoadError> {
        let engine = Engine::new(&wasmtime_config(&config)).map_err(LoadError::engine)?;
        let mut linker = Linker::new(&engine);
        state::add_to_linker(&mut linker).map_err(LoadError::engine)?;
        let cache = config
            .cache_dir
            .as_ref()
            .map(|dir| CompiledCache::new(dir, &engine));
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(&engine, config.epoch_tick, ticker_stop.clone())?;
        let fresh_slots = config
            .max_instances
            .saturating_sub(config.max_warm_instances)
            .max(1);
        Ok(UdfEngine {
            inner: Arc::new(EngineInner {
                slots: Slots::new(fresh_slots as usize),
                outbound_slots: Slots::new((fresh_slots as usize / 2).max(1)),
                warm: WarmPool::new(config.max_warm_instances as usize),
                stats: StatsCollector::default(),
                log_limiter: Arc::new(state::log_limiter()),
                engine,
                linker,
                config,
                cache,
                ticker_stop,
            }),
        })
    }

    /// Takes the per-function aggregates of the calls made since the last
    /// take, for writing to the catalog.
    pub fn take_stats(&self) -> Vec<(FunctionKey, FunctionStats)> {
        // Forgets log-rate state of plugins that have been quiet long enough
        // to be back at a full burst, so the limiter does not grow forever.
        self.inner.log_limiter.retain_recent();
        self.inner.stats.take()
    }

    /// Puts aggregates back, after writing them failed, so that the next
    /// write includes them.
    pub fn restore_stats(&self, stats: Vec<(FunctionKey, FunctionStats)>) {
        self.inner.stats.restore(stats);
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The directory of this engine's compiled-component cache, if any.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.inner
            .cache
            .as_ref()
            .map(|cache| cache.dir().to_owned())
    }

    /// Validates and compiles a component, runs its `describe` export, and
    /// checks the description.
    ///
    /// # Errors
    ///
    /// Returns a [`LoadError`] naming what is wrong: not wasm, a core module,
    /// too large, an import the host does not grant, another world, a
    /// description that fails validation, or a failure of `describe`.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let mut plugin = self.prepare(bytes)?;
        let description = super::call::describe(self, &plugin)?;
        describe::validate(&description).map_err(LoadError::InvalidDescription)?;
        Arc::get_mut(&mut plugin.inner)
            .expect("a plugin being loaded has no other handles")
            .description = description;
        Ok(plugin)
    }

    /// Loads a component with a description stored earlier, without running
    /// its `describe` again.
    ///
    /// The host enforces the description it was given, which is the one the
    /// operator reviewed, whatever the guest's `describe` would return now.
    ///
    /// # Errors
    ///
    /// Fails as [`UdfEngine::load`] does, and with
    /// [`LoadError::InvalidDescription`] when the stored description breaks a
    /// rule of this host version.
    pub fn load_described(
        &self,
        bytes: &[u8],
        description: Description,
    ) -> Result<LoadedPlugin, LoadError> {
        describe::validate(&description).map_err(LoadError::InvalidDescription)?;
        let mut plugin = self.prepare(bytes)?;
        Arc::get_mut(&mut plugin.inner)
            .expect("a plugin being loaded has no other handles")
            .description = description;
        Ok(plugin)
    }

    /// Checks, compiles and links a component, leaving its description
    /// empty.
    fn prepare(&self, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let config = &self.inner.config;
        if bytes.len() > config.max_component_bytes {
            return Err(LoadError::TooLarge {
                bytes: bytes.len(),
                max: config.max_component_bytes,
            });
        }
        check_header(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));

        let started = Instant::now();
        let (component, cache_hit) = self.compile(bytes, &sha256)?;
        let compile_us = started.elapsed().as_micros() as u64;

        check_imports_and_exports(&self.inner.engine, &component)?;
        check_resources(&component, &config.policy)?;
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|error| LoadError::Link(format!("{error:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|error| LoadError::WrongWorld {
            detail: format!("{error:#}"),
        })?;
        let init = lifecycle_init(&component);

        Ok(LoadedPlugin {
            inner: Arc::new(PluginInner {
                sha256,
                size_bytes: bytes.len(),
                cache_hit,
                compile_us,
                pre,
                init,
                description: empty_description(),
            }),
        })
    }

    /// Compiles `bytes`, or loads the result from the cache. Returns whether
    /// the cache had it.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, bool), LoadError> {
        let engine = &self.inner.engine;
        if let Some(cache) = &self.inner.cache {
            match cache.get(engine, sha256) {
                Lookup::Hit(component) => return Ok((component, true)),
                Lookup::Miss => {}
                Lookup::Corrupt(reason) => tracing::warn!(
                    target: "sandtable::sandbox",
                    %sha256,
                    %reason,
                    "compiled-component cache file was damaged; compiling again"
                ),
            }
        }
        let config = &self.inner.config;
        let component = compile_with_timeout(
            engine,
            bytes,
            config.max_compile_time,
            config.policy.max_memory_bytes,
        )?;
        if let Some(cache) = &self.inner.cache {
            cache.put(sha256, &component);
        }
        Ok((component, false))
    }
}

fn wasmtime_config(config: &EngineConfig) -> Config {
    let mut pooling = PoolingAllocationConfig::default();
    let instances = config.max_instances.max(1);
    pooling
        .total_component_instances(instances)
        .total_core_instances(instances * MAX_CORE_INSTANCES as u32)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memories_per_component(MAX_CORE_INSTANCES as u32)
        .max_tables_per_component(MAX_CORE_INSTANCES as u32)
        .max_core_instances_per_component(MAX_CORE_INSTANCES as u32)
        .max_memory_size(config.policy.max_memory_bytes as usize)
        .table_elements(super::limits::MAX_TABLE_ELEMENTS);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(config.fuel)
        .epoch_interruption(config.epochs)
        .max_wasm_stack(config.max_wasm_stack)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    wasm
}

fn spawn_ticker(engine: &Engine, tick: Duration, stop: Arc<AtomicBool>) -> Result<(), LoadError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("sandtable-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(|_| ())
        .map_err(|error| LoadError::Engine(format!("could not start the epoch ticker: {error}")))
}

/// Rejects input that is not a component before wasmtime parses it.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // The version field is 1 for a core module; a component has version 13
    // and layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

fn compile_with_timeout(
    engine: &Engine,
    bytes: &[u8],
    max: Duration,
    max_memory: u64,
) -> Result<Component, LoadError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let engine = engine.clone();
    let bytes = bytes.to_vec();
    std::thread::Builder::new()
        .name("sandtable-compile".into())
        .spawn(move || {
            let _ = sender.send(Component::new(&engine, &bytes));
        })
        .map_err(|error| LoadError::Engine(format!("could not start a compile thread: {error}")))?;
    match receiver.recv_timeout(max) {
        Ok(Ok(component)) => Ok(component),
        Ok(Err(error)) => Err(compile_error(error, max_memory)),
        // NOTE: cranelift cannot be interrupted, so a compile past the cap
        // finishes on its thread and its result is dropped.
        Err(_) => Err(LoadError::CompileTimeout { max }),
    }
}

/// Maps a compile error to a [`LoadError`].
///
/// NOTE: the pooling allocator rejects an initial memory larger than its
/// slot while compiling, with only a message to show for it (wasmtime 48:
/// "memory has a minimum byte size of N which exceeds the limit"), so that
/// message is matched here.
fn compile_error(error: wasmtime::Error, max_memory: u64) -> LoadError {
    let message = format!("{error:#}");
    let declared = message
        .split("minimum byte size of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|bytes| bytes.parse::<u64>().ok());
    match declared {
        Some(bytes) if message.contains("exceeds the limit") => LoadError::InitialMemoryTooLarge {
            bytes,
            max: max_memory,
        },
        _ => LoadError::Invalid(message),
    }
}

fn check_imports_and_exports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let granted = name == LOG_INTERFACE
            || name == USAGE_INTERFACE
            || name == TYPES_INTERFACE
            || GRANTED_WASI_IMPORTS
                .iter()
                .any(|prefix| name.starts_with(prefix));
        if !granted {
            return Err(LoadError::ImportNotGranted {
                import: name.to_owned(),
            });
        }
    }
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if !exports.iter().any(|name| name == UDF_INTERFACE) {
        let found = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(LoadError::WrongWorld {
            detail: format!("it exports {found}"),
        });
    }
    Ok(())
}

fn check_resources(component: &Component, policy: &LimitPolicy) -> Result<(), LoadError> {
    let Some(resources) = component.resources_required() else {
        return Ok(());
    };
    if let Some(pages) = resources.max_initial_memory_size {
        let bytes = pages.saturating_mul(65_536);
        if bytes > policy.max_memory_bytes {
            return Err(LoadError::InitialMemoryTooLarge {
                bytes,
                max: policy.max_memory_bytes,
            });
        }
    }
    Ok(())
}

fn lifecycle_init(component: &Component) -> Option<ComponentExportIndex> {
    let (_, interface) = component.get_export(None, LIFECYCLE_INTERFACE)?;
    let (_, init) = component.get_export(Some(&interface), "init")?;
    Some(init)
}

fn empty_description() -> Description {
    Description {
        name: String::new(),
        version: String::new(),
        functions: Vec::new(),
        capabilities: super::types::Capabilities {
            directories: Vec::new(),
            outbound_hosts: Vec::new(),
            warm_instance: false,
        },
    }
}

/// A compiled, validated plugin, ready to call. Cloning is cheap.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub(crate) inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub sha256: String,
    pub size_bytes: usize,
    pub cache_hit: bool,
    pub compile_us: u64,
    pub pre: PluginPre<StoreState>,
    pub init: Option<ComponentExportIndex>,
    pub description: Description,
}

impl LoadedPlugin {
    /// The plugin's description of itself, validated.
    pub fn description(&self) -> &Description {
        &self.inner.description
    }

    /// The lowercase hex sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// The size of the component, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.inner.size_bytes
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn cache_hit(&self) -> bool {
        self.inner.cache_hit
    }

    /// How long compiling, or loading from the cache, took, in microseconds.
    pub fn compile_us(&self) -> u64 {
        self.inner.compile_us
    }

    /// Whether the plugin exports `init`.
    pub fn has_init(&self) -> bool {
        self.inner.init.is_some()
    }

    /// Looks up one of the plugin's functions by name.
    pub fn function(&self, name: &str) -> Option<&super::types::Function> {
        self.inner
            .description
            .functions
            .iter()
            .find(|function| function.name == name)
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.inner.description.name)
            .field("sha256", &self.inner.sha256)
            .finish_non_exhaustive()
    }
}

/// A counting semaphore over instance slots, so that calls wait for a free
/// slot instead of failing when the pooling allocator is full.
pub(crate) struct Slots {
    free: Mutex<usize>,
    available: Condvar,
}

impl Slots {
    fn new(count: usize) -> Self {
        Slots {
            free: Mutex::new(count),
            available: Condvar::new(),
        }
    }

    /// Waits for a slot; returns it with the time spent waiting.
    pub fn acquire(&self) -> (SlotGuard<'_>, Duration) {
        let started = Instant::now();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let _queued = (*free == 0).then(crate::telemetry::metrics::QueuedCall::enter);
        while *free == 0 {
            free = self.available.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        (SlotGuard { slots: self }, started.elapsed())
    }
}

/// A held instance slot, released on drop.
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.slots.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.slots.available.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rejects_text() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
    }

    #[test]
    fn header_rejects_core_module() {
        let module = b"\0asm\x01\0\0\0";
        assert!(matches!(check_header(module), Err(LoadError::CoreModule)));
    }

    #[test]
    fn header_accepts_component() {
        let component = b"\0asm\x0d\0\x01\0";
        assert!(check_header(component).is_ok());
    }
}
