//! The order service's use cases, shared by the HTTP and gRPC adapters.

use std::sync::Arc;

use longship_errors::{Error, Kind};
use longship_messaging::{OutboxRelay, OutboxRow};
use longship_saga::SagaEngine;
use longship_tenant::TenantId;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{self, PlaceOrderRequest};
use crate::events;
use crate::saga::{PlaceOrderData, PlaceOrderSaga};
use crate::store::{self, OrderItem, OrderView, SagaStepView, SagaView};

/// Shared state of the adapters.
#[derive(Clone)]
pub struct AppState {
    /// The application pool.
    pub pool: PgPool,
    /// The saga engine.
    pub sagas: SagaEngine<PlaceOrderSaga>,
    /// The outbox relay (woken after commits).
    pub relay: OutboxRelay,
}

/// What placing an order produced.
#[derive(Debug)]
pub struct Placed {
    /// The order.
    pub order: OrderView,
    /// False when an earlier request with the same key created it.
    pub created: bool,
}

fn idempotency_key_reused() -> Error {
    Error::unprocessable(
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request body",
    )
}

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, &[])
}

impl AppState {
    /// Places an order: one transaction writes the order (PENDING), its saga and `order_placed`;
    /// the saga then runs at once. With an idempotency key, a repeat returns the first order.
    pub async fn place_order(
        &self,
        tenant: &TenantId,
        key: Option<&str>,
        request: PlaceOrderRequest,
    ) -> Result<Placed, Error> {
        if let Some(key) = key
            && !domain::valid_idempotency_key(key)
        {
            return Err(Error::bad_request(
                "request.invalid_idempotency_key",
                "Idempotency-Key must be 1-255 printable ASCII characters",
            ));
        }
        domain::validate(&request).map_err(Error::validation)?;
        let fingerprint = domain::fingerprint(&request);
        let id = Uuid::now_v7();
        tracing::Span::current().record("order_id", id.to_string());
        let items: Vec<OrderItem> = request
            .items
            .iter()
            .map(|i| OrderItem {
                sku: i.sku.clone(),
                quantity: i.quantity,
                unit_price_cents: None,
            })
            .collect();

        let mut tx = longship_tenant::begin(&self.pool, tenant)
            .await
            .map_err(db)?;
        let placed = events::OrderPlaced {
            order_id: id,
            customer_id: request.customer_id.clone(),
            currency: request.currency.clone(),
            items: items.clone(),
        };
        let event = OutboxRow::new(events::ORDER_PLACED, tenant, &placed).map_err(db)?;
        let new = store::NewOrder {
            id,
            tenant,
            customer_id: &request.customer_id,
            currency: &request.currency,
            items: &placed.items,
            idempotency_key: key,
            request_hash: &fingerprint,
        };
        let data = PlaceOrderData {
            order_id: id,
            customer_id: request.customer_id.clone(),
            currency: request.currency.clone(),
            items,
            total_cents: None,
        };
        let (saga, started) = self
            .sagas
            .prepare(id, tenant, data)
            .map_err(Error::internal)?;
        let Some(created_at) = store::insert_order(&mut tx, &new, event, saga)
            .await
            .map_err(db)?
        else {
            // the key is taken (possibly by a request that just committed): answer with its order
            let Some(key) = key else {
                return Err(Error::internal(std::io::Error::other(
                    "insert without key conflicted",
                )));
            };
            let (existing, hash) = store::find_by_idempotency_key(&mut tx, tenant, key)
                .await
                .map_err(db)?
                .ok_or_else(|| {
                    Error::new(
                        Kind::Unavailable,
                        "service.retry",
                        "a concurrent request holds this key, retry",
                    )
                })?;
            if hash.as_deref() != Some(fingerprint.as_str()) {
                return Err(idempotency_key_reused());
            }
            let order = store::get_order(&mut tx, tenant, existing)
                .await
                .map_err(db)?
                .ok_or_else(|| {
                    Error::internal(std::io::Error::other(
                        "order vanished under its idempotency key",
                    ))
                })?;
            tx.commit().await.map_err(db)?;
            metrics::counter!("orders_idempotent_replays_total").increment(1);
            return Ok(Placed {
                order,
                created: false,
            });
        };
        // the response is what was just written (no read-back: one statement less per order)
        let order = OrderView {
            id,
            customer_id: request.customer_id.clone(),
            status: "PENDING".to_owned(),
            currency: request.currency.clone(),
            total_cents: 0,
            items: placed.items,
            failure_reason: None,
            created_at,
            updated_at: created_at,
            saga: Some(SagaView {
                status: started.status().as_str().to_owned(),
                steps: started
                    .steps()
                    .iter()
                    .map(|s| SagaStepView {
                        name: s.name.clone(),
                        status: s.status.as_str().to_owned(),
                        attempts: s.attempts,
                    })
                    .collect(),
            }),
        };
        tx.commit().await.map_err(db)?;
        self.sagas.launch(started);
        self.relay.wake();
        metrics::counter!("orders_placed_total").increment(1);
        Ok(Placed {
            order,
            created: true,
        })
    }

    /// One order of the tenant (404 for unknown and for other tenants' orders alike).
    pub async fn get_order(&self, tenant: &TenantId, id: Uuid) -> Result<OrderView, Error> {
        tracing::Span::current().record("order_id", id.to_string());
        let mut tx = longship_tenant::begin(&self.pool, tenant)
            .await
            .map_err(db)?;
        let order = store::get_order(&mut tx, tenant, id).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        order.ok_or_else(|| Error::not_found("order.not_found", "no such order"))
    }

    /// A page of the tenant's orders, newest first.
    pub async fn list_orders(
        &self,
        tenant: &TenantId,
        status: Option<&str>,
        cursor: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<OrderView>, Error> {
        let mut tx = longship_tenant::begin(&self.pool, tenant)
            .await
            .map_err(db)?;
        let orders = store::list_orders(&mut tx, tenant, status, cursor, limit)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(orders)
    }
}

/// Shared handle type for adapters.
pub type SharedState = Arc<AppState>;
