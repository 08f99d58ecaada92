//! The gRPC adapter: `longship.inventory.v1.InventoryService` over the store, one tenant-scoped
//! transaction per call.

use std::time::Duration;

use longship_errors::{Error, FieldError};
use longship_messaging::OutboxRelay;
use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_server::InventoryService;
use longship_tenant::TenantId;
use longship_tenant::grpc::tenant_of;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{self, RequestedLine};
use crate::store::{self, ReserveCommand};

/// The inventory gRPC service.
#[derive(Debug, Clone)]
pub struct InventoryGrpc {
    pool: PgPool,
    relay: OutboxRelay,
    reservation_ttl: Duration,
}

impl InventoryGrpc {
    /// A service over `pool` that wakes `relay` after committing events.
    pub fn new(pool: PgPool, relay: OutboxRelay, reservation_ttl: Duration) -> InventoryGrpc {
        InventoryGrpc {
            pool,
            relay,
            reservation_ttl,
        }
    }

    async fn reserve(
        &self,
        tenant: &TenantId,
        request: pb::ReserveRequest,
    ) -> Result<pb::ReserveResponse, Error> {
        let order_id = order_id(&request.order_id)?;
        let lines: Vec<RequestedLine> = request
            .lines
            .iter()
            .map(|l| RequestedLine {
                sku: l.sku.clone(),
                quantity: i64::from(l.quantity),
            })
            .collect();
        domain::validate_reserve(&request.currency, &lines)?;
        let command = ReserveCommand {
            order_id,
            idempotency_key: request.idempotency_key,
            currency: request.currency,
            lines,
            ttl: self.reservation_ttl,
        };
        let mut tx = longship_tenant::begin(&self.pool, tenant).await?;
        let reserved = store::reserve(&mut tx, tenant, &command).await?;
        tx.commit().await?;
        self.relay.wake();
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

    async fn release(
        &self,
        tenant: &TenantId,
        request: pb::ReleaseRequest,
    ) -> Result<pb::ReleaseResponse, Error> {
        let order_id = order_id(&request.order_id)?;
        let mut tx = longship_tenant::begin(&self.pool, tenant).await?;
        let outcome = store::release(&mut tx, tenant, order_id).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(pb::ReleaseResponse {
            order_id: order_id.to_string(),
            outcome: outcome.as_str().to_owned(),
        })
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        request: pb::CommitRequest,
    ) -> Result<pb::CommitResponse, Error> {
        let order_id = order_id(&request.order_id)?;
        let mut tx = longship_tenant::begin(&self.pool, tenant).await?;
        let outcome = store::commit(&mut tx, tenant, order_id).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(pb::CommitResponse {
            order_id: order_id.to_string(),
            outcome: outcome.as_str().to_owned(),
        })
    }

    async fn get_product(
        &self,
        tenant: &TenantId,
        request: pb::GetProductRequest,
    ) -> Result<pb::Product, Error> {
        let mut tx = longship_tenant::begin(&self.pool, tenant).await?;
        let product = store::find_product(&mut tx, tenant, &request.sku).await?;
        tx.commit().await?;
        let product = product
            .ok_or_else(|| Error::not_found("inventory.unknown_sku", "no product with this sku"))?;
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

/// The call's tenant, recorded on the call span.
#[allow(clippy::result_large_err)] // reason: tonic's Status is the error type of every handler
fn tenant<T>(request: &Request<T>) -> Result<TenantId, Status> {
    let tenant = tenant_of(request)?;
    tracing::Span::current().record("tenant_id", tenant.as_str());
    Ok(tenant)
}

/// Parses the order id and records it on the call span.
fn order_id(raw: &str) -> Result<Uuid, Error> {
    let id = Uuid::parse_str(raw).map_err(|_| {
        Error::validation(vec![FieldError::new(
            "order_id",
            "format",
            "must be a UUID",
        )])
    })?;
    tracing::Span::current().record("order_id", raw);
    Ok(id)
}

#[tonic::async_trait]
impl InventoryService for InventoryGrpc {
    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let tenant = tenant(&request)?;
        InventoryGrpc::reserve(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let tenant = tenant(&request)?;
        InventoryGrpc::release(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let tenant = tenant(&request)?;
        InventoryGrpc::commit(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let tenant = tenant(&request)?;
        InventoryGrpc::get_product(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}
