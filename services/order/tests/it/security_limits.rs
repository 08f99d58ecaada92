//! Noisy neighbours: with per-tenant limits on, tenant A's flood is answered with 429
//! problem+json while tenant B's orders all go through, none refused, at a latency that holds.

use std::time::{Duration, Instant};

use futures::StreamExt;
use longship_testkit::HttpResponse;

use crate::harness::{Platform, order_body};

const NOISY: &str = "noisy";
const QUIET: &str = "quiet";
/// B sends fewer requests than the burst and paces them below the rate: it is never over its limit.
const QUIET_REQUESTS: usize = 20;

/// B's steady work: an order, then reading it and listing, paced well under B's own limit.
async fn quiet_tenant_round(p: &Platform, round: usize) -> (Vec<HttpResponse>, Vec<Duration>) {
    let client = p.orders(QUIET);
    let mut responses = Vec::new();
    let mut latencies = Vec::new();
    for i in 0..QUIET_REQUESTS {
        let started = Instant::now();
        let r = match i % 3 {
            0 => {
                p.place(
                    QUIET,
                    order_body("c-q", "USD", &[("SKU-Q", 1)]),
                    Some(&format!("quiet-{round}-{i}")),
                )
                .await
            }
            1 => client.get("/v1/orders?limit=5").await.expect("list"),
            _ => client.get("/v1/orders?status=PENDING").await.expect("list"),
        };
        latencies.push(started.elapsed());
        responses.push(r);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    (responses, latencies)
}

fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64) * 0.99).ceil() as usize;
    sorted[index.saturating_sub(1).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_flood_gets_429s_while_another_tenants_orders_all_succeed() {
    let p = Platform::start_with(&[
        ("TENANT_CONCURRENCY_LIMIT", "4"),
        ("TENANT_RATE_LIMIT_RPS", "40"),
        ("TENANT_RATE_LIMIT_BURST", "40"),
    ])
    .await;
    p.seed_product(QUIET, "SKU-Q", 100, "USD", 1_000).await;
    p.seed_account(QUIET, "c-q", 1_000_000, "USD").await;
    p.seed_product(NOISY, "SKU-N", 100, "USD", 1_000_000).await;
    p.seed_account(NOISY, "c-n", 1_000_000_000, "USD").await;

    // unloaded baseline of B (the bucket refills between the phases)
    let (baseline, baseline_latency) = quiet_tenant_round(&p, 0).await;
    assert!(baseline.iter().all(|r| r.status.is_success()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A floods: 600 requests, 32 at a time, half of them orders; B works as before meanwhile
    let noisy = p.orders(NOISY);
    let flood = futures::stream::iter(0..600)
        .map(|i| {
            let noisy = noisy.clone();
            async move {
                if i % 2 == 0 {
                    noisy
                        .send_json(
                            http::Method::POST,
                            "/v1/orders",
                            &[],
                            &order_body("c-n", "USD", &[("SKU-N", 1)]),
                        )
                        .await
                } else {
                    noisy.get("/v1/orders?limit=100").await
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let (flooded, (quiet, quiet_latency)) = tokio::join!(flood, quiet_tenant_round(&p, 1));

    let mut refused = 0;
    let total = flooded.len();
    for r in flooded {
        let r = r.expect("A's request answered");
        match r.status.as_u16() {
            200 | 202 => {}
            429 => {
                refused += 1;
                assert_eq!(
                    r.header("content-type").as_deref(),
                    Some("application/problem+json")
                );
                assert_eq!(r.json()["code"], "request.rate_limited", "{}", r.text());
                let retry_after: u64 = r
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .expect("Retry-After");
                assert!(retry_after >= 1);
            }
            other => panic!("A got {other}: {}", r.text()),
        }
    }
    assert!(refused > 0, "A's flood was never limited (of {total})");

    // B: every request succeeded, none was refused, and its latency held
    for r in &quiet {
        assert!(
            r.status.is_success(),
            "B got {} during A's flood: {}",
            r.status,
            r.text()
        );
    }
    let (before, during) = (p99(&baseline_latency), p99(&quiet_latency));
    // generous: a shared 2-core machine is noisy, but a starved tenant waits for seconds
    let bound = before * 20 + Duration::from_secs(2);
    assert!(
        during <= bound,
        "B's p99 went from {before:?} to {during:?} (bound {bound:?}) while A flooded"
    );
    // B's orders complete too
    let list = p
        .orders(QUIET)
        .get("/v1/orders?limit=100")
        .await
        .expect("list")
        .json();
    let ids: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2 * QUIET_REQUESTS.div_ceil(3));
    for id in ids {
        let order = p.wait_final(QUIET, &id, Duration::from_secs(60)).await;
        assert_eq!(order["status"], "CONFIRMED", "{order}");
    }
    p.stop().await;
}
