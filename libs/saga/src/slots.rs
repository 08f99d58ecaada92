//! The worker slots of one engine (`concurrency` sagas executing at once), shared fairly between
//! tenants.
//!
//! A tenant alone may take every slot (no slot idles while work waits). Once another tenant is
//! active (holds a slot or waits for one), a tenant holding its share (`tenant_cap` slots) takes
//! no more, and every slot given back goes to the waiting tenants in turn (round-robin), not to
//! whoever asked first: a tenant that floods the platform queues behind its own sagas, not in
//! front of everyone else's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use longship_tenant::TenantId;
use tokio::sync::oneshot;

/// The slots of one engine.
#[derive(Debug)]
pub(crate) struct Slots {
    cap: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    held: HashMap<TenantId, usize>,
    waiting: HashMap<TenantId, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with waiters, in the order they are served.
    turn: VecDeque<TenantId>,
    closed: bool,
}

/// One slot, held by one saga's execution; given back (to the next tenant in turn) when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    tenant: TenantId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.give_back(&self.tenant);
    }
}

/// Waits for a slot; if dropped after one was handed over but before it was taken (the waiting
/// future cancelled), gives it back.
struct Waiter {
    slots: Arc<Slots>,
    tenant: TenantId,
    receiver: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take()
            && receiver.try_recv().is_ok()
        {
            self.slots.give_back(&self.tenant);
        }
    }
}

impl Slots {
    /// `total` slots; a tenant's share once others are active: `share` of them (at least one).
    pub(crate) fn new(total: usize, share: f64) -> Arc<Slots> {
        let total = total.max(1);
        let cap = ((total as f64 * share.clamp(0.0, 1.0)).ceil() as usize).clamp(1, total);
        Arc::new(Slots {
            cap,
            state: Mutex::new(State {
                free: total,
                held: HashMap::new(),
                waiting: HashMap::new(),
                turn: VecDeque::new(),
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Slots free right now.
    pub(crate) fn free(&self) -> usize {
        self.lock().free
    }

    /// A slot for `tenant`, waiting for its turn; `None` once the engine shuts down.
    pub(crate) async fn acquire(self: &Arc<Self>, tenant: &TenantId) -> Option<Slot> {
        let receiver = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            if state.grantable(tenant, self.cap) {
                state.take(tenant);
                return Some(self.slot(tenant));
            }
            let (sender, receiver) = oneshot::channel();
            state
                .waiting
                .entry(tenant.clone())
                .or_default()
                .push_back(sender);
            if !state.turn.contains(tenant) {
                state.turn.push_back(tenant.clone());
            }
            receiver
        };
        let mut waiter = Waiter {
            slots: Arc::clone(self),
            tenant: tenant.clone(),
            receiver: Some(receiver),
        };
        let granted = match waiter.receiver.as_mut() {
            Some(receiver) => receiver.await.is_ok(),
            None => false,
        };
        // taken: nothing for the waiter's drop to give back
        waiter.receiver = None;
        granted.then(|| self.slot(tenant))
    }

    /// A slot for `tenant` if one is free for it now (claims of due sagas, which must not hold
    /// their claim while they wait).
    pub(crate) fn try_acquire(self: &Arc<Self>, tenant: &TenantId) -> Option<Slot> {
        let mut state = self.lock();
        if state.closed || !state.grantable(tenant, self.cap) {
            return None;
        }
        state.take(tenant);
        Some(self.slot(tenant))
    }

    /// No more slots are handed out; waiters get `None`.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.waiting.clear();
        state.turn.clear();
    }

    fn slot(self: &Arc<Self>, tenant: &TenantId) -> Slot {
        Slot {
            slots: Arc::clone(self),
            tenant: tenant.clone(),
        }
    }

    fn give_back(&self, tenant: &TenantId) {
        let mut state = self.lock();
        if let Some(n) = state.held.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                state.held.remove(tenant);
            }
        }
        state.free += 1;
        state.hand_over(self.cap);
    }
}

impl State {
    /// Whether `tenant` may take a free slot now: one is free, nobody it would overtake is
    /// waiting for it, and the tenant is within its share or alone.
    fn grantable(&self, tenant: &TenantId, cap: usize) -> bool {
        if self.free == 0 {
            return false;
        }
        let others_waiting = self
            .turn
            .iter()
            .any(|t| t != tenant && self.may_take(t, cap));
        if others_waiting {
            return false;
        }
        self.within_share(tenant, cap)
    }

    /// Within its share, or the only active tenant.
    fn within_share(&self, tenant: &TenantId, cap: usize) -> bool {
        let held = self.held.get(tenant).copied().unwrap_or(0);
        let others_active =
            self.held.keys().any(|t| t != tenant) || self.turn.iter().any(|t| t != tenant);
        held < cap || !others_active
    }

    /// A waiting tenant that could be served.
    fn may_take(&self, tenant: &TenantId, cap: usize) -> bool {
        self.waiting.get(tenant).is_some_and(|w| !w.is_empty()) && self.within_share(tenant, cap)
    }

    fn take(&mut self, tenant: &TenantId) {
        self.free -= 1;
        *self.held.entry(tenant.clone()).or_default() += 1;
    }

    /// Gives free slots to waiting tenants in turn, one slot per tenant per round.
    fn hand_over(&mut self, cap: usize) {
        let mut skipped = 0;
        while self.free > 0 && skipped < self.turn.len() {
            let Some(tenant) = self.turn.pop_front() else {
                break;
            };
            if !self.within_share(&tenant, cap) {
                self.turn.push_back(tenant);
                skipped += 1;
                continue;
            }
            let mut granted = false;
            while let Some(sender) = self.waiting.get_mut(&tenant).and_then(VecDeque::pop_front) {
                if sender.send(()).is_ok() {
                    granted = true;
                    break;
                }
                // the waiter is gone: try its tenant's next one
            }
            if granted {
                self.take(&tenant);
                skipped = 0;
            }
            if self.waiting.get(&tenant).is_some_and(|w| !w.is_empty()) {
                self.turn.push_back(tenant);
            } else {
                self.waiting.remove(&tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant")
    }

    #[tokio::test]
    async fn a_lone_tenant_takes_every_slot() {
        let slots = Slots::new(4, 0.5);
        let held: Vec<Slot> = (0..4)
            .map(|_| slots.try_acquire(&t("a")).expect("a slot"))
            .collect();
        assert_eq!(slots.free(), 0);
        assert!(slots.try_acquire(&t("a")).is_none());
        drop(held);
        assert_eq!(slots.free(), 4);
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_waiting_tenant_not_to_the_flooding_one() {
        let slots = Slots::new(2, 0.5);
        let a1 = slots.try_acquire(&t("a")).expect("a1");
        let a2 = slots.try_acquire(&t("a")).expect("a2");
        // a queues three more, then b queues one
        let mut a_waiting = Vec::new();
        for _ in 0..3 {
            let slots = Arc::clone(&slots);
            a_waiting.push(tokio::spawn(async move { slots.acquire(&t("a")).await }));
        }
        tokio::task::yield_now().await;
        let b = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(&t("b")).await })
        };
        tokio::task::yield_now().await;
        drop(a1);
        let b_slot = tokio::time::timeout(std::time::Duration::from_secs(1), b)
            .await
            .expect("b served at the first release")
            .expect("join")
            .expect("slot");
        // a now holds its share (1 of 2) while b is active: the next release goes to a's queue
        assert!(!a_waiting.iter().any(|h| h.is_finished()));
        drop(a2);
        tokio::task::yield_now().await;
        drop(b_slot);
        let mut served = 0;
        for h in a_waiting {
            if let Ok(Ok(Some(slot))) =
                tokio::time::timeout(std::time::Duration::from_millis(200), h).await
            {
                served += 1;
                drop(slot);
            }
        }
        assert_eq!(served, 3, "a's queue drains once b is done");
        assert_eq!(slots.free(), 2);
    }

    #[tokio::test]
    async fn a_tenant_at_its_share_waits_while_another_is_active() {
        let slots = Slots::new(4, 0.5);
        let _b = slots.try_acquire(&t("b")).expect("b");
        let _a1 = slots.try_acquire(&t("a")).expect("a1");
        let _a2 = slots.try_acquire(&t("a")).expect("a2");
        assert!(
            slots.try_acquire(&t("a")).is_none(),
            "a holds its share (2 of 4) while b is active"
        );
        assert!(slots.try_acquire(&t("b")).is_some());
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_lose_its_slot() {
        let slots = Slots::new(1, 1.0);
        let held = slots.try_acquire(&t("a")).expect("a");
        let waiting = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(&t("b")).await })
        };
        tokio::task::yield_now().await;
        waiting.abort();
        let _ = waiting.await;
        drop(held);
        assert_eq!(slots.free(), 1);
        assert!(slots.try_acquire(&t("c")).is_some());
    }

    #[tokio::test]
    async fn closing_wakes_every_waiter_with_none() {
        let slots = Slots::new(1, 1.0);
        let _held = slots.try_acquire(&t("a")).expect("a");
        let waiting = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(&t("b")).await })
        };
        tokio::task::yield_now().await;
        slots.close();
        assert!(waiting.await.expect("join").is_none());
    }
}
