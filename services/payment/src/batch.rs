//! Authorize for many orders, of one tenant or several, in one transaction with set-based
//! statements: the orders' command locks in the transaction's first round trip, one read of their
//! payments and tombstones, one lock of their customers' accounts (in (tenant, customer) order),
//! one write of the holds, the payments and the events. The transaction admits the batch's
//! tenants ([`longship_tenant::begin_set`]); every statement keys each order's rows by the order's
//! own tenant (tenant ids travel beside the other item columns and every join is on
//! `(tenant_id, key)`), so an order only ever reads or charges its own tenant's account, even
//! where two tenants use the same customer id.
//!
//! Each order is answered exactly as an Authorize of its own would be: a repeat answers the first
//! result (an approval, a decline, or the void that came after it), an order voided first is
//! refused (tombstone), a decline is recorded and answered as a refusal, and the orders are decided
//! one after the other against the funds the earlier ones held, so a decline of one never fails
//! another. Locks: every order's command lock (in the order of their lock keys' hashes, the same
//! in every batch), then the payment rows, then the accounts in (tenant, customer) order; a single
//! Authorize, Void or Capture takes a subset of these in the same order, so nothing deadlocks.

use std::collections::HashMap;

use longship_errors::Error;
use longship_messaging::OutboxRow;
use longship_sql::Binds;
use longship_tenant::TenantId;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::domain::{self, Decline, PaymentStatus};
use crate::events;
use crate::store::{self, AccountRow, Authorization, AuthorizeCommand, Payment};

/// An order of the batch: its tenant and order id.
type OrderKey = (TenantId, Uuid);

/// The `BEGIN` round trip's statement that takes the command lock of every (tenant, order) in
/// `orders` (keys built from checked tenant ids and UUIDs, so no literal can be ended early), in
/// the order of the lock keys' hashes.
pub fn lock_orders(orders: &[OrderKey]) -> String {
    let keys: Vec<String> = orders
        .iter()
        .map(|(t, o)| format!("'{}'", store::order_lock_key(t, *o)))
        .collect();
    format!(
        "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT hashtextextended(k, 0) AS h FROM unnest(ARRAY[{}]::text[]) AS k ORDER BY 1) AS s",
        keys.join(", ")
    )
}

/// One answer per command, in `commands`' order; `Err` of the whole means nothing was written and
/// the caller handles the commands one by one. Each command is of its tenant, each for another
/// (tenant, order) (validated), and they run in a transaction of their tenant set that holds
/// their command locks ([`lock_orders`]).
pub async fn authorize_many(
    conn: &mut PgConnection,
    commands: &[(TenantId, AuthorizeCommand)],
) -> Result<Vec<Authorization>, Error> {
    let order = longship_tenant::batch::key_order(commands, |c| c.order_id);
    let existing = existing(&mut *conn, commands, &order).await?;
    let wanted: Vec<(&str, &str)> = commands
        .iter()
        .map(|(t, c)| (t.as_str(), c.customer_id.as_str()))
        .collect();
    let locked: Vec<(TenantId, AccountRow)> = longship_tenant::batch::lock_rows(
        &mut *conn,
        "accounts",
        "customer_id",
        ACCOUNT_COLUMNS,
        wanted,
    )
    .await
    .map_err(store::db_error)?;
    let mut accounts: HashMap<(TenantId, String), AccountRow> = locked
        .into_iter()
        .map(|(tenant, account)| ((tenant, account.customer_id.clone()), account))
        .collect();

    let mut answers: Vec<Option<Authorization>> = (0..commands.len()).map(|_| None).collect();
    let mut write = Write::default();
    for &i in &order {
        let (tenant, command) = &commands[i];
        let answer = match existing.get(&(tenant.clone(), command.order_id)) {
            Some(Existing::Tombstoned) => Authorization::Refused(store::voided(
                "the payment for this order was voided before it was authorized",
            )),
            Some(Existing::Payment(payment)) => replay(payment)?,
            None => {
                let account = accounts.get_mut(&(tenant.clone(), command.customer_id.clone()));
                let decision = domain::authorize(
                    account.as_ref().map(|a| a.domain()).as_ref(),
                    &command.currency,
                    command.amount_cents,
                );
                if let (Ok(funds), Some(account)) = (&decision, account) {
                    account.balance_cents = funds.balance_cents;
                    account.held_cents = funds.held_cents;
                }
                write.payment(tenant, command, decision.err())?
            }
        };
        answers[i] = Some(answer);
    }
    write.run(&mut *conn).await?;
    answers
        .into_iter()
        .map(|a| {
            a.ok_or_else(|| {
                Error::internal(std::io::Error::other(
                    "a batched Authorize left an order unanswered",
                ))
            })
        })
        .collect()
}

/// What a repeated Authorize answers (as the single command does).
fn replay(existing: &Payment) -> Result<Authorization, Error> {
    Ok(match existing.parsed_status()? {
        PaymentStatus::Declined => {
            let decline = existing
                .decline_reason
                .as_deref()
                .and_then(Decline::parse)
                .unwrap_or(Decline::InsufficientFunds);
            Authorization::Refused(decline.error())
        }
        PaymentStatus::Voided => Authorization::Refused(store::voided(
            "the payment for this order was voided after it was authorized",
        )),
        _ => Authorization::Approved(existing.clone()),
    })
}

/// The columns of an [`AccountRow`].
const ACCOUNT_COLUMNS: &str = "customer_id, currency, balance_cents, held_cents";

enum Existing {
    Tombstoned,
    Payment(Payment),
}

/// The orders' tombstones and payments (payment rows locked, in (tenant, order) order), in one
/// statement.
async fn existing(
    conn: &mut PgConnection,
    commands: &[(TenantId, AuthorizeCommand)],
    order: &[usize],
) -> Result<HashMap<OrderKey, Existing>, Error> {
    let (tenants, ids): (Vec<&str>, Vec<Uuid>) = order
        .iter()
        .map(|&i| (commands[i].0.as_str(), commands[i].1.order_id))
        .unzip();
    let rows = sqlx::query(
        "SELECT u.tenant_id AS asked_tenant, u.order_id AS asked,
                EXISTS (SELECT 1 FROM payment_tombstones t WHERE t.tenant_id = u.tenant_id AND t.order_id = u.order_id) AS tombstoned,
                p.id, p.order_id, p.customer_id, p.amount_cents, p.currency, p.status, p.decline_reason
         FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS u(tenant_id, order_id, n)
         LEFT JOIN LATERAL (
             SELECT id, order_id, customer_id, amount_cents, currency, status, decline_reason
             FROM payments WHERE tenant_id = u.tenant_id AND order_id = u.order_id FOR UPDATE
         ) AS p ON true
         ORDER BY u.n",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(store::db_error)?;
    let mut found = HashMap::new();
    for row in rows {
        let tenant: String = row.try_get("asked_tenant").map_err(store::db_error)?;
        let tenant = TenantId::parse(&tenant).map_err(Error::internal)?;
        let asked: Uuid = row.try_get("asked").map_err(store::db_error)?;
        let tombstoned: bool = row.try_get("tombstoned").map_err(store::db_error)?;
        let payment_id: Option<Uuid> = row.try_get("id").map_err(store::db_error)?;
        if tombstoned {
            found.insert((tenant, asked), Existing::Tombstoned);
        } else if payment_id.is_some() {
            let payment = Payment::from_row(&row).map_err(store::db_error)?;
            found.insert((tenant, asked), Existing::Payment(payment));
        }
    }
    Ok(found)
}

/// What the batch writes, in one statement.
#[derive(Default)]
struct Write {
    tenants: Vec<String>,
    ids: Vec<Uuid>,
    orders: Vec<Uuid>,
    customers: Vec<String>,
    amounts: Vec<i64>,
    currencies: Vec<String>,
    statuses: Vec<String>,
    reasons: Vec<Option<String>>,
    keys: Vec<String>,
    events: Vec<OutboxRow>,
}

impl Write {
    /// A new payment: authorized (its hold is written too) or declined.
    fn payment(
        &mut self,
        tenant: &TenantId,
        command: &AuthorizeCommand,
        decline: Option<Decline>,
    ) -> Result<Authorization, Error> {
        let status = match decline {
            None => PaymentStatus::Authorized,
            Some(_) => PaymentStatus::Declined,
        };
        let payment = Payment {
            id: Uuid::now_v7(),
            order_id: command.order_id,
            customer_id: command.customer_id.clone(),
            amount_cents: command.amount_cents,
            currency: command.currency.clone(),
            status: status.as_str().to_owned(),
            decline_reason: decline.as_ref().map(|d| d.as_str().to_owned()),
        };
        let event_type = match decline {
            None => events::PAYMENT_AUTHORIZED,
            Some(_) => events::PAYMENT_DECLINED,
        };
        self.events
            .push(OutboxRow::new(event_type, tenant, &payment.event()).map_err(store::outbox)?);
        self.tenants.push(tenant.as_str().to_owned());
        self.ids.push(payment.id);
        self.orders.push(payment.order_id);
        self.customers.push(payment.customer_id.clone());
        self.amounts.push(payment.amount_cents);
        self.currencies.push(payment.currency.clone());
        self.statuses.push(payment.status.clone());
        self.reasons.push(payment.decline_reason.clone());
        self.keys.push(command.idempotency_key.clone());
        Ok(match decline {
            None => Authorization::Approved(payment),
            Some(decline) => {
                metrics::counter!("payment_declines_total", "reason" => decline.as_str())
                    .increment(1);
                Authorization::Refused(decline.error())
            }
        })
    }

    async fn run(self, conn: &mut PgConnection) -> Result<(), Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let mut b = Binds::new();
        let sql = format!(
            "WITH u AS MATERIALIZED (
                 SELECT * FROM {}
                     AS u(tenant_id, id, order_id, customer_id, amount_cents, currency, status, decline_reason, idempotency_key)
             ), hold AS (
                 UPDATE accounts a SET held_cents = a.held_cents + h.amount, updated_at = now()
                 FROM (
                     SELECT tenant_id, customer_id, sum(amount_cents)::bigint AS amount FROM u
                     WHERE status = 'AUTHORIZED' GROUP BY tenant_id, customer_id
                 ) AS h
                 WHERE a.tenant_id = h.tenant_id AND a.customer_id = h.customer_id
             ), event AS ({})
             INSERT INTO payments (id, tenant_id, order_id, customer_id, amount_cents, currency, status, decline_reason, idempotency_key)
             SELECT id, tenant_id, order_id, customer_id, amount_cents, currency, status, decline_reason, idempotency_key FROM u",
            b.unnest((
                self.tenants,
                self.ids,
                self.orders,
                self.customers,
                self.amounts,
                self.currencies,
                self.statuses,
                self.reasons,
                self.keys,
            )),
            OutboxRow::insert_many(self.events, &mut b),
        );
        b.execute(sql, &mut *conn).await.map_err(store::db_error)?;
        Ok(())
    }
}
