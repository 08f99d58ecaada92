//! Compatibility: the event schemas and the OpenAPI document match their committed files, and
//! every event type the order service declares, as it really publishes it (a confirmed and a
//! cancelled order through the whole platform), validates against its committed schema.

use std::time::Duration;

use longship_testkit::event_schemas::assert_published_events_valid;

use crate::harness::{Platform, order_body};

const SERVICE: &str = "order";

longship_testkit::snapshot_tests!(order::Order, order::events::published_schemas());

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

    let published = order::events::published_schemas();
    assert_published_events_valid(&platform.nats, SERVICE, "ORDERS", &published).await;
    platform.stop().await;
}
