//! The server side of a saga participant's gRPC commands: the tenant and order a command names
//! ([`order_of`]), the answer of a command that answers with its outcome ([`outcome`]), business
//! refusals as typed details ([`refused_status`]), and batched commands (`ReserveBatch`,
//! `AuthorizeBatch`, a new service's own, [`answer_batch`]): at most [`MAX_BATCH`] items a call,
//! each item answered on its own and in the batch's order, a malformed item refused alone with the
//! `ItemError` the single call would have answered as its status.
//!
//! Every service proto declares these messages with the same fields and numbers, so one function
//! builds the message of any of them:
//! - a command's answer that is its outcome (`ReleaseResponse`, `VoidResponse`, ...): `string
//!   order_id = 1; string outcome = 2;`
//! - `ItemError`: `int32 code = 1; string error_code = 2; string message = 3; Refusal refusal = 4;`
//!   and `RefusalDetail`: `Refusal refusal = 1;`
//! - a batch's answer (`ReserveBatchResponse`, ...): `repeated <Batch>Result results = 1;`, each
//!   result `oneof outcome { <the single call's answer> <answered> = 1; ItemError error = 2; }`.

use std::future::Future;

use longship_errors::Error;
use longship_tenant::TenantId;
use longship_tenant::grpc::tenant_of;
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::grpc::Rpc;

/// The order id a command names, parsed (422 `order_id` `format` unless a UUID) and recorded on the
/// call span (`order_id`).
pub fn order_id(raw: &str) -> Result<Uuid, Error> {
    let id = parse_order_id(raw)?;
    tracing::Span::current().record("order_id", raw);
    Ok(id)
}

fn parse_order_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::invalid_field("order_id", "format", "must be a UUID"))
}

/// The tenant a command runs for (`x-tenant-id`, see [`tenant_of`]) and the order it names
/// (`order_id`, its `order_id` field: see [`order_id`]).
#[allow(clippy::result_large_err)] // reason: tonic's Status is the error type of every handler
pub fn order_of<T>(request: &Request<T>, order_id: &str) -> Result<(TenantId, Uuid), Status> {
    let tenant = tenant_of(request)?;
    Ok((tenant, self::order_id(order_id)?))
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireOutcome {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    outcome: String,
}

/// The answer `M` of a command that answers with its outcome (`Release`, `Commit`, `Void`, a new
/// service's `Cancel`): the order it names and the outcome's name.
pub fn outcome<M: Message + Default>(order_id: Uuid, outcome: &str) -> Rpc<M> {
    let wire = WireOutcome {
        order_id: order_id.to_string(),
        outcome: outcome.to_owned(),
    };
    Ok(Response::new(reencoded(&wire)?))
}

/// `wire` as the service proto's message `M` of the same fields and numbers.
fn reencoded<M: Message + Default>(wire: &impl Message) -> Result<M, Error> {
    M::decode(wire.encode_to_vec().as_slice()).map_err(Error::internal)
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
struct WireBatchResponse {
    #[prost(message, repeated, tag = "1")]
    results: Vec<WireBatchResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireBatchResult {
    #[prost(oneof = "WireItemOutcome", tags = "1, 2")]
    outcome: Option<WireItemOutcome>,
}

/// An item's outcome: its answer (the encoded message, which is a message field's wire form) or
/// its `ItemError`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum WireItemOutcome {
    #[prost(bytes, tag = "1")]
    Answered(Vec<u8>),
    #[prost(message, tag = "2")]
    Error(WireItemError),
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireBatchRequest {
    #[prost(message, repeated, tag = "1")]
    items: Vec<WireBatchItem>,
}

/// A batch item: its tenant and its command (the encoded message, as in [`WireItemOutcome`]).
#[derive(Clone, PartialEq, prost::Message)]
struct WireBatchItem {
    #[prost(string, tag = "1")]
    tenant_id: String,
    #[prost(bytes = "vec", optional, tag = "2")]
    request: Option<Vec<u8>>,
}

/// What every command naming its order starts with.
#[derive(Clone, PartialEq, prost::Message)]
struct WireOrderCommand {
    #[prost(string, tag = "1")]
    order_id: String,
}

/// A batch item's tenant ([`item_tenant`]), its command `R` ([`required`]) and the order the
/// command names (422 `order_id` `format` unless a UUID; not recorded on the call's span, which is
/// the whole batch's).
fn batch_item<R: Message + Default>(item: WireBatchItem) -> Result<(TenantId, R, Uuid), Error> {
    let tenant = item_tenant(&item.tenant_id)?;
    let bytes = required(item.request)?;
    let order = WireOrderCommand::decode(bytes.as_slice()).map_err(Error::internal)?;
    let command = R::decode(bytes.as_slice()).map_err(Error::internal)?;
    Ok((tenant, command, parse_order_id(&order.order_id)?))
}

/// Answers a batched command `request` (`ReserveBatch`, `AuthorizeBatch`, a new service's own) with
/// the proto's batch answer `M`. More than [`MAX_BATCH`] items refuse the call ([`check_size`]);
/// otherwise every item is answered on its own ([`answer_each`]): its command `R` is made the
/// service's command by `command` (with the order it names), the well-formed ones are `run`
/// together, an answer becomes the single call's answer message (`answered`), a failure the
/// `ItemError` of the status the single call would have answered (`status`, which attaches the
/// service's typed refusal).
pub async fn answer_batch<M, Q, R, C, T, A, Fut>(
    request: Request<Q>,
    command: impl Fn(R, Uuid) -> C,
    run: impl FnOnce(Vec<(TenantId, C)>) -> Fut,
    answered: impl Fn(T) -> A,
    status: impl Fn(Error) -> Status,
) -> Rpc<M>
where
    M: Message + Default,
    Q: Message,
    R: Message + Default,
    A: Message,
    Fut: Future<Output = Vec<Result<T, Error>>>,
{
    let items: WireBatchRequest = reencoded(request.get_ref())?;
    check_size(items.items.len()).map_err(&status)?;
    let parse = |item| {
        let (tenant, r, order_id) = batch_item::<R>(item)?;
        Ok((tenant, command(r, order_id)))
    };
    let answer = |result: Result<T, Error>| match result {
        Ok(answer) => WireItemOutcome::Answered(answered(answer).encode_to_vec()),
        Err(e) => WireItemOutcome::Error(item_error(&status(e))),
    };
    let outcomes = answer_each(items.items, parse, run, answer)
        .await
        .into_iter();
    let results = outcomes.map(|outcome| WireBatchResult { outcome });
    let wire = WireBatchResponse {
        results: results.collect(),
    };
    Ok(Response::new(reencoded(&wire)?))
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
    fn every_service_outcome_answer_is_built_and_the_order_is_read() {
        let id = Uuid::now_v7();
        let answer: inventory::ReleaseResponse =
            outcome(id, "RELEASED").expect("built").into_inner();
        assert_eq!(
            (answer.order_id, answer.outcome),
            (id.to_string(), "RELEASED".into())
        );
        let answer: payment::VoidResponse = outcome(id, "VOIDED").expect("built").into_inner();
        assert_eq!(
            (answer.order_id, answer.outcome),
            (id.to_string(), "VOIDED".into())
        );

        let mut request = Request::new(payment::VoidRequest {
            order_id: id.to_string(),
            idempotency_key: "k".into(),
        });
        let tenant = TenantId::parse("acme").expect("valid");
        request.extensions_mut().insert(tenant.clone());
        let order_id = &request.get_ref().order_id;
        assert_eq!(order_of(&request, order_id).expect("read"), (tenant, id));
        let refused = order_of(&request, "nope").expect_err("not a UUID");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }

    fn reserve_item(tenant_id: &str, order_id: Option<String>) -> inventory::ReserveBatchItem {
        inventory::ReserveBatchItem {
            tenant_id: tenant_id.into(),
            request: order_id.map(|order_id| inventory::ReserveRequest {
                order_id,
                currency: "USD".into(),
                ..Default::default()
            }),
        }
    }

    fn answered(order_id: Uuid) -> payment::Payment {
        payment::Payment {
            order_id: order_id.to_string(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_batch_is_answered_item_by_item_as_the_services_proto() {
        use inventory::reserve_batch_result::Outcome;
        let id = Uuid::now_v7();
        let items = vec![
            reserve_item("acme", Some(id.to_string())),
            reserve_item("ACME!", Some(id.to_string())),
            reserve_item("acme", None),
            reserve_item("acme", Some("nope".into())),
            reserve_item("globex", Some(id.to_string())),
        ];
        let request = Request::new(inventory::ReserveBatchRequest { items });
        let command = |r: inventory::ReserveRequest, order_id: Uuid| (r.currency, order_id);
        let run = |valid: Vec<(TenantId, (String, Uuid))>| async move {
            let tenants: Vec<&str> = valid.iter().map(|(t, _)| t.as_str()).collect();
            assert_eq!(tenants, ["acme", "globex"]);
            assert!(
                valid
                    .iter()
                    .all(|(_, command)| *command == ("USD".into(), id))
            );
            vec![
                Ok(id),
                Err(Error::bad_request("inventory.unknown_sku", "unknown")),
            ]
        };
        let answer = |order_id: Uuid| inventory::ReserveResponse {
            order_id: order_id.to_string(),
            ..Default::default()
        };
        let refusal = |e: Error| {
            let unknown = e.code() == "inventory.unknown_sku";
            let detail = unknown.then_some(inventory::Refusal::UnknownSku as i32);
            refused_status(e, detail)
        };
        let batch: inventory::ReserveBatchResponse =
            answer_batch(request, command, run, answer, refusal)
                .await
                .expect("answered")
                .into_inner();
        let outcomes: Vec<_> = batch.results.into_iter().map(|r| r.outcome).collect();
        let Some(Outcome::Reserved(reserved)) = &outcomes[0] else {
            panic!("{outcomes:?}")
        };
        assert_eq!(reserved.order_id, id.to_string());
        let codes: Vec<String> = outcomes[1..]
            .iter()
            .map(|o| match o {
                Some(Outcome::Error(e)) => format!("{} {}", e.error_code, e.refusal),
                other => format!("{other:?}"),
            })
            .collect();
        let refused = format!(
            "inventory.unknown_sku {}",
            inventory::Refusal::UnknownSku as i32
        );
        assert_eq!(
            codes,
            [
                "tenant.invalid 0".to_owned(),
                "request.invalid 0".to_owned(),
                "request.invalid 0".to_owned(),
                refused
            ]
        );

        let too_many = payment::AuthorizeBatchRequest {
            items: vec![payment::AuthorizeBatchItem::default(); MAX_BATCH + 1],
        };
        let run = |_: Vec<(TenantId, Uuid)>| async { Vec::<Result<Uuid, Error>>::new() };
        let refused = answer_batch::<payment::AuthorizeBatchResponse, _, _, _, _, _, _>(
            Request::new(too_many),
            |_: payment::AuthorizeRequest, order_id| order_id,
            run,
            answered,
            tonic::Status::from,
        )
        .await
        .expect_err("too many");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
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
