//! The checks made directly in the databases and streams, beyond `longship_testkit::invariants`.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use uuid::Uuid;

use super::{CONSUMERS, Pools, Tally, stream_ids};
use crate::load::Outcome;
use crate::plan::Plan;

/// Checks done directly in the databases and streams beyond `longship_testkit::invariants`.
pub async fn check_stores(
    pools: &Pools,
    plan: &Plan,
    outcomes: &[Outcome],
    nats_url: &str,
) -> (Vec<String>, Tally) {
    let mut v = Vec::new();
    let mut tally = Tally::default();
    if !orders_match_answers(pools, plan, outcomes, &mut v, &mut tally).await {
        return (v, tally);
    }
    no_leftover_holds(pools, &mut v).await;
    confirmations_handled_once(pools, &mut v, &mut tally).await;
    outbox_rows_published_once(pools, nats_url, &mut v, &mut tally).await;
    (v, tally)
}

/// Every order we were answered exists, under its key, with the saga status its own status
/// implies; nothing else exists. `false` when the orders could not be read.
async fn orders_match_answers(
    pools: &Pools,
    plan: &Plan,
    outcomes: &[Outcome],
    v: &mut Vec<String>,
    tally: &mut Tally,
) -> bool {
    // every order we were answered exists, under its key; nothing else exists
    let rows = sqlx::query("SELECT o.id, o.tenant_id, o.idempotency_key, o.status, o.failure_reason, s.status AS saga FROM orders o LEFT JOIN saga s ON s.id = o.id")
        .fetch_all(&pools.orders)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            v.push(format!("orders not readable: {e}"));
            return false;
        }
    };
    let mut by_key: HashMap<(String, String), Uuid> = HashMap::new();
    for r in &rows {
        let id: Uuid = r.get("id");
        let tenant: String = r.get("tenant_id");
        let key: Option<String> = r.get("idempotency_key");
        let status: String = r.get("status");
        let saga: Option<String> = r.get("saga");
        let reason: Option<String> = r.get("failure_reason");
        match status.as_str() {
            "CONFIRMED" => tally.confirmed += 1,
            "CANCELLED" => {
                *tally
                    .cancelled
                    .entry(reason.unwrap_or_else(|| "none".into()))
                    .or_default() += 1
            }
            _ => {}
        }
        let expected_saga = match status.as_str() {
            "CONFIRMED" => Some("COMPLETED"),
            "CANCELLED" => Some("COMPENSATED"),
            _ => None,
        };
        if saga.as_deref() != expected_saga {
            v.push(format!("order {id} is {status} but its saga is {saga:?}"));
        }
        match key {
            Some(key) => {
                if by_key.insert((tenant.clone(), key.clone()), id).is_some() {
                    v.push(format!("two orders under key {tenant}/{key}"));
                }
            }
            None => v.push(format!(
                "order {id} has no idempotency key (not placed by the runner)"
            )),
        }
    }
    tally.orders = rows.len();
    let planned: HashSet<(String, String)> = plan
        .orders
        .iter()
        .map(|o| (plan.tenants[o.tenant].id.clone(), o.key.clone()))
        .collect();
    for key in by_key.keys() {
        if !planned.contains(key) {
            v.push(format!("order under unknown key {}/{}", key.0, key.1));
        }
    }
    for (order, outcome) in plan.orders.iter().zip(outcomes) {
        let key = (plan.tenants[order.tenant].id.clone(), order.key.clone());
        match (outcome.order_id, by_key.get(&key)) {
            (Some(answered), Some(stored)) if answered != *stored => v.push(format!(
                "key {}: the API answered order {answered}, the database holds {stored}",
                order.key
            )),
            (Some(answered), None) => v.push(format!(
                "order {answered} (key {}) was accepted (202) but is not in the database",
                order.key
            )),
            (None, _) => v.push(format!(
                "key {}: POST /v1/orders never answered, even after healing",
                order.key
            )),
            _ => {}
        }
        v.extend(outcome.contract_errors.iter().cloned());
    }

    true
}

/// No leftover holds anywhere (reservations, authorizations), nothing negative, one payment per
/// order.
async fn no_leftover_holds(pools: &Pools, v: &mut Vec<String>) {
    // no leftover holds anywhere, nothing negative
    let leftovers = [
        (
            &pools.inventory,
            "SELECT count(*) FROM reservations WHERE status = 'RESERVED'",
            "reservations still RESERVED",
        ),
        (
            &pools.inventory,
            "SELECT count(*) FROM products WHERE reserved <> 0 OR on_hand < 0 OR reserved < 0",
            "products with units reserved or negative stock",
        ),
        (
            &pools.payments,
            "SELECT count(*) FROM payments WHERE status = 'AUTHORIZED'",
            "payments still AUTHORIZED (held)",
        ),
        (
            &pools.payments,
            "SELECT count(*) FROM accounts WHERE held_cents <> 0 OR balance_cents < 0 OR held_cents < 0",
            "accounts with money held or a negative balance",
        ),
        (
            &pools.payments,
            "SELECT count(*) FROM (SELECT order_id FROM payments GROUP BY tenant_id, order_id HAVING count(*) > 1) d",
            "orders with more than one payment",
        ),
    ];
    for (pool, sql, what) in leftovers {
        match sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await {
            Ok(0) => {}
            Ok(n) => v.push(format!("{n} {what}")),
            Err(e) => v.push(format!("{what}: query failed: {e}")),
        }
    }
}

/// Every `order_confirmed` handled exactly once per consumer: inbox rows = events, both ways.
async fn confirmations_handled_once(pools: &Pools, v: &mut Vec<String>, tally: &mut Tally) {
    // every order_confirmed handled exactly once per consumer: inbox rows = events, both ways
    let confirmed: HashSet<Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE event_type = 'orders.v1.order_confirmed'")
            .fetch_all(&pools.orders)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
    for (db, consumer) in CONSUMERS {
        let pool = if db == "inventory" {
            &pools.inventory
        } else {
            &pools.payments
        };
        let handled: Vec<Uuid> =
            sqlx::query_scalar("SELECT event_id FROM inbox WHERE consumer = $1")
                .bind(consumer)
                .fetch_all(pool)
                .await
                .unwrap_or_default();
        tally.handled.insert(consumer.to_owned(), handled.len());
        let handled: HashSet<Uuid> = handled.into_iter().collect();
        let missing = confirmed.difference(&handled).count();
        let extra = handled.difference(&confirmed).count();
        if missing > 0 || extra > 0 {
            v.push(format!(
                "{consumer}: {} order_confirmed events, {} handled ({missing} never, {extra} not events)",
                confirmed.len(),
                handled.len()
            ));
        }
    }
}

/// Every outbox row is in its stream exactly once (by `Nats-Msg-Id`), nothing else is, and
/// nothing was dead-lettered.
async fn outbox_rows_published_once(
    pools: &Pools,
    nats_url: &str,
    v: &mut Vec<String>,
    tally: &mut Tally,
) {
    // every outbox row is in its stream exactly once (by Nats-Msg-Id), and nothing else is
    match crate::natsc::connect(nats_url).await {
        Ok(client) => {
            let js = async_nats::jetstream::new(client);
            for ((db, pool), stream) in
                pools
                    .by_name()
                    .into_iter()
                    .zip(["ORDERS", "INVENTORY", "PAYMENTS"])
            {
                let outbox: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM outbox")
                    .fetch_all(pool)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                match stream_ids(&js, stream).await {
                    Ok(ids) => {
                        tally.events.insert(stream.to_owned(), ids.len());
                        let mut seen: HashMap<String, usize> = HashMap::new();
                        for id in &ids {
                            *seen.entry(id.clone()).or_default() += 1;
                        }
                        let dups = seen.values().filter(|n| **n > 1).count();
                        let in_stream: HashSet<Uuid> = seen
                            .keys()
                            .filter_map(|k| Uuid::parse_str(k).ok())
                            .collect();
                        let unpublished = outbox.difference(&in_stream).count();
                        let foreign = seen.len() - in_stream.intersection(&outbox).count();
                        if dups > 0 || unpublished > 0 || foreign > 0 {
                            v.push(format!(
                                "stream {stream} vs {db} outbox ({} rows): {dups} ids published more than once, {unpublished} never published, {foreign} not from the outbox",
                                outbox.len()
                            ));
                        }
                    }
                    Err(e) => v.push(format!("stream {stream} not readable: {e}")),
                }
            }
            match stream_ids(&js, "DEADLETTER").await {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) => v.push(format!(
                    "{} messages were dead-lettered (events given up on)",
                    ids.len()
                )),
                Err(e) => v.push(format!("dead-letter stream not readable: {e}")),
            }
        }
        Err(e) => v.push(format!("NATS not reachable for the stream checks: {e}")),
    }
}
