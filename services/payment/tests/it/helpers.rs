//! The payment service under test (the testkit's app) and its typed request helpers.

use longship_proto::payment::v1 as pb;
use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_testkit::HttpResponse;
use serde_json::json;
use tonic::Status;
use uuid::Uuid;

pub use longship_testkit::{error_code as code, eventually};

longship_testkit::service_helpers! {
    /// Typed requests to the payment service.
    pub trait PaymentApp for payment::Payment, grpc PaymentServiceClient, steps(void) {
        /// `PUT /v1/accounts/{customer_id}`.
        async fn put_account(
            &self,
            customer_id: &str,
            balance_cents: i64,
            currency: &str,
        ) -> HttpResponse {
            let body = json!({"balance_cents": balance_cents, "currency": currency});
            self.app()
                .put_json(&format!("/v1/accounts/{customer_id}"), &body)
                .await
        }

        /// Creates an account, asserting success.
        async fn given_account(&self, customer_id: &str, balance_cents: i64, currency: &str) {
            let response = self.put_account(customer_id, balance_cents, currency).await;
            assert_eq!(response.status, 200, "{}", response.text());
        }

        /// Creates an account of `tenant` holding `balance_cents` USD cents, asserting success.
        async fn given_account_of(&self, tenant: &str, customer_id: &str, balance_cents: i64) {
            let body = json!({"balance_cents": balance_cents, "currency": "USD"});
            let path = format!("/v1/accounts/{customer_id}");
            self.app().as_tenant(tenant).put_ok(&path, &body).await;
        }

        /// `(balance_cents, held_cents)` of an account, read over HTTP.
        async fn funds(&self, customer_id: &str) -> (i64, i64) {
            let account = self
                .app()
                .get_ok(&format!("/v1/accounts/{customer_id}"))
                .await;
            let (balance, held) = (
                account["balance_cents"].as_i64().expect("balance"),
                account["held_cents"].as_i64().expect("held"),
            );
            assert_eq!(account["available_cents"].as_i64(), Some(balance - held));
            (balance, held)
        }

        /// The statuses of an order's payments, read over HTTP.
        async fn payment_statuses(&self, order_id: Uuid) -> Vec<String> {
            let path = format!("/v1/payments?order_id={order_id}");
            let payments = self.app().get_ok(&path).await;
            payments["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|p| p["status"].as_str().expect("status").to_owned())
                .collect()
        }

        /// gRPC Authorize.
        async fn authorize(
            &self,
            order_id: Uuid,
            customer_id: &str,
            amount_cents: i64,
            currency: &str,
        ) -> Result<pb::Payment, Status> {
            let request = authorize_request(order_id, customer_id, amount_cents, currency);
            self.grpc()
                .authorize(self.app().request(request))
                .await
                .map(tonic::Response::into_inner)
        }

        /// gRPC Capture.
        async fn capture(&self, order_id: Uuid) -> Result<pb::Payment, Status> {
            let request = self.app().step_request(order_id, "capture");
            let answer = self.grpc().capture(request).await;
            answer.map(tonic::Response::into_inner)
        }
    }
}

/// An Authorize of `amount_cents` in `currency` from `customer_id` for `order_id`, as the order
/// service sends it (the idempotency key `{order_id}:authorize`).
pub fn authorize_request(
    order_id: Uuid,
    customer_id: &str,
    amount_cents: i64,
    currency: &str,
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        order_id: order_id.to_string(),
        idempotency_key: format!("{order_id}:authorize"),
        customer_id: customer_id.into(),
        amount_cents,
        currency: currency.into(),
    }
}
