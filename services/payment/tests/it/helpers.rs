//! `spawn_app` and typed request helpers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use longship_messaging::{EventEnvelope, Naming, StreamSpec, ensure_stream};
use longship_proto::payment::v1 as pb;
use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_runtime::{CancellationToken, Env};
use longship_tenant::TenantId;
use longship_testkit::{HttpClient, HttpResponse, TestDb, TestNats};
use payment::{App, Config};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Request, Status};
use uuid::Uuid;

/// The tenant most tests act for.
pub const TENANT: &str = "acme";

/// A running payment service and handles on its infrastructure.
pub struct TestApp {
    pub http_addr: SocketAddr,
    /// HTTP client sending `X-Tenant-Id: acme`.
    pub http: HttpClient,
    /// gRPC client (add the tenant with [`TestApp::req`]).
    pub grpc: PaymentServiceClient<Channel>,
    pub tenant: TenantId,
    pub db: TestDb,
    pub nats: TestNats,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the service with the test configuration.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let env = Env::from_pairs([
        ("DATABASE_URL", db.url()),
        ("NATS_URL", nats.url()),
        ("NATS_PREFIX", nats.prefix()),
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("AUTH_ALLOW_TENANT_HEADER", "true"),
    ]);
    let config = Config::from_env(&env).expect("test config");
    let shutdown = CancellationToken::new();
    let app = App::build(config, &shutdown).await.expect("app builds");
    let http_addr = app.http_addr().expect("http addr");
    let grpc_addr = app.grpc_addr().expect("grpc addr");
    let task = tokio::spawn(app.run(shutdown.clone()));
    let grpc = PaymentServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("grpc connects");
    let http = HttpClient::new(format!("http://{http_addr}")).with_header("x-tenant-id", TENANT);
    TestApp {
        http_addr,
        http,
        grpc,
        tenant: TenantId::parse(TENANT).expect("tenant"),
        db,
        nats,
        shutdown,
        task,
    }
}

impl TestApp {
    /// Stops the service and removes the test's database and streams.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "service stops cleanly: {stopped:?}"
        );
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }

    /// An HTTP client for another tenant.
    pub fn http_as(&self, tenant: &str) -> HttpClient {
        HttpClient::new(format!("http://{}", self.http_addr)).with_header("x-tenant-id", tenant)
    }

    /// A gRPC request for the test tenant.
    pub fn req<T>(&self, message: T) -> Request<T> {
        longship_tenant::grpc::with_tenant(Request::new(message), &self.tenant)
    }

    /// `PUT /v1/accounts/{customer_id}`.
    pub async fn put_account(
        &self,
        customer_id: &str,
        balance_cents: i64,
        currency: &str,
    ) -> HttpResponse {
        let body = json!({"balance_cents": balance_cents, "currency": currency});
        self.http
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
    pub async fn given_account(&self, customer_id: &str, balance_cents: i64, currency: &str) {
        let response = self.put_account(customer_id, balance_cents, currency).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }

    /// `(balance_cents, held_cents)` of an account, read over HTTP.
    pub async fn funds(&self, customer_id: &str) -> (i64, i64) {
        let response = self
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
    pub async fn payment_statuses(&self, order_id: Uuid) -> Vec<String> {
        let response = self
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
    pub async fn authorize(
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
        self.grpc
            .clone()
            .authorize(self.req(request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// gRPC Void, returning the outcome.
    pub async fn void(&self, order_id: Uuid) -> String {
        let request = pb::VoidRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:void"),
        };
        self.grpc
            .clone()
            .void(self.req(request))
            .await
            .expect("void")
            .into_inner()
            .outcome
    }

    /// gRPC Capture.
    pub async fn capture(&self, order_id: Uuid) -> Result<pb::Payment, Status> {
        let request = pb::CaptureRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:capture"),
        };
        self.grpc
            .clone()
            .capture(self.req(request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Publishes `orders.v1.order_confirmed` as the order service's relay would (creating the
    /// ORDERS stream, which the order service owns). `msg_id` is the `Nats-Msg-Id`.
    pub async fn publish_order_confirmed(
        &self,
        event_id: Uuid,
        msg_id: &str,
        order_id: Uuid,
        customer_id: &str,
        total_cents: i64,
    ) {
        let js = self.nats.jetstream();
        let naming = Naming::new(self.nats.prefix());
        ensure_stream(
            &js,
            &naming,
            StreamSpec {
                name: "ORDERS",
                subject_root: "orders",
            },
        )
        .await
        .expect("ORDERS stream");
        let envelope = EventEnvelope {
            id: event_id,
            event_type: "orders.v1.order_confirmed".into(),
            tenant_id: self.tenant.clone(),
            occurred_at: Utc::now(),
            schema_version: 1,
            data: json!({
                "order_id": order_id,
                "customer_id": customer_id,
                "currency": "USD",
                "total_cents": total_cents,
                "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": total_cents}],
            }),
        };
        longship_messaging::testing::publish_envelope(&js, &naming, &envelope, msg_id)
            .await
            .expect("publish order_confirmed");
    }

    /// How many stream messages a durable consumer has acknowledged (its ack floor).
    pub async fn consumer_acked(&self, stream: &str, durable: &str) -> u64 {
        let naming = Naming::new(self.nats.prefix());
        longship_messaging::testing::ack_floor(&self.nats.jetstream(), &naming, stream, durable)
            .await
            .expect("consumer ack floor")
    }

    /// This service's published events of `event_type`, oldest first.
    pub async fn published(&self, event_type: &str) -> Vec<EventEnvelope> {
        let naming = Naming::new(self.nats.prefix());
        longship_messaging::testing::stream_events(
            &self.nats.jetstream(),
            &naming,
            "PAYMENTS",
            event_type,
        )
        .await
        .expect("PAYMENTS events")
    }
}

/// The stable error code a status carries.
pub fn code(status: &Status) -> String {
    status
        .metadata()
        .get(longship_errors::CODE_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Polls `check` every 25 ms until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
