//! The gRPC adapter: `longship.inventory.v1.InventoryService` over the use cases. Business
//! refusals carry a typed `RefusalDetail` beside their stable code, so the saga maps them without
//! reading strings.

use std::sync::Arc;

use longship_errors::{Error, ErrorCode};
use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_server::InventoryService;
use longship_tenant::TenantId;
use longship_tenant::grpc::tenant_of;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{InventoryCode, RequestedLine};
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
    let status = Status::from(error);
    match detail {
        Some(r) => longship_errors::with_refusal(status, &pb::RefusalDetail { refusal: r as i32 }),
        None => status,
    }
}

/// Parses the order id and records it on the call span.
fn order_id(raw: &str) -> Result<Uuid, Error> {
    let id = Uuid::parse_str(raw)
        .map_err(|_| Error::invalid_field("order_id", "format", "must be a UUID"))?;
    tracing::Span::current().record("order_id", raw);
    Ok(id)
}

impl InventoryGrpc {
    async fn reserve(
        &self,
        tenant: &TenantId,
        r: pb::ReserveRequest,
    ) -> Result<pb::ReserveResponse, Error> {
        let order = ReserveOrder {
            order_id: order_id(&r.order_id)?,
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
        };
        let reserved = self.0.reserve(tenant, order).await?;
        Ok(pb::ReserveResponse {
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
        })
    }

    async fn product(&self, tenant: &TenantId, sku: &str) -> Result<pb::Product, Error> {
        let product = self.0.product(tenant, sku).await?;
        Ok(pb::Product {
            available: product.available(),
            sku: product.sku,
            name: product.name,
            price_cents: product.price_cents,
            currency: product.currency,
            on_hand: product.on_hand,
            reserved: product.reserved,
        })
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryGrpc {
    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let tenant = tenant_of(&request)?;
        InventoryGrpc::reserve(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = order_id(&request.get_ref().order_id).map_err(status)?;
        let outcome = self.0.release(&tenant, id).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse {
            order_id: id.to_string(),
            outcome: outcome.as_str().to_owned(),
        }))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = order_id(&request.get_ref().order_id).map_err(status)?;
        let outcome = self.0.commit(&tenant, id).await.map_err(status)?;
        Ok(Response::new(pb::CommitResponse {
            order_id: id.to_string(),
            outcome: outcome.as_str().to_owned(),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let tenant = tenant_of(&request)?;
        self.product(&tenant, &request.get_ref().sku)
            .await
            .map(Response::new)
            .map_err(status)
    }
}
