//! The HTTP adapter: `/v1/products` (ARCHITECTURE §5) and its OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use longship_errors::responses::{JsonBodyRefusals, NoCredentials};
use longship_errors::{Error, Json, Path, ProblemDetails};
use longship_runtime::http::Scoped;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::ProductInput;
use crate::store::Product;
use crate::usecases::Stock;

/// A product with its stock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    /// The sku.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price in the currency's minor unit.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held for orders in progress.
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        ProductView {
            available: p.available(),
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            currency: p.currency,
            on_hand: p.on_hand,
            reserved: p.reserved,
        }
    }
}

/// The product a `/v1/products/{sku}` operation names.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SkuPath {
    /// The sku, [A-Za-z0-9._-]{1,64}
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
}

/// The inventory HTTP API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(description = "Products and their stock."),
    paths(put_product, get_product)
)]
pub struct ApiDoc;

/// The `/v1` routes.
pub fn routes(stock: Arc<Stock>) -> Router {
    Router::new()
        .route("/v1/products/{sku}", get(get_product).put(put_product))
        .with_state(stock)
}

/// Creates or replaces a product, setting its stock on hand.
#[utoipa::path(
    put,
    path = "/v1/products/{sku}",
    params(SkuPath),
    request_body(content = ProductInput, example = json!({"name": "Blue widget", "price_cents": 1250, "currency": "USD", "on_hand": 100})),
    responses(
        (status = 200, description = "The stored product", body = ProductView, example = json!({"sku": "SKU-1", "name": "Blue widget", "price_cents": 1250, "currency": "USD", "on_hand": 100, "reserved": 2, "available": 98})),
        (status = 409, description = "on_hand below the reserved units (`inventory.on_hand_below_reserved`)", body = ProblemDetails, content_type = "application/problem+json"),
        JsonBodyRefusals,
    )
)]
async fn put_product(
    Scoped(stock, tenant): Scoped<Stock>,
    Path(SkuPath { sku }): Path<SkuPath>,
    Json(body): Json<ProductInput>,
) -> Result<Json<ProductView>, Error> {
    let input = ProductInput { sku, ..body };
    Ok(Json(stock.put_product(&tenant, input).await?.into()))
}

/// Reads a product and its stock.
#[utoipa::path(
    get,
    path = "/v1/products/{sku}",
    params(SkuPath),
    responses(
        (status = 200, description = "The product", body = ProductView, example = json!({"sku": "SKU-1", "name": "Blue widget", "price_cents": 1250, "currency": "USD", "on_hand": 100, "reserved": 2, "available": 98})),
        NoCredentials,
        (status = 404, description = "No such product for this tenant (`inventory.product_not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_product(
    Scoped(stock, tenant): Scoped<Stock>,
    Path(SkuPath { sku }): Path<SkuPath>,
) -> Result<Json<ProductView>, Error> {
    Ok(Json(stock.product(&tenant, &sku).await?.into()))
}
