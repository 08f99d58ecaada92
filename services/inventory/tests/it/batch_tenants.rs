//! gRPC ReserveBatch over several tenants in one transaction: each order reads and writes only its
//! own tenant's products and reservations where tenants share skus and order ids, and a mixed
//! batch of two tenants answers every item as a single Reserve of its tenant would.

use longship_proto::inventory::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::batch::{item, refused, reserve_batch, reserved};
use crate::helpers::{InventoryApp, TestApp};

/// `(on_hand, reserved)` of a tenant's product, read as the owner (no row-level security).
async fn stock_of(app: &TestApp, tenant: &str, sku: &str) -> (i64, i64) {
    sqlx::query_as("SELECT on_hand, reserved FROM products WHERE tenant_id = $1 AND sku = $2")
        .bind(tenant)
        .bind(sku)
        .fetch_one(app.db.pool())
        .await
        .expect("product row")
}

#[tokio::test]
async fn one_transaction_keeps_each_order_to_its_tenant_where_skus_and_order_ids_collide() {
    let app = TestApp::spawn().await;
    app.given_product_of("acme", "A", 100, 10).await;
    app.given_product_of("globex", "A", 777, 3).await;

    let (shared, other) = (Uuid::now_v7(), Uuid::now_v7());
    let results = reserve_batch(
        &app,
        vec![
            item("acme", shared, &[("A", 4)]),
            item("globex", shared, &[("A", 2)]),
            // globex has one unit left: acme's seven do not count for it
            item("globex", other, &[("A", 2)]),
            // acme's order a second time in the batch: the repeat of a single Reserve
            item("acme", shared, &[("A", 4)]),
        ],
    )
    .await;
    assert_eq!(reserved(&results[0]), [("A".into(), 4, 100)]);
    assert_eq!(reserved(&results[1]), [("A".into(), 2, 777)]);
    assert_eq!(refused(&results[2]).2, pb::Refusal::InsufficientStock);
    assert_eq!(reserved(&results[3]), [("A".into(), 4, 100)]);
    assert_eq!(stock_of(&app, "acme", "A").await, (10, 4));
    assert_eq!(stock_of(&app, "globex", "A").await, (3, 2));

    // both tenants' reservations of the shared order id, written by one transaction
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tenant_id, status, xmin::text FROM reservations WHERE order_id = $1 ORDER BY tenant_id",
    )
    .bind(shared)
    .fetch_all(app.db.pool())
    .await
    .expect("reservations");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[1].0.as_str()), ("acme", "globex"));
    assert_eq!(rows[0].2, rows[1].2, "one transaction for both tenants");
    let refused_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reservations WHERE order_id = $1")
            .bind(other)
            .fetch_one(app.db.pool())
            .await
            .expect("count");
    assert_eq!(refused_rows, 0, "a refused Reserve leaves nothing behind");

    // acme's Release of the shared order id returns acme's units only
    assert_eq!(app.release(shared).await, "RELEASED");
    assert_eq!(stock_of(&app, "acme", "A").await, (10, 0));
    assert_eq!(stock_of(&app, "globex", "A").await, (3, 2));
    app.stop().await;
}

#[tokio::test]
async fn a_mixed_batch_of_two_tenants_answers_each_item_as_a_single_reserve_would() {
    let app = TestApp::spawn().await;
    app.given_product_of("acme", "A", 100, 5).await;
    app.given_product_of("globex", "B", 300, 10).await;

    let repeated = Uuid::now_v7();
    app.reserve(repeated, "USD", &[("A", 1)])
        .await
        .expect("first reserve");
    let tombstoned = Uuid::now_v7();
    let released = app
        .grpc()
        .release(app.request_as(
            "globex",
            pb::ReleaseRequest {
                order_id: tombstoned.to_string(),
                idempotency_key: format!("{tombstoned}:release"),
            },
        ))
        .await
        .expect("release")
        .into_inner()
        .outcome;
    assert_eq!(released, "TOMBSTONED");
    let (short, ok, foreign) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

    let results = reserve_batch(
        &app,
        vec![
            item("acme", short, &[("A", 100)]),
            item("acme", repeated, &[("A", 1)]),
            item("globex", tombstoned, &[("B", 1)]),
            item("globex", ok, &[("B", 2)]),
            // acme naming globex's sku: unknown to acme
            item("acme", foreign, &[("B", 1)]),
        ],
    )
    .await;
    assert_eq!(refused(&results[0]).2, pb::Refusal::InsufficientStock);
    assert_eq!(reserved(&results[1]), [("A".into(), 1, 100)]);
    assert_eq!(
        refused(&results[2]),
        (
            Code::FailedPrecondition,
            "inventory.reservation_released".into(),
            pb::Refusal::ReservationReleased
        )
    );
    assert_eq!(reserved(&results[3]), [("B".into(), 2, 300)]);
    assert_eq!(refused(&results[4]).2, pb::Refusal::UnknownSku);
    assert_eq!(stock_of(&app, "acme", "A").await, (5, 1));
    assert_eq!(stock_of(&app, "globex", "B").await, (10, 2));
    app.stop().await;
}
