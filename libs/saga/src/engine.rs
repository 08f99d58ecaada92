//! The engine: starting sagas, and the worker loop that claims and resumes due sagas; executing one
//! saga is in [`crate::execution`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use longship_messaging::RelayWake;
use longship_tenant::TenantId;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::batches::Batches;
use crate::domain::Progress;
use crate::error::SagaError;
use crate::local_batches::LocalBatches;
use crate::running::Execution;
use crate::slots::Slots;
use crate::store::{self, ClaimQuery, SagaRow};
use crate::transitions::TransitionWriter;
use crate::versions::{SagaData, SagaVersions};

/// The most transitions one statement writes.
const MAX_TRANSITION_BATCH: usize = 128;

/// The most sagas one batched step call carries.
const MAX_STEP_BATCH: usize = 128;

/// The Postgres channel on which operator actions (retry, cancel) name the saga they changed, so
/// the replica executing it stops at once instead of at its next transition.
pub const OPERATOR_CHANNEL: &str = "longship_saga_operator";

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
    /// The share of those slots (0 to 1] one tenant may hold while another tenant's sagas are
    /// active; a tenant alone may take them all (see `slots.rs`).
    pub tenant_share: f64,
    /// Sagas claimed per poll.
    pub claim_batch: i64,
    /// Connections that write saga transitions; the transitions of sagas that record at the same
    /// time share one statement and one commit (see `transitions.rs`).
    pub transition_writers: usize,
    /// Calls in flight per batched step (a step whose action or compensation offers
    /// `call_many`, or a local step offering `run_many`): the sagas that reach the step while these
    /// are busy go together in the next call (see `batches.rs`). A call in flight holds its caller
    /// until it answers or times out (`step_timeout`), so the sagas queued behind a slow call wait
    /// with it; one caller gives the largest batches.
    pub batch_callers: usize,
    /// How often the stuck-saga gauges are refreshed.
    pub gauge_interval: Duration,
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
            tenant_share: 0.5,
            claim_batch: 64,
            transition_writers: 2,
            batch_callers: 1,
            gauge_interval: Duration::from_secs(15),
        }
    }
}

/// A saga inserted by [`SagaEngine::start`] (or [`SagaEngine::prepare`] and the caller's own
/// statement), ready to [`SagaEngine::launch`] once the caller commits.
pub struct StartedSaga<D> {
    pub(crate) execution: Execution<D>,
    /// Whether `saga_started_total` counts it already.
    counted: bool,
}

impl<D> std::fmt::Debug for StartedSaga<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedSaga")
            .field("id", &self.execution.id)
            .finish()
    }
}

impl<D> StartedSaga<D> {
    /// The saga id.
    pub fn id(&self) -> Uuid {
        self.execution.id
    }

    /// The version it runs.
    pub fn version(&self) -> u32 {
        self.execution.version
    }

    /// Where it starts: status and step log (its first step started).
    pub fn progress(&self) -> &Progress {
        &self.execution.progress
    }
}

/// Runs the sagas of one type, in every version it knows. Cheap to clone.
pub struct SagaEngine<D> {
    pub(crate) inner: Arc<Inner<D>>,
}

impl<D> Clone for SagaEngine<D> {
    fn clone(&self) -> Self {
        SagaEngine {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<D> std::fmt::Debug for SagaEngine<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaEngine")
            .field("worker_id", &self.inner.worker_id)
            .field("versions", &self.inner.versions)
            .finish()
    }
}

pub(crate) struct Inner<D> {
    pub pool: PgPool,
    pub versions: SagaVersions<D>,
    pub config: EngineConfig,
    pub worker_id: String,
    pub slots: Arc<Slots>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    pub transitions: TransitionWriter,
    pub batches: Batches<D>,
    pub local_batches: LocalBatches<D>,
    pub relay: RelayWake,
    /// Sagas executing in this process, by id: an operator's action stops them.
    pub running: Mutex<HashMap<Uuid, CancellationToken>>,
    /// Wakes the worker loop to claim now (an operator made a saga due).
    pub poke: Notify,
}

impl<D: SagaData> SagaEngine<D> {
    /// An engine over `pool` running `versions`. Commits that may have enqueued events (local
    /// steps, the end of a compensated saga) wake `relay`. `shutdown` stops claiming and makes
    /// running sagas release their claim between steps.
    pub fn new(
        pool: PgPool,
        versions: SagaVersions<D>,
        config: EngineConfig,
        relay: RelayWake,
        shutdown: CancellationToken,
    ) -> SagaEngine<D> {
        let worker_id = format!(
            "{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        for version in versions.known() {
            if let Some(v) = versions.get(version) {
                let steps: Vec<(&'static str, bool, bool)> = v
                    .names
                    .iter()
                    .zip(&v.shapes)
                    .map(|(name, shape)| (*name, !shape.local, shape.compensable))
                    .collect();
                crate::metric_families::zero(versions.saga_type(), version, &steps);
            }
        }
        let transitions = TransitionWriter::new(
            pool.clone(),
            config.lease,
            config.transition_writers,
            MAX_TRANSITION_BATCH,
        );
        let batches = Batches::new(config.batch_callers, MAX_STEP_BATCH, config.step_timeout);
        SagaEngine {
            inner: Arc::new(Inner {
                batches,
                local_batches: LocalBatches::new(config.batch_callers, MAX_STEP_BATCH),
                slots: Slots::new(config.concurrency, config.tenant_share),
                transitions,
                pool,
                versions,
                config,
                worker_id,
                tasks: TaskTracker::new(),
                shutdown,
                relay,
                running: Mutex::new(HashMap::new()),
                poke: Notify::new(),
            }),
        }
    }

    /// This worker's id (the prefix of the claims it stores in `locked_by`).
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// The versions this engine runs.
    pub fn versions(&self) -> &SagaVersions<D> {
        &self.inner.versions
    }

    /// Inserts saga `id` in the caller's transaction (its own statement), already claimed by this
    /// worker with its first step started, so [`SagaEngine::launch`] can run it right after the
    /// caller commits.
    pub async fn start(
        &self,
        tx: &mut PgConnection,
        id: Uuid,
        tenant: &TenantId,
        data: D,
    ) -> Result<StartedSaga<D>, SagaError> {
        let (row, mut started) = self.prepare(id, tenant, data)?;
        let mut binds = longship_sql::Binds::new();
        let sql = row.insert(&mut binds);
        binds.query(sql)?.execute(&mut *tx).await?;
        started.count_start(self.inner.versions.saga_type());
        Ok(started)
    }

    /// Like [`SagaEngine::start`], for a caller that inserts the row with a statement of its own
    /// ([`SagaRow::ctes_from`], beside its business row), which saves the insert its round trip.
    /// Launch the saga only if that statement inserted the row. New sagas run the starting
    /// version ([`SagaVersions::start_on`]).
    pub fn prepare(
        &self,
        id: Uuid,
        tenant: &TenantId,
        data: D,
    ) -> Result<(SagaRow, StartedSaga<D>), SagaError> {
        let versions = &self.inner.versions;
        let version = versions
            .starting()
            .ok_or_else(|| SagaError::Definition("no starting version".into()))?;
        let now = Utc::now();
        let deadline = now
            + chrono::Duration::from_std(self.inner.config.deadline)
                .unwrap_or(chrono::Duration::seconds(30));
        let mut progress = Progress::start(&version.names, deadline);
        let traceparent = longship_telemetry::propagation::current_traceparent();
        let claim = format!("{}.{}", self.inner.worker_id, Uuid::new_v4().simple());
        let row = SagaRow {
            id,
            saga_type: versions.saga_type(),
            version: versions.starting_version(),
            tenant_id: tenant.as_str().to_owned(),
            data: serde_json::to_value(&data)?,
            steps: serde_json::to_value(&progress.steps)?,
            current_step: progress.current_step().map(str::to_owned),
            deadline,
            now,
            claim: claim.clone(),
            lease_secs: self.inner.config.lease.as_secs_f64(),
            traceparent: traceparent.clone(),
            history: progress.take_events(),
        };
        let started = StartedSaga {
            counted: false,
            execution: Execution {
                id,
                claim,
                version: versions.starting_version(),
                tenant: tenant.clone(),
                progress,
                data,
                traceparent,
                created_at: now,
            },
        };
        Ok((row, started))
    }

    /// Runs a saga the caller has just committed, in the background, without waiting for a poll.
    pub fn launch(&self, mut started: StartedSaga<D>) {
        started.count_start(self.inner.versions.saga_type());
        let engine = self.clone();
        self.inner.tasks.spawn(async move {
            let execution = &started.execution;
            let Some(_slot) = engine.inner.slots.acquire(&execution.tenant).await else {
                // shut down while it waited: another worker may claim it at once
                let _ = store::release(&engine.inner.pool, execution.id, &execution.claim).await;
                return;
            };
            engine.execute(started.execution, false).await;
        });
    }

    /// The worker loop: until shutdown, claims due sagas (new ones whose launcher died, retries
    /// made due by an operator or released at shutdown, sagas of dead workers whose lease expired)
    /// and executes them; listens for operators' actions; refreshes the stuck-saga gauges. On
    /// shutdown, waits for running sagas to reach a step boundary and release their claim.
    pub async fn run(&self) {
        let shutdown = self.inner.shutdown.clone();
        let listener = tokio::spawn(self.clone().listen_for_operators());
        let mut next_gauges = tokio::time::Instant::now();
        let mut waiting_versions = std::collections::BTreeSet::new();
        loop {
            let available = self.inner.slots.free() as i64;
            let mut full = false;
            if available > 0 {
                match self.claim_and_spawn(available).await {
                    Ok(f) => full = f,
                    Err(e) => tracing::warn!(error = %e, "claiming due sagas failed"),
                }
            }
            if tokio::time::Instant::now() >= next_gauges {
                crate::gauges::refresh(
                    &self.inner.pool,
                    &self.inner.versions,
                    &mut waiting_versions,
                )
                .await;
                next_gauges = tokio::time::Instant::now() + self.inner.config.gauge_interval;
            }
            if full {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.inner.config.poll_interval) => {}
                () = self.inner.poke.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        listener.abort();
        self.inner.slots.close();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Claims what is due (at most `available`) and spawns an execution for each; true when the
    /// claim was a full batch (more may be due).
    async fn claim_and_spawn(&self, available: i64) -> Result<bool, SagaError> {
        let versions: Vec<i32> = self
            .inner
            .versions
            .known()
            .into_iter()
            .map(|v| v as i32)
            .collect();
        let query = ClaimQuery {
            worker_id: &self.inner.worker_id,
            lease_secs: self.inner.config.lease.as_secs_f64(),
            saga_type: self.inner.versions.saga_type(),
            versions: &versions,
            limit: available.min(self.inner.config.claim_batch),
        };
        let claimed = store::claim_due(&self.inner.pool, &query).await?;
        let full = claimed.len() as i64 == self.inner.config.claim_batch;
        for row in claimed {
            let id = row.id;
            let claim = row.claim.clone();
            let execution = match Execution::from_claimed(row) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(saga_id = %id, error = %e, "saga data does not decode; leaving it for an operator");
                    let _ = store::release(&self.inner.pool, id, &claim).await;
                    continue;
                }
            };
            // a tenant at its share while others wait: its saga goes back for a later claim
            let Some(slot) = self.inner.slots.try_acquire(&execution.tenant) else {
                let _ = store::release(&self.inner.pool, id, &claim).await;
                continue;
            };
            let engine = self.clone();
            self.inner.tasks.spawn(async move {
                let _slot = slot;
                engine.execute(execution, true).await;
            });
        }
        Ok(full)
    }

    /// Listens on [`OPERATOR_CHANNEL`]: an operator's action on a saga this process executes
    /// stops that execution (its claim was taken away; another claim resumes it at once), and the
    /// worker loop claims at once.
    async fn listen_for_operators(self) {
        loop {
            let listening = async {
                let mut listener =
                    sqlx::postgres::PgListener::connect_with(&self.inner.pool).await?;
                listener.listen(OPERATOR_CHANNEL).await?;
                loop {
                    let notification = listener.recv().await?;
                    if let Ok(id) = Uuid::parse_str(notification.payload()) {
                        self.interrupt(id);
                    }
                    self.inner.poke.notify_one();
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            if let Err(e) = listening.await {
                tracing::debug!(error = %e, "operator listener lost; the poll picks operators' actions up meanwhile");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Stops this process's execution of saga `id`, if any.
    fn interrupt(&self, id: Uuid) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(token) = running.get(&id)
        {
            token.cancel();
        }
    }

    /// Registers an execution of saga `id`; the token is cancelled by an operator's action.
    pub(crate) fn register(&self, id: Uuid) -> CancellationToken {
        let token = CancellationToken::new();
        if let Ok(mut running) = self.inner.running.lock() {
            running.insert(id, token.clone());
        }
        token
    }

    pub(crate) fn deregister(&self, id: Uuid) {
        if let Ok(mut running) = self.inner.running.lock() {
            running.remove(&id);
        }
    }
}

impl<D> StartedSaga<D> {
    fn count_start(&mut self, saga_type: &'static str) {
        if !self.counted {
            self.counted = true;
            metrics::counter!("saga_started_total", "saga" => saga_type).increment(1);
        }
    }
}
