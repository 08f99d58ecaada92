//! `/metrics` of every service: every family docs/operations.md lists is served with its type and
//! help text, counters exist at zero from start-up with their known label values, promtool finds
//! nothing to complain about, and junk requests cannot grow it.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{Platform, order_body};

const SERVICES: [&str; 3] = ["order", "inventory", "payment"];

/// `(name, type)` of every family in the metrics table of docs/operations.md.
fn documented_families() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(path).expect("docs/operations.md");
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `name` | type | labels | meaning |
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = *cells.get(2)?;
            let known = ["counter", "gauge", "histogram"].contains(&kind);
            (known && !name.contains('<')).then(|| (name.to_owned(), kind.to_owned()))
        })
        .collect()
}

async fn scrape(p: &Platform, service: &str) -> String {
    let client = longship_testkit::HttpClient::new(format!("http://{}", p.http_of(service)));
    let r = client.get("/metrics").await.expect("metrics");
    assert_eq!(r.status, 200);
    r.text()
}

/// The value of the series `series` (name with its labels, as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The families of `text` that have both a `# HELP` and a `# TYPE` line, with their type.
fn described(text: &str) -> Vec<(String, String)> {
    let helped: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP ")?.split(' ').next())
        .collect();
    text.lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("# TYPE ")?.split(' ');
            let (name, kind) = (words.next()?, words.next()?);
            helped
                .contains(name)
                .then(|| (name.to_owned(), kind.to_owned()))
        })
        .collect()
}

fn assert_promtool_clean(service: &str, text: &str) {
    if let Err(report) = longship_testkit::tools::promtool_check_metrics(text) {
        panic!("promtool check metrics on {service}'s /metrics:\n{report}");
    }
}

#[tokio::test]
async fn every_documented_family_is_served_with_help_and_counters_start_at_zero() {
    let p = Platform::start().await;
    let documented = documented_families();
    assert!(documented.len() >= 40, "{documented:?}");

    // before any order: counters and gauges exist, the known series at zero
    let start = scrape(&p, "order").await;
    let families = described(&start);
    for (name, kind) in documented.iter().filter(|(_, k)| k != "histogram") {
        assert!(
            families.iter().any(|(n, k)| n == name && k == kind),
            "{name} ({kind}) is not served with help text at start-up:\n{start}"
        );
    }
    let zero_at_start = [
        r#"consumer_dead_letters_total{consumer="inventory-order-confirmed"}"#,
        r#"consumer_dead_letters_total{consumer="payment-order-confirmed"}"#,
        r#"consumer_retries_total{consumer="payment-order-confirmed"}"#,
        r#"outbox_publish_failures_total"#,
        r#"saga_step_retries_total{step="ReserveStock"}"#,
        r#"saga_compensation_failures_total{step="AuthorizePayment"}"#,
        r#"saga_finished_total{saga="place_order",outcome="compensated",reason="timeout"}"#,
        r#"payment_declines_total{reason="insufficient_funds"}"#,
        r#"http_tenant_rejections_total{reason="rate"}"#,
        r#"http_server_requests_total{method="POST",route="/v1/orders",status="422"}"#,
        r#"http_server_requests_total{method="GET",route="/v1/orders/{id}",status="404"}"#,
        r#"grpc_server_handled_total{method="/longship.inventory.v1.InventoryService/Reserve",code="Unavailable"}"#,
        r#"grpc_server_handled_total{method="/longship.payment.v1.PaymentService/Authorize",code="Ok"}"#,
        r#"inventory_reservations_expired_total"#,
    ];
    for series in zero_at_start {
        assert_eq!(
            value(&start, series),
            Some(0.0),
            "{series} at start-up:\n{start}"
        );
    }
    assert_eq!(value(&start, "nats_connected"), Some(1.0));
    assert!(value(&start, "db_pool_max{pool=\"requests\"}").unwrap_or(0.0) >= 1.0);
    assert!(value(&start, "db_pool_max{pool=\"workers\"}").unwrap_or(0.0) >= 1.0);
    assert!(value(&start, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0);
    assert!(
        start.contains("build_info{service=\"order\",version=\""),
        "{start}"
    );
    for service in SERVICES {
        assert_promtool_clean(service, &scrape(&p, service).await);
    }

    // after an order went through every hop, every family, histograms too
    p.seed_product("acme", "SKU-M", 250, "USD", 10).await;
    p.seed_account("acme", "c-m", 10_000, "USD").await;
    let r = p
        .place("acme", order_body("c-m", "USD", &[("SKU-M", 2)]), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.wait_final("acme", &id, Duration::from_secs(15)).await["status"],
        "CONFIRMED"
    );
    let handled = r#"consumer_handled_total{consumer="payment-order-confirmed"}"#;
    let mut text = String::new();
    for _ in 0..200 {
        text = scrape(&p, "order").await;
        if value(&text, handled).unwrap_or(0.0) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value(&text, handled), Some(1.0), "{text}");
    let families = described(&text);
    for (name, kind) in &documented {
        assert!(
            families.iter().any(|(n, k)| n == name && k == kind),
            "{name} ({kind}) is not served with help text:\n{text}"
        );
    }
    assert!(
        text.contains("consumer_batch_size_bucket{consumer=\"payment-order-confirmed\",le=\"1\"}")
    );
    assert_eq!(value(&text, "orders_placed_total"), Some(1.0));
    for service in SERVICES {
        assert_promtool_clean(service, &scrape(&p, service).await);
    }
    p.stop().await;
}

/// The series of `text` (name and labels of every sample), without values.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
        .collect()
}

/// A made-up HTTP method (`XQZ...`) or path segment, different each time.
fn junk(i: usize, upper: bool) -> String {
    let letters: String = format!("{:x}", i * 2_654_435_761 + 12_345)
        .chars()
        .map(|c| {
            let offset = c.to_digit(16).unwrap_or(0) as u8;
            (if upper { b'A' } else { b'a' } + offset) as char
        })
        .collect();
    format!("X{letters}")
}

/// One junk request of kind `i % 6`: invented methods on unknown and known routes, random paths
/// (also under /docs), unknown gRPC services, and unknown methods of a known gRPC service with
/// and without a tenant.
async fn send_junk(
    i: usize,
    http: &longship_testkit::HttpClient,
    grpc: &tonic::transport::Channel,
) {
    match i % 6 {
        0 => {
            let method = http::Method::from_bytes(junk(i, true).as_bytes()).expect("method");
            let _ = http
                .send(method, &format!("/{}", junk(i, false)), &[], None)
                .await;
        }
        1 => {
            let method = http::Method::from_bytes(junk(i, true).as_bytes()).expect("method");
            let _ = http.send(method, "/v1/orders", &[], None).await;
        }
        2 => {
            let _ = http.get(&format!("/v1/{}/{}", junk(i, false), i)).await;
        }
        3 => {
            let _ = http.get(&format!("/docs/{}.js", junk(i, false))).await;
        }
        4 | 5 => {
            let path = if i % 6 == 4 {
                format!(
                    "/{}.v1.{}/{}",
                    junk(i, false),
                    junk(i + 1, true),
                    junk(i + 2, true)
                )
            } else {
                format!("/longship.order.v1.OrderService/{}", junk(i, true))
            };
            let mut request = tonic::Request::new(());
            if i % 12 == 5 {
                request.metadata_mut().insert(
                    "x-tenant-id",
                    tonic::metadata::MetadataValue::from_static("acme"),
                );
            }
            let mut client = tonic::client::Grpc::new(grpc.clone());
            if client.ready().await.is_ok() {
                let codec = tonic_prost::ProstCodec::<(), ()>::default();
                let path = http::uri::PathAndQuery::try_from(path).expect("path");
                let _ = client.unary(request, path, codec).await;
            }
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn ten_thousand_junk_requests_add_no_series_to_metrics() {
    let p = Platform::start().await;
    let http = p.orders("acme");
    let grpc = longship_testkit::TestPki::shared().channel(p.order.grpc, None, "order");
    // one of each kind first (their series are bounded, not absent), and one scrape, whose own
    // request shows in the next one
    for i in 0..24 {
        send_junk(i, &http, &grpc).await;
    }
    let _ = scrape(&p, "order").await;
    let before = scrape(&p, "order").await;

    let started = std::time::Instant::now();
    let requests: Vec<usize> = (24..10_024).collect();
    futures::future::join_all(requests.chunks(250).map(|chunk| {
        let (http, grpc) = (http.clone(), grpc.clone());
        async move {
            for i in chunk {
                send_junk(*i, &http, &grpc).await;
            }
        }
    }))
    .await;
    let after = scrape(&p, "order").await;

    let (was, is) = (series(&before), series(&after));
    let added: Vec<_> = is.difference(&was).collect();
    let gone: Vec<_> = was.difference(&is).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "10,000 junk requests changed the series: added {added:?}, gone {gone:?}"
    );
    // the same series, so the same size but for the digits of the values that grew
    let growth = after.len() as f64 / before.len() as f64;
    assert!(
        (0.98..1.02).contains(&growth),
        "/metrics went from {} to {} bytes",
        before.len(),
        after.len()
    );
    let other = r#"http_server_requests_total{method="_OTHER",route="unmatched",status="404"}"#;
    assert!(value(&after, other).unwrap_or(0.0) >= 1600.0, "{after}");
    let grpc_other = r#"grpc_server_handled_total{method="_OTHER",code="Unimplemented"}"#;
    assert!(
        value(&after, grpc_other).unwrap_or(0.0) >= 1600.0,
        "{after}"
    );
    eprintln!(
        "10,000 junk requests in {:?}; /metrics {} -> {} bytes, {} series",
        started.elapsed(),
        before.len(),
        after.len(),
        is.len()
    );
    p.stop().await;
}
