//! The gRPC adapter: `longship.inventory.v1.InventoryService` over the use cases. Business
//! refusals carry a typed `RefusalDetail` beside their stable code, so the saga maps them without
//! reading strings.

use std::sync::Arc;

use longship_errors::{Error, ErrorCode};
use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_server::InventoryService;
use longship_runtime::participant;
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
    participant::refused_status(error, detail.map(|r| r as i32))
}

/// A batch item's order, as the adapters receive it (its tenant parsed like `x-tenant-id`).
fn batch_item(item: pb::ReserveBatchItem) -> Result<(TenantId, ReserveOrder), Error> {
    let tenant = participant::item_tenant(&item.tenant_id)?;
    Ok((tenant, reserve_order(participant::required(item.request)?)?))
}

fn reserve_order(r: pb::ReserveRequest) -> Result<ReserveOrder, Error> {
    Ok(ReserveOrder {
        order_id: Uuid::parse_str(&r.order_id)
            .map_err(|_| Error::invalid_field("order_id", "format", "must be a UUID"))?,
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
    })
}

fn reserved_response(reserved: crate::store::Reserved) -> pb::ReserveResponse {
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

impl InventoryGrpc {
    /// Every item answered on its own: a malformed item is refused alone.
    async fn reserve_batch(&self, r: pb::ReserveBatchRequest) -> pb::ReserveBatchResponse {
        use pb::reserve_batch_result::Outcome;
        let outcomes = participant::answer_each(
            r.items,
            batch_item,
            |valid| self.0.reserve_batch(valid),
            |answer| match answer {
                Ok(reserved) => Outcome::Reserved(reserved_response(reserved)),
                Err(e) => Outcome::Error(participant::item_error(&status(e))),
            },
        );
        let results = outcomes.await.into_iter();
        let results = results.map(|outcome| pb::ReserveBatchResult { outcome });
        pb::ReserveBatchResponse {
            results: results.collect(),
        }
    }

    async fn reserve(
        &self,
        tenant: &TenantId,
        r: pb::ReserveRequest,
    ) -> Result<pb::ReserveResponse, Error> {
        let order = ReserveOrder {
            order_id: participant::order_id(&r.order_id)?,
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
        Ok(reserved_response(reserved))
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

    async fn reserve_batch(
        &self,
        request: Request<pb::ReserveBatchRequest>,
    ) -> Result<Response<pb::ReserveBatchResponse>, Status> {
        let batch = request.into_inner();
        participant::check_size(batch.items.len()).map_err(status)?;
        Ok(Response::new(
            InventoryGrpc::reserve_batch(self, batch).await,
        ))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = participant::order_id(&request.get_ref().order_id).map_err(status)?;
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
        let id = participant::order_id(&request.get_ref().order_id).map_err(status)?;
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
