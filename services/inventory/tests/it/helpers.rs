//! `spawn_app` and typed request helpers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use inventory::{App, Config};
use longship_messaging::{EventEnvelope, Naming, StreamSpec, ensure_stream};
use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use longship_runtime::{CancellationToken, Env};
use longship_tenant::TenantId;
use longship_testkit::{HttpClient, HttpResponse, TestDb, TestNats};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Request, Status};
use uuid::Uuid;

/// The tenant most tests act for.
pub const TENANT: &str = "acme";

/// A running inventory service and handles on its infrastructure.
pub struct TestApp {
    pub http_addr: SocketAddr,
    /// HTTP client sending `X-Tenant-Id: acme`.
    pub http: HttpClient,
    /// gRPC client (add the tenant with [`TestApp::req`]).
    pub grpc: InventoryServiceClient<Channel>,
    pub tenant: TenantId,
    pub db: TestDb,
    pub nats: TestNats,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the service with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the service after `adjust` changed its configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
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
    let mut config = Config::from_env(&env).expect("test config");
    adjust(&mut config);
    let shutdown = CancellationToken::new();
    let app = App::build(config, &shutdown).await.expect("app builds");
    let http_addr = app.http_addr().expect("http addr");
    let grpc_addr = app.grpc_addr().expect("grpc addr");
    let task = tokio::spawn(app.run(shutdown.clone()));
    let grpc = InventoryServiceClient::connect(format!("http://{grpc_addr}"))
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

    /// `PUT /v1/products/{sku}`.
    pub async fn put_product(
        &self,
        sku: &str,
        price_cents: i64,
        currency: &str,
        on_hand: i64,
    ) -> HttpResponse {
        let body = json!({"name": format!("Product {sku}"), "price_cents": price_cents, "currency": currency, "on_hand": on_hand});
        self.http
            .send_json(
                http::Method::PUT,
                &format!("/v1/products/{sku}"),
                &[],
                &body,
            )
            .await
            .expect("PUT product")
    }

    /// Creates a product, asserting success.
    pub async fn given_product(&self, sku: &str, price_cents: i64, currency: &str, on_hand: i64) {
        let response = self.put_product(sku, price_cents, currency, on_hand).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }

    /// `GET /v1/products/{sku}` as JSON, asserting 200.
    pub async fn product(&self, sku: &str) -> serde_json::Value {
        let response = self
            .http
            .get(&format!("/v1/products/{sku}"))
            .await
            .expect("GET product");
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    /// `(on_hand, reserved)` of a product.
    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        let p = self.product(sku).await;
        (
            p["on_hand"].as_i64().expect("on_hand"),
            p["reserved"].as_i64().expect("reserved"),
        )
    }

    /// gRPC Reserve.
    pub async fn reserve(
        &self,
        order_id: Uuid,
        currency: &str,
        lines: &[(&str, u32)],
    ) -> Result<pb::ReserveResponse, Status> {
        let request = pb::ReserveRequest {
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
        };
        self.grpc
            .clone()
            .reserve(self.req(request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// gRPC Release, returning the outcome.
    pub async fn release(&self, order_id: Uuid) -> String {
        let request = pb::ReleaseRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:release"),
        };
        self.grpc
            .clone()
            .release(self.req(request))
            .await
            .expect("release")
            .into_inner()
            .outcome
    }

    /// gRPC Commit, returning the outcome.
    pub async fn commit(&self, order_id: Uuid) -> String {
        let request = pb::CommitRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:commit"),
        };
        self.grpc
            .clone()
            .commit(self.req(request))
            .await
            .expect("commit")
            .into_inner()
            .outcome
    }

    /// Publishes `orders.v1.order_confirmed` as the order service's relay would (creating the
    /// ORDERS stream, which the order service owns). `msg_id` is the `Nats-Msg-Id`.
    pub async fn publish_order_confirmed(
        &self,
        event_id: Uuid,
        msg_id: &str,
        order_id: Uuid,
        items: &[(&str, i64, i64)],
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
        let total: i64 = items.iter().map(|(_, q, p)| q * p).sum();
        let envelope = EventEnvelope {
            id: event_id,
            event_type: "orders.v1.order_confirmed".into(),
            tenant_id: self.tenant.clone(),
            occurred_at: Utc::now(),
            schema_version: 1,
            data: json!({
                "order_id": order_id,
                "customer_id": "c-1",
                "currency": "USD",
                "total_cents": total,
                "items": items.iter().map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price_cents": p})).collect::<Vec<_>>(),
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

    /// The payloads of this service's published events of `event_type`, oldest first.
    pub async fn published(&self, event_type: &str) -> Vec<EventEnvelope> {
        let naming = Naming::new(self.nats.prefix());
        longship_messaging::testing::stream_events(
            &self.nats.jetstream(),
            &naming,
            "INVENTORY",
            event_type,
        )
        .await
        .expect("INVENTORY events")
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
