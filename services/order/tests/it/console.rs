//! The operations console on the order service: the page served with its policy from the binary,
//! its proxy reaching the real peers, and the page in a real browser with every other origin
//! blocked (`tests/browser/console_page.py`, screenshots in `target/console/`).

use std::time::Duration;

use longship_tenant::{AdminScope, issue_dev_admin_token};
use longship_testkit::{HttpClient, TEST_JWT_SECRET};
use serde_json::Value;

use crate::harness::{Platform, order_body};

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

/// An operator's client of a service's admin API.
fn operator_of(addr: std::net::SocketAddr) -> HttpClient {
    HttpClient::new(format!("http://{addr}"))
        .with_header("authorization", &format!("Bearer {}", operator_token()))
}

/// Polls `check` every 250 ms until it gives a value (fails after `within`).
async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Makes every stock commit of inventory fail, as a broken constraint would (the poison).
async fn break_stock_commits(p: &Platform, broken: bool) {
    let statements: &[&str] = if broken {
        &[
            "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'stock ledger closed for audit'; END $$",
            "CREATE TRIGGER refuse_commit BEFORE UPDATE OF on_hand ON products
             FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
        ]
    } else {
        &["DROP TRIGGER refuse_commit ON products"]
    };
    for sql in statements {
        sqlx::query(*sql)
            .execute(p.inventory_db.pool())
            .await
            .expect("the fault");
    }
}

/// Places an order of `quantity` SKU-1 for tenant acme; returns its id (also its saga's).
async fn place(p: &Platform, quantity: u32) -> String {
    let r = p
        .place(
            "acme",
            order_body("c-1", "USD", &[("SKU-1", quantity)]),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

/// Waits until the saga has failed 5 times or more (stuck) and its next attempt is at least
/// `quiet` away, so what happens next is the operator's doing, not the engine's own retry.
async fn until_stuck_and_quiet(ops: &HttpClient, id: &str, quiet: Duration) -> Value {
    until(
        &format!("saga {id} stuck"),
        Duration::from_secs(90),
        || async {
            let saga = ops.get(&format!("/admin/v1/sagas/{id}")).await.ok()?.json();
            let next =
                chrono::DateTime::parse_from_rfc3339(saga["next_attempt_at"].as_str()?).ok()?;
            let ahead = next
                .signed_duration_since(chrono::Utc::now())
                .to_std()
                .ok()?;
            (saga["attempts"].as_u64()? >= 5 && ahead >= quiet).then_some(saga)
        },
    )
    .await
}

/// The console in a real browser against the real services: a saga in flight cancelled with a
/// reason and compensated; a stuck saga (payment unreachable) found, its timeline opened, retried
/// once payment is back and finished; a dead letter (a poison event) redriven once the cause is
/// fixed and handled exactly once; nothing requested from another origin, no console error.
#[tokio::test]
async fn an_operator_fixes_a_stuck_saga_and_a_dead_letter_in_the_console() {
    // slow retries, so the engine does not retry by itself while the operator acts
    let p = Platform::start_with_payment_link(&[
        ("SAGA_DEADLINE_SECS", "600"),
        ("SAGA_RETRY_BASE_MS", "400"),
        ("SAGA_RETRY_MAX_MS", "600000"),
    ])
    .await;
    p.seed_product("acme", "SKU-1", 500, "USD", 100).await;
    p.seed_account("acme", "c-1", 1_000_000, "USD").await;
    let (ops, stock_ops) = (operator_of(p.order.http), operator_of(p.inventory.http));

    // a poison event: the confirmation of order C cannot be committed by inventory
    break_stock_commits(&p, true).await;
    let poisoned = place(&p, 1).await;
    let order = p
        .wait_final("acme", &poisoned, Duration::from_secs(30))
        .await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let letter = until("the dead letter", Duration::from_secs(60), || async {
        let page = stock_ops.get("/admin/v1/dead-letters").await.ok()?.json();
        page["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(
        letter["event_type"], "orders.v1.order_confirmed",
        "{letter}"
    );
    break_stock_commits(&p, false).await;

    // payment unreachable for the saga: A and B keep failing to authorize
    let link = p.payment_link.as_ref().expect("payment link");
    link.set_mode(longship_testkit::proxy::Mode::Refuse);
    let (stuck, cancelled) = (place(&p, 2).await, place(&p, 3).await);
    let origin = format!("http://{}", p.order.http);
    let token = operator_token();
    // B is cancelled while payment is still unreachable: it compensates as far as it can
    until("B in flight", Duration::from_secs(30), || async {
        let saga = ops
            .get(&format!("/admin/v1/sagas/{cancelled}"))
            .await
            .ok()?
            .json();
        (saga["status"] == "RUNNING" && saga["attempts"].as_u64()? >= 1).then_some(())
    })
    .await;
    let out = longship_testkit::browser::run_script(
        "console_page.py",
        &[
            "cancel".into(),
            origin.clone(),
            token.clone(),
            cancelled.clone(),
        ],
    )
    .await;
    assert!(out.contains("ok: cancelled with a reason"), "{out}");

    // A is stuck, and its next attempt far enough away that what finishes it is the retry
    until_stuck_and_quiet(&ops, &stuck, Duration::from_secs(18)).await;
    link.set_mode(longship_testkit::proxy::Mode::Pass);
    let dead_letter = letter["id"].as_str().expect("id").to_owned();
    let out = longship_testkit::browser::run_script(
        "console_page.py",
        &[
            "operate".into(),
            origin,
            token,
            stuck.clone(),
            cancelled.clone(),
            "inventory".into(),
            dead_letter,
        ],
    )
    .await;
    assert!(
        out.contains("ok: audit log of inventory shows the redrive"),
        "{out}"
    );

    let a = p.wait_final("acme", &stuck, Duration::from_secs(30)).await;
    assert_eq!(a["status"], "CONFIRMED", "{a}");
    let b = p
        .wait_final("acme", &cancelled, Duration::from_secs(30))
        .await;
    assert_eq!(
        (b["status"].as_str(), b["failure_reason"].as_str()),
        (Some("CANCELLED"), Some("operator_cancelled")),
        "{b}"
    );
    // C's confirmation (redriven) and A's were each committed once; B's reservation released
    until("stock settled", Duration::from_secs(30), || async {
        let product = p.product("acme", "SKU-1").await;
        (product["on_hand"] == 97 && product["reserved"] == 0).then_some(())
    })
    .await;
    let page = stock_ops
        .get("/admin/v1/dead-letters")
        .await
        .expect("list")
        .json();
    assert_eq!(page["items"], serde_json::json!([]), "{page}");
    p.stop().await;
}
