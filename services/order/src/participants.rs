//! The saga's participants over gRPC: the clients, the request each call sends (tenant, trace
//! context, idempotency key), and what their answers mean for the saga. Business refusals arrive
//! as typed values (the participant's `Refusal` enum in the status metadata) and are mapped here,
//! exhaustively, to the order's failure reasons.

use std::time::Duration;

use longship_proto::inventory::v1 as inv;
use longship_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use longship_proto::payment::v1 as pay;
use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_runtime::ClientTls;
use longship_runtime::grpc::ClientChannel;
use longship_saga::{StepContext, StepError};

use crate::domain::FailureReason;

/// gRPC clients of the participants (channels are cheap to clone and multiplex calls).
#[derive(Debug, Clone)]
pub struct Participants {
    /// Inventory.
    pub inventory: InventoryServiceClient<ClientChannel>,
    /// Payment.
    pub payment: PaymentServiceClient<ClientChannel>,
}

impl Participants {
    /// Lazily connecting clients for the two URLs (calls fail transiently while a peer is down).
    /// Host names are re-resolved every 15 s and calls spread over every address, so replicas
    /// behind a headless Service share the load. `tls` gives the mTLS settings for reaching a
    /// peer service by name (`None` with `GRPC_MTLS=off`).
    pub fn connect_lazy(
        inventory_url: &str,
        payment_url: &str,
        timeout: Duration,
        tls: impl Fn(&str) -> Option<ClientTls>,
    ) -> Result<Participants, String> {
        let channel = |url: &str, peer: &str| {
            longship_runtime::grpc::balanced_channel(
                url,
                Duration::from_secs(15),
                tls(peer),
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
            inventory: InventoryServiceClient::new(
                channel(inventory_url, "inventory")
                    .map_err(|e| format!("INVENTORY_GRPC_URL: {e}"))?,
            ),
            payment: PaymentServiceClient::new(
                channel(payment_url, "payment").map_err(|e| format!("PAYMENT_GRPC_URL: {e}"))?,
            ),
        })
    }
}

/// A request for a saga step: the saga's tenant and the current trace context go with it.
pub fn request<T>(message: T, ctx: &StepContext) -> tonic::Request<T> {
    let mut request = longship_tenant::grpc::with_tenant(tonic::Request::new(message), &ctx.tenant);
    longship_telemetry::propagation::inject_grpc(&mut request);
    request
}

/// The status a batch item's error stands for (what the single call would have answered).
fn item_status<M: prost::Message>(
    code: i32,
    error_code: &str,
    message: &str,
    refusal: Option<M>,
) -> tonic::Status {
    let mut status = tonic::Status::new(tonic::Code::from(code), message.to_owned());
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(error_code) {
        status
            .metadata_mut()
            .insert(longship_errors::CODE_METADATA_KEY, value);
    }
    match refusal {
        Some(detail) => longship_errors::with_refusal(status, &detail),
        None => status,
    }
}

/// A batch request: the trace context goes with it; each item carries its own tenant.
fn batch_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    longship_telemetry::propagation::inject_grpc(&mut request);
    request
}

/// One `ReserveBatch` call for `items` (each a saga's context and request). `Err`: the call
/// failed as a whole (the caller falls back to single calls); else one answer per item, in order.
pub async fn reserve_batch(
    participants: &Participants,
    items: Vec<(&StepContext, inv::ReserveRequest)>,
) -> Result<Vec<Result<inv::ReserveResponse, tonic::Status>>, tonic::Status> {
    let n = items.len();
    let message = inv::ReserveBatchRequest {
        items: items
            .into_iter()
            .map(|(ctx, request)| inv::ReserveBatchItem {
                tenant_id: ctx.tenant.as_str().to_owned(),
                request: Some(request),
            })
            .collect(),
    };
    let response = participants
        .inventory
        .clone()
        .reserve_batch(batch_request(message))
        .await?
        .into_inner();
    if response.results.len() != n {
        return Err(tonic::Status::internal(
            "ReserveBatch answered another number of items",
        ));
    }
    Ok(response
        .results
        .into_iter()
        .map(|r| match r.outcome {
            Some(inv::reserve_batch_result::Outcome::Reserved(reserved)) => Ok(reserved),
            Some(inv::reserve_batch_result::Outcome::Error(e)) => Err(item_status(
                e.code,
                &e.error_code,
                &e.message,
                (e.refusal != 0).then_some(inv::RefusalDetail { refusal: e.refusal }),
            )),
            None => Err(tonic::Status::internal(
                "ReserveBatch answered an empty item",
            )),
        })
        .collect())
}

/// One `AuthorizeBatch` call for `items`, as [`reserve_batch`].
pub async fn authorize_batch(
    participants: &Participants,
    items: Vec<(&StepContext, pay::AuthorizeRequest)>,
) -> Result<Vec<Result<pay::Payment, tonic::Status>>, tonic::Status> {
    let n = items.len();
    let message = pay::AuthorizeBatchRequest {
        items: items
            .into_iter()
            .map(|(ctx, request)| pay::AuthorizeBatchItem {
                tenant_id: ctx.tenant.as_str().to_owned(),
                request: Some(request),
            })
            .collect(),
    };
    let response = participants
        .payment
        .clone()
        .authorize_batch(batch_request(message))
        .await?
        .into_inner();
    if response.results.len() != n {
        return Err(tonic::Status::internal(
            "AuthorizeBatch answered another number of items",
        ));
    }
    Ok(response
        .results
        .into_iter()
        .map(|r| match r.outcome {
            Some(pay::authorize_batch_result::Outcome::Authorized(payment)) => Ok(payment),
            Some(pay::authorize_batch_result::Outcome::Error(e)) => Err(item_status(
                e.code,
                &e.error_code,
                &e.message,
                (e.refusal != 0).then_some(pay::RefusalDetail { refusal: e.refusal }),
            )),
            None => Err(tonic::Status::internal(
                "AuthorizeBatch answered an empty item",
            )),
        })
        .collect())
}

fn refused(reason: FailureReason, status: &tonic::Status) -> StepError {
    StepError::Rejected {
        reason: reason.as_str().to_owned(),
        message: describe(status),
    }
}

fn describe(status: &tonic::Status) -> String {
    let error = longship_errors::status_to_error(status);
    format!("{}: {}", error.code(), error.message())
}

/// What an inventory answer means: a typed refusal ends the saga with its reason; anything else
/// (unavailable, deadline, a bug answered as an error) is retried until the deadline, then
/// compensated with `timeout`.
pub fn inventory_failure(status: &tonic::Status) -> StepError {
    let refusal = longship_errors::refusal_of::<inv::RefusalDetail>(status)
        .and_then(|d| inv::Refusal::try_from(d.refusal).ok());
    let reason = match refusal {
        Some(inv::Refusal::UnknownSku) => FailureReason::UnknownSku,
        Some(inv::Refusal::InsufficientStock) => FailureReason::InsufficientStock,
        Some(inv::Refusal::CurrencyMismatch) => FailureReason::CurrencyMismatch,
        // released first: this saga compensated already (its deadline passed)
        Some(inv::Refusal::ReservationReleased) => FailureReason::Timeout,
        Some(inv::Refusal::Unspecified) | None => return StepError::Transient(describe(status)),
    };
    refused(reason, status)
}

/// What a payment answer means (as [`inventory_failure`]).
pub fn payment_failure(status: &tonic::Status) -> StepError {
    let refusal = longship_errors::refusal_of::<pay::RefusalDetail>(status)
        .and_then(|d| pay::Refusal::try_from(d.refusal).ok());
    let reason = match refusal {
        Some(pay::Refusal::Declined) => FailureReason::PaymentDeclined,
        Some(pay::Refusal::CurrencyMismatch) => FailureReason::CurrencyMismatch,
        Some(pay::Refusal::Voided) => FailureReason::Timeout,
        Some(pay::Refusal::Unspecified) | None => return StepError::Transient(describe(status)),
    };
    refused(reason, status)
}

/// A compensation's failure: always retried (a compensation never gives up).
pub fn compensation_failure(status: &tonic::Status) -> StepError {
    StepError::Transient(describe(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal_status<M: prost::Message>(detail: &M) -> tonic::Status {
        longship_errors::with_refusal(tonic::Status::failed_precondition("no"), detail)
    }

    #[test]
    fn typed_refusals_end_the_saga_with_their_reason_and_the_rest_is_retried() {
        let cases = [
            (inv::Refusal::UnknownSku, "unknown_sku"),
            (inv::Refusal::InsufficientStock, "insufficient_stock"),
            (inv::Refusal::CurrencyMismatch, "currency_mismatch"),
            (inv::Refusal::ReservationReleased, "timeout"),
        ];
        for (refusal, reason) in cases {
            let status = refusal_status(&inv::RefusalDetail {
                refusal: refusal as i32,
            });
            match inventory_failure(&status) {
                StepError::Rejected { reason: r, .. } => assert_eq!(r, reason),
                other => panic!("{refusal:?} gave {other:?}"),
            }
        }
        let status = refusal_status(&pay::RefusalDetail {
            refusal: pay::Refusal::Declined as i32,
        });
        assert!(
            matches!(payment_failure(&status), StepError::Rejected { reason, .. } if reason == "payment_declined")
        );
        // no refusal, or one this build does not know: transient, never a made-up reason
        for status in [
            tonic::Status::unavailable("down"),
            tonic::Status::invalid_argument("bug"),
            refusal_status(&inv::RefusalDetail { refusal: 99 }),
        ] {
            assert!(
                matches!(inventory_failure(&status), StepError::Transient(_)),
                "{status:?}"
            );
        }
    }
}
