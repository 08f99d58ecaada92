//! gRPC ReserveBatch: each item answered as its own Reserve would be (refusal, repeat, tombstone,
//! success, a malformed item), tenants kept apart inside one batch, and batches that lock
//! overlapping products in opposite orders finishing without deadlock.

use longship_proto::inventory::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, reserve_request};

pub(crate) fn item(tenant: &str, order_id: Uuid, lines: &[(&str, u32)]) -> pb::ReserveBatchItem {
    pb::ReserveBatchItem {
        tenant_id: tenant.into(),
        request: Some(pb::ReserveRequest {
            idempotency_key: format!("{order_id}:ReserveStock"),
            ..reserve_request(order_id, "USD", lines)
        }),
    }
}

pub(crate) async fn reserve_batch(
    app: &TestApp,
    items: Vec<pb::ReserveBatchItem>,
) -> Vec<pb::ReserveBatchResult> {
    let n = items.len();
    let results = app
        .grpc()
        .reserve_batch(tonic::Request::new(pb::ReserveBatchRequest { items }))
        .await
        .expect("the batch call succeeds whatever its items answer")
        .into_inner()
        .results;
    assert_eq!(results.len(), n, "one answer per item");
    results
}

pub(crate) fn reserved(result: &pb::ReserveBatchResult) -> Vec<(String, u32, i64)> {
    match &result.outcome {
        Some(pb::reserve_batch_result::Outcome::Reserved(r)) => r
            .lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity, l.unit_price_cents))
            .collect(),
        other => panic!("expected a reservation, got {other:?}"),
    }
}

pub(crate) fn refused(result: &pb::ReserveBatchResult) -> (Code, String, pb::Refusal) {
    let Some(pb::reserve_batch_result::Outcome::Error(e)) = &result.outcome else {
        panic!("expected a refusal, got {result:?}");
    };
    let (code, error_code, refusal) = longship_runtime::participant::read_item_error(e);
    let refusal = pb::Refusal::try_from(refusal).unwrap_or(pb::Refusal::Unspecified);
    (code, error_code, refusal)
}

#[tokio::test]
async fn each_item_is_answered_as_its_own_reserve_would_be() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 5).await;
    app.given_product("B", 300, "USD", 10).await;

    let repeated = Uuid::now_v7();
    let first = app
        .reserve(repeated, "USD", &[("A", 1)])
        .await
        .expect("first reserve");
    assert_eq!(first.lines[0].unit_price_cents, 100);
    let tombstoned = Uuid::now_v7();
    assert_eq!(app.release(tombstoned).await, "TOMBSTONED");
    // a price change after the first Reserve: its repeat answers the first result
    app.given_product("A", 999, "USD", 5).await;
    let short = Uuid::now_v7();
    let ok = Uuid::now_v7();

    let results = reserve_batch(
        &app,
        vec![
            item("acme", short, &[("A", 100), ("B", 1)]),
            item("acme", repeated, &[("A", 1)]),
            item("acme", tombstoned, &[("B", 1)]),
            item("acme", ok, &[("B", 2), ("A", 2)]),
            pb::ReserveBatchItem {
                tenant_id: "acme".into(),
                request: Some(pb::ReserveRequest {
                    order_id: "not-a-uuid".into(),
                    ..Default::default()
                }),
            },
        ],
    )
    .await;

    assert_eq!(
        refused(&results[0]),
        (
            Code::FailedPrecondition,
            "inventory.insufficient_stock".into(),
            pb::Refusal::InsufficientStock
        )
    );
    assert_eq!(reserved(&results[1]), [("A".into(), 1, 100)]);
    assert_eq!(
        refused(&results[2]),
        (
            Code::FailedPrecondition,
            "inventory.reservation_released".into(),
            pb::Refusal::ReservationReleased
        )
    );
    assert_eq!(
        reserved(&results[3]),
        [("B".into(), 2, 300), ("A".into(), 2, 999)]
    );
    assert_eq!(refused(&results[4]).0, Code::InvalidArgument);

    // held: the first Reserve's unit and the batch's ok order; nothing for the refused ones
    assert_eq!(app.stock("A").await, (5, 3));
    assert_eq!(app.stock("B").await, (10, 2));
    // the refused order left no reservation behind: its Release finds nothing to release
    assert_eq!(app.release(short).await, "TOMBSTONED");
    // the batch's reservation is a reservation like any other
    assert_eq!(app.release(ok).await, "RELEASED");
    assert_eq!(app.stock("A").await, (5, 1));
    assert_eq!(app.stock("B").await, (10, 0));
    // and the batch's own repeat answers what the batch answered
    let again = reserve_batch(&app, vec![item("acme", ok, &[("B", 2), ("A", 2)])]).await;
    assert_eq!(refused(&again[0]).2, pb::Refusal::ReservationReleased);
    app.stop().await;
}

#[tokio::test]
async fn orders_of_a_batch_are_planned_against_what_the_earlier_ones_took() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 5).await;
    let orders: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let results = reserve_batch(
        &app,
        orders
            .iter()
            .map(|o| item("acme", *o, &[("A", 2)]))
            .collect(),
    )
    .await;
    // five units: two orders of two fit, in order-id order; the others are refused
    let fitted: Vec<bool> = results
        .iter()
        .map(|r| {
            matches!(
                r.outcome,
                Some(pb::reserve_batch_result::Outcome::Reserved(_))
            )
        })
        .collect();
    assert_eq!(fitted, [true, true, false, false]);
    assert_eq!(refused(&results[2]).2, pb::Refusal::InsufficientStock);
    assert_eq!(app.stock("A").await, (5, 4));
    app.stop().await;
}

#[tokio::test]
async fn tenants_of_one_batch_see_only_their_own_products() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.given_product("ONLY-ACME", 100, "USD", 10).await;
    let globex = app.as_tenant("globex");
    let put = globex
        .send_json(
            http::Method::PUT,
            "/v1/products/A",
            &[],
            &serde_json::json!({"name": "theirs", "price_cents": 777, "currency": "USD", "on_hand": 3}),
        )
        .await
        .expect("PUT globex product");
    assert_eq!(put.status, 200, "{}", put.text());

    let (ours, theirs, sneaky) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let results = reserve_batch(
        &app,
        vec![
            item("acme", ours, &[("A", 4)]),
            item("globex", theirs, &[("A", 2)]),
            // globex naming acme's product: unknown to globex
            item("globex", sneaky, &[("ONLY-ACME", 1)]),
        ],
    )
    .await;
    assert_eq!(reserved(&results[0]), [("A".into(), 4, 100)]);
    assert_eq!(reserved(&results[1]), [("A".into(), 2, 777)]);
    assert_eq!(
        refused(&results[2]),
        (
            Code::NotFound,
            "inventory.unknown_sku".into(),
            pb::Refusal::UnknownSku
        )
    );
    assert_eq!(app.stock("A").await, (10, 4));
    assert_eq!(app.stock("ONLY-ACME").await, (10, 0));
    let theirs_now = globex.get("/v1/products/A").await.expect("GET").json();
    assert_eq!(
        (
            theirs_now["on_hand"].as_i64(),
            theirs_now["reserved"].as_i64()
        ),
        (Some(3), Some(2))
    );
    // a malformed tenant is refused alone
    let results = reserve_batch(
        &app,
        vec![
            item("Not Valid", Uuid::now_v7(), &[("A", 1)]),
            item("acme", Uuid::now_v7(), &[("A", 1)]),
        ],
    )
    .await;
    assert_eq!(refused(&results[0]).0, Code::InvalidArgument);
    assert_eq!(reserved(&results[1]), [("A".into(), 1, 100)]);
    app.stop().await;
}

#[tokio::test]
async fn batches_locking_the_same_products_in_opposite_orders_do_not_deadlock() {
    let app = TestApp::spawn().await;
    let skus = ["P1", "P2", "P3", "P4", "P5", "P6"];
    for sku in skus {
        app.given_product(sku, 10, "USD", 100_000).await;
    }
    let forward: Vec<(&str, u32)> = skus.iter().map(|s| (*s, 1)).collect();
    let backward: Vec<(&str, u32)> = skus.iter().rev().map(|s| (*s, 1)).collect();
    let rounds = 15;
    let per_batch = 8;
    let run = |lines: Vec<(&'static str, u32)>| {
        let grpc = app.grpc();
        async move {
            for _ in 0..rounds {
                let items: Vec<_> = (0..per_batch)
                    .map(|_| item("acme", Uuid::now_v7(), &lines))
                    .collect();
                let results = grpc
                    .clone()
                    .reserve_batch(tonic::Request::new(pb::ReserveBatchRequest { items }))
                    .await
                    .expect("batch")
                    .into_inner()
                    .results;
                for r in &results {
                    assert!(
                        matches!(
                            r.outcome,
                            Some(pb::reserve_batch_result::Outcome::Reserved(_))
                        ),
                        "{r:?}"
                    );
                }
            }
        }
    };
    longship_testkit::batches::opposite_orders_finish(forward, backward, run).await;
    for sku in skus {
        assert_eq!(
            app.stock(sku).await,
            (100_000, 4 * rounds * per_batch as i64),
            "{sku}"
        );
    }
    app.stop().await;
}
