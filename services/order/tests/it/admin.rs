//! The admin API of the order service (sagas) and of every service (dead letters, outbox, audit),
//! end to end with inventory and payment: the authorization matrix, paging, 409 on a finished
//! saga, a stuck saga retried to its end, a cancel in flight compensating in reverse order, and two
//! replicas racing on one saga.

use std::collections::HashMap;
use std::time::Duration;

use longship_tenant::{AdminScope, TenantId};
use longship_testkit::invariants::{Databases, Initial, wait_quiet};
use longship_testkit::{HttpClient, TEST_JWT_SECRET};
use serde_json::{Value, json};

use crate::harness::{Platform, order_body, start_order, start_payment};

fn admin(addr: std::net::SocketAddr, subject: &str, scope: &AdminScope) -> HttpClient {
    let token = longship_tenant::issue_dev_admin_token(TEST_JWT_SECRET, subject, scope, 3600)
        .expect("admin token");
    HttpClient::new(format!("http://{addr}"))
        .with_header("authorization", &format!("Bearer {token}"))
}

fn operator(p: &Platform) -> HttpClient {
    admin(p.order.http, "ops", &AdminScope::Operator)
}

fn tenant_admin(p: &Platform, tenant: &str) -> HttpClient {
    admin(
        p.order.http,
        &format!("{tenant}-admin"),
        &AdminScope::Tenant(TenantId::parse(tenant).expect("tenant")),
    )
}

fn code(r: &longship_testkit::HttpResponse) -> (u16, String) {
    (
        r.status.as_u16(),
        r.json()["code"].as_str().unwrap_or("").to_owned(),
    )
}

async fn saga(client: &HttpClient, id: &str) -> Value {
    client.get_ok(&format!("/admin/v1/sagas/{id}")).await
}

async fn place(p: &Platform, tenant: &str) -> String {
    let r = p
        .place(tenant, order_body("c-1", "USD", &[("SKU-1", 2)]), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

async fn seed(p: &Platform, tenants: &[&str]) -> Initial {
    let mut initial = Initial {
        stock: HashMap::new(),
        balances: HashMap::new(),
    };
    for t in tenants {
        p.seed_product(t, "SKU-1", 500, "USD", 10).await;
        p.seed_account(t, "c-1", 10_000, "USD").await;
        initial.stock.insert(((*t).into(), "SKU-1".into()), 10);
        initial.balances.insert(((*t).into(), "c-1".into()), 10_000);
    }
    initial
}

async fn assert_invariants(p: &Platform, initial: &Initial) {
    let dbs = Databases {
        orders: p.orders_db.pool(),
        inventory: p.inventory_db.pool(),
        payments: p.payments_db.pool(),
    };
    let violations = wait_quiet(&dbs, initial, Duration::from_secs(30)).await;
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
}

/// Waits until `check` returns something (bounded).
async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admin_routes_authorize_by_scope_page_newest_first_and_refuse_finished_sagas() {
    let p = Platform::start().await;
    seed(&p, &["acme", "globex"]).await;
    let mut acme = Vec::new();
    for _ in 0..3 {
        acme.push(place(&p, "acme").await);
    }
    let globex = place(&p, "globex").await;
    for id in &acme {
        p.wait_final("acme", id, Duration::from_secs(20)).await;
    }
    p.wait_final("globex", &globex, Duration::from_secs(20))
        .await;
    let id = &acme[0];
    let path = format!("/admin/v1/sagas/{id}");

    check_matrix(&p, id, &path).await;
    check_lists(&p, &acme, &globex).await;
    check_refusals(&p, &path).await;
    p.stop().await;
}

/// Operator, own tenant admin, other tenant admin, plain tenant JWT, no token, X-Tenant-Id alone.
async fn check_matrix(p: &Platform, id: &str, path: &str) {
    // the matrix
    let ops = operator(p);
    let detail = saga(&ops, id).await;
    assert_eq!(detail["status"], "COMPLETED", "{detail}");
    assert_eq!(detail["tenant_id"], "acme");
    assert_eq!(
        detail["steps"].as_array().map(Vec::len),
        Some(3),
        "{detail}"
    );
    assert!(
        detail["history"]
            .as_array()
            .is_some_and(|h| h.len() >= 3 && h.iter().all(|e| e["actor"] == "engine")),
        "{detail}"
    );
    assert_eq!(saga(&tenant_admin(p, "acme"), id).await["id"], id);
    let r = tenant_admin(p, "globex").get(path).await.expect("get");
    assert_eq!(
        code(&r),
        (404, "saga.not_found".into()),
        "another tenant's saga does not exist for it"
    );
    let tenant_jwt = longship_tenant::issue_dev_token(
        TEST_JWT_SECRET,
        &TenantId::parse("acme").expect("tenant"),
        3600,
    )
    .expect("token");
    let plain = HttpClient::new(format!("http://{}", p.order.http))
        .with_header("authorization", &format!("Bearer {tenant_jwt}"));
    assert_eq!(
        code(&plain.get(path).await.expect("get")),
        (403, "auth.admin_scope_required".into())
    );
    let none = HttpClient::new(format!("http://{}", p.order.http));
    assert_eq!(none.get(path).await.expect("get").status, 401);
    assert_eq!(
        p.orders("acme").get(path).await.expect("get").status,
        401,
        "X-Tenant-Id never grants admin"
    );
    for service in ["inventory", "payment"] {
        let base = format!("http://{}", p.http_of(service));
        assert_eq!(
            HttpClient::new(&base)
                .with_header("x-tenant-id", "acme")
                .get("/admin/v1/dead-letters")
                .await
                .expect("get")
                .status,
            401
        );
        let r = HttpClient::new(&base)
            .with_header("authorization", &format!("Bearer {tenant_jwt}"))
            .get("/admin/v1/outbox")
            .await
            .expect("get");
        assert_eq!(r.status, 403, "{service}: {}", r.text());
    }
}

/// Tenant filters and paging.
async fn check_lists(p: &Platform, acme: &[String], globex: &str) {
    let ops = operator(p);
    // a tenant admin lists its own tenant's sagas only, whatever it asks for
    let own = tenant_admin(p, "acme")
        .get("/admin/v1/sagas?tenant=globex")
        .await
        .expect("list")
        .json();
    assert_eq!(own["items"].as_array().map(Vec::len), Some(3), "{own}");
    assert!(
        own["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|s| s["tenant_id"] == "acme")
    );
    let theirs = ops
        .get("/admin/v1/sagas?tenant=globex")
        .await
        .expect("list")
        .json();
    assert_eq!(theirs["items"][0]["id"], globex, "{theirs}");

    // paging, newest first, no overlap
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = ops
            .get(&format!(
                "/admin/v1/sagas?limit=2&status=COMPLETED&cursor={cursor}"
            ))
            .await
            .expect("page")
            .json();
        let items = page["items"].as_array().expect("items").clone();
        seen.extend(
            items
                .iter()
                .map(|s| s["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
        assert!(seen.len() <= 4, "paging does not end: {seen:?}");
    }
    let mut expected: Vec<String> = acme.iter().cloned().chain([globex.to_owned()]).collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected, "every saga once, newest first");
    assert_eq!(
        ops.get("/admin/v1/sagas?stuck=true")
            .await
            .expect("list")
            .json()["items"],
        json!([])
    );
    for (query, expected) in [
        ("limit=0", "request.invalid_query"),
        ("status=DONE", "request.invalid_query"),
        ("cursor=abc", "request.invalid_cursor"),
        ("tenant=Not-Valid", "tenant.invalid"),
        ("stuck=maybe", "request.invalid_query"),
    ] {
        let r = ops
            .get(&format!("/admin/v1/sagas?{query}"))
            .await
            .expect("list");
        assert_eq!(code(&r), (400, expected.into()), "{query}");
    }
}

/// A finished saga is refused, bad input too, and nothing refused is audited.
async fn check_refusals(p: &Platform, path: &str) {
    let ops = operator(p);
    let none = HttpClient::new(format!("http://{}", p.order.http));
    // a finished saga is neither retried nor cancelled
    let r = ops
        .post_empty(&format!("{path}/retry"))
        .await
        .expect("retry");
    assert_eq!(code(&r), (409, "saga.terminal".into()), "{}", r.text());
    let r = ops
        .send_json(
            http::Method::POST,
            &format!("{path}/cancel"),
            &[],
            &json!({"reason": "too late"}),
        )
        .await
        .expect("cancel");
    assert_eq!(code(&r), (409, "saga.terminal".into()));
    let r = ops
        .send_json(
            http::Method::POST,
            &format!("{path}/cancel"),
            &[],
            &json!({"reason": ""}),
        )
        .await
        .expect("cancel");
    assert_eq!(code(&r), (422, "request.invalid".into()));
    let r = ops
        .send_json(
            http::Method::POST,
            &format!("{path}/cancel"),
            &[],
            &json!({"reason": "x".repeat(501)}),
        )
        .await
        .expect("cancel");
    assert_eq!(code(&r), (422, "request.invalid".into()));
    let r = ops
        .post_empty(&format!("/admin/v1/sagas/{}/retry", uuid::Uuid::now_v7()))
        .await
        .expect("retry");
    assert_eq!(code(&r), (404, "saga.not_found".into()));
    assert_eq!(
        ops.get("/admin/v1/audit").await.expect("audit").json()["items"],
        json!([]),
        "refused actions change nothing"
    );

    let metrics = none.get("/metrics").await.expect("metrics").text();
    assert!(
        metrics.contains(r#"admin_actions_total{action="saga.retry",outcome="conflict"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"admin_actions_total{action="saga.cancel",outcome="ok"} 0"#));
}

#[tokio::test]
async fn a_stuck_saga_is_listed_with_its_error_and_a_retry_after_the_fix_finishes_it() {
    let mut p = Platform::start_with(&[("SAGA_DEADLINE_SECS", "2")]).await;
    let initial = seed(&p, &["acme"]).await;
    let payment_grpc = p.payment_grpc.to_string();
    if let Some(payment) = p.payment.take() {
        payment.stop().await;
    }
    let id = place(&p, "acme").await;
    // past the deadline its Void cannot reach payment: it compensates and keeps failing
    let ops = operator(&p);
    let stuck = until(
        "the saga listed as stuck",
        Duration::from_secs(30),
        || async {
            let page = ops
                .get("/admin/v1/sagas?stuck=true")
                .await
                .expect("list")
                .json();
            page["items"].as_array().and_then(|items| {
                items
                    .iter()
                    .find(|s| {
                        s["id"] == id.as_str()
                            && s["status"] == "COMPENSATING"
                            && !s["last_error"].is_null()
                    })
                    .cloned()
            })
        },
    )
    .await;
    assert_eq!(stuck["status"], "COMPENSATING", "{stuck}");
    assert_eq!(stuck["failure_reason"], "timeout", "{stuck}");
    let detail = saga(&ops, &id).await;
    assert!(
        detail["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|e| !e["error"].is_null()),
        "the errors are in its history: {detail}"
    );

    p.payment = Some(start_payment(&p.payments_db, &p.nats, &payment_grpc).await);
    let r = ops
        .post_empty(&format!("/admin/v1/sagas/{id}/retry"))
        .await
        .expect("retry");
    assert_eq!(r.status, 202, "{}", r.text());
    let order = p.wait_final("acme", &id, Duration::from_secs(30)).await;
    assert_eq!(
        (order["status"].as_str(), order["failure_reason"].as_str()),
        (Some("CANCELLED"), Some("timeout")),
        "{order}"
    );
    assert_invariants(&p, &initial).await;
    let detail = saga(&ops, &id).await;
    assert!(
        detail["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|e| e["state"] == "RETRY_REQUESTED" && e["actor"] == "ops"),
        "{detail}"
    );
    let audit = ops.get("/admin/v1/audit").await.expect("audit").json();
    assert_eq!(
        (
            audit["items"][0]["action"].as_str(),
            audit["items"][0]["target"].as_str(),
            audit["items"][0]["actor"].as_str()
        ),
        (Some("saga.retry"), Some(id.as_str()), Some("ops")),
        "{audit}"
    );
    assert_eq!(
        ops.get("/admin/v1/sagas?stuck=true")
            .await
            .expect("list")
            .json()["items"],
        json!([])
    );
    p.stop().await;
}

#[tokio::test]
async fn a_cancel_in_flight_compensates_in_reverse_order_and_two_replicas_apply_it_once() {
    let mut p = Platform::start().await;
    let initial = seed(&p, &["acme"]).await;
    let payment_grpc = p.payment_grpc.to_string();
    if let Some(payment) = p.payment.take() {
        payment.stop().await;
    }
    // a second replica of the order service on the same database
    let replica = start_order(&p.orders_db, &p.nats, p.inventory.grpc, p.payment_grpc, &[]).await;
    let id = place(&p, "acme").await;
    let ops = operator(&p);
    until(
        "stock reserved, payment retrying",
        Duration::from_secs(20),
        || async {
            let s = saga(&ops, &id).await;
            (s["current_step"] == "AuthorizePayment" && s["attempts"].as_u64().unwrap_or(0) >= 1)
                .then_some(())
        },
    )
    .await;

    // both replicas are asked to cancel at once, and one to retry: one cancel wins
    let other = admin(replica.http, "ops-2", &AdminScope::Operator);
    let cancel = |client: HttpClient, reason: &'static str| {
        let path = format!("/admin/v1/sagas/{id}/cancel");
        async move {
            client
                .send_json(http::Method::POST, &path, &[], &json!({"reason": reason}))
                .await
                .expect("cancel")
        }
    };
    let (a, b) = tokio::join!(
        cancel(ops.clone(), "customer called"),
        cancel(other.clone(), "duplicate click")
    );
    let mut outcomes = vec![code(&a), code(&b)];
    outcomes.sort();
    assert_eq!(outcomes[0].0, 202, "{outcomes:?}");
    assert_eq!(
        outcomes[1],
        (409, "saga.compensating".into()),
        "{outcomes:?}"
    );
    let winner = if a.status == 202 { a.json() } else { b.json() };
    assert_eq!(winner["status"], "COMPENSATING", "{winner}");
    assert_eq!(winner["failure_reason"], "operator_cancelled");

    p.payment = Some(start_payment(&p.payments_db, &p.nats, &payment_grpc).await);
    let r = other
        .post_empty(&format!("/admin/v1/sagas/{id}/retry"))
        .await
        .expect("retry");
    assert!(
        r.status == 202 || code(&r) == (409, "saga.terminal".into()),
        "{}",
        r.text()
    );
    let order = p.wait_final("acme", &id, Duration::from_secs(30)).await;
    assert_eq!(
        (order["status"].as_str(), order["failure_reason"].as_str()),
        (Some("CANCELLED"), Some("operator_cancelled")),
        "{order}"
    );
    assert_invariants(&p, &initial).await;

    let detail = saga(&ops, &id).await;
    let history = detail["history"].as_array().expect("history");
    let requested: Vec<&Value> = history
        .iter()
        .filter(|e| e["state"] == "CANCEL_REQUESTED")
        .collect();
    assert_eq!(requested.len(), 1, "applied once: {detail}");
    assert!(
        ["customer called", "duplicate click"]
            .contains(&requested[0]["error"].as_str().unwrap_or("")),
        "{detail}"
    );
    let compensated: Vec<&str> = history
        .iter()
        .filter(|e| e["state"] == "COMPENSATED")
        .filter_map(|e| e["step"].as_str())
        .collect();
    assert_eq!(
        compensated.last(),
        Some(&"ReserveStock"),
        "reverse order, ReserveStock last: {detail}"
    );
    if let Some(void) = compensated.iter().position(|s| *s == "AuthorizePayment") {
        assert!(void < compensated.len() - 1, "{detail}");
    }
    let audit = ops.get("/admin/v1/audit").await.expect("audit").json();
    let cancels = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["action"] == "saga.cancel")
        .count();
    assert_eq!(cancels, 1, "{audit}");
    replica.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn every_admin_operation_is_documented_with_its_error_codes() {
    let p = Platform::start().await;
    for service in ["order", "inventory", "payment"] {
        let doc = HttpClient::new(format!("http://{}", p.http_of(service)))
            .get("/openapi.json")
            .await
            .expect("openapi")
            .json();
        let paths = doc["paths"].as_object().expect("paths");
        let admin: Vec<&String> = paths.keys().filter(|k| k.starts_with("/admin/")).collect();
        assert!(
            admin
                .iter()
                .any(|k| *k == "/admin/v1/dead-letters/{id}/redrive"),
            "{service}: {admin:?}"
        );
        assert!(admin.iter().any(|k| *k == "/admin/v1/audit"));
        assert_eq!(
            admin.iter().any(|k| *k == "/admin/v1/sagas"),
            service == "order",
            "{service}"
        );
        assert!(paths.keys().all(|k| !k.starts_with("/v1/admin")));
        for path in admin {
            for (method, op) in paths[path].as_object().expect("operations") {
                let codes = |status: &str| {
                    op["responses"][status]["x-error-codes"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                };
                assert!(
                    codes("401").contains(&json!("auth.missing_credentials")),
                    "{service} {method} {path}"
                );
                assert!(
                    codes("403").contains(&json!("auth.admin_scope_required")),
                    "{service} {method} {path}"
                );
                assert_eq!(
                    op["security"],
                    json!([{"bearer": []}]),
                    "{service} {method} {path}"
                );
            }
        }
        if service == "order" {
            let retry = &paths["/admin/v1/sagas/{id}/retry"]["post"]["responses"];
            assert!(
                retry["409"]["x-error-codes"]
                    .as_array()
                    .expect("codes")
                    .contains(&json!("saga.terminal"))
            );
            let cancel = &paths["/admin/v1/sagas/{id}/cancel"]["post"]["responses"];
            assert!(
                cancel["409"]["x-error-codes"]
                    .as_array()
                    .expect("codes")
                    .contains(&json!("saga.compensating"))
            );
        }
    }
    p.stop().await;
}
