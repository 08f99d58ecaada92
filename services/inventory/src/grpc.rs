//! The gRPC adapter: `longship.inventory.v1.InventoryService` over the use cases. Business
//! refusals carry a typed `RefusalDetail` beside their stable code, so the saga maps them without
//! reading strings.

use std::sync::Arc;

use longship_errors::{Error, ErrorCode};
use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_server::InventoryService;
use longship_runtime::grpc::Rpc;
use longship_runtime::participant;
use longship_tenant::grpc::tenant_of;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{InventoryCode, RequestedLine};
use crate::store::{Product, Reserved};
use crate::usecases::{ReserveOrder, Stock};

/// The inventory gRPC service.
#[derive(Debug, Clone)]
pub struct InventoryGrpc(pub Arc<Stock>);

/// The typed refusal an error is, if it is one (every code is decided here: a new code must say).
fn refusal(code: InventoryCode) -> Option<pb::Refusal> {
    match code {
        InventoryCode::UnknownSku => Some(pb::Refusal::UnknownSku),
        InventoryCode::InsufficientStock => Some(pb::Refusal::InsufficientStock),
        InventoryCode::CurrencyMismatch => Some(pb::Refusal::CurrencyMismatch),
        InventoryCode::ReservationReleased => Some(pb::Refusal::ReservationReleased),
        InventoryCode::ProductNotFound | InventoryCode::OnHandBelowReserved => None,
    }
}

/// The status of an error, with its typed refusal attached when it is a business refusal.
fn status(error: Error) -> Status {
    let detail = InventoryCode::parse(error.code()).and_then(refusal);
    participant::refused_status(error, detail.map(|r| r as i32))
}

fn reserve_order(r: pb::ReserveRequest, order_id: Uuid) -> ReserveOrder {
    ReserveOrder {
        order_id,
        idempotency_key: r.idempotency_key,
        currency: r.currency,
        lines: r
            .lines
            .iter()
            .map(|l| RequestedLine {
                sku: l.sku.clone(),
                quantity: i64::from(l.quantity),
            })
            .collect(),
    }
}

fn reserved_response(reserved: Reserved) -> pb::ReserveResponse {
    pb::ReserveResponse {
        order_id: reserved.order_id.to_string(),
        currency: reserved.currency,
        lines: reserved
            .lines
            .into_iter()
            .map(|l| pb::ReservedLine {
                sku: l.sku,
                quantity: u32::try_from(l.quantity).unwrap_or(u32::MAX),
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
    }
}

fn product_response(product: Product) -> pb::Product {
    pb::Product {
        available: product.available(),
        sku: product.sku,
        name: product.name,
        price_cents: product.price_cents,
        currency: product.currency,
        on_hand: product.on_hand,
        reserved: product.reserved,
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryGrpc {
    async fn reserve(&self, request: Request<pb::ReserveRequest>) -> Rpc<pb::ReserveResponse> {
        let (tenant, order_id) = participant::order_of(&request, &request.get_ref().order_id)?;
        let order = reserve_order(request.into_inner(), order_id);
        let reserved = self.0.reserve(&tenant, order).await.map_err(status)?;
        Ok(Response::new(reserved_response(reserved)))
    }

    /// Every item answered on its own: a malformed item is refused alone.
    async fn reserve_batch(
        &self,
        request: Request<pb::ReserveBatchRequest>,
    ) -> Rpc<pb::ReserveBatchResponse> {
        let run = |valid| self.0.reserve_batch(valid);
        participant::answer_batch(request, reserve_order, run, reserved_response, status).await
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Rpc<pb::ReleaseResponse> {
        let (tenant, id) = participant::order_of(&request, &request.get_ref().order_id)?;
        participant::outcome(
            id,
            self.0.release(&tenant, id).await.map_err(status)?.as_str(),
        )
    }

    async fn commit(&self, request: Request<pb::CommitRequest>) -> Rpc<pb::CommitResponse> {
        let (tenant, id) = participant::order_of(&request, &request.get_ref().order_id)?;
        participant::outcome(
            id,
            self.0.commit(&tenant, id).await.map_err(status)?.as_str(),
        )
    }

    async fn get_product(&self, request: Request<pb::GetProductRequest>) -> Rpc<pb::Product> {
        let tenant = tenant_of(&request)?;
        let product = self.0.product(&tenant, &request.get_ref().sku).await;
        product
            .map(|p| Response::new(product_response(p)))
            .map_err(status)
    }
}
