//! The inventory service under test (the testkit's app) and its typed request helpers.

use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use longship_testkit::HttpResponse;
use serde_json::json;
use tonic::Status;
use uuid::Uuid;

pub use longship_testkit::{error_code as code, eventually};

longship_testkit::service_helpers! {
    /// Typed requests to the inventory service.
    pub trait InventoryApp for inventory::Inventory, grpc InventoryServiceClient, steps(release, commit) {
        /// `PUT /v1/products/{sku}`.
        async fn put_product(
            &self,
            sku: &str,
            price_cents: i64,
            currency: &str,
            on_hand: i64,
        ) -> HttpResponse {
            let body = json!({"name": format!("Product {sku}"), "price_cents": price_cents, "currency": currency, "on_hand": on_hand});
            self.app()
                .put_json(&format!("/v1/products/{sku}"), &body)
                .await
        }

        /// Creates a product, asserting success.
        async fn given_product(&self, sku: &str, price_cents: i64, currency: &str, on_hand: i64) {
            let response = self.put_product(sku, price_cents, currency, on_hand).await;
            assert_eq!(response.status, 200, "{}", response.text());
        }

        /// Creates a product of `tenant` named after its sku, priced in USD, asserting success.
        async fn given_product_of(&self, tenant: &str, sku: &str, price_cents: i64, on_hand: i64) {
            let body = json!({"name": sku, "price_cents": price_cents, "currency": "USD", "on_hand": on_hand});
            let path = format!("/v1/products/{sku}");
            self.app().as_tenant(tenant).put_ok(&path, &body).await;
        }

        /// `GET /v1/products/{sku}` as JSON, asserting 200.
        async fn product(&self, sku: &str) -> serde_json::Value {
            self.app().get_ok(&format!("/v1/products/{sku}")).await
        }

        /// `(on_hand, reserved)` of a product.
        async fn stock(&self, sku: &str) -> (i64, i64) {
            let p = self.product(sku).await;
            (
                p["on_hand"].as_i64().expect("on_hand"),
                p["reserved"].as_i64().expect("reserved"),
            )
        }

        /// gRPC Reserve.
        async fn reserve(
            &self,
            order_id: Uuid,
            currency: &str,
            lines: &[(&str, u32)],
        ) -> Result<pb::ReserveResponse, Status> {
            let request = reserve_request(order_id, currency, lines);
            self.grpc()
                .reserve(self.app().request(request))
                .await
                .map(tonic::Response::into_inner)
        }
    }
}

/// A Reserve of `lines` (sku, quantity) for `order_id` in `currency`, as the order service sends
/// it (the idempotency key `{order_id}:reserve`).
pub fn reserve_request(
    order_id: Uuid,
    currency: &str,
    lines: &[(&str, u32)],
) -> pb::ReserveRequest {
    pb::ReserveRequest {
        order_id: order_id.to_string(),
        idempotency_key: format!("{order_id}:reserve"),
        currency: currency.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::ReserveLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
    }
}
