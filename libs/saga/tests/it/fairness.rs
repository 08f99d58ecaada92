//! Fair sharing of a worker's slots between tenants: a tenant that floods the engine queues behind
//! its own sagas, not in front of another tenant's.

use std::time::{Duration, Instant};

use longship_saga::{EngineConfig, SagaEngine};
use tokio_util::sync::CancellationToken;

use crate::harness::{Harness, Script, fast_config, script};

/// The quiet tenant's saga: three steps of 100 ms each.
fn quiet_saga() -> Script {
    script(
        &[
            ("One", &["pause"]),
            ("Two", &["pause"]),
            ("Three", &["pause"]),
        ],
        &[],
    )
}

/// Start-to-terminal times of `n` sagas of `tenant`, one after the other.
async fn run_one_by_one(
    h: &Harness,
    engine: &SagaEngine<Script>,
    tenant: &str,
    n: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let id = h.start_for(engine, tenant, quiet_saga(), true).await;
        assert_eq!(h.wait_terminal(id).await.0, "COMPLETED");
        times.push(started.elapsed());
    }
    times.sort();
    times
}

#[tokio::test]
async fn a_flooding_tenant_does_not_delay_another_tenants_sagas_past_twice_their_time_alone() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    // eight slots, half of them one tenant's share while another is active; a deadline no saga
    // reaches on a busy machine
    let engine = h.engine(
        EngineConfig {
            concurrency: 8,
            tenant_share: 0.5,
            deadline: Duration::from_secs(300),
            ..fast_config()
        },
        &shutdown,
    );
    let alone = run_one_by_one(&h, &engine, "quiet", 5).await;

    // the noisy tenant launches 400 sagas at once (a one-step pause each): 50 rounds of the eight
    // slots, seconds of backlog in front of anything that queued behind it
    let mut noisy = Vec::new();
    for _ in 0..400 {
        noisy.push(
            h.start_for(&engine, "noisy", script(&[("One", &["pause"])], &[]), true)
                .await,
        );
    }
    let flooded = run_one_by_one(&h, &engine, "quiet", 5).await;
    let still_queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saga WHERE tenant_id = 'noisy' AND status = 'RUNNING'",
    )
    .fetch_one(h.db.pool())
    .await
    .expect("count");
    assert!(
        still_queued > 0,
        "the flood must still be queued while the quiet tenant's sagas run (it was not: the test proves nothing)"
    );
    let (alone_worst, flooded_worst) = (alone[alone.len() - 1], flooded[flooded.len() - 1]);
    assert!(
        flooded_worst <= alone_worst * 2,
        "the quiet tenant's sagas took up to {flooded_worst:?} behind the flood, {alone_worst:?} alone"
    );
    for id in noisy {
        assert_eq!(h.wait_terminal(id).await.0, "COMPLETED");
    }
    shutdown.cancel();
}
