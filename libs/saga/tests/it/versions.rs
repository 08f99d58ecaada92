//! Versioned definitions: each saga runs and compensates with the version it started on; a
//! replica claims only the versions it knows; new sagas start on the configured version.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::harness::{Harness, Script, fast_config, run, script};

async fn version_of(h: &Harness, id: uuid::Uuid) -> i32 {
    sqlx::query_scalar("SELECT version FROM saga WHERE id = $1")
        .bind(id)
        .fetch_one(h.db.pool())
        .await
        .expect("saga")
}

#[tokio::test]
async fn old_sagas_finish_on_their_version_and_new_ones_start_on_the_newest() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let v1_only = h.engine_of(&[1], None, fast_config(), &shutdown);
    // v1 sagas left mid-way (their launcher "died": nothing runs them yet)
    let old = h.start(&v1_only, Script::default(), false).await;
    sqlx::query("UPDATE saga SET locked_by = NULL, locked_until = NULL")
        .execute(h.db.pool())
        .await
        .expect("unclaim");
    let both = h.engine_of(&[1, 2], None, fast_config(), &shutdown);
    assert_eq!(both.versions().starting_version(), 2);
    let worker = run(&both);
    let new = h.start(&both, Script::default(), true).await;
    h.wait_terminal(old).await;
    h.wait_terminal(new).await;
    assert_eq!(
        (version_of(&h, old).await, version_of(&h, new).await),
        (1, 2)
    );
    let steps = |id| h.calls(id).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(steps(old), vec!["One", "Two", "Three"]);
    assert_eq!(steps(new), vec!["One", "Two", "Extra", "Three"]);
    shutdown.cancel();
    let _ = worker.await;
}

#[tokio::test]
async fn a_v2_saga_is_compensated_with_v2_steps_and_never_claimed_by_a_v1_replica() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let v2 = h.engine_of(&[1, 2], None, fast_config(), &shutdown);
    // a v2 saga refused at Three: its v2-only step Extra is compensated too
    let id = h
        .start(&v2, script(&[("Three", &["reject"])], &[]), false)
        .await;
    sqlx::query("UPDATE saga SET locked_by = NULL, locked_until = NULL")
        .execute(h.db.pool())
        .await
        .expect("unclaim");
    // a replica that knows v1 only leaves it alone
    let v1 = h.engine_of(&[1], None, fast_config(), &shutdown);
    let old_worker = run(&v1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        h.calls(id).is_empty(),
        "a v1 replica ran a v2 saga: {:?}",
        h.calls(id)
    );
    let status: String = sqlx::query_scalar("SELECT status FROM saga WHERE id = $1")
        .bind(id)
        .fetch_one(h.db.pool())
        .await
        .expect("saga");
    assert_eq!(
        status, "RUNNING",
        "it waits for a replica that knows its version"
    );
    let new_worker = run(&v2);
    let (status, _, _) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPENSATED");
    let undone: Vec<String> = h
        .calls(id)
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(undone, vec!["Extra", "Two", "One"]);
    shutdown.cancel();
    let _ = tokio::join!(old_worker, new_worker);
}

#[tokio::test]
async fn a_replica_can_hold_new_starts_on_the_old_version_during_a_rolling_deploy() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let held = h.engine_of(&[1, 2], Some(1), fast_config(), &shutdown);
    let id = h.start(&held, Script::default(), true).await;
    h.wait_terminal(id).await;
    assert_eq!(version_of(&h, id).await, 1);
    shutdown.cancel();
}

#[test]
fn bad_version_sets_are_refused() {
    use longship_saga::{SagaDefinition, SagaVersions};
    use std::sync::Arc;
    let recorder = Arc::new(crate::harness::Recorder::default());
    let def = |v| {
        Arc::new(crate::harness::TestSaga::new(v, &recorder))
            as Arc<dyn SagaDefinition<Data = Script>>
    };
    assert!(SagaVersions::<Script>::new(vec![]).is_err());
    assert!(SagaVersions::new(vec![def(1), def(1)]).is_err());
    assert!(
        SagaVersions::new(vec![def(1)])
            .expect("v1")
            .start_on(2)
            .is_err()
    );
    assert_eq!(
        SagaVersions::new(vec![def(2), def(1)])
            .expect("both")
            .known(),
        vec![1, 2]
    );
}
