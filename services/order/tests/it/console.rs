//! The operations console on the order service: the page served with its policy from the binary,
//! its proxy reaching the real peers, and the page in a real browser with every other origin
//! blocked (`tests/browser/console_page.py`, screenshots in `target/console/`).

use longship_tenant::{AdminScope, issue_dev_admin_token};
use longship_testkit::{HttpClient, TEST_JWT_SECRET};

use crate::harness::Platform;

/// A development operator token (`just token --operator`) for the test services.
pub fn operator_token() -> String {
    issue_dev_admin_token(TEST_JWT_SECRET, "ops-alice", &AdminScope::Operator, 3600)
        .expect("operator token")
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let p = Platform::start().await;
    let order = HttpClient::new(format!("http://{}", p.order.http));
    let page = order.get("/console").await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-security-policy").as_deref(),
        Some(longship_console::CONTENT_SECURITY_POLICY)
    );
    assert!(
        page.header("content-security-policy")
            .unwrap_or_default()
            .starts_with("default-src 'self';")
    );
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    // the platform's middleware applies too (request ids), and the files are the page's own
    assert!(page.header("x-request-id").is_some());
    let html = page.text();
    for asset in ["/console/assets/console.js", "/console/assets/console.css"] {
        assert!(html.contains(asset), "{asset}");
        let file = order.get(asset).await.unwrap();
        assert_eq!(file.status, 200, "{asset}");
    }
    // the console lists the three services; the peers sit behind order's proxy
    let services = order.get("/console/services.json").await.unwrap().json();
    let names: Vec<_> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names, ["order", "inventory", "payment"]);
    p.stop().await;
}

#[tokio::test]
async fn the_proxy_reaches_each_peers_admin_api_with_the_callers_token_only() {
    let p = Platform::start().await;
    let order = HttpClient::new(format!("http://{}", p.order.http));
    let token = format!("Bearer {}", operator_token());
    for peer in ["inventory", "payment"] {
        let path = format!("/console/api/{peer}/admin/v1/outbox");
        // no token: the peer itself refuses (the proxy adds no authority), also with X-Tenant-Id
        let anonymous = order
            .send(http::Method::GET, &path, &[("x-tenant-id", "acme")], None)
            .await
            .unwrap();
        assert_eq!(anonymous.status, 401, "{peer}: {}", anonymous.text());
        let outbox = order
            .send(http::Method::GET, &path, &[("authorization", &token)], None)
            .await
            .unwrap();
        assert_eq!(outbox.status, 200, "{peer}: {}", outbox.text());
        assert!(
            outbox.json()["pending"].is_number(),
            "{peer}: {}",
            outbox.text()
        );
        // the peer's public API is not reachable through the console
        let public = order
            .send(
                http::Method::GET,
                &format!("/console/api/{peer}/v1/products/SKU-1"),
                &[("authorization", &token)],
                None,
            )
            .await
            .unwrap();
        assert_eq!(public.status, 404);
        assert_eq!(public.json()["code"], "console.not_proxied");
    }
    p.stop().await;
}

#[tokio::test]
async fn the_console_asks_for_a_token_and_keeps_it_in_the_tab_only() {
    let p = Platform::start().await;
    let origin = format!("http://{}", p.order.http);
    let out = longship_testkit::browser::run_script(
        "console_page.py",
        &["signin".to_owned(), origin, operator_token()],
    )
    .await;
    assert!(out.contains("ok: Forget token clears it"), "{out}");
    p.stop().await;
}
