//! The public HTTP API (ARCHITECTURE.md section 5).

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use longship_errors::{Error, Json, Path, PlatformCode, ProblemDetails, Query};
use longship_runtime::http::Scoped;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::api::{OrderPage, OrderView};
use crate::domain::{OrderCode, PlaceOrderRequest};
use crate::usecases::Orders;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Longship order service",
        description = "Place orders and follow their saga."
    ),
    paths(place_order, get_order, list_orders)
)]
pub struct ApiDoc;

/// An order as the API shows it (the examples of the document).
fn order_example() -> serde_json::Value {
    serde_json::json!({
        "id": "0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d",
        "customer_id": "c-1",
        "status": "CONFIRMED",
        "currency": "USD",
        "total_cents": 2500,
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1250}],
        "failure_reason": null,
        "created_at": "2026-12-02T10:15:30.123Z",
        "updated_at": "2026-12-02T10:15:30.161Z",
        "saga": {
            "status": "COMPLETED",
            "steps": [
                {"name": "ReserveStock", "status": "SUCCEEDED", "attempts": 1},
                {"name": "AuthorizePayment", "status": "SUCCEEDED", "attempts": 1},
                {"name": "ConfirmOrder", "status": "SUCCEEDED", "attempts": 1}
            ]
        }
    })
}

/// The `/v1` routes.
pub fn routes(orders: std::sync::Arc<Orders>) -> Router {
    Router::new()
        .route("/v1/orders", get(list_orders).post(place_order))
        .route("/v1/orders/{id}", get(get_order))
        .with_state(orders)
}

/// Query of `GET /v1/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// PENDING, CONFIRMED or CANCELLED (empty: any).
    #[param(pattern = "^(PENDING|CONFIRMED|CANCELLED)?$")]
    pub status: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
}

/// Place an order.
#[utoipa::path(
    post, path = "/v1/orders",
    request_body(content = PlaceOrderRequest, example = json!({
        "customer_id": "c-1",
        "currency": "USD",
        "items": [{"sku": "SKU-1", "quantity": 2}]
    })),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]{1,255}$", description = "1-255 printable ASCII; a repeat with the same body returns the same order")),
    responses(
        (status = 202, description = "Accepted; the saga runs in the background", body = OrderView, headers(("Location" = String, description = "`/v1/orders/{id}`")), example = order_example),
        (status = 400, description = "Malformed JSON (`request.malformed_json`) or Idempotency-Key (`request.invalid_idempotency_key`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`request.invalid`, each in errors), or the key was used with another body (`idempotency_key_reused`)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn place_order(
    Scoped(orders, tenant): Scoped<Orders>,
    headers: HeaderMap,
    Json(request): Json<PlaceOrderRequest>,
) -> Result<Response, Error> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::from_code(OrderCode::InvalidIdempotencyKey))?,
        ),
    };
    let placed = orders.place_order(&tenant, key, request).await?;
    let location = format!("/v1/orders/{}", placed.order.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(placed.order),
    )
        .into_response())
}

/// Read an order with its saga's step log.
#[utoipa::path(
    get, path = "/v1/orders/{id}",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, its items and its saga's steps", body = OrderView, example = order_example),
        (status = 400, description = "Not a UUID (`request.invalid_path`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such order for this tenant (`order.not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get_order(
    Scoped(orders, tenant): Scoped<Orders>,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderView>, Error> {
    Ok(Json(orders.get_order(&tenant, id).await?))
}

/// List orders, newest first (keyset pagination).
#[utoipa::path(
    get, path = "/v1/orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of orders; `next_cursor` fetches the next one", body = OrderPage, example = json!({"items": [order_example()], "next_cursor": "0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d"})),
        (status = 400, description = "Bad status or limit (`request.invalid_query`) or a cursor this API did not issue (`request.invalid_cursor`)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn list_orders(
    Scoped(orders, tenant): Scoped<Orders>,
    Query(query): Query<ListQuery>,
) -> Result<Json<OrderPage>, Error> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Error::coded(
            PlatformCode::InvalidQuery,
            "limit must be 1-100",
        ));
    }
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("PENDING" | "CONFIRMED" | "CANCELLED")) => Some(s),
        Some(_) => {
            return Err(Error::coded(
                PlatformCode::InvalidQuery,
                "status must be PENDING, CONFIRMED or CANCELLED",
            ));
        }
    };
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            // only the hyphenated form this API issues (the documented pattern), not every UUID spelling
            let parsed = (c.len() == 36).then(|| Uuid::parse_str(c).ok()).flatten();
            Some(parsed.ok_or_else(|| {
                Error::coded(
                    PlatformCode::InvalidCursor,
                    "cursor is not one this API issued",
                )
            })?)
        }
    };
    let items = orders.list_orders(&tenant, status, cursor, limit).await?;
    let next_cursor = if items.len() as i64 == limit {
        items.last().map(|o| o.id.to_string())
    } else {
        None
    };
    Ok(Json(OrderPage { items, next_cursor }))
}
