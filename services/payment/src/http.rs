//! The HTTP adapter: `/v1/accounts` and `/v1/payments` (ARCHITECTURE §5) and their OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use longship_errors::responses::{JsonBodyRefusals, NoCredentials};
use longship_errors::{Error, Json, Path, ProblemDetails, Query};
use longship_runtime::http::Scoped;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::domain::AccountInput;
use crate::store::{AccountRow, Payment};
use crate::usecases::Funds;

/// An account and its money.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The customer.
    pub customer_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Money on the account, including held money.
    pub balance_cents: i64,
    /// Money held for authorized payments.
    pub held_cents: i64,
    /// `balance_cents - held_cents`.
    pub available_cents: i64,
}

impl From<AccountRow> for AccountView {
    fn from(a: AccountRow) -> Self {
        AccountView {
            available_cents: a.available_cents(),
            customer_id: a.customer_id,
            currency: a.currency,
            balance_cents: a.balance_cents,
            held_cents: a.held_cents,
        }
    }
}

/// One payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    /// The payment id.
    pub id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// Who pays.
    pub customer_id: String,
    /// The amount.
    pub amount_cents: i64,
    /// Its currency.
    pub currency: String,
    /// `AUTHORIZED`, `CAPTURED`, `VOIDED` or `DECLINED`.
    #[schema(example = "AUTHORIZED")]
    pub status: String,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            id: p.id,
            order_id: p.order_id,
            customer_id: p.customer_id,
            amount_cents: p.amount_cents,
            currency: p.currency,
            status: p.status,
        }
    }
}

/// The answer of `GET /v1/payments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentList {
    /// The payments (empty when the order has none for this tenant).
    pub items: Vec<PaymentView>,
}

/// The query of `GET /v1/payments`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    /// The order whose payments to list.
    pub order_id: Uuid,
}

/// The account a `/v1/accounts/{customer_id}` operation names.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CustomerPath {
    /// The customer, 1-64 characters, no control characters
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub customer_id: String,
}

/// The payment HTTP API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(description = "Customer accounts and payments."),
    paths(put_account, get_account, list_payments)
)]
pub struct ApiDoc;

/// The `/v1` routes.
pub fn routes(funds: Arc<Funds>) -> Router {
    Router::new()
        .route(
            "/v1/accounts/{customer_id}",
            get(get_account).put(put_account),
        )
        .route("/v1/payments", get(list_payments))
        .with_state(funds)
}

/// Creates or updates an account, setting its balance.
#[utoipa::path(
    put,
    path = "/v1/accounts/{customer_id}",
    params(CustomerPath),
    request_body(content = AccountInput, example = json!({"balance_cents": 100000, "currency": "USD"})),
    responses(
        (status = 200, description = "The stored account", body = AccountView, example = json!({"customer_id": "c-1", "currency": "USD", "balance_cents": 100000, "held_cents": 2500, "available_cents": 97500})),
        (status = 409, description = "Balance below the held amount (`payment.balance_below_held`) or a currency change while money is held (`payment.currency_change_with_hold`)", body = ProblemDetails, content_type = "application/problem+json"),
        JsonBodyRefusals,
    )
)]
async fn put_account(
    Scoped(funds, tenant): Scoped<Funds>,
    Path(CustomerPath { customer_id }): Path<CustomerPath>,
    Json(body): Json<AccountInput>,
) -> Result<Json<AccountView>, Error> {
    let input = AccountInput {
        customer_id,
        ..body
    };
    Ok(Json(funds.put_account(&tenant, input).await?.into()))
}

/// Reads an account.
#[utoipa::path(
    get,
    path = "/v1/accounts/{customer_id}",
    params(CustomerPath),
    responses(
        (status = 200, description = "The account", body = AccountView, example = json!({"customer_id": "c-1", "currency": "USD", "balance_cents": 100000, "held_cents": 2500, "available_cents": 97500})),
        NoCredentials,
        (status = 404, description = "No such account for this tenant (`payment.account_not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_account(
    Scoped(funds, tenant): Scoped<Funds>,
    Path(CustomerPath { customer_id }): Path<CustomerPath>,
) -> Result<Json<AccountView>, Error> {
    Ok(Json(funds.account(&tenant, &customer_id).await?.into()))
}

/// Lists an order's payments.
#[utoipa::path(
    get,
    path = "/v1/payments",
    params(PaymentsQuery),
    responses(
        (status = 200, description = "The order's payments (empty for unknown orders and other tenants' orders)", body = PaymentList, example = json!({"items": [{"id": "0193f2b1-8a10-7c3e-b5d1-1c2d3e4f5a6b", "order_id": "0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d", "customer_id": "c-1", "amount_cents": 2500, "currency": "USD", "status": "CAPTURED"}]})),
        (status = 400, description = "order_id missing or not a UUID (`request.invalid_query`)", body = ProblemDetails, content_type = "application/problem+json"),
        NoCredentials,
    )
)]
async fn list_payments(
    Scoped(funds, tenant): Scoped<Funds>,
    Query(query): Query<PaymentsQuery>,
) -> Result<Json<PaymentList>, Error> {
    let payments = funds.payments_for_order(&tenant, query.order_id).await?;
    Ok(Json(PaymentList {
        items: payments.into_iter().map(PaymentView::from).collect(),
    }))
}
