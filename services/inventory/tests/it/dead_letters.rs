//! Dead letters through the admin API: a poison event (the database refuses the stock commit) is
//! dead-lettered, listed, redriven after the cause is fixed and handled exactly once; a discard is
//! audited; a tenant admin sees only its own tenant's.

use std::time::Duration;

use longship_tenant::{AdminScope, TenantId};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, eventually};

const CONSUMER: &str = "inventory-order-confirmed";

/// Makes every stock commit fail, as a broken constraint or a bad migration would.
async fn break_stock_commits(app: &TestApp) {
    for sql in [
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'stock ledger closed for audit'; END $$",
        "CREATE TRIGGER refuse_commit BEFORE UPDATE OF on_hand ON products
         FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
    ] {
        sqlx::query(sql)
            .execute(app.db.pool())
            .await
            .expect("install the fault");
    }
}

async fn fix_stock_commits(app: &TestApp) {
    sqlx::query("DROP TRIGGER refuse_commit ON products")
        .execute(app.db.pool())
        .await
        .expect("remove the fault");
}

fn operator(app: &TestApp) -> longship_testkit::HttpClient {
    app.as_admin("ops-ann", &AdminScope::Operator)
}

async fn dead_letters(client: &longship_testkit::HttpClient, query: &str) -> Value {
    client
        .get_ok(&format!("/admin/v1/dead-letters{query}"))
        .await
}

/// Reserves for a new order and publishes its `order_confirmed`, which the broken database
/// dead-letters; returns the order and the dead letter.
async fn poison(app: &TestApp) -> (Uuid, Value) {
    let order = Uuid::now_v7();
    app.reserve(order, "USD", &[("A", 2)])
        .await
        .expect("reserved");
    let event = Uuid::now_v7();
    app.publish_order_confirmed(event, &event.to_string(), order, "c-1", &[("A", 2, 250)])
        .await;
    let ops = operator(app);
    let letter = eventually(
        "the event dead-lettered",
        Duration::from_secs(30),
        || async {
            let page = dead_letters(&ops, "").await;
            page["items"].as_array().and_then(|items| {
                items
                    .iter()
                    .find(|d| d["event_id"] == event.to_string())
                    .cloned()
            })
        },
    )
    .await;
    (order, letter)
}

#[tokio::test]
async fn a_poison_event_is_listed_redriven_once_the_cause_is_fixed_and_handled_exactly_once() {
    let app = TestApp::spawn().await;
    app.given_product("A", 250, "USD", 10).await;
    break_stock_commits(&app).await;
    let (_order, letter) = poison(&app).await;
    assert_eq!(letter["consumer"], CONSUMER);
    assert_eq!(letter["tenant_id"], "acme");
    assert_eq!(letter["event_type"], "orders.v1.order_confirmed");
    assert_eq!(letter["deliveries"], 5, "{letter}");
    assert!(
        letter["error"]
            .as_str()
            .unwrap_or("")
            .contains("stock ledger closed"),
        "{letter}"
    );
    assert_eq!(
        letter["payload"]["type"], "orders.v1.order_confirmed",
        "{letter}"
    );
    let id = letter["id"].as_str().expect("id").to_owned();
    assert_eq!(app.stock("A").await, (10, 2), "nothing committed yet");

    // another tenant's admin neither sees nor redrives it
    let globex = app.as_admin(
        "gus",
        &AdminScope::Tenant(TenantId::parse("globex").expect("tenant")),
    );
    assert_eq!(
        dead_letters(&globex, "").await["items"],
        serde_json::json!([])
    );
    let r = globex
        .post_empty(&format!("/admin/v1/dead-letters/{id}/redrive"))
        .await
        .expect("redrive");
    assert_eq!(
        (r.status.as_u16(), r.json()["code"].as_str()),
        (404, Some("dead_letter.not_found"))
    );
    // its own tenant's admin sees it
    let acme = app.as_admin(
        "amy",
        &AdminScope::Tenant(TenantId::parse("acme").expect("tenant")),
    );
    assert_eq!(
        dead_letters(&acme, &format!("?consumer={CONSUMER}")).await["items"][0]["id"],
        id
    );

    // redriven before the fix: refused with the new error, kept
    let ops = operator(&app);
    let r = ops
        .post_empty(&format!("/admin/v1/dead-letters/{id}/redrive"))
        .await
        .expect("redrive");
    assert_eq!(
        (r.status.as_u16(), r.json()["code"].as_str()),
        (409, Some("dead_letter.redrive_failed")),
        "{}",
        r.text()
    );
    let kept = dead_letters(&ops, "").await;
    assert_eq!(kept["items"][0]["deliveries"], 6, "{kept}");
    assert_eq!(app.stock("A").await, (10, 2));

    // the cause fixed, two operators redrive it at once: it is handled once
    fix_stock_commits(&app).await;
    let path = format!("/admin/v1/dead-letters/{id}/redrive");
    let (a, b) = tokio::join!(ops.post_empty(&path), ops.post_empty(&path));
    let mut statuses = vec![a.expect("a").status.as_u16(), b.expect("b").status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![202, 404]);
    assert_eq!(app.stock("A").await, (8, 0), "committed exactly once");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
        .bind(CONSUMER)
        .fetch_one(app.db.pool())
        .await
        .expect("inbox");
    assert_eq!(inbox, 1);
    assert_eq!(dead_letters(&ops, "").await["items"], serde_json::json!([]));
    let r = ops.post_empty(&path).await.expect("redrive again");
    assert_eq!(r.status, 404, "a third redrive finds nothing: {}", r.text());
    assert_eq!(app.stock("A").await, (8, 0));

    let audit = ops.get("/admin/v1/audit").await.expect("audit").json();
    let redrives: Vec<&Value> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["action"] == "dead_letter.redrive")
        .collect();
    assert_eq!(redrives.len(), 1, "{audit}");
    assert_eq!(
        (
            redrives[0]["actor"].as_str(),
            redrives[0]["target"].as_str(),
            redrives[0]["tenant_id"].as_str()
        ),
        (Some("ops-ann"), Some(id.as_str()), Some("acme"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_discarded_dead_letter_is_gone_and_audited_with_its_reason() {
    let app = TestApp::spawn().await;
    app.given_product("A", 250, "USD", 10).await;
    break_stock_commits(&app).await;
    let (_order, letter) = poison(&app).await;
    let id = letter["id"].as_str().expect("id").to_owned();
    let ops = operator(&app);
    let path = format!("/admin/v1/dead-letters/{id}");
    let r = ops
        .send_json(
            http::Method::DELETE,
            &path,
            &[],
            &serde_json::json!({"reason": " "}),
        )
        .await
        .expect("discard");
    assert_eq!(
        (r.status.as_u16(), r.json()["code"].as_str()),
        (422, Some("request.invalid")),
        "{}",
        r.text()
    );
    let r = ops
        .send_json(
            http::Method::DELETE,
            &path,
            &[],
            &serde_json::json!({"reason": "order refunded by hand"}),
        )
        .await
        .expect("discard");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(dead_letters(&ops, "").await["items"], serde_json::json!([]));
    let r = ops
        .send_json(
            http::Method::DELETE,
            &path,
            &[],
            &serde_json::json!({"reason": "again"}),
        )
        .await
        .expect("discard");
    assert_eq!(r.status, 404);
    let audit = ops
        .get("/admin/v1/audit?limit=5")
        .await
        .expect("audit")
        .json();
    assert_eq!(
        audit["items"][0]["action"], "dead_letter.discard",
        "{audit}"
    );
    assert_eq!(audit["items"][0]["reason"], "order refunded by hand");
    assert_eq!(audit["items"][0]["actor"], "ops-ann");
    // a tenant admin of another tenant does not see acme's record
    let globex = app.as_admin(
        "gus",
        &AdminScope::Tenant(TenantId::parse("globex").expect("tenant")),
    );
    assert_eq!(
        globex.get("/admin/v1/audit").await.expect("audit").json()["items"],
        serde_json::json!([])
    );
    let outbox = ops.get("/admin/v1/outbox").await.expect("outbox").json();
    assert_eq!(outbox["consumers"][0]["name"], CONSUMER, "{outbox}");
    assert_eq!(outbox["consumers"][0]["dead_letters"], 0, "{outbox}");
    assert!(outbox["pending"].is_i64(), "{outbox}");
    let metrics = app
        .anonymous()
        .get("/metrics")
        .await
        .expect("metrics")
        .text();
    assert!(
        metrics.contains(&format!("dead_letters_waiting{{consumer=\"{CONSUMER}\"}}")),
        "dead_letters_waiting registered"
    );
    assert!(
        metrics.contains("admin_actions_total{action=\"dead_letter.discard\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}
