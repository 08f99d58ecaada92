//! Starts the three services in-process and offers typed helpers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use longship_runtime::Service as ServiceShell;
use longship_testkit::{HttpClient, HttpResponse, TestApp, TestDb, TestNats};

/// One of the platform's services, running in-process.
pub struct Service {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// The service's request pool.
    pub pool: sqlx::PgPool,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Service {
    fn of<S: ServiceShell>(app: TestApp<S>) -> Service {
        Service {
            http: app.http_addr,
            grpc: app.grpc_addr,
            pool: app.pool.clone(),
            // its database and NATS namespace belong to the platform
            stop: Box::pin(async move {
                let _ = app.stop_keeping_infrastructure().await;
            }),
        }
    }

    /// Stops the service (graceful shutdown) and waits for it.
    pub async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(15), self.stop).await;
    }
}

pub struct Platform {
    pub nats: TestNats,
    pub orders_db: TestDb,
    pub inventory_db: TestDb,
    pub payments_db: TestDb,
    pub order: Service,
    pub inventory: Service,
    pub payment: Option<Service>,
    pub payment_grpc: SocketAddr,
    /// The link from order to payment's gRPC, where the test asked for one
    /// ([`Platform::start_with_payment_link`]): cut it to make payment unreachable for the saga
    /// while payment itself keeps running.
    pub payment_link: Option<longship_testkit::FaultProxy>,
}

/// A service of the platform on its database and the platform's NATS namespace.
fn builder<S: ServiceShell>(db: &TestDb, nats: &TestNats) -> longship_testkit::TestAppBuilder<S> {
    TestApp::<S>::builder()
        .database(db.clone())
        .nats(nats.clone())
}

pub async fn start_inventory(db: &TestDb, nats: &TestNats) -> Service {
    Service::of(builder::<inventory::Inventory>(db, nats).spawn().await)
}

/// Starts payment on `grpc` (a fixed address: a restarted payment takes its predecessor's port).
pub async fn start_payment(db: &TestDb, nats: &TestNats, grpc: &str) -> Service {
    // the port of a stopped instance may take a moment to be free again
    for _ in 0..50 {
        if grpc.ends_with(":0") || std::net::TcpListener::bind(grpc).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = builder::<payment::Payment>(db, nats)
        .env("GRPC_ADDR", grpc)
        .spawn()
        .await;
    Service::of(app)
}

pub async fn start_order(
    db: &TestDb,
    nats: &TestNats,
    inventory_grpc: SocketAddr,
    payment_grpc: SocketAddr,
    extra: &[(&str, &str)],
) -> Service {
    let mut b = builder::<order::Order>(db, nats)
        .env("INVENTORY_GRPC_URL", format!("http://{inventory_grpc}"))
        .env("PAYMENT_GRPC_URL", format!("http://{payment_grpc}"))
        .env("SAGA_STEP_TIMEOUT_MS", "2000")
        .env("SAGA_LEASE_SECS", "5");
    for (k, v) in extra {
        b = b.env(k, *v);
    }
    Service::of(b.spawn().await)
}

impl Platform {
    pub async fn start() -> Platform {
        Platform::start_with(&[]).await
    }

    pub async fn start_with(order_env: &[(&str, &str)]) -> Platform {
        Platform::start_inner(order_env, None, false).await
    }

    /// A platform whose order service reaches payment's gRPC through a fault proxy
    /// ([`Platform::payment_link`]).
    pub async fn start_with_payment_link(order_env: &[(&str, &str)]) -> Platform {
        Platform::start_inner(order_env, None, true).await
    }

    /// A platform whose three services reach NATS only through the returned proxy.
    pub async fn start_behind_nats_proxy() -> (Platform, longship_testkit::FaultProxy) {
        let upstream = TestNats::new().await;
        let addr = upstream.url().trim_start_matches("nats://").to_owned();
        let proxy = longship_testkit::FaultProxy::start(addr.parse().expect("nats address")).await;
        let platform = Platform::start_inner(
            &[],
            Some(upstream.via(&format!("nats://{}", proxy.addr()))),
            false,
        )
        .await;
        (platform, proxy)
    }

    async fn start_inner(
        order_env: &[(&str, &str)],
        nats: Option<TestNats>,
        payment_link: bool,
    ) -> Platform {
        longship_telemetry::init_for_tests();
        let nats = match nats {
            Some(n) => n,
            None => TestNats::new().await,
        };
        let (orders_db, inventory_db, payments_db) =
            tokio::join!(TestDb::new(), TestDb::new(), TestDb::new());
        let inventory = start_inventory(&inventory_db, &nats).await;
        let payment = start_payment(&payments_db, &nats, "127.0.0.1:0").await;
        let payment_grpc = payment.grpc;
        // the console reaches the peers' admin APIs through order's proxy
        let peers = format!(
            "inventory=http://{},payment=http://{}",
            inventory.http, payment.http
        );
        let mut env = vec![("CONSOLE_PEERS", peers.as_str())];
        env.extend_from_slice(order_env);
        let payment_link = match payment_link {
            true => Some(longship_testkit::FaultProxy::start(payment_grpc).await),
            false => None,
        };
        let order_to_payment = payment_link.as_ref().map_or(payment_grpc, |l| l.addr());
        let order = start_order(&orders_db, &nats, inventory.grpc, order_to_payment, &env).await;
        let platform = Platform {
            nats,
            orders_db,
            inventory_db,
            payments_db,
            order,
            inventory,
            payment: Some(payment),
            payment_grpc,
            payment_link,
        };
        platform.wait_ready().await;
        platform
    }

    pub async fn wait_ready(&self) {
        let mut addrs = vec![self.order.http, self.inventory.http];
        if let Some(p) = &self.payment {
            addrs.push(p.http);
        }
        for addr in addrs {
            let client = HttpClient::new(format!("http://{addr}"));
            // generous: a loaded 2-core machine can take a while to migrate three databases
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let last = match client.get("/readyz").await {
                    Ok(r) if r.status == 200 => break,
                    Ok(r) => r.text(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{addr} not ready after 60 s: {last}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The HTTP address of `service` (order, inventory or payment).
    pub fn http_of(&self, service: &str) -> SocketAddr {
        match service {
            "order" => self.order.http,
            "inventory" => self.inventory.http,
            "payment" => self
                .payment
                .as_ref()
                .map(|p| p.http)
                .expect("payment running"),
            other => panic!("no service {other}"),
        }
    }

    pub fn orders(&self, tenant: &str) -> HttpClient {
        HttpClient::new(format!("http://{}", self.order.http)).with_header("x-tenant-id", tenant)
    }

    pub fn inventory(&self, tenant: &str) -> HttpClient {
        HttpClient::new(format!("http://{}", self.inventory.http))
            .with_header("x-tenant-id", tenant)
    }

    pub fn payments(&self, tenant: &str) -> HttpClient {
        let http = self
            .payment
            .as_ref()
            .map(|p| p.http)
            .expect("payment running");
        HttpClient::new(format!("http://{http}")).with_header("x-tenant-id", tenant)
    }

    pub async fn seed_product(
        &self,
        tenant: &str,
        sku: &str,
        price: i64,
        currency: &str,
        on_hand: i64,
    ) {
        let body = serde_json::json!({"name": sku, "price_cents": price, "currency": currency, "on_hand": on_hand});
        let path = format!("/v1/products/{sku}");
        self.inventory(tenant).put_ok(&path, &body).await;
    }

    pub async fn seed_account(&self, tenant: &str, customer: &str, balance: i64, currency: &str) {
        let body = serde_json::json!({"balance_cents": balance, "currency": currency});
        let path = format!("/v1/accounts/{customer}");
        self.payments(tenant).put_ok(&path, &body).await;
    }

    pub async fn place(
        &self,
        tenant: &str,
        body: serde_json::Value,
        key: Option<&str>,
    ) -> HttpResponse {
        let headers: Vec<(&str, &str)> = key
            .map(|k| vec![("idempotency-key", k)])
            .unwrap_or_default();
        self.orders(tenant)
            .send_json(http::Method::POST, "/v1/orders", &headers, &body)
            .await
            .expect("post order")
    }

    /// Polls the order until it leaves PENDING (bounded).
    pub async fn wait_final(&self, tenant: &str, id: &str, within: Duration) -> serde_json::Value {
        let client = self.orders(tenant);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let order = client.get_ok(&format!("/v1/orders/{id}")).await;
            if order["status"] != "PENDING" {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still PENDING after {within:?}: {order}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn product(&self, tenant: &str, sku: &str) -> serde_json::Value {
        self.inventory(tenant)
            .get(&format!("/v1/products/{sku}"))
            .await
            .expect("product")
            .json()
    }

    pub async fn account(&self, tenant: &str, customer: &str) -> serde_json::Value {
        self.payments(tenant)
            .get(&format!("/v1/accounts/{customer}"))
            .await
            .expect("account")
            .json()
    }

    /// Waits until `check` holds (bounded), for effects of asynchronous events.
    pub async fn eventually<F, Fut>(&self, what: &str, within: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + within;
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stop(mut self) {
        self.order.stop().await;
        if let Some(p) = self.payment.take() {
            p.stop().await;
        }
        self.inventory.stop().await;
        self.nats.cleanup().await;
        for db in [self.orders_db, self.inventory_db, self.payments_db] {
            db.drop_db().await;
        }
    }
}

pub fn order_body(customer: &str, currency: &str, items: &[(&str, u32)]) -> serde_json::Value {
    serde_json::json!({
        "customer_id": customer,
        "currency": currency,
        "items": items.iter().map(|(s, q)| serde_json::json!({"sku": s, "quantity": q})).collect::<Vec<_>>(),
    })
}
