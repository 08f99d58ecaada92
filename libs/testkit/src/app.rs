//! Any Longship service started in-process on port 0, on a fresh database and NATS prefix, with
//! typed clients: what every service's integration tests build on.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use longship_messaging::{EventEnvelope, Naming, StreamSettings, StreamSpec, ensure_stream};
use longship_runtime::{App, CancellationToken, Env, Service, ServiceConfig};
use longship_tenant::TenantId;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{HttpClient, TestDb, TestNats, TestPki};

/// The tenant the default clients act for.
pub const TEST_TENANT: &str = "acme";

/// The HS256 secret test services accept (so tests can also send JWTs).
pub const TEST_JWT_SECRET: &str = "a-test-secret-long-enough-for-hs256";

type Adjust<S> = Box<dyn FnOnce(&mut ServiceConfig<S>) + Send>;

/// How to start a [`TestApp`]: extra environment, a configuration change, shared infrastructure.
pub struct TestAppBuilder<S: Service> {
    env: Vec<(String, String)>,
    adjust: Vec<Adjust<S>>,
    db: Option<TestDb>,
    nats: Option<TestNats>,
}

/// A service running in-process on port 0, its database and its NATS prefix.
pub struct TestApp<S: Service> {
    /// The bound HTTP address.
    /// The service's request pool (as the application role).
    pub pool: sqlx::PgPool,
    /// The service's pool of background work (as the worker role).
    pub worker_pool: sqlx::PgPool,
    pub http_addr: SocketAddr,
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The service's database (fresh for this test).
    pub db: TestDb,
    /// The test's NATS namespace.
    pub nats: TestNats,
    /// [`TEST_TENANT`].
    pub tenant: TenantId,
    /// An HTTP client acting for [`TEST_TENANT`].
    pub http: HttpClient,
    /// Whether the service runs with mTLS (the default; `GRPC_MTLS=off` turns it off).
    pub mtls: bool,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    service: PhantomData<S>,
}

impl<S: Service> std::fmt::Debug for TestApp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("service", &S::DEFAULTS.name)
            .field("http_addr", &self.http_addr)
            .field("grpc_addr", &self.grpc_addr)
            .finish()
    }
}

impl<S: Service> TestApp<S> {
    /// Starts the service with the test defaults on a fresh database and NATS prefix.
    pub async fn spawn() -> TestApp<S> {
        TestApp::builder().spawn().await
    }

    /// Starts the service after `adjust` changed its own configuration (values the environment
    /// refuses, such as a very short TTL, can be set here).
    pub async fn spawn_with(adjust: impl FnOnce(&mut S::Config) + Send + 'static) -> TestApp<S> {
        TestApp::builder()
            .configure(move |c| adjust(&mut c.service))
            .spawn()
            .await
    }

    /// A builder for another configuration or shared infrastructure.
    pub fn builder() -> TestAppBuilder<S> {
        TestAppBuilder {
            env: Vec::new(),
            adjust: Vec::new(),
            db: None,
            nats: None,
        }
    }

    /// An HTTP client acting for `tenant`.
    pub fn as_tenant(&self, tenant: &str) -> HttpClient {
        self.anonymous().with_header("x-tenant-id", tenant)
    }

    /// An HTTP client with an admin JWT for `subject` (the audit log's actor) and `scope`
    /// (`longship:operator`, or `longship:admin` for one tenant), signed with [`TEST_JWT_SECRET`].
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn as_admin(&self, subject: &str, scope: &longship_tenant::AdminScope) -> HttpClient {
        let token = longship_tenant::issue_dev_admin_token(TEST_JWT_SECRET, subject, scope, 3600)
            .expect("admin token");
        self.anonymous()
            .with_header("authorization", &format!("Bearer {token}"))
    }

    /// An HTTP client without credentials.
    pub fn anonymous(&self) -> HttpClient {
        HttpClient::new(self.http_base())
    }

    /// `http://<http address>`.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `http://<gRPC address>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A (lazily connecting) channel to the service's gRPC port, calling as the `order` service
    /// (the platform's caller of the saga commands) when the service runs with mTLS.
    pub fn grpc_channel(&self) -> Channel {
        self.grpc_channel_as(Some("order"))
    }

    /// A channel calling as the platform service `caller` (its certificate of the test CA), or
    /// with no client certificate (`None`). Plaintext when the service runs without mTLS.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn grpc_channel_as(&self, caller: Option<&str>) -> Channel {
        if !self.mtls {
            return Channel::from_shared(self.grpc_url())
                .expect("gRPC URL")
                .connect_lazy();
        }
        TestPki::shared().channel(self.grpc_addr, caller, S::DEFAULTS.name)
    }

    /// A gRPC request acting for [`TEST_TENANT`].
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        longship_tenant::grpc::with_tenant(tonic::Request::new(message), &self.tenant)
    }

    /// A gRPC request acting for `tenant`.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn request_as<T>(&self, tenant: &str, message: T) -> tonic::Request<T> {
        let tenant = TenantId::parse(tenant).expect("a valid tenant id");
        longship_tenant::grpc::with_tenant(tonic::Request::new(message), &tenant)
    }

    /// Publishes an event as `stream`'s producer would (creating the stream when missing), with the
    /// relay's headers; `msg_id` is its `Nats-Msg-Id` (the id again, or another to get past
    /// JetStream's duplicate window).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn publish(&self, stream: StreamSpec, envelope: &EventEnvelope, msg_id: &str) {
        let (js, naming) = (self.nats.jetstream(), Naming::new(self.nats.prefix()));
        ensure_stream(&js, &naming, stream, &StreamSettings::single_node())
            .await
            .expect("the producer's stream");
        longship_messaging::testing::publish_envelope(&js, &naming, envelope, msg_id)
            .await
            .expect("publish");
    }

    /// An event of `event_type` for [`TEST_TENANT`] with `data`.
    pub fn envelope(&self, id: Uuid, event_type: &str, data: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
            id,
            event_type: event_type.to_owned(),
            tenant_id: self.tenant.clone(),
            occurred_at: chrono::Utc::now(),
            schema_version: 1,
            data,
        }
    }

    /// How many of `stream`'s messages the durable consumer `durable` acknowledged (its ack floor).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn consumer_acked(&self, stream: &str, durable: &str) -> u64 {
        let naming = Naming::new(self.nats.prefix());
        longship_messaging::testing::ack_floor(&self.nats.jetstream(), &naming, stream, durable)
            .await
            .expect("consumer ack floor")
    }

    /// The events of `event_type` published into `stream` (unprefixed), oldest first.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn published(&self, stream: &str, event_type: &str) -> Vec<EventEnvelope> {
        let naming = Naming::new(self.nats.prefix());
        longship_messaging::testing::stream_events(
            &self.nats.jetstream(),
            &naming,
            stream,
            event_type,
        )
        .await
        .expect("stream events")
    }

    /// Waits (up to 15 s) until `event_type` is published into `stream` (unprefixed), asserts that
    /// it was published once, and returns that event.
    pub async fn await_published_once(&self, stream: &str, event_type: &str) -> EventEnvelope {
        let what = format!("{event_type} published into {stream}");
        let mut events = eventually(&what, Duration::from_secs(15), || async {
            let events = self.published(stream, event_type).await;
            (!events.is_empty()).then_some(events)
        })
        .await;
        assert_eq!(events.len(), 1, "{event_type} published more than once");
        events.remove(0)
    }

    /// Publishes `orders.v1.order_confirmed` at schema version 1 for `order_id`, paid by
    /// `customer_id`, of `items` (sku, quantity, unit price in cents), as the order service's relay
    /// would; `msg_id` is the `Nats-Msg-Id`.
    pub async fn publish_order_confirmed(
        &self,
        event_id: Uuid,
        msg_id: &str,
        order_id: Uuid,
        customer_id: &str,
        items: &[(&str, i64, i64)],
    ) {
        let data = crate::checks::order_confirmed_data(order_id, customer_id, items, 1);
        self.publish_order_confirmed_data(event_id, 1, data, msg_id)
            .await;
    }

    /// A token that stops the service when cancelled (graceful shutdown).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the service, asserting it drains cleanly in time, and removes its database and
    /// streams.
    pub async fn stop(self) {
        let (db, nats) = self.stop_keeping_infrastructure().await;
        nats.cleanup().await;
        db.drop_db().await;
    }

    /// Stops the service, asserting it drains cleanly in time, and gives its database and NATS
    /// namespace back (to start it again, or to inspect them).
    #[allow(clippy::panic)] // reason: a test helper fails the test by panicking
    pub async fn stop_keeping_infrastructure(self) -> (TestDb, TestNats) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("{} did not stop cleanly: {other:?}", S::DEFAULTS.name),
        }
        (self.db, self.nats)
    }
}

impl<S: Service> TestAppBuilder<S> {
    /// Sets an environment variable of the service (e.g. `RESERVATION_TTL_SECS`).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> TestAppBuilder<S> {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Changes the configuration after it is read (values the environment refuses, such as a
    /// very short TTL, can be set here).
    pub fn configure(
        mut self,
        adjust: impl FnOnce(&mut ServiceConfig<S>) + Send + 'static,
    ) -> TestAppBuilder<S> {
        self.adjust.push(Box::new(adjust));
        self
    }

    /// Runs on `db` instead of a fresh database (e.g. a restart on the same data).
    pub fn database(mut self, db: TestDb) -> TestAppBuilder<S> {
        self.db = Some(db);
        self
    }

    /// Runs in `nats`'s namespace instead of a fresh one (e.g. services of one platform).
    pub fn nats(mut self, nats: TestNats) -> TestAppBuilder<S> {
        self.nats = Some(nats);
        self
    }

    /// Builds and starts the service; returns once it listens (migrated, wired).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn spawn(self) -> TestApp<S> {
        let db = match self.db {
            Some(db) => db,
            None => TestDb::new().await,
        };
        let nats = match self.nats {
            Some(nats) => nats,
            None => TestNats::new().await,
        };
        let mut env = Env::from_pairs([
            ("DATABASE_URL", db.url()),
            ("NATS_URL", nats.url()),
            ("NATS_PREFIX", nats.prefix()),
            // one test NATS server: one replica (production's default is 3, on a cluster)
            ("NATS_STREAM_REPLICAS", "1"),
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("GRPC_ADDR", "127.0.0.1:0"),
            ("AUTH_ALLOW_TENANT_HEADER", "true"),
            ("AUTH_JWT_SECRET", TEST_JWT_SECRET),
            ("SHUTDOWN_TIMEOUT_SECS", "5"),
            ("DATABASE_MAX_CONNECTIONS", "8"),
        ]);
        for (key, value) in TestPki::shared().env(S::DEFAULTS.name) {
            env = env.set(key, value);
        }
        for (key, value) in self.env {
            env = env.set(key, value);
        }
        let mut config = ServiceConfig::<S>::from_env(&env).expect("test configuration");
        for adjust in self.adjust {
            adjust(&mut config);
        }
        let mtls = config.mtls.is_some();
        let shutdown = CancellationToken::new();
        let app = App::<S>::build(config, &shutdown)
            .await
            .expect("the service builds");
        let http_addr = app.http_addr().expect("HTTP address");
        let grpc_addr = app.grpc_addr().expect("gRPC address");
        let (pool, worker_pool) = app.pools();
        let task = tokio::spawn(app.run());
        TestApp {
            pool,
            worker_pool,
            http: HttpClient::new(format!("http://{http_addr}"))
                .with_header("x-tenant-id", TEST_TENANT),
            http_addr,
            grpc_addr,
            mtls,
            db,
            nats,
            tenant: TenantId::parse(TEST_TENANT).expect("test tenant"),
            shutdown,
            task,
            service: PhantomData,
        }
    }
}

/// Polls `check` every 25 ms until it returns `Some`, failing the test after `timeout`.
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
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The stable error code a gRPC status carries (empty when none).
pub fn error_code(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(longship_errors::CODE_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts that `result` is the gRPC status `code` with the stable error code `error`.
#[track_caller]
#[allow(clippy::panic)] // reason: an assertion fails the test by panicking
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    error: &str,
) {
    match result {
        Err(status) => assert_eq!(
            (status.code(), error_code(&status).as_str()),
            (code, error),
            "{status:?}"
        ),
        Ok(value) => panic!("expected {code:?} {error}, got {value:?}"),
    }
}
