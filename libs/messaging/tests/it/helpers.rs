//! The test harness: a fresh database with the outbox/inbox schema, an isolated NATS namespace with
//! the `ORDERS` and dead-letter streams, background relays and consumers, and bounded polling.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::StreamMessage;
use longship_messaging::{
    ConsumerSpec, EventEnvelope, EventHandler, HandlerError, Naming, NewEvent, OutboxRelay,
    RelayConfig, StreamSettings, StreamSpec, enqueue, ensure_dead_letter_stream, ensure_stream,
    run_consumer,
};
use longship_tenant::TenantId;
use longship_testkit::{TestDb, TestNats};
use sqlx::PgConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What [`ScriptedHandler`] writes, in the handler's transaction, on every call.
const HANDLED_TABLE: &str = "CREATE TABLE handled (
    consumer        text NOT NULL,
    event_id        uuid NOT NULL,
    attempt         int NOT NULL,
    envelope_tenant text NOT NULL,
    tx_tenant       text,
    trace_id        text
)";

/// The producer stream every test publishes to.
pub const ORDERS: StreamSpec = StreamSpec {
    name: "ORDERS",
    subject_root: "orders",
};

/// How often bounded waits look again.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// Polls `probe` every 25 ms until it returns `Some`, failing the test with `what` after `within`.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// One test's infrastructure and the background tasks it started.
pub struct Harness {
    pub db: TestDb,
    pub nats: TestNats,
    pub naming: Naming,
    pub js: jetstream::Context,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Harness {
    /// A fresh database with the schema and a fresh namespace with the `ORDERS` and dead-letter
    /// streams.
    pub async fn start() -> Harness {
        // before anything else installs a subscriber: trace context needs the OpenTelemetry layer
        longship_telemetry::init_for_tests();
        let db = TestDb::new().await;
        // this library's own schema (outbox, inbox), on the role it grants to
        db.apply(&[&longship_tenant::SCHEMA, &longship_messaging::SCHEMA])
            .await;
        sqlx::raw_sql(HANDLED_TABLE)
            .execute(db.pool())
            .await
            .expect("create the handled table");
        let nats = TestNats::new().await;
        let naming = Naming::new(nats.prefix());
        let js = nats.jetstream();
        let settings = StreamSettings::single_node();
        ensure_stream(&js, &naming, ORDERS, &settings)
            .await
            .expect("create the ORDERS stream");
        ensure_dead_letter_stream(&js, &naming, &settings)
            .await
            .expect("create the dead-letter stream");
        Harness {
            db,
            nats,
            naming,
            js,
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Relay settings for tests: small batches, quick polling and short ack timeouts.
    pub fn relay_config(batch_size: i64) -> RelayConfig {
        RelayConfig {
            batch_size,
            poll_interval: Duration::from_millis(50),
            ack_timeout: Duration::from_secs(1),
            ..RelayConfig::default()
        }
    }

    /// A relay over this test's outbox publishing through `js`.
    pub fn relay(&self, js: jetstream::Context, config: RelayConfig) -> OutboxRelay {
        OutboxRelay::new(self.db.pool().clone(), js, self.naming.clone(), config)
    }

    /// Runs `relay` in the background until [`Harness::finish`].
    pub fn spawn_relay(&mut self, relay: OutboxRelay) {
        self.tasks
            .push(tokio::spawn(relay.run(self.shutdown.clone())));
    }

    /// Runs a consumer of `ORDERS` in the background until [`Harness::finish`].
    pub fn spawn_consumer(&mut self, spec: ConsumerSpec, handler: Arc<dyn EventHandler>) {
        let consumer = run_consumer(
            self.context(self.db.pool().clone()),
            spec,
            handler,
            self.shutdown.clone(),
        );
        self.tasks.push(tokio::spawn(consumer));
    }

    /// Runs a consumer of `ORDERS` on `pool` (e.g. one through a fault proxy) until
    /// [`Harness::finish`].
    pub fn spawn_consumer_on(
        &mut self,
        pool: sqlx::PgPool,
        spec: ConsumerSpec,
        handler: Arc<dyn EventHandler>,
    ) {
        let consumer = run_consumer(self.context(pool), spec, handler, self.shutdown.clone());
        self.tasks.push(tokio::spawn(consumer));
    }

    /// What a consumer over `pool` shares with the others of this test.
    pub fn context(&self, pool: sqlx::PgPool) -> longship_messaging::ConsumerContext {
        longship_messaging::ConsumerContext {
            pool,
            js: self.js.clone(),
            naming: self.naming.clone(),
            relay: longship_messaging::RelayWake::default(),
        }
    }

    /// The address of this test's Postgres server.
    pub async fn db_addr(&self) -> SocketAddr {
        let options: sqlx::postgres::PgConnectOptions =
            self.db.url().parse().expect("database URL");
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .expect("resolve the Postgres address")
            .next()
            .expect("an address")
    }

    /// A pool on this test's database that connects through `proxy`.
    pub fn pool_through(&self, proxy: &longship_testkit::FaultProxy) -> sqlx::PgPool {
        let options: sqlx::postgres::PgConnectOptions =
            self.db.url().parse().expect("database URL");
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options.host("127.0.0.1").port(proxy.addr().port()))
    }

    /// A consumer spec for tests: `max_deliver` deliveries, a 2 s ack wait, 4 in flight.
    pub fn consumer_spec(durable: &str, max_deliver: i64) -> ConsumerSpec {
        ConsumerSpec {
            max_deliver,
            concurrency: 4,
            ack_wait: Duration::from_secs(2),
            ..ConsumerSpec::new(durable, ORDERS.name, "orders.>")
        }
    }

    /// Enqueues `count` events of `tenant` in one transaction and commits; returns their ids.
    pub async fn enqueue_committed(&self, tenant: &str, count: usize) -> Vec<Uuid> {
        let mut tx = self.db.pool().begin().await.expect("begin");
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            ids.push(
                enqueue(&mut tx, &order_event(tenant, n))
                    .await
                    .expect("enqueue"),
            );
        }
        tx.commit().await.expect("commit");
        ids
    }

    /// Outbox rows not yet marked sent.
    pub async fn pending(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(self.db.pool())
            .await
            .expect("count pending outbox rows")
    }

    /// Outbox ids in insertion (`seq`) order.
    pub async fn outbox_ids_in_order(&self) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM outbox ORDER BY seq")
            .fetch_all(self.db.pool())
            .await
            .expect("read outbox ids")
    }

    /// Waits until the outbox has no pending row and holds `total` rows.
    pub async fn wait_until_outbox_drained(&self, total: i64, within: Duration) {
        eventually(
            &format!("all {total} outbox rows to be marked sent"),
            within,
            async || {
                let (rows, pending): (i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox",
                )
                .fetch_one(self.db.pool())
                .await
                .expect("count outbox rows");
                (rows == total && pending == 0).then_some(())
            },
        )
        .await;
    }

    /// Number of messages in the (unprefixed) stream `name`.
    pub async fn stream_len(&self, name: &str) -> u64 {
        let stream = self
            .js
            .get_stream(self.naming.stream(name))
            .await
            .expect("get stream");
        stream.get_info().await.expect("stream info").state.messages
    }

    /// Waits until the (unprefixed) stream `name` holds at least `count` messages.
    pub async fn wait_for_stream_len(&self, name: &str, count: u64, within: Duration) {
        eventually(
            &format!("{count} messages in stream {name}"),
            within,
            async || (self.stream_len(name).await >= count).then_some(()),
        )
        .await;
    }

    /// Every message of the (unprefixed) stream `name`, in stream sequence order.
    pub async fn stream_messages(&self, name: &str) -> Vec<StreamMessage> {
        let stream = self
            .js
            .get_stream(self.naming.stream(name))
            .await
            .expect("get stream");
        let state = stream.get_info().await.expect("stream info").state;
        if state.messages == 0 {
            return Vec::new();
        }
        let mut messages = Vec::with_capacity(state.messages as usize);
        for sequence in state.first_sequence..=state.last_sequence {
            messages.push(
                stream
                    .get_raw_message(sequence)
                    .await
                    .expect("read stream message"),
            );
        }
        messages
    }

    /// The consumer's state on the server.
    pub async fn consumer_info(&self, durable: &str) -> Option<jetstream::consumer::Info> {
        let stream = self
            .js
            .get_stream(self.naming.stream(ORDERS.name))
            .await
            .expect("get stream");
        stream.consumer_info(durable).await.ok()
    }

    /// Waits until the consumer has finished (acknowledged or terminated) every message up to
    /// stream sequence `through` and has nothing pending or awaiting an ack: the server will not
    /// deliver any of them again.
    pub async fn wait_until_consumer_settled(
        &self,
        durable: &str,
        through: u64,
    ) -> jetstream::consumer::Info {
        eventually(
            &format!("consumer {durable} to settle through stream sequence {through}"),
            Duration::from_secs(20),
            async || {
                let info = self.consumer_info(durable).await?;
                (info.ack_floor.stream_sequence >= through
                    && info.num_ack_pending == 0
                    && info.num_pending == 0)
                    .then_some(info)
            },
        )
        .await
    }

    /// Publishes `envelope` directly (bypassing the outbox) with the given `Nats-Msg-Id`.
    pub async fn publish_envelope(&self, envelope: &EventEnvelope, msg_id: &str) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        headers.insert("Tenant-Id", envelope.tenant_id.as_str());
        let body = serde_json::to_vec(envelope).expect("encode envelope");
        self.publish_raw(&envelope.event_type, headers, body).await;
    }

    /// Publishes raw bytes on the subject of `event_type` and waits for the stream's ack.
    pub async fn publish_raw(
        &self,
        event_type: &str,
        headers: async_nats::HeaderMap,
        body: Vec<u8>,
    ) {
        self.js
            .publish_with_headers(self.naming.subject(event_type), headers, body.into())
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    }

    /// Rows the handler committed for `consumer`: (event id, attempt, envelope tenant, tx tenant, trace id).
    pub async fn handled(&self, consumer: &str) -> Vec<Handled> {
        sqlx::query_as(
            "SELECT event_id, attempt, envelope_tenant, tx_tenant, trace_id FROM handled WHERE consumer = $1 ORDER BY event_id",
        )
        .bind(consumer)
        .fetch_all(self.db.pool())
        .await
        .expect("read handled rows")
    }

    /// Inbox rows of `consumer`.
    pub async fn inbox_rows(&self, consumer: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(self.db.pool())
            .await
            .expect("count inbox rows")
    }

    /// Stops the background tasks, deletes the namespace's streams and drops the database.
    pub async fn finish(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("background task stops within 10 s of shutdown")
                .expect("background task did not panic");
        }
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

/// A row of the `handled` table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Handled {
    pub event_id: Uuid,
    pub attempt: i32,
    pub envelope_tenant: String,
    pub tx_tenant: Option<String>,
    pub trace_id: Option<String>,
}

/// `orders.v1.order_placed` for `tenant`, payload `{"n": n}`.
pub fn order_event(tenant: &str, n: usize) -> NewEvent {
    let tenant = TenantId::parse(tenant).expect("valid tenant id");
    NewEvent::new(
        "orders.v1.order_placed",
        &tenant,
        &serde_json::json!({ "n": n }),
    )
    .expect("event")
}

/// An envelope as a producer would publish it; the handler fails its first `fail_times` calls.
pub fn envelope(tenant: &str, fail_times: u64) -> EventEnvelope {
    EventEnvelope {
        id: Uuid::now_v7(),
        event_type: "orders.v1.order_placed".into(),
        tenant_id: TenantId::parse(tenant).expect("valid tenant id"),
        occurred_at: chrono::Utc::now(),
        schema_version: 1,
        data: serde_json::json!({ "fail_times": fail_times }),
    }
}

/// The `host:port` of a `nats://host:port` URL.
pub async fn socket_addr(url: &str) -> SocketAddr {
    let host_port = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    tokio::net::lookup_host(host_port)
        .await
        .expect("resolve NATS address")
        .next()
        .expect("an address")
}

/// A header of a stream message as text.
pub fn header<'a>(message: &'a StreamMessage, name: &str) -> Option<&'a str> {
    message.headers.get(name).map(|v| v.as_str())
}

/// A handler that records every call in the `handled` table through its transaction (so only
/// committed calls remain) and fails the first `data.fail_times` calls of each event.
pub struct ScriptedHandler {
    consumer: String,
    calls: Mutex<HashMap<Uuid, u64>>,
}

impl ScriptedHandler {
    /// A handler recording under `consumer`.
    pub fn new(consumer: &str) -> Arc<ScriptedHandler> {
        Arc::new(ScriptedHandler {
            consumer: consumer.to_owned(),
            calls: Mutex::new(HashMap::new()),
        })
    }

    /// How often the handler ran for `event_id`.
    pub fn calls(&self, event_id: Uuid) -> u64 {
        self.calls
            .lock()
            .expect("calls lock")
            .get(&event_id)
            .copied()
            .unwrap_or(0)
    }

    /// How often the handler ran at all.
    pub fn total_calls(&self) -> u64 {
        self.calls.lock().expect("calls lock").values().sum()
    }
}

#[async_trait::async_trait]
impl EventHandler for ScriptedHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let attempt = {
            let mut calls = self.calls.lock().expect("calls lock");
            let n = calls.entry(event.id).or_default();
            *n += 1;
            *n
        };
        let tx_tenant: Option<String> =
            sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO handled (consumer, event_id, attempt, envelope_tenant, tx_tenant, trace_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&self.consumer)
        .bind(event.id)
        .bind(attempt as i32)
        .bind(event.tenant_id.as_str())
        .bind(tx_tenant)
        .bind(longship_telemetry::current_trace_id())
        .execute(&mut *tx)
        .await?;
        let fail_times = event
            .data
            .get("fail_times")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if attempt <= fail_times {
            return Err(HandlerError(format!(
                "scripted failure on attempt {attempt}"
            )));
        }
        Ok(())
    }
}
