//! The engine against real Postgres: the happy path, rejections, retries, deadlines, failing
//! compensations, dead and stalled workers, shutdown.

use std::time::Duration;

use longship_saga::EngineConfig;
use longship_tenant::TenantId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::{Call, Harness, Script, fast_config, script, step_field};

#[tokio::test]
async fn happy_path_runs_every_step_once() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h.start(&engine, Script::default(), true).await;
    let (status, reason, steps) = h.wait_terminal(id).await;
    assert_eq!((status.as_str(), reason), ("COMPLETED", None));
    assert_eq!(
        h.calls(id),
        vec![
            ("One".into(), false),
            ("Two".into(), false),
            ("Three".into(), false)
        ]
    );
    for i in 0..3 {
        assert_eq!(step_field(&steps, i, "status"), "SUCCEEDED");
        assert_eq!(step_field(&steps, i, "attempts"), 1);
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_saga_row_inserted_by_the_callers_statement_runs_and_is_written_only_with_its_source_row()
{
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let tenant = TenantId::parse("acme").expect("tenant");
    sqlx::query("CREATE TABLE business (id uuid PRIMARY KEY)")
        .execute(h.db.pool())
        .await
        .expect("table");
    let id = Uuid::now_v7();
    let mut inserted = Vec::new();
    // the second statement conflicts on the business row: no saga row either
    for _ in 0..2 {
        let (row, started) = engine
            .prepare(id, &tenant, Script::default())
            .expect("prepare");
        let mut binds = longship_sql::Binds::new();
        let sql = format!(
            "WITH placed AS (INSERT INTO business (id) VALUES ({}) ON CONFLICT DO NOTHING RETURNING id), {}
             SELECT id FROM placed",
            binds.push(id),
            row.ctes_from(&mut binds, "placed")
        );
        let mut tx = h.db.pool().begin().await.expect("begin");
        let placed = binds
            .query(sql)
            .expect("binds")
            .fetch_optional(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        inserted.push(placed.is_some());
        if placed.is_some() {
            engine.launch(started);
        }
    }
    assert_eq!(inserted, vec![true, false]);
    let (status, reason, steps) = h.wait_terminal(id).await;
    assert_eq!((status.as_str(), reason), ("COMPLETED", None));
    assert_eq!(h.calls(id).len(), 3);
    assert_eq!(step_field(&steps, 0, "attempts"), 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM saga")
        .fetch_one(h.db.pool())
        .await
        .expect("count");
    assert_eq!(rows, 1);
    shutdown.cancel();
}

#[tokio::test]
async fn rejection_at_step_three_compensates_two_then_one() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h
        .start(&engine, script(&[("Three", &["reject"])], &[]), true)
        .await;
    let (status, reason, steps) = h.wait_terminal(id).await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("COMPENSATED", Some("insufficient_stock"))
    );
    assert_eq!(
        h.calls(id),
        vec![
            ("One".into(), false),
            ("Two".into(), false),
            ("Three".into(), false),
            ("Two".into(), true),
            ("One".into(), true),
        ]
    );
    assert_eq!(step_field(&steps, 2, "status"), "FAILED");
    assert_eq!(step_field(&steps, 1, "status"), "COMPENSATED");
    assert_eq!(step_field(&steps, 0, "status"), "COMPENSATED");
    assert_eq!(
        h.recorder.compensated_hook.lock().expect("lock").clone(),
        vec![(id, "insufficient_stock".to_owned())]
    );
    shutdown.cancel();
}

#[tokio::test]
async fn transient_failures_are_retried_then_succeed() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h
        .start(
            &engine,
            script(&[("Two", &["transient", "transient", "ok"])], &[]),
            true,
        )
        .await;
    let (status, _, steps) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(step_field(&steps, 1, "attempts"), 3);
    let keys: Vec<String> = h
        .recorder
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|c| c.saga == id && c.step == "Two")
        .map(|c| c.key.clone())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k == format!("{id}:Two")), "{keys:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn deadline_exceeded_compensates_with_timeout_including_the_uncertain_step() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let config = EngineConfig {
        deadline: Duration::from_millis(600),
        ..fast_config()
    };
    let engine = h.engine(config, &shutdown);
    let id = h
        .start(&engine, script(&[("Two", &["transient"])], &[]), true)
        .await;
    let (status, reason, steps) = h.wait_terminal(id).await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("COMPENSATED", Some("timeout"))
    );
    let calls = h.calls(id);
    assert!(
        calls.contains(&("Two".into(), true)),
        "the step with an unknown outcome is compensated: {calls:?}"
    );
    assert_eq!(calls.last(), Some(&("One".into(), true)));
    assert_eq!(step_field(&steps, 1, "status"), "COMPENSATED");
    shutdown.cancel();
}

#[tokio::test]
async fn a_failing_compensation_is_retried_until_it_succeeds() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h
        .start(
            &engine,
            script(
                &[("Two", &["reject"])],
                &[("One", &["transient", "transient", "transient", "ok"])],
            ),
            true,
        )
        .await;
    let (status, _, steps) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPENSATED");
    let compensations = h.calls(id).iter().filter(|(s, c)| s == "One" && *c).count();
    assert_eq!(compensations, 4);
    assert_eq!(step_field(&steps, 0, "compensation_attempts"), 4);
    shutdown.cancel();
}

#[tokio::test]
async fn a_dead_workers_saga_is_finished_by_another_with_the_same_idempotency_key() {
    let h = Harness::new().await;
    // worker A hangs in step Two, then "dies" (its task is dropped with the runtime of this token)
    let shutdown_a = CancellationToken::new();
    let config = EngineConfig {
        step_timeout: Duration::from_secs(60),
        lease: Duration::from_millis(800),
        ..fast_config()
    };
    let engine_a = h.engine(config.clone(), &shutdown_a);
    let id = h
        .start(&engine_a, script(&[("Two", &["hang", "ok"])], &[]), false)
        .await;
    let worker_a = tokio::spawn({
        let engine_a = engine_a.clone();
        async move {
            // run the saga the way launch does, then abort the task mid-step (process death)
            engine_a.run().await;
        }
    });
    // wait until A is inside step Two
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !h.calls(id).contains(&("Two".into(), false)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker A never reached step Two"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker_a.abort();
    drop(engine_a);

    let shutdown_b = CancellationToken::new();
    let engine_b = h.engine(fast_config(), &shutdown_b);
    let worker_b = tokio::spawn({
        let engine_b = engine_b.clone();
        async move { engine_b.run().await }
    });
    let (status, _, steps) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPLETED");
    let two: Vec<Call> = h
        .recorder
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|c| c.saga == id && c.step == "Two" && !c.compensate)
        .cloned()
        .collect();
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!(two[0].key, two[1].key);
    assert_eq!(step_field(&steps, 1, "attempts"), 2);
    shutdown_b.cancel();
    let _ = worker_b.await;
}

#[tokio::test]
async fn two_workers_run_two_hundred_sagas_without_executing_a_step_concurrently() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    // a deadline no saga reaches on a busy machine: outcomes here come from the scripts only
    let config = || EngineConfig {
        deadline: Duration::from_secs(120),
        ..fast_config()
    };
    let a = h.engine(config(), &shutdown);
    let b = h.engine(config(), &shutdown);
    // nobody launches: both workers compete through claims; a quarter fail transiently once, a tenth are rejected
    let mut ids = Vec::new();
    for i in 0..200 {
        let s = match i % 10 {
            0 => script(&[("Three", &["reject"])], &[]),
            1..=3 => script(&[("Two", &["transient", "ok"])], &[]),
            _ => Script::default(),
        };
        ids.push(h.start(&a, s, false).await);
    }
    // the inserts were claimed by `a` at start; expire those claims so both workers compete
    sqlx::query("UPDATE saga SET locked_by = NULL, locked_until = NULL")
        .execute(h.db.pool())
        .await
        .expect("unclaim");
    let ta = tokio::spawn({
        let a = a.clone();
        async move { a.run().await }
    });
    let tb = tokio::spawn({
        let b = b.clone();
        async move { b.run().await }
    });
    let mut completed = 0;
    let mut compensated = 0;
    for id in &ids {
        match h.wait_terminal(*id).await.0.as_str() {
            "COMPLETED" => completed += 1,
            _ => compensated += 1,
        }
    }
    assert_eq!((completed, compensated), (180, 20));
    assert_eq!(
        *h.recorder.max_concurrent_per_saga.lock().expect("lock"),
        1,
        "a step ran concurrently"
    );
    // every saga's happy steps ran exactly once (retries aside)
    for id in ids.iter().skip(4).step_by(10) {
        assert_eq!(h.calls(*id).len(), 3);
    }
    shutdown.cancel();
    let _ = tokio::join!(ta, tb);
}

#[tokio::test]
async fn shutdown_releases_claims_so_another_worker_continues_at_once() {
    let h = Harness::new().await;
    let shutdown_a = CancellationToken::new();
    let engine_a = h.engine(
        EngineConfig {
            lease: Duration::from_secs(3600),
            ..fast_config()
        },
        &shutdown_a,
    );
    let id = h
        .start(&engine_a, script(&[("Two", &["transient"])], &[]), true)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !h.calls(id).contains(&("Two".into(), false)) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown_a.cancel();
    engine_a.run().await; // returns once the running saga released its claim
    let locked: Option<String> = sqlx::query_scalar("SELECT locked_by FROM saga WHERE id = $1")
        .bind(id)
        .fetch_one(h.db.pool())
        .await
        .expect("row");
    assert_eq!(
        locked, None,
        "the claim is released on shutdown, not left to expire"
    );
}

#[tokio::test]
async fn an_execution_that_outlived_its_claim_cannot_record_even_when_its_own_worker_reclaimed() {
    // an execution that outlives its lease (here a slow call; in production a paused process or a
    // stalled database connection) is superseded when the saga is claimed again, also by its own
    // worker's poll: the stale execution must not record anything afterwards. Here the stale
    // execution's step Two succeeds late, while the new one was rejected at Two and is
    // compensating (slowly, so it is still at it, re-claimed again and again, when the stale one
    // wakes up): the saga must end COMPENSATED, and step Three must never run.
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(
        EngineConfig {
            lease: Duration::from_millis(600),
            step_timeout: Duration::from_secs(5),
            ..fast_config()
        },
        &shutdown,
    );
    let worker = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run().await }
    });
    let id = h
        .start(
            &engine,
            script(
                &[("Two", &["slow", "reject"])],
                &[("One", &["slow", "slow", "slow", "ok"])],
            ),
            true,
        )
        .await;
    let (status, reason, _) = h.wait_terminal(id).await;
    // let a stale execution finish whatever it would still do
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = h.calls(id);
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("COMPENSATED", Some("insufficient_stock")),
        "calls: {calls:?}"
    );
    assert!(
        !calls.contains(&("Three".into(), false)),
        "a superseded execution went on to step Three: {calls:?}"
    );
    let final_status: String = sqlx::query_scalar("SELECT status FROM saga WHERE id = $1")
        .bind(id)
        .fetch_one(h.db.pool())
        .await
        .expect("row");
    assert_eq!(final_status, "COMPENSATED");
    shutdown.cancel();
    let _ = worker.await;
}
