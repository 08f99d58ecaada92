//! Every transition is kept, written by the statement that records it.

use tokio_util::sync::CancellationToken;

use crate::harness::{Harness, Script, fast_config, script};

fn owned(v: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>, String)> {
    v.iter()
        .map(|(s, step)| (s.to_string(), step.map(str::to_owned), "engine".to_owned()))
        .collect()
}

#[tokio::test]
async fn the_happy_path_records_its_start_each_success_and_the_end() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h.start(&engine, Script::default(), true).await;
    h.wait_terminal(id).await;
    assert_eq!(
        h.history(id).await,
        owned(&[
            ("RUNNING", Some("One")),
            ("SUCCEEDED", Some("One")),
            ("SUCCEEDED", Some("Two")),
            ("SUCCEEDED", Some("Three")),
            ("COMPLETED", None),
        ])
    );
    shutdown.cancel();
}

#[tokio::test]
async fn failures_retries_and_compensations_are_recorded_with_their_errors() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h
        .start(
            &engine,
            script(
                &[("Two", &["transient", "reject"])],
                &[("One", &["transient", "ok"])],
            ),
            true,
        )
        .await;
    h.wait_terminal(id).await;
    assert_eq!(
        h.history(id).await,
        owned(&[
            ("RUNNING", Some("One")),
            ("SUCCEEDED", Some("One")),
            ("RETRY_SCHEDULED", Some("Two")),
            ("FAILED", Some("Two")),
            ("COMPENSATING", Some("One")),
            ("RETRY_SCHEDULED", Some("One")),
            ("COMPENSATED", Some("One")),
            ("SAGA_COMPENSATED", None),
        ])
    );
    let errors: Vec<(String, Option<i32>, Option<String>)> = sqlx::query_as(
        "SELECT state, attempt, error FROM saga_history WHERE saga_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(h.db.pool())
    .await
    .expect("history");
    assert_eq!(
        errors[2],
        (
            "RETRY_SCHEDULED".into(),
            Some(1),
            Some("unavailable".into())
        )
    );
    assert_eq!(errors[3], ("FAILED".into(), Some(2), Some("no".into())));
    assert_eq!(errors[7].2.as_deref(), Some("insufficient_stock"));
    shutdown.cancel();
}

#[tokio::test]
async fn an_action_that_took_effect_but_cannot_go_on_is_compensated_itself() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h
        .start(&engine, script(&[("Two", &["abort"])], &[]), true)
        .await;
    let (status, reason, _) = h.wait_terminal(id).await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("COMPENSATED", Some("amount_out_of_range"))
    );
    assert_eq!(
        h.calls(id),
        vec![
            ("One".into(), false),
            ("Two".into(), false),
            ("Two".into(), true),
            ("One".into(), true)
        ]
    );
    shutdown.cancel();
}
