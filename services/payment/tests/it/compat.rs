//! Compatibility: the event schemas and the OpenAPI document match their committed files; what
//! the service really publishes validates against its committed schemas; the `order_confirmed`
//! consumer ignores unknown fields at every level and reads every version it declares (a version
//! 1 payload is upcast).

use longship_testkit::event_schemas::assert_published_events_valid;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp};

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
async fn order_confirmed_with_unknown_fields_and_of_version_1_is_handled() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let authorize = async |order| {
        let authorized = app.authorize(order, "c-1", 300, "USD").await;
        authorized.expect("authorized");
    };
    let captured = async |order| app.payment_statuses(order).await == ["CAPTURED"];
    app.assert_order_confirmed_read_in_every_form(&[("A", 1, 300)], authorize, captured)
        .await;
    assert_eq!(app.funds("c-1").await, (400, 0));
    app.stop().await;
}
