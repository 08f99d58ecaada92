//! The saga tables in Postgres (this library's schema, `migrations/`): a new saga's row and its
//! first history event, claiming due sagas, giving a claim back, and the statements that record
//! transitions with their history ([`transition`]).

mod transition;

pub(crate) use transition::{Transition, statement_many};

use chrono::{DateTime, Utc};
use longship_sql::Binds;
use longship_tenant::TenantId;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::domain::{HistoryEvent, Progress, SagaStatus, StepRecord};
use crate::error::SagaError;

/// The actor of the transitions the engine makes (operators are recorded by their JWT subject).
pub const ENGINE_ACTOR: &str = "engine";

const SAGA_INSERT: &str = "INSERT INTO saga (id, saga_type, version, tenant_id, status, data, steps, step_index,
                       deadline, next_attempt_at, locked_by, locked_until, traceparent, current_step,
                       attempts, created_at, updated_at)";

/// A new saga's row, claimed by the engine that prepared it with its first step started
/// ([`crate::SagaEngine::prepare`]), for the caller to insert with a statement of its own (beside
/// the business row it belongs to: one round trip for both):
///
/// ```no_run
/// # async fn f(conn: &mut sqlx::PgConnection, row: longship_saga::SagaRow) -> Result<(), sqlx::Error> {
/// use longship_sql::Binds;
/// let mut binds = Binds::new();
/// let sql = format!(
///     "WITH placed AS (INSERT INTO orders (id) VALUES ({}) ON CONFLICT DO NOTHING RETURNING id), {}
///      SELECT id FROM placed",
///     binds.push(uuid::Uuid::nil()),
///     row.ctes_from(&mut binds, "placed")
/// );
/// binds.query(sql)?.fetch_optional(conn).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SagaRow {
    pub(crate) id: Uuid,
    pub(crate) saga_type: &'static str,
    pub(crate) version: u32,
    pub(crate) tenant_id: String,
    pub(crate) data: serde_json::Value,
    pub(crate) steps: serde_json::Value,
    pub(crate) current_step: Option<String>,
    pub(crate) deadline: DateTime<Utc>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) claim: String,
    pub(crate) lease_secs: f64,
    pub(crate) traceparent: Option<String>,
    pub(crate) history: Vec<HistoryEvent>,
}

impl SagaRow {
    /// Two CTEs for the caller's `WITH` list: the saga row, inserted once for each row of `source`
    /// (a CTE of the same statement: with an insert `ON CONFLICT DO NOTHING ... RETURNING`, the
    /// saga is written only when the business row was), and its first history event. Parameters
    /// are bound in `binds` where they fall.
    pub fn ctes_from(self, binds: &mut Binds, source: &str) -> String {
        let history = history_values(binds, &self.history);
        let values = self.values(binds);
        format!(
            "saga_row AS ({SAGA_INSERT} SELECT {values} FROM {source} RETURNING id, tenant_id),
             saga_started AS ({})",
            history_insert_from("saga_row", &history)
        )
    }

    /// The saga on its own: its `INSERT` and its first history event, as one statement.
    pub fn insert(self, binds: &mut Binds) -> String {
        let history = history_values(binds, &self.history);
        let values = self.values(binds);
        format!(
            "WITH saga_row AS ({SAGA_INSERT} VALUES ({values}) RETURNING id, tenant_id)
             {}",
            history_insert_from("saga_row", &history)
        )
    }

    fn values(self, binds: &mut Binds) -> String {
        let now = binds.push(self.now);
        let lease = binds.push(self.lease_secs);
        let attempts: i32 = if self.current_step.is_some() { 1 } else { 0 };
        [
            binds.push(self.id).to_string(),
            binds.push(self.saga_type).to_string(),
            binds.push(self.version as i32).to_string(),
            binds.push(self.tenant_id).to_string(),
            "'RUNNING'".to_owned(),
            binds.push(self.data).to_string(),
            binds.push(self.steps).to_string(),
            "0".to_owned(),
            binds.push(self.deadline).to_string(),
            now.to_string(),
            binds.push(self.claim).to_string(),
            format!("{now} + make_interval(secs => {lease})"),
            binds.push(self.traceparent).to_string(),
            binds.push(self.current_step).to_string(),
            binds.push(attempts).to_string(),
            now.to_string(),
            now.to_string(),
        ]
        .join(", ")
    }
}

/// A history insert's values, bound as parallel arrays.
pub(crate) struct HistoryArrays([String; 4]);

impl HistoryArrays {
    /// The four placeholders: state, step, attempt, error.
    pub(crate) fn columns(&self) -> &[String; 4] {
        &self.0
    }
}

/// Binds `events` as four arrays.
pub(crate) fn history_values(binds: &mut Binds, events: &[HistoryEvent]) -> HistoryArrays {
    let states: Vec<&'static str> = events.iter().map(|e| e.state.as_str()).collect();
    let steps: Vec<Option<String>> = events.iter().map(|e| e.step.clone()).collect();
    let attempts: Vec<Option<i32>> = events.iter().map(|e| e.attempt.map(|a| a as i32)).collect();
    let errors: Vec<Option<String>> = events.iter().map(|e| e.error.clone()).collect();
    HistoryArrays([
        binds.push(states).to_string(),
        binds.push(steps).to_string(),
        binds.push(attempts).to_string(),
        binds.push(errors).to_string(),
    ])
}

/// `INSERT INTO saga_history` of the bound events for the saga whose id and tenant `source`
/// returns, in their order (nothing when `source` returns no row: a transition fenced out records
/// nothing).
pub(crate) fn history_insert_from(source: &str, h: &HistoryArrays) -> String {
    let [state, step, attempt, error] = h.columns();
    format!(
        "INSERT INTO saga_history (saga_id, tenant_id, state, step, attempt, error, actor)
         SELECT s.id, s.tenant_id, e.state, e.step, e.attempt, e.error, '{ENGINE_ACTOR}'
         FROM {source} s, unnest({state}::text[], {step}::text[], {attempt}::int4[], {error}::text[])
              WITH ORDINALITY AS e(state, step, attempt, error, n)
         ORDER BY e.n"
    )
}

/// A saga as claimed from the table, its data still JSON.
#[derive(Debug)]
pub(crate) struct ClaimedRow {
    pub id: Uuid,
    pub claim: String,
    pub version: u32,
    pub tenant: TenantId,
    pub progress: Progress,
    pub data: serde_json::Value,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What [`claim_due`] looks for.
pub(crate) struct ClaimQuery<'a> {
    pub worker_id: &'a str,
    pub lease_secs: f64,
    pub saga_type: &'static str,
    pub versions: &'a [i32],
    pub limit: i64,
}

/// Claims up to `limit` due sagas of the type and versions this worker runs (new ones whose
/// launcher died, retries released at shutdown or by an operator, sagas of dead workers whose
/// lease expired), each with a claim token of its own. Tenants take turns: each tenant's oldest
/// due saga first, then each one's second, and so on, so a tenant with a large backlog does not
/// hold back the others' (the conditions are checked again on the locked rows).
pub(crate) async fn claim_due(
    pool: &PgPool,
    q: &ClaimQuery<'_>,
) -> Result<Vec<ClaimedRow>, SagaError> {
    let rows = sqlx::query(
        "UPDATE saga SET locked_by = $1 || '.' || replace(gen_random_uuid()::text, '-', ''),
                locked_until = now() + make_interval(secs => $2), updated_at = now()
         WHERE id IN (
             SELECT id FROM saga
             WHERE id IN (
                 SELECT id FROM (
                     SELECT id, next_attempt_at,
                            row_number() OVER (PARTITION BY tenant_id ORDER BY next_attempt_at) AS turn
                     FROM saga
                     WHERE status IN ('RUNNING', 'COMPENSATING') AND saga_type = $3
                       AND version = ANY($5) AND next_attempt_at <= now()
                       AND (locked_until IS NULL OR locked_until < now())) due
                 ORDER BY turn, next_attempt_at LIMIT $4)
               AND status IN ('RUNNING', 'COMPENSATING') AND next_attempt_at <= now()
               AND (locked_until IS NULL OR locked_until < now())
             FOR UPDATE SKIP LOCKED)
         RETURNING id, locked_by, version, tenant_id, status, data, steps, step_index, failure_reason,
                   deadline, traceparent, created_at",
    )
    .bind(q.worker_id)
    .bind(q.lease_secs)
    .bind(q.saga_type)
    .bind(q.limit)
    .bind(q.versions)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
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
        let steps: Vec<StepRecord> = serde_json::from_value(row.try_get("steps")?)?;
        let step_index: i32 = row.try_get("step_index")?;
        let version: i32 = row.try_get("version")?;
        claimed.push(ClaimedRow {
            id: row.try_get("id")?,
            claim: row.try_get("locked_by")?,
            version: version.max(1) as u32,
            tenant,
            progress: Progress::resumed(
                status,
                steps,
                step_index.max(0) as usize,
                row.try_get("failure_reason")?,
                row.try_get("deadline")?,
            ),
            data: row.try_get("data")?,
            traceparent: row.try_get("traceparent")?,
            created_at: row.try_get("created_at")?,
        });
    }
    Ok(claimed)
}

/// Gives a claim back (shutdown, or an execution an operator interrupted): another worker may
/// claim the saga at once.
pub(crate) async fn release(pool: &PgPool, id: Uuid, claim: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE saga SET locked_by = NULL, locked_until = NULL, updated_at = now()
         WHERE id = $1 AND locked_by = $2",
    )
    .bind(id)
    .bind(claim)
    .execute(pool)
    .await?;
    Ok(())
}
