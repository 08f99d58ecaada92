//! The `orders.v1.order_confirmed` consumer commits the reservation exactly once.

use std::time::Duration;

use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, eventually};

const CONSUMER: &str = "inventory-order-confirmed";

#[tokio::test]
async fn order_confirmed_commits_the_reservation_once() {
    let app = TestApp::spawn().await;
    app.given_product("A", 250, "USD", 10).await;
    let order = Uuid::now_v7();
    app.reserve(order, "USD", &[("A", 2)])
        .await
        .expect("reserved");

    // the same event delivered again (past JetStream's duplicate window: a new Nats-Msg-Id) is
    // deduplicated by the inbox; another event for the same order finds it committed already
    let committed = async || app.stock("A").await == (8, 0);
    app.publish_order_confirmed_with_repeats(CONSUMER, order, &[("A", 2, 250)], committed)
        .await;
    assert_eq!(app.stock("A").await, (8, 0));
    assert_eq!(app.release(order).await, "COMMITTED");

    let committed = app
        .await_published_once("INVENTORY", "inventory.v1.stock_committed")
        .await;
    assert_eq!(committed.data["order_id"], order.to_string());
    app.stop().await;
}

#[tokio::test]
async fn order_confirmed_without_a_reservation_changes_nothing() {
    let app = TestApp::spawn().await;
    app.given_product("A", 250, "USD", 10).await;
    let released = Uuid::now_v7();
    app.reserve(released, "USD", &[("A", 2)])
        .await
        .expect("reserved");
    assert_eq!(app.release(released).await, "RELEASED");

    let first = Uuid::now_v7();
    app.publish_order_confirmed(first, &first.to_string(), released, "c-1", &[("A", 2, 250)])
        .await;
    let never = Uuid::now_v7();
    let second = Uuid::now_v7();
    app.publish_order_confirmed(second, &second.to_string(), never, "c-1", &[("A", 1, 250)])
        .await;
    eventually("both handled", Duration::from_secs(15), || async {
        (app.consumer_acked("ORDERS", CONSUMER).await >= 2).then_some(())
    })
    .await;
    assert_eq!(app.stock("A").await, (10, 0));
    app.stop().await;
}
