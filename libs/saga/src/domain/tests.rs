//! The state machine's rules, over random definitions and random outcomes: every path ends
//! terminal; compensations run in reverse order of the steps that may have had an effect; no such
//! compensable step is ever left uncompensated; no action is attempted past the deadline or after
//! a refusal or a cancel.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn shapes(spec: &[(bool, bool)]) -> Vec<StepShape> {
    spec.iter()
        .map(|&(compensable, local)| StepShape { compensable, local })
        .collect()
}

/// What the participants answer, drawn per call.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    Refuse,
    /// the call took effect, but its answer cannot be used
    Abort,
    Transient,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        6 => Just(Answer::Ok),
        1 => Just(Answer::Refuse),
        1 => Just(Answer::Abort),
        2 => Just(Answer::Transient)
    ]
}

#[derive(Debug, Default)]
struct Trace {
    actions: Vec<(usize, i64)>,
    compensations: Vec<usize>,
    ever_effective: Vec<bool>,
    /// every call in order: true for a compensation
    calls: Vec<bool>,
}

/// Drives a saga to its end: each action answers from `answers` (cycled), each compensation fails
/// `comp_failures` times before succeeding, each call takes `tick` seconds, and an operator
/// cancels before call number `cancel_at` (if any).
fn drive(
    shapes: &[StepShape],
    answers: &[Answer],
    comp_failures: u32,
    tick: i64,
    cancel_at: Option<usize>,
) -> (Progress, Trace) {
    let start = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let deadline = start + Duration::seconds(30);
    let names: Vec<String> = (0..shapes.len()).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut p = Progress::start(&refs, deadline);
    let mut trace = Trace {
        ever_effective: vec![false; shapes.len()],
        ..Trace::default()
    };
    let mut now = start;
    let mut failures = vec![0u32; shapes.len()];
    for call in 0..10_000usize {
        if cancel_at == Some(call) {
            p.cancel("operator_cancelled");
        }
        match p.next(now, shapes) {
            Next::Done => return (p, trace),
            Next::FinishCompensated => p.finish_compensated(),
            Next::Act { step, .. } => {
                trace.actions.push((step, (now - start).num_seconds()));
                trace.calls.push(false);
                // a call that may have reached the participant may have had an effect
                trace.ever_effective[step] = true;
                match answers[call % answers.len()] {
                    Answer::Ok => p.action_succeeded(step),
                    Answer::Refuse => {
                        trace.ever_effective[step] = false;
                        p.action_rejected(step, "insufficient_stock", "no")
                    }
                    Answer::Abort => p.action_aborted(step, "amount_out_of_range", "overflow"),
                    Answer::Transient => p.action_failed(step, "unavailable"),
                }
            }
            Next::Compensate { step, .. } => {
                trace.compensations.push(step);
                trace.calls.push(true);
                if failures[step] < comp_failures {
                    failures[step] += 1;
                    p.compensation_failed(step, "unavailable");
                } else {
                    p.compensation_succeeded(step, shapes);
                }
            }
        }
        now += Duration::seconds(tick);
    }
    (p, trace)
}

proptest! {
    #[test]
    fn every_path_ends_terminal_and_undoes_everything_it_did(
        spec in prop::collection::vec((any::<bool>(), any::<bool>()), 1..6),
        answers in prop::collection::vec(answer(), 1..12),
        comp_failures in 0u32..4,
        tick in 1i64..8,
        cancel_at in prop::option::of(0usize..12),
    ) {
        let shapes = shapes(&spec);
        let (p, trace) = drive(&shapes, &answers, comp_failures, tick, cancel_at);
        prop_assert!(p.status.is_terminal(), "not terminal: {p:?}");
        match p.status {
            SagaStatus::Completed => {
                prop_assert!(p.steps.iter().all(|s| s.status == StepStatus::Succeeded));
                prop_assert!(trace.compensations.is_empty());
            }
            SagaStatus::Compensated => {
                prop_assert!(p.failure_reason.is_some());
                // nothing that may have had an effect and can be undone is left behind
                for (i, s) in p.steps.iter().enumerate() {
                    if shapes[i].compensable && trace.ever_effective[i] {
                        prop_assert_eq!(s.status, StepStatus::Compensated, "step {} left {:?}", i, p);
                    }
                    prop_assert!(!s.needs_compensation() || !shapes[i].compensable);
                }
            }
            _ => unreachable!(),
        }
        // compensations only for compensable steps that started (an attempt recorded, whose call
        // may have been made: a compensation that arrives first leaves a tombstone), in reverse order
        let mut distinct: Vec<usize> = trace.compensations.clone();
        distinct.dedup();
        prop_assert!(distinct.windows(2).all(|w| w[0] > w[1]), "order {:?}", distinct);
        for step in &distinct {
            prop_assert!(shapes[*step].compensable && p.steps[*step].attempts > 0);
        }
        // no action at or past the deadline (30 s after the start)
        prop_assert!(trace.actions.iter().all(|(_, t)| *t < 30), "{:?}", trace.actions);
        // no action once compensation began
        if let Some(first) = trace.calls.iter().position(|c| *c) {
            prop_assert!(trace.calls[first..].iter().all(|c| *c), "{:?}", trace.calls);
        }
    }

    #[test]
    fn backoff_is_bounded_and_grows(attempt in 1u32..64, jitter in 0.0f64..1.0) {
        let base = std::time::Duration::from_millis(50);
        let max = std::time::Duration::from_secs(2);
        let d = backoff(attempt, base, max, jitter);
        prop_assert!(d <= max);
        prop_assert!(d >= base.mul_f64(0.75).min(max.mul_f64(0.75)));
        let next = backoff(attempt + 1, base, max, 0.0);
        prop_assert!(next >= backoff(attempt, base, max, 0.0));
    }
}

#[test]
fn a_refusal_at_step_three_compensates_two_then_one_and_records_each_move() {
    let shapes = shapes(&[(true, false), (true, false), (false, true)]);
    let deadline = Utc::now() + Duration::seconds(30);
    let mut p = Progress::start(&["a", "b", "c"], deadline);
    let now = Utc::now();
    assert_eq!(
        p.next(now, &shapes),
        Next::Act {
            step: 0,
            attempt: 1
        }
    );
    p.action_succeeded(0);
    assert_eq!(
        p.next(now, &shapes),
        Next::Act {
            step: 1,
            attempt: 1
        }
    );
    p.action_succeeded(1);
    p.action_rejected(2, "payment_declined", "declined");
    assert_eq!(
        p.next(now, &shapes),
        Next::Compensate {
            step: 1,
            attempt: 1
        }
    );
    p.compensation_succeeded(1, &shapes);
    assert_eq!(
        p.next(now, &shapes),
        Next::Compensate {
            step: 0,
            attempt: 1
        }
    );
    p.compensation_succeeded(0, &shapes);
    assert_eq!(p.next(now, &shapes), Next::FinishCompensated);
    p.finish_compensated();
    let states: Vec<(&str, Option<String>)> = p
        .take_events()
        .iter()
        .map(|e| (e.state.as_str(), e.step.clone()))
        .collect();
    let step = |s: &str| Some(s.to_owned());
    assert_eq!(
        states,
        vec![
            ("RUNNING", step("a")),
            ("SUCCEEDED", step("a")),
            ("SUCCEEDED", step("b")),
            ("FAILED", step("c")),
            ("COMPENSATING", step("b")),
            ("COMPENSATED", step("b")),
            ("COMPENSATING", step("a")),
            ("COMPENSATED", step("a")),
            ("SAGA_COMPENSATED", None),
        ]
    );
    assert_eq!(p.failure_reason.as_deref(), Some("payment_declined"));
    assert!(!p.is_dirty());
}

#[test]
fn an_action_that_took_effect_but_cannot_go_on_is_compensated_itself() {
    let shapes = shapes(&[(true, false), (true, false)]);
    let now = Utc::now();
    let mut p = Progress::start(&["reserve", "authorize"], now + Duration::seconds(30));
    p.action_aborted(0, "amount_out_of_range", "total overflows");
    assert_eq!(
        p.next(now, &shapes),
        Next::Compensate {
            step: 0,
            attempt: 1
        }
    );
    p.compensation_succeeded(0, &shapes);
    assert_eq!(p.next(now, &shapes), Next::FinishCompensated);
    assert_eq!(p.failure_reason.as_deref(), Some("amount_out_of_range"));
}

#[test]
fn past_the_deadline_the_uncertain_step_is_compensated_with_timeout() {
    let shapes = shapes(&[(true, false), (true, false)]);
    let start = Utc::now();
    let mut p = Progress::start(&["a", "b"], start + Duration::seconds(30));
    p.action_succeeded(0);
    p.action_failed(1, "unavailable");
    // the retry comes after the deadline: b's outcome is unknown, so b is compensated, then a
    let later = start + Duration::seconds(31);
    assert_eq!(
        p.next(later, &shapes),
        Next::Compensate {
            step: 1,
            attempt: 1
        }
    );
    assert_eq!(p.failure_reason.as_deref(), Some("timeout"));
    p.compensation_succeeded(1, &shapes);
    assert_eq!(
        p.next(later, &shapes),
        Next::Compensate {
            step: 0,
            attempt: 1
        }
    );
}

#[test]
fn past_the_deadline_a_failing_local_step_ends_failed_and_the_steps_before_it_are_compensated() {
    let shapes = shapes(&[(true, false), (false, true)]);
    let start = Utc::now();
    let mut p = Progress::start(&["a", "local"], start + Duration::seconds(30));
    p.action_succeeded(0);
    p.action_failed(1, "database unavailable");
    let later = start + Duration::seconds(31);
    assert_eq!(
        p.next(later, &shapes),
        Next::Compensate {
            step: 0,
            attempt: 1
        }
    );
    assert_eq!(p.steps[1].status, StepStatus::Failed);
    assert_eq!(p.failure_reason.as_deref(), Some("timeout"));
}

#[test]
fn a_cancel_compensates_the_current_step_too_and_only_a_running_saga_is_cancelled() {
    let shapes = shapes(&[(true, false), (true, false), (false, true)]);
    let now = Utc::now();
    let mut p = Progress::start(&["a", "b", "c"], now + Duration::seconds(30));
    p.action_succeeded(0);
    // b's call is in flight when the operator cancels
    assert!(p.cancel("operator_cancelled"));
    assert!(!p.cancel("operator_cancelled"), "already compensating");
    assert_eq!(
        p.next(now, &shapes),
        Next::Compensate {
            step: 1,
            attempt: 1
        }
    );
    assert_eq!(p.current_step(), Some("b"));
    p.compensation_failed(1, "unavailable");
    assert_eq!(p.current_attempts(), 2);
    assert_eq!(p.last_error(), Some("unavailable"));
}

#[test]
fn a_resumed_attempt_is_recorded_before_it_is_made() {
    let mut p = Progress::resumed(
        SagaStatus::Running,
        vec![StepRecord {
            status: StepStatus::Running,
            attempts: 3,
            ..StepRecord::pending("a")
        }],
        0,
        None,
        Utc::now() + Duration::seconds(30),
    );
    p.begin_resumed_attempt();
    assert!(p.is_dirty());
    assert_eq!(p.steps[0].attempts, 4);
    let events = p.take_events();
    assert_eq!(
        (events[0].state, events[0].attempt),
        (HistoryState::Running, Some(4))
    );
}

#[test]
fn stored_texts_round_trip() {
    for status in SagaStatus::ALL {
        assert_eq!(SagaStatus::parse(status.as_str()), Some(status));
        let stored = serde_json::to_value(status).unwrap_or_default();
        assert_eq!(stored, serde_json::Value::from(status.as_str()));
    }
    for state in [HistoryState::RetryScheduled, HistoryState::SagaCompensated] {
        let stored = serde_json::to_value(state).unwrap_or_default();
        assert_eq!(stored, serde_json::Value::from(state.as_str()));
    }
    let step = serde_json::to_value(StepStatus::Compensating).unwrap_or_default();
    assert_eq!(step, serde_json::Value::from("COMPENSATING"));
}
