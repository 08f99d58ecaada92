//! One trace from `POST /v1/orders` through the saga, both gRPC participants and both consumers.

use std::time::Duration;

use crate::harness::{Platform, order_body};

#[tokio::test]
async fn one_trace_id_is_seen_in_order_inventory_payment_and_both_consumers() {
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-T", 100, "USD", 10).await;
    p.seed_account("acme", "c-t", 10_000, "USD").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let r = p
        .orders("acme")
        .send_json(
            http::Method::POST,
            "/v1/orders",
            &[("traceparent", traceparent.as_str())],
            &order_body("c-t", "USD", &[("SKU-T", 1)]),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.wait_final("acme", &id, Duration::from_secs(15)).await["status"],
        "CONFIRMED"
    );

    let wanted: [(&str, &str, &str); 6] = [
        ("http.request", "path", "/v1/orders"),
        ("saga.run", "saga_type", "place_order"),
        (
            "grpc.request",
            "rpc",
            "/longship.inventory.v1.InventoryService/Reserve",
        ),
        (
            "grpc.request",
            "rpc",
            "/longship.payment.v1.PaymentService/Authorize",
        ),
        ("event.handle", "consumer", "inventory-order-confirmed"),
        ("event.handle", "consumer", "payment-order-confirmed"),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let spans = longship_telemetry::testing::spans_in_trace(trace_id);
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(name, field, value)| {
                !spans
                    .iter()
                    .any(|s| s.name == *name && s.fields.get(*field).is_some_and(|v| v == value))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans of trace {trace_id} missing {missing:?}; seen: {:?}",
            spans
                .iter()
                .map(|s| (s.name, s.fields.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.stop().await;
}
