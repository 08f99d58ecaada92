//! The statements that record transitions: one saga's (in the transaction of a local step, or
//! alone) or many sagas' at once (group commit), each fenced on its claim, each with the history
//! events that led to it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use longship_sql::Binds;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use uuid::Uuid;

use super::{ENGINE_ACTOR, HistoryArrays, history_insert_from, history_values};
use crate::domain::HistoryEvent;

/// One saga's new state and the events that led to it, fenced on the claim of the execution that
/// writes it.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub id: Uuid,
    pub claim: String,
    pub status: &'static str,
    pub data: serde_json::Value,
    pub steps: serde_json::Value,
    pub step_index: i32,
    pub failure_reason: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    /// Terminal states drop the claim.
    pub terminal: bool,
    pub current_step: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub history: Vec<HistoryEvent>,
}

const SET_COLUMNS: &str = "status = t.status, data = t.data, steps = t.steps, step_index = t.step_index,
            failure_reason = t.failure_reason, next_attempt_at = t.next_attempt_at,
            locked_by = CASE WHEN t.terminal THEN NULL ELSE s.locked_by END,
            locked_until = CASE WHEN t.terminal THEN NULL
                                ELSE greatest(now(), t.next_attempt_at) + make_interval(secs => LEASE) END,
            current_step = t.current_step, attempts = t.attempts, last_error = t.last_error,
            updated_at = now()";

const ROW_COLUMNS: &str =
    "id, claim, status, data, steps, step_index, failure_reason, next_attempt_at,
                   terminal, current_step, attempts, last_error";

/// The casts of [`ROW_COLUMNS`], in order.
const ROW_TYPES: [&str; 12] = [
    "uuid",
    "text",
    "text",
    "jsonb",
    "jsonb",
    "int4",
    "text",
    "timestamptz",
    "bool",
    "text",
    "int4",
    "text",
];

type Statement = Query<'static, Postgres, PgArguments>;

impl Transition {
    /// The statement for this transition alone (what the transaction of a local step runs): the
    /// update, fenced on the claim, and its history events; it returns the id when written.
    pub(crate) fn statement(self, lease: Duration) -> Result<Statement, sqlx::Error> {
        let mut b = Binds::new();
        let history = history_values(&mut b, &self.history);
        let values = [
            b.push(self.id),
            b.push(self.claim),
            b.push(self.status),
            b.push(self.data),
            b.push(self.steps),
            b.push(self.step_index),
            b.push(self.failure_reason),
            b.push(self.next_attempt_at),
            b.push(self.terminal),
            b.push(self.current_step),
            b.push(self.attempts),
            b.push(self.last_error),
        ];
        let row: Vec<String> = values
            .iter()
            .zip(ROW_TYPES)
            .map(|(p, t)| format!("{p}::{t}"))
            .collect();
        let lease = b.push(lease.as_secs_f64());
        let sql = format!(
            "WITH written AS (
                 UPDATE saga s SET {}
                 FROM (VALUES ({})) AS t({ROW_COLUMNS})
                 WHERE s.id = t.id AND s.locked_by = t.claim
                 RETURNING s.id, s.tenant_id),
             history AS ({})
             SELECT id FROM written",
            SET_COLUMNS.replace("LEASE", &lease.to_string()),
            row.join(", "),
            history_insert_from("written", &history)
        );
        b.query(sql)
    }
}

/// The statement for the transitions of many sagas at once: one row of `unnest` per transition,
/// each fenced on its own claim, with every transition's history events (an event goes in only
/// when its saga's transition was written); it returns the ids it wrote.
pub(crate) fn statement_many(
    batch: &[&Transition],
    lease: Duration,
) -> Result<Statement, sqlx::Error> {
    let mut b = Binds::new();
    let t = || batch.iter().copied();
    let arrays = [
        b.push(t().map(|t| t.id).collect::<Vec<_>>()),
        b.push(t().map(|t| t.claim.clone()).collect::<Vec<_>>()),
        b.push(t().map(|t| t.status).collect::<Vec<_>>()),
        b.push(t().map(|t| t.data.clone()).collect::<Vec<_>>()),
        b.push(t().map(|t| t.steps.clone()).collect::<Vec<_>>()),
        b.push(t().map(|t| t.step_index).collect::<Vec<_>>()),
        b.push(t().map(|t| t.failure_reason.clone()).collect::<Vec<_>>()),
        b.push(t().map(|t| t.next_attempt_at).collect::<Vec<_>>()),
        b.push(t().map(|t| t.terminal).collect::<Vec<_>>()),
        b.push(t().map(|t| t.current_step.clone()).collect::<Vec<_>>()),
        b.push(t().map(|t| t.attempts).collect::<Vec<_>>()),
        b.push(t().map(|t| t.last_error.clone()).collect::<Vec<_>>()),
    ];
    let arrays: Vec<String> = arrays
        .iter()
        .zip(ROW_TYPES)
        .map(|(p, t)| format!("{p}::{t}[]"))
        .collect();
    let lease = b.push(lease.as_secs_f64());
    let owners: Vec<Uuid> = t()
        .flat_map(|t| t.history.iter().map(move |_| t.id))
        .collect();
    let events: Vec<HistoryEvent> = t().flat_map(|t| t.history.iter().cloned()).collect();
    let owners = b.push(owners);
    let history = history_values(&mut b, &events);
    let sql = format!(
        "WITH written AS (
             UPDATE saga s SET {}
             FROM unnest({}) AS t({ROW_COLUMNS})
             WHERE s.id = t.id AND s.locked_by = t.claim
             RETURNING s.id, s.tenant_id),
         history AS ({})
         SELECT id FROM written",
        SET_COLUMNS.replace("LEASE", &lease.to_string()),
        arrays.join(", "),
        history_insert_many(&owners.to_string(), &history)
    );
    b.query(sql)
}

fn history_insert_many(owners: &str, h: &HistoryArrays) -> String {
    let [state, step, attempt, error] = h.columns();
    format!(
        "INSERT INTO saga_history (saga_id, tenant_id, state, step, attempt, error, actor)
         SELECT e.saga_id, w.tenant_id, e.state, e.step, e.attempt, e.error, '{ENGINE_ACTOR}'
         FROM unnest({owners}::uuid[], {state}::text[], {step}::text[], {attempt}::int4[], {error}::text[])
              WITH ORDINALITY AS e(saga_id, state, step, attempt, error, n)
              JOIN written w ON w.id = e.saga_id
         ORDER BY e.n"
    )
}

impl Transition {
    /// The transition that records `progress` (its events since the last record are taken) and
    /// `data` for the saga `id` under `claim`.
    pub(crate) fn of<D: serde::Serialize>(
        id: uuid::Uuid,
        claim: &str,
        progress: &mut crate::domain::Progress,
        data: &D,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<Transition, crate::error::SagaError> {
        Ok(Transition {
            id,
            claim: claim.to_owned(),
            status: progress.status.as_str(),
            data: serde_json::to_value(data)?,
            steps: serde_json::to_value(&progress.steps)?,
            step_index: progress.step_index as i32,
            failure_reason: progress.failure_reason.clone(),
            next_attempt_at,
            terminal: progress.status.is_terminal(),
            current_step: progress.current_step().map(str::to_owned),
            attempts: progress.current_attempts() as i32,
            last_error: progress.last_error().map(str::to_owned),
            history: progress.take_events(),
        })
    }
}
