//! `longship.order.v1.OrderService` for internal gRPC clients.

use longship_proto::order::v1 as proto;
use longship_proto::order::v1::order_service_server::OrderService;
use longship_runtime::grpc::Rpc;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::OrderView;
use crate::domain::{OrderCode, PlaceOrderRequest, RequestedItem};
use crate::usecases::Orders;

/// The gRPC adapter.
#[derive(Debug, Clone)]
pub struct OrderGrpc(pub std::sync::Arc<Orders>);

fn to_proto(order: OrderView) -> proto::Order {
    proto::Order {
        id: order.id.to_string(),
        customer_id: order.customer_id,
        status: order.status,
        currency: order.currency,
        total_cents: order.total_cents,
        items: order
            .items
            .into_iter()
            .map(|i| proto::OrderItem {
                sku: i.sku,
                quantity: i.quantity,
                unit_price_cents: i.unit_price_cents.unwrap_or(0),
            })
            .collect(),
        failure_reason: order.failure_reason.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl OrderService for OrderGrpc {
    async fn place_order(&self, request: Request<proto::PlaceOrderRequest>) -> Rpc<proto::Order> {
        let tenant = longship_tenant::grpc::tenant_of(&request)?;
        let message = request.into_inner();
        let key = (!message.idempotency_key.is_empty()).then_some(message.idempotency_key.as_str());
        let body = PlaceOrderRequest {
            customer_id: message.customer_id.clone(),
            currency: message.currency.clone(),
            items: message
                .items
                .iter()
                .map(|i| RequestedItem {
                    sku: i.sku.clone(),
                    quantity: i.quantity,
                })
                .collect(),
        };
        let placed = self.0.place_order(&tenant, key, body).await?;
        Ok(Response::new(to_proto(placed.order)))
    }

    async fn get_order(&self, request: Request<proto::GetOrderRequest>) -> Rpc<proto::Order> {
        let tenant = longship_tenant::grpc::tenant_of(&request)?;
        let id = Uuid::parse_str(&request.get_ref().id)
            .map_err(|_| Status::from(longship_errors::Error::from_code(OrderCode::InvalidId)))?;
        Ok(Response::new(to_proto(
            self.0.get_order(&tenant, id).await?,
        )))
    }
}
