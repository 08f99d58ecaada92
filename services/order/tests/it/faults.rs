//! Faults: a participant down mid-saga (back within the deadline, or not), the order service
//! restarted between steps.

use std::time::Duration;

use crate::harness::{Platform, order_body, start_order, start_payment};

#[tokio::test]
async fn payment_down_then_back_within_the_deadline_confirms() {
    let mut p = Platform::start().await;
    p.seed_product("acme", "SKU-1", 500, "USD", 10).await;
    p.seed_account("acme", "c-1", 10_000, "USD").await;
    let payment_grpc = p.payment_grpc.to_string();
    if let Some(payment) = p.payment.take() {
        payment.stop().await;
    }
    let r = p
        .place("acme", order_body("c-1", "USD", &[("SKU-1", 2)]), None)
        .await;
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // the saga reserves stock, then retries AuthorizePayment while payment is down
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pending = p
        .orders("acme")
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("get")
        .json();
    assert_eq!(pending["status"], "PENDING");
    p.payment = Some(start_payment(&p.payments_db, &p.nats, &payment_grpc).await);
    let order = p.wait_final("acme", &id, Duration::from_secs(20)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let authorize = &order["saga"]["steps"][1];
    assert!(
        authorize["attempts"].as_u64().unwrap_or(0) > 1,
        "retried: {authorize}"
    );
    p.stop().await;
}

#[tokio::test]
async fn payment_down_past_the_deadline_cancels_with_timeout_and_releases_stock() {
    let mut p = Platform::start_with(&[("SAGA_DEADLINE_SECS", "2")]).await;
    p.seed_product("acme", "SKU-1", 500, "USD", 10).await;
    p.seed_account("acme", "c-1", 10_000, "USD").await;
    let payment_grpc = p.payment_grpc.to_string();
    if let Some(payment) = p.payment.take() {
        payment.stop().await;
    }
    let r = p
        .place("acme", order_body("c-1", "USD", &[("SKU-1", 2)]), None)
        .await;
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // Void must reach payment to finish compensating (it is never skipped): bring payment back later
    let order = {
        let restart = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            start_payment(&p.payments_db, &p.nats, &payment_grpc).await
        };
        let (payment, order) =
            tokio::join!(restart, p.wait_final("acme", &id, Duration::from_secs(30)));
        p.payment = Some(payment);
        order
    };
    assert_eq!(
        (order["status"].as_str(), order["failure_reason"].as_str()),
        (Some("CANCELLED"), Some("timeout")),
        "{order}"
    );
    let product = p.product("acme", "SKU-1").await;
    assert_eq!(
        (product["reserved"].as_i64(), product["on_hand"].as_i64()),
        (Some(0), Some(10))
    );
    let account = p.account("acme", "c-1").await;
    assert_eq!(
        (
            account["held_cents"].as_i64(),
            account["balance_cents"].as_i64()
        ),
        (Some(0), Some(10_000))
    );
    // a late Authorize for this order is refused (the Void left a tombstone)
    p.stop().await;
}

#[tokio::test]
async fn order_service_restarted_between_steps_finishes_every_saga() {
    let mut p = Platform::start().await;
    p.seed_product("acme", "SKU-1", 100, "USD", 100).await;
    p.seed_account("acme", "c-1", 1_000_000, "USD").await;
    let payment_grpc = p.payment_grpc.to_string();
    if let Some(payment) = p.payment.take() {
        payment.stop().await;
    }
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = p
            .place(
                "acme",
                order_body("c-1", "USD", &[("SKU-1", 1)]),
                Some(&format!("r-{i}")),
            )
            .await;
        ids.push(r.json()["id"].as_str().expect("id").to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // stop the order service while its sagas wait in AuthorizePayment, then start a new instance
    let old = std::mem::replace(
        &mut p.order,
        start_order(&p.orders_db, &p.nats, p.inventory.grpc, p.payment_grpc, &[]).await,
    );
    old.stop().await;
    p.payment = Some(start_payment(&p.payments_db, &p.nats, &payment_grpc).await);
    for id in &ids {
        let order = p.wait_final("acme", id, Duration::from_secs(30)).await;
        assert_eq!(order["status"], "CONFIRMED", "{order}");
    }
    p.stop().await;
}

#[tokio::test]
async fn nats_unreachable_for_a_while_then_events_are_delivered_stock_committed_and_payment_captured()
 {
    use longship_testkit::proxy::Mode;
    let (p, proxy) = Platform::start_behind_nats_proxy().await;
    p.seed_product("acme", "SKU-1", 400, "USD", 10).await;
    p.seed_account("acme", "c-1", 10_000, "USD").await;

    proxy.set_mode(Mode::Refuse);
    // the saga needs only Postgres and gRPC: the order is confirmed while NATS is unreachable
    let r = p
        .place("acme", order_body("c-1", "USD", &[("SKU-1", 3)]), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.wait_final("acme", &id, Duration::from_secs(15)).await["status"],
        "CONFIRMED"
    );
    // its order_confirmed event waits in the outbox: stock stays reserved, the hold stays held
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(p.orders_db.pool())
        .await
        .expect("outbox");
    assert!(
        pending >= 1,
        "events wait in the outbox while NATS is unreachable"
    );
    let product = p.product("acme", "SKU-1").await;
    assert_eq!(
        (product["on_hand"].as_i64(), product["reserved"].as_i64()),
        (Some(10), Some(3))
    );

    proxy.set_mode(Mode::Pass);
    p.eventually(
        "stock committed after NATS returned",
        Duration::from_secs(30),
        || async {
            let product = p.product("acme", "SKU-1").await;
            product["on_hand"] == 7 && product["reserved"] == 0
        },
    )
    .await;
    p.eventually(
        "payment captured after NATS returned",
        Duration::from_secs(30),
        || async {
            let account = p.account("acme", "c-1").await;
            account["balance_cents"] == 10_000 - 1200 && account["held_cents"] == 0
        },
    )
    .await;
    p.stop().await;
}

/// Requests and background work have pools of their own: with every connection of order's
/// request pool held, the saga engine still claims, steps and confirms, and the relay still
/// publishes `order_confirmed` (inventory commits the stock).
#[tokio::test]
async fn a_saturated_request_pool_does_not_starve_the_saga_engine_or_the_relay() {
    let mut p = Platform::start_with(&[
        ("DATABASE_MAX_CONNECTIONS", "2"),
        ("DATABASE_WORKER_MAX_CONNECTIONS", "3"),
    ])
    .await;
    p.seed_product("acme", "SKU-P", 500, "USD", 10).await;
    p.seed_account("acme", "c-p", 10_000, "USD").await;
    let payment_grpc = p.payment_grpc.to_string();
    if let Some(payment) = p.payment.take() {
        payment.stop().await;
    }
    let r = p
        .place("acme", order_body("c-p", "USD", &[("SKU-P", 2)]), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id: uuid::Uuid = r.json()["id"].as_str().expect("id").parse().expect("uuid");
    // the saga waits for payment; meanwhile every request connection is taken
    let requests = p.order.pool.clone();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(requests.acquire().await.expect("request connection"));
    }
    assert_eq!((requests.size(), requests.num_idle()), (2, 0));
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(p.orders_db.pool())
            .await
            .expect("status")
    };
    assert_eq!(status().await, "PENDING");
    p.payment = Some(start_payment(&p.payments_db, &p.nats, &payment_grpc).await);
    p.eventually(
        "the saga confirms on the worker pool",
        Duration::from_secs(30),
        || async { status().await == "CONFIRMED" },
    )
    .await;
    p.eventually(
        "the relay published order_confirmed and inventory committed the stock",
        Duration::from_secs(20),
        || async {
            let product = p.product("acme", "SKU-P").await;
            product["on_hand"] == 8 && product["reserved"] == 0
        },
    )
    .await;
    // the request pool was held throughout
    assert_eq!((requests.size(), requests.num_idle()), (2, 0));
    drop(held);
    p.stop().await;
}
