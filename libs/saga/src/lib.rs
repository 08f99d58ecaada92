//! Durable orchestrated sagas on Postgres, generic over the saga's data.
//!
//! A [`SagaDefinition`] is an ordered list of [`Step`]s; each has an action and optionally a
//! compensation. [`SagaEngine::start`] inserts a saga in the caller's transaction (so a business row
//! and its saga commit together) and [`SagaEngine::launch`] runs it right after that commit, with no
//! poll in between. Every transition is committed before the next action, in one row update (the step
//! log is a JSON array in the saga row), and the commit that ends one step also records the start of
//! the next, so a happy path costs one commit per step. The transitions that concurrent sagas
//! record at the same moment are written by one statement with one commit (group commit; each row
//! still fenced on its own claim, each saga still waiting for its commit), so under load sagas
//! share commits rather than queue for them.
//!
//! Outcomes of an action: success; business rejection ([`StepError::Rejected`]: compensate the
//! completed steps in reverse order); transient failure ([`StepError::Transient`], or a timeout:
//! retried with exponential backoff and jitter until the saga's deadline, then compensated with
//! reason `timeout`, including the step whose outcome is unknown — participants treat a
//! compensation for an action they never saw as a tombstone). Compensations are retried until they
//! succeed and are never skipped.
//!
//! Workers ([`SagaEngine::run`]) claim due sagas with `FOR UPDATE SKIP LOCKED` and hold a lease
//! (`locked_by`, `locked_until`); every update is fenced on `locked_by`, a token unique to each claim,
//! so a saga is never executed twice at once (not even by the same worker re-claiming a saga whose
//! lease lapsed under a stalled execution), and one whose worker died is resumed when its lease
//! expires. Each action
//! gets an idempotency key derived from saga id and step name, stable across retries and restarts.

mod domain;
mod engine;
mod step;
mod transitions;

pub use domain::{SagaStatus, StepRecord, StepStatus};
pub use engine::{EngineConfig, SagaEngine, SagaError, SagaRow, StartedSaga};
pub use step::{SagaDefinition, SagaInfo, Step, StepContext, StepError, StepKind};
