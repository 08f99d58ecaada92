//! The load: closed loop (N clients, each sends its next order when the last is answered, or with
//! `--wait-terminal` when the last has finished: N sagas in flight) to find
//! the maximum throughput, and open loop (orders sent on a fixed schedule, latency measured from
//! the intended send time, so a slow server cannot hide its queueing by slowing the client down).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{Api, PostOutcome};
use crate::recorder::Recorder;
use crate::workload::Workload;

/// Most open-loop requests in flight; beyond it the generator waits (and its lateness shows as
/// latency, since latency counts from the intended time).
const MAX_IN_FLIGHT: usize = 20_000;

/// How long a closed-loop client that waits for terminal events waits for one before it goes on
/// (the order then counts as unfinished).
const TERMINAL_WAIT: Duration = Duration::from_secs(60);

/// Places one order; with `wait`, returns once its terminal event has arrived.
async fn place(
    api: &Api,
    workload: &Workload,
    recorder: &Recorder,
    phase: usize,
    sent: Instant,
    wait: bool,
) {
    let spec = workload.next_order(&mut rand::rng());
    match api.place_order(&spec.tenant, spec.body).await {
        PostOutcome::Accepted(id) => {
            let order = (spec.intent, spec.class);
            if let Some(terminal) = recorder.accepted(phase, id, order, sent, wait) {
                let _ = tokio::time::timeout(TERMINAL_WAIT, terminal).await;
            }
        }
        PostOutcome::Failed(kind) => recorder.failed(phase, &kind),
    }
}

/// The closed loop's clients: how many, and whether each waits for its order's terminal event
/// (a fixed number of sagas in flight) or only for the 202.
#[derive(Debug, Clone, Copy)]
pub struct Clients {
    /// Clients.
    pub count: usize,
    /// Each waits for its order's terminal event before placing the next.
    pub wait_terminal: bool,
}

/// Runs `clients` closed-loop clients for `duration`.
pub async fn closed_loop(
    api: &Api,
    workload: &Arc<Workload>,
    recorder: &Arc<Recorder>,
    name: &str,
    clients: Clients,
    duration: Duration,
) -> usize {
    let phase = recorder.begin_phase(name, Some(clients.count), None);
    if clients.wait_terminal {
        recorder.waits_for_terminal(phase);
    }
    let end = Instant::now() + duration;
    let progress = spawn_progress(Arc::clone(recorder), name.to_owned(), duration);
    let mut tasks = JoinSet::new();
    for _ in 0..clients.count {
        let (api, workload, recorder) = (api.clone(), Arc::clone(workload), Arc::clone(recorder));
        tasks.spawn(async move {
            while Instant::now() < end {
                let sent = Instant::now();
                place(
                    &api,
                    &workload,
                    &recorder,
                    phase,
                    sent,
                    clients.wait_terminal,
                )
                .await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    recorder.end_phase(phase);
    progress.abort();
    eprintln!();
    phase
}

/// Sends `rate` orders per second for `duration`, each at its intended time.
pub async fn open_loop(
    api: &Api,
    workload: &Arc<Workload>,
    recorder: &Arc<Recorder>,
    rate: f64,
    duration: Duration,
) -> usize {
    let name = format!("open@{rate:.0}");
    let phase = recorder.begin_phase(&name, None, Some(rate));
    let progress = spawn_progress(Arc::clone(recorder), name, duration);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let total = (duration.as_secs_f64() * rate).floor() as u64;
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut i: u64 = 0;
    while i < total {
        let intended = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended.into()).await;
        // send everything that is due (the timer wakes at most once per millisecond)
        let now = Instant::now();
        while i < total {
            let intended = start + interval.mul_f64(i as f64);
            if intended > now {
                break;
            }
            if now.saturating_duration_since(intended) > Duration::from_millis(1) {
                recorder.late_send(phase);
            }
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let (api, workload, recorder) =
                (api.clone(), Arc::clone(workload), Arc::clone(recorder));
            tasks.spawn(async move {
                let _permit = permit;
                place(&api, &workload, &recorder, phase, intended, false).await;
            });
            i += 1;
        }
        // reap finished tasks so the set does not grow with the run
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    recorder.end_phase(phase);
    progress.abort();
    eprintln!();
    phase
}

/// Waits until every order of `phase` has finished, at most `timeout`. Returns the stragglers.
pub async fn drain(recorder: &Recorder, phase: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let left = recorder.pending_of(phase);
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn_progress(
    recorder: Arc<Recorder>,
    name: String,
    duration: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Some((accepted, errors, completed, p99)) = recorder.last_second() {
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r  [{name} {:>3}/{}s] accepted {accepted:>5}/s  completed {completed:>5}/s  POST p99 {:>7.2} ms  in flight {:>5}  errors {errors:<5}",
                    started.elapsed().as_secs(),
                    duration.as_secs(),
                    p99 as f64 / 1000.0,
                    recorder.pending_total(),
                );
                let _ = err.flush();
            }
        }
    })
}
