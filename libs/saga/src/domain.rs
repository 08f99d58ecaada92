//! The saga state machine's pure parts: statuses, the step log, the history a transition records,
//! and [`Progress`], which decides every move (no I/O: the engine executes what it decides).

mod progress;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use progress::{Next, Progress, StepShape};

/// Saga status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SagaStatus {
    /// Executing steps forward.
    Running,
    /// Undoing completed steps in reverse.
    Compensating,
    /// Every step succeeded.
    Completed,
    /// Failed and fully compensated.
    Compensated,
}

impl SagaStatus {
    /// Every status.
    pub const ALL: [SagaStatus; 4] = [
        SagaStatus::Running,
        SagaStatus::Compensating,
        SagaStatus::Completed,
        SagaStatus::Compensated,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "RUNNING",
            SagaStatus::Compensating => "COMPENSATING",
            SagaStatus::Completed => "COMPLETED",
            SagaStatus::Compensated => "COMPENSATED",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<SagaStatus> {
        SagaStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Whether nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, SagaStatus::Completed | SagaStatus::Compensated)
    }
}

/// Step status in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Started (an attempt is in flight or its outcome is unknown).
    Running,
    /// The action succeeded.
    Succeeded,
    /// The action was rejected (no effect to undo).
    Failed,
    /// The compensation is being attempted.
    Compensating,
    /// The compensation succeeded.
    Compensated,
}

impl StepStatus {
    /// The text stored in the step log (and shown by APIs).
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "PENDING",
            StepStatus::Running => "RUNNING",
            StepStatus::Succeeded => "SUCCEEDED",
            StepStatus::Failed => "FAILED",
            StepStatus::Compensating => "COMPENSATING",
            StepStatus::Compensated => "COMPENSATED",
        }
    }
}

/// One entry of the step log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Status.
    pub status: StepStatus,
    /// Action attempts started.
    pub attempts: u32,
    /// Compensation attempts started.
    #[serde(default)]
    pub compensation_attempts: u32,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl StepRecord {
    /// A pending step.
    pub fn pending(name: &str) -> StepRecord {
        StepRecord {
            name: name.to_owned(),
            status: StepStatus::Pending,
            attempts: 0,
            compensation_attempts: 0,
            last_error: None,
        }
    }

    /// Whether the step may have had an effect that must be undone.
    pub fn needs_compensation(&self) -> bool {
        matches!(
            self.status,
            StepStatus::Succeeded | StepStatus::Running | StepStatus::Compensating
        )
    }
}

/// What a history entry records: a step reaching a status, a retry being scheduled, the saga
/// ending, or an operator's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HistoryState {
    /// An attempt of the step's action started (the first attempt of the first step is the
    /// saga's start; the first attempt of a later step follows the previous step's success).
    Running,
    /// The step's action succeeded.
    Succeeded,
    /// The step's action was refused by a business rule (`error` says why).
    Failed,
    /// An attempt failed transiently; the next one is scheduled (`error` says why).
    RetryScheduled,
    /// A compensation attempt started.
    Compensating,
    /// The step's compensation succeeded.
    Compensated,
    /// The saga finished: every step succeeded.
    Completed,
    /// The saga finished: everything it did is undone (`error` carries the failure reason).
    SagaCompensated,
    /// An operator made the next attempt due now.
    RetryRequested,
    /// An operator cancelled the saga (`error` carries the reason given).
    CancelRequested,
}

impl HistoryState {
    /// The stored and shown text.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryState::Running => "RUNNING",
            HistoryState::Succeeded => "SUCCEEDED",
            HistoryState::Failed => "FAILED",
            HistoryState::RetryScheduled => "RETRY_SCHEDULED",
            HistoryState::Compensating => "COMPENSATING",
            HistoryState::Compensated => "COMPENSATED",
            HistoryState::Completed => "COMPLETED",
            HistoryState::SagaCompensated => "SAGA_COMPENSATED",
            HistoryState::RetryRequested => "RETRY_REQUESTED",
            HistoryState::CancelRequested => "CANCEL_REQUESTED",
        }
    }
}

/// One thing that happened to a saga, recorded with the transition that made it happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// What happened.
    pub state: HistoryState,
    /// The step concerned, if any.
    pub step: Option<String>,
    /// The attempt concerned (of the action, or of the compensation), if any.
    pub attempt: Option<u32>,
    /// The error or reason, shortened to [`MAX_ERROR_CHARS`].
    pub error: Option<String>,
}

/// The longest error text kept in the step log and history.
pub const MAX_ERROR_CHARS: usize = 500;

/// `s` cut to [`MAX_ERROR_CHARS`] characters.
pub fn shorten(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

/// The highest step at or below `from` that still needs compensating, among `compensable` steps.
pub fn next_compensation(steps: &[StepRecord], compensable: &[bool], from: usize) -> Option<usize> {
    (0..=from.min(steps.len().saturating_sub(1)))
        .rev()
        .find(|&i| steps[i].needs_compensation() && compensable.get(i).copied().unwrap_or(false))
}

/// Backoff before retry `attempt` (1-based): exponential from `base`, capped at `max`, with up to
/// 25% jitter subtracted so replicas do not retry in lockstep.
pub fn backoff(
    attempt: u32,
    base: std::time::Duration,
    max: std::time::Duration,
    jitter: f64,
) -> std::time::Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let raw = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    raw.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}
