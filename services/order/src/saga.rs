//! The place-order saga. Version 1: ReserveStock -> AuthorizePayment -> ConfirmOrder, compensated
//! by Release and Void. Participants are called over gRPC ([`crate::participants`]) with the
//! tenant, the trace context and an idempotency key derived from the saga id and step. Every
//! version is a [`PlaceOrder`]: a number and its steps over the same data (a new version is new
//! steps beside the old ones: docs/changing-a-saga.md).

use longship_messaging::{NewEvent, OutboxError, OutboxRow};
use longship_proto::inventory::v1 as inv;
use longship_proto::payment::v1 as pay;
use longship_saga::{
    BatchItem, Compensation, LocalAction, RemoteAction, SagaDefinition, SagaInfo, Step,
    StepContext, StepError,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{self, FailureReason, OrderLine};
use crate::events;
use crate::participants::{self, Participants, StepOrder, request};
use crate::store;

/// The saga type of every version of the place-order saga.
pub const SAGA_TYPE: &str = "place_order";

/// The saga's data, stored as JSON in the saga row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaceOrderData {
    /// Order id (= saga id).
    pub order_id: Uuid,
    /// Customer.
    pub customer_id: String,
    /// Currency.
    pub currency: String,
    /// Lines; prices filled in by ReserveStock.
    pub items: Vec<OrderLine>,
    /// Total; set by ReserveStock.
    pub total_cents: Option<i64>,
}

impl PlaceOrderData {
    /// The `order_confirmed` payload.
    fn confirmed(&self) -> events::OrderConfirmed {
        events::OrderConfirmed {
            order_id: self.order_id,
            customer_id: self.customer_id.clone(),
            currency: self.currency.clone(),
            total_cents: self.total_cents.unwrap_or(0),
            items: self.items.clone(),
            confirmed_at: chrono::Utc::now(),
        }
    }
}

impl StepOrder for PlaceOrderData {
    fn order_id(&self) -> Uuid {
        self.order_id
    }

    fn units(&self) -> u32 {
        self.items
            .iter()
            .fold(0u32, |sum, i| sum.saturating_add(i.quantity))
    }
}

struct ReserveStock(Participants);
struct ReleaseStock(Participants);
struct AuthorizePayment(Participants);
struct VoidPayment(Participants);
struct ConfirmOrder;

fn reserve_request(ctx: &StepContext, data: &PlaceOrderData) -> inv::ReserveRequest {
    inv::ReserveRequest {
        order_id: data.order_id.to_string(),
        idempotency_key: ctx.idempotency_key.clone(),
        currency: data.currency.clone(),
        lines: data
            .items
            .iter()
            .map(|i| inv::ReserveLine {
                sku: i.sku.clone(),
                quantity: i.quantity,
            })
            .collect(),
    }
}

/// Takes the prices inventory answered into the saga's data and computes the total.
fn apply_reserved(
    data: &mut PlaceOrderData,
    reserved: &inv::ReserveResponse,
) -> Result<(), StepError> {
    for item in &mut data.items {
        // an answer without a line is repeated (same key, same answer) until the deadline,
        // then compensated like any step whose outcome is unknown
        let line = reserved
            .lines
            .iter()
            .find(|l| l.sku == item.sku)
            .ok_or_else(|| {
                StepError::Transient(format!("inventory returned no line for {}", item.sku))
            })?;
        item.unit_price_cents = Some(line.unit_price_cents);
    }
    let lines: Vec<(u32, i64)> = data
        .items
        .iter()
        .map(|i| (i.quantity, i.unit_price_cents.unwrap_or(0)))
        .collect();
    // the stock is reserved now: a total that cannot be represented aborts the saga, which
    // compensates this step too (the reservation is released at once)
    let total = domain::total_cents(&lines).ok_or_else(|| StepError::Abort {
        reason: FailureReason::AmountOutOfRange.as_str().to_owned(),
        message: "the order total overflows 64 bits".into(),
    })?;
    data.total_cents = Some(total);
    Ok(())
}

#[async_trait::async_trait]
impl RemoteAction<PlaceOrderData> for ReserveStock {
    async fn call(&self, ctx: &StepContext, data: &mut PlaceOrderData) -> Result<(), StepError> {
        let reserved = self
            .0
            .inventory
            .clone()
            .reserve(request(reserve_request(ctx, data), ctx))
            .await
            .map_err(|s| participants::inventory_failure(&s))?
            .into_inner();
        apply_reserved(data, &reserved)
    }

    fn batched(&self) -> bool {
        true
    }

    /// One `ReserveBatch` for every saga at this step now (if it fails as a whole, the engine
    /// makes each saga's own `Reserve`).
    async fn call_many(
        &self,
        items: Vec<BatchItem<PlaceOrderData>>,
    ) -> Result<Vec<(PlaceOrderData, Result<(), StepError>)>, StepError> {
        let requests = items
            .iter()
            .map(|i| (&i.ctx, reserve_request(&i.ctx, &i.data)))
            .collect();
        let answers = participants::reserve_batch(&self.0, requests)
            .await
            .map_err(|s| participants::compensation_failure(&s))?;
        Ok(items
            .into_iter()
            .zip(answers)
            .map(|(BatchItem { mut data, .. }, answer)| {
                let result = answer
                    .map_err(|s| participants::inventory_failure(&s))
                    .and_then(|reserved| apply_reserved(&mut data, &reserved));
                (data, result)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Compensation<PlaceOrderData> for ReleaseStock {
    async fn compensate(&self, ctx: &StepContext, data: &PlaceOrderData) -> Result<(), StepError> {
        let message = inv::ReleaseRequest {
            order_id: data.order_id.to_string(),
            idempotency_key: ctx.idempotency_key.clone(),
        };
        self.0
            .inventory
            .clone()
            .release(request(message, ctx))
            .await
            .map_err(|s| participants::compensation_failure(&s))?;
        Ok(())
    }
}

fn authorize_request(ctx: &StepContext, data: &PlaceOrderData) -> pay::AuthorizeRequest {
    pay::AuthorizeRequest {
        order_id: data.order_id.to_string(),
        idempotency_key: ctx.idempotency_key.clone(),
        customer_id: data.customer_id.clone(),
        amount_cents: data.total_cents.unwrap_or(0),
        currency: data.currency.clone(),
    }
}

#[async_trait::async_trait]
impl RemoteAction<PlaceOrderData> for AuthorizePayment {
    async fn call(&self, ctx: &StepContext, data: &mut PlaceOrderData) -> Result<(), StepError> {
        self.0
            .payment
            .clone()
            .authorize(request(authorize_request(ctx, data), ctx))
            .await
            .map_err(|s| participants::payment_failure(&s))?;
        Ok(())
    }

    fn batched(&self) -> bool {
        true
    }

    /// One `AuthorizeBatch` for every saga at this step now (if it fails as a whole, the engine
    /// makes each saga's own `Authorize`).
    async fn call_many(
        &self,
        items: Vec<BatchItem<PlaceOrderData>>,
    ) -> Result<Vec<(PlaceOrderData, Result<(), StepError>)>, StepError> {
        let requests = items
            .iter()
            .map(|i| (&i.ctx, authorize_request(&i.ctx, &i.data)))
            .collect();
        let answers = participants::authorize_batch(&self.0, requests)
            .await
            .map_err(|s| participants::compensation_failure(&s))?;
        Ok(items
            .into_iter()
            .zip(answers)
            .map(|(item, answer)| {
                let result = answer
                    .map(|_| ())
                    .map_err(|s| participants::payment_failure(&s));
                (item.data, result)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Compensation<PlaceOrderData> for VoidPayment {
    async fn compensate(&self, ctx: &StepContext, data: &PlaceOrderData) -> Result<(), StepError> {
        let message = pay::VoidRequest {
            order_id: data.order_id.to_string(),
            idempotency_key: ctx.idempotency_key.clone(),
        };
        self.0
            .payment
            .clone()
            .void(request(message, ctx))
            .await
            .map_err(|s| participants::compensation_failure(&s))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl LocalAction<PlaceOrderData> for ConfirmOrder {
    async fn run(
        &self,
        ctx: &StepContext,
        tx: &mut PgConnection,
        data: &mut PlaceOrderData,
    ) -> Result<(), StepError> {
        let total = data.total_cents.unwrap_or(0);
        let event = confirmed_event(ctx, data)?;
        store::confirm(tx, &ctx.tenant, data.order_id, &data.items, total, event)
            .await
            .map_err(|e| StepError::Transient(e.to_string()))?;
        Ok(())
    }

    fn batched(&self) -> bool {
        true
    }

    /// The orders of every saga at this step now (of one tenant or several, in a transaction of
    /// their tenant set), in one statement keyed by each order's own tenant.
    async fn run_many(
        &self,
        items: &mut [BatchItem<PlaceOrderData>],
        tx: &mut PgConnection,
    ) -> Result<(), StepError> {
        let mut confirmations = Vec::with_capacity(items.len());
        for item in items.iter() {
            let data = &item.data;
            confirmations.push(store::Confirmation {
                tenant: item.ctx.tenant.clone(),
                id: data.order_id,
                items: data.items.clone(),
                total: data.total_cents.unwrap_or(0),
                event: confirmed_event(&item.ctx, data)?,
            });
        }
        store::confirm_many(tx, confirmations)
            .await
            .map_err(|e| StepError::Transient(e.to_string()))
    }
}

fn confirmed_event(ctx: &StepContext, data: &PlaceOrderData) -> Result<OutboxRow, StepError> {
    NewEvent::new(events::ORDER_CONFIRMED, &ctx.tenant, &data.confirmed())
        .map_err(OutboxError::from)
        .and_then(|e| {
            OutboxRow::from_event(
                e.with_schema_version(longship_contracts::ORDER_CONFIRMED.version()),
            )
        })
        .map_err(|e| StepError::Transient(e.to_string()))
}

/// A version of the place-order saga: its number and its steps. Every version shares the saga
/// type, the data and what a compensated saga does to its order.
pub struct PlaceOrder {
    version: u32,
    steps: Vec<Step<PlaceOrderData>>,
}

impl PlaceOrder {
    /// Version `version` with `steps`.
    pub fn new(version: u32, steps: Vec<Step<PlaceOrderData>>) -> PlaceOrder {
        PlaceOrder { version, steps }
    }
}

/// The place-order saga, version 1, over `participants`.
pub fn place_order_v1(participants: Participants) -> PlaceOrder {
    PlaceOrder::new(1, v1_steps(&participants))
}

/// Version 1's steps (a later version starts from them).
pub fn v1_steps(participants: &Participants) -> Vec<Step<PlaceOrderData>> {
    vec![
        Step::remote(
            "ReserveStock",
            ReserveStock(participants.clone()),
            ReleaseStock(participants.clone()),
        ),
        Step::remote(
            "AuthorizePayment",
            AuthorizePayment(participants.clone()),
            VoidPayment(participants.clone()),
        ),
        Step::local("ConfirmOrder", ConfirmOrder),
    ]
}

#[async_trait::async_trait]
impl SagaDefinition for PlaceOrder {
    type Data = PlaceOrderData;

    fn saga_type(&self) -> &'static str {
        SAGA_TYPE
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn steps(&self) -> &[Step<PlaceOrderData>] {
        &self.steps
    }

    async fn on_compensated(
        &self,
        tx: &mut PgConnection,
        info: &SagaInfo,
        data: &PlaceOrderData,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let payload = events::OrderCancelled {
            order_id: data.order_id,
            customer_id: data.customer_id.clone(),
            reason: reason.to_owned(),
        };
        let event = OutboxRow::new(events::ORDER_CANCELLED, &info.tenant, &payload)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let cancelled = store::Cancellation {
            reason,
            items: &data.items,
            total: data.total_cents,
        };
        store::cancel(tx, &info.tenant, data.order_id, &cancelled, event).await
    }
}
