//! Running a batch through a plugin: strict nulls, the guest call under its
//! limits, validation of the output, and isolation of faulting rows.
//!
//! When a call faults, its rows run again in halves, recursively, so that in
//! the end only the rows that fault carry the fault and the others get
//! values. Isolating one bad row among `n` costs about `2 * log2(n)` extra
//! calls, so a batch may spend at most `2 * ceil(log2(n)) * MAX_ISOLATED_ROWS`
//! re-runs. Once that budget is spent, the rows not yet isolated get the
//! fault of the call that contained them. A half that times out again after
//! its parent timed out is not split further, so a slow batch costs at most
//! three deadlines. A whole-call error returned by the guest is not re-run,
//! since it does not depend on which rows were passed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::Instance;

use super::bindings::Plugin;
use super::column::ColumnBuilder;
use super::engine::{LoadedPlugin, UdfEngine};
use super::fault::{self, Fault, FaultClass};
use super::limits::EffectiveLimits;
use super::outbound::{Outbound, RequestHooks, RequestRecord};
use super::quota::CallQuotas;
use super::record::CallRecord;
use super::state::{DirectoryGrant, GuestLabels, MAX_LOG_MESSAGE_CHARS, StoreState, sanitize};
use super::types::{self, BatchResult, Column, Description, Function};
use super::warm::{WarmInstance, WarmKey};
use super::{CallError, LoadError};

/// The maximum number of faulting rows a batch's re-run budget is sized to
/// isolate.
pub const MAX_ISOLATED_ROWS: u32 = 4;

/// The tenant and plugin a call runs for, the directories granted to it, and
/// where its requests may go.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The tenant.
    pub tenant: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The plugin's catalog version.
    pub version: i32,
    /// Directories granted to the plugin, mounted read-only.
    pub directories: Vec<DirectoryGrant>,
    /// The hosts the plugin may reach and the pools its functions are
    /// charged to.
    pub outbound: Arc<Outbound>,
    /// The tenant's quotas on calls.
    pub quotas: CallQuotas,
}

/// The error of one cell of a batch's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// The row, from 0.
    pub row: usize,
    /// The class: [`FaultClass::GuestError`] for an error the guest returned
    /// for the row, otherwise the fault of the call that contained it.
    pub class: FaultClass,
    /// The message.
    pub message: String,
}

/// The result of a batch: one value a row, the failed cells, and one timing
/// record for each guest call made.
#[derive(Debug, Clone)]
pub struct BatchOutput {
    /// The result column, one row for each input row. A failed cell is null.
    pub column: Column,
    /// The failed cells, in row order.
    pub errors: Vec<CellError>,
    /// One record for each guest call, in the order they ran.
    pub records: Vec<CallRecord>,
    /// One record for each outbound request the calls made.
    pub requests: Vec<RequestRecord>,
}

/// One contiguous run of rows and how its call ended.
enum Segment {
    Ok {
        start: usize,
        result: BatchResult,
    },
    Fault {
        start: usize,
        rows: usize,
        fault: Fault,
    },
}

/// The parts of a batch that stay fixed across its attempts.
struct Job<'a> {
    plugin: &'a LoadedPlugin,
    context: &'a CallContext,
    function: &'a Function,
    limits: EffectiveLimits,
}

impl UdfEngine {
    /// Runs one batch of `rows` rows through `function`.
    ///
    /// Rows with a null argument give a null result without a call unless
    /// the function takes nulls. A guest fault does not fail the batch: it
    /// becomes a [`CellError`] on the rows it affects.
    ///
    /// The call blocks until the guest returns. From async code, run it on
    /// a thread for blocking work (`tokio::task::spawn_blocking`).
    ///
    /// # Errors
    ///
    /// Returns a [`CallError`] when the function does not exist, the
    /// arguments do not match its parameters, or the host cannot set up a
    /// sandbox.
    ///
    /// # Panics
    ///
    /// When a guest reads a granted file on a tokio worker thread:
    /// wasmtime-wasi's synchronous file system blocks on the ambient runtime.
    pub fn call(
        &self,
        plugin: &LoadedPlugin,
        context: &CallContext,
        function: &str,
        args: &[Column],
        rows: usize,
    ) -> Result<BatchOutput, CallError> {
        let function = lookup_function(plugin, function)?;
        check_arguments(function, args, rows)?;
        let job = Job {
            plugin,
            context,
            function,
            limits: context
                .quotas
                .cap(self.inner.config.policy.effective(&function.limits)),
        };
        let mut records = Vec::new();
        let mut requests = Vec::new();
        if rows == 0 {
            return Ok(BatchOutput {
                column: Column::nulls(&function.returns, 0),
                errors: Vec::new(),
                records,
                requests,
            });
        }

        let live = if function.takes_nulls {
            None
        } else {
            non_null_rows(args, rows)
        };
        let segments = match &live {
            None => self.run_isolated(&job, args, rows, &mut records, &mut requests)?,
            Some(live) if live.is_empty() => Vec::new(),
            Some(live) => {
                let gathered: Vec<Column> = args.iter().map(|arg| arg.gather(live)).collect();
                self.run_isolated(&job, &gathered, live.len(), &mut records, &mut requests)?
            }
        };
        let (mut column, mut errors) = assemble(&function.returns, rows, live.as_deref(), segments);
        fail_non_finite_vectors(&mut column, &mut errors);
        Ok(BatchOutput {
            column,
            errors,
            records,
            requests,
        })
    }

    /// Runs a batch, re-running halves of any call that faults, unless the
    /// call sent requests: those are never sent twice.
    fn run_isolated(
        &self,
        job: &Job<'_>,
        args: &[Column],
        rows: usize,
        records: &mut Vec<CallRecord>,
        requests: &mut Vec<RequestRecord>,
    ) -> Result<Vec<Segment>, CallError> {
        let log2 = usize::BITS - (rows.max(2) - 1).leading_zeros();
        let mut budget = 2 * log2 * MAX_ISOLATED_ROWS;
        let mut segments = Vec::new();
        // Each entry is (first row, rows, arguments, whether its parent call
        // ran past the deadline).
        let mut pending = vec![(0usize, rows, None::<Vec<Column>>, false)];
        while let Some((start, count, sliced, parent_timed_out)) = pending.pop() {
            let batch_args = sliced.as_deref().unwrap_or(args);
            let attempt = records.len() as u32 + 1;
            let (outcome, record) = self.call_guest(job, batch_args, count, attempt, requests)?;
            record.emit();
            let sent_requests = record.requests > 0;
            self.inner.stats.observe(&record);
            records.push(record);
            let fault = match outcome {
                Ok(result) => {
                    segments.push(Segment::Ok { start, result });
                    continue;
                }
                Err(fault) => fault,
            };
            let timed_out = fault.class == FaultClass::DeadlineExceeded;
            let splittable = count > 1
                && !sent_requests
                && budget >= 2
                && fault.class.is_row_specific()
                && !(timed_out && parent_timed_out);
            if !splittable {
                segments.push(Segment::Fault {
                    start,
                    rows: count,
                    fault,
                });
                continue;
            }
            budget -= 2;
            let mid = count / 2;
            let left = batch_args.iter().map(|arg| arg.slice(0, mid)).collect();
            let right = batch_args.iter().map(|arg| arg.slice(mid, count)).collect();
            // The stack pops the left half first, so rows run in order.
            pending.push((start + mid, count - mid, Some(right), timed_out));
            pending.push((start, mid, Some(left), timed_out));
        }
        segments.sort_by_key(|segment| match segment {
            Segment::Ok { start, .. } | Segment::Fault { start, .. } => *start,
        });
        Ok(segments)
    }

    /// Makes one guest call and validates its output.
    fn call_guest(
        &self,
        job: &Job<'_>,
        args: &[Column],
        rows: usize,
        attempt: u32,
        requests: &mut Vec<RequestRecord>,
    ) -> Result<(Result<BatchResult, Fault>, CallRecord), CallError> {
        let plugin = &job.plugin.inner;
        let outbound = &job.context.outbound;
        let pool = outbound.pools.get(&job.function.name);
        let sends_requests = !outbound.hosts.is_empty();
        let mut record = CallRecord {
            tenant: job.context.tenant.clone(),
            plugin: job.context.plugin.clone(),
            version: job.context.version,
            function: job.function.name.clone(),
            rows: rows as u64,
            bytes_in: args.iter().map(Column::byte_len).sum(),
            bytes_out: 0,
            queue_wait_us: 0,
            instantiate_us: 0,
            guest_us: 0,
            fuel_used: 0,
            memory_peak_bytes: 0,
            memory_limit_bytes: job.limits.memory_bytes,
            cache_hit: plugin.cache_hit,
            warm: false,
            attempt,
            pool: pool.map(|pool| pool.name().to_owned()),
            pool_wait_us: 0,
            requests: 0,
            tokens: 0,
            outcome: String::new(),
            error: None,
        };
        let warm_key = plugin
            .description
            .capabilities
            .warm_instance
            .then(|| WarmKey {
                tenant: job.context.tenant.clone(),
                plugin: job.context.plugin.clone(),
                sha256: plugin.sha256.clone(),
            });

        let quotas = &job.context.quotas;
        if quotas.fuel_per_minute.is_some()
            && let Err(retry_after) = self.inner.fuel_budgets.check(&job.context.tenant)
        {
            return Err(CallError::FuelQuota {
                tenant: job.context.tenant.clone(),
                fuel_per_minute: quotas.fuel_per_minute.unwrap_or_default(),
                retry_after,
            });
        }

        // A plugin that cannot send requests is charged one request a call,
        // before it takes a slot, so that a waiting call occupies no instance.
        if let Some(pool) = pool.filter(|_| !sends_requests) {
            let waited = pool.acquire_blocking().map_err(|error| CallError::Host {
                function: job.function.name.clone(),
                reason: error.to_string(),
            })?;
            record.pool_wait_us = waited.as_micros() as u64;
        }
        // Calls that may wait on responses hold at most a share of the slots.
        let tenant = job.context.tenant.as_str();
        let outbound_slot = sends_requests.then(|| self.inner.outbound_slots.acquire(tenant, None));
        // Idle warm instances hold slots of their own, outside this count.
        let max_concurrent = quotas.max_concurrent_calls.map(|calls| calls as usize);
        let (_slot, queue_wait) = self.inner.slots.acquire(tenant, max_concurrent);
        let outbound_wait = outbound_slot
            .as_ref()
            .map_or(Duration::ZERO, |(_, wait)| *wait);
        record.queue_wait_us = (queue_wait + outbound_wait).as_micros() as u64;
        let hooks = RequestHooks {
            outbound: sends_requests.then(|| outbound.clone()),
            deadline: None,
            pool: pool.filter(|_| sends_requests).cloned(),
            call: Arc::default(),
            tenant: job.context.tenant.clone(),
            plugin: job.context.plugin.clone(),
            function: job.function.name.clone(),
        };

        let setup_started = Instant::now();
        let reused = warm_key.as_ref().and_then(|key| {
            let config = &self.inner.config;
            self.inner
                .warm
                .checkout(key, config.warm_max_calls, config.warm_idle_timeout)
        });
        record.warm = reused.is_some();
        let mut instance = match reused {
            Some(mut instance) => {
                let current = instance.store.data().limiter.peak_memory_bytes;
                instance.store.data_mut().reset_call(
                    job.limits.memory_bytes,
                    current,
                    &job.function.name,
                    hooks,
                );
                instance
            }
            None => match self.instantiate(job, &mut record, hooks) {
                Ok(instance) => instance,
                Err(Setup::Fault(fault)) => {
                    record.instantiate_us = setup_started.elapsed().as_micros() as u64;
                    record.set_outcome(Some(&fault));
                    return Ok((Err(fault), record));
                }
                Err(Setup::Host(reason)) => {
                    return Err(CallError::Host {
                        function: job.function.name.clone(),
                        reason,
                    });
                }
            },
        };
        record.instantiate_us = setup_started.elapsed().as_micros() as u64;

        let fuel = job.limits.fuel_for(rows);
        let store = &mut instance.store;
        let budget = self.arm(store, fuel, job.limits.deadline);
        if let Err(reason) = budget {
            return Err(CallError::Host {
                function: job.function.name.clone(),
                reason,
            });
        }
        store.set_hostcall_fuel(hostcall_fuel(job.limits.output_bytes));
        let guest_started = Instant::now();
        let returned = instance.bindings.sandtable_udf_udf().call_call(
            &mut *store,
            &job.function.name,
            args,
            rows as u32,
        );
        let guest_time = guest_started.elapsed();
        record.guest_us = guest_time.as_micros() as u64;
        record.fuel_used += fuel_used(store, fuel);
        if let Some(fuel_per_minute) = quotas.fuel_per_minute {
            self.inner
                .fuel_budgets
                .charge(tenant, record.fuel_used, fuel_per_minute);
        }
        let sent = store.data().call_requests().clone();
        let pool_wait = sent.pool_wait();
        self.settle_requests(
            &sent,
            pool.filter(|_| sends_requests),
            &mut record,
            requests,
        );

        let late = self.returned_late(
            "the call",
            guest_time.saturating_sub(pool_wait),
            &job.limits,
            rows,
        );
        let outcome = match returned {
            Ok(_) if late.is_some() => Err(late.expect("checked by the guard")),
            Ok(Ok(result)) => validate_output(job, result, rows, &mut record),
            Ok(Err(error)) => Err(guest_call_error(error)),
            Err(error) => {
                let evidence = store.data().fault_evidence();
                Err(fault::classify(&error, evidence, &job.limits.summary(rows)))
            }
        };
        let state = store.data_mut();
        record.memory_peak_bytes = state.limiter.peak_memory_bytes as u64;
        state.flush_output();
        record.set_outcome(outcome.as_ref().err());

        if let Some(key) = warm_key {
            // A trap poisons the whole store, and any fault may have left the
            // guest's state broken, so only an instance whose call succeeded
            // is kept.
            if outcome.is_ok() {
                instance.calls += 1;
                self.inner
                    .warm
                    .checkin(key, instance, self.inner.config.warm_idle_timeout);
            }
        }
        Ok((outcome, record))
    }

    /// Adds what a call's requests did to its record, and charges `pool`, the
    /// pool of a plugin granted hosts, for the tokens the guest reported
    /// beyond those the host counted, or for one request when it sent none.
    fn settle_requests(
        &self,
        sent: &super::outbound::CallRequests,
        pool: Option<&Arc<crate::pool::Pool>>,
        record: &mut CallRecord,
        requests: &mut Vec<RequestRecord>,
    ) {
        record.requests = sent.requests.load(Ordering::Relaxed);
        record.pool_wait_us += sent.pool_wait_us.load(Ordering::Relaxed);
        // A call that could have sent requests and sent none is charged one,
        // as a plugin granted no host is.
        if record.requests == 0
            && let Some(pool) = pool
            && let Ok(waited) = pool.acquire_blocking()
        {
            record.pool_wait_us += waited.as_micros() as u64;
        }
        // A report counts only for a call that sent requests, since tokens
        // are spent at a provider, and it adds at most the pool's token
        // burst, so that one call cannot hold a shared pool for long.
        let counted = sent.tokens.load(Ordering::Relaxed);
        let reported = sent.reported_tokens.load(Ordering::Relaxed);
        let extra = if record.requests > 0 {
            let burst = pool
                .and_then(|pool| pool.spec().effective_token_burst())
                .unwrap_or(u64::MAX);
            reported.saturating_sub(counted).min(burst)
        } else {
            0
        };
        record.tokens = counted.saturating_add(extra);
        if extra > 0
            && let Some(pool) = pool
        {
            pool.charge_tokens_blocking(extra);
        }
        requests.extend(sent.take_records());
    }

    /// Returns a deadline fault for a guest entry that returned normally
    /// after its deadline.
    ///
    /// The epoch ticker can fire late, and a guest woken from a clock wait at
    /// its deadline may return before its next epoch check, so a late return
    /// counts as running past the deadline. With epochs off, no deadline
    /// applies.
    fn returned_late(
        &self,
        what: &str,
        elapsed: Duration,
        limits: &EffectiveLimits,
        rows: usize,
    ) -> Option<Fault> {
        if !self.inner.config.epochs || elapsed <= limits.deadline {
            return None;
        }
        Some(Fault::new(
            FaultClass::DeadlineExceeded,
            format!(
                "{what} returned after {} ms, past its deadline ({})",
                elapsed.as_millis(),
                limits.summary(rows)
            ),
        ))
    }

    /// Sets a store's fuel and deadline for the next guest entry.
    fn arm(
        &self,
        store: &mut Store<StoreState>,
        fuel: u64,
        deadline: Duration,
    ) -> Result<(), String> {
        let config = &self.inner.config;
        if config.fuel {
            store
                .set_fuel(fuel)
                .map_err(|error| format!("could not set fuel: {error}"))?;
        }
        if !config.epochs {
            return Ok(());
        }
        let ends = Instant::now() + deadline;
        let state = store.data_mut();
        state.deadline = Some(ends);
        state.requests.deadline = Some(ends);
        let tick = config.epoch_tick;
        store.set_epoch_deadline(ticks_for(deadline, tick));
        // The deadline moves back by the time the call's requests waited for
        // pool permits, so the callback checks it again when the ticks run
        // out rather than trapping at once.
        store.epoch_deadline_callback(move |store| {
            let now = Instant::now();
            match store.data().effective_deadline() {
                Some(deadline) if deadline > now => Ok(wasmtime::UpdateDeadline::Continue(
                    ticks_for(deadline - now, tick),
                )),
                _ => Err(wasmtime::Trap::Interrupt.into()),
            }
        });
        Ok(())
    }

    /// Creates a store and an instance, and runs `init` when the plugin has
    /// one.
    fn instantiate(
        &self,
        job: &Job<'_>,
        record: &mut CallRecord,
        hooks: RequestHooks,
    ) -> Result<WarmInstance, Setup> {
        let plugin = &job.plugin.inner;
        let labels = GuestLabels {
            tenant: job.context.tenant.clone(),
            plugin: job.context.plugin.clone(),
            function: job.function.name.clone(),
        };
        let log_limiter = self.inner.log_limiter.clone();
        let state = StoreState::new(
            &job.context.directories,
            job.limits.memory_bytes,
            labels,
            log_limiter,
            hooks,
        )
        .map_err(|error| Setup::Host(format!("could not open a granted directory: {error:#}")))?;
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        let setup = self.inner.config.policy.setup_limits();
        self.arm(&mut store, setup.fuel_per_row, setup.deadline)
            .map_err(Setup::Host)?;

        let fault_of = |store: &mut Store<StoreState>, error: wasmtime::Error, what: &str| {
            let state = store.data_mut();
            let evidence = state.fault_evidence();
            state.flush_output();
            let mut fault = fault::classify(&error, evidence, &setup.summary(0));
            fault.message = format!("{what}: {}", fault.message);
            Setup::Fault(fault)
        };
        let instance: Instance = match plugin.pre.instance_pre().instantiate(&mut store) {
            Ok(instance) => instance,
            Err(error) => {
                return Err(fault_of(
                    &mut store,
                    error,
                    "instantiating the plugin failed",
                ));
            }
        };
        let bindings = match Plugin::new(&mut store, &instance) {
            Ok(bindings) => bindings,
            Err(error) => return Err(Setup::Host(format!("{error:#}"))),
        };
        if let Some(init) = &plugin.init {
            let func = instance
                .get_typed_func::<(), (Result<(), String>,)>(&mut store, init)
                .map_err(|error| {
                    Setup::Host(format!("`init` has the wrong signature: {error:#}"))
                })?;
            let init_started = Instant::now();
            let returned = func.call(&mut store, ());
            let late = self.returned_late("`init`", init_started.elapsed(), &setup, 0);
            if let (Ok(_), Some(fault)) = (&returned, late) {
                store.data_mut().flush_output();
                return Err(Setup::Fault(fault));
            }
            record.fuel_used += fuel_used(&store, setup.fuel_per_row);
            match returned {
                Ok((Ok(()),)) => {}
                Ok((Err(message),)) => {
                    store.data_mut().flush_output();
                    return Err(Setup::Fault(Fault::new(
                        FaultClass::GuestError,
                        format!(
                            "`init` failed: {}",
                            sanitize(&message, MAX_LOG_MESSAGE_CHARS)
                        ),
                    )));
                }
                Err(error) => return Err(fault_of(&mut store, error, "`init` failed")),
            }
        }
        Ok(WarmInstance {
            store,
            bindings,
            calls: 0,
            last_used: Instant::now(),
        })
    }
}

/// Returns the epoch ticks that cover `duration`, at least 1.
fn ticks_for(duration: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    (duration.as_nanos().div_ceil(tick) as u64).max(1)
}

/// Returns the bytes a guest may pass to the host in one call or return:
/// the output cap plus room for row errors and layout, so that a slightly
/// larger output reaches the host's own cap check and names the cap.
fn hostcall_fuel(output_bytes: u64) -> usize {
    usize::try_from(output_bytes.saturating_add(16 << 20)).unwrap_or(usize::MAX)
}

/// Computes the fuel a store used out of `given`, which is 0 when fuel is
/// off.
fn fuel_used(store: &Store<StoreState>, given: u64) -> u64 {
    store
        .get_fuel()
        .map_or(0, |left| given.saturating_sub(left))
}

enum Setup {
    Fault(Fault),
    Host(String),
}

/// Runs a plugin's `describe` in a fresh instance under the set-up budget.
pub(crate) fn describe(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
) -> Result<Description, LoadError> {
    let inner = &engine.inner;
    let setup = inner.config.policy.setup_limits();
    // `describe` runs for the host, not for the tenant that adds the plugin.
    let (_slot, _) = inner.slots.acquire("", None);
    let labels = GuestLabels::default();
    let state = StoreState::new(
        &[],
        setup.memory_bytes,
        labels,
        inner.log_limiter.clone(),
        RequestHooks::default(),
    )
    .map_err(LoadError::engine)?;
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_hostcall_fuel(hostcall_fuel(setup.output_bytes));
    engine
        .arm(&mut store, setup.fuel_per_row, setup.deadline)
        .map_err(LoadError::Engine)?;
    let started = Instant::now();
    let result = plugin
        .inner
        .pre
        .instantiate(&mut store)
        .and_then(|bindings| bindings.sandtable_udf_udf().call_describe(&mut store));
    let late = engine.returned_late("`describe`", started.elapsed(), &setup, 0);
    if let (Ok(_), Some(fault)) = (&result, late) {
        store.data_mut().flush_output();
        return Err(LoadError::DescribeFailed(fault.to_string()));
    }
    // The evidence is read before the flush, which empties stderr.
    let evidence = store.data().fault_evidence();
    store.data_mut().flush_output();
    result.map_err(|error| {
        LoadError::DescribeFailed(fault::classify(&error, evidence, &setup.summary(0)).to_string())
    })
}

fn lookup_function<'a>(plugin: &'a LoadedPlugin, name: &str) -> Result<&'a Function, CallError> {
    plugin
        .function(name)
        .ok_or_else(|| CallError::UnknownFunction {
            plugin: plugin.description().name.clone(),
            function: name.to_owned(),
            available: plugin
                .description()
                .functions
                .iter()
                .map(|function| format!("`{}`", function.name))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn check_arguments(function: &Function, args: &[Column], rows: usize) -> Result<(), CallError> {
    if args.len() != function.params.len() {
        return Err(CallError::ArgumentCount {
            function: function.name.clone(),
            expected: function.params.len(),
            given: args.len(),
        });
    }
    for (param, arg) in function.params.iter().zip(args) {
        let given = arg.values.data_type();
        if given != param.type_ {
            return Err(CallError::ArgumentType {
                function: function.name.clone(),
                param: param.name.clone(),
                expected: param.type_,
                given,
            });
        }
        let invalid = |reason: String| CallError::ArgumentInvalid {
            function: function.name.clone(),
            param: param.name.clone(),
            reason,
        };
        match arg.values.rows() {
            Some(count) if count == rows => {}
            Some(count) => return Err(invalid(format!("it has {count} rows, not {rows}"))),
            None => return Err(invalid("its layout is malformed".into())),
        }
        if !arg.nulls.is_empty() && arg.nulls.len() != rows {
            return Err(invalid(format!(
                "it has {} null flags for {rows} rows",
                arg.nulls.len()
            )));
        }
    }
    Ok(())
}

/// Returns the rows where no argument is null, or `None` when there is no
/// null at all.
fn non_null_rows(args: &[Column], rows: usize) -> Option<Vec<usize>> {
    if !args.iter().any(Column::has_nulls) {
        return None;
    }
    Some(
        (0..rows)
            .filter(|&row| !args.iter().any(|arg| arg.is_null(row)))
            .collect(),
    )
}

fn guest_call_error(error: types::CallError) -> Fault {
    let message = match error {
        types::CallError::UnknownFunction(name) => {
            format!("the guest has no function `{name}`, though its description lists it")
        }
        types::CallError::InvalidArguments(message) => {
            format!("the guest rejected its arguments: {message}")
        }
        types::CallError::Failed(message) => message,
    };
    Fault::new(
        FaultClass::GuestError,
        sanitize(&message, MAX_LOG_MESSAGE_CHARS),
    )
}

fn validate_output(
    job: &Job<'_>,
    result: BatchResult,
    rows: usize,
    record: &mut CallRecord,
) -> Result<BatchResult, Fault> {
    let error_bytes: u64 = result.errors.iter().map(|e| e.message.len() as u64).sum();
    record.bytes_out = result.column.byte_len() + error_bytes;
    if record.bytes_out > job.limits.output_bytes {
        return Err(Fault::new(
            FaultClass::InvalidOutput,
            format!(
                "the output is {} bytes, over the cap of {} bytes",
                record.bytes_out, job.limits.output_bytes
            ),
        ));
    }
    result
        .column
        .validate(&job.function.returns, rows)
        .map_err(|reason| Fault::new(FaultClass::InvalidOutput, format!("the guest {reason}")))?;
    let mut seen = vec![false; rows];
    for error in &result.errors {
        let row = error.row as usize;
        if row >= rows || std::mem::replace(&mut seen[row], true) {
            return Err(Fault::new(
                FaultClass::InvalidOutput,
                format!(
                    "the guest returned an error for row {row}, which is out of range or repeated"
                ),
            ));
        }
    }
    Ok(result)
}

/// Puts the segments back together in row order, with nulls for the rows a
/// strict function skipped and for failed cells.
fn assemble(
    returns: &types::DataType,
    rows: usize,
    live: Option<&[usize]>,
    segments: Vec<Segment>,
) -> (Column, Vec<CellError>) {
    let mut errors = Vec::new();
    if live.is_none() && segments.len() == 1 && matches!(segments[0], Segment::Ok { .. }) {
        let Some(Segment::Ok { mut result, .. }) = segments.into_iter().next() else {
            unreachable!("the one segment is `Ok`");
        };
        result.errors.sort_by_key(|error| error.row);
        for error in result.errors {
            result.column.set_null(error.row as usize);
            errors.push(CellError {
                row: error.row as usize,
                class: FaultClass::GuestError,
                message: sanitize(&error.message, MAX_LOG_MESSAGE_CHARS),
            });
        }
        return (result.column, errors);
    }

    // Map each batch row to the original row it came from.
    let original = |batch_row: usize| live.map_or(batch_row, |live| live[batch_row]);
    let mut builder = ColumnBuilder::new(returns, rows);
    let mut next_row = 0;
    for segment in segments {
        match segment {
            Segment::Ok { start, mut result } => {
                result.errors.sort_by_key(|error| error.row);
                let mut row_errors = result.errors.into_iter().peekable();
                for batch_row in 0..result.column.len() {
                    let row = original(start + batch_row);
                    fill_nulls_until(&mut builder, &mut next_row, row);
                    match row_errors.next_if(|error| error.row as usize == batch_row) {
                        Some(error) => {
                            builder.push_null();
                            errors.push(CellError {
                                row,
                                class: FaultClass::GuestError,
                                message: sanitize(&error.message, MAX_LOG_MESSAGE_CHARS),
                            });
                        }
                        None => builder.push_from(&result.column, batch_row),
                    }
                    next_row = row + 1;
                }
            }
            Segment::Fault {
                start,
                rows: count,
                fault,
            } => {
                for batch_row in start..start + count {
                    let row = original(batch_row);
                    fill_nulls_until(&mut builder, &mut next_row, row);
                    builder.push_null();
                    errors.push(CellError {
                        row,
                        class: fault.class,
                        message: fault.message.clone(),
                    });
                    next_row = row + 1;
                }
            }
        }
    }
    fill_nulls_until(&mut builder, &mut next_row, rows);
    (builder.finish(), errors)
}

/// The largest L2 norm of a vector. pgvector computes distances in 32-bit
/// floats, and between vectors of at most this norm no distance, inner
/// product or squared norm overflows.
pub const MAX_VECTOR_NORM: f64 = 1e18;

/// Returns the norm of `vector` when it is over [`MAX_VECTOR_NORM`].
pub fn oversized_norm(vector: &[f32]) -> Option<f64> {
    let norm = vector
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum::<f64>()
        .sqrt();
    (norm > MAX_VECTOR_NORM).then_some(norm)
}

/// Makes each vector that contains NaN or an infinity, or whose norm is over
/// [`MAX_VECTOR_NORM`], a failed cell: pgvector stores only finite
/// elements, and no distance to such a vector has a meaning.
fn fail_non_finite_vectors(column: &mut Column, errors: &mut Vec<CellError>) {
    let types::Values::Vector(vectors) = &column.values else {
        return;
    };
    let dimension = vectors.dimension as usize;
    if dimension == 0 {
        return;
    }
    let mut failed = Vec::new();
    for (row, vector) in vectors.data.chunks_exact(dimension).enumerate() {
        if column.is_null(row) {
            continue;
        }
        if let Some((element, value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            failed.push(CellError {
                row,
                class: FaultClass::InvalidOutput,
                message: format!(
                    "the guest returned a vector with {value} at element {element}; vector \
                     elements must be finite numbers"
                ),
            });
        } else if let Some(norm) = oversized_norm(vector) {
            failed.push(CellError {
                row,
                class: FaultClass::InvalidOutput,
                message: format!(
                    "the guest returned a vector of norm {norm:e}, over the maximum of \
                     {MAX_VECTOR_NORM:e}, so distances to it overflow 32-bit floats"
                ),
            });
        }
    }
    if failed.is_empty() {
        return;
    }
    for error in &failed {
        column.set_null(error.row);
    }
    errors.extend(failed);
    errors.sort_by_key(|error| error.row);
}

/// Appends nulls until the builder reaches row `end`.
fn fill_nulls_until(builder: &mut ColumnBuilder, next_row: &mut usize, end: usize) {
    while *next_row < end {
        builder.push_null();
        *next_row += 1;
    }
}
