//! [`Progress`]: where a saga is (everything about it but its data) and every move it can make.

use chrono::{DateTime, Utc};

use super::{
    HistoryEvent, HistoryState, SagaStatus, StepRecord, StepStatus, next_compensation, shorten,
};

/// What the state machine needs to know about a step of the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    /// The step has a compensation (its effect can be undone).
    pub compensable: bool,
    /// The step's action is local database work, committed with the transition that records it.
    pub local: bool,
}

/// What the engine does next with a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run step `step`'s action, attempt `attempt`.
    Act {
        /// The step's index.
        step: usize,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Run step `step`'s compensation, attempt `attempt`.
    Compensate {
        /// The step's index.
        step: usize,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Every step that needed it is compensated: record the end (with the definition's own undo
    /// of the saga's local state, in the same transaction).
    FinishCompensated,
    /// Nothing: the saga is terminal.
    Done,
}

/// Where a saga is and what happened since it was last recorded. Every move is a method; the
/// engine runs the calls these moves ask for and records the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The saga's status.
    pub status: SagaStatus,
    /// The step log.
    pub steps: Vec<StepRecord>,
    /// The step being executed, or compensated.
    pub step_index: usize,
    /// Why the saga is compensating (set once).
    pub failure_reason: Option<String>,
    /// After this, no action is attempted any more: the saga compensates with reason `timeout`.
    pub deadline: DateTime<Utc>,
    events: Vec<HistoryEvent>,
    dirty: bool,
}

impl Progress {
    /// A new saga over steps `names`, its first step's first attempt started.
    pub fn start(names: &[&str], deadline: DateTime<Utc>) -> Progress {
        let mut steps: Vec<StepRecord> = names.iter().map(|n| StepRecord::pending(n)).collect();
        if let Some(first) = steps.first_mut() {
            first.status = StepStatus::Running;
            first.attempts = 1;
        }
        let mut progress = Progress::resumed(SagaStatus::Running, steps, 0, None, deadline);
        progress.record(HistoryState::Running, 0, 1, None);
        progress
    }

    /// A saga as it was recorded.
    pub fn resumed(
        status: SagaStatus,
        steps: Vec<StepRecord>,
        step_index: usize,
        failure_reason: Option<String>,
        deadline: DateTime<Utc>,
    ) -> Progress {
        Progress {
            status,
            steps,
            step_index,
            failure_reason,
            deadline,
            events: Vec::new(),
            dirty: false,
        }
    }

    /// After a claim: starts the next attempt of whatever was in progress (the outcome of the
    /// previous one is unknown, so it is made again with the same idempotency key).
    pub fn begin_resumed_attempt(&mut self) {
        let i = self.step_index;
        match self.status {
            SagaStatus::Running if i < self.steps.len() => {
                self.steps[i].status = StepStatus::Running;
                self.steps[i].attempts += 1;
                let attempt = self.steps[i].attempts;
                self.record(HistoryState::Running, i, attempt, None);
            }
            SagaStatus::Compensating
                if i < self.steps.len() && self.steps[i].needs_compensation() =>
            {
                self.steps[i].status = StepStatus::Compensating;
                self.steps[i].compensation_attempts += 1;
                let attempt = self.steps[i].compensation_attempts;
                self.record(HistoryState::Compensating, i, attempt, None);
            }
            _ => {}
        }
    }

    /// The next move at time `now`. Past the deadline a running saga starts compensating (reason
    /// `timeout`, including the step whose outcome is unknown); a compensation about to start is
    /// marked as started first (the engine records that before calling).
    pub fn next(&mut self, now: DateTime<Utc>, shapes: &[StepShape]) -> Next {
        match self.status {
            SagaStatus::Completed | SagaStatus::Compensated => Next::Done,
            SagaStatus::Running if self.step_index >= self.steps.len() => {
                self.complete();
                Next::Done
            }
            SagaStatus::Running if now >= self.deadline => {
                let i = self.step_index;
                if !shapes.get(i).is_some_and(|s| s.compensable) {
                    // a step without compensation (local work rolls back with its transaction)
                    // is given up: it failed, it is not left running
                    let attempt = self.steps[i].attempts;
                    self.steps[i].status = StepStatus::Failed;
                    self.record(HistoryState::Failed, i, attempt, Some("deadline passed"));
                }
                self.enter_compensation("timeout", i);
                self.next(now, shapes)
            }
            SagaStatus::Running => Next::Act {
                step: self.step_index,
                attempt: self.steps[self.step_index].attempts.max(1),
            },
            SagaStatus::Compensating => {
                let compensable: Vec<bool> = shapes.iter().map(|s| s.compensable).collect();
                match next_compensation(&self.steps, &compensable, self.step_index) {
                    None => Next::FinishCompensated,
                    Some(i) => {
                        if self.step_index != i || self.steps[i].status != StepStatus::Compensating
                        {
                            self.start_compensation(i);
                        }
                        Next::Compensate {
                            step: i,
                            attempt: self.steps[i].compensation_attempts.max(1),
                        }
                    }
                }
            }
        }
    }

    /// Step `i`'s action succeeded: the next step's first attempt starts, or the saga completes.
    pub fn action_succeeded(&mut self, i: usize) {
        let attempt = self.steps[i].attempts;
        self.steps[i].status = StepStatus::Succeeded;
        self.steps[i].last_error = None;
        self.record(HistoryState::Succeeded, i, attempt, None);
        self.step_index = i + 1;
        match self.steps.get_mut(i + 1) {
            Some(next) => {
                next.status = StepStatus::Running;
                next.attempts += 1;
            }
            None => self.complete(),
        }
    }

    /// Step `i`'s action was refused by a business rule: it had no effect; every step before it
    /// is compensated, and the saga's failure reason is `reason`.
    pub fn action_rejected(&mut self, i: usize, reason: &str, message: &str) {
        let attempt = self.steps[i].attempts;
        self.steps[i].status = StepStatus::Failed;
        self.steps[i].last_error = Some(shorten(message));
        self.record(HistoryState::Failed, i, attempt, Some(message));
        self.enter_compensation(reason, i.saturating_sub(1));
    }

    /// Step `i`'s action took effect but the saga must not go on: the step is compensated like a
    /// completed one, then every step before it, and the saga's failure reason is `reason`.
    pub fn action_aborted(&mut self, i: usize, reason: &str, message: &str) {
        let attempt = self.steps[i].attempts;
        self.steps[i].status = StepStatus::Succeeded;
        self.steps[i].last_error = Some(shorten(message));
        self.record(HistoryState::Failed, i, attempt, Some(message));
        self.enter_compensation(reason, i);
    }

    /// Step `i`'s action failed transiently: the next attempt is scheduled (the engine waits, at
    /// most until the deadline).
    pub fn action_failed(&mut self, i: usize, message: &str) {
        let attempt = self.steps[i].attempts;
        self.steps[i].last_error = Some(shorten(message));
        self.record(HistoryState::RetryScheduled, i, attempt, Some(message));
        self.steps[i].attempts += 1;
    }

    /// Step `i`'s compensation succeeded: the next step down that needs it starts, if any.
    pub fn compensation_succeeded(&mut self, i: usize, shapes: &[StepShape]) {
        let attempt = self.steps[i].compensation_attempts;
        self.steps[i].status = StepStatus::Compensated;
        self.steps[i].last_error = None;
        self.record(HistoryState::Compensated, i, attempt, None);
        let compensable: Vec<bool> = shapes.iter().map(|s| s.compensable).collect();
        if let Some(next) = next_compensation(&self.steps, &compensable, i) {
            self.start_compensation(next);
        }
    }

    /// Step `i`'s compensation failed: it is attempted again (compensations never give up).
    pub fn compensation_failed(&mut self, i: usize, message: &str) {
        let attempt = self.steps[i].compensation_attempts;
        self.steps[i].last_error = Some(shorten(message));
        self.record(HistoryState::RetryScheduled, i, attempt, Some(message));
        self.steps[i].compensation_attempts += 1;
    }

    /// Everything that needed it is compensated: the saga ends.
    pub fn finish_compensated(&mut self) {
        self.status = SagaStatus::Compensated;
        let reason = self.failure_reason.clone();
        self.events.push(HistoryEvent {
            state: HistoryState::SagaCompensated,
            step: None,
            attempt: None,
            error: reason,
        });
        self.dirty = true;
    }

    /// An operator cancels a running saga: every step that may have had an effect (the current
    /// one included) is compensated, in reverse order. (The admin API applies the same change to
    /// the stored row; this is its definition.) Returns false, changing nothing, unless running.
    pub fn cancel(&mut self, reason: &str) -> bool {
        if self.status != SagaStatus::Running {
            return false;
        }
        self.enter_compensation(
            reason,
            self.step_index.min(self.steps.len().saturating_sub(1)),
        );
        true
    }

    /// The events since the last call (the engine records them with the transition).
    pub fn take_events(&mut self) -> Vec<HistoryEvent> {
        self.dirty = false;
        std::mem::take(&mut self.events)
    }

    /// Whether anything changed since [`Progress::take_events`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The name of the step being executed or compensated, if any.
    pub fn current_step(&self) -> Option<&str> {
        self.steps.get(self.step_index).map(|s| s.name.as_str())
    }

    /// Attempts of the current step's action (running) or compensation (compensating).
    pub fn current_attempts(&self) -> u32 {
        match (self.status, self.steps.get(self.step_index)) {
            (SagaStatus::Compensating, Some(s)) => s.compensation_attempts,
            (_, Some(s)) => s.attempts,
            (_, None) => 0,
        }
    }

    /// The current step's last error.
    pub fn last_error(&self) -> Option<&str> {
        self.steps
            .get(self.step_index)
            .and_then(|s| s.last_error.as_deref())
    }

    fn complete(&mut self) {
        self.status = SagaStatus::Completed;
        self.events.push(HistoryEvent {
            state: HistoryState::Completed,
            step: None,
            attempt: None,
            error: None,
        });
        self.dirty = true;
    }

    fn enter_compensation(&mut self, reason: &str, from: usize) {
        self.status = SagaStatus::Compensating;
        self.failure_reason = Some(reason.to_owned());
        self.step_index = from;
        self.dirty = true;
    }

    fn start_compensation(&mut self, i: usize) {
        self.step_index = i;
        self.steps[i].status = StepStatus::Compensating;
        self.steps[i].compensation_attempts += 1;
        let attempt = self.steps[i].compensation_attempts;
        self.record(HistoryState::Compensating, i, attempt, None);
    }

    fn record(&mut self, state: HistoryState, step: usize, attempt: u32, error: Option<&str>) {
        self.events.push(HistoryEvent {
            state,
            step: self.steps.get(step).map(|s| s.name.clone()),
            attempt: Some(attempt),
            error: error.map(shorten),
        });
        self.dirty = true;
    }
}
