//! Reserve for many orders, of one tenant or several, in one transaction with set-based
//! statements: one claim of every order, one lock of every product they name (in (tenant, sku)
//! order), one write of the held units, the reservations' lines, the refused orders' claims and
//! the events. The transaction admits the batch's tenants ([`longship_tenant::begin_set`]); every
//! statement keys each order's rows by the order's own tenant (tenant ids travel beside the other
//! item columns and every join is on `(tenant_id, key)`), so an order only ever reads or writes
//! its own tenant's products and reservations, even where two tenants use the same sku.
//!
//! Each order is answered exactly as a Reserve of its own would be: a repeat (its row exists)
//! answers the stored result or the release that came first (tombstone), a refusal (unknown sku,
//! insufficient stock, currency mismatch) leaves nothing behind, and the orders are planned one
//! after the other against the stock the earlier ones took, so a refusal of one never fails
//! another. Locks: the orders' claims first, in (tenant, order id) order, then the products in
//! (tenant, sku) order (byte order, as a single Reserve sorts its skus), the order every Reserve,
//! Release, Commit and expiry follows, so batches cannot deadlock with each other or with single
//! commands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use longship_errors::Error;
use longship_messaging::OutboxRow;
use longship_sql::Binds;
use longship_tenant::TenantId;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{self, ProductStock, ReservedLine};
use crate::events;
use crate::store::{self, ReserveCommand, Reserved, StockRow};

/// An order of the batch: its tenant and order id.
type OrderKey = (TenantId, Uuid);

/// One answer per command, in `commands`' order; `Err` of the whole (a database failure) means
/// nothing was written and the caller handles the commands one by one. Each command is of its
/// tenant, each for another (tenant, order) (validated), and they run in `conn`'s transaction
/// of their tenant set.
pub async fn reserve_many(
    conn: &mut PgConnection,
    commands: &[(TenantId, ReserveCommand)],
    ttl_secs: f64,
) -> Result<Vec<Result<Reserved, Error>>, Error> {
    // claims in (tenant, order id) order (the lock order of claims across batches)
    let order = longship_tenant::batch::key_order(commands, |c| c.order_id);
    let tenants: Vec<&str> = order.iter().map(|&i| commands[i].0.as_str()).collect();
    let ids: Vec<Uuid> = order.iter().map(|&i| commands[i].1.order_id).collect();
    let currencies: Vec<&str> = order
        .iter()
        .map(|&i| commands[i].1.currency.as_str())
        .collect();
    let keys: Vec<&str> = order
        .iter()
        .map(|&i| commands[i].1.idempotency_key.as_str())
        .collect();
    let claimed: HashMap<OrderKey, DateTime<Utc>> =
        sqlx::query_as::<_, (String, Uuid, DateTime<Utc>)>(
            "INSERT INTO reservations (tenant_id, order_id, status, currency, idempotency_key, expires_at)
             SELECT u.tenant_id, u.order_id, 'RESERVED', u.currency, u.key, now() + make_interval(secs => $5)
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) WITH ORDINALITY
                 AS u(tenant_id, order_id, currency, key, n)
             ORDER BY u.n
             ON CONFLICT (tenant_id, order_id) DO NOTHING
             RETURNING tenant_id, order_id, expires_at",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&currencies)
        .bind(&keys)
        .bind(ttl_secs)
        .fetch_all(&mut *conn)
        .await
        .map_err(store::db_error)?
        .into_iter()
        .map(|(t, o, e)| Ok(((tenant_id(&t)?, o), e)))
        .collect::<Result<_, Error>>()?;

    let mut answers: Vec<Option<Result<Reserved, Error>>> =
        (0..commands.len()).map(|_| None).collect();
    replays(&mut *conn, commands, &claimed, &mut answers).await?;
    if claimed.is_empty() {
        return Ok(answers.into_iter().map(finished).collect());
    }

    let wanted: Vec<(&str, &str)> = order
        .iter()
        .filter(|&&i| claimed.contains_key(&key(&commands[i])))
        .flat_map(|&i| {
            let tenant = commands[i].0.as_str();
            commands[i]
                .1
                .lines
                .iter()
                .map(move |l| (tenant, l.sku.as_str()))
        })
        .collect();
    let mut products: HashMap<TenantId, Vec<ProductStock>> = HashMap::new();
    let locked: Vec<(TenantId, StockRow)> =
        longship_tenant::batch::lock_rows(&mut *conn, "products", "sku", STOCK_COLUMNS, wanted)
            .await
            .map_err(store::db_error)?;
    for (tenant, stock) in locked {
        products
            .entry(tenant)
            .or_default()
            .push(ProductStock::from(stock));
    }

    // plan the claimed orders one after the other, each against what the earlier ones took
    let mut write = Write::default();
    for &i in &order {
        let (tenant, command) = &commands[i];
        let Some(expires_at) = claimed.get(&key(&commands[i])) else {
            continue;
        };
        let stock = products.entry(tenant.clone()).or_default();
        match domain::plan_reservation(&command.currency, &command.lines, stock) {
            Ok(planned) => {
                for line in &planned {
                    if let Some(p) = stock.iter_mut().find(|p| p.sku == line.sku) {
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
                write.refused_tenants.push(tenant.as_str().to_owned());
                write.refused.push(command.order_id);
                answers[i] = Some(Err(rejection.into()));
            }
        }
    }
    write.run(&mut *conn).await?;
    Ok(answers.into_iter().map(finished).collect())
}

fn key((tenant, command): &(TenantId, ReserveCommand)) -> OrderKey {
    (tenant.clone(), command.order_id)
}

/// A tenant id read back from the database (written from a checked one).
fn tenant_id(raw: &str) -> Result<TenantId, Error> {
    TenantId::parse(raw).map_err(Error::internal)
}

/// The columns of a [`StockRow`].
const STOCK_COLUMNS: &str = "sku, currency, price_cents, on_hand, reserved";

fn finished(answer: Option<Result<Reserved, Error>>) -> Result<Reserved, Error> {
    answer.unwrap_or_else(|| {
        Err(Error::internal(std::io::Error::other(
            "a batched Reserve left an order unanswered",
        )))
    })
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    tenant_id: String,
    order_id: Uuid,
    status: String,
    currency: Option<String>,
    lines: Json<Vec<ReservedLine>>,
}

/// Answers the orders that were claimed before (a repeat, or a Release that came first), as a
/// single Reserve answers them.
async fn replays(
    conn: &mut PgConnection,
    commands: &[(TenantId, ReserveCommand)],
    claimed: &HashMap<OrderKey, DateTime<Utc>>,
    answers: &mut [Option<Result<Reserved, Error>>],
) -> Result<(), Error> {
    let (tenants, repeated): (Vec<&str>, Vec<Uuid>) = commands
        .iter()
        .filter(|c| !claimed.contains_key(&key(c)))
        .map(|(t, c)| (t.as_str(), c.order_id))
        .unzip();
    if repeated.is_empty() {
        return Ok(());
    }
    let mut rows: HashMap<OrderKey, ExistingRow> = HashMap::new();
    for row in sqlx::query_as::<_, ExistingRow>(
        "SELECT r.tenant_id, r.order_id, r.status, r.currency, r.lines
         FROM unnest($1::text[], $2::uuid[]) AS u(tenant_id, order_id)
         JOIN reservations r ON r.tenant_id = u.tenant_id AND r.order_id = u.order_id",
    )
    .bind(&tenants)
    .bind(&repeated)
    .fetch_all(&mut *conn)
    .await
    .map_err(store::db_error)?
    {
        rows.insert((tenant_id(&row.tenant_id)?, row.order_id), row);
    }
    for (i, command) in commands.iter().enumerate() {
        if claimed.contains_key(&key(command)) {
            continue;
        }
        let Some(row) = rows.get(&key(command)) else {
            // neither claimed nor there: a concurrent claim rolled back; the single path decides
            return Err(Error::internal(std::io::Error::other(
                "reservation row vanished",
            )));
        };
        let status = store::parse_status(&row.status)?;
        answers[i] = Some(domain::replay_reserve(status).map(|()| {
            Reserved {
                order_id: command.1.order_id,
                currency: row
                    .currency
                    .clone()
                    .unwrap_or_else(|| command.1.currency.clone()),
                lines: row.lines.0.clone(),
            }
        }));
    }
    Ok(())
}

/// What the batch writes, in one statement.
#[derive(Default)]
struct Write {
    /// Held units per line of every reserved order, with the order's tenant.
    sku_tenants: Vec<String>,
    skus: Vec<String>,
    quantities: Vec<i64>,
    /// The reserved orders (tenant, order id) and their lines.
    order_tenants: Vec<String>,
    orders: Vec<Uuid>,
    lines: Vec<serde_json::Value>,
    events: Vec<OutboxRow>,
    /// The refused orders (tenant, order id), whose claims are removed (a refused Reserve
    /// leaves nothing).
    refused_tenants: Vec<String>,
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
            self.sku_tenants.push(tenant.as_str().to_owned());
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
        self.order_tenants.push(tenant.as_str().to_owned());
        self.orders.push(command.order_id);
        self.lines
            .push(serde_json::to_value(planned).map_err(Error::internal)?);
        Ok(())
    }

    async fn run(self, conn: &mut PgConnection) -> Result<(), Error> {
        let mut b = Binds::new();
        let sql = format!(
            "WITH held AS (
                 UPDATE products p SET reserved = p.reserved + u.quantity, updated_at = now()
                 FROM (
                     SELECT tenant_id, sku, sum(quantity)::bigint AS quantity
                     FROM {} AS x(tenant_id, sku, quantity)
                     GROUP BY tenant_id, sku
                 ) AS u
                 WHERE p.tenant_id = u.tenant_id AND p.sku = u.sku
             ), refused AS (
                 DELETE FROM reservations r USING {} AS x(tenant_id, order_id)
                 WHERE r.tenant_id = x.tenant_id AND r.order_id = x.order_id
             ), event AS ({})
             UPDATE reservations r SET lines = u.lines, updated_at = now()
             FROM {} AS u(tenant_id, order_id, lines)
             WHERE r.tenant_id = u.tenant_id AND r.order_id = u.order_id",
            b.unnest((self.sku_tenants, self.skus, self.quantities)),
            b.unnest((self.refused_tenants, self.refused)),
            OutboxRow::insert_many(self.events, &mut b),
            b.unnest((self.order_tenants, self.orders, self.lines)),
        );
        b.execute(sql, &mut *conn).await.map_err(store::db_error)?;
        Ok(())
    }
}
