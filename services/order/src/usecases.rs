//! The order service's use cases, one function each, shared by the HTTP and gRPC adapters: each is
//! one tenant-scoped transaction over the store, and answers with the API's view.

use longship_errors::{Error, PlatformCode};
use longship_messaging::OutboxRow;
use longship_runtime::TenantDb;
use longship_saga::{SagaEngine, SagaView};
use longship_tenant::TenantId;
use uuid::Uuid;

use crate::api::OrderView;
use crate::domain::{self, OrderCode, OrderLine, PlaceOrderRequest};
use crate::events;
use crate::saga::PlaceOrderData;
use crate::store;

/// The use cases over the service's database and its saga engine.
#[derive(Debug, Clone)]
pub struct Orders {
    db: TenantDb,
    sagas: SagaEngine<PlaceOrderData>,
}

/// What placing an order produced.
#[derive(Debug)]
pub struct Placed {
    /// The order.
    pub order: OrderView,
    /// False when an earlier request with the same key created it.
    pub created: bool,
}

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, &[])
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(std::io::Error::other(e.to_string()))
}

impl Orders {
    /// The use cases; `db`'s relay is woken after each commit that enqueued an event.
    pub fn new(db: TenantDb, sagas: SagaEngine<PlaceOrderData>) -> Orders {
        Orders { db, sagas }
    }

    /// Places an order: one statement writes the order (PENDING), its saga and `order_placed`;
    /// the saga then runs at once. With an idempotency key, a repeat returns the first order.
    pub async fn place_order(
        &self,
        tenant: &TenantId,
        key: Option<&str>,
        request: PlaceOrderRequest,
    ) -> Result<Placed, Error> {
        if key.is_some_and(|k| !domain::valid_idempotency_key(k)) {
            return Err(Error::from_code(OrderCode::InvalidIdempotencyKey));
        }
        domain::validate(&request).map_err(Error::validation)?;
        let fingerprint = domain::fingerprint(&request);
        let id = Uuid::now_v7();
        tracing::Span::current().record("order_id", id.to_string());
        let items: Vec<OrderLine> = request
            .items
            .iter()
            .map(|i| OrderLine {
                sku: i.sku.clone(),
                quantity: i.quantity,
                unit_price_cents: None,
            })
            .collect();
        let placed = events::OrderPlaced {
            order_id: id,
            customer_id: request.customer_id.clone(),
            currency: request.currency.clone(),
            items: items.clone(),
        };
        let event = OutboxRow::new(events::ORDER_PLACED, tenant, &placed).map_err(internal)?;
        let data = PlaceOrderData {
            order_id: id,
            customer_id: request.customer_id.clone(),
            currency: request.currency.clone(),
            items: items.clone(),
            total_cents: None,
        };
        let (saga, started) = self.sagas.prepare(id, tenant, data).map_err(internal)?;
        let new = store::NewOrder {
            id,
            tenant,
            customer_id: &request.customer_id,
            currency: &request.currency,
            items: &items,
            idempotency_key: key,
            request_hash: &fingerprint,
        };
        // one statement, its own transaction: committed when it answers
        let Some(created_at) = store::insert_order(self.db.pool(), &new, event, saga)
            .await
            .map_err(db)?
        else {
            // the key is taken (possibly by a request that just committed): answer with its order
            let replay = async |tx: &mut _| self.replay(tx, tenant, key, &fingerprint).await;
            let order = self.db.transact(tenant, replay).await?;
            metrics::counter!("orders_idempotent_replays_total").increment(1);
            return Ok(Placed {
                order,
                created: false,
            });
        };
        // the answer is what was just written (no read-back: one statement less per order)
        let order = OrderView {
            id,
            customer_id: request.customer_id,
            status: "PENDING".to_owned(),
            currency: request.currency,
            total_cents: 0,
            items,
            failure_reason: None,
            created_at,
            updated_at: created_at,
            saga: Some(SagaView::starting(started.version(), started.progress())),
        };
        self.sagas.launch(started);
        self.db.wake_relay();
        metrics::counter!("orders_placed_total").increment(1);
        Ok(Placed {
            order,
            created: true,
        })
    }

    /// The order that holds `key` when its request had the same fingerprint.
    async fn replay(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: &TenantId,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<OrderView, Error> {
        let key = key.ok_or_else(|| internal("an insert without a key conflicted"))?;
        let (existing, hash) = store::find_by_idempotency_key(tx, tenant, key)
            .await
            .map_err(db)?
            .ok_or_else(|| {
                Error::coded(
                    PlatformCode::Retry,
                    "a concurrent request holds this key, retry",
                )
            })?;
        if hash.as_deref() != Some(fingerprint) {
            return Err(Error::from_code(OrderCode::IdempotencyKeyReused));
        }
        let order = store::get_order(tx, tenant, existing)
            .await
            .map_err(db)?
            .ok_or_else(|| internal("the order vanished under its idempotency key"))?;
        Ok(order.into())
    }

    /// One order of the tenant (404 for unknown and for other tenants' orders alike).
    pub async fn get_order(&self, tenant: &TenantId, id: Uuid) -> Result<OrderView, Error> {
        tracing::Span::current().record("order_id", id.to_string());
        let find = async |tx: &mut _| store::get_order(tx, tenant, id).await.map_err(db);
        let order = self.db.transact(tenant, find).await?;
        order
            .map(OrderView::from)
            .ok_or_else(|| Error::coded(OrderCode::NotFound, "no such order"))
    }

    /// A page of the tenant's orders, newest first.
    pub async fn list_orders(
        &self,
        tenant: &TenantId,
        status: Option<&str>,
        cursor: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<OrderView>, Error> {
        let list = async |tx: &mut _| {
            let orders = store::list_orders(tx, tenant, status, cursor, limit).await;
            orders.map_err(db)
        };
        let orders = self.db.transact(tenant, list).await?;
        Ok(orders.into_iter().map(OrderView::from).collect())
    }
}
