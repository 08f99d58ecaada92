//! The gRPC adapter: `longship.payment.v1.PaymentService` over the use cases. Business refusals
//! carry a typed `RefusalDetail` beside their stable code, so the saga maps them without reading
//! strings.

use std::sync::Arc;

use longship_errors::{Error, ErrorCode};
use longship_proto::payment::v1 as pb;
use longship_proto::payment::v1::payment_service_server::PaymentService;
use longship_runtime::grpc::Rpc;
use longship_runtime::participant;
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

fn authorize_command(r: pb::AuthorizeRequest, order_id: Uuid) -> AuthorizeCommand {
    AuthorizeCommand {
        order_id,
        idempotency_key: r.idempotency_key,
        customer_id: r.customer_id,
        amount_cents: r.amount_cents,
        currency: r.currency,
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentGrpc {
    /// Every item answered on its own: a malformed item is refused alone.
    async fn authorize_batch(
        &self,
        request: Request<pb::AuthorizeBatchRequest>,
    ) -> Rpc<pb::AuthorizeBatchResponse> {
        let run = |valid| self.0.authorize_batch(valid);
        participant::answer_batch(request, authorize_command, run, to_proto, status).await
    }

    async fn authorize(&self, request: Request<pb::AuthorizeRequest>) -> Rpc<pb::Payment> {
        let (tenant, order_id) = participant::order_of(&request, &request.get_ref().order_id)?;
        let command = authorize_command(request.into_inner(), order_id);
        let payment = self.0.authorize(&tenant, command).await.map_err(status)?;
        Ok(Response::new(to_proto(payment)))
    }

    async fn void(&self, request: Request<pb::VoidRequest>) -> Rpc<pb::VoidResponse> {
        let (tenant, id) = participant::order_of(&request, &request.get_ref().order_id)?;
        participant::outcome(id, self.0.void(&tenant, id).await.map_err(status)?.as_str())
    }

    async fn capture(&self, request: Request<pb::CaptureRequest>) -> Rpc<pb::Payment> {
        let (tenant, id) = participant::order_of(&request, &request.get_ref().order_id)?;
        let payment = self.0.capture(&tenant, id).await.map_err(status)?;
        Ok(Response::new(to_proto(payment)))
    }

    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Rpc<pb::Account> {
        let tenant = tenant_of(&request)?;
        let customer_id = &request.get_ref().customer_id;
        let account = self.0.account(&tenant, customer_id).await.map_err(status)?;
        Ok(Response::new(pb::Account {
            available_cents: account.available_cents(),
            customer_id: account.customer_id,
            currency: account.currency,
            balance_cents: account.balance_cents,
            held_cents: account.held_cents,
        }))
    }
}
