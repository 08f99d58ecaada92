//! Compatibility: the event schemas and the OpenAPI document match their committed files, and
//! every event type the order service declares, as it really publishes it (a confirmed and a
//! cancelled order through the whole platform), validates against its committed schema.

use std::time::Duration;

use longship_messaging::Naming;
use longship_testkit::event_schemas::{assert_schema_snapshots, assert_valid_event};
use longship_testkit::eventually;
use longship_testkit::snapshot::assert_served_openapi;

use crate::harness::{Platform, order_body};

const SERVICE: &str = "order";

#[test]
fn event_schemas_match_the_committed_files() {
    assert_schema_snapshots(SERVICE, &order::events::published_schemas());
}

#[tokio::test]
async fn served_openapi_matches_the_committed_file() {
    let platform = Platform::start().await;
    assert_served_openapi(&platform.orders("acme"), "openapi/order.json").await;
    platform.stop().await;
}

#[tokio::test]
async fn every_published_event_type_validates_against_its_committed_schema() {
    let platform = Platform::start().await;
    platform.seed_product("acme", "SKU-1", 250, "USD", 10).await;
    platform.seed_account("acme", "c-1", 10_000, "USD").await;
    let confirmed = platform
        .place("acme", order_body("c-1", "USD", &[("SKU-1", 2)]), None)
        .await;
    assert_eq!(confirmed.status, 202, "{}", confirmed.text());
    // more than the stock: refused by inventory, so the order is cancelled
    let cancelled = platform
        .place("acme", order_body("c-1", "USD", &[("SKU-1", 50)]), None)
        .await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text());
    for (response, status) in [(&confirmed, "CONFIRMED"), (&cancelled, "CANCELLED")] {
        let id = response.json()["id"].as_str().expect("id").to_owned();
        let order = platform
            .wait_final("acme", &id, Duration::from_secs(30))
            .await;
        assert_eq!(order["status"], status, "{order}");
    }

    let (js, naming) = (
        platform.nats.jetstream(),
        Naming::new(platform.nats.prefix()),
    );
    for schema in order::events::published_schemas() {
        let event_type = schema.event_type;
        let events = eventually(event_type, Duration::from_secs(20), || async {
            let events =
                longship_messaging::testing::stream_events(&js, &naming, "ORDERS", event_type)
                    .await
                    .unwrap_or_default();
            (!events.is_empty()).then_some(events)
        })
        .await;
        for event in &events {
            assert_valid_event(SERVICE, event);
        }
    }
    platform.stop().await;
}
