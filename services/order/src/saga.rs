//! The place-order saga: ReserveStock -> AuthorizePayment -> ConfirmOrder, compensated by Release
//! and Void. Participants are called over gRPC with the tenant, the trace context and an
//! idempotency key derived from the saga id and step.

use std::sync::Arc;
use std::time::Duration;

use longship_messaging::OutboxRow;
use longship_proto::inventory::v1 as inv;
use longship_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use longship_proto::payment::v1 as pay;
use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_saga::{SagaDefinition, SagaInfo, Step, StepContext, StepError, StepKind};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio::sync::Notify;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::domain;
use crate::events;
use crate::store::{self, OrderItem};

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
    pub items: Vec<OrderItem>,
    /// Total; set by ReserveStock.
    pub total_cents: Option<i64>,
}

/// gRPC clients of the participants (channels are cheap to clone and multiplex calls).
#[derive(Debug, Clone)]
pub struct Participants {
    /// Inventory.
    pub inventory: InventoryServiceClient<Channel>,
    /// Payment.
    pub payment: PaymentServiceClient<Channel>,
}

impl Participants {
    /// Lazily connecting clients for the two URLs (calls fail transiently while a peer is down).
    /// Host names are re-resolved every 15 s and calls spread over every address, so replicas
    /// behind a headless Service share the load.
    pub fn connect_lazy(
        inventory_url: &str,
        payment_url: &str,
        timeout: Duration,
    ) -> Result<Participants, String> {
        let channel = |url: &str| {
            longship_runtime::grpc::balanced_channel(
                url,
                Duration::from_secs(15),
                move |endpoint| {
                    endpoint
                        .connect_timeout(Duration::from_secs(2))
                        .timeout(timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(30))
                },
            )
        };
        Ok(Participants {
            inventory: InventoryServiceClient::new(channel(inventory_url)?),
            payment: PaymentServiceClient::new(channel(payment_url)?),
        })
    }
}

fn request<T>(message: T, ctx: &StepContext) -> tonic::Request<T> {
    let mut request = longship_tenant::grpc::with_tenant(tonic::Request::new(message), &ctx.tenant);
    longship_telemetry::propagation::inject_grpc(&mut request);
    request
}

/// Business refusals end the saga; everything else is retried until the deadline.
fn classify(status: &tonic::Status, step: &str) -> StepError {
    let err = longship_errors::status_to_error(status);
    use longship_errors::Kind;
    match err.kind() {
        Kind::FailedPrecondition | Kind::NotFound | Kind::Validation | Kind::Conflict => {
            StepError::Rejected {
                reason: domain::failure_reason(err.code(), step).to_owned(),
                message: format!("{}: {}", err.code(), err.message()),
            }
        }
        _ => StepError::Transient(format!("{}: {}", err.code(), err.message())),
    }
}

struct ReserveStock(Participants);
struct AuthorizePayment(Participants);
struct ConfirmOrder;

#[async_trait::async_trait]
impl Step<PlaceOrderData> for ReserveStock {
    fn name(&self) -> &'static str {
        "ReserveStock"
    }

    async fn execute(&self, ctx: &StepContext, data: &mut PlaceOrderData) -> Result<(), StepError> {
        let message = inv::ReserveRequest {
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
        };
        let response = self
            .0
            .inventory
            .clone()
            .reserve(request(message, ctx))
            .await
            .map_err(|s| classify(&s, self.name()))?;
        let reserved = response.into_inner();
        for item in &mut data.items {
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
        data.total_cents =
            Some(
                domain::total_cents(&lines).ok_or_else(|| StepError::Rejected {
                    reason: "payment_declined".into(),
                    message: "order total overflows".into(),
                })?,
            );
        Ok(())
    }

    fn compensable(&self) -> bool {
        true
    }

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
            .map_err(|s| StepError::Transient(s.to_string()))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Step<PlaceOrderData> for AuthorizePayment {
    fn name(&self) -> &'static str {
        "AuthorizePayment"
    }

    async fn execute(&self, ctx: &StepContext, data: &mut PlaceOrderData) -> Result<(), StepError> {
        let message = pay::AuthorizeRequest {
            order_id: data.order_id.to_string(),
            idempotency_key: ctx.idempotency_key.clone(),
            customer_id: data.customer_id.clone(),
            amount_cents: data.total_cents.unwrap_or(0),
            currency: data.currency.clone(),
        };
        self.0
            .payment
            .clone()
            .authorize(request(message, ctx))
            .await
            .map_err(|s| classify(&s, self.name()))?;
        Ok(())
    }

    fn compensable(&self) -> bool {
        true
    }

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
            .map_err(|s| StepError::Transient(s.to_string()))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Step<PlaceOrderData> for ConfirmOrder {
    fn name(&self) -> &'static str {
        "ConfirmOrder"
    }

    fn kind(&self) -> StepKind {
        StepKind::Local
    }

    async fn execute_local(
        &self,
        ctx: &StepContext,
        tx: &mut PgConnection,
        data: &mut PlaceOrderData,
    ) -> Result<(), StepError> {
        let total = data.total_cents.unwrap_or(0);
        let event = OutboxRow::new(
            events::ORDER_CONFIRMED,
            &ctx.tenant,
            &events::OrderConfirmed::from(&*data),
        )
        .map_err(|e| StepError::Transient(e.to_string()))?;
        store::confirm(tx, &ctx.tenant, data.order_id, &data.items, total, event)
            .await
            .map_err(|e| StepError::Transient(e.to_string()))?;
        Ok(())
    }
}

/// The saga definition.
pub struct PlaceOrderSaga {
    steps: Vec<Box<dyn Step<PlaceOrderData>>>,
    relay_wake: Arc<Notify>,
}

impl PlaceOrderSaga {
    /// The saga with its participants; `relay_wake` wakes the outbox relay after each final commit.
    pub fn new(participants: Participants, relay_wake: Arc<Notify>) -> PlaceOrderSaga {
        PlaceOrderSaga {
            steps: vec![
                Box::new(ReserveStock(participants.clone())),
                Box::new(AuthorizePayment(participants)),
                Box::new(ConfirmOrder),
            ],
            relay_wake,
        }
    }
}

#[async_trait::async_trait]
impl SagaDefinition for PlaceOrderSaga {
    type Data = PlaceOrderData;

    fn saga_type(&self) -> &'static str {
        "place_order"
    }

    fn steps(&self) -> &[Box<dyn Step<PlaceOrderData>>] {
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
        store::cancel(
            tx,
            &info.tenant,
            data.order_id,
            reason,
            &data.items,
            data.total_cents,
            OutboxRow::new(events::ORDER_CANCELLED, &info.tenant, &payload)?,
        )
        .await?;
        Ok(())
    }

    fn after_finish(&self) {
        self.relay_wake.notify_one();
    }
}
