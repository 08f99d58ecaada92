//! What a saga is made of.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use uuid::Uuid;

use longship_tenant::TenantId;

/// Identity of a running saga, given to hooks.
#[derive(Debug, Clone)]
pub struct SagaInfo {
    /// The saga id.
    pub saga_id: Uuid,
    /// Its tenant.
    pub tenant: TenantId,
}

/// Context of one step attempt.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The saga id.
    pub saga_id: Uuid,
    /// Its tenant.
    pub tenant: TenantId,
    /// The step's name.
    pub step: &'static str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across attempts and restarts: `<saga id>:<step>` for the action,
    /// `<saga id>:<step>:compensate` for the compensation.
    pub idempotency_key: String,
}

/// How a step attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// A business rule said no; never retried. `reason` becomes the saga's failure reason.
    Rejected {
        /// Stable reason, e.g. `insufficient_stock`.
        reason: String,
        /// Detail for the step log.
        message: String,
    },
    /// Might succeed later (unavailable, deadline, conflict); retried with backoff.
    Transient(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Rejected { reason, message } => write!(f, "rejected ({reason}): {message}"),
            StepError::Transient(m) => write!(f, "transient: {m}"),
        }
    }
}

/// Where a step's action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A call to another service; no transaction is held while it runs.
    Remote,
    /// Local database work, committed in the same transaction as the step's success.
    Local,
}

/// One step of a saga over data `D`.
#[async_trait::async_trait]
pub trait Step<D>: Send + Sync {
    /// Name in the step log, e.g. `ReserveStock`.
    fn name(&self) -> &'static str;

    /// Remote (default) or local.
    fn kind(&self) -> StepKind {
        StepKind::Remote
    }

    /// The remote action; may update `data` (e.g. with prices a participant returned).
    async fn execute(&self, _ctx: &StepContext, _data: &mut D) -> Result<(), StepError> {
        Ok(())
    }

    /// The local action, in a transaction scoped to the saga's tenant that also commits the step.
    async fn execute_local(
        &self,
        _ctx: &StepContext,
        _tx: &mut PgConnection,
        _data: &mut D,
    ) -> Result<(), StepError> {
        Ok(())
    }

    /// Whether the step has a compensation.
    fn compensable(&self) -> bool {
        false
    }

    /// Undoes the action. Must be idempotent and must succeed even if the action never ran.
    async fn compensate(&self, _ctx: &StepContext, _data: &D) -> Result<(), StepError> {
        Ok(())
    }
}

/// A saga type.
#[async_trait::async_trait]
pub trait SagaDefinition: Send + Sync + 'static {
    /// The saga's data.
    type Data: Serialize + DeserializeOwned + Send + Sync + Clone + 'static;

    /// Stored in `saga.saga_type`; workers only claim their own type.
    fn saga_type(&self) -> &'static str;

    /// The steps, in order.
    fn steps(&self) -> &[Box<dyn Step<Self::Data>>];

    /// Runs in the transaction that marks the saga COMPENSATED (e.g. the order becomes CANCELLED).
    async fn on_compensated(
        &self,
        _tx: &mut PgConnection,
        _info: &SagaInfo,
        _data: &Self::Data,
        _reason: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Called after a saga's final transition committed (e.g. wake an outbox relay).
    fn after_finish(&self) {}
}
