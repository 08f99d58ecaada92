//! After healing: waiting for quiescence, then every invariant of ARCHITECTURE.md section 8,
//! directly in the databases and in the streams (`longship_testkit::invariants` plus the checks
//! below) and again through the HTTP APIs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use longship_testkit::HttpClient;
use longship_testkit::invariants::{self, Databases, Initial};
use sqlx::PgPool;
use uuid::Uuid;

use crate::load::Outcome;
use crate::plan::{Plan, PlannedOrder};

mod stores;

pub use stores::check_stores;

/// The durable consumers of `order_confirmed` (consumer name in the inbox and in JetStream).
pub const CONSUMERS: [(&str, &str); 2] = [
    ("inventory", "inventory-order-confirmed"),
    ("payments", "payment-order-confirmed"),
];

/// The three databases, through superuser pools straight to the server.
#[derive(Debug, Clone)]
pub struct Pools {
    /// orders.
    pub orders: PgPool,
    /// inventory.
    pub inventory: PgPool,
    /// payments.
    pub payments: PgPool,
}

impl Pools {
    fn databases(&self) -> Databases<'_> {
        Databases {
            orders: &self.orders,
            inventory: &self.inventory,
            payments: &self.payments,
        }
    }

    fn by_name(&self) -> [(&'static str, &PgPool); 3] {
        [
            ("orders", &self.orders),
            ("inventory", &self.inventory),
            ("payments", &self.payments),
        ]
    }
}

/// The initial stock and balances of the plan.
pub fn initial(plan: &Plan) -> Initial {
    let mut initial = Initial::default();
    for t in &plan.tenants {
        for p in &t.products {
            initial
                .stock
                .insert((t.id.clone(), p.sku.clone()), p.on_hand);
        }
        for c in &t.customers {
            initial
                .balances
                .insert((t.id.clone(), c.id.clone()), c.balance_cents);
        }
    }
    initial
}

/// Pending and unacknowledged deliveries of the `order_confirmed` consumers (None: unreachable).
async fn consumer_backlog(
    js: &async_nats::jetstream::Context,
) -> Option<Vec<(String, u64, usize)>> {
    let stream = js.get_stream("ORDERS").await.ok()?;
    let mut out = Vec::new();
    for (_, consumer) in CONSUMERS {
        let info = stream.consumer_info(consumer).await.ok()?;
        out.push((consumer.to_owned(), info.num_pending, info.num_ack_pending));
    }
    Some(out)
}

/// Waits (bounded) until the testkit's checks pass and both consumers have nothing pending or
/// unacknowledged. Returns the time it took, or the violations still standing at the bound.
pub async fn wait_quiescent(
    pools: &Pools,
    initial: &Initial,
    nats_url: &str,
    within: Duration,
) -> Result<Duration, Vec<String>> {
    let started = tokio::time::Instant::now();
    let deadline = started + within;
    let mut js = None;
    loop {
        let mut standing = invariants::check(&pools.databases(), initial).await;
        if js.is_none() {
            js = crate::natsc::connect(nats_url)
                .await
                .ok()
                .map(async_nats::jetstream::new);
        }
        match &js {
            Some(js) => match consumer_backlog(js).await {
                Some(backlog) => {
                    for (consumer, pending, unacked) in backlog {
                        if pending > 0 || unacked > 0 {
                            standing.push(format!(
                                "consumer {consumer}: {pending} pending, {unacked} unacknowledged"
                            ));
                        }
                    }
                }
                None => standing.push("consumer state not readable".into()),
            },
            None => standing.push("NATS not reachable".into()),
        }
        if standing.is_empty() {
            return Ok(started.elapsed());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(standing);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Counts for the report.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Orders in the database.
    pub orders: usize,
    /// CONFIRMED.
    pub confirmed: usize,
    /// CANCELLED by reason.
    pub cancelled: BTreeMap<String, usize>,
    /// Events per stream (messages in the stream).
    pub events: BTreeMap<String, usize>,
    /// Inbox rows per consumer.
    pub handled: BTreeMap<String, usize>,
}

/// The `Nats-Msg-Id` of every message in `stream`, in order.
async fn stream_ids(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Result<Vec<String>, async_nats::Error> {
    let mut handle = js.get_stream(stream).await?;
    let state = handle.info().await?.state.clone();
    let mut ids = Vec::with_capacity(state.messages as usize);
    if state.messages == 0 {
        return Ok(ids);
    }
    for seq in state.first_sequence..=state.last_sequence {
        match handle.get_raw_message(seq).await {
            Ok(message) => ids.push(
                message
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            // a deleted sequence (nothing deletes here, but a gap is not an error)
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ids)
}

/// The invariants again, through the public APIs only: every order terminal with its saga,
/// payments of confirmed orders captured for the total, stock and balances as the confirmed
/// orders say, nothing reserved or held.
pub async fn check_apis(
    order_api: &HttpClient,
    inventory_api: &HttpClient,
    payment_api: &HttpClient,
    plan: &Plan,
    outcomes: &[Outcome],
) -> Vec<String> {
    let mut v = Vec::new();
    let mut sold: HashMap<(usize, String), i64> = HashMap::new();
    let mut spent: HashMap<(usize, String), i64> = HashMap::new();
    for (order, outcome) in plan.orders.iter().zip(outcomes) {
        let Some(id) = outcome.order_id else {
            continue;
        };
        let tenant = plan.tenants[order.tenant].id.as_str();
        let view = match get(order_api, tenant, &format!("/v1/orders/{id}")).await {
            Ok(view) => view,
            Err(e) => {
                v.push(format!("GET /v1/orders/{id}: {e}"));
                continue;
            }
        };
        let status = view["status"].as_str().unwrap_or("");
        let saga = view["saga"]["status"].as_str().unwrap_or("");
        let total = view["total_cents"].as_i64().unwrap_or(-1);
        match (status, saga) {
            ("CONFIRMED", "COMPLETED") => {
                let sum: i64 = view["items"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|i| {
                                i["quantity"].as_i64().unwrap_or(0)
                                    * i["unit_price_cents"].as_i64().unwrap_or(0)
                            })
                            .sum()
                    })
                    .unwrap_or(-1);
                if sum != total {
                    v.push(format!(
                        "API: order {id} total {total} but its lines sum to {sum}"
                    ));
                }
                for item in view["items"].as_array().into_iter().flatten() {
                    *sold
                        .entry((order.tenant, item["sku"].as_str().unwrap_or("").to_owned()))
                        .or_default() += item["quantity"].as_i64().unwrap_or(0);
                }
                *spent
                    .entry((order.tenant, order.customer.clone()))
                    .or_default() += total;
                check_payments(payment_api, tenant, id, Some(total), &mut v).await;
            }
            ("CANCELLED", "COMPENSATED") if !view["failure_reason"].is_null() => {
                check_payments(payment_api, tenant, id, None, &mut v).await;
            }
            _ => v.push(format!(
                "API: order {id} is {status} with saga {saga} (reason {})",
                view["failure_reason"]
            )),
        }
    }
    for (t, tenant) in plan.tenants.iter().enumerate() {
        for p in &tenant.products {
            let expected = p.on_hand - sold.get(&(t, p.sku.clone())).copied().unwrap_or(0);
            match get(
                inventory_api,
                &tenant.id,
                &format!("/v1/products/{}", p.sku),
            )
            .await
            {
                Ok(view) => {
                    let (on_hand, reserved, available) = (
                        view["on_hand"].as_i64(),
                        view["reserved"].as_i64(),
                        view["available"].as_i64(),
                    );
                    if on_hand != Some(expected)
                        || reserved != Some(0)
                        || available != Some(expected)
                    {
                        v.push(format!(
                            "API: {}/{}: on_hand {on_hand:?} reserved {reserved:?} available {available:?}, expected {expected} / 0 / {expected}",
                            tenant.id, p.sku
                        ));
                    }
                }
                Err(e) => v.push(format!("GET /v1/products/{}: {e}", p.sku)),
            }
        }
        for c in &tenant.customers {
            let expected = c.balance_cents - spent.get(&(t, c.id.clone())).copied().unwrap_or(0);
            match get(payment_api, &tenant.id, &format!("/v1/accounts/{}", c.id)).await {
                Ok(view) => {
                    let (balance, held) =
                        (view["balance_cents"].as_i64(), view["held_cents"].as_i64());
                    if balance != Some(expected) || held != Some(0) {
                        v.push(format!(
                            "API: {}/{}: balance {balance:?} held {held:?}, expected {expected} / 0",
                            tenant.id, c.id
                        ));
                    }
                }
                Err(e) => v.push(format!("GET /v1/accounts/{}: {e}", c.id)),
            }
        }
    }
    v
}

/// A confirmed order (`total` Some) has exactly one CAPTURED payment of the total; a cancelled one
/// has nothing captured or held.
async fn check_payments(
    api: &HttpClient,
    tenant: &str,
    order: Uuid,
    total: Option<i64>,
    v: &mut Vec<String>,
) {
    let view = match get(api, tenant, &format!("/v1/payments?order_id={order}")).await {
        Ok(view) => view,
        Err(e) => {
            v.push(format!("GET /v1/payments?order_id={order}: {e}"));
            return;
        }
    };
    let payments: Vec<(String, i64)> = view["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["status"].as_str().unwrap_or("").to_owned(),
                p["amount_cents"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    match total {
        Some(total) => {
            if payments.len() != 1 || payments[0] != ("CAPTURED".to_owned(), total) {
                v.push(format!(
                    "API: confirmed order {order} (total {total}) has payments {payments:?}"
                ));
            }
        }
        None => {
            if payments
                .iter()
                .any(|(s, _)| s == "CAPTURED" || s == "AUTHORIZED")
            {
                v.push(format!(
                    "API: cancelled order {order} has payments {payments:?}"
                ));
            }
        }
    }
}

/// GETs `path` as `tenant`, retrying transient failures for a few seconds.
async fn get(api: &HttpClient, tenant: &str, path: &str) -> Result<serde_json::Value, String> {
    let mut last = String::new();
    for _ in 0..10 {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            api.send(http::Method::GET, path, &[("x-tenant-id", tenant)], None),
        )
        .await;
        match response {
            Ok(Ok(r)) if r.status == http::StatusCode::OK => return Ok(r.json()),
            Ok(Ok(r)) if !r.status.is_server_error() => {
                return Err(format!("{}: {}", r.status, r.text()));
            }
            Ok(Ok(r)) => last = r.status.to_string(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}

/// Keys of planned orders that never got an answer.
pub fn unanswered<'a>(plan: &'a Plan, outcomes: &[Outcome]) -> Vec<&'a PlannedOrder> {
    plan.orders
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| o.order_id.is_none() && o.contract_errors.is_empty())
        .map(|(p, _)| p)
        .collect()
}

/// Samples stock and balances during the run (directly, every half second): never negative, held
/// never above balance, reserved never above on hand.
pub async fn sample_negatives(pools: &Pools) -> Vec<String> {
    let mut found = Vec::new();
    let checks = [
        (
            &pools.inventory,
            "SELECT tenant_id || '/' || sku FROM products WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand",
        ),
        (
            &pools.payments,
            "SELECT tenant_id || '/' || customer_id FROM accounts WHERE balance_cents < 0 OR held_cents < 0 OR held_cents > balance_cents",
        ),
    ];
    for (pool, sql) in checks {
        if let Ok(Ok(rows)) = tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query_scalar::<_, String>(sql).fetch_all(pool),
        )
        .await
        {
            found.extend(
                rows.into_iter()
                    .map(|r| format!("negative or over-committed at some point: {r}")),
            );
        }
    }
    found
}
