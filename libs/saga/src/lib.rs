//! Durable orchestrated sagas on Postgres, versioned, generic over the saga's data.
//!
//! A [`SagaDefinition`] is a type, a version and an ordered list of [`Step`]s: remote steps (a
//! call to another service, with a [`Compensation`] or explicitly without one) and local steps
//! (database work committed with the step's success). An engine runs the [`SagaVersions`] of one
//! type this build knows: each saga records the version it started with and is always executed and
//! compensated with it; a replica claims only versions it knows.
//!
//! [`SagaEngine::prepare`] gives the row of a new saga for the caller to insert beside its business
//! row in one statement ([`SagaRow::ctes_from`]), and [`SagaEngine::launch`] runs it right after
//! that commit, with no poll in between. Every transition is committed before the next call, in one
//! row update that also writes the transition's history events (the step log is a JSON array in the
//! saga row), and the commit that ends one step also records the start of the next, so a happy path
//! costs one commit per step. Transitions that concurrent sagas record at the same moment share one
//! statement and one commit (group commit), each row still fenced on its own claim.
//!
//! The moves are decided by a pure state machine ([`domain::Progress`]): success; business
//! rejection ([`StepError::Rejected`]: compensate the completed steps in reverse order); an action
//! that took effect but cannot go on ([`StepError::Abort`]: compensate it too); transient failure
//! ([`StepError::Transient`], or a timeout: retried with exponential backoff and jitter until the
//! deadline, then compensated with reason `timeout`, including the step whose outcome is unknown;
//! participants treat a compensation for an action they never saw as a tombstone). Compensations
//! are retried until they succeed and are never skipped.
//!
//! Workers ([`SagaEngine::run`]) claim due sagas with `FOR UPDATE SKIP LOCKED` and hold a lease
//! (`locked_by`, `locked_until`); every update is fenced on `locked_by`, a token unique to each
//! claim, so a saga is never executed twice at once, and one whose worker died is resumed when its
//! lease expires. Operators ([`admin::SagaAdmin`]) retry or cancel a saga by taking its claim away
//! (fencing out and stopping the execution in flight) and making it due now. Each action gets an
//! idempotency key derived from saga id and step name, stable across retries and restarts.
//!
//! The tables are this library's own schema ([`SCHEMA`]).

pub mod admin;
mod admin_http;
mod batches;
pub mod domain;
mod engine;
mod error;
mod execution;
mod gauges;
pub mod hold;
mod local_batches;
mod metric_families;
mod running;
mod slots;
mod step;
mod store;
mod transitions;
mod versions;
mod view;

pub use admin_http::{AdminApiDoc, CancelRequest, SagaListQuery, admin_routes};
pub use domain::{HistoryState, SagaStatus, StepRecord, StepStatus};
pub use engine::{EngineConfig, OPERATOR_CHANNEL, SagaEngine, StartedSaga};
pub use error::SagaError;
pub use gauges::{AGE_BUCKETS, STUCK_SQL};
pub use step::{
    BatchItem, Compensation, LocalAction, RemoteAction, SagaDefinition, SagaInfo, Step,
    StepContext, StepError,
};
pub use store::{ENGINE_ACTOR, SagaRow};
pub use versions::{SagaData, SagaVersions};
pub use view::{SagaStepView, SagaView};

/// The saga tables (`saga`, `saga_history`), applied by the runtime before the migrations of a
/// service that runs sagas.
pub static SCHEMA: longship_sql::Schema = longship_sql::Schema::new("saga", &MIGRATOR);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
