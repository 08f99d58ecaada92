//! The order service's saga routes of the admin API (ARCHITECTURE.md section 5), over
//! [`SagaAdmin`]: list (filters, cursor paging, newest first), one saga with its steps and history,
//! retry and cancel. Mounted by a service with `Shell::admin(admin_routes(..), AdminApiDoc::openapi())`
//! under `/admin/v1`. Each action is audited in its own transaction and counted in
//! `admin_actions_total`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use longship_admin::{Action, audit};
use longship_errors::{Error, Json, Path, PlatformCode, ProblemDetails, Query};
use longship_tenant::{Admin, AdminPrincipal};
use serde::Deserialize;
use sqlx::Row;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::admin::{
    HistoryEntry, SagaAdmin, SagaDetail, SagaFilter, SagaPage, SagaStepDetail, SagaSummary,
};
use crate::domain::SagaStatus;

/// The OpenAPI document of the saga admin routes.
#[derive(OpenApi)]
#[openapi(
    paths(list_sagas, get_saga, retry_saga, cancel_saga),
    components(schemas(
        SagaPage,
        SagaSummary,
        SagaDetail,
        SagaStepDetail,
        HistoryEntry,
        CancelRequest,
        ProblemDetails
    ))
)]
pub struct AdminApiDoc;

/// A saga summary as the API shows it (the examples of the document).
fn summary_example() -> serde_json::Value {
    serde_json::json!({
        "id": "0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d",
        "saga_type": "place_order",
        "version": 1,
        "tenant_id": "acme",
        "status": "COMPENSATING",
        "step_index": 1,
        "current_step": "AuthorizePayment",
        "attempts": 7,
        "failure_reason": "timeout",
        "last_error": "service.unavailable: tcp connect error",
        "deadline": "2026-12-02T10:16:00.123Z",
        "next_attempt_at": "2026-12-02T10:16:09.500Z",
        "created_at": "2026-12-02T10:15:30.123Z",
        "updated_at": "2026-12-02T10:16:05.500Z"
    })
}

fn page_example() -> serde_json::Value {
    serde_json::json!({"items": [summary_example()], "next_cursor": null})
}

fn detail_example() -> serde_json::Value {
    let mut saga = summary_example();
    let extra = serde_json::json!({
        "data": {"order_id": "0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d", "customer_id": "c-1"},
        "steps": [
            {"name": "ReserveStock", "status": "SUCCEEDED", "attempts": 1, "last_error": null},
            {"name": "AuthorizePayment", "status": "COMPENSATING", "attempts": 3, "last_error": "service.unavailable: tcp connect error"},
            {"name": "ConfirmOrder", "status": "PENDING", "attempts": 0, "last_error": null}
        ],
        "history": [
            {"at": "2026-12-02T10:15:30.130Z", "state": "SUCCEEDED", "step": "ReserveStock", "attempt": 1, "error": null, "actor": "engine"},
            {"at": "2026-12-02T10:15:30.190Z", "state": "RETRY_SCHEDULED", "step": "AuthorizePayment", "attempt": 1, "error": "service.unavailable: tcp connect error", "actor": "engine"},
            {"at": "2026-12-02T10:16:04.000Z", "state": "RETRY_REQUESTED", "step": "AuthorizePayment", "attempt": 7, "error": null, "actor": "ops@example.com"}
        ]
    });
    if let (Some(saga), serde_json::Value::Object(extra)) = (saga.as_object_mut(), extra) {
        saga.extend(extra);
    }
    saga
}

/// The saga routes under `/admin/v1/sagas` (creates the `saga.retry` and `saga.cancel` series of
/// `admin_actions_total` at zero).
pub fn admin_routes(admin: SagaAdmin) -> Router {
    Action::SAGA_RETRY.register();
    Action::SAGA_CANCEL.register();
    Router::new()
        .route("/admin/v1/sagas", get(list_sagas))
        .route("/admin/v1/sagas/{id}", get(get_saga))
        .route("/admin/v1/sagas/{id}/retry", post(retry_saga))
        .route("/admin/v1/sagas/{id}/cancel", post(cancel_saga))
        .with_state(admin)
}

/// Query of `GET /admin/v1/sagas`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SagaListQuery {
    /// RUNNING, COMPENSATING, COMPLETED or COMPENSATED (empty: any).
    #[param(pattern = "^(RUNNING|COMPENSATING|COMPLETED|COMPENSATED)?$")]
    pub status: Option<String>,
    /// Only this tenant's (operators; a tenant admin always sees its own only).
    pub tenant: Option<String>,
    /// true: only stuck sagas (not finished, and past the deadline or a step attempted 5 times or
    /// more); false: only the others.
    pub stuck: Option<bool>,
    /// Only this saga type, e.g. `place_order`.
    pub saga_type: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// List sagas, newest first.
#[utoipa::path(
    get, path = "/admin/v1/sagas", tag = "admin",
    params(SagaListQuery),
    responses(
        (status = 200, description = "A page of sagas; `next_cursor` fetches the next one", body = SagaPage, example = page_example),
        (status = 400, description = "Bad status, stuck or limit (`request.invalid_query`), a cursor this API did not issue (`request.invalid_cursor`) or a malformed tenant (`tenant.invalid`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_sagas(
    State(admin): State<SagaAdmin>,
    Admin(principal): Admin,
    Query(query): Query<SagaListQuery>,
) -> Result<Json<SagaPage>, Error> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(SagaStatus::parse(s).ok_or_else(|| {
            Error::coded(
                PlatformCode::InvalidQuery,
                "status must be RUNNING, COMPENSATING, COMPLETED or COMPENSATED",
            )
        })?),
    };
    let filter = SagaFilter {
        status,
        tenant: longship_admin::parse_tenant(&principal, query.tenant.as_deref())?,
        stuck: query.stuck,
        saga_type: query.saga_type.filter(|t| !t.is_empty()),
        cursor: longship_admin::parse_cursor(query.cursor.as_deref())?,
        limit: longship_admin::parse_limit(query.limit)?,
    };
    Ok(Json(admin.list(&filter).await?))
}

/// One saga with its data, steps and history (oldest first).
#[utoipa::path(
    get, path = "/admin/v1/sagas/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "Saga id (the order id for place_order)")),
    responses(
        (status = 200, description = "The saga", body = SagaDetail, example = detail_example),
        (status = 404, description = "No such saga (for a tenant admin: in its tenant) (`saga.not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_saga(
    State(admin): State<SagaAdmin>,
    Admin(principal): Admin,
    Path(id): Path<Uuid>,
) -> Result<Json<SagaDetail>, Error> {
    let tenant = principal.tenant_filter(None);
    Ok(Json(admin.get(id, tenant).await?))
}

/// Make the saga's next attempt due now (backoff cleared).
#[utoipa::path(
    post, path = "/admin/v1/sagas/{id}/retry", tag = "admin",
    params(("id" = Uuid, Path, description = "Saga id")),
    responses(
        (status = 202, description = "Its next attempt is due now; the saga as it stands", body = SagaSummary, example = summary_example),
        (status = 404, description = "No such saga (for a tenant admin: in its tenant) (`saga.not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The saga has finished (`saga.terminal`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn retry_saga(
    State(admin): State<SagaAdmin>,
    Admin(principal): Admin,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<SagaSummary>), Error> {
    let result = act(&admin, &principal, id, None).await;
    Action::SAGA_RETRY.outcome(result)
}

/// Body of `POST /admin/v1/sagas/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why (1-500 characters; in the saga's history and the audit log).
    pub reason: String,
}

/// Cancel a running saga: every completed step is compensated in reverse order; the order ends
/// CANCELLED with `operator_cancelled`.
#[utoipa::path(
    post, path = "/admin/v1/sagas/{id}/cancel", tag = "admin",
    params(("id" = Uuid, Path, description = "Saga id")),
    request_body(content = CancelRequest, example = json!({"reason": "customer asked by phone"})),
    responses(
        (status = 202, description = "Compensating; the saga as it stands", body = SagaSummary, example = summary_example),
        (status = 404, description = "No such saga (for a tenant admin: in its tenant) (`saga.not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The saga has finished (`saga.terminal`) or is compensating already (`saga.compensating`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_saga(
    State(admin): State<SagaAdmin>,
    Admin(principal): Admin,
    Path(id): Path<Uuid>,
    Json(request): Json<CancelRequest>,
) -> Result<(StatusCode, Json<SagaSummary>), Error> {
    let result = match longship_admin::parse_reason(&request.reason) {
        Ok(reason) => act(&admin, &principal, id, Some(&reason)).await,
        Err(e) => Err(e),
    };
    Action::SAGA_CANCEL.outcome(result)
}

/// Retries (`reason` None) or cancels saga `id` and audits it, in one transaction; answers the
/// saga as it stands after the commit.
async fn act(
    admin: &SagaAdmin,
    principal: &AdminPrincipal,
    id: Uuid,
    reason: Option<&str>,
) -> Result<(StatusCode, Json<SagaSummary>), Error> {
    let tenant = principal.tenant_filter(None);
    let actor = principal.subject.as_str();
    let db = |e| Error::from_sqlx(e, &[]);
    let mut tx = admin.pool().begin().await.map_err(db)?;
    let action = match reason {
        None => {
            admin.retry_in(&mut tx, id, tenant, actor).await?;
            Action::SAGA_RETRY
        }
        Some(reason) => {
            admin.cancel_in(&mut tx, id, tenant, actor, reason).await?;
            Action::SAGA_CANCEL
        }
    };
    let owner: String = sqlx::query("SELECT tenant_id FROM saga WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("tenant_id"))
        .map_err(db)?;
    audit::record(
        &mut tx,
        actor,
        Some(&owner),
        action,
        &id.to_string(),
        reason,
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    tracing::info!(saga_id = %id, action = action.0, actor, "operator action");
    let saga = admin.get(id, tenant).await?;
    Ok((StatusCode::ACCEPTED, Json(saga.summary)))
}
