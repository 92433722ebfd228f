//! Instance slots, handed out fairly between tenants.
//!
//! The pooling allocator has a fixed number of instance slots, and a call
//! waits here for one instead of failing when all are busy. When a slot
//! frees, it goes to the tenant that holds the fewest slots among the
//! tenants with a waiting call, and within a tenant to its oldest call. A
//! tenant that keeps many calls in flight therefore cannot make another
//! tenant's call wait for more than one of its calls to finish. A tenant
//! with a concurrent-call quota gets no slot while it holds that many.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A counting semaphore over instance slots with one queue a tenant.
pub(crate) struct Slots {
    state: Mutex<SlotState>,
    available: Condvar,
}

struct SlotState {
    free: usize,
    next_ticket: u64,
    tenants: HashMap<String, TenantQueue>,
}

/// One tenant's slots in use and its waiting calls, oldest first.
#[derive(Default)]
struct TenantQueue {
    held: usize,
    waiting: VecDeque<u64>,
    /// The maximum number of slots the tenant may hold, from its latest
    /// call's quota.
    max_held: Option<usize>,
}

impl SlotState {
    /// Returns the ticket that the next free slot goes to: the oldest
    /// waiting call of the tenant that holds the fewest slots, among the
    /// tenants under their concurrent-call quota. Ties go to the older call.
    fn next_in_line(&self) -> Option<u64> {
        self.tenants
            .values()
            .filter(|queue| queue.max_held.is_none_or(|max| queue.held < max))
            .filter_map(|queue| queue.waiting.front().map(|&ticket| (queue.held, ticket)))
            .min()
            .map(|(_, ticket)| ticket)
    }
}

impl Slots {
    pub(crate) fn new(count: usize) -> Self {
        Slots {
            state: Mutex::new(SlotState {
                free: count,
                next_ticket: 0,
                tenants: HashMap::new(),
            }),
            available: Condvar::new(),
        }
    }

    /// Waits for a slot for a call of `tenant`, which may hold at most
    /// `max_held` slots at once. Returns the slot with the time spent
    /// waiting.
    pub(crate) fn acquire(
        &self,
        tenant: &str,
        max_held: Option<usize>,
    ) -> (SlotGuard<'_>, Duration) {
        let started = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let queue = state.tenants.entry(tenant.to_owned()).or_default();
        queue.waiting.push_back(ticket);
        queue.max_held = max_held.map(|max| max.max(1));
        let must_wait = state.free == 0 || state.next_in_line() != Some(ticket);
        let _queued = must_wait.then(crate::telemetry::metrics::QueuedCall::enter);
        while state.free == 0 || state.next_in_line() != Some(ticket) {
            state = self
                .available
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.free -= 1;
        let queue = state
            .tenants
            .get_mut(tenant)
            .expect("a waiting call's tenant has a queue");
        queue.waiting.pop_front();
        queue.held += 1;
        // Another waiter may be next in line for a second free slot.
        if state.free > 0 {
            self.available.notify_all();
        }
        let guard = SlotGuard {
            slots: self,
            tenant: tenant.to_owned(),
        };
        (guard, started.elapsed())
    }

    /// Returns the calls waiting for a slot.
    pub(crate) fn waiting(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .tenants
            .values()
            .map(|queue| queue.waiting.len())
            .sum()
    }
}

/// A held instance slot, released on drop.
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
    tenant: String,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        state.free += 1;
        if let Some(queue) = state.tenants.get_mut(&self.tenant) {
            queue.held -= 1;
            if queue.held == 0 && queue.waiting.is_empty() {
                state.tenants.remove(&self.tenant);
            }
        }
        // Every waiter checks whether it is next in line, since the slot
        // goes by tenant and not by arrival.
        self.slots.available.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    /// Waits until `slots` has `count` calls waiting.
    fn wait_for_waiters(slots: &Slots, count: usize) {
        while slots.waiting() < count {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn slot_goes_to_tenant_holding_fewest() {
        let slots = Arc::new(Slots::new(2));
        let (first, _) = slots.acquire("a", None);
        let (second, _) = slots.acquire("a", None);
        let (order_tx, order_rx) = mpsc::channel();
        let mut threads = Vec::new();
        // Three more calls of `a` queue first, then one of `b`.
        for tenant in ["a", "a", "a", "b"] {
            let shared = slots.clone();
            let order_tx = order_tx.clone();
            let queued = slots.waiting();
            threads.push(std::thread::spawn(move || {
                let (guard, _) = shared.acquire(tenant, None);
                order_tx.send(tenant).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                drop(guard);
            }));
            wait_for_waiters(&slots, queued + 1);
        }
        drop(first);
        let got = order_rx.recv().unwrap();
        assert_eq!(
            got, "b",
            "the freed slot went to `{got}`, not to the tenant holding none"
        );
        drop(second);
        for thread in threads {
            thread.join().unwrap();
        }
        let rest: Vec<_> = order_rx.try_iter().collect();
        assert_eq!(rest, ["a", "a", "a"]);
    }

    #[test]
    fn tenant_at_quota_waits_while_slots_free() {
        let slots = Arc::new(Slots::new(4));
        let (held, _) = slots.acquire("a", Some(1));
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                let (_guard, _) = slots.acquire("a", Some(1));
                done_tx.send(()).unwrap();
            })
        };
        wait_for_waiters(&slots, 1);
        // Another tenant is not held up by `a`'s quota.
        let (other, _) = slots.acquire("b", None);
        drop(other);
        assert!(
            done_rx.try_recv().is_err(),
            "a second call of `a` ran beside the first under a quota of 1"
        );
        drop(held);
        done_rx.recv().unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn released_tenants_leave_no_queue() {
        let slots = Slots::new(1);
        drop(slots.acquire("a", None));
        let state = slots.state.lock().unwrap();
        assert!(state.tenants.is_empty());
        assert_eq!(state.free, 1);
    }
}
