//! The CLI against real services (in-process, real Postgres and NATS): tables and `--json`, the
//! actions, and the exit codes scripts rely on.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

use std::time::Duration;

use longship_tenant::AdminScope;
use longship_testkit::{TEST_JWT_SECRET, TestApp, eventually};
use serde_json::Value;
use uuid::Uuid;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn operator_token() -> String {
    longship_tenant::issue_dev_admin_token(TEST_JWT_SECRET, "cli-ops", &AdminScope::Operator, 600)
        .expect("token")
}

/// Runs `longship-admin` with `args`, every service at `base` (the tests start one service).
async fn cli(base: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_longship-admin"));
    command
        .args([
            "--order-url",
            base,
            "--inventory-url",
            base,
            "--payment-url",
            base,
        ])
        .args(args)
        .env_remove("LONGSHIP_ADMIN_TOKEN");
    if let Some(token) = token {
        command.env("LONGSHIP_ADMIN_TOKEN", token);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the CLI finished")
        .expect("the CLI ran");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn sagas_are_listed_shown_cancelled_and_retried_with_exit_codes_for_scripts() {
    // participants unreachable: the saga stays in flight for the CLI to act on
    let app = TestApp::<order::Order>::builder()
        .env("INVENTORY_GRPC_URL", "http://127.0.0.1:9")
        .env("PAYMENT_GRPC_URL", "http://127.0.0.1:9")
        .spawn()
        .await;
    let base = app.http_base();
    let token = operator_token();
    let token = Some(token.as_str());
    let r = app
        .http
        .send_json(
            http::Method::POST,
            "/v1/orders",
            &[],
            &serde_json::json!({"customer_id": "c-1", "currency": "USD", "items": [{"sku": "SKU-1", "quantity": 1}]}),
        )
        .await
        .expect("place");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();

    let listed = cli(
        &base,
        token,
        &["--json", "sagas", "list", "--tenant", "acme"],
    )
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["items"][0]["id"], id.as_str());
    let table = cli(&base, token, &["sagas", "list"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("ID  "), "{}", table.stdout);
    assert!(
        table.stdout.contains(&id) && table.stdout.contains("RUNNING"),
        "{}",
        table.stdout
    );
    let shown = cli(&base, token, &["saga", "show", &id]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("ReserveStock") && shown.stdout.contains("ACTOR"),
        "{}",
        shown.stdout
    );

    let cancelled = cli(
        &base,
        token,
        &["saga", "cancel", &id, "--reason", "customer called"],
    )
    .await;
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert!(
        cancelled.stdout.contains("COMPENSATING"),
        "{}",
        cancelled.stdout
    );
    let again = cli(&base, token, &["saga", "cancel", &id, "--reason", "twice"]).await;
    assert_eq!(again.code, 4, "conflict: {}", again.stderr);
    assert!(
        again.stderr.contains("saga.compensating"),
        "{}",
        again.stderr
    );
    let retried = cli(&base, token, &["--json", "saga", "retry", &id]).await;
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert_eq!(retried.json()["id"], id.as_str());
    let missing = cli(
        &base,
        token,
        &["saga", "retry", &Uuid::now_v7().to_string()],
    )
    .await;
    assert_eq!(missing.code, 3, "not found: {}", missing.stderr);
    let audit = cli(&base, token, &["--json", "audit", "--service", "order"]).await;
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let audit = audit.json();
    let actions: Vec<&str> = audit["order"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["saga.retry", "saga.cancel"]);
    let outbox = cli(&base, token, &["outbox", "--service", "order"]).await;
    assert_eq!(outbox.code, 0, "{}", outbox.stderr);
    assert!(outbox.stdout.contains("(outbox)"), "{}", outbox.stdout);

    // exit codes for what goes wrong
    assert_eq!(
        cli(&base, None, &["sagas", "list"]).await.code,
        5,
        "no token"
    );
    let tenant_jwt =
        longship_tenant::issue_dev_token(TEST_JWT_SECRET, &app.tenant, 600).expect("token");
    assert_eq!(
        cli(&base, Some(&tenant_jwt), &["sagas", "list"]).await.code,
        5,
        "no admin scope"
    );
    assert_eq!(
        cli(&base, token, &["saga", "cancel", &id]).await.code,
        2,
        "no reason"
    );
    assert_eq!(cli(&base, token, &["frobnicate"]).await.code, 2);
    assert_eq!(
        cli("http://127.0.0.1:9", token, &["sagas", "list"])
            .await
            .code,
        6,
        "unreachable"
    );
    app.stop().await;
}

/// Publishes two messages that are not events: the consumer dead-letters them at once.
async fn publish_garbage(app: &TestApp<inventory::Inventory>) {
    let js = app.nats.jetstream();
    let naming = longship_messaging::Naming::new(app.nats.prefix());
    longship_messaging::ensure_stream(
        &js,
        &naming,
        longship_messaging::StreamSpec {
            name: "ORDERS",
            subject_root: "orders",
        },
        &longship_messaging::StreamSettings::single_node(),
    )
    .await
    .expect("stream");
    for body in ["not an event", "neither is this"] {
        js.publish(naming.subject("orders.v1.order_confirmed"), body.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_discarded_by_service() {
    let app = TestApp::<inventory::Inventory>::spawn().await;
    let base = app.http_base();
    let token = operator_token();
    let token = Some(token.as_str());
    publish_garbage(&app).await;
    let listed = eventually("two dead letters", Duration::from_secs(30), || async {
        let run = cli(
            &base,
            token,
            &["--json", "dead-letters", "list", "--service", "inventory"],
        )
        .await;
        (run.code == 0
            && run.json()["inventory"]["items"]
                .as_array()
                .is_some_and(|i| i.len() == 2))
        .then_some(run)
    })
    .await;
    let items = listed.json()["inventory"]["items"]
        .as_array()
        .expect("items")
        .clone();
    assert_eq!(items[0]["consumer"], "inventory-order-confirmed");
    let (first, second) = (
        items[0]["id"].as_str().expect("id").to_owned(),
        items[1]["id"].as_str().expect("id").to_owned(),
    );
    let table = cli(
        &base,
        token,
        &["dead-letters", "list", "--service", "inventory"],
    )
    .await;
    assert!(
        table.stdout.contains("inventory-order-confirmed") && table.stdout.contains(&first),
        "{}",
        table.stdout
    );

    // bytes that are not an event cannot be redriven: the redrive fails, the dead letter stays
    let failed = cli(
        &base,
        token,
        &["dead-letters", "redrive", &first, "--service", "inventory"],
    )
    .await;
    assert_eq!(failed.code, 4, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("dead_letter.redrive_failed"),
        "{}",
        failed.stderr
    );
    let discarded = cli(
        &base,
        token,
        &[
            "dead-letters",
            "discard",
            &first,
            "--reason",
            "garbage from a test",
        ],
    )
    .await;
    assert_eq!(discarded.code, 0, "{}", discarded.stderr);
    assert!(
        discarded.stdout.contains("discarded"),
        "{}",
        discarded.stdout
    );
    let gone = cli(
        &base,
        token,
        &["dead-letters", "discard", &first, "--reason", "again"],
    )
    .await;
    assert_eq!(gone.code, 3, "{}", gone.stderr);
    let json = cli(
        &base,
        token,
        &[
            "--json",
            "dead-letters",
            "discard",
            &second,
            "--reason",
            "garbage",
            "--service",
            "inventory",
        ],
    )
    .await;
    assert_eq!(json.json()["result"], "discarded", "{}", json.stdout);
    let audit = cli(&base, token, &["--json", "audit", "--service", "inventory"]).await;
    assert_eq!(
        audit.json()["inventory"]["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        audit.stdout
    );
    app.stop().await;
}
