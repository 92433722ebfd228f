//! The sandbox against really built plugins: values, nulls, faults on
//! exactly the rows that cause them, limits, timing records and the
//! compiled cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sandtable::sandbox::{
    BatchOutput, CallContext, Column, DataType, DirectoryGrant, EngineConfig, FaultClass,
    LimitPolicy, LoadError, LoadedPlugin, RECORD_TARGET, UdfEngine,
};
use serde_json::{Value, json};

fn plugin_path(file: &str) -> PathBuf {
    Path::new(env!("SANDTABLE_PLUGIN_DIR")).join(file)
}

fn plugin_bytes(file: &str) -> Vec<u8> {
    let path = plugin_path(file);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn cache_dir() -> PathBuf {
    sandtable_tests::workspace_root()
        .join("target")
        .join("test-cache")
}

/// The engine most tests share, with the default policy.
fn engine() -> &'static UdfEngine {
    static ENGINE: OnceLock<UdfEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        UdfEngine::new(EngineConfig {
            cache_dir: Some(cache_dir()),
            ..EngineConfig::default()
        })
        .expect("the engine starts")
    })
}

/// An engine whose calls get more fuel than their deadline lets them use, and
/// a small output cap.
fn tight_engine() -> &'static UdfEngine {
    static ENGINE: OnceLock<UdfEngine> = OnceLock::new();
    ENGINE.get_or_init(|| UdfEngine::new(tight_config()).expect("the engine starts"))
}

fn tight_config() -> EngineConfig {
    EngineConfig {
        cache_dir: Some(cache_dir()),
        policy: LimitPolicy {
            default_fuel_per_row: 1_000_000_000_000,
            max_fuel_per_row: 1_000_000_000_000,
            default_deadline: TIGHT_DEADLINE,
            default_output_bytes: 1 << 20,
            ..LimitPolicy::default()
        },
        ..EngineConfig::default()
    }
}

const TIGHT_DEADLINE: Duration = Duration::from_millis(300);

/// An engine whose calls get fuel to spare, the default deadline and the
/// tight engine's small output cap, for tests that a busy machine must not
/// fail by the deadline.
fn roomy_engine() -> &'static UdfEngine {
    static ENGINE: OnceLock<UdfEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        UdfEngine::new(EngineConfig {
            policy: LimitPolicy {
                default_deadline: LimitPolicy::default().default_deadline,
                ..tight_config().policy
            },
            ..tight_config()
        })
        .expect("the engine starts")
    })
}

fn load_in(engine: &UdfEngine, file: &str) -> LoadedPlugin {
    static LOADED: OnceLock<Mutex<HashMap<(usize, String), LoadedPlugin>>> = OnceLock::new();
    let key = (engine as *const UdfEngine as usize, file.to_owned());
    let loaded = LOADED.get_or_init(Default::default);
    if let Some(plugin) = loaded.lock().unwrap().get(&key) {
        return plugin.clone();
    }
    let plugin = engine
        .load(&plugin_bytes(file))
        .unwrap_or_else(|error| panic!("{file} does not load: {error}"));
    loaded.lock().unwrap().insert(key, plugin.clone());
    plugin
}

fn load(file: &str) -> LoadedPlugin {
    load_in(engine(), file)
}

fn context(plugin: &str) -> CallContext {
    CallContext {
        tenant: "test".into(),
        plugin: plugin.into(),
        version: 1,
        ..CallContext::default()
    }
}

fn column(data_type: DataType, values: &[Value]) -> Column {
    Column::from_json(&data_type, values).expect("test values fit the type")
}

fn ints(values: &[Option<i64>]) -> Column {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    column(DataType::Int, &values)
}

fn strings(values: &[Option<&str>]) -> Column {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    column(DataType::String, &values)
}

fn call_in(engine: &UdfEngine, file: &str, function: &str, args: &[Column]) -> BatchOutput {
    let plugin = load_in(engine, file);
    let rows = args.first().map_or(1, Column::len);
    engine
        .call(&plugin, &context(file), function, args, rows)
        .unwrap_or_else(|error| panic!("{file}.{function} was refused: {error}"))
}

fn call(file: &str, function: &str, args: &[Column]) -> BatchOutput {
    call_in(engine(), file, function, args)
}

fn values(output: &BatchOutput) -> Vec<Value> {
    (0..output.column.len())
        .map(|row| output.column.json_at(row))
        .collect()
}

/// The fault class of each row, `None` where the row has a value.
fn classes(output: &BatchOutput) -> Vec<Option<FaultClass>> {
    (0..output.column.len())
        .map(|row| output.errors.iter().find(|e| e.row == row).map(|e| e.class))
        .collect()
}

/// Checks that the host still serves a normal call after a fault.
fn assert_engine_still_serves(engine: &UdfEngine) {
    let output = call_in(
        engine,
        "text.wasm",
        "upper",
        &[strings(&[Some("still fine")])],
    );
    assert_eq!(values(&output), [json!("STILL FINE")]);
}

#[test]
fn text_functions_compute_values() {
    let input = strings(&[Some("Hello wörld"), Some(""), Some("  two  words ")]);
    let upper = call("text.wasm", "upper", std::slice::from_ref(&input));
    assert_eq!(
        values(&upper),
        [json!("HELLO WÖRLD"), json!(""), json!("  TWO  WORDS ")]
    );
    let lower = call("text.wasm", "lower", std::slice::from_ref(&input));
    assert_eq!(values(&lower)[0], json!("hello wörld"));
    let length = call("text.wasm", "length", std::slice::from_ref(&input));
    assert_eq!(values(&length), [json!(11), json!(0), json!(13)]);
    let words = call("text.wasm", "word_count", &[input]);
    assert_eq!(values(&words), [json!(2), json!(0), json!(2)]);
}

#[test]
fn json_field_extracts_nested_value() {
    let docs = column(
        DataType::Json,
        &[
            json!({"a": {"b": [10, 20]}}),
            json!({"a": 1}),
            json!({"a": {"b": [1]}}),
        ],
    );
    let paths = strings(&[Some("a.b.1"), Some("missing"), Some("a.b")]);
    let output = call("text.wasm", "json_field", &[docs, paths]);
    assert_eq!(values(&output), [json!(20), Value::Null, json!([1])]);
    assert!(output.errors.is_empty(), "{:?}", output.errors);
}

#[test]
fn strict_function_skips_null_rows() {
    let output = call(
        "text.wasm",
        "upper",
        &[strings(&[Some("a"), None, Some("b")])],
    );
    assert_eq!(values(&output), [json!("A"), Value::Null, json!("B")]);
    assert!(output.errors.is_empty());
    assert_eq!(output.records.len(), 1);
    assert_eq!(
        output.records[0].rows, 2,
        "the null row never reaches the guest"
    );
}

#[test]
fn strict_function_with_only_nulls_makes_no_call() {
    let output = call("text.wasm", "upper", &[strings(&[None, None])]);
    assert_eq!(values(&output), [Value::Null, Value::Null]);
    assert!(output.records.is_empty());
}

#[test]
fn function_taking_nulls_sees_them() {
    let output = call("arith.wasm", "is_null", &[ints(&[Some(1), None])]);
    assert_eq!(values(&output), [json!(false), json!(true)]);
    assert_eq!(output.records[0].rows, 2);
}

#[test]
fn empty_batch_makes_no_call() {
    let output = call("text.wasm", "upper", &[strings(&[])]);
    assert_eq!(output.column.len(), 0);
    assert!(output.records.is_empty());
}

#[test]
fn batch_function_adds_columns() {
    let output = call(
        "arith.wasm",
        "add",
        &[
            ints(&[Some(1), Some(-5), Some(i64::MAX)]),
            ints(&[Some(2), Some(5), Some(0)]),
        ],
    );
    assert_eq!(values(&output), [json!(3), json!(0), json!(i64::MAX)]);
}

#[test]
fn row_error_fails_only_its_row() {
    let output = call(
        "arith.wasm",
        "div",
        &[
            ints(&[Some(4), Some(1), Some(9)]),
            ints(&[Some(2), Some(0), Some(3)]),
        ],
    );
    assert_eq!(values(&output), [json!(2), Value::Null, json!(3)]);
    assert_eq!(classes(&output), [None, Some(FaultClass::GuestError), None]);
    assert_eq!(
        output.records.len(),
        1,
        "a row error is a result, not a fault"
    );
}

#[test]
fn infinite_loop_is_stopped_by_fuel_on_its_row_only() {
    let output = call(
        "hostile.wasm",
        "spin",
        &[ints(&[Some(1), Some(2), Some(-1), Some(4)])],
    );
    assert_eq!(values(&output), [json!(1), json!(2), Value::Null, json!(4)]);
    assert_eq!(
        classes(&output),
        [None, None, Some(FaultClass::FuelExhausted), None]
    );
    assert_engine_still_serves(engine());
}

#[test]
fn infinite_loop_is_stopped_by_deadline() {
    let output = call_in(tight_engine(), "hostile.wasm", "spin", &[ints(&[Some(-1)])]);
    assert_eq!(classes(&output), [Some(FaultClass::DeadlineExceeded)]);
    assert_eq!(output.records.len(), 1, "a batch of one row is not re-run");
    let guest = Duration::from_micros(output.records[0].guest_us);
    assert!(
        guest >= TIGHT_DEADLINE,
        "stopped after {guest:?}, before the deadline"
    );
    assert!(
        guest < TIGHT_DEADLINE * 2,
        "stopped after {guest:?}, past twice the deadline"
    );
    assert_engine_still_serves(tight_engine());
}

#[test]
fn sleep_in_host_clock_is_stopped_by_deadline() {
    let output = call_in(
        tight_engine(),
        "hostile.wasm",
        "sleep",
        &[ints(&[Some(5_000)])],
    );
    assert_eq!(classes(&output), [Some(FaultClass::DeadlineExceeded)]);
    let guest = Duration::from_micros(output.records[0].guest_us);
    assert!(
        guest < TIGHT_DEADLINE * 2,
        "slept for {guest:?}, past twice the deadline"
    );
    let short = call_in(tight_engine(), "hostile.wasm", "sleep", &[ints(&[Some(1)])]);
    assert_eq!(
        values(&short),
        [json!(1)],
        "a sleep within the deadline completes"
    );
}

#[test]
fn timed_out_half_is_not_split_again() {
    let output = call_in(
        tight_engine(),
        "hostile.wasm",
        "spin",
        &[ints(&[Some(1), Some(-1), Some(-1), Some(4)])],
    );
    // The batch times out, then each half once; both halves hold a loop.
    assert_eq!(output.records.len(), 3);
    assert!(
        classes(&output)
            .iter()
            .all(|class| *class == Some(FaultClass::DeadlineExceeded))
    );
}

#[test]
fn memory_hog_fails_with_memory_limit_on_its_row_only() {
    // Fuel and time to spare, so that the memory limit is what stops the
    // guest. Under the tight engine's 300 ms deadline, a busy machine made
    // the half holding rows -1 and 3 time out, and row 3 failed with it.
    let engine = roomy_engine();
    let output = call_in(
        engine,
        "hostile.wasm",
        "hog",
        &[ints(&[Some(1), Some(-1), Some(3)])],
    );
    assert_eq!(values(&output), [json!(1), Value::Null, json!(3)]);
    assert_eq!(
        classes(&output),
        [None, Some(FaultClass::MemoryLimit), None]
    );
    assert_engine_still_serves(engine);
}

#[test]
fn deep_recursion_fails_with_stack_overflow() {
    let output = call(
        "hostile.wasm",
        "recurse",
        &[ints(&[Some(10), Some(1_000_000)])],
    );
    assert_eq!(values(&output)[0], json!(10));
    assert_eq!(classes(&output), [None, Some(FaultClass::StackOverflow)]);
    assert_engine_still_serves(engine());
}

#[test]
fn panic_fails_only_the_row_that_panics() {
    let input = strings(&[Some("a"), Some("b"), Some("boom"), Some("d"), Some("e")]);
    let output = call("hostile.wasm", "panic_on", &[input]);
    assert_eq!(
        values(&output),
        [json!("a"), json!("b"), Value::Null, json!("d"), json!("e")]
    );
    assert_eq!(
        classes(&output),
        [None, None, Some(FaultClass::GuestTrap), None, None]
    );
    assert_engine_still_serves(engine());
}

#[test]
fn wrong_output_length_is_invalid_output() {
    let output = call("hostile.wasm", "wrong_length", &[ints(&[Some(1), Some(2)])]);
    assert_eq!(
        values(&output),
        [Value::Null, Value::Null],
        "nothing is stored"
    );
    assert!(
        classes(&output)
            .iter()
            .all(|c| *c == Some(FaultClass::InvalidOutput))
    );
    let message = &output.errors[0].message;
    assert!(message.contains("rows for a batch of"), "{message}");
}

#[test]
fn wrong_output_type_is_invalid_output() {
    let output = call("hostile.wasm", "wrong_type", &[ints(&[Some(1)])]);
    assert_eq!(values(&output), [Value::Null]);
    assert_eq!(classes(&output), [Some(FaultClass::InvalidOutput)]);
    assert!(output.errors[0].message.contains("where int was declared"));
}

#[test]
fn output_over_cap_is_invalid_output() {
    let output = call_in(
        tight_engine(),
        "hostile.wasm",
        "huge_output",
        &[ints(&[Some(10), Some(2 << 20)])],
    );
    assert_eq!(values(&output)[0], json!("x".repeat(10)));
    assert_eq!(classes(&output), [None, Some(FaultClass::InvalidOutput)]);
    assert!(output.errors[0].message.contains("over the cap"));
}

#[test]
fn output_far_over_cap_is_invalid_output() {
    // 20 MiB exceeds the 1 MiB cap by more than the hostcall fuel's slack,
    // so wasmtime stops copying it before the host's own check runs.
    let output = call_in(
        tight_engine(),
        "hostile.wasm",
        "huge_output",
        &[ints(&[Some(20 << 20)])],
    );
    assert_eq!(classes(&output), [Some(FaultClass::InvalidOutput)]);
    assert!(
        output.errors[0].message.contains("output cap"),
        "{}",
        output.errors[0].message
    );
}

#[test]
fn log_flood_is_capped_and_call_succeeds() {
    let events = capture_events(|| {
        // 2,000 log calls can pass the tight engine's 300 ms on a busy
        // machine, and this test is about the cap, not the deadline.
        let output = call_in(
            roomy_engine(),
            "hostile.wasm",
            "log_flood",
            &[ints(&[Some(2_000)])],
        );
        assert_eq!(values(&output), [json!(2_000)]);
    });
    let guest: Vec<&Captured> = events
        .iter()
        .filter(|e| e.target == "sandtable::guest")
        .collect();
    let records = guest
        .iter()
        .filter(|e| e.fields.contains_key("fields"))
        .count();
    assert_eq!(
        records,
        sandtable::sandbox::MAX_LOG_RECORDS_PER_CALL as usize
    );
    for event in &guest {
        let message = &event.fields["message"];
        assert!(
            !message.contains('\n') && !message.contains('\x1b'),
            "{message:?}"
        );
        assert!(
            message.chars().count() < 1200,
            "a message of {} characters",
            message.len()
        );
    }
}

#[test]
fn log_rate_limit_spans_calls() {
    // An engine of its own, so that no other test has spent this plugin's
    // log budget.
    let engine = UdfEngine::new(tight_config()).unwrap();
    let plugin = engine.load(&plugin_bytes("hostile.wasm")).unwrap();
    let context = context("hostile-rate");
    let events = capture_events(|| {
        for _ in 0..2 {
            let output = engine
                .call(&plugin, &context, "log_flood", &[ints(&[Some(300)])], 1)
                .unwrap();
            assert_eq!(values(&output), [json!(300)]);
        }
    });
    let records = events
        .iter()
        .filter(|e| e.target == "sandtable::guest" && e.fields.contains_key("fields"))
        .count();
    let cap = sandtable::sandbox::MAX_LOG_RECORDS_PER_CALL as usize;
    assert!(
        records >= cap,
        "the first call keeps its full burst: {records}"
    );
    assert!(
        records < cap * 2,
        "the second call finds the burst spent: {records}"
    );
}

#[test]
fn guest_reads_only_granted_directory() {
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("hello.txt"), b"hi").unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("secret.txt"), b"no").unwrap();
    let plugin = load("hostile.wasm");
    let mut context = context("hostile");
    context.directories.push(DirectoryGrant {
        guest_path: "/data".into(),
        host_path: granted.path().to_owned(),
    });
    let escape = format!("/data/../{}/secret.txt", secret.path().display());
    let absolute = format!("{}/secret.txt", secret.path().display());
    let paths = strings(&[Some("/data/hello.txt"), Some(&escape), Some(&absolute)]);
    let output = engine()
        .call(&plugin, &context, "read_file", &[paths], 3)
        .unwrap();
    assert_eq!(values(&output)[0], json!(hex_of(b"hi")));
    assert_eq!(
        classes(&output),
        [
            None,
            Some(FaultClass::GuestError),
            Some(FaultClass::GuestError)
        ]
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn socket_import_is_rejected_at_load() {
    let error = engine()
        .load(&plugin_bytes("hostile_sockets.wasm"))
        .unwrap_err();
    let LoadError::ImportNotGranted { import } = &error else {
        panic!("expected ImportNotGranted, got {error}");
    };
    assert!(import.starts_with("wasi:sockets/"), "{import}");
    assert!(error.to_string().contains(import.as_str()));
}

#[test]
fn huge_initial_memory_is_rejected_at_load() {
    let error = engine()
        .load(&plugin_bytes("hostile_memory.wasm"))
        .unwrap_err();
    assert!(
        matches!(error, LoadError::InitialMemoryTooLarge { .. }),
        "expected InitialMemoryTooLarge, got {error}"
    );
}

#[test]
fn component_of_another_world_is_rejected() {
    let error = engine().load(&plugin_bytes("not_a_udf.wasm")).unwrap_err();
    let LoadError::WrongWorld { detail } = &error else {
        panic!("expected WrongWorld, got {error}");
    };
    assert!(detail.contains("wasi:cli/run"), "{detail}");
}

#[test]
fn core_module_is_rejected() {
    let source = Path::new(env!("SANDTABLE_PLUGIN_SOURCE_DIR")).join("core-module.wat");
    let module = wat::parse_file(&source).expect("the core module parses");
    let error = engine().load(&module).unwrap_err();
    assert!(matches!(error, LoadError::CoreModule), "got {error}");
    assert!(error.to_string().contains("wasm32-wasip2"));
}

#[test]
fn text_file_is_rejected_as_not_wasm() {
    let error = engine().load(b"this is not wasm").unwrap_err();
    assert!(matches!(error, LoadError::NotWasm), "got {error}");
}

#[test]
fn one_record_per_guest_call_with_exact_counts() {
    let input = strings(&[Some("a"), Some("bb"), Some("boom"), Some("dddd")]);
    let expected_bytes = input.byte_len();
    let mut output = None;
    let events = capture_events(|| {
        output = Some(call(
            "hostile.wasm",
            "panic_on",
            std::slice::from_ref(&input),
        ));
    });
    let output = output.unwrap();
    let records: Vec<&Captured> = events
        .iter()
        .filter(|e| e.target == RECORD_TARGET)
        .collect();
    assert!(output.records.len() > 1, "the fault is isolated by re-runs");
    assert_eq!(
        records.len(),
        output.records.len(),
        "one event per guest call"
    );
    let first = &output.records[0];
    assert_eq!(first.rows, 4);
    assert_eq!(first.bytes_in, expected_bytes);
    assert_eq!(first.outcome, "guest_trap");
    for (index, record) in output.records.iter().enumerate() {
        assert_eq!(record.attempt as usize, index + 1);
        assert_eq!(records[index].fields["attempt"], record.attempt.to_string());
    }
}

#[test]
fn fuel_used_is_identical_for_identical_batches() {
    let input = strings(&[Some("some text"), Some("more text here")]);
    let first = call("text.wasm", "upper", std::slice::from_ref(&input));
    let second = call("text.wasm", "upper", std::slice::from_ref(&input));
    assert!(first.records[0].fuel_used > 0);
    assert_eq!(first.records[0].fuel_used, second.records[0].fuel_used);
}

#[test]
fn warm_instance_runs_init_once_and_is_reused() {
    let first = call("warm_counter.wasm", "next", &[ints(&[Some(0), Some(0)])]);
    let second = call("warm_counter.wasm", "next", &[ints(&[Some(0)])]);
    assert!(
        second.records[0].warm,
        "the second call reuses the instance"
    );
    let before: i64 = values(&first)[1].as_i64().unwrap();
    assert_eq!(values(&second)[0].as_i64().unwrap(), before + 1);
    let inits = call("warm_counter.wasm", "inits", &[ints(&[Some(0)])]);
    assert_eq!(values(&inits), [json!(1)]);
}

#[test]
fn compiled_cache_hits_after_restart_and_recompiles_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    };
    let bytes = plugin_bytes("text.wasm");
    let first = UdfEngine::new(config()).unwrap();
    assert!(!first.load(&bytes).unwrap().cache_hit());
    drop(first);

    let restarted = UdfEngine::new(config()).unwrap();
    let plugin = restarted.load(&bytes).unwrap();
    assert!(plugin.cache_hit(), "a restart loads from the cache");
    let output = restarted
        .call(
            &plugin,
            &context("text"),
            "upper",
            &[strings(&[Some("x")])],
            1,
        )
        .unwrap();
    assert!(output.records[0].cache_hit);

    let file = restarted
        .cache_dir()
        .unwrap()
        .join(format!("{}.cwasm", plugin.sha256()));
    let mut contents = std::fs::read(&file).unwrap();
    let middle = contents.len() / 2;
    contents[middle] ^= 0xff;
    std::fs::write(&file, &contents).unwrap();
    let recompiled = restarted.load(&bytes).unwrap();
    assert!(!recompiled.cache_hit(), "a corrupt file is never loaded");
    assert!(
        restarted.load(&bytes).unwrap().cache_hit(),
        "the file was rewritten"
    );
}

#[test]
fn unknown_function_and_bad_arguments_are_refused() {
    let plugin = load("text.wasm");
    let context = context("text");
    let error = engine()
        .call(&plugin, &context, "shout", &[strings(&[Some("a")])], 1)
        .unwrap_err();
    assert!(error.to_string().contains("no function `shout`"), "{error}");
    assert!(error.to_string().contains("`upper`"), "{error}");

    let error = engine()
        .call(&plugin, &context, "upper", &[ints(&[Some(1)])], 1)
        .unwrap_err();
    assert!(error.to_string().contains("must be string"), "{error}");

    let error = engine()
        .call(&plugin, &context, "upper", &[], 1)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("takes 1 argument, but 0 were given"),
        "{error}"
    );
}

/// One captured `tracing` event: its target and fields as text.
struct Captured {
    target: String,
    fields: HashMap<String, String>,
}

fn capture_events(run: impl FnOnce()) -> Vec<Captured> {
    use tracing_subscriber::layer::SubscriberExt;

    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(CaptureLayer(events.clone()));
    tracing::subscriber::with_default(subscriber, run);
    Arc::try_unwrap(events)
        .ok()
        .expect("the subscriber is dropped")
        .into_inner()
        .unwrap()
}

struct CaptureLayer(Arc<Mutex<Vec<Captured>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut visitor = FieldVisitor(HashMap::new());
        event.record(&mut visitor);
        self.0.lock().unwrap().push(Captured {
            target: event.metadata().target().to_owned(),
            fields: visitor.0,
        });
    }
}

struct FieldVisitor(HashMap<String, String>);

impl tracing::field::Visit for FieldVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}
