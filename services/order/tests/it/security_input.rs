//! Hostile input: injection-shaped strings in every text field of the three HTTP APIs are
//! stored and returned verbatim or refused with a 4xx problem, never a 500, and leave the databases
//! as they were.

use std::time::Duration;

use longship_testkit::HttpResponse;
use serde_json::{Value, json};

use crate::harness::{Platform, order_body};

const T: &str = "hostile";

/// Strings that have broken real systems: SQL, NUL bytes (raw and percent-encoded), right-to-left
/// overrides, markup, format strings, path traversal, header injection, and very long text.
fn hostile_strings() -> Vec<String> {
    vec![
        "'; DROP TABLE orders; --".into(),
        "Robert'); DELETE FROM accounts WHERE ('1'='1".into(),
        "\" OR \"\"=\"".into(),
        "%00".into(),
        "a\u{0}b".into(),
        "\u{202E}gnp.exe".into(),
        "<script>alert(1)</script>".into(),
        "${jndi:ldap://127.0.0.1/x}".into(),
        "%s%s%n{}{0}".into(),
        "../../../etc/passwd".into(),
        "line\r\nSet-Cookie: x=1".into(),
        "\\u0000\\\\".into(),
        "😀 ünïcödé ﷽".into(),
        " ".into(),
        "x".repeat(10_000),
    ]
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn short(s: &str) -> String {
    s.chars().take(40).collect::<String>()
}

/// The answer is a 2xx, or a 4xx problem document; never a 5xx, never a non-problem error.
fn harmless(what: &str, input: &str, r: &HttpResponse) {
    assert!(
        r.status.is_success() || r.status.is_client_error(),
        "{what} with {:?}: {} {}",
        short(input),
        r.status,
        r.text()
    );
    if r.status.is_client_error() {
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{what} with {:?}",
            short(input)
        );
    }
}

/// A write was refused (4xx) or stored: then `field` of `stored` is exactly `input`.
fn verbatim_or_refused(what: &str, input: &str, r: &HttpResponse, field: &str, stored: &Value) {
    harmless(what, input, r);
    if r.status.is_success() {
        assert_eq!(
            stored[field].as_str(),
            Some(input),
            "{what}: stored {field} differs from the input {:?}",
            short(input)
        );
    } else {
        assert!(
            matches!(r.status.as_u16(), 400 | 404 | 413 | 422),
            "{what} with {:?}: {}",
            short(input),
            r.status
        );
    }
}

#[tokio::test]
async fn injection_shaped_strings_in_every_text_field_round_trip_or_are_refused() {
    let p = Platform::start().await;
    p.seed_product(T, "SKU-1", 100, "USD", 1_000).await;
    p.seed_account(T, "c-1", 1_000_000, "USD").await;
    for s in hostile_strings() {
        hostile_order_fields(&p, &s).await;
        hostile_product_fields(&p, &s).await;
        hostile_account_fields(&p, &s).await;
    }
    hostile_raw_bodies(&p).await;
    // nothing was dropped or deleted: the tables are there and an ordinary order still confirms
    let r = p
        .place(
            T,
            order_body("c-1", "USD", &[("SKU-1", 2)]),
            Some("after-the-storm"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let order = p.wait_final(T, &id, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(p.account(T, "c-1").await["currency"], "USD");
    p.stop().await;
}

/// The order API: customer_id, currency and sku in the body, the Idempotency-Key header, the id
/// and query parameters of reads.
async fn hostile_order_fields(p: &Platform, s: &str) {
    let orders = p.orders(T);
    // customer_id, currency, sku in the body; the Idempotency-Key header
    for (field, body) in [
        ("customer_id", order_body(s, "USD", &[("SKU-1", 1)])),
        ("currency", order_body("c-1", s, &[("SKU-1", 1)])),
        ("items[0].sku", order_body("c-1", "USD", &[(s, 1)])),
    ] {
        let r = p.place(T, body, None).await;
        let stored = if r.status.is_success() {
            let id = r.json()["id"].as_str().expect("id").to_owned();
            orders
                .get(&format!("/v1/orders/{id}"))
                .await
                .expect("read back")
                .json()
        } else {
            Value::Null
        };
        let value = match field {
            "items[0].sku" => stored["items"][0].clone(),
            _ => stored.clone(),
        };
        let key = field.trim_start_matches("items[0].");
        verbatim_or_refused(&format!("POST /v1/orders {field}"), s, &r, key, &value);
    }
    if http::HeaderValue::from_str(s).is_ok() {
        let r = p
            .place(T, order_body("c-1", "USD", &[("SKU-1", 1)]), Some(s))
            .await;
        harmless("POST /v1/orders Idempotency-Key", s, &r);
        if r.status.is_success() {
            // a replay with the same key answers the same order
            let again = p
                .place(T, order_body("c-1", "USD", &[("SKU-1", 1)]), Some(s))
                .await;
            assert_eq!(
                again.json()["id"],
                r.json()["id"],
                "replay of {:?}",
                short(s)
            );
        }
    }
    let e = encode(s);
    for path in [
        format!("/v1/orders/{e}"),
        format!("/v1/orders?status={e}"),
        format!("/v1/orders?cursor={e}"),
        format!("/v1/orders?limit={e}"),
    ] {
        let r = orders.get(&path).await.expect("get");
        harmless(&format!("GET {}", short(&path)), s, &r);
    }
}

/// The inventory API: the sku in the path, the name and currency in the body.
async fn hostile_product_fields(p: &Platform, s: &str) {
    let inventory = p.inventory(T);
    let e = encode(s);
    let put_product = |sku: String, name: String, currency: String| {
        let inventory = inventory.clone();
        async move {
            inventory
                .send_json(
                    http::Method::PUT,
                    &format!("/v1/products/{}", encode(&sku)),
                    &[],
                    &json!({"name": name, "price_cents": 100, "currency": currency, "on_hand": 5}),
                )
                .await
                .expect("put product")
        }
    };
    let r = put_product(s.to_owned(), "Widget".into(), "USD".into()).await;
    let stored = inventory
        .get(&format!("/v1/products/{e}"))
        .await
        .expect("get product");
    harmless("GET /v1/products/{sku}", s, &stored);
    verbatim_or_refused("PUT /v1/products/{sku}", s, &r, "sku", &stored.json());
    let r = put_product("SKU-NAME".into(), s.to_owned(), "USD".into()).await;
    let stored = p.product(T, "SKU-NAME").await;
    verbatim_or_refused("PUT /v1/products name", s, &r, "name", &stored);
    let r = put_product("SKU-CUR".into(), "Widget".into(), s.to_owned()).await;
    verbatim_or_refused("PUT /v1/products currency", s, &r, "currency", &Value::Null);
}

/// The payment API: the customer id in the path, the currency in the body, the order_id query.
async fn hostile_account_fields(p: &Platform, s: &str) {
    let payments = p.payments(T);
    let e = encode(s);
    let r = payments
        .send_json(
            http::Method::PUT,
            &format!("/v1/accounts/{e}"),
            &[],
            &json!({"balance_cents": 10, "currency": "USD"}),
        )
        .await
        .expect("put account");
    let stored = payments
        .get(&format!("/v1/accounts/{e}"))
        .await
        .expect("get account");
    harmless("GET /v1/accounts/{customer_id}", s, &stored);
    verbatim_or_refused(
        "PUT /v1/accounts/{customer_id}",
        s,
        &r,
        "customer_id",
        &stored.json(),
    );
    let r = payments
        .send_json(
            http::Method::PUT,
            "/v1/accounts/c-cur",
            &[],
            &json!({"balance_cents": 10, "currency": s}),
        )
        .await
        .expect("put account");
    verbatim_or_refused("PUT /v1/accounts currency", s, &r, "currency", &Value::Null);
    let r = payments
        .get(&format!("/v1/payments?order_id={e}"))
        .await
        .expect("payments");
    harmless("GET /v1/payments order_id", s, &r);
}

/// A body just over the limit is 413, a body of hostile JSON is 400, neither a 500.
async fn hostile_raw_bodies(p: &Platform) {
    let (orders, inventory, payments) = (p.orders(T), p.inventory(T), p.payments(T));
    let huge =
        json!({"name": "x".repeat(70 * 1024), "price_cents": 1, "currency": "USD", "on_hand": 1});
    let r = inventory
        .send_json(http::Method::PUT, "/v1/products/SKU-BIG", &[], &huge)
        .await
        .expect("put");
    assert_eq!(r.status, 413, "{}", r.text());
    for raw in [
        &b"{\"name\": \"\\ud800\"}"[..],
        b"{\"customer_id\": 1e999999}",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]",
        b"\xff\xfe\x00",
        b"{\"customer_id\":\"c\",\"currency\":\"USD\",\"items\":[{\"sku\":\"S\",\"quantity\":-1}]}",
        b"{\"customer_id\":\"c\",\"currency\":\"USD\",\"items\":[{\"sku\":\"S\",\"quantity\":4294967296}]}",
    ] {
        for (client, path, method) in [
            (&orders, "/v1/orders", http::Method::POST),
            (&inventory, "/v1/products/SKU-RAW", http::Method::PUT),
            (&payments, "/v1/accounts/c-raw", http::Method::PUT),
        ] {
            let r = client
                .send(
                    method.clone(),
                    path,
                    &[("content-type", "application/json")],
                    Some(bytes::Bytes::copy_from_slice(raw)),
                )
                .await
                .expect("send");
            harmless(
                &format!("{method} {path} raw body"),
                &String::from_utf8_lossy(raw),
                &r,
            );
        }
    }
}
