//! gRPC Authorize: holds, declines recorded and answered again, validation, contention.

use std::collections::HashMap;

use longship_testkit::assert_status;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp, code};

#[tokio::test]
async fn authorize_holds_funds_and_a_repeat_returns_the_same_payment() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    let payment = app
        .authorize(order, "c-1", 400, "USD")
        .await
        .expect("authorized");
    assert_eq!(payment.status, "AUTHORIZED");
    assert_eq!(
        (
            payment.order_id.as_str(),
            payment.amount_cents,
            payment.currency.as_str()
        ),
        (order.to_string().as_str(), 400, "USD")
    );
    assert_eq!(app.funds("c-1").await, (1_000, 400));

    let again = app
        .authorize(order, "c-1", 400, "USD")
        .await
        .expect("repeat");
    assert_eq!(again, payment);
    assert_eq!(app.funds("c-1").await, (1_000, 400));

    let event = app
        .await_published_once("PAYMENTS", "payments.v1.payment_authorized")
        .await;
    assert_eq!(event.data["payment_id"], payment.id);
    assert_eq!(event.data["amount_cents"], 400);
    app.stop().await;
}

#[tokio::test]
async fn insufficient_funds_decline_is_recorded_and_answered_again() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    app.authorize(Uuid::now_v7(), "c-1", 700, "USD")
        .await
        .expect("first hold");
    let order = Uuid::now_v7();
    let declined = app.authorize(order, "c-1", 301, "USD").await;
    assert_status(declined, Code::FailedPrecondition, "payment.declined");
    assert_eq!(app.funds("c-1").await, (1_000, 700));
    assert_eq!(app.payment_statuses(order).await, ["DECLINED"]);

    // the first result stands even though the money is there now
    app.given_account("c-1", 5_000, "USD").await;
    let repeat = app
        .authorize(order, "c-1", 301, "USD")
        .await
        .expect_err("still declined");
    assert_eq!(code(&repeat), "payment.declined");
    assert_eq!(app.funds("c-1").await, (5_000, 700));
    assert_eq!(app.payment_statuses(order).await, ["DECLINED"]);

    let event = app
        .await_published_once("PAYMENTS", "payments.v1.payment_declined")
        .await;
    assert_eq!(event.data["reason"], "insufficient_funds");
    app.stop().await;
}

#[tokio::test]
async fn unknown_accounts_other_currencies_and_invalid_amounts_are_refused() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "EUR").await;

    let order = Uuid::now_v7();
    let no_account = app
        .authorize(order, "nobody", 100, "USD")
        .await
        .expect_err("no account");
    assert_eq!(code(&no_account), "payment.declined");
    assert!(
        no_account.message().contains("no account"),
        "{}",
        no_account.message()
    );
    assert_eq!(app.payment_statuses(order).await, ["DECLINED"]);

    let order = Uuid::now_v7();
    let mismatch = app.authorize(order, "c-1", 100, "USD").await;
    assert_status(
        mismatch,
        Code::FailedPrecondition,
        "payment.currency_mismatch",
    );
    let repeat = app
        .authorize(order, "c-1", 100, "USD")
        .await
        .expect_err("mismatch again");
    assert_eq!(code(&repeat), "payment.currency_mismatch");
    assert_eq!(app.payment_statuses(order).await, ["DECLINED"]);

    for (amount, currency) in [(0, "EUR"), (-5, "EUR"), (100, "eur")] {
        let invalid = app
            .authorize(Uuid::now_v7(), "c-1", amount, currency)
            .await
            .expect_err("invalid");
        assert_eq!(invalid.code(), Code::InvalidArgument, "{amount} {currency}");
    }
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    app.stop().await;
}

#[tokio::test]
async fn concurrent_authorizations_never_overspend() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let attempts = (0..20).map(|_| {
        let app = &app;
        async move { app.authorize(Uuid::now_v7(), "c-1", 100, "USD").await }
    });
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for result in futures::future::join_all(attempts).await {
        let key = match result {
            Ok(p) => p.status,
            Err(status) => code(&status),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert_eq!(outcomes.get("AUTHORIZED"), Some(&10), "{outcomes:?}");
    assert_eq!(outcomes.get("payment.declined"), Some(&10), "{outcomes:?}");
    assert_eq!(app.funds("c-1").await, (1_000, 1_000));
    app.stop().await;
}
