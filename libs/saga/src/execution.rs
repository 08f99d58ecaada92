//! Executing one saga: ask [`Progress`] for the next move, make the call it asks for, record the
//! outcome (committed before the next call), until the saga is terminal, the process shuts down,
//! or an operator's action takes the saga over.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tracing::Instrument;

use crate::domain::{Next, backoff};
use crate::engine::SagaEngine;
use crate::error::SagaError;
use crate::local_batches::{LocalCall, Target as LocalTarget};
use crate::running::Execution;
use crate::step::{Action, BatchItem, SagaInfo, StepContext, StepError};
use crate::store::{self, Transition};
use crate::versions::{SagaData, Version};

enum Flow {
    Continue,
    Stop,
}

impl<D: SagaData> SagaEngine<D> {
    pub(crate) async fn execute(&self, mut exec: Execution<D>, resumed: bool) {
        let span = tracing::info_span!(
            "saga.run",
            saga_id = %exec.id,
            saga_type = self.inner.versions.saga_type(),
            saga_version = exec.version,
            tenant_id = %exec.tenant,
            order_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            resumed,
        );
        if let Some(tp) = &exec.traceparent {
            longship_telemetry::propagation::set_parent(
                &span,
                longship_telemetry::propagation::context_from_traceparent(tp),
            );
        }
        longship_telemetry::record_trace_id(&span);
        let interrupted = self.register(exec.id);
        async {
            let Some(version) = self.inner.versions.get(exec.version) else {
                // claims filter on the versions this engine knows; a launch always starts a known one
                tracing::error!("no definition for this saga's version; releasing it");
                self.release(&exec).await;
                return;
            };
            if resumed {
                exec.progress.begin_resumed_attempt();
                if let Err(e) = self.persist(None, &mut exec, Utc::now()).await {
                    tracing::warn!(error = %e, "could not record the resumed attempt");
                    return;
                }
            }
            loop {
                if self.inner.shutdown.is_cancelled() {
                    self.release(&exec).await;
                    return;
                }
                let outcome = tokio::select! {
                    outcome = self.advance(version, &mut exec) => outcome,
                    // the claim was taken away by an operator's action: another claim resumes it
                    () = interrupted.cancelled() => {
                        tracing::info!("saga taken over by an operator's action");
                        return;
                    }
                    // shutting down: the call in flight is dropped (its outcome is unknown, as
                    // after a crash; the next claim repeats it with the same idempotency key) and
                    // the claim is given back at once rather than when the lease runs out
                    () = self.inner.shutdown.cancelled() => {
                        self.release(&exec).await;
                        return;
                    }
                };
                match outcome {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => return,
                    Err(SagaError::LeaseLost) => {
                        tracing::warn!("claim lost; another execution continues this saga");
                        return;
                    }
                    Err(e) => {
                        // could not record a transition: stop; the lease expires and the saga
                        // resumes from its last committed state (actions are idempotent)
                        tracing::warn!(error = %e, "saga transition not recorded; it will resume after its lease");
                        return;
                    }
                }
            }
        }
        .instrument(span)
        .await;
        self.deregister(exec.id);
    }

    /// Makes the next move: one call (and its outcome recorded), or the end.
    async fn advance(
        &self,
        version: &Version<D>,
        exec: &mut Execution<D>,
    ) -> Result<Flow, SagaError> {
        match exec.progress.next(Utc::now(), &version.shapes) {
            Next::Done => {
                if exec.progress.is_dirty() {
                    self.persist(None, exec, Utc::now()).await?;
                    self.after_terminal(exec);
                }
                Ok(Flow::Stop)
            }
            Next::FinishCompensated => self.finish_compensated(version, exec).await,
            Next::Act { step, attempt } => match &version.definition.steps()[step].action {
                Action::Local(action) => {
                    self.act_local(version, exec, step, attempt, &**action)
                        .await
                }
                Action::Remote(action) => {
                    // the attempt about to be made is recorded first
                    if exec.progress.is_dirty() {
                        self.persist(None, exec, Utc::now()).await?;
                    }
                    let ctx = self.context(exec, version.names[step], attempt, false);
                    let mut data = exec.data.clone();
                    let started = Instant::now();
                    let result = if action.batched() {
                        // with whatever other sagas call this step now (see `batches.rs`)
                        let item = BatchItem {
                            ctx: ctx.clone(),
                            data: data.clone(),
                        };
                        let call = self.inner.batches.call(
                            exec.version,
                            &version.definition,
                            step,
                            false,
                            item,
                        );
                        self.timed(
                            async {
                                data = call.await?;
                                Ok(())
                            },
                            ctx.step,
                            "action",
                        )
                        .await
                    } else {
                        self.timed(action.call(&ctx, &mut data), ctx.step, "action")
                            .await
                    };
                    metrics::histogram!("saga_step_duration_seconds", "step" => ctx.step)
                        .record(started.elapsed().as_secs_f64());
                    match result {
                        Ok(()) => {
                            exec.data = data;
                            exec.progress.action_succeeded(step);
                            self.after_progress(exec).await
                        }
                        Err(e) => self.action_failed(exec, step, e).await,
                    }
                }
            },
            Next::Compensate { step, attempt } => {
                if exec.progress.is_dirty() {
                    self.persist(None, exec, Utc::now()).await?;
                }
                let Some(compensation) = &version.definition.steps()[step].compensation else {
                    // the state machine only compensates compensable steps
                    return Err(SagaError::Definition(format!(
                        "step {} has no compensation",
                        version.names[step]
                    )));
                };
                let ctx = self.context(exec, version.names[step], attempt, true);
                let result = if compensation.batched() {
                    let item = BatchItem {
                        ctx: ctx.clone(),
                        data: exec.data.clone(),
                    };
                    let call = self.inner.batches.call(
                        exec.version,
                        &version.definition,
                        step,
                        true,
                        item,
                    );
                    self.timed(async { call.await.map(|_| ()) }, ctx.step, "compensation")
                        .await
                } else {
                    self.timed(
                        compensation.compensate(&ctx, &exec.data),
                        ctx.step,
                        "compensation",
                    )
                    .await
                };
                match result {
                    Ok(()) => {
                        exec.progress.compensation_succeeded(step, &version.shapes);
                        Ok(Flow::Continue)
                    }
                    Err(e) => {
                        // compensations never give up: a failing one shows in a metric, the step
                        // log and the history
                        metrics::counter!("saga_compensation_failures_total", "step" => ctx.step)
                            .increment(1);
                        self.retry_later(exec, step, &e.detail(), true).await
                    }
                }
            }
        }
    }

    /// After a success: the saga is complete (record it), or the loop goes on (the next move
    /// records this success with the start of the next attempt, or in a local step's transaction).
    async fn after_progress(&self, exec: &mut Execution<D>) -> Result<Flow, SagaError> {
        if exec.progress.status.is_terminal() {
            self.persist(None, exec, Utc::now()).await?;
            self.after_terminal(exec);
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    async fn action_failed(
        &self,
        exec: &mut Execution<D>,
        step: usize,
        error: StepError,
    ) -> Result<Flow, SagaError> {
        match error {
            StepError::Rejected { reason, message } => {
                tracing::info!(%reason, "step rejected; compensating");
                exec.progress.action_rejected(step, &reason, &message);
                Ok(Flow::Continue)
            }
            StepError::Abort { reason, message } => {
                tracing::warn!(%reason, %message, "step took effect but the saga cannot go on; compensating");
                exec.progress.action_aborted(step, &reason, &message);
                Ok(Flow::Continue)
            }
            StepError::Transient(message) => self.retry_later(exec, step, &message, false).await,
        }
    }

    /// A local step: its work, its success and the transition commit in one transaction.
    async fn act_local(
        &self,
        version: &Version<D>,
        exec: &mut Execution<D>,
        step: usize,
        attempt: u32,
        action: &dyn crate::step::LocalAction<D>,
    ) -> Result<Flow, SagaError> {
        let ctx = self.context(exec, version.names[step], attempt, false);
        let span = tracing::info_span!("saga.step", step = ctx.step, attempt, phase = "action");
        if action.batched() {
            // with whatever other sagas run this step now (see `local_batches.rs`)
            let mut progress = exec.progress.clone();
            progress.action_succeeded(step);
            let call = LocalCall {
                item: BatchItem {
                    ctx: ctx.clone(),
                    data: exec.data.clone(),
                },
                id: exec.id,
                claim: exec.claim.clone(),
                progress,
            };
            let target = LocalTarget {
                pool: self.inner.pool.clone(),
                lease: self.inner.config.lease,
                relay: self.inner.relay.clone(),
            };
            let done = self
                .inner
                .local_batches
                .run(exec.version, &version.definition, step, &target, call)
                .instrument(span.clone())
                .await;
            if let Some((data, progress)) = done {
                exec.data = data;
                exec.progress = progress;
                if exec.progress.status.is_terminal() {
                    self.after_terminal(exec);
                    return Ok(Flow::Stop);
                }
                return Ok(Flow::Continue);
            }
            // not done together: on its own, exactly as an unbatched step
        }
        let mut tx = longship_tenant::begin(&self.inner.pool, &exec.tenant).await?;
        let mut data = exec.data.clone();
        match action.run(&ctx, &mut tx, &mut data).instrument(span).await {
            Ok(()) => {
                exec.data = data;
                exec.progress.action_succeeded(step);
                self.persist(Some(&mut tx), exec, Utc::now()).await?;
                tx.commit().await?;
                self.inner.relay.wake();
                if exec.progress.status.is_terminal() {
                    self.after_terminal(exec);
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            }
            Err(e) => {
                drop(tx);
                // a local action's writes roll back with its transaction: an abort had no effect
                let e = match e {
                    StepError::Abort { reason, message } => StepError::Rejected { reason, message },
                    other => other,
                };
                self.action_failed(exec, step, e).await
            }
        }
    }

    async fn finish_compensated(
        &self,
        version: &Version<D>,
        exec: &mut Execution<D>,
    ) -> Result<Flow, SagaError> {
        exec.progress.finish_compensated();
        let reason = exec
            .progress
            .failure_reason
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let mut tx = longship_tenant::begin(&self.inner.pool, &exec.tenant).await?;
        let info = SagaInfo {
            saga_id: exec.id,
            tenant: exec.tenant.clone(),
        };
        version
            .definition
            .on_compensated(&mut tx, &info, &exec.data, &reason)
            .await?;
        self.persist(Some(&mut tx), exec, Utc::now()).await?;
        tx.commit().await?;
        self.inner.relay.wake();
        self.after_terminal(exec);
        Ok(Flow::Stop)
    }

    /// Records the failed attempt and the next one, then waits (keeping the claim) before it: at
    /// most until the deadline for an action; compensations are retried for ever.
    async fn retry_later(
        &self,
        exec: &mut Execution<D>,
        step: usize,
        message: &str,
        compensation: bool,
    ) -> Result<Flow, SagaError> {
        let record = &exec.progress.steps[step];
        let step_name = self
            .inner
            .versions
            .get(exec.version)
            .map_or("unknown", |v| v.names[step]);
        let tries = if compensation {
            record.compensation_attempts
        } else {
            record.attempts
        };
        let config = &self.inner.config;
        let mut delay = backoff(
            tries,
            config.retry_base,
            config.retry_max,
            rand::random::<f64>(),
        );
        if compensation {
            exec.progress.compensation_failed(step, message);
        } else {
            // never sleep past the deadline: the next move then compensates with `timeout`
            let left = (exec.progress.deadline - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            delay = delay.min(left);
            exec.progress.action_failed(step, message);
        }
        metrics::counter!("saga_step_retries_total", "step" => step_name).increment(1);
        tracing::info!(step = step_name, error = %message, retry_in_ms = delay.as_millis() as u64, "step failed transiently");
        let next_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.persist(None, exec, next_at).await?;
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(Flow::Continue),
            () = self.inner.shutdown.cancelled() => {
                self.release(exec).await;
                Ok(Flow::Stop)
            }
        }
    }

    fn context(
        &self,
        exec: &Execution<D>,
        step: &'static str,
        attempt: u32,
        undo: bool,
    ) -> StepContext {
        let idempotency_key = if undo {
            format!("{}:{step}:compensate", exec.id)
        } else {
            format!("{}:{step}", exec.id)
        };
        StepContext {
            saga_id: exec.id,
            tenant: exec.tenant.clone(),
            step,
            attempt,
            idempotency_key,
        }
    }

    /// Runs a call bounded by the step timeout (a timeout is a transient failure: its outcome is
    /// unknown, so the next attempt repeats it with the same idempotency key).
    async fn timed(
        &self,
        call: impl std::future::Future<Output = Result<(), StepError>>,
        step: &'static str,
        phase: &'static str,
    ) -> Result<(), StepError> {
        let timeout = self.inner.config.step_timeout;
        let span = tracing::info_span!("saga.step", step, phase);
        match tokio::time::timeout(timeout, call).instrument(span).await {
            Ok(result) => result,
            Err(_) => Err(StepError::Transient(format!(
                "{phase} timed out after {timeout:?}"
            ))),
        }
    }

    fn after_terminal(&self, exec: &Execution<D>) {
        let saga_type = self.inner.versions.saga_type();
        let elapsed = (Utc::now() - exec.created_at).to_std().unwrap_or_default();
        let outcome = exec.progress.status.as_str().to_ascii_lowercase();
        let reason = exec.progress.failure_reason.clone().unwrap_or_default();
        metrics::counter!("saga_finished_total", "saga" => saga_type, "outcome" => outcome.clone(), "reason" => reason)
            .increment(1);
        metrics::histogram!("saga_duration_seconds", "saga" => saga_type, "outcome" => outcome.clone())
            .record(elapsed.as_secs_f64());
        tracing::info!(
            outcome,
            failure_reason = exec.progress.failure_reason.as_deref(),
            elapsed_ms = elapsed.as_millis() as u64,
            "saga finished"
        );
    }

    /// Records the saga's state and the events since the last record, in one update fenced on
    /// this execution's claim: in `tx` when given, else together with the transitions other sagas
    /// record at the same time (one statement and one commit for all). Terminal states drop the
    /// claim.
    async fn persist(
        &self,
        tx: Option<&mut PgConnection>,
        exec: &mut Execution<D>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), SagaError> {
        let transition = Transition::of(
            exec.id,
            &exec.claim,
            &mut exec.progress,
            &exec.data,
            next_attempt_at,
        )?;
        let written = match tx {
            Some(tx) => transition
                .statement(self.inner.config.lease)?
                .fetch_optional(tx)
                .await?
                .is_some(),
            None => self.inner.transitions.write(transition).await?,
        };
        if !written {
            return Err(SagaError::LeaseLost);
        }
        Ok(())
    }

    /// Gives the saga back (shutdown): another worker may claim it at once.
    async fn release(&self, exec: &Execution<D>) {
        if let Err(e) = store::release(&self.inner.pool, exec.id, &exec.claim).await {
            tracing::warn!(error = %e, "could not release saga claim; it resumes after its lease");
        }
    }
}
