//! The expiry sweep releases reservations nobody confirmed or released within the TTL.

use std::time::Duration;

use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, code, eventually};

#[tokio::test]
async fn an_unconfirmed_reservation_expires_and_cannot_be_reserved_again() {
    let app = TestApp::spawn_with(|config| {
        // below the production floor on purpose: only tests can set it, on the struct
        config.reservation_ttl = Duration::from_secs(1);
        config.sweep_interval = Duration::from_millis(100);
    })
    .await;
    app.given_product("A", 100, "USD", 10).await;
    let expiring = Uuid::now_v7();
    app.reserve(expiring, "USD", &[("A", 3)])
        .await
        .expect("reserved");
    assert_eq!(app.stock("A").await, (10, 3));

    eventually("reservation expired", Duration::from_secs(10), || async {
        (app.stock("A").await == (10, 0)).then_some(())
    })
    .await;
    assert_eq!(app.release(expiring).await, "ALREADY_RELEASED");
    let late = app
        .reserve(expiring, "USD", &[("A", 3)])
        .await
        .expect_err("expired");
    assert_eq!(code(&late), "inventory.reservation_released");
    assert_eq!(app.commit(expiring).await, "NOT_RESERVED");

    let event = app
        .await_published_once("INVENTORY", "inventory.v1.reservation_expired")
        .await;
    assert_eq!(event.data["order_id"], expiring.to_string());
    app.stop().await;
}

#[tokio::test]
async fn committed_and_released_reservations_are_left_alone_by_the_sweep() {
    let app = TestApp::spawn_with(|config| {
        config.reservation_ttl = Duration::from_secs(1);
        config.sweep_interval = Duration::from_millis(100);
    })
    .await;
    app.given_product("A", 100, "USD", 10).await;
    let committed = Uuid::now_v7();
    let released = Uuid::now_v7();
    let expiring = Uuid::now_v7();
    app.reserve(committed, "USD", &[("A", 2)])
        .await
        .expect("reserved");
    app.reserve(released, "USD", &[("A", 2)])
        .await
        .expect("reserved");
    app.reserve(expiring, "USD", &[("A", 1)])
        .await
        .expect("reserved");
    assert_eq!(app.commit(committed).await, "COMMITTED");
    assert_eq!(app.release(released).await, "RELEASED");
    eventually("the open one expired", Duration::from_secs(10), || async {
        (app.stock("A").await == (8, 0)).then_some(())
    })
    .await;
    assert_eq!(app.release(committed).await, "COMMITTED");
    app.stop().await;
}
