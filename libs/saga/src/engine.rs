//! The engine: starting sagas, executing them, and workers that claim and resume due sagas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use longship_tenant::TenantId;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{SagaStatus, StepRecord, StepStatus, backoff, next_compensation};
use crate::step::{SagaDefinition, SagaInfo, StepContext, StepError, StepKind};
use crate::transitions::{Transition, TransitionWriter};

/// The most transitions one statement writes.
const MAX_TRANSITION_BATCH: usize = 128;

/// Engine tuning.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A saga not finished by then is compensated with reason `timeout`.
    pub deadline: Duration,
    /// How long a claim lasts without a transition; a dead worker's sagas resume after it.
    pub lease: Duration,
    /// Timeout of one action or compensation call (kept well below the lease).
    pub step_timeout: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// How often workers look for due sagas (retries of other replicas' sagas, recovery); new sagas
    /// never wait for it.
    pub poll_interval: Duration,
    /// Sagas one worker executes at once.
    pub concurrency: usize,
    /// Sagas claimed per poll.
    pub claim_batch: i64,
    /// Connections that write saga transitions; the transitions of sagas that record at the same
    /// time share one statement and one commit (see `transitions.rs`).
    pub transition_writers: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            deadline: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            step_timeout: Duration::from_secs(5),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            poll_interval: Duration::from_millis(500),
            concurrency: 512,
            claim_batch: 64,
            transition_writers: 2,
        }
    }
}

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The saga data could not be (de)serialised.
    #[error("saga data: {0}")]
    Data(#[from] serde_json::Error),
    /// Another worker owns the saga now (our lease expired).
    #[error("lease lost")]
    LeaseLost,
}

/// A saga inserted by [`SagaEngine::start`], ready to [`SagaEngine::launch`] once the caller commits.
#[derive(Debug)]
pub struct StartedSaga<D> {
    state: SagaState<D>,
    /// Whether `saga_started_total` counts it already.
    counted: bool,
}

impl<D> StartedSaga<D> {
    fn count_start(&mut self, saga_type: &'static str) {
        if !self.counted {
            self.counted = true;
            metrics::counter!("saga_started_total", "saga" => saga_type).increment(1);
        }
    }

    /// The saga id.
    pub fn id(&self) -> Uuid {
        self.state.id
    }

    /// The status it was inserted with.
    pub fn status(&self) -> SagaStatus {
        self.state.status
    }

    /// The step log it was inserted with (the first step started).
    pub fn steps(&self) -> &[StepRecord] {
        &self.state.steps
    }
}

const SAGA_INSERT: &str = "INSERT INTO saga (id, saga_type, tenant_id, status, data, steps, step_index, deadline,
                       next_attempt_at, locked_by, locked_until, traceparent, created_at, updated_at)";

/// A new saga's row, claimed by the engine that prepared it with its first step started
/// ([`SagaEngine::prepare`]), for the caller to insert in a statement of its own:
///
/// ```no_run
/// # async fn f(conn: &mut sqlx::PgConnection, row: longship_saga::SagaRow) -> Result<(), sqlx::Error> {
/// use longship_saga::SagaRow;
/// let sql = format!(
///     "WITH placed AS (INSERT INTO orders (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id),
///           saga AS ({})
///      SELECT id FROM placed",
///     SagaRow::insert_sql_from(2, "placed")
/// );
/// row.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(uuid::Uuid::nil()))
///     .fetch_optional(conn)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SagaRow {
    id: Uuid,
    saga_type: &'static str,
    tenant_id: String,
    data: serde_json::Value,
    steps: serde_json::Value,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
    claim: String,
    lease_secs: f64,
    traceparent: Option<String>,
}

impl SagaRow {
    fn values(first: usize) -> String {
        let p = |i: usize| format!("${}", first + i);
        format!(
            "{}, {}, {}, 'RUNNING', {}, {}, 0, {}, {}, {}, {} + make_interval(secs => {}), {}, {}, {}",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(6),
            p(8),
            p(9),
            p(6),
            p(6)
        )
    }

    /// The `INSERT INTO saga` statement on its own (parameters `$1..$10`).
    pub fn insert_sql() -> &'static str {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("{SAGA_INSERT} VALUES ({})", SagaRow::values(1)));
        SQL.as_str()
    }

    /// The insert as `INSERT INTO saga (...) SELECT ... FROM source`, its parameters numbered from
    /// `first`: with `source` a CTE that inserts the business row `ON CONFLICT DO NOTHING ...
    /// RETURNING`, the saga is inserted only when that row was. Bind with [`SagaRow::bind`] after
    /// the caller's parameters `$1..$first-1`.
    pub fn insert_sql_from(first: usize, source: &str) -> String {
        format!(
            "{SAGA_INSERT} SELECT {} FROM {source}",
            SagaRow::values(first)
        )
    }

    /// Binds the row's parameters (see [`SagaRow::insert_sql_from`]).
    pub fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.id)
            .bind(self.saga_type)
            .bind(self.tenant_id)
            .bind(self.data)
            .bind(self.steps)
            .bind(self.deadline)
            .bind(self.now)
            .bind(self.claim)
            .bind(self.lease_secs)
            .bind(self.traceparent)
    }
}

#[derive(Debug, Clone)]
struct SagaState<D> {
    id: Uuid,
    /// The claim this execution holds: `locked_by` as it wrote it. Unique per claim (not just per
    /// worker), so an execution that outlived its lease is fenced out even when the same worker
    /// claimed the saga again.
    claim: String,
    tenant: TenantId,
    status: SagaStatus,
    data: D,
    steps: Vec<StepRecord>,
    step_index: usize,
    failure_reason: Option<String>,
    deadline: DateTime<Utc>,
    traceparent: Option<String>,
    created_at: DateTime<Utc>,
}

/// Runs sagas of one definition. Cheap to clone.
pub struct SagaEngine<S: SagaDefinition> {
    inner: Arc<Inner<S>>,
}

impl<S: SagaDefinition> Clone for SagaEngine<S> {
    fn clone(&self) -> Self {
        SagaEngine {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: SagaDefinition> std::fmt::Debug for SagaEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaEngine")
            .field("worker_id", &self.inner.worker_id)
            .finish()
    }
}

struct Inner<S: SagaDefinition> {
    pool: PgPool,
    definition: S,
    config: EngineConfig,
    worker_id: String,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    transitions: TransitionWriter,
}

enum Attempt {
    Continue,
    Stop,
}

impl<S: SagaDefinition> SagaEngine<S> {
    /// An engine over `pool`. `shutdown` stops claiming and makes running sagas release their claim
    /// between steps.
    pub fn new(
        pool: PgPool,
        definition: S,
        config: EngineConfig,
        shutdown: CancellationToken,
    ) -> SagaEngine<S> {
        let worker_id = format!(
            "{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let transitions = TransitionWriter::new(
            pool.clone(),
            config.lease,
            config.transition_writers,
            MAX_TRANSITION_BATCH,
        );
        SagaEngine {
            inner: Arc::new(Inner {
                transitions,
                pool,
                definition,
                config,
                worker_id,
                permits,
                tasks: TaskTracker::new(),
                shutdown,
            }),
        }
    }

    /// This worker's id (the prefix of the claims it stores in `locked_by`).
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// The definition.
    pub fn definition(&self) -> &S {
        &self.inner.definition
    }

    /// Inserts saga `id` in the caller's transaction, already claimed by this worker with its first
    /// step started, so [`SagaEngine::launch`] can run it right after the caller commits.
    pub async fn start(
        &self,
        tx: &mut PgConnection,
        id: Uuid,
        tenant: &TenantId,
        data: S::Data,
    ) -> Result<StartedSaga<S::Data>, SagaError> {
        let (row, mut started) = self.prepare(id, tenant, data)?;
        row.bind(sqlx::query(sqlx::AssertSqlSafe(SagaRow::insert_sql())))
            .execute(&mut *tx)
            .await?;
        started.count_start(self.inner.definition.saga_type());
        Ok(started)
    }

    /// Like [`SagaEngine::start`], for a caller that inserts the row with a statement of its own
    /// (as a data-modifying CTE beside its business row, [`SagaRow::insert_sql_from`]), which
    /// saves the insert its round trip. Launch the saga only if that statement inserted the row.
    pub fn prepare(
        &self,
        id: Uuid,
        tenant: &TenantId,
        data: S::Data,
    ) -> Result<(SagaRow, StartedSaga<S::Data>), SagaError> {
        let steps_def = self.inner.definition.steps();
        let mut steps: Vec<StepRecord> = steps_def
            .iter()
            .map(|s| StepRecord::pending(s.name()))
            .collect();
        if let Some(first) = steps.first_mut() {
            first.status = StepStatus::Running;
            first.attempts = 1;
        }
        let now = Utc::now();
        let deadline = now
            + chrono::Duration::from_std(self.inner.config.deadline)
                .unwrap_or(chrono::Duration::seconds(30));
        let traceparent = longship_telemetry::propagation::current_traceparent();
        let claim = format!("{}.{}", self.inner.worker_id, Uuid::new_v4().simple());
        let row = SagaRow {
            id,
            saga_type: self.inner.definition.saga_type(),
            tenant_id: tenant.as_str().to_owned(),
            data: serde_json::to_value(&data)?,
            steps: serde_json::to_value(&steps)?,
            deadline,
            now,
            claim: claim.clone(),
            lease_secs: self.inner.config.lease.as_secs_f64(),
            traceparent: traceparent.clone(),
        };
        let started = StartedSaga {
            counted: false,
            state: SagaState {
                id,
                claim,
                tenant: tenant.clone(),
                status: SagaStatus::Running,
                data,
                steps,
                step_index: 0,
                failure_reason: None,
                deadline,
                traceparent,
                created_at: now,
            },
        };
        Ok((row, started))
    }

    /// Runs a saga the caller has just committed, in the background, without waiting for a poll.
    pub fn launch(&self, mut started: StartedSaga<S::Data>) {
        started.count_start(self.inner.definition.saga_type());
        let engine = self.clone();
        self.inner.tasks.spawn(async move {
            let Ok(_permit) = Arc::clone(&engine.inner.permits).acquire_owned().await else {
                return;
            };
            engine.execute(started.state, false).await;
        });
    }

    /// The worker loop: until shutdown, claims due sagas (new ones whose launcher died, retries of
    /// released ones, sagas of dead workers whose lease expired) and executes them. On shutdown,
    /// waits for running sagas to reach a step boundary and release their claim.
    pub async fn run(&self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let available = self.inner.permits.available_permits() as i64;
            if available > 0 {
                match self
                    .claim_due(available.min(self.inner.config.claim_batch))
                    .await
                {
                    Ok(claimed) => {
                        let full = claimed.len() as i64 == self.inner.config.claim_batch;
                        for state in claimed {
                            let engine = self.clone();
                            let Ok(permit) = Arc::clone(&self.inner.permits).acquire_owned().await
                            else {
                                break;
                            };
                            self.inner.tasks.spawn(async move {
                                let _permit = permit;
                                engine.execute(state, true).await;
                            });
                        }
                        if full {
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming due sagas failed"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.inner.config.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    async fn claim_due(&self, limit: i64) -> Result<Vec<SagaState<S::Data>>, SagaError> {
        let rows = sqlx::query(
            "UPDATE saga SET locked_by = $1 || '.' || replace(gen_random_uuid()::text, '-', ''),
                    locked_until = now() + make_interval(secs => $2), updated_at = now()
             WHERE id IN (
                 SELECT id FROM saga
                 WHERE status IN ('RUNNING', 'COMPENSATING') AND saga_type = $3 AND next_attempt_at <= now()
                   AND (locked_until IS NULL OR locked_until < now())
                 ORDER BY next_attempt_at LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, locked_by, tenant_id, status, data, steps, step_index, failure_reason, deadline, traceparent, created_at",
        )
        .bind(&self.inner.worker_id)
        .bind(self.inner.config.lease.as_secs_f64())
        .bind(self.inner.definition.saga_type())
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?;
        let mut states = Vec::with_capacity(rows.len());
        for row in rows {
            let status: String = row.try_get("status")?;
            let tenant: String = row.try_get("tenant_id")?;
            let (Some(status), Ok(tenant)) = (SagaStatus::parse(&status), TenantId::parse(&tenant))
            else {
                tracing::error!(
                    "saga row with an invalid status or tenant; leaving it for an operator"
                );
                continue;
            };
            let step_index: i32 = row.try_get("step_index")?;
            states.push(SagaState {
                id: row.try_get("id")?,
                claim: row.try_get("locked_by")?,
                tenant,
                status,
                data: serde_json::from_value(row.try_get("data")?)?,
                steps: serde_json::from_value(row.try_get("steps")?)?,
                step_index: step_index.max(0) as usize,
                failure_reason: row.try_get("failure_reason")?,
                deadline: row.try_get("deadline")?,
                traceparent: row.try_get("traceparent")?,
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(states)
    }

    async fn execute(&self, mut state: SagaState<S::Data>, resumed: bool) {
        let span = tracing::info_span!(
            "saga.run",
            saga_id = %state.id,
            saga_type = self.inner.definition.saga_type(),
            tenant_id = %state.tenant,
            order_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            resumed,
        );
        if let Some(tp) = &state.traceparent {
            longship_telemetry::propagation::set_parent(
                &span,
                longship_telemetry::propagation::context_from_traceparent(tp),
            );
        }
        longship_telemetry::record_trace_id(&span);
        async {
            if resumed {
                // a claimed saga's current attempt is recorded before it is made
                if let Err(e) = self.begin_current_attempt(&mut state).await {
                    tracing::warn!(error = %e, "could not record the resumed attempt");
                    return;
                }
            }
            loop {
                if state.status.is_terminal() {
                    return;
                }
                if self.inner.shutdown.is_cancelled() {
                    self.release(&state).await;
                    return;
                }
                let outcome = match state.status {
                    SagaStatus::Running => self.forward(&mut state).await,
                    SagaStatus::Compensating => self.backward(&mut state).await,
                    _ => Ok(Attempt::Stop),
                };
                match outcome {
                    Ok(Attempt::Continue) => {}
                    Ok(Attempt::Stop) => return,
                    Err(SagaError::LeaseLost) => {
                        tracing::warn!("lease lost; another worker continues this saga");
                        return;
                    }
                    Err(e) => {
                        // could not record a transition: stop; the lease expires and the saga resumes
                        // from its last committed state (actions are idempotent)
                        tracing::warn!(error = %e, "saga transition not recorded; it will resume after its lease");
                        return;
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Records the start of the next attempt of the current step (after a claim).
    async fn begin_current_attempt(&self, state: &mut SagaState<S::Data>) -> Result<(), SagaError> {
        let i = state.step_index;
        match state.status {
            SagaStatus::Running => {
                if let Some(step) = state.steps.get_mut(i) {
                    step.status = StepStatus::Running;
                    step.attempts += 1;
                }
            }
            SagaStatus::Compensating => {
                if let Some(step) = state.steps.get_mut(i)
                    && step.needs_compensation()
                {
                    step.status = StepStatus::Compensating;
                    step.compensation_attempts += 1;
                }
            }
            _ => return Ok(()),
        }
        self.persist(None, state, Utc::now()).await
    }

    async fn forward(&self, state: &mut SagaState<S::Data>) -> Result<Attempt, SagaError> {
        let steps = self.inner.definition.steps();
        let i = state.step_index;
        let Some(step) = steps.get(i) else {
            return self.finish_completed(state).await;
        };
        if Utc::now() >= state.deadline {
            tracing::warn!(step = step.name(), "saga deadline passed; compensating");
            self.enter_compensation(state, "timeout", i);
            return self.persist_and_continue(state).await;
        }
        let attempt = state.steps[i].attempts.max(1);
        let ctx = StepContext {
            saga_id: state.id,
            tenant: state.tenant.clone(),
            step: step.name(),
            attempt,
            idempotency_key: format!("{}:{}", state.id, step.name()),
        };
        let step_span =
            tracing::info_span!("saga.step", step = step.name(), attempt, phase = "action");
        let started = Instant::now();
        if step.kind() == StepKind::Local {
            return self
                .forward_local(state, i, &ctx)
                .instrument(step_span)
                .await;
        }
        let mut data = state.data.clone();
        let result = match tokio::time::timeout(
            self.inner.config.step_timeout,
            step.execute(&ctx, &mut data),
        )
        .instrument(step_span)
        .await
        {
            Ok(r) => r,
            Err(_) => Err(StepError::Transient(format!(
                "timed out after {:?}",
                self.inner.config.step_timeout
            ))),
        };
        metrics::histogram!("saga_step_duration_seconds", "step" => step.name())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                state.data = data;
                self.mark_succeeded_and_advance(state, i);
                if state.step_index >= steps.len() {
                    return self.finish_completed(state).await;
                }
                if steps[state.step_index].kind() == StepKind::Local {
                    // the local step commits together with this success
                    return Ok(Attempt::Continue);
                }
                self.persist_and_continue(state).await
            }
            Err(StepError::Rejected { reason, message }) => {
                tracing::info!(step = step.name(), %reason, "step rejected; compensating");
                state.steps[i].status = StepStatus::Failed;
                state.steps[i].last_error = Some(message);
                self.enter_compensation(state, &reason, i.saturating_sub(1));
                if i == 0 {
                    return self.finish_compensated(state).await;
                }
                self.persist_and_continue(state).await
            }
            Err(StepError::Transient(message)) => self.retry_later(state, i, message, false).await,
        }
    }

    async fn forward_local(
        &self,
        state: &mut SagaState<S::Data>,
        i: usize,
        ctx: &StepContext,
    ) -> Result<Attempt, SagaError> {
        let steps = self.inner.definition.steps();
        let mut tx = longship_tenant::begin(&self.inner.pool, &state.tenant).await?;
        let mut data = state.data.clone();
        match steps[i].execute_local(ctx, &mut tx, &mut data).await {
            Ok(()) => {
                let previous = state.clone();
                state.data = data;
                self.mark_succeeded_and_advance(state, i);
                let finished = state.step_index >= steps.len();
                if finished {
                    state.status = SagaStatus::Completed;
                }
                if let Err(e) = self.persist(Some(&mut tx), state, Utc::now()).await {
                    *state = previous;
                    return Err(e);
                }
                tx.commit().await?;
                if finished {
                    self.after_terminal(state, "completed");
                    return Ok(Attempt::Stop);
                }
                Ok(Attempt::Continue)
            }
            Err(StepError::Rejected { reason, message }) => {
                drop(tx);
                state.steps[i].status = StepStatus::Failed;
                state.steps[i].last_error = Some(message);
                self.enter_compensation(state, &reason, i.saturating_sub(1));
                if i == 0 {
                    return self.finish_compensated(state).await;
                }
                self.persist_and_continue(state).await
            }
            Err(StepError::Transient(message)) => {
                drop(tx);
                self.retry_later(state, i, message, false).await
            }
        }
    }

    async fn backward(&self, state: &mut SagaState<S::Data>) -> Result<Attempt, SagaError> {
        let steps = self.inner.definition.steps();
        let compensable: Vec<bool> = steps.iter().map(|s| s.compensable()).collect();
        let Some(i) = next_compensation(&state.steps, &compensable, state.step_index) else {
            return self.finish_compensated(state).await;
        };
        if state.step_index != i || state.steps[i].status != StepStatus::Compensating {
            state.step_index = i;
            state.steps[i].status = StepStatus::Compensating;
            state.steps[i].compensation_attempts += 1;
            self.persist(None, state, Utc::now()).await?;
        }
        let step = &steps[i];
        let attempt = state.steps[i].compensation_attempts.max(1);
        let ctx = StepContext {
            saga_id: state.id,
            tenant: state.tenant.clone(),
            step: step.name(),
            attempt,
            idempotency_key: format!("{}:{}:compensate", state.id, step.name()),
        };
        let span = tracing::info_span!(
            "saga.step",
            step = step.name(),
            attempt,
            phase = "compensation"
        );
        let result = match tokio::time::timeout(
            self.inner.config.step_timeout,
            step.compensate(&ctx, &state.data),
        )
        .instrument(span)
        .await
        {
            Ok(r) => r,
            Err(_) => Err(StepError::Transient("compensation timed out".into())),
        };
        match result {
            Ok(()) => {
                state.steps[i].status = StepStatus::Compensated;
                match next_compensation(&state.steps, &compensable, i) {
                    None => self.finish_compensated(state).await,
                    Some(next) => {
                        state.step_index = next;
                        state.steps[next].status = StepStatus::Compensating;
                        state.steps[next].compensation_attempts += 1;
                        self.persist_and_continue(state).await
                    }
                }
            }
            Err(e) => {
                // compensations never give up: a failing one is visible as a metric and in the step log
                metrics::counter!("saga_compensation_failures_total", "step" => step.name())
                    .increment(1);
                self.retry_later(state, i, e.to_string(), true).await
            }
        }
    }

    fn mark_succeeded_and_advance(&self, state: &mut SagaState<S::Data>, i: usize) {
        state.steps[i].status = StepStatus::Succeeded;
        state.steps[i].last_error = None;
        state.step_index = i + 1;
        if let Some(next) = state.steps.get_mut(i + 1) {
            next.status = StepStatus::Running;
            next.attempts += 1;
        }
    }

    fn enter_compensation(&self, state: &mut SagaState<S::Data>, reason: &str, from: usize) {
        state.status = SagaStatus::Compensating;
        state.failure_reason = Some(reason.to_owned());
        state.step_index = from;
    }

    async fn retry_later(
        &self,
        state: &mut SagaState<S::Data>,
        i: usize,
        message: String,
        compensation: bool,
    ) -> Result<Attempt, SagaError> {
        let step_name = self.inner.definition.steps()[i].name();
        let tries = if compensation {
            state.steps[i].compensation_attempts
        } else {
            state.steps[i].attempts
        };
        let mut delay = backoff(
            tries,
            self.inner.config.retry_base,
            self.inner.config.retry_max,
            rand::random::<f64>(),
        );
        if !compensation {
            // never sleep past the deadline: the next loop turn compensates with `timeout`
            let left = (state.deadline - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            delay = delay.min(left);
        }
        metrics::counter!("saga_step_retries_total", "step" => step_name).increment(1);
        tracing::info!(step = step_name, error = %message, retry_in_ms = delay.as_millis() as u64, "step failed transiently");
        state.steps[i].last_error = Some(truncate(&message, 500));
        if compensation {
            state.steps[i].compensation_attempts += 1;
        } else {
            state.steps[i].attempts += 1;
        }
        let next_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        // the next attempt is recorded now; we keep the claim and sleep in-process
        self.persist(None, state, next_at).await?;
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(Attempt::Continue),
            () = self.inner.shutdown.cancelled() => {
                self.release(state).await;
                Ok(Attempt::Stop)
            }
        }
    }

    async fn persist_and_continue(
        &self,
        state: &mut SagaState<S::Data>,
    ) -> Result<Attempt, SagaError> {
        self.persist(None, state, Utc::now()).await?;
        Ok(Attempt::Continue)
    }

    async fn finish_completed(&self, state: &mut SagaState<S::Data>) -> Result<Attempt, SagaError> {
        state.status = SagaStatus::Completed;
        self.persist(None, state, Utc::now()).await?;
        self.after_terminal(state, "completed");
        Ok(Attempt::Stop)
    }

    async fn finish_compensated(
        &self,
        state: &mut SagaState<S::Data>,
    ) -> Result<Attempt, SagaError> {
        state.status = SagaStatus::Compensated;
        let reason = state
            .failure_reason
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let mut tx = longship_tenant::begin(&self.inner.pool, &state.tenant).await?;
        let info = SagaInfo {
            saga_id: state.id,
            tenant: state.tenant.clone(),
        };
        self.inner
            .definition
            .on_compensated(&mut tx, &info, &state.data, &reason)
            .await?;
        self.persist(Some(&mut tx), state, Utc::now()).await?;
        tx.commit().await?;
        self.after_terminal(state, "compensated");
        Ok(Attempt::Stop)
    }

    fn after_terminal(&self, state: &SagaState<S::Data>, outcome: &'static str) {
        let elapsed = (Utc::now() - state.created_at).to_std().unwrap_or_default();
        let reason = state.failure_reason.clone().unwrap_or_default();
        metrics::counter!("saga_finished_total", "saga" => self.inner.definition.saga_type(), "outcome" => outcome, "reason" => reason)
            .increment(1);
        metrics::histogram!("saga_duration_seconds", "saga" => self.inner.definition.saga_type(), "outcome" => outcome)
            .record(elapsed.as_secs_f64());
        tracing::info!(
            outcome,
            failure_reason = state.failure_reason.as_deref(),
            elapsed_ms = elapsed.as_millis() as u64,
            "saga finished"
        );
        self.inner.definition.after_finish();
    }

    /// Writes the whole state in one update fenced on this execution's claim: in `tx` when given,
    /// else together with the transitions other sagas record at the same time (one statement and
    /// one commit for all, each fenced on its own claim). Terminal states drop the claim.
    async fn persist(
        &self,
        tx: Option<&mut PgConnection>,
        state: &SagaState<S::Data>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), SagaError> {
        let transition = Transition {
            id: state.id,
            claim: state.claim.clone(),
            status: state.status.as_str(),
            data: serde_json::to_value(&state.data)?,
            steps: serde_json::to_value(&state.steps)?,
            step_index: state.step_index as i32,
            failure_reason: state.failure_reason.clone(),
            next_attempt_at,
            terminal: state.status.is_terminal(),
        };
        let written = match tx {
            Some(tx) => {
                transition
                    .bind_one(self.inner.config.lease)
                    .execute(tx)
                    .await?
                    .rows_affected()
                    > 0
            }
            None => self.inner.transitions.write(transition).await?,
        };
        if !written {
            return Err(SagaError::LeaseLost);
        }
        Ok(())
    }

    /// Gives the saga back (shutdown): another worker may claim it at once.
    async fn release(&self, state: &SagaState<S::Data>) {
        let result = sqlx::query(
            "UPDATE saga SET locked_by = NULL, locked_until = NULL, updated_at = now() WHERE id = $1 AND locked_by = $2",
        )
        .bind(state.id)
        .bind(&state.claim)
        .execute(&self.inner.pool)
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not release saga claim; it resumes after its lease");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
