//! Postgres access for accounts, payments and tombstones. Every function runs on a connection
//! inside a transaction the caller opened with `longship_tenant::begin`, so row-level security
//! scopes it to one tenant; queries name the tenant as well.
//!
//! Commands for one order are serialised by a transaction-level advisory lock on (tenant, order):
//! Authorize and Void touch different tables (payments, tombstones), so row locks alone could let a
//! Void and an Authorize both believe they came first. Then the account row is locked.

use longship_errors::Error;
use longship_messaging::{NewEvent, enqueue};
use longship_tenant::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{
    self, Account, AccountInput, CaptureAction, Decline, Funds, PaymentStatus, VoidAction,
    VoidOutcome,
};
use crate::events;

/// Named constraints and the client errors they mean.
const CONSTRAINTS: longship_errors::ConstraintMap<'static> =
    &[("accounts_held_within_balance", domain::balance_below_held)];

fn db_error(err: sqlx::Error) -> Error {
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

impl AccountRow {
    /// Money that may still be held.
    pub fn available_cents(&self) -> i64 {
        self.balance_cents - self.held_cents
    }

    fn domain(&self) -> Account {
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
    fn parsed_status(&self) -> Result<PaymentStatus, Error> {
        PaymentStatus::parse(&self.status).ok_or_else(|| {
            Error::internal(std::io::Error::other(format!(
                "unknown payment status {:?}",
                self.status
            )))
        })
    }

    fn event(&self) -> events::PaymentEvent {
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
    sqlx::query_as::<_, AccountRow>(
        "INSERT INTO accounts (tenant_id, customer_id, currency, balance_cents) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE
           SET currency = EXCLUDED.currency, balance_cents = EXCLUDED.balance_cents, updated_at = now()
         RETURNING customer_id, currency, balance_cents, held_cents",
    )
    .bind(tenant.as_str())
    .bind(&input.customer_id)
    .bind(&input.currency)
    .bind(input.balance_cents)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

/// One account of the tenant, if it exists.
pub async fn find_account(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer_id: &str,
) -> Result<Option<AccountRow>, Error> {
    if !crate::domain::is_valid_customer_id(customer_id) {
        // no such account can exist, and Postgres would refuse a NUL in the parameter
        return Ok(None);
    }
    sqlx::query_as::<_, AccountRow>(
        "SELECT customer_id, currency, balance_cents, held_cents FROM accounts WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

/// The tenant's payments for an order (at most one; a list so the API can grow).
pub async fn payments_for_order(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Vec<Payment>, Error> {
    sqlx::query_as::<_, Payment>(
        "SELECT id, order_id, customer_id, amount_cents, currency, status, decline_reason
         FROM payments WHERE tenant_id = $1 AND order_id = $2 ORDER BY created_at, id",
    )
    .bind(tenant.as_str())
    .bind(order_id)
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
/// a decline); an Authorize after a Void of the order is refused.
pub async fn authorize(
    conn: &mut PgConnection,
    tenant: &TenantId,
    command: &AuthorizeCommand,
) -> Result<Authorization, Error> {
    lock_order(&mut *conn, tenant, command.order_id).await?;
    if tombstoned(&mut *conn, tenant, command.order_id).await? {
        return Ok(Authorization::Refused(Error::failed_precondition(
            "payment.voided",
            "the payment for this order was voided before it was authorized",
        )));
    }
    if let Some(existing) = payment(&mut *conn, tenant, command.order_id).await? {
        return Ok(match existing.parsed_status()? {
            PaymentStatus::Declined => {
                let decline = existing
                    .decline_reason
                    .as_deref()
                    .and_then(Decline::parse)
                    .unwrap_or(Decline::InsufficientFunds);
                Authorization::Refused(decline.error())
            }
            _ => Authorization::Approved(existing),
        });
    }

    let account = lock_account(&mut *conn, tenant, &command.customer_id).await?;
    let decision = domain::authorize(
        account.as_ref().map(AccountRow::domain).as_ref(),
        &command.currency,
        command.amount_cents,
    );
    let (status, decline) = match &decision {
        Ok(_) => (PaymentStatus::Authorized, None),
        Err(decline) => (PaymentStatus::Declined, Some(decline.clone())),
    };
    if decision.is_ok() {
        sqlx::query(
            "UPDATE accounts SET held_cents = held_cents + $3, updated_at = now() WHERE tenant_id = $1 AND customer_id = $2",
        )
        .bind(tenant.as_str())
        .bind(&command.customer_id)
        .bind(command.amount_cents)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    let inserted = sqlx::query_as::<_, Payment>(
        "INSERT INTO payments (id, tenant_id, order_id, customer_id, amount_cents, currency, status, decline_reason, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id, order_id, customer_id, amount_cents, currency, status, decline_reason",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_str())
    .bind(command.order_id)
    .bind(&command.customer_id)
    .bind(command.amount_cents)
    .bind(&command.currency)
    .bind(status.as_str())
    .bind(decline.as_ref().map(Decline::as_str))
    .bind(&command.idempotency_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)?;
    match decline {
        None => {
            enqueue_event(conn, tenant, events::PAYMENT_AUTHORIZED, &inserted.event()).await?;
            Ok(Authorization::Approved(inserted))
        }
        Some(decline) => {
            metrics::counter!("payment_declines_total", "reason" => decline.as_str()).increment(1);
            enqueue_event(conn, tenant, events::PAYMENT_DECLINED, &inserted.event()).await?;
            Ok(Authorization::Refused(decline.error()))
        }
    }
}

/// Releases the order's hold (the saga's compensation). Idempotent; records a tombstone when
/// nothing was authorized so that a late Authorize is refused.
pub async fn void(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<VoidOutcome, Error> {
    lock_order(&mut *conn, tenant, order_id).await?;
    let current = payment(&mut *conn, tenant, order_id).await?;
    let status = current.as_ref().map(Payment::parsed_status).transpose()?;
    match (domain::decide_void(status), current) {
        (VoidAction::Nothing(outcome), _) => Ok(outcome),
        (VoidAction::Void, Some(payment)) => {
            lock_account(&mut *conn, tenant, &payment.customer_id).await?;
            sqlx::query(
                "UPDATE accounts SET held_cents = held_cents - $3, updated_at = now() WHERE tenant_id = $1 AND customer_id = $2",
            )
            .bind(tenant.as_str())
            .bind(&payment.customer_id)
            .bind(payment.amount_cents)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            let voided = set_status(&mut *conn, tenant, payment.id, PaymentStatus::Voided).await?;
            enqueue_event(conn, tenant, events::PAYMENT_VOIDED, &voided.event()).await?;
            Ok(VoidOutcome::Voided)
        }
        (VoidAction::Tombstone | VoidAction::Void, _) => {
            sqlx::query(
                "INSERT INTO payment_tombstones (tenant_id, order_id) VALUES ($1, $2) ON CONFLICT (tenant_id, order_id) DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(order_id)
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
/// order without an authorization is logged and counted.
pub async fn capture(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Capture, Error> {
    lock_order(&mut *conn, tenant, order_id).await?;
    let current = payment(&mut *conn, tenant, order_id).await?;
    let status = current.as_ref().map(Payment::parsed_status).transpose()?;
    match (domain::decide_capture(status), current) {
        (CaptureAction::Capture, Some(payment)) => {
            lock_account(&mut *conn, tenant, &payment.customer_id).await?;
            sqlx::query(
                "UPDATE accounts SET balance_cents = balance_cents - $3, held_cents = held_cents - $3, updated_at = now()
                 WHERE tenant_id = $1 AND customer_id = $2",
            )
            .bind(tenant.as_str())
            .bind(&payment.customer_id)
            .bind(payment.amount_cents)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            let captured =
                set_status(&mut *conn, tenant, payment.id, PaymentStatus::Captured).await?;
            enqueue_event(conn, tenant, events::PAYMENT_CAPTURED, &captured.event()).await?;
            Ok(Capture::Captured(captured))
        }
        (CaptureAction::AlreadyCaptured, Some(payment)) => Ok(Capture::AlreadyCaptured(payment)),
        (_, current) => {
            metrics::counter!("payment_capture_without_authorization_total").increment(1);
            tracing::warn!(
                %order_id,
                status = status.map(PaymentStatus::as_str).unwrap_or("NONE"),
                "capture requested but nothing is authorized for the order; nothing captured"
            );
            Ok(Capture::NotCapturable(current))
        }
    }
}

async fn lock_order(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("payment:{tenant}:{order_id}"))
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn tombstoned(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<bool, Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_tombstones WHERE tenant_id = $1 AND order_id = $2)",
    )
    .bind(tenant.as_str())
    .bind(order_id)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

async fn payment(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Option<Payment>, Error> {
    sqlx::query_as::<_, Payment>(
        "SELECT id, order_id, customer_id, amount_cents, currency, status, decline_reason
         FROM payments WHERE tenant_id = $1 AND order_id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(order_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

async fn lock_account(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer_id: &str,
) -> Result<Option<AccountRow>, Error> {
    sqlx::query_as::<_, AccountRow>(
        "SELECT customer_id, currency, balance_cents, held_cents FROM accounts
         WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

async fn set_status(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    status: PaymentStatus,
) -> Result<Payment, Error> {
    sqlx::query_as::<_, Payment>(
        "UPDATE payments SET status = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2
         RETURNING id, order_id, customer_id, amount_cents, currency, status, decline_reason",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(status.as_str())
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

async fn enqueue_event(
    conn: &mut PgConnection,
    tenant: &TenantId,
    event_type: &str,
    payload: &impl serde::Serialize,
) -> Result<(), Error> {
    let event = NewEvent::new(event_type, tenant, payload).map_err(Error::internal)?;
    enqueue(conn, &event).await.map_err(db_error)?;
    Ok(())
}
