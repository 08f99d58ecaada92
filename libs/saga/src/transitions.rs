//! Group commit of saga transitions: the transitions that concurrent sagas record at the same time
//! are written by one `UPDATE ... FROM unnest(...)` statement, one commit for all of them.
//!
//! Each saga still waits for the commit of its own transition before it makes its next call
//! (ARCHITECTURE.md section 6); what sagas share is the round trip, the statement and the commit.
//! Nothing waits to fill a batch: a writer takes whatever is queued when it is free, so a lone
//! saga's transition is written at once, and under load the transitions queued behind a statement
//! in flight go together in the next one. Every row stays fenced on its own claim.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::error::SagaError;
use crate::store::{Transition, statement_many};

struct Pending {
    transition: Transition,
    /// `true` when the row was written, `false` when the claim no longer holds.
    done: oneshot::Sender<Result<bool, SagaError>>,
}

/// The queue of transitions and the writers that empty it (started on first use, so an engine
/// can be built outside a runtime).
pub(crate) struct TransitionWriter {
    pool: PgPool,
    lease: Duration,
    writers: usize,
    max_batch: usize,
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
    statements: Arc<AtomicU64>,
}

impl TransitionWriter {
    pub(crate) fn new(
        pool: PgPool,
        lease: Duration,
        writers: usize,
        max_batch: usize,
    ) -> TransitionWriter {
        TransitionWriter {
            pool,
            lease,
            writers: writers.max(1),
            max_batch: max_batch.max(1),
            queue: OnceLock::new(),
            statements: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Statements written so far (each carrying one or more transitions).
    #[cfg(test)]
    pub(crate) fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Writes `transition` together with whatever other sagas are writing now, and returns once it
    /// is committed: `Ok(true)` if written, `Ok(false)` if the claim no longer holds.
    pub(crate) async fn write(&self, transition: Transition) -> Result<bool, SagaError> {
        let (done, wait) = oneshot::channel();
        let pending = Pending { transition, done };
        if let Err(mpsc::error::SendError(pending)) = self.queue().send(pending) {
            // no writer left (the runtime is shutting down): write it ourselves
            return write_one(
                &self.pool,
                self.lease,
                &pending.transition,
                &self.statements,
            )
            .await;
        }
        wait.await.unwrap_or_else(|_| {
            Err(SagaError::Database(sqlx::Error::Protocol(
                "the transition writer stopped before answering".into(),
            )))
        })
    }

    fn queue(&self) -> &mpsc::UnboundedSender<Pending> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..self.writers {
                tokio::spawn(run_writer(
                    self.pool.clone(),
                    self.lease,
                    self.max_batch,
                    Arc::clone(&rx),
                    Arc::clone(&self.statements),
                ));
            }
            tx
        })
    }
}

/// One writer: takes everything queued (up to `max_batch`) and writes it in one statement; exits
/// when the engine is gone.
async fn run_writer(
    pool: PgPool,
    lease: Duration,
    max_batch: usize,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    statements: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        write_batch(&pool, lease, std::mem::take(&mut batch), &statements).await;
    }
}

async fn write_one(
    pool: &PgPool,
    lease: Duration,
    transition: &Transition,
    statements: &AtomicU64,
) -> Result<bool, SagaError> {
    statements.fetch_add(1, Ordering::Relaxed);
    let written = transition
        .clone()
        .statement(lease)?
        .fetch_optional(pool)
        .await?;
    Ok(written.is_some())
}

/// Writes `batch` in one statement and answers each transition. If the statement fails, each
/// transition is written on its own, so one bad row cannot fail the others.
async fn write_batch(
    pool: &PgPool,
    lease: Duration,
    mut batch: Vec<Pending>,
    statements: &AtomicU64,
) {
    metrics::histogram!("saga_transition_batch_size").record(batch.len() as f64);
    // two executions of one saga (a stale one and the one that superseded it) may record at the
    // same moment: the statement's answer names rows by saga id, so they are written one by one
    let distinct = batch
        .iter()
        .map(|p| p.transition.id)
        .collect::<HashSet<_>>()
        .len();
    if batch.len() > 1 && distinct == batch.len() {
        // one lock order for every statement
        batch.sort_by_key(|p| p.transition.id);
        match write_many(pool, lease, &batch, statements).await {
            Ok(written) => {
                for p in batch {
                    let _ = p.done.send(Ok(written.contains(&p.transition.id)));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, transitions = batch.len(), "batched saga transitions failed; writing them one by one");
            }
        }
    }
    for p in batch {
        let result = write_one(pool, lease, &p.transition, statements).await;
        let _ = p.done.send(result);
    }
}

async fn write_many(
    pool: &PgPool,
    lease: Duration,
    batch: &[Pending],
    statements: &AtomicU64,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    statements.fetch_add(1, Ordering::Relaxed);
    let transitions: Vec<&Transition> = batch.iter().map(|p| &p.transition).collect();
    let rows = statement_many(&transitions, lease)?.fetch_all(pool).await?;
    rows.iter()
        .map(|r| sqlx::Row::try_get::<Uuid, _>(r, "id"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking
mod tests {
    use super::*;
    use longship_testkit::TestDb;

    /// `n` running sagas, the i-th claimed as `claim-i`.
    async fn sagas(db: &TestDb, n: usize) -> Vec<Uuid> {
        db.apply(&[&longship_tenant::SCHEMA, &crate::SCHEMA]).await;
        let mut ids = Vec::new();
        for i in 0..n {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO saga (id, saga_type, tenant_id, status, data, steps, deadline, locked_by, locked_until)
                 VALUES ($1, 't', 'acme', 'RUNNING', '{}', '[]', now() + interval '1 hour', $2, now() + interval '1 hour')",
            )
            .bind(id)
            .bind(format!("claim-{i}"))
            .execute(db.pool())
            .await
            .expect("insert saga");
            ids.push(id);
        }
        ids
    }

    /// One writer, so everything queued goes into its next statement.
    fn one_writer(db: &TestDb) -> Arc<TransitionWriter> {
        Arc::new(TransitionWriter::new(
            db.pool().clone(),
            Duration::from_secs(30),
            1,
            128,
        ))
    }

    fn transition(id: Uuid, claim: String, status: &'static str, step_index: i32) -> Transition {
        Transition {
            id,
            claim,
            status,
            data: serde_json::json!({ "step": step_index }),
            steps: serde_json::json!([{ "name": "a" }]),
            step_index,
            failure_reason: None,
            next_attempt_at: chrono::Utc::now(),
            terminal: status == "COMPLETED",
            current_step: Some("a".into()),
            attempts: 1,
            last_error: None,
            history: vec![crate::domain::HistoryEvent {
                state: crate::domain::HistoryState::Succeeded,
                step: Some("a".into()),
                attempt: Some(1),
                error: None,
            }],
        }
    }

    async fn write_all(
        writer: &Arc<TransitionWriter>,
        transitions: Vec<Transition>,
    ) -> Vec<Result<bool, SagaError>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in transitions.into_iter().enumerate() {
            let writer = Arc::clone(writer);
            set.spawn(async move { (i, writer.write(t).await) });
        }
        let mut results: Vec<_> = set.join_all().await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    // current-thread runtime: the forty writes are queued before the writer first runs
    #[tokio::test]
    async fn concurrent_transitions_share_one_statement_and_each_stays_fenced_on_its_claim() {
        let db = TestDb::new().await;
        let ids = sagas(&db, 40).await;
        let writer = one_writer(&db);
        let transitions = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                // every eighth comes from an execution whose claim was taken over
                let claim = if i % 8 == 3 {
                    "stale".to_owned()
                } else {
                    format!("claim-{i}")
                };
                let status = if i % 2 == 0 { "COMPLETED" } else { "RUNNING" };
                transition(*id, claim, status, 1)
            })
            .collect();
        let results = write_all(&writer, transitions).await;
        assert_eq!(
            writer.statements(),
            1,
            "forty queued transitions, one statement"
        );
        for (i, (id, result)) in ids.iter().zip(results).enumerate() {
            let written = result.expect("no database error");
            assert_eq!(written, i % 8 != 3, "saga {i}");
            let (status, step_index, locked_by): (String, i32, Option<String>) =
                sqlx::query_as("SELECT status, step_index, locked_by FROM saga WHERE id = $1")
                    .bind(id)
                    .fetch_one(db.pool())
                    .await
                    .expect("saga row");
            match (i % 8 == 3, i % 2 == 0) {
                (true, _) => {
                    assert_eq!(
                        (status.as_str(), step_index),
                        ("RUNNING", 0),
                        "stale write landed on {i}"
                    );
                    assert_eq!(locked_by.as_deref(), Some(format!("claim-{i}").as_str()));
                }
                (false, true) => assert_eq!(
                    (status.as_str(), step_index, locked_by),
                    ("COMPLETED", 1, None)
                ),
                (false, false) => {
                    assert_eq!((status.as_str(), step_index), ("RUNNING", 1));
                    assert_eq!(locked_by.as_deref(), Some(format!("claim-{i}").as_str()));
                }
            }
        }
    }

    // a stale execution and the one that superseded it record at the same moment (a batched
    // call answers both at once): only the current claim may learn that it wrote
    #[tokio::test]
    async fn two_executions_of_one_saga_in_one_batch_are_each_told_the_truth() {
        let db = TestDb::new().await;
        let ids = sagas(&db, 2).await;
        let writer = one_writer(&db);
        let results = write_all(
            &writer,
            vec![
                transition(ids[0], "stale".into(), "RUNNING", 3),
                transition(ids[0], "claim-0".into(), "RUNNING", 2),
                transition(ids[1], "claim-1".into(), "RUNNING", 2),
            ],
        )
        .await;
        let written: Vec<bool> = results.into_iter().map(|r| r.expect("no error")).collect();
        assert_eq!(written, [false, true, true]);
        let step_index: i32 = sqlx::query_scalar("SELECT step_index FROM saga WHERE id = $1")
            .bind(ids[0])
            .fetch_one(db.pool())
            .await
            .expect("row");
        assert_eq!(step_index, 2);
    }

    #[tokio::test]
    async fn a_row_the_batch_cannot_write_fails_alone() {
        let db = TestDb::new().await;
        let ids = sagas(&db, 10).await;
        let writer = one_writer(&db);
        let transitions = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                // a status the table's CHECK refuses fails the batch's statement
                let status = if i == 6 { "BOGUS" } else { "RUNNING" };
                transition(*id, format!("claim-{i}"), status, 2)
            })
            .collect();
        let results = write_all(&writer, transitions).await;
        for (i, result) in results.into_iter().enumerate() {
            match (i, result) {
                (6, Err(SagaError::Database(_))) => {}
                (6, other) => panic!("the bad row answered {other:?}"),
                (_, Ok(true)) => {}
                (i, other) => panic!("saga {i} answered {other:?}"),
            }
        }
        // one batch that failed, then each on its own
        assert_eq!(writer.statements(), 11);
        let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM saga WHERE step_index = 2")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(moved, 9);
    }
}
