//! The inventory service's use cases, one function each, shared by the HTTP and gRPC adapters:
//! each is one tenant-scoped transaction over the store, and wakes the relay after a commit that
//! enqueued an event.

use std::time::Duration;

use longship_errors::Error;
use longship_runtime::TenantDb;
use longship_tenant::TenantId;
use uuid::Uuid;

use crate::domain::{
    self, CommitOutcome, InventoryCode, ProductInput, ReleaseOutcome, RequestedLine,
};
use crate::store::{self, Product, ReserveCommand, Reserved};

/// The use cases over the service's database.
#[derive(Debug, Clone)]
pub struct Stock {
    db: TenantDb,
    reservation_ttl: Duration,
}

/// A Reserve command as the adapters receive it.
#[derive(Debug, Clone)]
pub struct ReserveOrder {
    /// The order.
    pub order_id: Uuid,
    /// The saga's idempotency key.
    pub idempotency_key: String,
    /// The order's currency.
    pub currency: String,
    /// What to reserve.
    pub lines: Vec<RequestedLine>,
}

impl Stock {
    /// The use cases; reservations hold stock for `reservation_ttl` unless committed or released.
    pub fn new(db: TenantDb, reservation_ttl: Duration) -> Stock {
        Stock {
            db,
            reservation_ttl,
        }
    }

    /// Creates or replaces a product, setting its stock on hand.
    pub async fn put_product(
        &self,
        tenant: &TenantId,
        input: ProductInput,
    ) -> Result<Product, Error> {
        domain::validate_product(&input)?;
        let upsert = async |tx: &mut _| store::upsert_product(tx, tenant, &input).await;
        self.db.transact(tenant, upsert).await
    }

    /// One product of the tenant.
    pub async fn product(&self, tenant: &TenantId, sku: &str) -> Result<Product, Error> {
        let missing = || Error::coded(InventoryCode::ProductNotFound, "no product with this sku");
        self.db.find(tenant, store::PRODUCT, sku, missing).await
    }

    /// Reserves every line or none (idempotent by order id).
    pub async fn reserve(&self, tenant: &TenantId, order: ReserveOrder) -> Result<Reserved, Error> {
        domain::validate_reserve(&order.currency, &order.lines)?;
        let command = ReserveCommand {
            order_id: order.order_id,
            idempotency_key: order.idempotency_key,
            currency: order.currency,
            lines: order.lines,
            ttl: self.reservation_ttl,
        };
        let reserve = async |tx: &mut _| store::reserve(tx, tenant, &command).await;
        self.db.transact_publishing(tenant, reserve).await
    }

    /// Reserves for many orders, of one tenant or several, answering each as [`Stock::reserve`]
    /// would (in `orders`' order): all of them in one transaction of their tenant set, with
    /// set-based statements ([`crate::batch`]). A transaction that fails as a whole (a database
    /// failure, not a refusal) is handled again order by order, and so is an order's second
    /// appearance in the batch ([`longship_tenant::batch::in_one_set`]).
    pub async fn reserve_batch(
        &self,
        orders: Vec<(TenantId, ReserveOrder)>,
    ) -> Vec<Result<Reserved, Error>> {
        longship_tenant::batch::in_one_set(
            "Reserve",
            crate::metrics::BATCH_FALLBACKS.name,
            orders,
            |order| domain::validate_reserve(&order.currency, &order.lines),
            |order| order.order_id,
            |batch| async move { self.reserve_set(&batch).await },
            |tenant, order| async move { self.reserve(&tenant, order).await },
        )
        .await
    }

    async fn reserve_set(
        &self,
        orders: &[(TenantId, ReserveOrder)],
    ) -> Result<Vec<Result<Reserved, Error>>, Error> {
        let commands: Vec<(TenantId, ReserveCommand)> = orders
            .iter()
            .map(|(t, o)| (t.clone(), self.command(o.clone())))
            .collect();
        let tenants = longship_tenant::batch::tenants_of(&commands);
        let mut tx = longship_tenant::begin_set(self.db.pool(), &tenants).await?;
        let answers =
            crate::batch::reserve_many(&mut tx, &commands, self.reservation_ttl.as_secs_f64())
                .await?;
        tx.commit().await?;
        self.db.wake_relay();
        Ok(answers)
    }

    fn command(&self, order: ReserveOrder) -> ReserveCommand {
        ReserveCommand {
            order_id: order.order_id,
            idempotency_key: order.idempotency_key,
            currency: order.currency,
            lines: order.lines,
            ttl: self.reservation_ttl,
        }
    }

    /// Releases the order's reservation (idempotent; a tombstone when nothing was reserved).
    pub async fn release(
        &self,
        tenant: &TenantId,
        order_id: Uuid,
    ) -> Result<ReleaseOutcome, Error> {
        let release = async |tx: &mut _| store::release(tx, tenant, order_id).await;
        self.db.transact_publishing(tenant, release).await
    }

    /// Commits the order's reservation (idempotent).
    pub async fn commit(&self, tenant: &TenantId, order_id: Uuid) -> Result<CommitOutcome, Error> {
        let commit = async |tx: &mut _| store::commit(tx, tenant, order_id).await;
        self.db.transact_publishing(tenant, commit).await
    }
}
