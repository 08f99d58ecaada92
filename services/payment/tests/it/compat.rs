//! Compatibility: the event schemas and the OpenAPI document match their committed files; what
//! the service really publishes validates against its committed schemas; the `order_confirmed`
//! consumer ignores unknown fields at every level and reads every version it declares (a version
//! 1 payload is upcast).

use std::time::Duration;

use longship_testkit::checks::order_confirmed_data;
use longship_testkit::event_schemas::{assert_published_events_valid, with_unknown_fields};
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp, eventually};

const SERVICE: &str = "payment";

longship_testkit::snapshot_tests!(payment::Payment, payment::events::published_schemas());

#[tokio::test]
async fn every_published_event_type_validates_against_its_committed_schema() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let (voided, captured, declined) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    app.authorize(voided, "c-1", 100, "USD")
        .await
        .expect("authorized");
    assert_eq!(app.void(voided).await, "VOIDED");
    app.authorize(captured, "c-1", 200, "USD")
        .await
        .expect("authorized");
    app.capture(captured).await.expect("captured");
    // more than the balance: a business refusal, published as payment_declined
    let _ = app.authorize(declined, "c-1", 1_000_000, "USD").await;

    let published = payment::events::published_schemas();
    assert_published_events_valid(&app.nats, SERVICE, "PAYMENTS", &published).await;
    app.stop().await;
}

#[tokio::test]
async fn order_confirmed_with_unknown_fields_at_every_level_is_handled() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    app.authorize(order, "c-1", 300, "USD")
        .await
        .expect("authorized");
    let data = with_unknown_fields(&order_confirmed_data(order, "c-1", &[("A", 1, 300)], 2));
    assert_eq!(data["items"][0]["x_unknown_number"], 42);
    app.publish_order_confirmed_data(Uuid::now_v7(), 2, data, "unknown-fields")
        .await;
    eventually("payment captured", Duration::from_secs(15), || async {
        (app.funds("c-1").await == (700, 0)).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn order_confirmed_version_1_is_upcast_and_handled() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    app.authorize(order, "c-1", 400, "USD")
        .await
        .expect("authorized");
    // version 1: no confirmed_at
    let data = order_confirmed_data(order, "c-1", &[("A", 1, 400)], 1);
    app.publish_order_confirmed_data(Uuid::now_v7(), 1, data, "version-1")
        .await;
    eventually("payment captured", Duration::from_secs(15), || async {
        (app.funds("c-1").await == (600, 0)).then_some(())
    })
    .await;
    assert_eq!(app.payment_statuses(order).await, ["CAPTURED"]);
    app.stop().await;
}
