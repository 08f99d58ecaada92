//! Set-based remote steps: the calls that sagas in flight make to one step at the same moment go
//! to the participant together, in one call of the step's [`RemoteAction::call_many`] (or
//! [`Compensation::compensate_many`]).
//!
//! The same shape as the group commit of transitions (`transitions.rs`): each (version, step,
//! action or compensation) has a queue and a few callers; a caller takes whatever is queued when
//! it is free (never waiting to fill a batch), so a lone saga's call goes at once, through the
//! single [`RemoteAction::call`] in the saga's own span, and under load the calls queued behind a
//! call in flight go together in the next one. Each saga still waits for its own answer, records
//! its own transition and commits it before its next call; a batch shares only the round trip and
//! the participant's statements. A saga that stops waiting (its step timeout, shutdown, an
//! operator's action) drops its answer; its next attempt repeats the call with the same
//! idempotency key, as after any lost answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::step::{Action, BatchItem, SagaDefinition, StepContext, StepError};

/// Which call of which step a queue is for: (version, step index, compensation).
type Key = (u32, usize, bool);

type Answer<D> = (D, Result<(), StepError>);

struct Pending<D> {
    item: BatchItem<D>,
    /// The span the saga waits in: a lone call runs in it, a batch is a child of its first item's.
    span: tracing::Span,
    done: oneshot::Sender<Answer<D>>,
}

type Queue<D> = mpsc::UnboundedSender<Pending<D>>;

/// A saga waiting for its answer: its span and where the answer goes.
type Waiter<D> = (tracing::Span, oneshot::Sender<Answer<D>>);

/// The queues of the batched steps of one engine (started on first use).
pub(crate) struct Batches<D> {
    queues: Mutex<HashMap<Key, Queue<D>>>,
    callers: usize,
    max_batch: usize,
    timeout: Duration,
}

impl<D: crate::versions::SagaData> Batches<D> {
    /// `callers` calls in flight per step at most, each carrying at most `max_batch` sagas and
    /// bounded by `timeout`.
    pub(crate) fn new(callers: usize, max_batch: usize, timeout: Duration) -> Batches<D> {
        Batches {
            queues: Mutex::new(HashMap::new()),
            callers: callers.max(1),
            max_batch: max_batch.max(1),
            timeout,
        }
    }

    /// Makes the call of step `step` of `definition` (its compensation when `compensation`) for
    /// one saga, together with whatever other sagas call the same step now. Answers the data as
    /// the call left it, or the call's failure.
    pub(crate) async fn call(
        &self,
        version: u32,
        definition: &Arc<dyn SagaDefinition<Data = D>>,
        step: usize,
        compensation: bool,
        item: BatchItem<D>,
    ) -> Result<D, StepError> {
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            item,
            span: tracing::Span::current(),
            done,
        };
        let queue = self.queue((version, step, compensation), definition);
        let wait = match queue.send(pending) {
            Ok(()) => wait,
            Err(mpsc::error::SendError(pending)) => {
                // no caller left (the runtime is shutting down): make the call here
                dispatch(
                    &**definition,
                    step,
                    compensation,
                    vec![pending],
                    self.timeout,
                )
                .await;
                wait
            }
        };
        match wait.await {
            Ok((data, Ok(()))) => Ok(data),
            Ok((_, Err(e))) => Err(e),
            // the caller stopped before answering: the outcome is unknown
            Err(_) => Err(StepError::Transient(
                "the batched call stopped before answering".into(),
            )),
        }
    }

    fn queue(&self, key: Key, definition: &Arc<dyn SagaDefinition<Data = D>>) -> Queue<D> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(key)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                for _ in 0..self.callers {
                    tokio::spawn(run_caller(
                        Arc::clone(definition),
                        key,
                        Arc::clone(&rx),
                        self.max_batch,
                        self.timeout,
                    ));
                }
                tx
            })
            .clone()
    }
}

/// One caller of a step: takes everything queued (up to `max_batch`) and calls it together; exits
/// when the engine is gone.
async fn run_caller<D: crate::versions::SagaData>(
    definition: Arc<dyn SagaDefinition<Data = D>>,
    (_, step, compensation): Key,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending<D>>>>,
    max_batch: usize,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        // sagas that stopped waiting need no call
        batch.retain(|p| !p.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        dispatch(
            &*definition,
            step,
            compensation,
            std::mem::take(&mut batch),
            timeout,
        )
        .await;
    }
}

/// Calls `batch` (one saga: the single call in its span; several: one batched call) and answers
/// each saga.
async fn dispatch<D: crate::versions::SagaData>(
    definition: &dyn SagaDefinition<Data = D>,
    step: usize,
    compensation: bool,
    batch: Vec<Pending<D>>,
    timeout: Duration,
) {
    let Some(def) = definition.steps().get(step) else {
        return;
    };
    let name = def.name();
    metrics::histogram!("saga_step_batch_size", "step" => name).record(batch.len() as f64);
    if batch.len() == 1 {
        let Some(Pending { item, span, done }) = batch.into_iter().next() else {
            return;
        };
        let BatchItem { ctx, mut data } = item;
        let result = match tokio::time::timeout(timeout, single(def, compensation, &ctx, &mut data))
            .instrument(span)
            .await
        {
            Ok(r) => r,
            Err(_) => Err(timed_out(timeout)),
        };
        let _ = done.send((data, result));
        return;
    }
    let span = tracing::info_span!(parent: &batch[0].span, "saga.batch", step = name, compensation, size = batch.len());
    let (items, answers): (Vec<BatchItem<D>>, Vec<Waiter<D>>) = batch
        .into_iter()
        .map(|p| (p.item, (p.span, p.done)))
        .unzip();
    let n = items.len();
    let retry = items.clone();
    let outcome = tokio::time::timeout(timeout, many(def, compensation, items))
        .instrument(span)
        .await;
    let results = match outcome {
        Ok(Ok(results)) if results.len() == n => results,
        failed => {
            let why = match failed {
                Ok(Ok(results)) => format!("answered {} results for {n} sagas", results.len()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {timeout:?}"),
            };
            metrics::counter!("saga_step_batch_fallbacks_total", "step" => name).increment(1);
            tracing::warn!(step = name, sagas = n, error = %why, "a batched call failed as a whole; calling for each saga on its own");
            // each saga's own call, with its own timeout, in its own span
            let mut results = Vec::with_capacity(n);
            for (BatchItem { ctx, mut data }, (span, _)) in retry.into_iter().zip(&answers) {
                let result =
                    match tokio::time::timeout(timeout, single(def, compensation, &ctx, &mut data))
                        .instrument(span.clone())
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(timed_out(timeout)),
                    };
                results.push((data, result));
            }
            results
        }
    };
    for ((_, done), answer) in answers.into_iter().zip(results) {
        let _ = done.send(answer);
    }
}

fn timed_out(timeout: Duration) -> StepError {
    StepError::Transient(format!("batched call timed out after {timeout:?}"))
}

async fn single<D: crate::versions::SagaData>(
    def: &crate::step::Step<D>,
    compensation: bool,
    ctx: &StepContext,
    data: &mut D,
) -> Result<(), StepError> {
    if compensation {
        match &def.compensation {
            Some(c) => c.compensate(ctx, data).await,
            None => Err(StepError::Transient("the step has no compensation".into())),
        }
    } else {
        match &def.action {
            Action::Remote(a) => a.call(ctx, data).await,
            Action::Local(_) => Err(StepError::Transient("a local step is not called".into())),
        }
    }
}

async fn many<D: crate::versions::SagaData>(
    def: &crate::step::Step<D>,
    compensation: bool,
    items: Vec<BatchItem<D>>,
) -> Result<Vec<Answer<D>>, StepError> {
    if compensation {
        let Some(c) = &def.compensation else {
            return Err(StepError::Transient("the step has no compensation".into()));
        };
        let results = c.compensate_many(&items).await?;
        Ok(items.into_iter().map(|i| i.data).zip(results).collect())
    } else {
        match &def.action {
            Action::Remote(a) => a.call_many(items).await,
            Action::Local(_) => Err(StepError::Transient("a local step is not called".into())),
        }
    }
}
