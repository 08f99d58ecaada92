//! Postgres access for accounts, payments and tombstones. Every function runs on a connection
//! inside a transaction the caller opened with `longship_tenant::begin`, so row-level security
//! scopes it to one tenant; queries name the tenant as well. The set-based [`capture_many`] runs
//! under a set of tenants instead and keys every order's rows by its own tenant.
//!
//! Authorize and Void for one order are serialised by a transaction-level advisory lock on
//! (tenant, order): they touch different tables (payments, tombstones), so row locks alone could
//! let a Void and an Authorize both believe they came first. Then the account row is locked.
//! Capture needs only the payment row's lock: it changes an existing payment, and every command
//! that changes a payment locks its row first (a Capture waiting on a Void's lock reads the row as
//! the Void left it, and the other way round).

use longship_errors::Error;
use longship_messaging::OutboxRow;
use longship_sql::Binds;
use longship_tenant::{TenantId, keyed, keyed_as};
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::domain::{
    self, Account, AccountInput, CaptureAction, Decline, Funds, PaymentCode, PaymentStatus,
    VoidAction, VoidOutcome,
};
use crate::events;

mod many;

pub use many::{CaptureItem, capture_many};

/// Named constraints and the client errors they mean.
const CONSTRAINTS: longship_errors::ConstraintMap<'static> =
    &[("accounts_held_within_balance", domain::balance_below_held)];

pub(crate) fn db_error(err: sqlx::Error) -> Error {
    Error::from_sqlx(err, CONSTRAINTS)
}

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    /// The customer.
    pub customer_id: String,
    /// The account's currency.
    pub currency: String,
    /// Money on the account.
    pub balance_cents: i64,
    /// Money held for authorized payments.
    pub held_cents: i64,
}

/// The [`AccountRow`] of the tenant with the customer id `$2`, for
/// [`longship_runtime::TenantDb::find`].
pub const ACCOUNT: &str = "SELECT customer_id, currency, balance_cents, held_cents FROM accounts WHERE tenant_id = $1 AND customer_id = $2";

impl AccountRow {
    /// Money that may still be held.
    pub fn available_cents(&self) -> i64 {
        self.balance_cents - self.held_cents
    }

    pub(crate) fn domain(&self) -> Account {
        Account {
            currency: self.currency.clone(),
            funds: Funds {
                balance_cents: self.balance_cents,
                held_cents: self.held_cents,
            },
        }
    }
}

/// A payment row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Payment {
    /// The payment id (UUID v7).
    pub id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// Who pays.
    pub customer_id: String,
    /// The amount.
    pub amount_cents: i64,
    /// Its currency.
    pub currency: String,
    /// AUTHORIZED, CAPTURED, VOIDED or DECLINED.
    pub status: String,
    /// Why it was declined.
    pub decline_reason: Option<String>,
}

impl Payment {
    pub(crate) fn parsed_status(&self) -> Result<PaymentStatus, Error> {
        PaymentStatus::parse(&self.status).ok_or_else(|| {
            Error::internal(std::io::Error::other(format!(
                "unknown payment status {:?}",
                self.status
            )))
        })
    }

    pub(crate) fn event(&self) -> events::PaymentEvent {
        events::PaymentEvent {
            payment_id: self.id,
            order_id: self.order_id,
            customer_id: self.customer_id.clone(),
            amount_cents: self.amount_cents,
            currency: self.currency.clone(),
            reason: self.decline_reason.clone(),
        }
    }
}

/// Creates or updates an account, setting its balance (holds are kept and must stay covered).
pub async fn upsert_account(
    conn: &mut PgConnection,
    tenant: &TenantId,
    input: &AccountInput,
) -> Result<AccountRow, Error> {
    let current = lock_account(&mut *conn, tenant, &input.customer_id).await?;
    domain::check_account_update(current.as_ref().map(AccountRow::domain).as_ref(), input)?;
    keyed_as(
        "INSERT INTO accounts (tenant_id, customer_id, currency, balance_cents) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE
           SET currency = EXCLUDED.currency, balance_cents = EXCLUDED.balance_cents, updated_at = now()
         RETURNING customer_id, currency, balance_cents, held_cents",
        tenant,
        &input.customer_id,
    )
    .bind(&input.currency)
    .bind(input.balance_cents)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

/// The tenant's payments for an order (at most one; a list so the API can grow).
pub async fn payments_for_order(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Vec<Payment>, Error> {
    keyed_as(
        "SELECT id, order_id, customer_id, amount_cents, currency, status, decline_reason
         FROM payments WHERE tenant_id = $1 AND order_id = $2 ORDER BY created_at, id",
        tenant,
        order_id,
    )
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// An Authorize command (validated).
#[derive(Debug, Clone)]
pub struct AuthorizeCommand {
    /// The order to pay for (the idempotency key of the operation).
    pub order_id: Uuid,
    /// The caller's key, kept for auditing.
    pub idempotency_key: String,
    /// Who pays.
    pub customer_id: String,
    /// How much (> 0).
    pub amount_cents: i64,
    /// In which currency.
    pub currency: String,
}

/// How an Authorize ended. A refusal may still have written (a DECLINED payment and its event), so
/// the caller commits in both cases and only then answers the error.
#[derive(Debug)]
pub enum Authorization {
    /// Funds are held (now or by the first attempt).
    Approved(Payment),
    /// Declined or refused, now or by the first attempt.
    Refused(Error),
}

/// Holds funds for an order, idempotently by order id: a repeat answers the first result (including
/// a decline); an Authorize after a Void of the order, before or after its first authorization, is
/// refused (`payment.voided`), as inventory refuses a Reserve after a Release.
pub async fn authorize(
    tx: &mut OrderTx,
    command: &AuthorizeCommand,
) -> Result<Authorization, Error> {
    let (conn, tenant, locked) = tx.parts();
    if command.order_id != locked {
        return Err(Error::internal(std::io::Error::other(
            "an Authorize ran in another order's transaction",
        )));
    }
    let AuthorizeState {
        tombstoned,
        payment: existing,
        account,
    } = authorize_state(&mut *conn, tenant, command).await?;
    if tombstoned {
        return Ok(Authorization::Refused(voided(
            "the payment for this order was voided before it was authorized",
        )));
    }
    if let Some(existing) = existing {
        return Ok(match existing.parsed_status()? {
            PaymentStatus::Declined => {
                let decline = existing
                    .decline_reason
                    .as_deref()
                    .and_then(Decline::parse)
                    .unwrap_or(Decline::InsufficientFunds);
                Authorization::Refused(decline.error())
            }
            // the hold is gone: answering the payment would tell the saga that money is held
            PaymentStatus::Voided => Authorization::Refused(voided(
                "the payment for this order was voided after it was authorized",
            )),
            _ => Authorization::Approved(existing),
        });
    }

    let decision = domain::authorize(
        account.as_ref().map(AccountRow::domain).as_ref(),
        &command.currency,
        command.amount_cents,
    );
    let (status, decline) = match &decision {
        Ok(_) => (PaymentStatus::Authorized, None),
        Err(decline) => (PaymentStatus::Declined, Some(decline.clone())),
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
    let event = OutboxRow::new(event_type, tenant, &payment.event()).map_err(outbox)?;
    // the hold (when approved), the payment row and its event in one statement
    let mut b = Binds::new();
    let (t, customer, amount) = (
        b.push(tenant.as_str()),
        b.push(&payment.customer_id),
        b.push(payment.amount_cents),
    );
    let sql = format!(
        "WITH hold AS (
             UPDATE accounts SET held_cents = held_cents + {amount}, updated_at = now()
             WHERE {} AND tenant_id = {t} AND customer_id = {customer}
         ), event AS ({})
         INSERT INTO payments (id, tenant_id, order_id, customer_id, amount_cents, currency, status, decline_reason, idempotency_key)
         VALUES ({}, {t}, {}, {customer}, {amount}, {}, {}, {}, {})",
        b.push(decline.is_none()),
        event.insert(&mut b),
        b.push(payment.id),
        b.push(payment.order_id),
        b.push(&payment.currency),
        b.push(&payment.status),
        b.push(&payment.decline_reason),
        b.push(&command.idempotency_key),
    );
    b.execute(sql, &mut *conn).await.map_err(db_error)?;
    match decline {
        None => Ok(Authorization::Approved(payment)),
        Some(decline) => {
            metrics::counter!("payment_declines_total", "reason" => decline.as_str()).increment(1);
            Ok(Authorization::Refused(decline.error()))
        }
    }
}

pub(crate) fn voided(message: &'static str) -> Error {
    Error::coded(PaymentCode::Voided, message)
}

pub(crate) fn outbox(e: longship_messaging::OutboxError) -> Error {
    Error::internal(e)
}

/// Releases the order's hold (the saga's compensation). Idempotent; records a tombstone when
/// nothing was authorized so that a late Authorize is refused.
pub async fn void(tx: &mut OrderTx) -> Result<VoidOutcome, Error> {
    let (conn, tenant, order_id) = tx.parts();
    let current = payment(&mut *conn, tenant, order_id).await?;
    let status = current.as_ref().map(Payment::parsed_status).transpose()?;
    match (domain::decide_void(status), current) {
        (VoidAction::Nothing(outcome), _) => Ok(outcome),
        (VoidAction::Void, Some(payment)) => {
            settle(conn, tenant, payment, PaymentStatus::Voided).await?;
            Ok(VoidOutcome::Voided)
        }
        (VoidAction::Tombstone | VoidAction::Void, _) => {
            keyed(
                "INSERT INTO payment_tombstones (tenant_id, order_id) VALUES ($1, $2) ON CONFLICT (tenant_id, order_id) DO NOTHING",
                tenant,
                order_id,
            )
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            Ok(VoidOutcome::Tombstoned)
        }
    }
}

/// How a Capture ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// Captured now.
    Captured(Payment),
    /// Captured before; nothing changed.
    AlreadyCaptured(Payment),
    /// Nothing is held for the order: the payment (if any) is voided or declined.
    NotCapturable(Option<Payment>),
}

/// Captures the order's authorized payment: the money leaves the account. Idempotent. A confirmed
/// order without an authorization is logged and counted. Serialised with Void by the payment row's
/// lock (see the module documentation).
pub async fn capture(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Capture, Error> {
    let current = payment(&mut *conn, tenant, order_id).await?;
    let status = current.as_ref().map(Payment::parsed_status).transpose()?;
    match (domain::decide_capture(status), current) {
        (CaptureAction::Capture, Some(payment)) => {
            let captured = settle(conn, tenant, payment, PaymentStatus::Captured).await?;
            Ok(Capture::Captured(captured))
        }
        (CaptureAction::AlreadyCaptured, Some(payment)) => Ok(Capture::AlreadyCaptured(payment)),
        (_, current) => {
            not_capturable(order_id, current.as_ref());
            Ok(Capture::NotCapturable(current))
        }
    }
}

/// Logs and counts a capture that found nothing authorized for the order.
pub fn not_capturable(order_id: Uuid, payment: Option<&Payment>) {
    metrics::counter!("payment_capture_without_authorization_total").increment(1);
    tracing::warn!(
        %order_id,
        status = payment.map(|p| p.status.as_str()).unwrap_or("NONE"),
        "capture requested but nothing is authorized for the order; nothing captured"
    );
}

/// The key of an order's command lock.
pub(crate) fn order_lock_key(tenant: &TenantId, order_id: Uuid) -> String {
    format!("payment:{tenant}:{order_id}")
}

/// A transaction of one tenant that holds one order's command lock from its first round trip:
/// `BEGIN`, the tenant setting and the lock travel together (the key is built from a checked
/// tenant id and a UUID, so it cannot end its literal), which saves Authorize and Void a round
/// trip. [`authorize`] and [`void`] take it, so they cannot run without the lock.
pub struct OrderTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: TenantId,
    order_id: Uuid,
}

impl OrderTx {
    /// Begins a transaction for `tenant` holding the command lock of `order_id`.
    pub async fn begin(
        pool: &sqlx::PgPool,
        tenant: &TenantId,
        order_id: Uuid,
    ) -> Result<OrderTx, Error> {
        let lock = format!(
            "SELECT pg_advisory_xact_lock(hashtextextended('{}', 0))",
            order_lock_key(tenant, order_id)
        );
        let tx = longship_tenant::begin_then(pool, tenant, &lock)
            .await
            .map_err(db_error)?;
        Ok(OrderTx {
            tx,
            tenant: tenant.clone(),
            order_id,
        })
    }

    /// Commits (and so releases the lock).
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await.map_err(db_error)
    }

    /// The connection, the tenant and the locked order.
    fn parts(&mut self) -> (&mut PgConnection, &TenantId, Uuid) {
        (&mut *self.tx, &self.tenant, self.order_id)
    }
}

/// What an Authorize decides on, read in one statement: whether a Void came first (tombstone), the
/// order's payment and the customer's account, both locked (the payment row first, then the
/// account, as Void and Capture lock them). Run in an [`OrderTx`], after the order's command lock,
/// so no other Authorize or Void for the order is between these reads and the write. A repeated
/// Authorize locks the account too, for the length of its short transaction.
struct AuthorizeState {
    tombstoned: bool,
    payment: Option<Payment>,
    account: Option<AccountRow>,
}

async fn authorize_state(
    conn: &mut PgConnection,
    tenant: &TenantId,
    command: &AuthorizeCommand,
) -> Result<AuthorizeState, Error> {
    let row = keyed(
        "SELECT EXISTS (SELECT 1 FROM payment_tombstones WHERE tenant_id = $1 AND order_id = $2) AS tombstoned,
                p.id, p.order_id, p.customer_id, p.amount_cents, p.currency, p.status, p.decline_reason,
                a.customer_id AS account_customer_id, a.currency AS account_currency,
                a.balance_cents, a.held_cents
         FROM (VALUES (1)) AS one
         LEFT JOIN LATERAL (
             SELECT id, order_id, customer_id, amount_cents, currency, status, decline_reason
             FROM payments WHERE tenant_id = $1 AND order_id = $2 FOR UPDATE
         ) AS p ON true
         LEFT JOIN LATERAL (
             SELECT customer_id, currency, balance_cents, held_cents
             FROM accounts WHERE tenant_id = $1 AND customer_id = $3 FOR UPDATE
         ) AS a ON true",
        tenant,
        command.order_id,
    )
    .bind(&command.customer_id)
    .fetch_one(conn)
    .await
    .map_err(db_error)?;
    let tombstoned: bool = row.try_get("tombstoned").map_err(db_error)?;
    // a missing payment or account reads as all-null columns
    let payment_id: Option<Uuid> = row.try_get("id").map_err(db_error)?;
    let payment = match payment_id {
        Some(_) => Some(Payment::from_row(&row).map_err(db_error)?),
        None => None,
    };
    let account_customer: Option<String> = row.try_get("account_customer_id").map_err(db_error)?;
    let account = match account_customer {
        Some(customer_id) => Some(AccountRow {
            customer_id,
            currency: row.try_get("account_currency").map_err(db_error)?,
            balance_cents: row.try_get("balance_cents").map_err(db_error)?,
            held_cents: row.try_get("held_cents").map_err(db_error)?,
        }),
        None => None,
    };
    Ok(AuthorizeState {
        tombstoned,
        payment,
        account,
    })
}

async fn payment(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Option<Payment>, Error> {
    keyed_as(
        "SELECT id, order_id, customer_id, amount_cents, currency, status, decline_reason
         FROM payments WHERE tenant_id = $1 AND order_id = $2 FOR UPDATE",
        tenant,
        order_id,
    )
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

async fn lock_account(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer_id: &str,
) -> Result<Option<AccountRow>, Error> {
    keyed_as(
        "SELECT customer_id, currency, balance_cents, held_cents FROM accounts
         WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE",
        tenant,
        customer_id,
    )
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

/// Ends a hold: the account's held money is released (VOIDED) or leaves the account (CAPTURED), the
/// payment takes its new status and the matching event is written, in one statement (the account
/// row is locked by the update; the payment row already is).
async fn settle(
    conn: &mut PgConnection,
    tenant: &TenantId,
    mut payment: Payment,
    next: PaymentStatus,
) -> Result<Payment, Error> {
    let event_type = match next {
        PaymentStatus::Captured => events::PAYMENT_CAPTURED,
        _ => events::PAYMENT_VOIDED,
    };
    let event = OutboxRow::new(event_type, tenant, &payment.event()).map_err(outbox)?;
    let mut b = Binds::new();
    let (t, amount) = (b.push(tenant.as_str()), b.push(payment.amount_cents));
    let sql = format!(
        "WITH funds AS (
             UPDATE accounts SET held_cents = held_cents - {amount},
                    balance_cents = balance_cents - CASE WHEN {} THEN {amount} ELSE 0 END, updated_at = now()
             WHERE tenant_id = {t} AND customer_id = {}
         ), event AS ({})
         UPDATE payments SET status = {}, updated_at = now() WHERE tenant_id = {t} AND id = {}",
        b.push(next == PaymentStatus::Captured),
        b.push(&payment.customer_id),
        event.insert(&mut b),
        b.push(next.as_str()),
        b.push(payment.id),
    );
    b.execute(sql, &mut *conn).await.map_err(db_error)?;
    payment.status = next.as_str().to_owned();
    Ok(payment)
}
