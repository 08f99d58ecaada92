//! The gRPC adapter: `longship.payment.v1.PaymentService` over the store, one tenant-scoped
//! transaction per call.

use longship_errors::{Error, FieldError};
use longship_messaging::OutboxRelay;
use longship_proto::payment::v1 as pb;
use longship_proto::payment::v1::payment_service_server::PaymentService;
use longship_tenant::TenantId;
use longship_tenant::grpc::tenant_of;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain;
use crate::store::{self, Authorization, AuthorizeCommand, Capture, Payment};

/// The payment gRPC service.
#[derive(Debug, Clone)]
pub struct PaymentGrpc {
    pool: PgPool,
    relay: OutboxRelay,
}

impl PaymentGrpc {
    /// A service over `pool` that wakes `relay` after committing events.
    pub fn new(pool: PgPool, relay: OutboxRelay) -> PaymentGrpc {
        PaymentGrpc { pool, relay }
    }

    async fn authorize(
        &self,
        tenant: &TenantId,
        request: pb::AuthorizeRequest,
    ) -> Result<pb::Payment, Error> {
        let order_id = order_id(&request.order_id)?;
        domain::validate_authorize(
            &request.customer_id,
            request.amount_cents,
            &request.currency,
        )?;
        let command = AuthorizeCommand {
            order_id,
            idempotency_key: request.idempotency_key,
            customer_id: request.customer_id,
            amount_cents: request.amount_cents,
            currency: request.currency,
        };
        let mut tx = store::OrderTx::begin(&self.pool, tenant, order_id).await?;
        let authorization = store::authorize(&mut tx, &command).await?;
        // a decline is recorded too: commit first, answer the refusal after
        tx.commit().await?;
        self.relay.wake();
        match authorization {
            Authorization::Approved(payment) => Ok(to_proto(payment)),
            Authorization::Refused(err) => Err(err),
        }
    }

    async fn void(
        &self,
        tenant: &TenantId,
        request: pb::VoidRequest,
    ) -> Result<pb::VoidResponse, Error> {
        let order_id = order_id(&request.order_id)?;
        let mut tx = store::OrderTx::begin(&self.pool, tenant, order_id).await?;
        let outcome = store::void(&mut tx).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(pb::VoidResponse {
            order_id: order_id.to_string(),
            outcome: outcome.as_str().to_owned(),
        })
    }

    async fn capture(
        &self,
        tenant: &TenantId,
        request: pb::CaptureRequest,
    ) -> Result<pb::Payment, Error> {
        let order_id = order_id(&request.order_id)?;
        let mut tx = longship_tenant::begin(&self.pool, tenant).await?;
        let captured = store::capture(&mut tx, tenant, order_id).await?;
        tx.commit().await?;
        self.relay.wake();
        match captured {
            Capture::Captured(payment) | Capture::AlreadyCaptured(payment) => Ok(to_proto(payment)),
            Capture::NotCapturable(None) => Err(Error::not_found(
                "payment.not_found",
                "no payment for this order",
            )),
            Capture::NotCapturable(Some(payment)) => Err(Error::failed_precondition(
                "payment.not_capturable",
                format!("the payment is {} and cannot be captured", payment.status),
            )),
        }
    }

    async fn get_account(
        &self,
        tenant: &TenantId,
        request: pb::GetAccountRequest,
    ) -> Result<pb::Account, Error> {
        let mut tx = longship_tenant::begin(&self.pool, tenant).await?;
        let account = store::find_account(&mut tx, tenant, &request.customer_id).await?;
        tx.commit().await?;
        let account = account.ok_or_else(|| {
            Error::not_found("payment.account_not_found", "no account for this customer")
        })?;
        Ok(pb::Account {
            available_cents: account.available_cents(),
            customer_id: account.customer_id,
            currency: account.currency,
            balance_cents: account.balance_cents,
            held_cents: account.held_cents,
        })
    }
}

fn to_proto(payment: Payment) -> pb::Payment {
    pb::Payment {
        id: payment.id.to_string(),
        order_id: payment.order_id.to_string(),
        customer_id: payment.customer_id,
        amount_cents: payment.amount_cents,
        currency: payment.currency,
        status: payment.status,
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
impl PaymentService for PaymentGrpc {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let tenant = tenant(&request)?;
        PaymentGrpc::authorize(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn void(
        &self,
        request: Request<pb::VoidRequest>,
    ) -> Result<Response<pb::VoidResponse>, Status> {
        let tenant = tenant(&request)?;
        PaymentGrpc::void(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn capture(
        &self,
        request: Request<pb::CaptureRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let tenant = tenant(&request)?;
        PaymentGrpc::capture(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let tenant = tenant(&request)?;
        PaymentGrpc::get_account(self, &tenant, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}
