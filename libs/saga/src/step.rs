//! What a saga is made of: a [`SagaDefinition`] (type, version, steps, and how the saga's own
//! state ends when it is compensated) and its [`Step`]s. Nothing here succeeds by default: a remote
//! step implements its call, a compensable step its compensation, and a step without compensation
//! says so where it is built.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use uuid::Uuid;

use longship_tenant::TenantId;

use crate::domain::StepShape;

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
    /// The action took effect, but the saga must not go on (e.g. the participant's answer cannot
    /// be used: a total that overflows). The step is compensated like a completed one, then every
    /// step before it; `reason` becomes the saga's failure reason.
    Abort {
        /// Stable reason, e.g. `amount_out_of_range`.
        reason: String,
        /// Detail for the step log.
        message: String,
    },
    /// Might succeed later (unavailable, deadline, conflict); retried with backoff.
    Transient(String),
}

impl StepError {
    /// What went wrong, for the step log and history (the reason too for refusals and aborts).
    pub fn detail(&self) -> String {
        match self {
            StepError::Rejected { reason, message } | StepError::Abort { reason, message } => {
                format!("{reason}: {message}")
            }
            StepError::Transient(message) => message.clone(),
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Rejected { reason, message } => write!(f, "rejected ({reason}): {message}"),
            StepError::Abort { reason, message } => write!(f, "aborted ({reason}): {message}"),
            StepError::Transient(m) => write!(f, "transient: {m}"),
        }
    }
}

/// One saga's call in a batch ([`RemoteAction::call_many`], [`Compensation::compensate_many`]):
/// its context and its data (which an action may update, as [`RemoteAction::call`] does).
#[derive(Debug, Clone)]
pub struct BatchItem<D> {
    /// The saga's step context (its own tenant and idempotency key).
    pub ctx: StepContext,
    /// The saga's data.
    pub data: D,
}

/// A step's action that calls another service. No transaction is held while it runs; it may
/// update the saga's data (e.g. with prices a participant returned).
///
/// An action that can serve several sagas with one call says so with [`RemoteAction::batched`]
/// and implements [`RemoteAction::call_many`]; the engine then hands it the calls of this step
/// that sagas in flight make at the same moment (never waiting for more: a lone saga's call goes
/// at once, through [`RemoteAction::call`]).
#[async_trait::async_trait]
pub trait RemoteAction<D>: Send + Sync {
    /// Makes the call (with `ctx.idempotency_key`, so a repeated call is a no-op at the participant).
    async fn call(&self, ctx: &StepContext, data: &mut D) -> Result<(), StepError>;

    /// Whether the engine may hand this action several sagas' calls at once.
    fn batched(&self) -> bool {
        false
    }

    /// The calls of several sagas, each answered on its own (in `items`' order, with the data as
    /// the call left it), exactly as [`RemoteAction::call`] would answer it: one saga's refusal
    /// or failure never fails another's. `Err`: the call failed as a whole (the participant is
    /// unreachable, does not know the batch call, answered another number of items); the engine
    /// then makes each saga's own [`RemoteAction::call`]. The default makes them one by one.
    async fn call_many(
        &self,
        items: Vec<BatchItem<D>>,
    ) -> Result<Vec<(D, Result<(), StepError>)>, StepError>
    where
        D: Send + 'static,
    {
        let mut out = Vec::with_capacity(items.len());
        for BatchItem { ctx, mut data } in items {
            let result = self.call(&ctx, &mut data).await;
            out.push((data, result));
        }
        Ok(out)
    }
}

/// A step's action that is local database work, run in a transaction scoped to the saga's tenant
/// that also records the step's success.
///
/// An action that can do the work of several sagas at once says so with
/// [`LocalAction::batched`] and implements [`LocalAction::run_many`]; the engine then runs the
/// sagas that reach the step at the same moment together, whatever their tenants, in one
/// transaction of their tenant set that also records each one's success.
#[async_trait::async_trait]
pub trait LocalAction<D>: Send + Sync {
    /// Does the work through `tx`.
    async fn run(
        &self,
        ctx: &StepContext,
        tx: &mut PgConnection,
        data: &mut D,
    ) -> Result<(), StepError>;

    /// Whether the engine may run several sagas' work at once.
    fn batched(&self) -> bool {
        false
    }

    /// The work of several sagas, of one tenant or several (each item's `ctx.tenant`), through
    /// `tx`, a transaction of their tenant set ([`longship_tenant::begin_set`]): row-level
    /// security keeps it inside the set, not an item inside its tenant, so every statement must
    /// key each item's rows by the item's own tenant (tenant ids beside the other item columns,
    /// joined on `(tenant_id, key)`). An error fails them all (nothing of the transaction is
    /// committed) and each saga then runs its own [`LocalAction::run`], so a failure that
    /// belongs to one saga reaches only that saga. The default runs them one by one, the
    /// transaction scoped to each item's tenant alone while its [`LocalAction::run`] runs.
    async fn run_many(
        &self,
        items: &mut [BatchItem<D>],
        tx: &mut PgConnection,
    ) -> Result<(), StepError>
    where
        D: Send + 'static,
    {
        for item in items.iter_mut() {
            longship_tenant::scope_to_tenant(&mut *tx, &item.ctx.tenant)
                .await
                .map_err(|e| StepError::Transient(e.to_string()))?;
            self.run(&item.ctx, &mut *tx, &mut item.data).await?;
        }
        Ok(())
    }
}

/// Undoes a remote action. Must be idempotent, and must succeed even if the action never ran (the
/// participant then records a tombstone so a late action is refused). It is retried until it
/// succeeds, so it reports only transient failures.
///
/// Like a [`RemoteAction`], a compensation may serve several sagas with one call
/// ([`Compensation::batched`], [`Compensation::compensate_many`]).
#[async_trait::async_trait]
pub trait Compensation<D>: Send + Sync {
    /// Makes the undo call (with `ctx.idempotency_key`).
    async fn compensate(&self, ctx: &StepContext, data: &D) -> Result<(), StepError>;

    /// Whether the engine may hand this compensation several sagas' calls at once.
    fn batched(&self) -> bool {
        false
    }

    /// The undo calls of several sagas, each answered on its own, in `items`' order; `Err`: the
    /// call failed as a whole (the engine then makes each saga's own
    /// [`Compensation::compensate`]). The default makes them one by one.
    async fn compensate_many(
        &self,
        items: &[BatchItem<D>],
    ) -> Result<Vec<Result<(), StepError>>, StepError>
    where
        D: Sync + 'static,
    {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.compensate(&item.ctx, &item.data).await);
        }
        Ok(out)
    }
}

pub(crate) enum Action<D> {
    Remote(Box<dyn RemoteAction<D>>),
    Local(Box<dyn LocalAction<D>>),
}

/// One step of a saga over data `D`.
pub struct Step<D> {
    name: &'static str,
    pub(crate) action: Action<D>,
    pub(crate) compensation: Option<Box<dyn Compensation<D>>>,
}

impl<D> std::fmt::Debug for Step<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("shape", &self.shape())
            .finish()
    }
}

impl<D> Step<D> {
    /// A call to another service, undone by `compensation` when a later step fails.
    pub fn remote(
        name: &'static str,
        action: impl RemoteAction<D> + 'static,
        compensation: impl Compensation<D> + 'static,
    ) -> Step<D> {
        Step {
            name,
            action: Action::Remote(Box::new(action)),
            compensation: Some(Box::new(compensation)),
        }
    }

    /// A call to another service whose effect needs no undoing (a read, a notification). A
    /// failure of a later step leaves its effect in place.
    pub fn remote_without_compensation(
        name: &'static str,
        action: impl RemoteAction<D> + 'static,
    ) -> Step<D> {
        Step {
            name,
            action: Action::Remote(Box::new(action)),
            compensation: None,
        }
    }

    /// Local database work committed with the step's success. It is not compensated: undo the
    /// saga's local state in [`SagaDefinition::on_compensated`].
    pub fn local(name: &'static str, action: impl LocalAction<D> + 'static) -> Step<D> {
        Step {
            name,
            action: Action::Local(Box::new(action)),
            compensation: None,
        }
    }

    /// The name in the step log, e.g. `ReserveStock`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the state machine needs to know about it.
    pub fn shape(&self) -> StepShape {
        StepShape {
            compensable: self.compensation.is_some(),
            local: matches!(self.action, Action::Local(_)),
        }
    }
}

/// One version of a saga type. Each saga records the version it started with and is always
/// executed and compensated with that version's steps; a change to the steps is a new version
/// beside the old one (see `docs/changing-a-saga.md`).
#[async_trait::async_trait]
pub trait SagaDefinition: Send + Sync + 'static {
    /// The saga's data (stored as JSON in the saga row). Versions of one type share it; a version
    /// that needs more adds fields with serde defaults.
    type Data: Serialize + DeserializeOwned + Send + Sync + Clone + 'static;

    /// Stored in `saga.saga_type`; engines claim only their own type.
    fn saga_type(&self) -> &'static str;

    /// This definition's version (1, 2, ...), stored with every saga it starts.
    fn version(&self) -> u32;

    /// The steps, in order.
    fn steps(&self) -> &[Step<Self::Data>];

    /// Runs in the transaction that marks the saga COMPENSATED: ends the saga's own state (e.g.
    /// the order becomes CANCELLED with `reason`).
    async fn on_compensated(
        &self,
        tx: &mut PgConnection,
        info: &SagaInfo,
        data: &Self::Data,
        reason: &str,
    ) -> Result<(), sqlx::Error>;
}
