//! gRPC Void: releases holds, idempotent, tombstones refuse a late Authorize.

use longship_testkit::assert_status;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp, code};

#[tokio::test]
async fn void_releases_the_hold_once() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    app.authorize(order, "c-1", 400, "USD")
        .await
        .expect("authorized");
    assert_eq!(app.void(order).await, "VOIDED");
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    assert_eq!(app.void(order).await, "ALREADY_VOIDED");
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    assert_eq!(app.payment_statuses(order).await, ["VOIDED"]);

    // a repeated Authorize is refused, as a Reserve after a Release is: the hold is gone, and
    // answering the payment would tell a caller that money is held
    let repeat = app.authorize(order, "c-1", 400, "USD").await;
    assert_status(repeat, Code::FailedPrecondition, "payment.voided");
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    assert_eq!(app.payment_statuses(order).await, ["VOIDED"]);

    let declined = Uuid::now_v7();
    app.authorize(declined, "c-1", 5_000, "USD")
        .await
        .expect_err("declined");
    assert_eq!(app.void(declined).await, "ALREADY_VOIDED");
    app.stop().await;
}

#[tokio::test]
async fn a_void_before_authorize_refuses_the_late_authorize() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    assert_eq!(app.void(order).await, "TOMBSTONED");
    assert_eq!(app.void(order).await, "TOMBSTONED");
    let late = app.authorize(order, "c-1", 100, "USD").await;
    assert_status(late, Code::FailedPrecondition, "payment.voided");
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    assert_eq!(app.payment_statuses(order).await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn racing_void_and_authorize_never_leave_money_held() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 100_000, "USD").await;
    for _ in 0..10 {
        let order = Uuid::now_v7();
        let (authorized, voided) =
            tokio::join!(app.authorize(order, "c-1", 100, "USD"), app.void(order));
        match (authorized, voided.as_str()) {
            (Ok(_), "VOIDED") => {}
            (Err(status), "TOMBSTONED") => assert_eq!(code(&status), "payment.voided"),
            (other, outcome) => panic!("inconsistent: {other:?} / {outcome}"),
        }
        assert_eq!(app.funds("c-1").await, (100_000, 0));
    }
    app.stop().await;
}
