//! What the run observed: per phase and per second, POST latencies (HdrHistogram), accepted and
//! failed requests by kind, and saga completions matched to the POST that started them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use uuid::Uuid;

use tokio::sync::oneshot;

use crate::workload::{Intent, TenantClass};

/// Largest latency recorded (longer ones are clamped), in microseconds.
const MAX_US: u64 = 120_000_000;

/// How an order ended, as its event said.
#[derive(Debug, Clone)]
pub struct Terminal {
    /// CONFIRMED or CANCELLED.
    pub status: &'static str,
    /// The cancellation reason.
    pub reason: Option<String>,
}

/// One phase's counters.
pub struct PhaseStats {
    /// `warmup`, `closed`, `open@500`, ...
    pub name: String,
    /// Closed loop: clients; open loop: none.
    pub clients: Option<usize>,
    /// Open loop: the intended rate.
    pub rate: Option<f64>,
    /// When load started.
    pub started: Instant,
    /// When load stopped.
    pub ended: Option<Instant>,
    /// POST latency (µs): from send (closed) or from the intended send time (open).
    pub post: Histogram<u64>,
    /// Accept-to-terminal latency (µs) of this phase's orders.
    pub e2e: Histogram<u64>,
    /// The same, of the heavy tenant's orders and of the others' (a skewed load only).
    pub e2e_heavy: Histogram<u64>,
    /// See `e2e_heavy`.
    pub e2e_others: Histogram<u64>,
    /// Closed loop: each client waits for its order's terminal event before the next.
    pub waits_for_terminal: bool,
    /// 202 answers.
    pub accepted: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Terminal events observed while this phase was generating load.
    pub completed_in_window: u64,
    /// This phase's orders that reached a terminal state (whenever).
    pub finished: u64,
    /// Outcomes of this phase's orders: `CONFIRMED`, `CANCELLED:<reason>`.
    pub outcomes: BTreeMap<String, u64>,
    /// Requests sent later than intended by more than 1 ms (open loop: the generator fell behind).
    pub late_sends: u64,
}

/// One second of the run.
#[derive(Clone)]
pub struct Second {
    /// The phase generating load in this second.
    pub phase: Option<usize>,
    /// 202 answers.
    pub accepted: u64,
    /// Failed requests.
    pub errors: u64,
    /// Terminal events observed.
    pub completed: u64,
    /// POST latency (µs).
    pub post: Histogram<u64>,
    /// Accept-to-terminal latency (µs) of events observed in this second.
    pub e2e: Histogram<u64>,
}

struct Pending {
    accepted_at: Instant,
    phase: usize,
    intent: Intent,
    class: TenantClass,
    /// A client waiting for the terminal event.
    waiter: Option<oneshot::Sender<()>>,
}

struct Inner {
    phases: Vec<PhaseStats>,
    current: Option<usize>,
    seconds: Vec<Second>,
    pending: HashMap<Uuid, Pending>,
    early: HashMap<Uuid, (Instant, Terminal)>,
    unexpected: BTreeMap<String, u64>,
    duplicate_events: u64,
}

/// Shared by the clients and the event subscriber.
pub struct Recorder {
    /// Time zero of the timeline.
    pub start: Instant,
    inner: Mutex<Inner>,
}

#[allow(clippy::expect_used)] // reason: constant bounds that hdrhistogram always accepts
fn hist(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

impl Recorder {
    /// An empty recorder whose timeline starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                phases: Vec::new(),
                current: None,
                seconds: Vec::new(),
                pending: HashMap::new(),
                early: HashMap::new(),
                unexpected: BTreeMap::new(),
                duplicate_events: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a poisoned lock only means a client task panicked; the counters are still usable
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn second<'a>(&self, inner: &'a mut Inner, at: Instant) -> &'a mut Second {
        let i = at.saturating_duration_since(self.start).as_secs() as usize;
        while inner.seconds.len() <= i {
            let phase = inner.current;
            inner.seconds.push(Second {
                phase,
                accepted: 0,
                errors: 0,
                completed: 0,
                post: hist(2),
                e2e: hist(2),
            });
        }
        &mut inner.seconds[i]
    }

    /// Starts a phase; returns its index.
    pub fn begin_phase(&self, name: &str, clients: Option<usize>, rate: Option<f64>) -> usize {
        let mut inner = self.lock();
        inner.phases.push(PhaseStats {
            name: name.to_owned(),
            clients,
            rate,
            started: Instant::now(),
            ended: None,
            post: hist(3),
            e2e: hist(3),
            e2e_heavy: hist(3),
            e2e_others: hist(3),
            waits_for_terminal: false,
            accepted: 0,
            errors: BTreeMap::new(),
            completed_in_window: 0,
            finished: 0,
            outcomes: BTreeMap::new(),
            late_sends: 0,
        });
        let idx = inner.phases.len() - 1;
        inner.current = Some(idx);
        idx
    }

    /// Stops a phase's load.
    pub fn end_phase(&self, phase: usize) {
        let mut inner = self.lock();
        if let Some(p) = inner.phases.get_mut(phase) {
            p.ended = Some(Instant::now());
        }
        if inner.current == Some(phase) {
            inner.current = None;
        }
    }

    /// A 202 for order `id` (of a tenant on `class`'s side), sent (or meant to be sent) at
    /// `sent`. With `wait`, the receiver resolves once its terminal event has arrived.
    pub fn accepted(
        &self,
        phase: usize,
        id: Uuid,
        order: (Intent, TenantClass),
        sent: Instant,
        wait: bool,
    ) -> Option<oneshot::Receiver<()>> {
        let now = Instant::now();
        let latency = micros(now.saturating_duration_since(sent));
        let (waiter, receiver) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let mut inner = self.lock();
        if let Some(p) = inner.phases.get_mut(phase) {
            p.accepted += 1;
            let _ = p.post.record(latency);
        }
        let s = self.second(&mut inner, now);
        s.accepted += 1;
        let _ = s.post.record(latency);
        let pending = Pending {
            accepted_at: now,
            phase,
            intent: order.0,
            class: order.1,
            waiter,
        };
        if let Some((at, terminal)) = inner.early.remove(&id) {
            self.finish(&mut inner, pending, at.max(now), &terminal);
        } else {
            inner.pending.insert(id, pending);
        }
        receiver
    }

    /// Marks `phase` as a closed loop whose clients wait for each order's terminal event.
    pub fn waits_for_terminal(&self, phase: usize) {
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.waits_for_terminal = true;
        }
    }

    /// A failed request.
    pub fn failed(&self, phase: usize, kind: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(p) = inner.phases.get_mut(phase) {
            *p.errors.entry(kind.to_owned()).or_default() += 1;
        }
        self.second(&mut inner, now).errors += 1;
    }

    /// A request the open loop sent later than intended.
    pub fn late_send(&self, phase: usize) {
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.late_sends += 1;
        }
    }

    /// A terminal event for order `id` (possibly before its POST answer was read).
    pub fn terminal(&self, id: Uuid, terminal: Terminal) {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.pending.remove(&id) {
            Some(pending) => self.finish(&mut inner, pending, now, &terminal),
            None => {
                if let std::collections::hash_map::Entry::Vacant(e) = inner.early.entry(id) {
                    e.insert((now, terminal));
                } else {
                    inner.duplicate_events += 1;
                }
            }
        }
    }

    fn finish(&self, inner: &mut Inner, pending: Pending, at: Instant, terminal: &Terminal) {
        let latency = micros(at.saturating_duration_since(pending.accepted_at));
        let outcome = match &terminal.reason {
            Some(r) => format!("{}:{r}", terminal.status),
            None => terminal.status.to_owned(),
        };
        let (status, reason) = pending.intent.expected();
        let expected = status == terminal.status && reason == terminal.reason.as_deref();
        if !expected {
            *inner
                .unexpected
                .entry(format!("{:?} ended {outcome}", pending.intent))
                .or_default() += 1;
        }
        let current = inner.current;
        if let Some(p) = inner.phases.get_mut(pending.phase) {
            p.finished += 1;
            let _ = p.e2e.record(latency);
            let _ = match pending.class {
                TenantClass::Even => Ok(()),
                TenantClass::Heavy => p.e2e_heavy.record(latency),
                TenantClass::Other => p.e2e_others.record(latency),
            };
            *p.outcomes.entry(outcome).or_default() += 1;
        }
        if let Some(c) = current.and_then(|c| inner.phases.get_mut(c)) {
            c.completed_in_window += 1;
        }
        let s = self.second(inner, at);
        s.completed += 1;
        let _ = s.e2e.record(latency);
        if let Some(waiter) = pending.waiter {
            let _ = waiter.send(());
        }
    }

    /// Orders of `phase` still waiting for their terminal event.
    pub fn pending_of(&self, phase: usize) -> usize {
        self.lock()
            .pending
            .values()
            .filter(|p| p.phase == phase)
            .count()
    }

    /// Orders of any phase still waiting.
    pub fn pending_total(&self) -> usize {
        self.lock().pending.len()
    }

    /// Reads the state under the lock.
    pub fn with<T>(&self, f: impl FnOnce(&[PhaseStats], &[Second]) -> T) -> T {
        let inner = self.lock();
        f(&inner.phases, &inner.seconds)
    }

    /// Orders that ended otherwise than meant, by description.
    pub fn unexpected(&self) -> BTreeMap<String, u64> {
        self.lock().unexpected.clone()
    }

    /// Terminal events seen twice, and events for orders whose POST answer never came.
    pub fn stray_events(&self) -> (u64, usize) {
        let inner = self.lock();
        (inner.duplicate_events, inner.early.len())
    }

    /// Latest progress: (accepted, errors, completed, post p99 µs) of the last full second.
    pub fn last_second(&self) -> Option<(u64, u64, u64, u64)> {
        let inner = self.lock();
        let now = self.start.elapsed().as_secs() as usize;
        let s = inner.seconds.get(now.checked_sub(1)?)?;
        Some((
            s.accepted,
            s.errors,
            s.completed,
            s.post.value_at_quantile(0.99),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_before_the_answer_still_completes_the_order() {
        let r = Recorder::new();
        let phase = r.begin_phase("closed", Some(1), None);
        let (early, normal, wrong) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        r.terminal(
            early,
            Terminal {
                status: "CONFIRMED",
                reason: None,
            },
        );
        let even = TenantClass::Even;
        let waited = r.accepted(phase, early, (Intent::Confirm, even), Instant::now(), true);
        let mut waited = waited.expect("a waiter");
        assert!(
            waited.try_recv().is_ok(),
            "an order whose event came first is finished at once"
        );
        r.accepted(
            phase,
            normal,
            (Intent::Decline, even),
            Instant::now(),
            false,
        );
        let waiting = r.accepted(phase, wrong, (Intent::Confirm, even), Instant::now(), true);
        let mut waiting = waiting.expect("a waiter");
        assert!(waiting.try_recv().is_err(), "not finished yet");
        assert_eq!(r.pending_of(phase), 2);
        r.terminal(
            normal,
            Terminal {
                status: "CANCELLED",
                reason: Some("payment_declined".into()),
            },
        );
        r.terminal(
            wrong,
            Terminal {
                status: "CANCELLED",
                reason: Some("timeout".into()),
            },
        );
        r.terminal(
            wrong,
            Terminal {
                status: "CANCELLED",
                reason: Some("timeout".into()),
            },
        );
        assert!(
            waiting.try_recv().is_ok(),
            "the terminal event wakes its client"
        );
        r.end_phase(phase);
        assert_eq!(r.pending_total(), 0);
        r.with(|p, _| {
            assert_eq!(p[0].accepted, 3);
            assert_eq!(p[0].finished, 3);
            assert_eq!(p[0].outcomes.get("CONFIRMED"), Some(&1));
            assert_eq!(p[0].outcomes.get("CANCELLED:payment_declined"), Some(&1));
            assert!(p[0].e2e_heavy.is_empty() && p[0].e2e_others.is_empty());
        });
        assert_eq!(r.unexpected().values().sum::<u64>(), 1);
        // the repeated event of an order already finished is kept apart, never counted twice
        assert_eq!(r.stray_events(), (0, 1));
    }

    #[test]
    fn a_skewed_load_records_each_side_apart() {
        let r = Recorder::new();
        let phase = r.begin_phase("closed", Some(1), None);
        let done = Terminal {
            status: "CONFIRMED",
            reason: None,
        };
        for class in [TenantClass::Heavy, TenantClass::Heavy, TenantClass::Other] {
            let id = Uuid::now_v7();
            r.accepted(phase, id, (Intent::Confirm, class), Instant::now(), false);
            r.terminal(id, done.clone());
        }
        r.with(|p, _| {
            assert_eq!((p[0].e2e_heavy.len(), p[0].e2e_others.len()), (2, 1));
            assert_eq!(p[0].e2e.len(), 3);
        });
    }
}
