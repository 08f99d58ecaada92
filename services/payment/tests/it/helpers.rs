//! The payment service under test (the testkit's app) and its typed request helpers.

use longship_messaging::StreamSpec;
use longship_proto::payment::v1 as pb;
use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_testkit::HttpResponse;
use serde_json::json;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

pub use longship_testkit::{error_code as code, eventually};

/// The service under test.
pub type TestApp = longship_testkit::TestApp<payment::Payment>;

/// The order service's stream, where `order_confirmed` comes from.
const ORDERS: StreamSpec = order_stream();

const fn order_stream() -> StreamSpec {
    StreamSpec {
        name: "ORDERS",
        subject_root: "orders",
    }
}

/// Typed requests to the payment service.
#[allow(async_fn_in_trait)] // reason: a test helper trait, only used with concrete types
pub trait PaymentApp {
    /// The app.
    fn app(&self) -> &TestApp;

    /// A gRPC client.
    fn grpc(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(self.app().grpc_channel())
    }

    /// `PUT /v1/accounts/{customer_id}`.
    async fn put_account(
        &self,
        customer_id: &str,
        balance_cents: i64,
        currency: &str,
    ) -> HttpResponse {
        let body = json!({"balance_cents": balance_cents, "currency": currency});
        self.app()
            .http
            .send_json(
                http::Method::PUT,
                &format!("/v1/accounts/{customer_id}"),
                &[],
                &body,
            )
            .await
            .expect("PUT account")
    }

    /// Creates an account, asserting success.
    async fn given_account(&self, customer_id: &str, balance_cents: i64, currency: &str) {
        let response = self.put_account(customer_id, balance_cents, currency).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }

    /// `(balance_cents, held_cents)` of an account, read over HTTP.
    async fn funds(&self, customer_id: &str) -> (i64, i64) {
        let response = self
            .app()
            .http
            .get(&format!("/v1/accounts/{customer_id}"))
            .await
            .expect("GET account");
        assert_eq!(response.status, 200, "{}", response.text());
        let account = response.json();
        let (balance, held) = (
            account["balance_cents"].as_i64().expect("balance"),
            account["held_cents"].as_i64().expect("held"),
        );
        assert_eq!(account["available_cents"].as_i64(), Some(balance - held));
        (balance, held)
    }

    /// The statuses of an order's payments, read over HTTP.
    async fn payment_statuses(&self, order_id: Uuid) -> Vec<String> {
        let response = self
            .app()
            .http
            .get(&format!("/v1/payments?order_id={order_id}"))
            .await
            .expect("GET payments");
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()["items"]
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
        let request = pb::AuthorizeRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:authorize"),
            customer_id: customer_id.into(),
            amount_cents,
            currency: currency.into(),
        };
        self.grpc()
            .authorize(self.app().request(request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// gRPC Void, returning the outcome.
    async fn void(&self, order_id: Uuid) -> String {
        let request = pb::VoidRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:void"),
        };
        self.grpc()
            .void(self.app().request(request))
            .await
            .expect("void")
            .into_inner()
            .outcome
    }

    /// gRPC Capture.
    async fn capture(&self, order_id: Uuid) -> Result<pb::Payment, Status> {
        let request = pb::CaptureRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:capture"),
        };
        self.grpc()
            .capture(self.app().request(request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Publishes `orders.v1.order_confirmed` as the order service's relay would (creating the
    /// ORDERS stream, which the order service owns). `msg_id` is the `Nats-Msg-Id`.
    async fn publish_order_confirmed(
        &self,
        event_id: Uuid,
        msg_id: &str,
        order_id: Uuid,
        customer_id: &str,
        total_cents: i64,
    ) {
        let envelope = self.app().envelope(
            event_id,
            "orders.v1.order_confirmed",
            json!({
                "order_id": order_id,
                "customer_id": customer_id,
                "currency": "USD",
                "total_cents": total_cents,
                "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": total_cents}],
            }),
        );
        self.app().publish(ORDERS, &envelope, msg_id).await;
    }
}

impl PaymentApp for TestApp {
    fn app(&self) -> &TestApp {
        self
    }
}
