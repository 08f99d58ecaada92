//! Compatibility: the event schemas and the OpenAPI document match their committed files; what
//! the service really publishes validates against its committed schemas; the `order_confirmed`
//! consumer ignores unknown fields at every level and reads every version it declares (a version
//! 1 payload is upcast).

use std::time::Duration;

use longship_testkit::event_schemas::assert_published_events_valid;
use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp};

const SERVICE: &str = "inventory";

longship_testkit::snapshot_tests!(inventory::Inventory, inventory::events::published_schemas());

#[tokio::test]
async fn every_published_event_type_validates_against_its_committed_schema() {
    let app = TestApp::spawn_with(|config| {
        // below the production floor on purpose: only tests can set it, on the struct
        config.reservation_ttl = Duration::from_secs(1);
        config.sweep_interval = Duration::from_millis(100);
    })
    .await;
    app.given_product("A", 250, "USD", 100).await;
    let (released, committed, expired) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // each settled at once, well inside the 1 s TTL; the third is left to expire
    app.reserve(released, "USD", &[("A", 2)])
        .await
        .expect("reserved");
    assert_eq!(app.release(released).await, "RELEASED");
    app.reserve(committed, "USD", &[("A", 2)])
        .await
        .expect("reserved");
    assert_eq!(app.commit(committed).await, "COMMITTED");
    app.reserve(expired, "USD", &[("A", 2)])
        .await
        .expect("reserved");

    let published = inventory::events::published_schemas();
    assert_published_events_valid(&app.nats, SERVICE, "INVENTORY", &published).await;
    app.stop().await;
}

#[tokio::test]
async fn order_confirmed_with_unknown_fields_and_of_version_1_is_handled() {
    let app = TestApp::spawn().await;
    app.given_product("A", 250, "USD", 10).await;
    let reserve = async |order| {
        let reserved = app.reserve(order, "USD", &[("A", 2)]).await;
        reserved.expect("reserved");
    };
    // each reservation holds two units until its order_confirmed commits them
    let committed = async |_| app.stock("A").await.1 == 0;
    app.assert_order_confirmed_read_in_every_form(&[("A", 2, 250)], reserve, committed)
        .await;
    assert_eq!(app.stock("A").await, (6, 0));
    app.stop().await;
}
