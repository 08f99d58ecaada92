//! The payment service's use cases, one function each, shared by the HTTP and gRPC adapters:
//! each is one tenant-scoped transaction over the store, and wakes the relay after a commit that
//! enqueued an event.

use std::collections::BTreeSet;

use longship_errors::Error;
use longship_messaging::RelayWake;
use longship_tenant::TenantId;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{self, AccountInput, PaymentCode, VoidOutcome};
use crate::store::{self, AccountRow, Authorization, AuthorizeCommand, Capture, Payment};

/// The use cases over the service's pool and relay.
#[derive(Debug, Clone)]
pub struct Funds {
    pool: PgPool,
    relay: RelayWake,
}

impl Funds {
    /// The use cases.
    pub fn new(pool: PgPool, relay: RelayWake) -> Funds {
        Funds { pool, relay }
    }

    /// Creates or updates an account, setting its balance.
    pub async fn put_account(
        &self,
        tenant: &TenantId,
        input: AccountInput,
    ) -> Result<AccountRow, Error> {
        domain::validate_account(&input)?;
        let upsert = async |tx: &mut _| store::upsert_account(tx, tenant, &input).await;
        longship_tenant::transact(&self.pool, tenant, upsert).await
    }

    /// One account of the tenant.
    pub async fn account(&self, tenant: &TenantId, customer_id: &str) -> Result<AccountRow, Error> {
        let find = async |tx: &mut _| store::find_account(tx, tenant, customer_id).await;
        let account = longship_tenant::transact(&self.pool, tenant, find).await?;
        account.ok_or_else(|| {
            Error::coded(PaymentCode::AccountNotFound, "no account for this customer")
        })
    }

    /// An order's payments (none for unknown orders and for other tenants' orders alike).
    pub async fn payments_for_order(
        &self,
        tenant: &TenantId,
        order_id: Uuid,
    ) -> Result<Vec<Payment>, Error> {
        let find = async |tx: &mut _| store::payments_for_order(tx, tenant, order_id).await;
        let payments = longship_tenant::transact(&self.pool, tenant, find).await?;
        Ok(payments)
    }

    /// Holds funds for the order, or declines (the decline is recorded too); idempotent by order.
    pub async fn authorize(
        &self,
        tenant: &TenantId,
        command: AuthorizeCommand,
    ) -> Result<Payment, Error> {
        domain::validate_authorize(
            &command.customer_id,
            command.amount_cents,
            &command.currency,
        )?;
        let mut tx = store::OrderTx::begin(&self.pool, tenant, command.order_id).await?;
        let authorization = store::authorize(&mut tx, &command).await?;
        // a decline is recorded too: commit first, answer the refusal after
        tx.commit().await?;
        self.relay.wake();
        match authorization {
            Authorization::Approved(payment) => Ok(payment),
            Authorization::Refused(err) => Err(err),
        }
    }

    /// Authorizes many orders, of one tenant or several, answering each as [`Funds::authorize`]
    /// would (in `commands`' order). The orders of one tenant go in one transaction with
    /// set-based statements ([`crate::batch`]); the tenants' transactions run side by side. A
    /// transaction that fails as a whole (a database failure, not a decline) is handled again
    /// order by order.
    pub async fn authorize_batch(
        &self,
        commands: Vec<(TenantId, AuthorizeCommand)>,
    ) -> Vec<Result<Payment, Error>> {
        longship_tenant::batch::per_tenant(
            "Authorize",
            commands,
            |command| {
                domain::validate_authorize(
                    &command.customer_id,
                    command.amount_cents,
                    &command.currency,
                )
            },
            |tenant, group| {
                let this = self.clone();
                async move { this.authorize_group(&tenant, &group).await }
            },
        )
        .await
    }

    /// The orders of one tenant: one transaction, or one by one when it fails as a whole (or when
    /// an order appears twice, which the set-based statements do not handle).
    async fn authorize_group(
        &self,
        tenant: &TenantId,
        group: &[AuthorizeCommand],
    ) -> Vec<Result<Payment, Error>> {
        let ids: BTreeSet<Uuid> = group.iter().map(|c| c.order_id).collect();
        if group.len() > 1 && ids.len() == group.len() {
            let commands: Vec<AuthorizeCommand> = group.to_vec();
            match self.authorize_set(tenant, &commands).await {
                Ok(answers) => {
                    return answers
                        .into_iter()
                        .map(|a| match a {
                            Authorization::Approved(payment) => Ok(payment),
                            Authorization::Refused(err) => Err(err),
                        })
                        .collect();
                }
                Err(e) => {
                    metrics::counter!("payment_batch_fallbacks_total").increment(1);
                    tracing::warn!(error = %e, orders = group.len(), "batched Authorize failed as a whole; authorizing one by one");
                }
            }
        }
        let mut answers = Vec::with_capacity(group.len());
        for command in group {
            answers.push(self.authorize(tenant, command.clone()).await);
        }
        answers
    }

    async fn authorize_set(
        &self,
        tenant: &TenantId,
        commands: &[AuthorizeCommand],
    ) -> Result<Vec<Authorization>, Error> {
        let orders: Vec<Uuid> = commands.iter().map(|c| c.order_id).collect();
        let lock = crate::batch::lock_orders(tenant, &orders);
        let mut tx = longship_tenant::begin_then(&self.pool, tenant, &lock)
            .await
            .map_err(store::db_error)?;
        let answers = crate::batch::authorize_many(&mut tx, tenant, commands).await?;
        // declines are recorded too: commit first, answer the refusals after
        tx.commit().await.map_err(store::db_error)?;
        self.relay.wake();
        Ok(answers)
    }

    /// Releases the order's hold (idempotent; a tombstone when nothing was authorized).
    pub async fn void(&self, tenant: &TenantId, order_id: Uuid) -> Result<VoidOutcome, Error> {
        let mut tx = store::OrderTx::begin(&self.pool, tenant, order_id).await?;
        let outcome = store::void(&mut tx).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(outcome)
    }

    /// Captures the order's authorized payment (idempotent).
    pub async fn capture(&self, tenant: &TenantId, order_id: Uuid) -> Result<Payment, Error> {
        let capture = async |tx: &mut _| store::capture(tx, tenant, order_id).await;
        let captured = longship_tenant::transact(&self.pool, tenant, capture).await?;
        self.relay.wake();
        match captured {
            Capture::Captured(payment) | Capture::AlreadyCaptured(payment) => Ok(payment),
            Capture::NotCapturable(None) => Err(Error::coded(
                PaymentCode::NotFound,
                "no payment for this order",
            )),
            Capture::NotCapturable(Some(payment)) => Err(Error::coded(
                PaymentCode::NotCapturable,
                format!("the payment is {} and cannot be captured", payment.status),
            )),
        }
    }
}
