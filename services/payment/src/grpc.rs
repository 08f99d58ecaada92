//! The gRPC adapter: `longship.payment.v1.PaymentService` over the use cases. Business refusals
//! carry a typed `RefusalDetail` beside their stable code, so the saga maps them without reading
//! strings.

use std::sync::Arc;

use longship_errors::{Error, ErrorCode};
use longship_proto::payment::v1 as pb;
use longship_proto::payment::v1::payment_service_server::PaymentService;
use longship_runtime::participant;
use longship_tenant::TenantId;
use longship_tenant::grpc::tenant_of;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::PaymentCode;
use crate::store::{AuthorizeCommand, Payment};
use crate::usecases::Funds;

/// The payment gRPC service.
#[derive(Debug, Clone)]
pub struct PaymentGrpc(pub Arc<Funds>);

/// The typed refusal an error is, if it is one (every code is decided here: a new code must say).
fn refusal(code: PaymentCode) -> Option<pb::Refusal> {
    match code {
        PaymentCode::Declined => Some(pb::Refusal::Declined),
        PaymentCode::CurrencyMismatch => Some(pb::Refusal::CurrencyMismatch),
        PaymentCode::Voided => Some(pb::Refusal::Voided),
        PaymentCode::NotFound
        | PaymentCode::NotCapturable
        | PaymentCode::AccountNotFound
        | PaymentCode::CurrencyChangeWithHold
        | PaymentCode::BalanceBelowHeld => None,
    }
}

/// The status of an error, with its typed refusal attached when it is a business refusal.
fn status(error: Error) -> Status {
    let detail = PaymentCode::parse(error.code()).and_then(refusal);
    participant::refused_status(error, detail.map(|r| r as i32))
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

/// A batch item's command (its tenant parsed like `x-tenant-id`).
fn batch_item(item: pb::AuthorizeBatchItem) -> Result<(TenantId, AuthorizeCommand), Error> {
    let tenant = participant::item_tenant(&item.tenant_id)?;
    let r = participant::required(item.request)?;
    let order_id = Uuid::parse_str(&r.order_id)
        .map_err(|_| Error::invalid_field("order_id", "format", "must be a UUID"))?;
    Ok((
        tenant,
        AuthorizeCommand {
            order_id,
            idempotency_key: r.idempotency_key,
            customer_id: r.customer_id,
            amount_cents: r.amount_cents,
            currency: r.currency,
        },
    ))
}

impl PaymentGrpc {
    /// Every item answered on its own: a malformed item is refused alone.
    async fn authorize_batch(&self, r: pb::AuthorizeBatchRequest) -> pb::AuthorizeBatchResponse {
        use pb::authorize_batch_result::Outcome;
        let outcomes = participant::answer_each(
            r.items,
            batch_item,
            |valid| self.0.authorize_batch(valid),
            |answer| match answer {
                Ok(payment) => Outcome::Authorized(to_proto(payment)),
                Err(e) => Outcome::Error(participant::item_error(&status(e))),
            },
        );
        let results = outcomes.await.into_iter();
        let results = results.map(|outcome| pb::AuthorizeBatchResult { outcome });
        pb::AuthorizeBatchResponse {
            results: results.collect(),
        }
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentGrpc {
    async fn authorize_batch(
        &self,
        request: Request<pb::AuthorizeBatchRequest>,
    ) -> Result<Response<pb::AuthorizeBatchResponse>, Status> {
        let batch = request.into_inner();
        participant::check_size(batch.items.len()).map_err(status)?;
        Ok(Response::new(
            PaymentGrpc::authorize_batch(self, batch).await,
        ))
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command = AuthorizeCommand {
            order_id: participant::order_id(&r.order_id).map_err(status)?,
            idempotency_key: r.idempotency_key,
            customer_id: r.customer_id,
            amount_cents: r.amount_cents,
            currency: r.currency,
        };
        let payment = self.0.authorize(&tenant, command).await.map_err(status)?;
        Ok(Response::new(to_proto(payment)))
    }

    async fn void(
        &self,
        request: Request<pb::VoidRequest>,
    ) -> Result<Response<pb::VoidResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = participant::order_id(&request.get_ref().order_id).map_err(status)?;
        let outcome = self.0.void(&tenant, id).await.map_err(status)?;
        Ok(Response::new(pb::VoidResponse {
            order_id: id.to_string(),
            outcome: outcome.as_str().to_owned(),
        }))
    }

    async fn capture(
        &self,
        request: Request<pb::CaptureRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let tenant = tenant_of(&request)?;
        let id = participant::order_id(&request.get_ref().order_id).map_err(status)?;
        let payment = self.0.capture(&tenant, id).await.map_err(status)?;
        Ok(Response::new(to_proto(payment)))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let tenant = tenant_of(&request)?;
        let account = self
            .0
            .account(&tenant, &request.get_ref().customer_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::Account {
            available_cents: account.available_cents(),
            customer_id: account.customer_id,
            currency: account.currency,
            balance_cents: account.balance_cents,
            held_cents: account.held_cents,
        }))
    }
}
