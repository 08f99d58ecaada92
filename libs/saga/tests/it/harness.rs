//! A scripted saga whose participants record every call, so tests can assert order, idempotency
//! keys and concurrency; and the harness that runs engines over a fresh database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use longship_messaging::RelayWake;
use longship_saga::{
    BatchItem, Compensation, EngineConfig, RemoteAction, SagaDefinition, SagaEngine, SagaInfo,
    SagaVersions, Step, StepContext, StepError,
};
use longship_tenant::TenantId;
use longship_testkit::TestDb;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What each step does, per attempt: `ok`, `reject`, `abort`, `transient`, `hang` (sleep past the
/// step timeout), `slow` (1.5 s), `pause` (100 ms); by step name; the last entry repeats.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Script {
    pub actions: HashMap<String, Vec<String>>,
    pub compensations: HashMap<String, Vec<String>>,
    /// A batched call carrying this saga fails as a whole.
    #[serde(default)]
    pub batch_fails: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub saga: Uuid,
    pub step: String,
    pub compensate: bool,
    pub attempt: u32,
    pub key: String,
}

#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<Call>>,
    in_flight: Mutex<HashMap<Uuid, usize>>,
    pub max_concurrent_per_saga: Mutex<usize>,
    pub compensated_hook: Mutex<Vec<(Uuid, String)>>,
    /// Every batched call: (step, compensation, sagas in it).
    pub batches: Mutex<Vec<(String, bool, usize)>>,
}

struct Scripted {
    name: &'static str,
    recorder: Arc<Recorder>,
}

fn pick(list: Option<&Vec<String>>, attempt: u32) -> String {
    match list {
        None => "ok".into(),
        Some(l) if l.is_empty() => "ok".into(),
        Some(l) => l[(attempt as usize - 1).min(l.len() - 1)].clone(),
    }
}

impl Scripted {
    async fn act(
        &self,
        ctx: &StepContext,
        behaviour: String,
        compensate: bool,
    ) -> Result<(), StepError> {
        self.recorder.calls.lock().expect("lock").push(Call {
            saga: ctx.saga_id,
            step: self.name.into(),
            compensate,
            attempt: ctx.attempt,
            key: ctx.idempotency_key.clone(),
        });
        let _in_flight = InFlight::enter(&self.recorder, ctx.saga_id);
        match behaviour.as_str() {
            "reject" => Err(StepError::Rejected {
                reason: "insufficient_stock".into(),
                message: "no".into(),
            }),
            "abort" => Err(StepError::Abort {
                reason: "amount_out_of_range".into(),
                message: "total overflows".into(),
            }),
            "transient" => Err(StepError::Transient("unavailable".into())),
            "hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            "slow" => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok(())
            }
            "pause" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(())
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            }
        }
    }
}

/// Counts a call as in flight until it returns or its future is dropped (an interrupted call).
struct InFlight<'a> {
    recorder: &'a Recorder,
    saga: Uuid,
}

impl<'a> InFlight<'a> {
    fn enter(recorder: &'a Recorder, saga: Uuid) -> InFlight<'a> {
        let mut in_flight = recorder.in_flight.lock().expect("lock");
        let n = in_flight.entry(saga).or_default();
        *n += 1;
        let mut max = recorder.max_concurrent_per_saga.lock().expect("lock");
        *max = (*max).max(*n);
        InFlight { recorder, saga }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.recorder.in_flight.lock() {
            *in_flight.entry(self.saga).or_default() -= 1;
        }
    }
}

// Every step offers batched calls, so every engine test runs through the batching; a batch's
// items run side by side (one item's `hang` does not hold up the others' answers).
#[async_trait::async_trait]
impl RemoteAction<Script> for Scripted {
    async fn call(&self, ctx: &StepContext, data: &mut Script) -> Result<(), StepError> {
        let behaviour = pick(data.actions.get(self.name), ctx.attempt);
        self.act(ctx, behaviour, false).await
    }

    fn batched(&self) -> bool {
        true
    }

    async fn call_many(
        &self,
        items: Vec<BatchItem<Script>>,
    ) -> Result<Vec<(Script, Result<(), StepError>)>, StepError> {
        self.recorder
            .batches
            .lock()
            .expect("lock")
            .push((self.name.into(), false, items.len()));
        // `batch: fail` in a saga's script fails the whole batched call it is in
        if items.iter().any(|i| i.data.batch_fails) {
            return Err(StepError::Transient(
                "the batched call failed as a whole".into(),
            ));
        }
        let calls = items
            .into_iter()
            .map(|BatchItem { ctx, mut data }| async move {
                let result = self.call(&ctx, &mut data).await;
                (data, result)
            });
        Ok(futures::future::join_all(calls).await)
    }
}

#[async_trait::async_trait]
impl Compensation<Script> for Scripted {
    async fn compensate(&self, ctx: &StepContext, data: &Script) -> Result<(), StepError> {
        let behaviour = pick(data.compensations.get(self.name), ctx.attempt);
        self.act(ctx, behaviour, true).await
    }

    fn batched(&self) -> bool {
        true
    }

    async fn compensate_many(
        &self,
        items: &[BatchItem<Script>],
    ) -> Result<Vec<Result<(), StepError>>, StepError> {
        self.recorder
            .batches
            .lock()
            .expect("lock")
            .push((self.name.into(), true, items.len()));
        Ok(futures::future::join_all(items.iter().map(|i| self.compensate(&i.ctx, &i.data))).await)
    }
}

/// A scripted saga: version 1 has steps One, Two, Three; version 2 adds Extra before Three.
pub struct TestSaga {
    version: u32,
    steps: Vec<Step<Script>>,
    recorder: Arc<Recorder>,
}

impl TestSaga {
    pub fn new(version: u32, recorder: &Arc<Recorder>) -> TestSaga {
        let names: &[&'static str] = if version == 1 {
            &["One", "Two", "Three"]
        } else {
            &["One", "Two", "Extra", "Three"]
        };
        let scripted = |name| Scripted {
            name,
            recorder: Arc::clone(recorder),
        };
        TestSaga {
            version,
            steps: names
                .iter()
                .map(|&name| Step::remote(name, scripted(name), scripted(name)))
                .collect(),
            recorder: Arc::clone(recorder),
        }
    }
}

#[async_trait::async_trait]
impl SagaDefinition for TestSaga {
    type Data = Script;
    fn saga_type(&self) -> &'static str {
        "test"
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn steps(&self) -> &[Step<Script>] {
        &self.steps
    }
    async fn on_compensated(
        &self,
        _tx: &mut PgConnection,
        info: &SagaInfo,
        _data: &Script,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        self.recorder
            .compensated_hook
            .lock()
            .expect("lock")
            .push((info.saga_id, reason.to_owned()));
        Ok(())
    }
}

pub fn fast_config() -> EngineConfig {
    EngineConfig {
        deadline: Duration::from_secs(10),
        lease: Duration::from_secs(2),
        step_timeout: Duration::from_millis(500),
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
        concurrency: 256,
        tenant_share: 0.5,
        claim_batch: 64,
        transition_writers: 2,
        batch_callers: 1,
        gauge_interval: Duration::from_millis(200),
    }
}

pub struct Harness {
    pub db: TestDb,
    pub recorder: Arc<Recorder>,
}

impl Harness {
    pub async fn new() -> Harness {
        let db = TestDb::new().await;
        db.apply(&[&longship_tenant::SCHEMA, &longship_saga::SCHEMA])
            .await;
        Harness {
            db,
            recorder: Arc::new(Recorder::default()),
        }
    }

    /// An engine running version 1.
    pub fn engine(&self, config: EngineConfig, shutdown: &CancellationToken) -> SagaEngine<Script> {
        self.engine_of(&[1], None, config, shutdown)
    }

    /// An engine running `versions`, starting new sagas on `start` (default: the newest).
    pub fn engine_of(
        &self,
        versions: &[u32],
        start: Option<u32>,
        config: EngineConfig,
        shutdown: &CancellationToken,
    ) -> SagaEngine<Script> {
        let definitions: Vec<Arc<dyn SagaDefinition<Data = Script>>> = versions
            .iter()
            .map(|v| {
                Arc::new(TestSaga::new(*v, &self.recorder))
                    as Arc<dyn SagaDefinition<Data = Script>>
            })
            .collect();
        let mut versions = SagaVersions::new(definitions).expect("versions");
        if let Some(start) = start {
            versions = versions.start_on(start).expect("start version");
        }
        SagaEngine::new(
            self.db.pool().clone(),
            versions,
            config,
            RelayWake::default(),
            shutdown.clone(),
        )
    }

    pub async fn start(&self, engine: &SagaEngine<Script>, script: Script, launch: bool) -> Uuid {
        self.start_for(engine, "acme", script, launch).await
    }

    pub async fn start_for(
        &self,
        engine: &SagaEngine<Script>,
        tenant: &str,
        script: Script,
        launch: bool,
    ) -> Uuid {
        let tenant = TenantId::parse(tenant).expect("tenant");
        let mut tx = self.db.pool().begin().await.expect("begin");
        let started = engine
            .start(&mut tx, Uuid::now_v7(), &tenant, script)
            .await
            .expect("start");
        tx.commit().await.expect("commit");
        let id = started.id();
        if launch {
            engine.launch(started);
        }
        id
    }

    pub async fn wait_terminal(&self, id: Uuid) -> (String, Option<String>, serde_json::Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let row: (String, Option<String>, serde_json::Value) =
                sqlx::query_as("SELECT status, failure_reason, steps FROM saga WHERE id = $1")
                    .bind(id)
                    .fetch_one(self.db.pool())
                    .await
                    .expect("saga row");
            if row.0 == "COMPLETED" || row.0 == "COMPENSATED" {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "saga {id} still {} after 20 s: {}",
                row.0,
                row.2
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `id` made a call to `step` (compensation or not) `n` times.
    pub async fn wait_calls(&self, id: Uuid, step: &str, compensate: bool, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self
            .calls(id)
            .iter()
            .filter(|(s, c)| s == step && *c == compensate)
            .count()
            < n
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "saga {id} never called {step} (compensate: {compensate}) {n} times: {:?}",
                self.calls(id)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn calls(&self, id: Uuid) -> Vec<(String, bool)> {
        self.recorder
            .calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.saga == id)
            .map(|c| (c.step.clone(), c.compensate))
            .collect()
    }

    /// The saga's history as (state, step) pairs, oldest first.
    pub async fn history(&self, id: Uuid) -> Vec<(String, Option<String>, String)> {
        sqlx::query_as(
            "SELECT state, step, actor FROM saga_history WHERE saga_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await
        .expect("history")
    }
}

pub fn script(actions: &[(&str, &[&str])], compensations: &[(&str, &[&str])]) -> Script {
    let conv = |v: &[(&str, &[&str])]| {
        v.iter()
            .map(|(n, l)| (n.to_string(), l.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    Script {
        actions: conv(actions),
        compensations: conv(compensations),
        batch_fails: false,
    }
}

pub fn step_field(steps: &serde_json::Value, i: usize, field: &str) -> serde_json::Value {
    steps[i][field].clone()
}

/// Runs `engine`'s worker loop in the background.
pub fn run(engine: &SagaEngine<Script>) -> tokio::task::JoinHandle<()> {
    let engine = engine.clone();
    tokio::spawn(async move { engine.run().await })
}
