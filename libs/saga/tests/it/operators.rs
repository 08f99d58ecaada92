//! What operators see and do: lists with filters and paging, one saga in detail, retry and
//! cancel against sagas in flight on another engine, and every refusal.

use std::time::Duration;

use longship_saga::EngineConfig;
use longship_saga::SagaStatus;
use longship_saga::admin::{AdminError, SagaAdmin, SagaFilter};
use longship_tenant::TenantId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::{Harness, Script, fast_config, run, script};

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn filter(limit: i64) -> SagaFilter {
    SagaFilter {
        limit,
        ..SagaFilter::default()
    }
}

/// Waits until the saga's current step has been attempted `n` times.
async fn wait_attempts(h: &Harness, id: Uuid, n: i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM saga WHERE id = $1")
            .bind(id)
            .fetch_one(h.db.pool())
            .await
            .expect("saga");
        if attempts >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "saga {id} stays at {attempts} attempts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lists_filter_by_status_tenant_and_stuck_and_page_newest_first() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let mut done = Vec::new();
    for tenant in ["acme", "acme", "globex"] {
        let id = h.start_for(&engine, tenant, Script::default(), true).await;
        h.wait_terminal(id).await;
        done.push(id);
    }
    // a compensation that keeps failing: stuck once it was attempted five times
    let stuck = h
        .start(
            &engine,
            script(&[("Two", &["reject"])], &[("One", &["transient"])]),
            true,
        )
        .await;
    wait_attempts(&h, stuck, 5).await;
    let admin = SagaAdmin::new(h.db.pool().clone());

    let all = admin.list(&filter(10)).await.expect("list");
    let ids: Vec<Uuid> = all.items.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![stuck, done[2], done[1], done[0]], "newest first");
    assert_eq!(all.next_cursor, None);

    let stuck_only = admin
        .list(&SagaFilter {
            stuck: Some(true),
            ..filter(10)
        })
        .await
        .expect("list");
    assert_eq!(stuck_only.items.len(), 1);
    let s = &stuck_only.items[0];
    assert_eq!((s.id, s.status.as_str()), (stuck, "COMPENSATING"));
    assert_eq!(s.current_step.as_deref(), Some("One"));
    assert!(s.attempts >= 5, "{s:?}");
    assert_eq!(s.last_error.as_deref(), Some("unavailable"));
    assert_eq!(s.failure_reason.as_deref(), Some("insufficient_stock"));

    let not_stuck = admin
        .list(&SagaFilter {
            stuck: Some(false),
            status: Some(SagaStatus::Completed),
            ..filter(10)
        })
        .await
        .expect("list");
    assert_eq!(not_stuck.items.len(), 3);
    let globex = admin
        .list(&SagaFilter {
            tenant: Some(TenantId::parse("globex").expect("t")),
            ..filter(10)
        })
        .await
        .expect("list");
    assert_eq!(
        globex.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![done[2]]
    );

    // pages of two
    let first = admin.list(&filter(2)).await.expect("page 1");
    assert_eq!(first.items.len(), 2);
    let cursor = first.next_cursor.expect("a next page");
    let second = admin
        .list(&SagaFilter {
            cursor: Some(cursor),
            ..filter(2)
        })
        .await
        .expect("page 2");
    assert_eq!(
        second.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![done[1], done[0]]
    );
    assert!(matches!(
        admin.list(&filter(0)).await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        admin.list(&filter(101)).await,
        Err(AdminError::Invalid(_))
    ));
    shutdown.cancel();
}

#[tokio::test]
async fn retry_makes_a_backed_off_saga_due_now_on_the_engine_that_holds_it() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    // after its first failure the saga would wait 30 s
    let config = EngineConfig {
        retry_base: Duration::from_secs(30),
        retry_max: Duration::from_secs(60),
        deadline: Duration::from_secs(120),
        poll_interval: Duration::from_secs(5),
        ..fast_config()
    };
    let engine = h.engine(config, &shutdown);
    let worker = run(&engine);
    let id = h
        .start(&engine, script(&[("Two", &["transient", "ok"])], &[]), true)
        .await;
    h.wait_calls(id, "Two", false, 1).await;
    wait_attempts(&h, id, 2).await; // the failure and the next attempt are recorded
    let admin = SagaAdmin::new(h.db.pool().clone());
    let asked = tokio::time::Instant::now();
    admin
        .retry(id, Some(&acme()), "alice")
        .await
        .expect("retry");
    let (status, _, _) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPLETED");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the retry waited {:?} (backoff not cleared)",
        asked.elapsed()
    );
    let two = h.calls(id).iter().filter(|(s, c)| s == "Two" && !c).count();
    assert_eq!(two, 2, "one failed attempt, one retried: {:?}", h.calls(id));
    let history = h.history(id).await;
    assert!(
        history.contains(&("RETRY_REQUESTED".into(), Some("Two".into()), "alice".into())),
        "{history:?}"
    );
    shutdown.cancel();
    let _ = worker.await;
}

#[tokio::test]
async fn cancel_stops_the_call_in_flight_and_compensates_in_reverse_order() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let config = EngineConfig {
        step_timeout: Duration::from_secs(60),
        lease: Duration::from_secs(120),
        ..fast_config()
    };
    let engine = h.engine(config, &shutdown);
    let worker = run(&engine);
    let id = h
        .start(&engine, script(&[("Two", &["hang"])], &[]), true)
        .await;
    h.wait_calls(id, "Two", false, 1).await;
    let admin = SagaAdmin::new(h.db.pool().clone());
    admin
        .cancel(id, None, "bob", "customer called to cancel")
        .await
        .expect("cancel");
    let (status, reason, steps) = h.wait_terminal(id).await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("COMPENSATED", Some("operator_cancelled"))
    );
    // Two's call was in flight (its outcome unknown): compensated, then One; Three never ran
    assert_eq!(
        h.calls(id),
        vec![
            ("One".into(), false),
            ("Two".into(), false),
            ("Two".into(), true),
            ("One".into(), true)
        ]
    );
    assert_eq!(steps[1]["status"], "COMPENSATED");
    assert_eq!(
        h.recorder.compensated_hook.lock().expect("lock").clone(),
        vec![(id, "operator_cancelled".to_owned())]
    );
    let detail = admin.get(id, Some(&acme())).await.expect("detail");
    let cancel = detail
        .history
        .iter()
        .find(|e| e.state == "CANCEL_REQUESTED")
        .expect("the cancel is in the history");
    assert_eq!(
        (cancel.actor.as_str(), cancel.error.as_deref()),
        ("bob", Some("customer called to cancel"))
    );
    assert_eq!(detail.steps.len(), 3);
    assert_eq!(detail.summary.status, "COMPENSATED");
    shutdown.cancel();
    let _ = worker.await;
}

#[tokio::test]
async fn finished_sagas_refuse_actions_and_other_tenants_see_nothing() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let done = h.start(&engine, Script::default(), true).await;
    h.wait_terminal(done).await;
    let admin = SagaAdmin::new(h.db.pool().clone());
    assert!(matches!(
        admin.retry(done, None, "x").await,
        Err(AdminError::Terminal)
    ));
    assert!(matches!(
        admin.cancel(done, None, "x", "why").await,
        Err(AdminError::Terminal)
    ));
    let globex = TenantId::parse("globex").expect("t");
    assert!(matches!(
        admin.get(done, Some(&globex)).await,
        Err(AdminError::NotFound)
    ));
    assert!(matches!(
        admin.retry(done, Some(&globex), "x").await,
        Err(AdminError::NotFound)
    ));
    assert!(matches!(
        admin.get(Uuid::now_v7(), None).await,
        Err(AdminError::NotFound)
    ));
    // a saga compensating already cannot be cancelled again; a reason is required
    let compensating = h
        .start(
            &engine,
            script(&[("Two", &["reject"])], &[("One", &["transient"])]),
            true,
        )
        .await;
    wait_attempts(&h, compensating, 2).await;
    assert!(matches!(
        admin.cancel(compensating, None, "x", "why").await,
        Err(AdminError::AlreadyCompensating)
    ));
    let running = h.start(&engine, Script::default(), false).await;
    assert!(matches!(
        admin.cancel(running, None, "x", "  ").await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        admin.cancel(running, None, "x", &"y".repeat(501)).await,
        Err(AdminError::Invalid(_))
    ));
    shutdown.cancel();
}

#[tokio::test]
async fn two_operators_cancelling_at_once_one_wins_and_nothing_is_undone_twice() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let config = EngineConfig {
        step_timeout: Duration::from_secs(60),
        ..fast_config()
    };
    let a = h.engine(config.clone(), &shutdown);
    let b = h.engine(config, &shutdown);
    let (wa, wb) = (run(&a), run(&b));
    let id = h.start(&a, script(&[("Two", &["hang"])], &[]), true).await;
    h.wait_calls(id, "Two", false, 1).await;
    let admins = [
        SagaAdmin::new(h.db.pool().clone()),
        SagaAdmin::new(h.db.pool().clone()),
    ];
    let (first, second) = tokio::join!(
        admins[0].cancel(id, None, "ann", "dup"),
        admins[1].cancel(id, None, "ben", "dup")
    );
    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "{first:?} {second:?}"
    );
    // the loser finds it compensating, or already compensated when the winner's compensations
    // were quicker than its wait for the row lock
    assert!(matches!(
        first.err().or(second.err()),
        Some(AdminError::AlreadyCompensating | AdminError::Terminal)
    ));
    let (status, _, _) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPENSATED");
    let undo = |step: &str| h.calls(id).iter().filter(|(s, c)| s == step && *c).count();
    // the call in flight when the cancel committed is interrupted, not recorded: each undo once
    assert_eq!((undo("Two"), undo("One")), (1, 1), "{:?}", h.calls(id));
    shutdown.cancel();
    let _ = tokio::join!(wa, wb);
}
