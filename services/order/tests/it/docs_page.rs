//! Every service's API docs page renders in a real browser with every other origin blocked and
//! lists the service's operations (`tests/browser/docs_page.py`).

use crate::harness::Platform;

/// The operations each service's page must list (ARCHITECTURE.md section 5).
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "order",
        &["POST /v1/orders", "GET /v1/orders", "GET /v1/orders/{id}"],
    ),
    (
        "inventory",
        &["PUT /v1/products/{sku}", "GET /v1/products/{sku}"],
    ),
    (
        "payment",
        &[
            "PUT /v1/accounts/{customer_id}",
            "GET /v1/accounts/{customer_id}",
            "GET /v1/payments",
        ],
    ),
];

#[tokio::test]
async fn every_service_docs_page_renders_offline_and_lists_its_operations() {
    let p = Platform::start().await;
    for (service, operations) in EXPECTED {
        let origin = format!("http://{}", p.http_of(service));
        let mut args = vec![origin, (*service).to_owned()];
        args.extend(operations.iter().map(|o| (*o).to_owned()));
        let listed = longship_testkit::browser::run_script("docs_page.py", &args).await;
        for operation in *operations {
            assert!(
                listed.lines().any(|l| l == *operation),
                "{service}: {operation} not reported by the page script:\n{listed}"
            );
        }
    }
    p.stop().await;
}
