//! Warm instances: kept between calls for plugins with costly set-up.
//!
//! A warm instance belongs to one tenant and one plugin version, and is
//! never handed to another. It is dropped after any fault, after a number
//! of calls, or when it sits idle too long, and the least recently used one
//! makes room when the pool is full. Idle instances are checked against the
//! timeout whenever the pool is used, not by a timer of their own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::Plugin;
use super::state::StoreState;

/// The owner of a warm instance: only calls with the same key reuse it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WarmKey {
    pub tenant: String,
    pub plugin: String,
    pub sha256: String,
}

/// A live instance with its store.
pub(crate) struct WarmInstance {
    pub store: Store<StoreState>,
    pub bindings: Plugin,
    pub calls: u64,
    pub last_used: Instant,
}

/// The warm instances not in use at the moment.
pub(crate) struct WarmPool {
    max: usize,
    idle: Mutex<Vec<(WarmKey, WarmInstance)>>,
}

impl WarmPool {
    pub fn new(max: usize) -> Self {
        WarmPool {
            max,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Takes an idle instance for `key`, dropping any that have served
    /// `max_calls` or sat idle past `idle_timeout`.
    pub fn checkout(
        &self,
        key: &WarmKey,
        max_calls: u64,
        idle_timeout: Duration,
    ) -> Option<WarmInstance> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, instance)| {
            instance.calls < max_calls && instance.last_used.elapsed() < idle_timeout
        });
        let position = idle.iter().position(|(k, _)| k == key)?;
        Some(idle.swap_remove(position).1)
    }

    /// Returns an instance after a call that did not fault, dropping idle
    /// instances past `idle_timeout` on the way.
    pub fn checkin(&self, key: WarmKey, mut instance: WarmInstance, idle_timeout: Duration) {
        if self.max == 0 {
            return;
        }
        instance.last_used = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, idle)| idle.last_used.elapsed() < idle_timeout);
        if idle.len() >= self.max
            && let Some(oldest) = idle
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, instance))| instance.last_used)
                .map(|(index, _)| index)
        {
            idle.swap_remove(oldest);
        }
        idle.push((key, instance));
    }
}
