//! The payment service's use cases, one function each, shared by the HTTP and gRPC adapters:
//! each is one tenant-scoped transaction over the store, and wakes the relay after a commit that
//! enqueued an event.

use longship_errors::Error;
use longship_runtime::TenantDb;
use longship_tenant::TenantId;
use uuid::Uuid;

use crate::domain::{self, AccountInput, PaymentCode, VoidOutcome};
use crate::store::{self, AccountRow, Authorization, AuthorizeCommand, Capture, Payment};

/// The use cases over the service's database.
#[derive(Debug, Clone)]
pub struct Funds {
    db: TenantDb,
}

impl Funds {
    /// The use cases.
    pub fn new(db: TenantDb) -> Funds {
        Funds { db }
    }

    /// Creates or updates an account, setting its balance.
    pub async fn put_account(
        &self,
        tenant: &TenantId,
        input: AccountInput,
    ) -> Result<AccountRow, Error> {
        domain::validate_account(&input)?;
        let upsert = async |tx: &mut _| store::upsert_account(tx, tenant, &input).await;
        self.db.transact(tenant, upsert).await
    }

    /// One account of the tenant.
    pub async fn account(&self, tenant: &TenantId, customer_id: &str) -> Result<AccountRow, Error> {
        let missing = || Error::coded(PaymentCode::AccountNotFound, "no account for this customer");
        self.db
            .find(tenant, store::ACCOUNT, customer_id, missing)
            .await
    }

    /// An order's payments (none for unknown orders and for other tenants' orders alike).
    pub async fn payments_for_order(
        &self,
        tenant: &TenantId,
        order_id: Uuid,
    ) -> Result<Vec<Payment>, Error> {
        let find = async |tx: &mut _| store::payments_for_order(tx, tenant, order_id).await;
        self.db.transact(tenant, find).await
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
        let mut tx = store::OrderTx::begin(self.db.pool(), tenant, command.order_id).await?;
        let authorization = store::authorize(&mut tx, &command).await?;
        // a decline is recorded too: commit first, answer the refusal after
        tx.commit().await?;
        self.db.wake_relay();
        match authorization {
            Authorization::Approved(payment) => Ok(payment),
            Authorization::Refused(err) => Err(err),
        }
    }

    /// Authorizes many orders, of one tenant or several, answering each as [`Funds::authorize`]
    /// would (in `commands`' order): all of them in one transaction of their tenant set, with
    /// set-based statements ([`crate::batch`]). A transaction that fails as a whole (a database
    /// failure, not a decline) is handled again order by order, and so is an order's second
    /// appearance in the batch ([`longship_tenant::batch::in_one_set`]).
    pub async fn authorize_batch(
        &self,
        commands: Vec<(TenantId, AuthorizeCommand)>,
    ) -> Vec<Result<Payment, Error>> {
        longship_tenant::batch::in_one_set(
            "Authorize",
            crate::metrics::BATCH_FALLBACKS.name,
            commands,
            |command| {
                domain::validate_authorize(
                    &command.customer_id,
                    command.amount_cents,
                    &command.currency,
                )
            },
            |command| command.order_id,
            |batch| async move { self.authorize_set(&batch).await },
            |tenant, command| async move { self.authorize(&tenant, command).await },
        )
        .await
    }

    async fn authorize_set(
        &self,
        commands: &[(TenantId, AuthorizeCommand)],
    ) -> Result<Vec<Result<Payment, Error>>, Error> {
        let orders: Vec<(TenantId, Uuid)> = commands
            .iter()
            .map(|(t, c)| (t.clone(), c.order_id))
            .collect();
        let lock = crate::batch::lock_orders(&orders);
        let tenants = longship_tenant::batch::tenants_of(commands);
        let mut tx = longship_tenant::begin_set_then(self.db.pool(), &tenants, &lock)
            .await
            .map_err(store::db_error)?;
        let answers = crate::batch::authorize_many(&mut tx, commands).await?;
        // declines are recorded too: commit first, answer the refusals after
        tx.commit().await.map_err(store::db_error)?;
        self.db.wake_relay();
        Ok(answers
            .into_iter()
            .map(|a| match a {
                Authorization::Approved(payment) => Ok(payment),
                Authorization::Refused(err) => Err(err),
            })
            .collect())
    }

    /// Releases the order's hold (idempotent; a tombstone when nothing was authorized).
    pub async fn void(&self, tenant: &TenantId, order_id: Uuid) -> Result<VoidOutcome, Error> {
        let mut tx = store::OrderTx::begin(self.db.pool(), tenant, order_id).await?;
        let outcome = store::void(&mut tx).await?;
        tx.commit().await?;
        self.db.wake_relay();
        Ok(outcome)
    }

    /// Captures the order's authorized payment (idempotent).
    pub async fn capture(&self, tenant: &TenantId, order_id: Uuid) -> Result<Payment, Error> {
        let capture = async |tx: &mut _| store::capture(tx, tenant, order_id).await;
        let captured = self.db.transact_publishing(tenant, capture).await?;
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
