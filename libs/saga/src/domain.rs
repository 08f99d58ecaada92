//! The saga state machine's pure parts: statuses, the step log and which step runs next.

use serde::{Deserialize, Serialize};

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
        match s {
            "RUNNING" => Some(SagaStatus::Running),
            "COMPENSATING" => Some(SagaStatus::Compensating),
            "COMPLETED" => Some(SagaStatus::Completed),
            "COMPENSATED" => Some(SagaStatus::Compensated),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn step_status_text_is_its_stored_form() {
        use StepStatus::*;
        for status in [
            Pending,
            Running,
            Succeeded,
            Failed,
            Compensating,
            Compensated,
        ] {
            let stored = serde_json::to_value(status).unwrap();
            assert_eq!(stored, serde_json::Value::from(status.as_str()));
        }
    }

    fn rec(status: StepStatus) -> StepRecord {
        StepRecord {
            status,
            ..StepRecord::pending("s")
        }
    }

    #[test]
    fn compensation_order_is_reverse_and_skips_what_had_no_effect() {
        let steps = vec![
            rec(StepStatus::Succeeded),
            rec(StepStatus::Succeeded),
            rec(StepStatus::Failed),
        ];
        let compensable = [true, true, true];
        assert_eq!(next_compensation(&steps, &compensable, 2), Some(1));
        assert_eq!(next_compensation(&steps, &compensable, 0), Some(0));
        let steps = vec![
            rec(StepStatus::Compensated),
            rec(StepStatus::Compensated),
            rec(StepStatus::Failed),
        ];
        assert_eq!(next_compensation(&steps, &compensable, 2), None);
        // an uncertain (timed-out) step is compensated too
        let steps = vec![rec(StepStatus::Succeeded), rec(StepStatus::Running)];
        assert_eq!(next_compensation(&steps, &[true, true], 1), Some(1));
        // non-compensable steps are skipped
        assert_eq!(next_compensation(&steps, &[true, false], 1), Some(0));
    }

    proptest! {
        #[test]
        fn backoff_is_bounded_and_grows(attempt in 1u32..64, jitter in 0.0f64..1.0) {
            let base = Duration::from_millis(50);
            let max = Duration::from_secs(2);
            let d = backoff(attempt, base, max, jitter);
            prop_assert!(d <= max);
            prop_assert!(d >= base.mul_f64(0.75).min(max.mul_f64(0.75)));
            let next = backoff(attempt + 1, base, max, 0.0);
            prop_assert!(next >= backoff(attempt, base, max, 0.0));
        }
    }
}
