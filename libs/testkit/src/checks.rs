//! Checks and fixtures that every service's tests share, so a service's tests keep only what is
//! its own: the platform's answers to bad requests on any `/v1` resource, the row-level security
//! probe as the application role, and the order service's `order_confirmed` event as its participants consume it.

use std::time::Duration;

use http::Method;
use longship_runtime::Service;
use sqlx::PgConnection;

use crate::{HttpClient, HttpResponse, TestApp};

/// The order service's stream, where `order_confirmed` comes from.
pub use longship_contracts::ORDERS;

/// The type of `order_confirmed`, which the saga's participants consume.
pub const ORDER_CONFIRMED: &str = longship_contracts::ORDER_CONFIRMED.name;

/// What every participant's saga command request is (`string order_id = 1; string
/// idempotency_key = 2;`: Release, Commit, Void, Capture, a new service's Cancel).
#[derive(Clone, PartialEq, prost::Message)]
struct StepCommand {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    idempotency_key: String,
}

impl<S: Service> TestApp<S> {
    /// `PUT path` with a JSON `body`, for [`crate::TEST_TENANT`].
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> HttpResponse {
        self.http
            .send_json(Method::PUT, path, &[], body)
            .await
            .expect("PUT")
    }

    /// `PUT path` with a JSON `body`, asserting 200; the answer as JSON.
    pub async fn put_ok(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        self.http.put_ok(path, body).await
    }

    /// A participant's saga command `M` for `order_id` as the order service sends it at `step` (the
    /// idempotency key `{order_id}:{step}`), for [`crate::TEST_TENANT`].
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn step_request<M: prost::Message + Default>(
        &self,
        order_id: uuid::Uuid,
        step: &str,
    ) -> tonic::Request<M> {
        let command = StepCommand {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:{step}"),
        };
        let bytes = prost::Message::encode_to_vec(&command);
        self.request(M::decode(bytes.as_slice()).expect("a saga command request"))
    }

    /// `GET path` as JSON, asserting 200.
    pub async fn get_ok(&self, path: &str) -> serde_json::Value {
        self.http.get_ok(path).await
    }

    /// Asserts that `GET path` acting for `tenant` is 404 with the stable error `code` (a resource
    /// that does not exist, or that exists only for another tenant).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn assert_not_found_for(&self, tenant: &str, path: &str, code: &str) {
        let response = self.as_tenant(tenant).get(path).await.expect("GET");
        assert_eq!(
            (response.status.as_u16(), response.json()["code"].as_str()),
            (404, Some(code)),
            "GET {path} as {tenant}: {}",
            response.text()
        );
    }

    /// Asserts the platform's answers on the `/v1` resource at `path` (which takes a JSON `PUT`):
    /// malformed JSON 400 `request.malformed_json`, JSON of the wrong shape (`wrong_shape`, e.g. a
    /// field of another type) 422, another content type 415 (problem+json), no credentials 401, a
    /// malformed tenant 400.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn assert_rejects_bad_requests(&self, path: &str, wrong_shape: &serde_json::Value) {
        let send = async |content_type: &str, body: &'static str| {
            let headers = [("content-type", content_type)];
            let sent = self
                .http
                .send(Method::PUT, path, &headers, Some(body.into()));
            sent.await.expect("PUT")
        };
        let malformed = send("application/json", "{\"name\":").await;
        assert_eq!(malformed.status, 400, "{}", malformed.text());
        assert_eq!(malformed.json()["code"], "request.malformed_json");
        let response = self.put_json(path, wrong_shape).await;
        assert_eq!(response.status, 422, "{wrong_shape}: {}", response.text());
        let wrong_type = send("text/plain", "hello").await;
        assert_eq!(wrong_type.status, 415, "{}", wrong_type.text());
        assert_eq!(
            wrong_type.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let anonymous = HttpClient::new(self.http_base());
        assert_eq!(anonymous.get(path).await.expect("GET").status, 401);
        let bad_tenant = self.as_tenant("Not Valid").get(path).await.expect("GET");
        assert_eq!(bad_tenant.status, 400, "{}", bad_tenant.text());
    }

    /// A connection to the service's database as the application role with no tenant set,
    /// after asserting that the owner sees `owner_rows` rows in `table` (so the data a row-level
    /// security check expects to be hidden is really there).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn app_role_without_tenant(&self, table: &str, owner_rows: i64) -> PgConnection {
        let owner_sees: i64 = sqlx::query_scalar(count_rows(table))
            .fetch_one(self.db.pool())
            .await
            .expect("count as the owner");
        assert_eq!(owner_sees, owner_rows, "rows of {table} the owner sees");
        self.db.app_role_connection().await
    }

    /// Asserts that the service's `order_confirmed` consumer handles the event in each form a
    /// consumer must read: the current version with unknown fields at every level (a newer
    /// producer) and version 1 (upcast). For each form `hold(order)` prepares a new order that
    /// the event settles (of `items`: sku, quantity, unit price in cents; paid by `c-1`), and
    /// `settled(order)` tells when the consumer has handled it (polled up to 15 s).
    pub async fn assert_order_confirmed_read_in_every_form(
        &self,
        items: &[(&str, i64, i64)],
        hold: impl AsyncFn(uuid::Uuid),
        settled: impl AsyncFn(uuid::Uuid) -> bool,
    ) {
        let settled = &settled;
        for (version, msg_id) in [(2, "unknown-fields"), (1, "version-1")] {
            let order = uuid::Uuid::now_v7();
            hold(order).await;
            let mut data = order_confirmed_data(order, "c-1", items, version);
            if version >= 2 {
                data = crate::event_schemas::with_unknown_fields(&data);
                assert_eq!(data["items"][0]["x_unknown_number"], 42);
            }
            self.publish_order_confirmed_data(uuid::Uuid::now_v7(), version, data, msg_id)
                .await;
            let what = format!("order_confirmed ({msg_id}) handled");
            crate::eventually(&what, Duration::from_secs(15), move || async move {
                settled(order).await.then_some(())
            })
            .await;
        }
    }

    /// Publishes `order`'s `order_confirmed` (of `items`: sku, quantity, unit price in cents; paid
    /// by `c-1`) and waits until `settled()`; then publishes the same event again (a redelivery past
    /// JetStream's duplicate window) and another event for the same order, and waits until the
    /// service's consumer `consumer` acknowledged all three, so the caller can check that the
    /// repeats changed nothing.
    pub async fn publish_order_confirmed_with_repeats(
        &self,
        consumer: &str,
        order: uuid::Uuid,
        items: &[(&str, i64, i64)],
        settled: impl AsyncFn() -> bool,
    ) {
        let event_id = uuid::Uuid::now_v7();
        let first = event_id.to_string();
        self.publish_order_confirmed(event_id, &first, order, "c-1", items)
            .await;
        let settled = &settled;
        crate::eventually(
            "order_confirmed handled",
            Duration::from_secs(15),
            move || async move { settled().await.then_some(()) },
        )
        .await;
        self.publish_order_confirmed(event_id, "redelivery-1", order, "c-1", items)
            .await;
        let another = uuid::Uuid::now_v7();
        self.publish_order_confirmed(another, "another-event", order, "c-1", items)
            .await;
        crate::eventually("all three handled", Duration::from_secs(15), || async {
            (self.consumer_acked(ORDERS.name, consumer).await >= 3).then_some(())
        })
        .await;
    }

    /// Publishes `orders.v1.order_confirmed` with id `event_id` at schema `version` with `data`,
    /// as the order service's relay would (creating its stream); `msg_id` is the `Nats-Msg-Id`.
    pub async fn publish_order_confirmed_data(
        &self,
        event_id: uuid::Uuid,
        version: u32,
        data: serde_json::Value,
        msg_id: &str,
    ) {
        let mut envelope = self.envelope(event_id, ORDER_CONFIRMED, data);
        envelope.schema_version = version;
        self.publish(ORDERS, &envelope, msg_id).await;
    }
}

/// The data of an `orders.v1.order_confirmed` event at schema `version` for `order_id`, paid by
/// `customer_id` in USD, of `items` (sku, quantity, unit price in cents) with their sum as
/// `total_cents`; from version 2 on with `confirmed_at` (now).
pub fn order_confirmed_data(
    order_id: uuid::Uuid,
    customer_id: &str,
    items: &[(&str, i64, i64)],
    version: u32,
) -> serde_json::Value {
    let total_cents: i64 = items
        .iter()
        .map(|(_, quantity, price)| quantity * price)
        .sum();
    let items: Vec<_> = items
        .iter()
        .map(|(sku, quantity, price)| {
            serde_json::json!({"sku": sku, "quantity": quantity, "unit_price_cents": price})
        })
        .collect();
    let mut data = serde_json::json!({
        "order_id": order_id, "customer_id": customer_id, "currency": "USD",
        "total_cents": total_cents, "items": items,
    });
    if version >= 2 {
        data["confirmed_at"] = serde_json::json!(chrono::Utc::now());
    }
    data
}

/// Asserts that `conn` sees no row in any of `tables`.
#[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
pub async fn assert_no_rows_visible(conn: &mut PgConnection, tables: &[&str]) {
    for table in tables {
        let count: i64 = sqlx::query_scalar(count_rows(table))
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        assert_eq!(count, 0, "rows of {table} visible");
    }
}

/// `SELECT count(*)` of a table the test names (never input from outside the test).
fn count_rows(table: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))
}

/// Asserts what a tenant set (`app.tenant_ids`, `longship_tenant::begin_set`) admits on each of
/// `tables` for `conn` (the application role): with the set `{tenant}` it sees and updates exactly
/// `tenant`'s rows (at least one each, so the check can fail); with a set naming only `other`
/// nothing of `tenant`'s; with an empty set nothing at all. Each probe is rolled back.
#[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
pub async fn assert_tenant_set_admits_only_its_tenants(
    conn: &mut PgConnection,
    tables: &[&str],
    tenant: &str,
    other: &str,
) {
    use sqlx::Connection;
    for table in tables {
        let mut probe = async |set: &str| -> (i64, i64, u64) {
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query("SELECT set_config('app.tenant_ids', $1, true)")
                .bind(set)
                .execute(&mut *tx)
                .await
                .expect("tenant set");
            let seen: i64 = sqlx::query_scalar(count_rows(table))
                .fetch_one(&mut *tx)
                .await
                .expect("count");
            let of_tenant: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = $1"
            )))
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .expect("count of the tenant");
            let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET tenant_id = tenant_id"
            )))
            .execute(&mut *tx)
            .await
            .expect("update")
            .rows_affected();
            tx.rollback().await.expect("rollback");
            (seen, of_tenant, updated)
        };
        let (seen, of_tenant, updated) = probe(&format!("{{{tenant}}}")).await;
        assert!(of_tenant > 0, "{table}: no row of {tenant} to probe");
        assert_eq!(
            (seen, updated),
            (of_tenant, of_tenant as u64),
            "{table}: the set {{{tenant}}}"
        );
        assert_eq!(
            probe(&format!("{{{other}}}")).await.1,
            0,
            "{table}: {tenant}'s rows under {{{other}}}"
        );
        assert_eq!(probe("").await.0, 0, "{table}: rows under an empty set");
        assert_eq!(probe("{}").await.0, 0, "{table}: rows under {{}}");
    }
}
