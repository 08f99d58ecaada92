//! gRPC Reserve / Release / Commit: all or nothing, business refusals, idempotency, tombstones and
//! contention.

use std::collections::HashMap;

use longship_proto::inventory::v1 as pb;
use longship_testkit::assert_status;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, code};

#[tokio::test]
async fn reserve_holds_stock_returns_prices_and_announces_it() {
    let app = TestApp::spawn().await;
    app.given_product("A", 250, "USD", 10).await;
    app.given_product("B", 1000, "USD", 5).await;
    let order = Uuid::now_v7();
    let reserved = app
        .reserve(order, "USD", &[("A", 3), ("B", 1)])
        .await
        .expect("reserved");
    assert_eq!(reserved.order_id, order.to_string());
    assert_eq!(reserved.currency, "USD");
    let lines: Vec<(String, u32, i64)> = reserved
        .lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity, l.unit_price_cents))
        .collect();
    assert_eq!(lines, [("A".into(), 3, 250), ("B".into(), 1, 1000)]);
    assert_eq!(app.stock("A").await, (10, 3));
    assert_eq!(app.stock("B").await, (5, 1));
    assert_eq!(app.product("A").await["available"], 7);

    let event = app
        .await_published_once("INVENTORY", "inventory.v1.stock_reserved")
        .await;
    assert_eq!(event.tenant_id.as_str(), "acme");
    assert_eq!(event.data["order_id"], order.to_string());
    assert_eq!(event.data["lines"][0]["unit_price_cents"], 250);
    app.stop().await;
}

#[tokio::test]
async fn one_short_line_reserves_nothing() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.given_product("B", 100, "USD", 1).await;
    let order = Uuid::now_v7();
    let status = app
        .reserve(order, "USD", &[("A", 5), ("B", 2)])
        .await
        .expect_err("short");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(code(&status), "inventory.insufficient_stock");
    assert_eq!(app.stock("A").await, (10, 0));
    assert_eq!(app.stock("B").await, (1, 0));

    // the refused order left no reservation behind: the same order may try again once stock exists
    app.given_product("B", 100, "USD", 2).await;
    app.reserve(order, "USD", &[("A", 5), ("B", 2)])
        .await
        .expect("fits now");
    assert_eq!(app.stock("A").await, (10, 5));
    assert_eq!(app.stock("B").await, (2, 2));
    app.stop().await;
}

#[tokio::test]
async fn unknown_sku_currency_mismatch_and_invalid_requests_are_refused() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.given_product("E", 100, "EUR", 10).await;

    let unknown = app
        .reserve(Uuid::now_v7(), "USD", &[("A", 1), ("NOPE", 1)])
        .await;
    assert_status(unknown, Code::NotFound, "inventory.unknown_sku");

    let mismatch = app
        .reserve(Uuid::now_v7(), "USD", &[("A", 1), ("E", 1)])
        .await;
    assert_status(
        mismatch,
        Code::FailedPrecondition,
        "inventory.currency_mismatch",
    );

    for lines in [vec![("A", 1), ("A", 2)], vec![("A", 0)], vec![]] {
        let invalid = app
            .reserve(Uuid::now_v7(), "USD", &lines)
            .await
            .expect_err("invalid");
        assert_eq!(invalid.code(), Code::InvalidArgument, "{lines:?}");
    }
    let bad_id = pb::ReserveRequest {
        order_id: "not-a-uuid".into(),
        currency: "USD".into(),
        ..Default::default()
    };
    let status = app
        .grpc()
        .reserve(app.request(bad_id))
        .await
        .expect_err("bad id");
    assert_eq!(status.code(), Code::InvalidArgument);

    assert_eq!(app.stock("A").await, (10, 0));
    assert_eq!(app.stock("E").await, (10, 0));
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_reserve_returns_the_first_result_without_reserving_twice() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    let order = Uuid::now_v7();
    let first = app.reserve(order, "USD", &[("A", 4)]).await.expect("first");
    // the price changes between the attempts; the repeat still answers the prices first reserved
    app.given_product("A", 900, "USD", 10).await;
    let second = app
        .reserve(order, "USD", &[("A", 4)])
        .await
        .expect("repeat");
    assert_eq!(first, second);
    assert_eq!(second.lines[0].unit_price_cents, 100);
    assert_eq!(app.stock("A").await, (10, 4));
    app.stop().await;
}

#[tokio::test]
async fn release_returns_stock_is_idempotent_and_refuses_a_late_reserve() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    let order = Uuid::now_v7();
    app.reserve(order, "USD", &[("A", 4)])
        .await
        .expect("reserved");
    assert_eq!(app.release(order).await, "RELEASED");
    assert_eq!(app.stock("A").await, (10, 0));
    assert_eq!(app.release(order).await, "ALREADY_RELEASED");
    assert_eq!(app.stock("A").await, (10, 0));

    let late = app.reserve(order, "USD", &[("A", 4)]).await;
    assert_status(
        late,
        Code::FailedPrecondition,
        "inventory.reservation_released",
    );
    assert_eq!(app.stock("A").await, (10, 0));

    // a Release that overtakes its Reserve leaves a tombstone
    let overtaken = Uuid::now_v7();
    assert_eq!(app.release(overtaken).await, "TOMBSTONED");
    assert_eq!(app.release(overtaken).await, "TOMBSTONED");
    let late = app
        .reserve(overtaken, "USD", &[("A", 1)])
        .await
        .expect_err("after tombstone");
    assert_eq!(code(&late), "inventory.reservation_released");
    assert_eq!(app.stock("A").await, (10, 0));
    app.stop().await;
}

#[tokio::test]
async fn commit_ships_the_units_once_and_wins_over_a_later_release() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    let order = Uuid::now_v7();
    app.reserve(order, "USD", &[("A", 3)])
        .await
        .expect("reserved");

    // on_hand cannot go below what is reserved
    let below = app.put_product("A", 100, "USD", 2).await;
    assert_eq!(below.status, 409, "{}", below.text());
    assert_eq!(below.json()["code"], "inventory.on_hand_below_reserved");

    assert_eq!(app.commit(order).await, "COMMITTED");
    assert_eq!(app.stock("A").await, (7, 0));
    assert_eq!(app.commit(order).await, "ALREADY_COMMITTED");
    assert_eq!(app.release(order).await, "COMMITTED");
    assert_eq!(app.stock("A").await, (7, 0));
    assert_eq!(app.commit(Uuid::now_v7()).await, "NOT_RESERVED");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_reserves_on_contended_stock_never_oversell() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.given_product("B", 100, "USD", 10).await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        async move {
            // half the orders list the skus in the other order: locking must not depend on it
            let lines: &[(&str, u32)] = if i % 2 == 0 {
                &[("A", 1), ("B", 1)]
            } else {
                &[("B", 1), ("A", 1)]
            };
            app.reserve(Uuid::now_v7(), "USD", lines).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for result in &results {
        let key = match result {
            Ok(_) => "ok".to_owned(),
            Err(status) => code(status),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert_eq!(outcomes.get("ok"), Some(&10), "{outcomes:?}");
    assert_eq!(
        outcomes.get("inventory.insufficient_stock"),
        Some(&10),
        "{outcomes:?}"
    );
    assert_eq!(app.stock("A").await, (10, 10));
    assert_eq!(app.stock("B").await, (10, 10));
    app.stop().await;
}

#[tokio::test]
async fn concurrent_reserves_releases_and_commits_on_shared_products_neither_deadlock_nor_lose_stock()
 {
    let app = TestApp::spawn().await;
    // skus whose byte order differs from a linguistic collation's: every path locks them in the
    // same (byte) order, whatever the database's collation and the order of the request's lines
    let skus = ["a_b", "A_b", "a-b"];
    for sku in skus {
        app.given_product(sku, 100, "USD", 1_000).await;
    }
    let lines = |i: usize| -> Vec<(&str, u32)> {
        (0..skus.len())
            .map(|k| (skus[(i + k) % skus.len()], 1))
            .collect()
    };
    let held: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    for (i, order) in held.iter().enumerate() {
        app.reserve(*order, "USD", &lines(i))
            .await
            .expect("reserved");
    }
    let commits = held[..20].iter().map(|o| async { app.commit(*o).await });
    let releases = held[20..].iter().map(|o| async { app.release(*o).await });
    let reserves = (0..20).map(|i| {
        let lines = lines(i);
        let app = &app;
        async move { app.reserve(Uuid::now_v7(), "USD", &lines).await }
    });
    let (committed, released, reserved) = tokio::join!(
        futures::future::join_all(commits),
        futures::future::join_all(releases),
        futures::future::join_all(reserves)
    );
    assert!(committed.iter().all(|o| o == "COMMITTED"), "{committed:?}");
    assert!(released.iter().all(|o| o == "RELEASED"), "{released:?}");
    for result in &reserved {
        assert!(result.is_ok(), "{result:?}");
    }
    for sku in skus {
        // 20 units shipped; 40 - 20 committed - 20 released + 20 new still reserved
        assert_eq!(app.stock(sku).await, (980, 20), "{sku}");
    }
    app.stop().await;
}
