//! The server side of a saga participant's gRPC commands: the order id a command names
//! ([`order_id`]), business refusals as typed details ([`refused_status`]), and batched commands
//! (`ReserveBatch`, `AuthorizeBatch`, a new service's own): at most [`MAX_BATCH`] items a call, each
//! item answered on its own and in the batch's order, a malformed item refused alone with the
//! `ItemError` the single call would have answered as its status.
//!
//! Every service proto declares its `ItemError` with the same fields and numbers (`int32 code = 1;
//! string error_code = 2; string message = 3; Refusal refusal = 4;`) and its `RefusalDetail` as
//! `Refusal refusal = 1;`, so one function builds the item error of any of them ([`item_error`]).

use std::future::Future;

use longship_errors::Error;
use longship_tenant::TenantId;
use prost::Message;
use uuid::Uuid;

/// The order id a command names, parsed (422 `order_id` `format` unless a UUID) and recorded on the
/// call span (`order_id`).
pub fn order_id(raw: &str) -> Result<Uuid, Error> {
    let id = Uuid::parse_str(raw)
        .map_err(|_| Error::invalid_field("order_id", "format", "must be a UUID"))?;
    tracing::Span::current().record("order_id", raw);
    Ok(id)
}

/// The most items one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Refuses a batch of more than [`MAX_BATCH`] items (422 / INVALID_ARGUMENT on `items`).
pub fn check_size(items: usize) -> Result<(), Error> {
    if items > MAX_BATCH {
        return Err(Error::invalid_field(
            "items",
            "length",
            "at most 1000 items per batch",
        ));
    }
    Ok(())
}

/// A batch item's tenant, parsed like `x-tenant-id` (400 `tenant.invalid` when malformed).
pub fn item_tenant(raw: &str) -> Result<TenantId, Error> {
    TenantId::parse(raw).map_err(|_| {
        Error::bad_request(
            "tenant.invalid",
            "tenant_id must match [a-z0-9][a-z0-9-]{0,62}",
        )
    })
}

/// A batch item's required `request` field (422 `request` `required` when absent).
pub fn required<T>(request: Option<T>) -> Result<T, Error> {
    request.ok_or_else(|| Error::invalid_field("request", "required", "is required"))
}

/// Answers every item on its own: `parse` each (a malformed item is answered alone, by
/// `answer(Err(..))`), `run` the well-formed ones together (one answer each, in their order), and
/// give back one `answer` per item, in the batch's order (`None` where `run` gave fewer answers
/// than it was given commands: the proto's empty `outcome`).
pub async fn answer_each<I, C, T, O, Fut>(
    items: Vec<I>,
    parse: impl Fn(I) -> Result<C, Error>,
    run: impl FnOnce(Vec<C>) -> Fut,
    answer: impl Fn(Result<T, Error>) -> O,
) -> Vec<Option<O>>
where
    Fut: Future<Output = Vec<Result<T, Error>>>,
{
    let mut results: Vec<Option<O>> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for item in items {
        match parse(item) {
            Ok(command) => {
                positions.push(results.len());
                valid.push(command);
                results.push(None);
            }
            Err(e) => results.push(Some(answer(Err(e)))),
        }
    }
    let answers = run(valid).await;
    for (at, result) in positions.into_iter().zip(answers) {
        results[at] = Some(answer(result));
    }
    results
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireItemError {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    error_code: String,
    #[prost(string, tag = "3")]
    message: String,
    #[prost(int32, tag = "4")]
    refusal: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireRefusal {
    #[prost(int32, tag = "1")]
    refusal: i32,
}

/// A batch item's failure as the service proto's `ItemError` `M`: the status the single call would
/// have answered (its gRPC code, stable code, message and typed refusal, 0 when none).
pub fn item_error<M: prost::Message + Default>(status: &tonic::Status) -> M {
    let wire = WireItemError {
        code: status.code() as i32,
        error_code: status
            .metadata()
            .get(longship_errors::CODE_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        message: status.message().to_owned(),
        refusal: longship_errors::refusal_of::<WireRefusal>(status).map_or(0, |d| d.refusal),
    };
    M::decode(wire.encode_to_vec().as_slice()).unwrap_or_default()
}

/// What an `ItemError` `M` of any service proto says (as [`item_error`] wrote it): its gRPC code,
/// stable error code and refusal (the number of the proto's `Refusal` value, 0 when none).
pub fn read_item_error<M: prost::Message>(error: &M) -> (tonic::Code, String, i32) {
    let wire = WireItemError::decode(error.encode_to_vec().as_slice()).unwrap_or_default();
    (tonic::Code::from(wire.code), wire.error_code, wire.refusal)
}

/// `error` as a status, with the typed refusal `refusal` (a `Refusal` enum value of the service's
/// proto) attached as its `RefusalDetail` when it is a business refusal.
pub fn refused_status(error: Error, refusal: Option<i32>) -> tonic::Status {
    let status = tonic::Status::from(error);
    match refusal {
        Some(refusal) => longship_errors::with_refusal(status, &WireRefusal { refusal }),
        None => status,
    }
}

#[cfg(test)]
mod tests {
    use longship_errors::ErrorCode;
    use longship_proto::{inventory::v1 as inventory, payment::v1 as payment};

    use super::*;

    fn refused() -> tonic::Status {
        let error = Error::bad_request("payment.declined", "declined");
        refused_status(error, Some(payment::Refusal::Declined as i32))
    }

    #[test]
    fn every_service_item_error_gets_the_single_calls_status() {
        let status = refused();
        let detail = longship_errors::refusal_of::<payment::RefusalDetail>(&status);
        assert_eq!(
            detail.map(|d| d.refusal),
            Some(payment::Refusal::Declined as i32)
        );
        let e: payment::ItemError = item_error(&status);
        assert_eq!(e.code, tonic::Code::InvalidArgument as i32);
        assert_eq!(
            (e.error_code.as_str(), e.message.as_str()),
            ("payment.declined", "declined")
        );
        assert_eq!(e.refusal, payment::Refusal::Declined as i32);
        assert_eq!(
            read_item_error(&e),
            (
                tonic::Code::InvalidArgument,
                "payment.declined".to_owned(),
                payment::Refusal::Declined as i32
            )
        );

        let plain = tonic::Status::from(Error::from_code(longship_errors::PlatformCode::Internal));
        let e: inventory::ItemError = item_error(&plain);
        assert_eq!(e.code, tonic::Code::Internal as i32);
        assert_eq!(
            e.error_code,
            longship_errors::PlatformCode::Internal.as_str()
        );
        assert_eq!(e.refusal, 0);
    }

    #[test]
    fn sizes_and_item_fields_are_checked() {
        assert!(check_size(MAX_BATCH).is_ok());
        assert_eq!(
            check_size(MAX_BATCH + 1).expect_err("too many").fields()[0].field,
            "items"
        );
        assert!(item_tenant("acme").is_ok());
        assert_eq!(
            item_tenant("ACME!").expect_err("bad").code(),
            "tenant.invalid"
        );
        assert_eq!(
            required::<u8>(None).expect_err("absent").fields()[0].field,
            "request"
        );
    }

    #[tokio::test]
    async fn malformed_items_are_answered_alone_and_in_order() {
        let items = vec![1, -1, 2, -2, 3];
        let parse = |i: i32| {
            if i > 0 {
                Ok(i)
            } else {
                Err(Error::invalid_field("n", "range", "must be > 0"))
            }
        };
        let run = |valid: Vec<i32>| async move {
            assert_eq!(valid, [1, 2, 3]);
            valid.into_iter().map(|i| Ok(i * 10)).collect()
        };
        let answers = answer_each(items, parse, run, |r| r.map_err(|e| e.code().to_owned())).await;
        let invalid = Some(Err("request.invalid".to_owned()));
        let ok = |n| Some(Ok(n));
        assert_eq!(answers, [ok(10), invalid.clone(), ok(20), invalid, ok(30)]);

        let short = answer_each(vec![1, 2], parse, |_| async { vec![Ok(0)] }, |r| r.is_ok()).await;
        assert_eq!(short, [Some(true), None]);
    }
}
