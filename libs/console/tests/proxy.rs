//! The console's routes on their own: the page's headers, its files, and the proxy against a real
//! HTTP peer on loopback (what it forwards, what it keeps back, and its answers when the peer is
//! down, slow or asked for something that is not an admin route).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::any;
use http_body_util::BodyExt;
use longship_console::{CONTENT_SECURITY_POLICY, ConsoleConfig};
use tower::ServiceExt;

/// A peer that answers every request with what it received (method, path, query, headers, body).
async fn echo_peer() -> SocketAddr {
    let app = Router::new().fallback(any(|request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let headers: serde_json::Map<String, serde_json::Value> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
            .collect();
        let seen = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        (
            http::StatusCode::CONFLICT,
            [
                ("content-type", "application/problem+json"),
                ("retry-after", "3"),
                ("set-cookie", "x=1"),
            ],
            seen.to_string(),
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A peer that accepts connections and never answers.
async fn silent_peer() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A loopback port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn console(peers: &str) -> Router {
    let mut config = ConsoleConfig::parse("order", Some(peers)).expect("peers");
    config.peer_timeout = Duration::from_millis(500);
    longship_console::routes(config)
}

async fn call(app: &Router, request: http::Request<Body>) -> (u16, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> http::Request<Body> {
    http::Request::get(uri).body(Body::empty()).unwrap()
}

fn code(body: &str) -> String {
    let problem: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    problem["code"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn the_page_and_its_files_carry_the_policy_and_revalidate_by_etag() {
    let app = console("").await;
    let (status, headers, page) = call(&app, get("/console")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let assets: Vec<&str> = page
        .split('"')
        .filter(|p| p.starts_with("/console/assets/"))
        .collect();
    assert!(assets.len() >= 3, "{assets:?}");
    for asset in assets {
        let (status, headers, body) = call(&app, get(asset)).await;
        assert_eq!(status, 200, "{asset}");
        assert!(!body.is_empty(), "{asset}");
        assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let again = http::Request::get(asset)
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = call(&app, again).await;
        assert_eq!((status, body.as_str()), (304, ""), "{asset}");
    }
    let (_, headers, _) = call(&app, get("/console/assets/console.js")).await;
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    let (status, _, body) = call(&app, get("/console/assets/../Cargo.toml")).await;
    assert_eq!(status, 404, "{body}");
    let (status, headers, body) = call(&app, get("/console/assets/secret.js")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (404, "console.asset_not_found")
    );
    assert_eq!(headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_service_list_names_the_peers_behind_the_proxy() {
    let app = console("inventory=http://127.0.0.1:8081").await;
    let (status, _, body) = call(&app, get("/console/services.json")).await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list,
        serde_json::json!({"services": [
            {"name": "order", "base": ""},
            {"name": "inventory", "base": "/console/api/inventory"}
        ]})
    );
}

#[tokio::test]
async fn the_proxy_forwards_admin_calls_with_the_token_and_nothing_else() {
    let peer = echo_peer().await;
    let app = console(&format!("inventory=http://{peer}")).await;
    let request = http::Request::post(
        "/console/api/inventory/admin/v1/dead-letters/0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d/redrive?x=1&y=a%20b",
    )
    .header("authorization", "Bearer abc")
    .header("cookie", "session=secret")
    .header("content-type", "application/json")
    .header("x-tenant-id", "acme")
    .body(Body::from("{\"reason\":\"r\"}"))
    .unwrap();
    let (status, headers, body) = call(&app, request).await;
    // the peer's answer comes back as it was: status, type, Retry-After; not its cookies
    assert_eq!(status, 409, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["retry-after"], "3");
    assert!(headers.get("set-cookie").is_none());
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(
        seen["path"],
        "/admin/v1/dead-letters/0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d/redrive"
    );
    assert_eq!(seen["query"], "x=1&y=a%20b");
    assert_eq!(seen["body"], "{\"reason\":\"r\"}");
    assert_eq!(seen["headers"]["authorization"], "Bearer abc");
    assert_eq!(seen["headers"]["content-type"], "application/json");
    // cookies and the tenant header stay behind: the token is the only authority passed on
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    assert!(seen["headers"].get("x-tenant-id").is_none(), "{seen}");
    let delete = http::Request::delete("/console/api/inventory/admin/v1/dead-letters/7")
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = call(&app, delete).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["method"],
        "DELETE"
    );
}

#[tokio::test]
async fn only_admin_routes_of_known_peers_are_forwarded() {
    let peer = echo_peer().await;
    let app = console(&format!("inventory=http://{peer}")).await;
    for (uri, expected) in [
        (
            "/console/api/ghost/admin/v1/outbox",
            "console.unknown_service",
        ),
        (
            "/console/api/order/admin/v1/outbox",
            "console.unknown_service",
        ),
        (
            "/console/api/inventory/v1/products/SKU-1",
            "console.not_proxied",
        ),
        ("/console/api/inventory/metrics", "console.not_proxied"),
        ("/console/api/inventory/admin/v1/a.b", "console.not_proxied"),
        (
            "/console/api/inventory/admin/v1/%2e%2e/v1/products",
            "console.not_proxied",
        ),
        (
            "/console/api/inventory/admin/v1//outbox",
            "console.not_proxied",
        ),
    ] {
        let (status, headers, body) = call(&app, get(uri)).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (404, expected),
            "{uri}: {body}"
        );
        assert_eq!(headers["content-type"], "application/problem+json", "{uri}");
    }
    let put = http::Request::put("/console/api/inventory/admin/v1/outbox")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, put).await.0, 405);
}

#[tokio::test]
async fn a_peer_down_is_503_and_a_silent_peer_is_504_problem_json() {
    let (down, silent) = (closed_port(), silent_peer().await);
    let app = console(&format!("inventory=http://{down},payment=http://{silent}")).await;
    let (status, headers, body) = call(&app, get("/console/api/inventory/admin/v1/outbox")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (503, "console.peer_unavailable"),
        "{body}"
    );
    assert_eq!(headers["content-type"], "application/problem+json");
    let started = std::time::Instant::now();
    let (status, _, body) = call(&app, get("/console/api/payment/admin/v1/outbox")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (504, "console.peer_timeout"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
