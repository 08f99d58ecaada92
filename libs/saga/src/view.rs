//! The saga as a business API shows it beside the entity it belongs to (e.g. an order's `saga`
//! object), read with the entity in one query.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::PgRow;
use utoipa::ToSchema;

use crate::domain::{Progress, StepRecord};

/// One step of a saga, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaStepView {
    /// The step's name, e.g. `ReserveStock`.
    pub name: String,
    /// PENDING, RUNNING, SUCCEEDED, FAILED, COMPENSATING or COMPENSATED.
    pub status: String,
    /// Attempts of the step's action.
    pub attempts: u32,
}

/// A saga, as shown beside its entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaView {
    /// RUNNING, COMPENSATING, COMPLETED or COMPENSATED.
    pub status: String,
    /// The version of the saga's definition it runs (and is compensated) with.
    pub version: u32,
    /// The step log.
    pub steps: Vec<SagaStepView>,
}

impl SagaView {
    /// The columns [`SagaView::from_row`] reads, from the saga table under `alias` (for a `LEFT
    /// JOIN saga <alias> ON <alias>.id = ...` in the entity's query).
    pub fn columns(alias: &str) -> String {
        format!(
            "{alias}.status AS saga_status, {alias}.version AS saga_version, {alias}.steps AS saga_steps"
        )
    }

    /// The view from a row that selected [`SagaView::columns`]; `None` when the join found no saga.
    pub fn from_row(row: &PgRow) -> Result<Option<SagaView>, sqlx::Error> {
        let status: Option<String> = row.try_get("saga_status")?;
        let version: Option<i32> = row.try_get("saga_version")?;
        let steps: Option<serde_json::Value> = row.try_get("saga_steps")?;
        let (Some(status), Some(version), Some(steps)) = (status, version, steps) else {
            return Ok(None);
        };
        let steps: Vec<StepRecord> =
            serde_json::from_value(steps).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Some(SagaView {
            status,
            version: version.max(1) as u32,
            steps: steps.iter().map(step_view).collect(),
        }))
    }

    /// The view of a saga as it starts (what a create answer shows without reading it back).
    pub fn starting(version: u32, progress: &Progress) -> SagaView {
        SagaView {
            status: progress.status.as_str().to_owned(),
            version,
            steps: progress.steps.iter().map(step_view).collect(),
        }
    }
}

fn step_view(step: &StepRecord) -> SagaStepView {
    SagaStepView {
        name: step.name.clone(),
        status: step.status.as_str().to_owned(),
        attempts: step.attempts,
    }
}
