//! Set-based local steps: the sagas that reach one local step at the same moment run its work
//! together, whatever their tenants: one transaction of their tenant set
//! ([`longship_tenant::begin_set`]) that does the work of all of them ([`LocalAction::run_many`],
//! which keys each saga's rows by the saga's own tenant) and records each one's success (one
//! transition statement for all, each row fenced on its own claim), then commits once.
//!
//! As for remote steps (`batches.rs`), a few callers per step take whatever is queued when they
//! are free, so a lone saga goes at once (its work then runs through [`LocalAction::run`]). If the
//! group's work fails, a transition is not written (a claim was lost) or the commit fails, the
//! transaction is rolled back and every saga of the group runs the step on its own, as if it had
//! never been batched: its outcome is then exactly the single step's.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use longship_messaging::RelayWake;
use longship_tenant::TenantId;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::Progress;
use crate::error::SagaError;
use crate::step::{Action, BatchItem, SagaDefinition};
use crate::store::{Transition, statement_many};
use crate::versions::SagaData;

/// A saga's local step, with the progress it records when the step succeeds.
pub(crate) struct LocalCall<D> {
    pub item: BatchItem<D>,
    pub id: Uuid,
    pub claim: String,
    /// The saga's progress with the step's success applied (not yet recorded).
    pub progress: Progress,
}

/// The step succeeded and is committed: the data and progress as recorded.
pub(crate) type Done<D> = (D, Progress);

struct Pending<D> {
    call: LocalCall<D>,
    span: tracing::Span,
    /// `None`: not done; the saga runs the step on its own.
    done: oneshot::Sender<Option<Done<D>>>,
}

type Queue<D> = mpsc::UnboundedSender<Pending<D>>;

/// Where the callers of a local step write.
#[derive(Clone)]
pub(crate) struct Target {
    pub pool: PgPool,
    pub lease: Duration,
    pub relay: RelayWake,
}

/// The queues of the batched local steps of one engine (started on first use).
pub(crate) struct LocalBatches<D> {
    queues: Mutex<HashMap<(u32, usize), Queue<D>>>,
    callers: usize,
    max_batch: usize,
}

impl<D: SagaData> LocalBatches<D> {
    pub(crate) fn new(callers: usize, max_batch: usize) -> LocalBatches<D> {
        LocalBatches {
            queues: Mutex::new(HashMap::new()),
            callers: callers.max(1),
            max_batch: max_batch.max(1),
        }
    }

    /// Runs local step `step` of `definition` for one saga together with the other sagas at it
    /// now. `Some`: done and committed; `None`: the saga runs the step on its own.
    pub(crate) async fn run(
        &self,
        version: u32,
        definition: &Arc<dyn SagaDefinition<Data = D>>,
        step: usize,
        target: &Target,
        call: LocalCall<D>,
    ) -> Option<Done<D>> {
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            call,
            span: tracing::Span::current(),
            done,
        };
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues
                .entry((version, step))
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let rx = Arc::new(tokio::sync::Mutex::new(rx));
                    for _ in 0..self.callers {
                        tokio::spawn(run_caller(
                            Arc::clone(definition),
                            step,
                            target.clone(),
                            Arc::clone(&rx),
                            self.max_batch,
                        ));
                    }
                    tx
                })
                .clone()
        };
        // no caller left (shutting down): the saga runs it on its own
        queue.send(pending).ok()?;
        wait.await.ok().flatten()
    }
}

async fn run_caller<D: SagaData>(
    definition: Arc<dyn SagaDefinition<Data = D>>,
    step: usize,
    target: Target,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending<D>>>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        batch.retain(|p: &Pending<D>| !p.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let group = std::mem::replace(&mut batch, Vec::with_capacity(max_batch));
        run_group(&*definition, step, &target, group).await;
    }
}

/// The sagas at the step, of one tenant or several: their work, their transitions and one
/// commit; on any failure each saga is told to run the step on its own.
async fn run_group<D: SagaData>(
    definition: &dyn SagaDefinition<Data = D>,
    step: usize,
    target: &Target,
    group: Vec<Pending<D>>,
) {
    let Some(Action::Local(action)) = definition.steps().get(step).map(|s| &s.action) else {
        return;
    };
    let name = definition.steps()[step].name();
    metrics::histogram!("saga_step_batch_size", "step" => name).record(group.len() as f64);
    let span = if group.len() == 1 {
        group[0].span.clone()
    } else {
        tracing::info_span!(parent: &group[0].span, "saga.batch", step = name, size = group.len())
    };
    let (mut items, rest): (Vec<BatchItem<D>>, Vec<_>) = group
        .into_iter()
        .map(|p| {
            (
                p.call.item,
                (p.call.id, p.call.claim, p.call.progress, p.done),
            )
        })
        .unzip();
    let outcome = async {
        let (mut tx, worked) = if let [item] = items.as_mut_slice() {
            let mut tx = longship_tenant::begin(&target.pool, &item.ctx.tenant).await?;
            let worked = action.run(&item.ctx, &mut tx, &mut item.data).await;
            (tx, worked)
        } else {
            let tenants: BTreeSet<TenantId> = items.iter().map(|i| i.ctx.tenant.clone()).collect();
            let tenants: Vec<TenantId> = tenants.into_iter().collect();
            let mut tx = longship_tenant::begin_set(&target.pool, &tenants).await?;
            let worked = action.run_many(&mut items, &mut tx).await;
            (tx, worked)
        };
        if let Err(e) = worked {
            tracing::info!(error = %e, sagas = items.len(), "batched local step failed; each saga runs it on its own");
            return Ok(None);
        }
        let now = Utc::now();
        let mut recorded = Vec::with_capacity(rest.len());
        let mut transitions = Vec::with_capacity(rest.len());
        for ((id, claim, progress, _), item) in rest.iter().zip(&items) {
            let mut progress = progress.clone();
            transitions.push(Transition::of(*id, claim, &mut progress, &item.data, now)?);
            recorded.push(progress);
        }
        let refs: Vec<_> = transitions.iter().collect();
        let written = statement_many(&refs, target.lease)?.fetch_all(&mut *tx).await?;
        if written.len() != transitions.len() {
            // a claim was lost: roll everything back, each saga finds out on its own
            return Ok(None);
        }
        tx.commit().await?;
        target.relay.wake();
        Ok::<_, SagaError>(Some(recorded))
    }
    .instrument(span)
    .await;
    let recorded = match outcome {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "batched local step not recorded; each saga runs it on its own");
            None
        }
    };
    match recorded {
        Some(recorded) => {
            for ((item, (_, _, _, done)), progress) in items.into_iter().zip(rest).zip(recorded) {
                let _ = done.send(Some((item.data, progress)));
            }
        }
        None => {
            for (_, _, _, done) in rest {
                let _ = done.send(None);
            }
        }
    }
}
