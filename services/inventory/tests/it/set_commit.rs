//! Set-based stock commits: a batch of `order_confirmed` events of several tenants is committed
//! with one statement (`store::commit_many`) that keys every order's rows by its own tenant, with
//! the outcomes of a one-by-one commit; through the consumer, a payload that does not read makes
//! its batch fall back and is dead-lettered alone.

use std::time::Duration;

use inventory::domain::{CommitOutcome, ReservationStatus};
use inventory::events::{STOCK_COMMITTED, StockMoved};
use inventory::store::{self, CommitResult};
use longship_messaging::{EventEnvelope, Naming, StreamSettings};
use longship_proto::inventory::v1 as pb;
use longship_testkit::batches::{outbox_events, set_item, tenant};
use longship_testkit::checks::{ORDER_CONFIRMED, ORDERS};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, eventually};

const CONSUMER: &str = "inventory-order-confirmed";

/// Reserves `quantity` of `sku` for `order` of `tenant`.
async fn reserve_as(app: &TestApp, tenant: &str, order: Uuid, sku: &str, quantity: u32) {
    let request = pb::ReserveRequest {
        order_id: order.to_string(),
        idempotency_key: format!("{order}:reserve"),
        currency: "USD".into(),
        lines: vec![pb::ReserveLine {
            sku: sku.into(),
            quantity,
        }],
    };
    app.grpc()
        .reserve(app.request_as(tenant, request))
        .await
        .expect("reserved");
}

/// `(on_hand, reserved)` of `tenant`'s `sku`, read as the owner.
async fn stock_of(app: &TestApp, tenant: &str, sku: &str) -> (i64, i64) {
    sqlx::query_as("SELECT on_hand, reserved FROM products WHERE tenant_id = $1 AND sku = $2")
        .bind(tenant)
        .bind(sku)
        .fetch_one(app.db.pool())
        .await
        .expect("stock")
}

/// `stock_committed` events in the outbox: (tenant, payload).
async fn committed_events(app: &TestApp) -> Vec<(String, StockMoved)> {
    outbox_events(app.db.pool(), STOCK_COMMITTED)
        .await
        .into_iter()
        .map(|(t, p)| (t, serde_json::from_value(p).expect("a StockMoved payload")))
        .collect()
}

fn result(outcome: CommitOutcome, found: Option<ReservationStatus>) -> CommitResult {
    CommitResult { outcome, found }
}

#[tokio::test]
async fn one_statement_commits_each_tenants_own_reservations_of_a_shared_sku_with_the_one_by_one_outcomes()
 {
    let app = TestApp::spawn().await;
    app.given_product_of("acme", "A", 250, 10).await;
    app.given_product_of("globex", "A", 250, 20).await;
    let (acme_order, globex_order) = (Uuid::now_v7(), Uuid::now_v7());
    reserve_as(&app, "acme", acme_order, "A", 2).await;
    reserve_as(&app, "globex", globex_order, "A", 3).await;
    let released = Uuid::now_v7();
    reserve_as(&app, "acme", released, "A", 1).await;
    assert_eq!(app.release(released).await, "RELEASED");
    let unknown = Uuid::now_v7();

    // as the service's role, under the batch's tenant set
    let mut tx = longship_tenant::begin_set(&app.pool, &[tenant("acme"), tenant("globex")])
        .await
        .expect("begin");
    let results = store::commit_many(
        &mut tx,
        &[
            set_item("acme", acme_order),
            set_item("globex", globex_order),
            set_item("acme", acme_order),
            set_item("globex", unknown),
            set_item("acme", released),
            // acme's order under globex's name: globex has no such reservation
            set_item("globex", acme_order),
        ],
    )
    .await
    .expect("commit_many");
    tx.commit().await.expect("commit");

    use CommitOutcome::*;
    assert_eq!(
        results,
        vec![
            result(Committed, Some(ReservationStatus::Reserved)),
            result(Committed, Some(ReservationStatus::Reserved)),
            result(AlreadyCommitted, Some(ReservationStatus::Committed)),
            result(NotReserved, None),
            result(NotReserved, Some(ReservationStatus::Released)),
            result(NotReserved, None),
        ]
    );
    assert_eq!(
        stock_of(&app, "acme", "A").await,
        (8, 0),
        "acme's own units left"
    );
    assert_eq!(
        stock_of(&app, "globex", "A").await,
        (17, 0),
        "globex's own units left"
    );
    let events = committed_events(&app).await;
    let by_order = |order: Uuid| events.iter().find(|(_, e)| e.order_id == order).cloned();
    let (acme_tenant, acme_event) = by_order(acme_order).expect("acme's event");
    let (globex_tenant, globex_event) = by_order(globex_order).expect("globex's event");
    assert_eq!(events.len(), 2, "one event per commit");
    assert_eq!(
        (acme_tenant.as_str(), globex_tenant.as_str()),
        ("acme", "globex")
    );
    assert_eq!(
        (acme_event.lines[0].quantity, globex_event.lines[0].quantity),
        (2, 3)
    );
    assert_eq!(acme_event.lines[0].unit_price_cents, 250);

    // a second batch finds them committed and changes nothing
    let mut tx = longship_tenant::begin_set(&app.pool, &[tenant("acme"), tenant("globex")])
        .await
        .expect("begin");
    let again = store::commit_many(
        &mut tx,
        &[
            set_item("globex", globex_order),
            set_item("acme", acme_order),
        ],
    )
    .await
    .expect("commit_many");
    tx.commit().await.expect("commit");
    assert!(
        again.iter().all(|r| r.outcome == AlreadyCommitted),
        "{again:?}"
    );
    assert_eq!(stock_of(&app, "globex", "A").await, (17, 0));
    assert_eq!(committed_events(&app).await.len(), 2);
    app.stop().await;
}

/// `order_confirmed` of `tenant` for `order` (schema version 2).
fn confirmed(tenant_id: &str, order: serde_json::Value) -> EventEnvelope {
    EventEnvelope {
        id: Uuid::now_v7(),
        event_type: ORDER_CONFIRMED.into(),
        tenant_id: tenant(tenant_id),
        occurred_at: chrono::Utc::now(),
        schema_version: 2,
        data: json!({"order_id": order, "confirmed_at": chrono::Utc::now()}),
    }
}

#[tokio::test]
async fn a_waiting_batch_of_two_tenants_commits_their_own_stock_and_a_bad_payload_is_dead_lettered_alone()
 {
    let app = TestApp::builder()
        .env("NATS_CONSUMER_MAX_DELIVER", "3")
        .spawn()
        .await;
    app.given_product_of("acme", "A", 250, 10).await;
    app.given_product_of("globex", "A", 250, 20).await;
    let orders = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    reserve_as(&app, "acme", orders[0], "A", 2).await;
    reserve_as(&app, "globex", orders[1], "A", 3).await;
    reserve_as(&app, "acme", orders[2], "A", 1).await;

    // the events wait in the stream while the service is down, so they arrive together
    let (db, nats) = app.stop_keeping_infrastructure().await;
    let (js, naming) = (nats.jetstream(), Naming::new(nats.prefix()));
    longship_messaging::ensure_stream(&js, &naming, ORDERS, &StreamSettings::single_node())
        .await
        .expect("stream");
    let first = confirmed("acme", json!(orders[0]));
    let bad = confirmed("acme", json!("not-an-order-id"));
    let events = [
        first.clone(),
        confirmed("globex", json!(orders[1])),
        bad.clone(),
        confirmed("acme", json!(orders[2])),
        confirmed("globex", json!(Uuid::now_v7())),
    ];
    for event in &events {
        longship_messaging::testing::publish_envelope(&js, &naming, event, &event.id.to_string())
            .await
            .expect("publish");
    }
    longship_messaging::testing::publish_envelope(&js, &naming, &first, "a-second-copy")
        .await
        .expect("publish");

    let app = TestApp::builder()
        .database(db)
        .nats(nats)
        .env("NATS_CONSUMER_MAX_DELIVER", "3")
        .spawn()
        .await;
    let dead: (Uuid, String) = eventually(
        "the bad event dead-lettered",
        Duration::from_secs(30),
        || async {
            sqlx::query_as("SELECT event_id, error FROM dead_letter WHERE consumer = $1")
                .bind(CONSUMER)
                .fetch_optional(app.db.pool())
                .await
                .expect("dead letters")
        },
    )
    .await;
    assert_eq!(dead.0, bad.id, "{}", dead.1);
    eventually("every event settled", Duration::from_secs(15), || async {
        (app.consumer_acked("ORDERS", CONSUMER).await >= 6).then_some(())
    })
    .await;
    assert_eq!(stock_of(&app, "acme", "A").await, (7, 0));
    assert_eq!(stock_of(&app, "globex", "A").await, (17, 0));
    let committed = committed_events(&app).await;
    assert_eq!(committed.len(), 3, "each reservation committed once");
    let dead_letters: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letter")
        .fetch_one(app.db.pool())
        .await
        .expect("count");
    assert_eq!(dead_letters, 1, "only the bad event is dead-lettered");
    app.stop().await;
}
