//! A saga this process executes: its claim, its progress and its data.

use chrono::{DateTime, Utc};
use longship_tenant::TenantId;
use uuid::Uuid;

use crate::domain::Progress;
use crate::store::ClaimedRow;
use crate::versions::SagaData;

/// One saga being executed by this process, under its claim.
pub(crate) struct Execution<D> {
    pub id: Uuid,
    /// The claim this execution holds (`locked_by` as it wrote it): unique per claim, so an
    /// execution that outlived its lease is fenced out even when its own worker claimed again.
    pub claim: String,
    pub version: u32,
    pub tenant: TenantId,
    pub progress: Progress,
    pub data: D,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl<D: SagaData> Execution<D> {
    pub(crate) fn from_claimed(row: ClaimedRow) -> Result<Execution<D>, serde_json::Error> {
        Ok(Execution {
            data: serde_json::from_value(row.data)?,
            id: row.id,
            claim: row.claim,
            version: row.version,
            tenant: row.tenant,
            progress: row.progress,
            traceparent: row.traceparent,
            created_at: row.created_at,
        })
    }
}
