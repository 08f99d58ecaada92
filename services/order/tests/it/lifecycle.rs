//! The process lifecycle: SIGTERM to the order binary with sagas in flight drains within
//! `SHUTDOWN_TIMEOUT_SECS` and gives every claimed saga back at once (not when its lease runs out).

use std::process::Stdio;
use std::time::{Duration, Instant};

use inventory::Inventory;
use longship_testkit::{TestApp, TestDb, TestNats, eventually};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::TcpListener;

use crate::harness::order_body;

/// A port that accepts connections and never answers: calls to it hang (until the step timeout).
async fn silent_peer() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn sigterm_with_sagas_in_flight_drains_in_time_and_releases_their_claims() {
    let nats = TestNats::new().await;
    let inventory = TestApp::<Inventory>::builder()
        .nats(nats.clone())
        .spawn()
        .await;
    let seeded = inventory
        .http
        .send_json(http::Method::PUT, "/v1/products/SKU-1", &[], &serde_json::json!({"name": "W", "price_cents": 100, "currency": "USD", "on_hand": 100}))
        .await
        .expect("seed");
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    let (payment, _silent) = silent_peer().await;
    let orders_db = TestDb::new().await;
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_order"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", orders_db.url())
        .env("NATS_URL", nats.url())
        .env("NATS_PREFIX", nats.prefix())
        .env("NATS_STREAM_REPLICAS", "1")
        .env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("AUTH_ALLOW_TENANT_HEADER", "true")
        .envs(longship_testkit::TestPki::shared().env("order"))
        .env("INVENTORY_GRPC_URL", inventory.grpc_url())
        .env("PAYMENT_GRPC_URL", format!("http://{payment}"))
        // calls to payment hang far longer than the drain may take; leases outlast the test
        .env("SAGA_STEP_TIMEOUT_MS", "60000")
        .env("SAGA_LEASE_SECS", "600")
        .env("SHUTDOWN_TIMEOUT_SECS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the order binary");
    let orders = longship_testkit::HttpClient::new(format!("http://127.0.0.1:{http_port}"))
        .with_header("x-tenant-id", "acme");
    eventually(
        "the order service ready",
        Duration::from_secs(60),
        || async { orders.get("/readyz").await.ok().filter(|r| r.status == 200) },
    )
    .await;
    for _ in 0..5 {
        let placed = orders
            .send_json(
                http::Method::POST,
                "/v1/orders",
                &[],
                &order_body("c-1", "USD", &[("SKU-1", 1)]),
            )
            .await
            .expect("place");
        assert_eq!(placed.status, 202, "{}", placed.text());
    }
    // every saga reserved its stock and is now inside its (hanging) AuthorizePayment call
    eventually("five sagas calling payment", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM saga WHERE current_step = 'AuthorizePayment' AND locked_by IS NOT NULL",
        )
        .fetch_one(orders_db.pool())
        .await
        .ok()?;
        (n == 5).then_some(())
    })
    .await;

    let pid = Pid::from_raw(child.id().expect("pid") as i32);
    let signalled = Instant::now();
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the process exits")
        .expect("exit status");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took <= Duration::from_secs(6),
        "drained in {took:?}, over SHUTDOWN_TIMEOUT_SECS=5"
    );
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saga WHERE status IN ('RUNNING', 'COMPENSATING') AND locked_by IS NOT NULL",
    )
    .fetch_one(orders_db.pool())
    .await
    .expect("count");
    assert_eq!(held, 0, "claims left for the lease (600 s) to expire");
    inventory.stop().await;
    orders_db.drop_db().await;
}

/// Stream replicas the NATS server cannot hold (production's default of 3, against the single
/// test server) stop the service at start-up with a message naming the setting, instead of a
/// service that waits not-ready for ever.
#[tokio::test]
async fn stream_replicas_a_single_nats_server_cannot_hold_stop_start_up_naming_the_setting() {
    let nats = TestNats::new().await;
    let db = TestDb::new().await;
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_order"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("NATS_URL", nats.url())
        .env("NATS_PREFIX", nats.prefix())
        // NATS_STREAM_REPLICAS unset: production's 3
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("AUTH_ALLOW_TENANT_HEADER", "true")
        .env("GRPC_MTLS", "off")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect(
            "the order service stops by itself within 60 s (this test needs a single, \
             non-clustered NATS server at TEST_NATS_URL)",
        )
        .expect("run the order binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NATS_STREAM_REPLICAS") && stderr.contains("not clustered"),
        "{stderr}"
    );
    nats.cleanup().await;
    db.drop_db().await;
}
