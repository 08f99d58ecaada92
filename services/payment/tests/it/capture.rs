//! Captures: on `orders.v1.order_confirmed` (exactly once per event) and over gRPC.

use std::time::Duration;

use longship_testkit::assert_status;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp, code, eventually};

const CONSUMER: &str = "payment-order-confirmed";

#[tokio::test]
async fn order_confirmed_captures_the_payment_once() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    app.authorize(order, "c-1", 300, "USD")
        .await
        .expect("authorized");

    // the same event again (a redelivery past JetStream's duplicate window) and a second event for
    // the same order change nothing
    let captured = async || app.funds("c-1").await == (700, 0);
    app.publish_order_confirmed_with_repeats(CONSUMER, order, &[("SKU-1", 1, 300)], captured)
        .await;
    assert_eq!(app.payment_statuses(order).await, ["CAPTURED"]);
    assert_eq!(app.funds("c-1").await, (700, 0));
    assert_eq!(app.void(order).await, "CAPTURED");
    assert_eq!(app.funds("c-1").await, (700, 0));

    let captured = app
        .await_published_once("PAYMENTS", "payments.v1.payment_captured")
        .await;
    assert_eq!(captured.data["order_id"], order.to_string());
    app.stop().await;
}

#[tokio::test]
async fn order_confirmed_for_a_voided_or_unknown_payment_changes_nothing() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let voided = Uuid::now_v7();
    app.authorize(voided, "c-1", 300, "USD")
        .await
        .expect("authorized");
    assert_eq!(app.void(voided).await, "VOIDED");

    let first = Uuid::now_v7();
    app.publish_order_confirmed(
        first,
        &first.to_string(),
        voided,
        "c-1",
        &[("SKU-1", 1, 300)],
    )
    .await;
    let second = Uuid::now_v7();
    app.publish_order_confirmed(
        second,
        &second.to_string(),
        Uuid::now_v7(),
        "c-1",
        &[("SKU-1", 1, 300)],
    )
    .await;
    eventually("both handled", Duration::from_secs(15), || async {
        (app.consumer_acked("ORDERS", CONSUMER).await >= 2).then_some(())
    })
    .await;
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    assert_eq!(app.payment_statuses(voided).await, ["VOIDED"]);
    app.stop().await;
}

#[tokio::test]
async fn grpc_capture_is_idempotent_and_refuses_what_is_not_held() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    app.authorize(order, "c-1", 250, "USD")
        .await
        .expect("authorized");
    let captured = app.capture(order).await.expect("captured");
    assert_eq!(captured.status, "CAPTURED");
    assert_eq!(app.capture(order).await.expect("again"), captured);
    assert_eq!(app.funds("c-1").await, (750, 0));

    let unknown = app.capture(Uuid::now_v7()).await;
    assert_status(unknown, Code::NotFound, "payment.not_found");
    let voided = Uuid::now_v7();
    app.authorize(voided, "c-1", 100, "USD")
        .await
        .expect("authorized");
    app.void(voided).await;
    let refused = app.capture(voided).await;
    assert_status(refused, Code::FailedPrecondition, "payment.not_capturable");
    assert_eq!(app.funds("c-1").await, (750, 0));
    app.stop().await;
}

#[tokio::test]
async fn racing_capture_and_void_settle_the_hold_exactly_once() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 100_000, "USD").await;
    let mut balance = 100_000;
    for _ in 0..10 {
        let order = Uuid::now_v7();
        app.authorize(order, "c-1", 100, "USD")
            .await
            .expect("authorized");
        let (captured, voided) = tokio::join!(app.capture(order), app.void(order));
        match (captured, voided.as_str()) {
            // the capture came first: the void finds the money gone and changes nothing
            (Ok(payment), "CAPTURED") => {
                assert_eq!(payment.status, "CAPTURED");
                balance -= 100;
            }
            // the void came first: the capture finds nothing held
            (Err(status), "VOIDED") => assert_eq!(code(&status), "payment.not_capturable"),
            (other, outcome) => panic!("inconsistent: {other:?} / {outcome}"),
        }
        assert_eq!(app.funds("c-1").await, (balance, 0));
    }
    app.stop().await;
}
