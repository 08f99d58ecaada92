//! Tenant isolation: tenant B, holding tenant A's ids, calls every HTTP operation that the
//! services' own OpenAPI documents list and every gRPC method, and never sees or changes A's state;
//! row-level security alone hides every tenant table from a session without a tenant.

use std::time::Duration;

use longship_proto::inventory::v1 as inv;
use longship_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use longship_proto::order::v1 as ord;
use longship_proto::order::v1::order_service_client::OrderServiceClient;
use longship_proto::payment::v1 as pay;
use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_tenant::TenantId;
use longship_tenant::grpc::with_tenant;
use longship_testkit::checks::assert_tenant_set_admits_only_its_tenants;
use longship_testkit::{HttpClient, HttpResponse};
use serde_json::{Value, json};

use crate::harness::{Platform, order_body};

const A: &str = "tenant-a";
const B: &str = "tenant-b";
/// Values only tenant A's data contains: none may ever show up in an answer to B.
const A_SKU: &str = "SKU-A-7F3";
const A_CUSTOMER: &str = "cust-a-91";
const A_PRODUCT_NAME: &str = "a-secret-product-name";
const A_BALANCE: i64 = 987_654_321;
const A_KEY: &str = "key-of-tenant-a";

/// What tenant A owns after [`seed_tenant_a`].
struct OwnedByA {
    order_id: String,
    payment_id: String,
}

impl OwnedByA {
    /// Every marker of A's data, as text.
    fn markers(&self) -> Vec<String> {
        vec![
            self.order_id.clone(),
            self.payment_id.clone(),
            A_SKU.to_owned(),
            A_CUSTOMER.to_owned(),
            A_PRODUCT_NAME.to_owned(),
            A_BALANCE.to_string(),
        ]
    }
}

/// A: one product, one account and one CONFIRMED order whose stock is committed and payment captured.
async fn seed_tenant_a(p: &Platform) -> OwnedByA {
    let product =
        json!({"name": A_PRODUCT_NAME, "price_cents": 4242, "currency": "USD", "on_hand": 50});
    p.inventory(A)
        .put_ok(&format!("/v1/products/{A_SKU}"), &product)
        .await;
    p.seed_account(A, A_CUSTOMER, A_BALANCE, "USD").await;
    let r = p
        .place(A, order_body(A_CUSTOMER, "USD", &[(A_SKU, 3)]), Some(A_KEY))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let order_id = r.json()["id"].as_str().expect("id").to_owned();
    let order = p.wait_final(A, &order_id, Duration::from_secs(20)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    p.eventually(
        "A's stock committed and payment captured",
        Duration::from_secs(15),
        || async {
            let product = p.product(A, A_SKU).await;
            let account = p.account(A, A_CUSTOMER).await;
            product["reserved"] == 0 && product["on_hand"] == 47 && account["held_cents"] == 0
        },
    )
    .await;
    let payments = p
        .payments(A)
        .get(&format!("/v1/payments?order_id={order_id}"))
        .await
        .expect("payments")
        .json();
    assert_eq!(payments["items"][0]["status"], "CAPTURED", "{payments}");
    let payment_id = payments["items"][0]["id"]
        .as_str()
        .expect("payment id")
        .to_owned();
    OwnedByA {
        order_id,
        payment_id,
    }
}

/// Everything tenant A can read about its own data.
async fn snapshot_of_a(p: &Platform, a: &OwnedByA) -> Value {
    let get = |client: HttpClient, path: String| async move {
        let r = client.get(&path).await.expect("read as A");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    };
    json!({
        "order": get(p.orders(A), format!("/v1/orders/{}", a.order_id)).await,
        "orders": get(p.orders(A), "/v1/orders?limit=100".to_owned()).await,
        "product": get(p.inventory(A), format!("/v1/products/{A_SKU}")).await,
        "account": get(p.payments(A), format!("/v1/accounts/{A_CUSTOMER}")).await,
        "payments": get(p.payments(A), format!("/v1/payments?order_id={}", a.order_id)).await,
    })
}

/// One operation of a service's OpenAPI document, filled in with A's identifiers.
struct Call {
    name: String,
    client: HttpClient,
    method: http::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Call {
    async fn send(&self) -> HttpResponse {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let result = match &self.body {
            Some(body) => {
                self.client
                    .send_json(self.method.clone(), &self.path, &headers, body)
                    .await
            }
            None => {
                self.client
                    .send(self.method.clone(), &self.path, &headers, None)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
}

/// A value for a parameter named `name`, taken from A's data (a panic names a parameter the matrix
/// does not know yet, so a new endpoint cannot slip past it).
fn a_value(name: &str, a: &OwnedByA) -> String {
    match name {
        "id" | "order_id" => a.order_id.clone(),
        "sku" => A_SKU.to_owned(),
        "customer_id" => A_CUSTOMER.to_owned(),
        "status" => "CONFIRMED".to_owned(),
        "limit" => "100".to_owned(),
        // a cursor above every id: without the tenant filter A's order would be on the page
        "cursor" => "ffffffff-ffff-7fff-bfff-ffffffffffff".to_owned(),
        "Idempotency-Key" => A_KEY.to_owned(),
        // the admin API's filters (B's tenant credentials never reach it: 401 or 403)
        "tenant" => A.to_owned(),
        "consumer" => "inventory-order-confirmed".to_owned(),
        // A's saga is not stuck: a filter that would list it were it not for the tenant
        "stuck" => "false".to_owned(),
        "saga_type" => "place_order".to_owned(),
        other => panic!(
            "parameter {other:?} is not in the isolation matrix: teach a_value() a value of A's"
        ),
    }
}

fn resolve<'a>(schema: &'a Value, doc: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(&doc["components"]["schemas"][name], doc)
        }
        None => schema,
    }
}

/// A request body built from the schema's examples, with A's identifiers where a field names one.
fn example_body(schema: &Value, doc: &Value, a: &OwnedByA) -> Value {
    let schema = resolve(schema, doc);
    let ty = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_owned(),
        _ => "object".to_owned(),
    };
    match ty.as_str() {
        "object" => {
            let mut object = serde_json::Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    let value = match name.as_str() {
                        "customer_id" | "sku" => Value::String(a_value(name, a)),
                        _ => example_body(property, doc, a),
                    };
                    object.insert(name.clone(), value);
                }
            }
            Value::Object(object)
        }
        "array" => Value::Array(vec![example_body(&schema["items"], doc, a)]),
        _ => schema
            .get("example")
            .cloned()
            .unwrap_or_else(|| match ty.as_str() {
                "integer" | "number" => json!(1),
                "boolean" => json!(true),
                _ => json!("x"),
            }),
    }
}

/// `client`'s service as B's tenant admin (`longship:admin` for B only).
fn b_admin(client: &HttpClient) -> HttpClient {
    let scope =
        longship_tenant::AdminScope::Tenant(longship_tenant::TenantId::parse(B).expect("B"));
    let token = longship_tenant::issue_dev_admin_token(
        longship_testkit::TEST_JWT_SECRET,
        "b-admin",
        &scope,
        600,
    )
    .expect("admin token");
    HttpClient::new(client.base()).with_header("authorization", &format!("Bearer {token}"))
}

/// Every operation of `doc` (served by `client`), filled with A's ids.
fn calls_of(service: &str, client: &HttpClient, doc: &Value, a: &OwnedByA) -> Vec<Call> {
    let mut calls = Vec::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (template, item) in paths {
        for method in ["get", "put", "post", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let mut path = template.clone();
            let mut query = Vec::new();
            let mut headers = Vec::new();
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().expect("parameter name");
                let value = match (template.starts_with("/admin/"), name) {
                    // a saga's status (A's saga has completed)
                    (true, "status") => "COMPLETED".to_owned(),
                    _ => a_value(name, a),
                };
                match param["in"].as_str() {
                    Some("path") => path = path.replace(&format!("{{{name}}}"), &value),
                    Some("query") => query.push(format!("{name}={value}")),
                    Some("header") => headers.push((name.to_owned(), value)),
                    other => panic!("{service} {method} {template}: parameter in {other:?}"),
                }
            }
            assert!(!path.contains('{'), "{template}: unfilled path parameter");
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|schema| example_body(&Value::Object(schema.clone()), doc, a));
            // the admin API takes no tenant credentials: B's tenant admin calls it
            let client = if template.starts_with("/admin/") {
                b_admin(client)
            } else {
                client.clone()
            };
            calls.push(Call {
                name: format!("{service} {} {template}", method.to_uppercase()),
                client,
                method: method.to_uppercase().parse().expect("method"),
                path,
                headers,
                body,
            });
        }
    }
    calls
}

#[tokio::test]
async fn every_openapi_operation_as_another_tenant_sees_and_changes_nothing_of_a() {
    let p = Platform::start().await;
    let a = seed_tenant_a(&p).await;
    let before = snapshot_of_a(&p, &a).await;

    let services = [
        ("order", p.orders(B)),
        ("inventory", p.inventory(B)),
        ("payment", p.payments(B)),
    ];
    let mut calls = Vec::new();
    for (service, client) in &services {
        let r = client.get("/openapi.json").await.expect("openapi");
        assert_eq!(r.status, 200, "{service} /openapi.json");
        calls.extend(calls_of(service, client, &r.json(), &a));
    }
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    // the contract's eight operations at least (ARCHITECTURE.md section 5)
    assert!(calls.len() >= 8, "operations found: {names:?}");

    // reads first, while B owns nothing: 404 or an empty list, and nothing of A's in the body
    for call in calls.iter().filter(|c| c.method == http::Method::GET) {
        let r = call.send().await;
        let body = r.text();
        match r.status.as_u16() {
            404 => {}
            // the admin API's outbox view has counts, not items (checked for A's data below)
            200 if call.path.starts_with("/admin/v1/outbox") => {}
            200 => {
                let items = r.json()["items"].as_array().map(Vec::len);
                assert_eq!(
                    items,
                    Some(0),
                    "{}: B got a non-empty list: {body}",
                    call.name
                );
            }
            other => panic!("{}: B got {other}: {body}", call.name),
        }
        for marker in a.markers() {
            assert!(
                !body.contains(&marker),
                "{}: A's {marker} in {body}",
                call.name
            );
        }
    }

    // then writes with A's ids: B's own resources at most, never A's, never a 5xx
    let mut b_orders = Vec::new();
    for call in calls.iter().filter(|c| c.method != http::Method::GET) {
        let r = call.send().await;
        let body = r.text();
        assert!(
            !r.status.is_server_error(),
            "{}: {} {body}",
            call.name,
            r.status
        );
        // B may echo the sku or customer id it sent itself; A's ids and data must not appear
        for marker in [
            &a.order_id,
            &a.payment_id,
            A_PRODUCT_NAME,
            &A_BALANCE.to_string(),
        ] {
            assert!(
                !body.contains(marker),
                "{}: A's {marker} in {body}",
                call.name
            );
        }
        if call.path.starts_with("/v1/orders") && r.status == 202 {
            b_orders.push(r.json()["id"].as_str().expect("id").to_owned());
        }
    }
    // the same Idempotency-Key in another tenant is another order, never A's
    assert!(!b_orders.is_empty(), "B's POST /v1/orders was not accepted");
    for id in &b_orders {
        assert_ne!(id, &a.order_id);
        p.wait_final(B, id, Duration::from_secs(20)).await;
    }
    // give any event B's order produced time to reach the consumers, then compare A's state
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = snapshot_of_a(&p, &a).await;
    assert_eq!(
        before, after,
        "A's state changed while B called every endpoint"
    );
    p.stop().await;
}

/// A's stock and money as A reads them.
async fn a_state(p: &Platform) -> (Value, Value) {
    (p.product(A, A_SKU).await, p.account(A, A_CUSTOMER).await)
}

/// The gRPC code of a refused call.
fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Option<tonic::Code> {
    r.err().map(|s| s.code())
}

/// What a Release / Commit / Void call did, when it succeeded.
fn outcome<T: HasOutcome>(r: &Result<tonic::Response<T>, tonic::Status>) -> Option<&str> {
    r.as_ref().ok().map(|r| r.get_ref().outcome())
}

trait HasOutcome {
    fn outcome(&self) -> &str;
}

impl HasOutcome for inv::ReleaseResponse {
    fn outcome(&self) -> &str {
        &self.outcome
    }
}

impl HasOutcome for inv::CommitResponse {
    fn outcome(&self) -> &str {
        &self.outcome
    }
}

impl HasOutcome for pay::VoidResponse {
    fn outcome(&self) -> &str {
        &self.outcome
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

fn as_tenant<T>(message: T, t: &str) -> tonic::Request<T> {
    with_tenant(tonic::Request::new(message), &tenant(t))
}

#[tokio::test]
async fn grpc_methods_with_a_foreign_tenant_neither_see_nor_change_a_and_rls_hides_every_table() {
    let p = Platform::start().await;
    p.seed_product(A, A_SKU, 1_000, "USD", 10).await;
    p.seed_account(A, A_CUSTOMER, 50_000, "USD").await;
    // the saga's commands as the order service would send them (its certificate)
    let pki = longship_testkit::TestPki::shared();
    let mut inventory =
        InventoryServiceClient::new(pki.channel(p.inventory.grpc, Some("order"), "inventory"));
    let mut payment =
        PaymentServiceClient::new(pki.channel(p.payment_grpc, Some("order"), "payment"));
    let mut orders = OrderServiceClient::new(pki.channel(p.order.grpc, None, "order"));

    // an order of A's, finished and settled (a row in `orders`, a target for GetOrder)
    let placed = p
        .place(A, order_body(A_CUSTOMER, "USD", &[(A_SKU, 1)]), None)
        .await;
    let a_order = placed.json()["id"].as_str().expect("id").to_owned();
    let order = p.wait_final(A, &a_order, Duration::from_secs(20)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    p.eventually("A's order settled", Duration::from_secs(15), || async {
        p.product(A, A_SKU).await["on_hand"] == 9
            && p.account(A, A_CUSTOMER).await["balance_cents"] == 49_000
    })
    .await;

    // A holds stock and money for an order in flight, as the saga leaves them between steps
    let order_id = uuid::Uuid::now_v7().to_string();
    inventory
        .reserve(reserve_request(A, &order_id))
        .await
        .expect("A reserves");
    let authorized = payment
        .authorize(authorize_request(A, &order_id))
        .await
        .expect("A authorizes")
        .into_inner();
    assert_eq!(authorized.status, "AUTHORIZED");
    let before = a_state(&p).await;
    assert_eq!(before.0["reserved"], 2);
    assert_eq!(before.1["held_cents"], 2_000);

    b_reads_nothing_of_a(&mut orders, &mut inventory, &mut payment, &a_order).await;

    b_commands_change_nothing_of_a(&p, &mut inventory, &mut payment, &order_id, &before).await;

    // A's own reservation and hold were intact all along: A can still release and void them
    let released = inventory
        .release(as_tenant(
            inv::ReleaseRequest {
                order_id: order_id.clone(),
                idempotency_key: format!("{order_id}:release"),
            },
            A,
        ))
        .await
        .expect("A releases")
        .into_inner();
    assert_eq!(released.outcome, "RELEASED");
    let voided = payment
        .void(as_tenant(
            pay::VoidRequest {
                order_id: order_id.clone(),
                idempotency_key: format!("{order_id}:void"),
            },
            A,
        ))
        .await
        .expect("A voids")
        .into_inner();
    assert_eq!(voided.outcome, "VOIDED");
    // a Void that arrived first leaves a tombstone row (so every tenant table has a row of A's)
    let early = uuid::Uuid::now_v7().to_string();
    payment
        .void(as_tenant(
            pay::VoidRequest {
                order_id: early,
                idempotency_key: "early-void".into(),
            },
            A,
        ))
        .await
        .expect("A voids early");

    rls_hides_every_tenant_table(&p).await;
    crate::security_rls::rls_covers_the_platform_tables(&p, A, B).await;
    p.stop().await;
}

type Inventory = InventoryServiceClient<tonic::transport::Channel>;
type Payment = PaymentServiceClient<tonic::transport::Channel>;
type Orders = OrderServiceClient<tonic::transport::Channel>;

/// A's Reserve of two units for `id`, as tenant `t` sends it.
fn reserve_request(t: &str, id: &str) -> tonic::Request<inv::ReserveRequest> {
    as_tenant(
        inv::ReserveRequest {
            order_id: id.to_owned(),
            idempotency_key: format!("{id}:reserve"),
            currency: "USD".into(),
            lines: vec![inv::ReserveLine {
                sku: A_SKU.into(),
                quantity: 2,
            }],
        },
        t,
    )
}

/// An Authorize of 2,000 cents of A's customer for `id`, as tenant `t` sends it.
fn authorize_request(t: &str, id: &str) -> tonic::Request<pay::AuthorizeRequest> {
    as_tenant(
        pay::AuthorizeRequest {
            order_id: id.to_owned(),
            idempotency_key: format!("{id}:authorize"),
            customer_id: A_CUSTOMER.into(),
            amount_cents: 2_000,
            currency: "USD".into(),
        },
        t,
    )
}

/// B, with A's ids, on every read: not found; A reads its own order.
async fn b_reads_nothing_of_a(
    orders: &mut Orders,
    inventory: &mut Inventory,
    payment: &mut Payment,
    a_order: &str,
) {
    let r = inventory
        .get_product(as_tenant(inv::GetProductRequest { sku: A_SKU.into() }, B))
        .await;
    assert_eq!(code(r), Some(tonic::Code::NotFound));
    let r = payment
        .get_account(as_tenant(
            pay::GetAccountRequest {
                customer_id: A_CUSTOMER.into(),
            },
            B,
        ))
        .await;
    assert_eq!(code(r), Some(tonic::Code::NotFound));
    let get_order = |t| {
        let id = a_order.to_owned();
        as_tenant(ord::GetOrderRequest { id }, t)
    };
    let r = orders.get_order(get_order(B)).await;
    assert_eq!(code(r), Some(tonic::Code::NotFound));
    let r = orders.get_order(get_order(A)).await;
    assert!(r.is_ok(), "A reads its own order over gRPC: {r:?}");
}

/// B's compensations and commands on A's order are B's own no-ops or refusals: A's stock and
/// money stay as they were.
async fn b_commands_change_nothing_of_a(
    p: &Platform,
    inventory: &mut Inventory,
    payment: &mut Payment,
    order_id: &str,
    before: &(Value, Value),
) {
    let r = inventory
        .release(as_tenant(
            inv::ReleaseRequest {
                order_id: order_id.to_owned(),
                idempotency_key: "b-release".into(),
            },
            B,
        ))
        .await;
    // in B's tenant the order is unknown: B's Release only records B's own tombstone
    assert_eq!(outcome(&r), Some("TOMBSTONED"), "B's Release: {r:?}");
    let r = inventory
        .commit(as_tenant(
            inv::CommitRequest {
                order_id: order_id.to_owned(),
                idempotency_key: "b-commit".into(),
            },
            B,
        ))
        .await;
    assert_eq!(outcome(&r), Some("NOT_RESERVED"), "B's Commit: {r:?}");
    let r = inventory.reserve(reserve_request(B, order_id)).await;
    assert!(r.is_err(), "B reserved A's sku: {r:?}");
    let r = payment
        .capture(as_tenant(
            pay::CaptureRequest {
                order_id: order_id.to_owned(),
                idempotency_key: "b-capture".into(),
            },
            B,
        ))
        .await;
    assert_eq!(code(r), Some(tonic::Code::NotFound));
    let r = payment
        .void(as_tenant(
            pay::VoidRequest {
                order_id: order_id.to_owned(),
                idempotency_key: "b-void".into(),
            },
            B,
        ))
        .await;
    assert_eq!(outcome(&r), Some("TOMBSTONED"), "B's Void: {r:?}");
    let r = payment.authorize(authorize_request(B, order_id)).await;
    assert!(r.is_err(), "B authorized against A's account: {r:?}");
    assert_eq!(&a_state(p).await, before, "B changed A's stock or money");
}

/// With the application role and row-level security alone (no `WHERE tenant_id`), a session without
/// the tenant setting sees no row of any tenant table, and another tenant's setting neither sees nor
/// writes A's rows. A's setting sees them, so the test is not vacuous.
async fn rls_hides_every_tenant_table(p: &Platform) {
    let tables = [
        (&p.orders_db, "orders"),
        (&p.inventory_db, "products"),
        (&p.inventory_db, "reservations"),
        (&p.payments_db, "accounts"),
        (&p.payments_db, "payments"),
        (&p.payments_db, "payment_tombstones"),
    ];
    for (db, table) in tables {
        let mut conn = db.app_role_connection().await;
        let mut visible = Vec::new();
        for setting in [None, Some(B), Some(A)] {
            let set = match setting {
                None => sqlx::query("RESET app.tenant_id"),
                Some(t) => sqlx::query("SELECT set_config('app.tenant_id', $1, false)").bind(t),
            };
            set.execute(&mut conn).await.expect("tenant setting");
            // every row of any tenant (none set) or of another tenant than the one set; B may have
            // rows of its own (its Release and Void above left tombstones)
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} WHERE tenant_id IS DISTINCT FROM $1"
            )))
            .bind(setting)
            .fetch_one(&mut conn)
            .await
            .expect("count");
            let own: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = $1"
            )))
            .bind(setting)
            .fetch_one(&mut conn)
            .await
            .expect("count");
            visible.push((n, own));
        }
        assert_eq!(visible[0].0, 0, "{table}: rows visible without a tenant");
        assert_eq!(visible[1].0, 0, "{table}: other tenants' rows visible to B");
        assert_eq!(visible[2].0, 0, "{table}: other tenants' rows visible to A");
        assert!(
            visible[2].1 > 0,
            "{table}: A has no rows, the check proves nothing"
        );
        // as B, A's rows can be neither changed nor deleted, and no row can be written in A's name
        sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
            .bind(B)
            .execute(&mut conn)
            .await
            .expect("set tenant");
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = '{A}'"
        )))
        .execute(&mut conn)
        .await
        .expect("update");
        assert_eq!(updated.rows_affected(), 0, "{table}: B updated A's rows");
        let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = '{A}'"
        )))
        .execute(&mut conn)
        .await
        .expect("delete");
        assert_eq!(deleted.rows_affected(), 0, "{table}: B deleted A's rows");
        // a tenant set (the batch paths) admits its tenants' rows and no other's
        sqlx::query("RESET app.tenant_id")
            .execute(&mut conn)
            .await
            .expect("reset");
        assert_tenant_set_admits_only_its_tenants(&mut conn, &[table], A, B).await;
    }
    // a row in A's name cannot be inserted under B's setting (WITH CHECK)
    let mut conn = p.payments_db.pool().acquire().await.expect("conn");
    let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
    sqlx::query("SET LOCAL ROLE longship_app")
        .execute(&mut *tx)
        .await
        .expect("role");
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(B)
        .execute(&mut *tx)
        .await
        .expect("tenant");
    let inserted = sqlx::query(
        "INSERT INTO accounts (tenant_id, customer_id, currency, balance_cents) VALUES ($1, 'forged', 'USD', 1)",
    )
    .bind(A)
    .execute(&mut *tx)
    .await;
    assert!(inserted.is_err(), "B inserted a row in A's name");
    let _ = tx.rollback().await;
}
