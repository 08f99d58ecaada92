//! What the tests of batched commands and set-based consumers share, whatever the service: tenants
//! and set items by name, the events a set statement wrote, and the check that batches locking the
//! same rows in opposite orders finish (no deadlock). A batch item's error reads with
//! `longship_runtime::participant::read_item_error`.

use std::future::Future;
use std::time::Duration;

use longship_messaging::SetItem;
use longship_tenant::TenantId;
use sqlx::PgPool;

/// The tenant `id` (a valid one).
#[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
pub fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("a valid tenant id")
}

/// A set item of `tenant` acting on `key`, with no trace context.
pub fn set_item<K>(tenant_id: &str, key: K) -> SetItem<K> {
    SetItem {
        tenant: tenant(tenant_id),
        key,
        traceparent: None,
    }
}

/// The events of `event_type` in the outbox, oldest first: (tenant, payload as written).
#[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
pub async fn outbox_events(pool: &PgPool, event_type: &str) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as("SELECT tenant_id, payload FROM outbox WHERE event_type = $1 ORDER BY seq")
        .bind(event_type)
        .fetch_all(pool)
        .await
        .expect("outbox events")
}

/// Runs `run` four times at once, twice with `forward` and twice with `backward` (the same rows
/// in opposite orders), and fails unless all four finish within a minute: a deadlock would hang
/// or fail them.
#[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
pub async fn opposite_orders_finish<T, F, Fut>(forward: T, backward: T, run: F)
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()>,
{
    let all = async {
        tokio::join!(
            run(forward.clone()),
            run(backward.clone()),
            run(forward),
            run(backward)
        )
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("four concurrent batch streams finish (a deadlock would hang or fail them)");
}
