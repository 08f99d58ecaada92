//! What operators see and do: sagas listed and filtered (stuck ones included), one saga with its
//! data, steps and history, and the two actions, retry (the next attempt is due now) and cancel
//! (compensate everything done so far). An action takes the saga's claim away, so the execution
//! in flight (on any replica) is fenced out and stopped, and another claim resumes it at once: the
//! action is never lost and never applied twice. Each action is written with a history entry
//! naming the operator, in the caller's transaction when it gives one (so its audit record commits
//! with it).

use chrono::{DateTime, Utc};
use longship_errors::{Error, PlatformCode};
use longship_tenant::TenantId;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{Progress, SagaStatus, StepRecord, shorten};
use crate::engine::OPERATOR_CHANNEL;
use crate::gauges::STUCK_SQL;

longship_errors::error_codes! {
    /// The saga library's error codes (the operators' API).
    pub enum SagaCode in "saga" {
        /// Unknown saga.
        NotFound = ("saga.not_found", NotFound, "no saga with this id (for a tenant admin: in their tenant)"),
        /// Finished.
        Terminal = ("saga.terminal", Conflict, "the saga has finished: nothing to retry or cancel"),
        /// Cancel twice.
        Compensating = ("saga.compensating", Conflict, "the saga is compensating already"),
    }
}

/// The failure reason of a saga an operator cancelled.
pub const OPERATOR_CANCELLED: &str = "operator_cancelled";

/// Which sagas [`SagaAdmin::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct SagaFilter {
    /// Only this status.
    pub status: Option<SagaStatus>,
    /// Only this tenant (a tenant admin's own, always).
    pub tenant: Option<TenantId>,
    /// Only stuck (true) or only not stuck (false) sagas: stuck means not terminal, and past the
    /// deadline or with the current step (or compensation) attempted 5 times or more.
    pub stuck: Option<bool>,
    /// Only this saga type.
    pub saga_type: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Page size (1-100).
    pub limit: i64,
}

/// A page of sagas, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SagaPage {
    /// The sagas.
    pub items: Vec<SagaSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<Uuid>,
}

/// A saga at a glance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SagaSummary {
    /// The saga id.
    pub id: Uuid,
    /// Its type, e.g. `place_order`.
    pub saga_type: String,
    /// The version of its definition.
    pub version: u32,
    /// Its tenant.
    pub tenant_id: String,
    /// RUNNING, COMPENSATING, COMPLETED or COMPENSATED.
    pub status: String,
    /// The step being executed or compensated.
    pub step_index: u32,
    /// That step's name.
    pub current_step: Option<String>,
    /// Attempts of that step's action (running) or compensation (compensating).
    pub attempts: u32,
    /// Why it is compensating or compensated.
    pub failure_reason: Option<String>,
    /// The current step's last error.
    pub last_error: Option<String>,
    /// After this no action is attempted: it compensates with reason `timeout`.
    pub deadline: DateTime<Utc>,
    /// When its next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One step of a saga, for operators.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SagaStepDetail {
    /// The step's name.
    pub name: String,
    /// PENDING, RUNNING, SUCCEEDED, FAILED, COMPENSATING or COMPENSATED.
    pub status: String,
    /// Attempts of its action.
    pub attempts: u32,
    /// Its last error.
    pub last_error: Option<String>,
}

/// One entry of a saga's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What: RUNNING, SUCCEEDED, FAILED, RETRY_SCHEDULED, COMPENSATING, COMPENSATED (a step);
    /// COMPLETED, SAGA_COMPENSATED (the saga); RETRY_REQUESTED, CANCEL_REQUESTED (an operator).
    pub state: String,
    /// The step concerned.
    pub step: Option<String>,
    /// The attempt concerned.
    pub attempt: Option<u32>,
    /// The error, or the operator's reason.
    pub error: Option<String>,
    /// `engine`, or the operator's JWT subject.
    pub actor: String,
}

/// A saga with its data, steps and history (oldest first).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SagaDetail {
    /// The summary's fields.
    #[serde(flatten)]
    pub summary: SagaSummary,
    /// The saga's data.
    pub data: serde_json::Value,
    /// The step log.
    pub steps: Vec<SagaStepDetail>,
    /// Every transition, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such saga (or another tenant's).
    #[error("no such saga")]
    NotFound,
    /// The saga has finished.
    #[error("the saga has finished")]
    Terminal,
    /// The saga is compensating already (cancel).
    #[error("the saga is compensating already")]
    AlreadyCompensating,
    /// A request value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<AdminError> for Error {
    fn from(e: AdminError) -> Error {
        match e {
            AdminError::NotFound => Error::from_code(SagaCode::NotFound),
            AdminError::Terminal => Error::from_code(SagaCode::Terminal),
            AdminError::AlreadyCompensating => Error::from_code(SagaCode::Compensating),
            AdminError::Invalid(message) => Error::coded(PlatformCode::Invalid, message),
            AdminError::Database(e) => Error::from_sqlx(e, &[]),
        }
    }
}

const SUMMARY_COLUMNS: &str = "id, saga_type, version, tenant_id, status, step_index, current_step,
    attempts, failure_reason, last_error, deadline, next_attempt_at, created_at, updated_at";

/// Operators' view of the sagas of one database, and their actions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SagaAdmin {
    pool: PgPool,
}

impl SagaAdmin {
    /// Over the sagas in `pool`'s database (the pool must reach every tenant's sagas).
    pub fn new(pool: PgPool) -> SagaAdmin {
        SagaAdmin { pool }
    }

    /// A page of sagas, newest first (saga ids are time-ordered UUID v7).
    pub async fn list(&self, filter: &SagaFilter) -> Result<SagaPage, AdminError> {
        if !(1..=100).contains(&filter.limit) {
            return Err(AdminError::Invalid("limit must be 1-100".into()));
        }
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM saga
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR tenant_id = $2)
               AND ($3::text IS NULL OR saga_type = $3) AND ($4::bool IS NULL OR ({STUCK_SQL}) = $4)
               AND ($5::uuid IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.status.map(SagaStatus::as_str))
            .bind(filter.tenant.as_ref().map(TenantId::as_str))
            .bind(filter.saga_type.as_deref())
            .bind(filter.stuck)
            .bind(filter.cursor)
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = (items.len() as i64 == filter.limit)
            .then(|| items.last().map(|s| s.id))
            .flatten();
        Ok(SagaPage { items, next_cursor })
    }

    /// One saga with its data, steps and history; `tenant` limits it to that tenant's sagas
    /// (another tenant's is [`AdminError::NotFound`]).
    pub async fn get(&self, id: Uuid, tenant: Option<&TenantId>) -> Result<SagaDetail, AdminError> {
        let sql = format!("SELECT {SUMMARY_COLUMNS}, data, steps FROM saga WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(AdminError::NotFound)?;
        let summary = summary(&row)?;
        if tenant.is_some_and(|t| t.as_str() != summary.tenant_id) {
            return Err(AdminError::NotFound);
        }
        let steps: Vec<StepRecord> = serde_json::from_value(row.try_get("steps")?)
            .map_err(|e| AdminError::Database(sqlx::Error::Decode(Box::new(e))))?;
        let history = sqlx::query(
            "SELECT at, state, step, attempt, error, actor FROM saga_history
             WHERE saga_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(HistoryEntry {
                at: r.try_get("at")?,
                state: r.try_get("state")?,
                step: r.try_get("step")?,
                attempt: r
                    .try_get::<Option<i32>, _>("attempt")?
                    .map(|a| a.max(0) as u32),
                error: r.try_get("error")?,
                actor: r.try_get("actor")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(SagaDetail {
            data: row.try_get("data")?,
            steps: steps
                .into_iter()
                .map(|s| SagaStepDetail {
                    name: s.name,
                    status: s.status.as_str().to_owned(),
                    attempts: s.attempts,
                    last_error: s.last_error,
                })
                .collect(),
            summary,
            history,
        })
    }

    /// Makes the saga's next attempt due now (backoff cleared), in its own transaction.
    pub async fn retry(
        &self,
        id: Uuid,
        tenant: Option<&TenantId>,
        actor: &str,
    ) -> Result<(), AdminError> {
        let mut tx = self.pool.begin().await?;
        self.retry_in(&mut tx, id, tenant, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels a running saga: every step that may have had an effect is compensated in reverse
    /// order and the saga ends with reason `operator_cancelled` (the operator's `reason` goes to
    /// its history). In its own transaction.
    pub async fn cancel(
        &self,
        id: Uuid,
        tenant: Option<&TenantId>,
        actor: &str,
        reason: &str,
    ) -> Result<(), AdminError> {
        let mut tx = self.pool.begin().await?;
        self.cancel_in(&mut tx, id, tenant, actor, reason).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`SagaAdmin::retry`] in the caller's transaction (it takes effect when that commits).
    pub async fn retry_in(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        tenant: Option<&TenantId>,
        actor: &str,
    ) -> Result<(), AdminError> {
        let locked = lock(conn, id, tenant).await?;
        if locked.progress.status.is_terminal() {
            return Err(AdminError::Terminal);
        }
        sqlx::query(
            "WITH changed AS (
                 UPDATE saga SET next_attempt_at = now(), locked_by = NULL, locked_until = NULL, updated_at = now()
                 WHERE id = $1 RETURNING id, tenant_id, current_step, attempts)
             INSERT INTO saga_history (saga_id, tenant_id, state, step, attempt, actor)
             SELECT id, tenant_id, 'RETRY_REQUESTED', current_step, attempts, $2 FROM changed",
        )
        .bind(id)
        .bind(actor)
        .execute(&mut *conn)
        .await?;
        notify(conn, id).await
    }

    /// [`SagaAdmin::cancel`] in the caller's transaction (it takes effect when that commits).
    pub async fn cancel_in(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        tenant: Option<&TenantId>,
        actor: &str,
        reason: &str,
    ) -> Result<(), AdminError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(AdminError::Invalid(
                "reason must be 1-500 characters".into(),
            ));
        }
        let mut locked = lock(conn, id, tenant).await?;
        match locked.progress.status {
            SagaStatus::Completed | SagaStatus::Compensated => return Err(AdminError::Terminal),
            SagaStatus::Compensating => return Err(AdminError::AlreadyCompensating),
            SagaStatus::Running => {}
        }
        let progress = &mut locked.progress;
        progress.cancel(OPERATOR_CANCELLED);
        sqlx::query(
            "WITH changed AS (
                 UPDATE saga SET status = $2, failure_reason = $3, step_index = $4, current_step = $5,
                        next_attempt_at = now(), locked_by = NULL, locked_until = NULL, updated_at = now()
                 WHERE id = $1 RETURNING id, tenant_id, current_step, attempts)
             INSERT INTO saga_history (saga_id, tenant_id, state, step, attempt, error, actor)
             SELECT id, tenant_id, 'CANCEL_REQUESTED', current_step, attempts, $6, $7 FROM changed",
        )
        .bind(id)
        .bind(progress.status.as_str())
        .bind(progress.failure_reason.as_deref())
        .bind(progress.step_index as i32)
        .bind(progress.current_step())
        .bind(shorten(reason))
        .bind(actor)
        .execute(&mut *conn)
        .await?;
        notify(conn, id).await
    }
}

struct Locked {
    progress: Progress,
}

/// Locks the saga's row for the action (waiting for a transition being written) and reads where
/// it is.
async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&TenantId>,
) -> Result<Locked, AdminError> {
    let row = sqlx::query(
        "SELECT tenant_id, status, steps, step_index, failure_reason, deadline
         FROM saga WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(AdminError::NotFound)?;
    let owner: String = row.try_get("tenant_id")?;
    if tenant.is_some_and(|t| t.as_str() != owner) {
        return Err(AdminError::NotFound);
    }
    let status: String = row.try_get("status")?;
    let status = SagaStatus::parse(&status).ok_or_else(|| {
        AdminError::Database(sqlx::Error::Decode(
            format!("unknown saga status {status:?}").into(),
        ))
    })?;
    let steps: Vec<StepRecord> = serde_json::from_value(row.try_get("steps")?)
        .map_err(|e| AdminError::Database(sqlx::Error::Decode(Box::new(e))))?;
    let step_index: i32 = row.try_get("step_index")?;
    Ok(Locked {
        progress: Progress::resumed(
            status,
            steps,
            step_index.max(0) as usize,
            row.try_get("failure_reason")?,
            row.try_get("deadline")?,
        ),
    })
}

/// Tells every engine (when the caller's transaction commits) that an operator changed saga `id`.
async fn notify(conn: &mut PgConnection, id: Uuid) -> Result<(), AdminError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(OPERATOR_CHANNEL)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

fn summary(row: &PgRow) -> Result<SagaSummary, sqlx::Error> {
    let version: i32 = row.try_get("version")?;
    let step_index: i32 = row.try_get("step_index")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(SagaSummary {
        id: row.try_get("id")?,
        saga_type: row.try_get("saga_type")?,
        version: version.max(1) as u32,
        tenant_id: row.try_get("tenant_id")?,
        status: row.try_get("status")?,
        step_index: step_index.max(0) as u32,
        current_step: row.try_get("current_step")?,
        attempts: attempts.max(0) as u32,
        failure_reason: row.try_get("failure_reason")?,
        last_error: row.try_get("last_error")?,
        deadline: row.try_get("deadline")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saga_codes_are_in_the_catalogue() {
        let catalogue = include_str!("../../../docs/errors.md");
        if let Err(e) = longship_errors::check_catalogue::<SagaCode>(catalogue) {
            panic!("{e}");
        }
    }
}
