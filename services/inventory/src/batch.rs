//! Reserve for many orders of one tenant in one transaction, with set-based statements: one claim
//! of every order, one lock of every product they name (in sku order), one write of the held
//! units, the reservations' lines, the refused orders' claims and the events.
//!
//! Each order is answered exactly as a Reserve of its own would be: a repeat (its row exists)
//! answers the stored result or the release that came first (tombstone), a refusal (unknown sku,
//! insufficient stock, currency mismatch) leaves nothing behind, and the orders are planned one
//! after the other against the stock the earlier ones took, so a refusal of one never fails
//! another. Locks: the orders' claims first, in order-id order, then the products in sku order,
//! the order every Reserve, Release, Commit and expiry follows, so batches cannot deadlock with
//! each other or with single commands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use longship_errors::Error;
use longship_messaging::OutboxRow;
use longship_sql::Binds;
use longship_tenant::TenantId;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{self, ProductStock, ReservationStatus, ReservedLine};
use crate::events;
use crate::store::{self, ReserveCommand, Reserved, StockRow};

/// One answer per command, in `commands`' order; `Err` of the whole (a database failure) means
/// nothing was written and the caller handles the commands one by one. The commands are of
/// `tenant`, each for another order (validated), and run in `conn`'s transaction of `tenant`.
pub async fn reserve_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    commands: &[ReserveCommand],
    ttl_secs: f64,
) -> Result<Vec<Result<Reserved, Error>>, Error> {
    // claims in order-id order (the lock order of claims across batches)
    let mut order: Vec<usize> = (0..commands.len()).collect();
    order.sort_by_key(|&i| commands[i].order_id);
    let ids: Vec<Uuid> = order.iter().map(|&i| commands[i].order_id).collect();
    let currencies: Vec<&str> = order
        .iter()
        .map(|&i| commands[i].currency.as_str())
        .collect();
    let keys: Vec<&str> = order
        .iter()
        .map(|&i| commands[i].idempotency_key.as_str())
        .collect();
    let claimed: HashMap<Uuid, DateTime<Utc>> = sqlx::query_as::<_, (Uuid, DateTime<Utc>)>(
        "INSERT INTO reservations (tenant_id, order_id, status, currency, idempotency_key, expires_at)
         SELECT $1, u.order_id, 'RESERVED', u.currency, u.key, now() + make_interval(secs => $5)
         FROM unnest($2::uuid[], $3::text[], $4::text[]) AS u(order_id, currency, key)
         ORDER BY u.order_id
         ON CONFLICT (tenant_id, order_id) DO NOTHING
         RETURNING order_id, expires_at",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&currencies)
    .bind(&keys)
    .bind(ttl_secs)
    .fetch_all(&mut *conn)
    .await
    .map_err(store::db_error)?
    .into_iter()
    .collect();

    let mut answers: Vec<Option<Result<Reserved, Error>>> =
        (0..commands.len()).map(|_| None).collect();
    replays(&mut *conn, tenant, commands, &claimed, &mut answers).await?;
    if claimed.is_empty() {
        return Ok(answers.into_iter().map(finished).collect());
    }

    let skus: Vec<String> = order
        .iter()
        .filter(|&&i| claimed.contains_key(&commands[i].order_id))
        .flat_map(|&i| commands[i].lines.iter().map(|l| l.sku.clone()))
        .collect();
    let mut products: Vec<ProductStock> = sqlx::query_as::<_, StockRow>(
        "SELECT q.sku, q.currency, q.price_cents, q.on_hand, q.reserved
         FROM unnest($2::text[]) WITH ORDINALITY AS u(sku, n)
         CROSS JOIN LATERAL (
             SELECT sku, currency, price_cents, on_hand, reserved FROM products
             WHERE tenant_id = $1 AND sku = u.sku FOR UPDATE
         ) AS q
         ORDER BY u.n",
    )
    .bind(tenant.as_str())
    .bind(store::sorted_unique(&skus))
    .fetch_all(&mut *conn)
    .await
    .map_err(store::db_error)?
    .into_iter()
    .map(ProductStock::from)
    .collect();

    // plan the claimed orders one after the other, each against what the earlier ones took
    let mut write = Write::default();
    for &i in &order {
        let command = &commands[i];
        let Some(expires_at) = claimed.get(&command.order_id) else {
            continue;
        };
        match domain::plan_reservation(&command.currency, &command.lines, &products) {
            Ok(planned) => {
                for line in &planned {
                    if let Some(p) = products.iter_mut().find(|p| p.sku == line.sku) {
                        p.stock.reserved += line.quantity;
                    }
                }
                write.reserved(tenant, command, &planned, *expires_at)?;
                answers[i] = Some(Ok(Reserved {
                    order_id: command.order_id,
                    currency: command.currency.clone(),
                    lines: planned,
                }));
            }
            Err(rejection) => {
                write.refused.push(command.order_id);
                answers[i] = Some(Err(rejection.into()));
            }
        }
    }
    write.run(&mut *conn, tenant).await?;
    Ok(answers.into_iter().map(finished).collect())
}

fn finished(answer: Option<Result<Reserved, Error>>) -> Result<Reserved, Error> {
    answer.unwrap_or_else(|| {
        Err(Error::internal(std::io::Error::other(
            "a batched Reserve left an order unanswered",
        )))
    })
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    order_id: Uuid,
    status: String,
    currency: Option<String>,
    lines: Json<Vec<ReservedLine>>,
}

/// Answers the orders that were claimed before (a repeat, or a Release that came first), as a
/// single Reserve answers them.
async fn replays(
    conn: &mut PgConnection,
    tenant: &TenantId,
    commands: &[ReserveCommand],
    claimed: &HashMap<Uuid, DateTime<Utc>>,
    answers: &mut [Option<Result<Reserved, Error>>],
) -> Result<(), Error> {
    let repeated: Vec<Uuid> = commands
        .iter()
        .map(|c| c.order_id)
        .filter(|id| !claimed.contains_key(id))
        .collect();
    if repeated.is_empty() {
        return Ok(());
    }
    let rows: HashMap<Uuid, ExistingRow> = sqlx::query_as::<_, ExistingRow>(
        "SELECT order_id, status, currency, lines FROM reservations
         WHERE tenant_id = $1 AND order_id = ANY($2::uuid[])",
    )
    .bind(tenant.as_str())
    .bind(&repeated)
    .fetch_all(&mut *conn)
    .await
    .map_err(store::db_error)?
    .into_iter()
    .map(|r| (r.order_id, r))
    .collect();
    for (i, command) in commands.iter().enumerate() {
        if claimed.contains_key(&command.order_id) {
            continue;
        }
        let Some(row) = rows.get(&command.order_id) else {
            // neither claimed nor there: a concurrent claim rolled back; the single path decides
            return Err(Error::internal(std::io::Error::other(
                "reservation row vanished",
            )));
        };
        let status = ReservationStatus::parse(&row.status).ok_or_else(|| {
            Error::internal(std::io::Error::other(format!(
                "unknown reservation status {:?}",
                row.status
            )))
        })?;
        answers[i] = Some(domain::replay_reserve(status).map(|()| {
            Reserved {
                order_id: command.order_id,
                currency: row
                    .currency
                    .clone()
                    .unwrap_or_else(|| command.currency.clone()),
                lines: row.lines.0.clone(),
            }
        }));
    }
    Ok(())
}

/// What the batch writes, in one statement.
#[derive(Default)]
struct Write {
    /// Held units per line of every reserved order.
    skus: Vec<String>,
    quantities: Vec<i64>,
    /// The reserved orders and their lines.
    orders: Vec<Uuid>,
    lines: Vec<serde_json::Value>,
    events: Vec<OutboxRow>,
    /// The refused orders, whose claims are removed (a refused Reserve leaves nothing).
    refused: Vec<Uuid>,
}

impl Write {
    fn reserved(
        &mut self,
        tenant: &TenantId,
        command: &ReserveCommand,
        planned: &[ReservedLine],
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        for line in planned {
            self.skus.push(line.sku.clone());
            self.quantities.push(line.quantity);
        }
        let payload = events::StockReserved {
            order_id: command.order_id,
            currency: command.currency.clone(),
            lines: planned.to_vec(),
            expires_at,
        };
        self.events
            .push(OutboxRow::new(events::STOCK_RESERVED, tenant, &payload).map_err(store::outbox)?);
        self.orders.push(command.order_id);
        self.lines
            .push(serde_json::to_value(planned).map_err(Error::internal)?);
        Ok(())
    }

    async fn run(self, conn: &mut PgConnection, tenant: &TenantId) -> Result<(), Error> {
        let mut b = Binds::new();
        let t = b.push(tenant.as_str());
        let sql = format!(
            "WITH held AS (
                 UPDATE products p SET reserved = p.reserved + u.quantity, updated_at = now()
                 FROM (
                     SELECT sku, sum(quantity)::bigint AS quantity
                     FROM unnest({}::text[], {}::bigint[]) AS x(sku, quantity) GROUP BY sku
                 ) AS u
                 WHERE p.tenant_id = {t} AND p.sku = u.sku
             ), refused AS (
                 DELETE FROM reservations WHERE tenant_id = {t} AND order_id = ANY({}::uuid[])
             ), event AS ({})
             UPDATE reservations r SET lines = u.lines, updated_at = now()
             FROM unnest({}::uuid[], {}::jsonb[]) AS u(order_id, lines)
             WHERE r.tenant_id = {t} AND r.order_id = u.order_id",
            b.push(self.skus),
            b.push(self.quantities),
            b.push(self.refused),
            OutboxRow::insert_many(self.events, &mut b),
            b.push(self.orders),
            b.push(self.lines),
        );
        b.query(sql)
            .map_err(store::db_error)?
            .execute(&mut *conn)
            .await
            .map_err(store::db_error)?;
        Ok(())
    }
}
