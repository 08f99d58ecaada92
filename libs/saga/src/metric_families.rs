//! The saga engine's metric families, with their help text; an engine creates its series at zero
//! when it is built (per saga type and step), so the first retry or failure shows as an increase.

use longship_telemetry::MetricFamily;

/// Sagas started.
pub(crate) const STARTED: MetricFamily =
    MetricFamily::counter("saga_started_total", "Sagas started, by saga type");
/// Sagas finished.
pub(crate) const FINISHED: MetricFamily = MetricFamily::counter(
    "saga_finished_total",
    "Sagas finished, by saga type, outcome (completed, compensated) and failure reason (empty when completed)",
);
/// Start to finish.
pub(crate) const DURATION: MetricFamily = MetricFamily::histogram(
    "saga_duration_seconds",
    "Time from a saga's start to its end, by saga type and outcome",
);
/// One attempt of a step's action.
pub(crate) const STEP_DURATION: MetricFamily = MetricFamily::histogram(
    "saga_step_duration_seconds",
    "Duration of one attempt of a step's action, by step",
);
/// Transient step failures.
pub(crate) const STEP_RETRIES: MetricFamily = MetricFamily::counter(
    "saga_step_retries_total",
    "Transient step failures, retried with backoff, by step",
);
/// Transitions per statement.
pub(crate) const TRANSITION_BATCH_SIZE: MetricFamily = MetricFamily::histogram(
    "saga_transition_batch_size",
    "Saga transitions written per statement and commit (group commit of concurrent sagas)",
);
/// Sagas per batched step call.
pub(crate) const STEP_BATCH_SIZE: MetricFamily = MetricFamily::histogram(
    "saga_step_batch_size",
    "Sagas served per call of a batched step (the calls of concurrent sagas to one step go together), by step",
);
/// Batched calls that failed as a whole.
pub(crate) const STEP_BATCH_FALLBACKS: MetricFamily = MetricFamily::counter(
    "saga_step_batch_fallbacks_total",
    "Batched step calls that failed as a whole (unreachable, unknown to the participant, timed out) after which each saga made its own call, by step",
);
/// Failed compensation attempts.
pub(crate) const COMPENSATION_FAILURES: MetricFamily = MetricFamily::counter(
    "saga_compensation_failures_total",
    "Compensation attempts that failed (retried until they succeed), by step",
);

/// Stuck sagas.
pub(crate) const STUCK: MetricFamily = MetricFamily::gauge(
    "saga_stuck",
    "Sagas not terminal and past their deadline or with a step attempted 5 times or more, by saga type and age since start (under_1m, 1m_to_10m, 10m_to_1h, over_1h)",
);
/// Sagas of a version this replica cannot run.
pub(crate) const WAITING_FOR_VERSION: MetricFamily = MetricFamily::gauge(
    "saga_waiting_for_version",
    "Sagas not terminal whose definition version this replica does not know (they wait for a replica that does), by saga type and version",
);

/// Describes the families and creates the series of `saga_type` at `version` and its `steps`
/// (name, whether it calls out, whether it is compensable) at zero (a version this replica runs
/// has no saga waiting for it here). The failure reasons of `saga_finished_total`
/// are the saga definition's own: only `timeout` (the engine's) exists from the start, the others
/// from their first use.
pub(crate) fn zero(saga_type: &'static str, version: u32, steps: &[(&'static str, bool, bool)]) {
    longship_telemetry::describe(&[
        STARTED,
        FINISHED,
        DURATION,
        STEP_DURATION,
        STEP_RETRIES,
        TRANSITION_BATCH_SIZE,
        STEP_BATCH_SIZE,
        STEP_BATCH_FALLBACKS,
        COMPENSATION_FAILURES,
        STUCK,
        WAITING_FOR_VERSION,
    ]);
    WAITING_FOR_VERSION.zero(&[
        ("saga_type", saga_type.to_owned()),
        ("version", version.to_string()),
    ]);
    for age in crate::gauges::AGE_BUCKETS {
        STUCK.zero(&[("saga_type", saga_type.to_owned()), ("age", age.to_owned())]);
    }
    let saga = ("saga", saga_type.to_owned());
    STARTED.zero(std::slice::from_ref(&saga));
    for (outcome, reason) in [("completed", ""), ("compensated", "timeout")] {
        FINISHED.zero(&[
            saga.clone(),
            ("outcome", outcome.to_owned()),
            ("reason", reason.to_owned()),
        ]);
        DURATION.zero(&[saga.clone(), ("outcome", outcome.to_owned())]);
    }
    for (step, remote, compensable) in steps {
        let label = [("step", (*step).to_owned())];
        STEP_RETRIES.zero(&label);
        // only actions that call a participant are timed
        if *remote {
            STEP_DURATION.zero(&label);
        }
        if *compensable {
            COMPENSATION_FAILURES.zero(&label);
        }
        if *remote {
            STEP_BATCH_FALLBACKS.zero(&label);
        }
    }
    TRANSITION_BATCH_SIZE.zero(&[]);
}
