//! The admin API every service serves under `/admin/v1` (ARCHITECTURE.md section 5): its dead
//! letters (list, redrive, discard), its outbox and consumers, and the audit log. Authentication
//! is always a JWT with an admin scope ([`Admin`]); a tenant admin sees and acts on its own tenant
//! only (another tenant's dead letter: 404). Each state-changing call is audited in its own
//! transaction and counted in `admin_actions_total`. A service adds its own admin routes with
//! [`crate::Shell::admin`] (the order service: its sagas).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use longship_admin::{Action, AdminCode, AuditPage, audit};
use longship_errors::{Error, Json, Path, ProblemDetails, Query};
use longship_messaging::dead_letter::{self, DeadLetterFilter, DeadLetterPage};
use longship_messaging::{ConsumerSpec, EventEnvelope, EventHandler, Naming, RelayWake};
use longship_tenant::{Admin, AdminScope};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

/// What the admin routes of a service reach: its database, JetStream, its consumers.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) pool: PgPool,
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) naming: Naming,
    pub(crate) relay: RelayWake,
    pub(crate) consumers: Arc<Vec<(ConsumerSpec, Arc<dyn EventHandler>)>>,
}

/// The OpenAPI document of the platform's admin routes (merged into every service's).
#[derive(OpenApi)]
#[openapi(
    paths(list_dead_letters, redrive_dead_letter, discard_dead_letter, outbox, list_audit),
    components(schemas(DeadLetterPage, longship_messaging::dead_letter::DeadLetter, DiscardRequest, OutboxView, ConsumerView, AuditPage, longship_admin::AuditRecord, ProblemDetails)),
    tags((name = "admin", description = "Operating the platform: JWT with the longship:operator or longship:admin scope"))
)]
pub(crate) struct AdminApiDoc;

fn dead_letters_example() -> serde_json::Value {
    serde_json::json!({"items": [{
        "id": "0193f2c4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
        "consumer": "inventory-order-confirmed",
        "event_id": "0193f2b1-8d00-7a51-9d2b-5e1f2a3b4c5d",
        "event_type": "orders.v1.order_confirmed",
        "subject": "orders.v1.order_confirmed",
        "tenant_id": "acme",
        "deliveries": 5,
        "error": "database: error returned from database: stock ledger closed",
        "dead_lettered_at": "2026-12-02T10:15:33.010Z",
        "payload": {"id": "0193f2b1-8d00-7a51-9d2b-5e1f2a3b4c5d", "type": "orders.v1.order_confirmed", "tenant_id": "acme",
                    "occurred_at": "2026-12-02T10:15:30.161Z", "schema_version": 1,
                    "data": {"order_id": "0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d"}}
    }], "next_cursor": null})
}

fn outbox_example() -> serde_json::Value {
    serde_json::json!({"pending": 0, "oldest_pending_age_seconds": 0.0, "consumers": [
        {"name": "inventory-order-confirmed", "pending": 0, "ack_pending": 0, "dead_letters": 1}
    ]})
}

fn audit_example() -> serde_json::Value {
    serde_json::json!({"items": [{
        "id": "0193f2d0-0000-7000-8000-000000000001",
        "at": "2026-12-02T10:20:00.000Z",
        "actor": "ops@example.com",
        "tenant_id": "acme",
        "action": "dead_letter.discard",
        "target": "0193f2c4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
        "reason": "order refunded by hand"
    }], "next_cursor": null})
}

/// The platform's admin routes.
pub(crate) fn routes(state: AdminState) -> Router {
    Action::DEAD_LETTER_REDRIVE.register();
    Action::DEAD_LETTER_DISCARD.register();
    Router::new()
        .route("/admin/v1/dead-letters", get(list_dead_letters))
        .route("/admin/v1/dead-letters/{id}", delete(discard_dead_letter))
        .route(
            "/admin/v1/dead-letters/{id}/redrive",
            post(redrive_dead_letter),
        )
        .route("/admin/v1/outbox", get(outbox))
        .route("/admin/v1/audit", get(list_audit))
        .with_state(state)
}

/// Keeps `dead_letters_waiting{consumer}` current (every 5 s) until `shutdown`.
pub(crate) async fn refresh_gauges(state: AdminState, shutdown: CancellationToken) {
    let names: Vec<String> = state
        .consumers
        .iter()
        .map(|(spec, _)| spec.durable_name.clone())
        .collect();
    loop {
        dead_letter::refresh_waiting(&state.pool, &names).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Query of `GET /admin/v1/dead-letters`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLetterQuery {
    /// Only this consumer's (its durable name).
    consumer: Option<String>,
    /// Only this tenant's (operators; a tenant admin always sees its own only).
    tenant: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// List the dead letters of this service's consumers, newest first.
#[utoipa::path(
    get, path = "/admin/v1/dead-letters", tag = "admin",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "A page of dead letters; `next_cursor` fetches the next one", body = DeadLetterPage, example = dead_letters_example),
        (status = 400, description = "Bad limit (`request.invalid_query`), a cursor this API did not issue (`request.invalid_cursor`) or a malformed tenant (`tenant.invalid`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_dead_letters(
    State(state): State<AdminState>,
    Admin(principal): Admin,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<DeadLetterPage>, Error> {
    let filter = DeadLetterFilter {
        consumer: query.consumer.filter(|c| !c.is_empty()),
        tenant: longship_admin::parse_tenant(&principal, query.tenant.as_deref())?
            .map(|t| t.as_str().to_owned()),
        cursor: longship_admin::parse_cursor(query.cursor.as_deref())?,
        limit: longship_admin::parse_limit(query.limit)?,
    };
    let page = dead_letter::list(&state.pool, &filter)
        .await
        .map_err(|e| Error::from_sqlx(e, &[]))?;
    Ok(Json(page))
}

/// Deliver a dead letter again to its consumer.
#[utoipa::path(
    post, path = "/admin/v1/dead-letters/{id}/redrive", tag = "admin",
    params(("id" = Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 202, description = "Handled by its consumer (or found handled already: the inbox keeps the effect at most once); the dead letter is gone"),
        (status = 404, description = "No such dead letter (for a tenant admin: in its tenant) (`dead_letter.not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The consumer failed again; the dead letter stays with the new error (`dead_letter.redrive_failed`), or its consumer does not run here (`dead_letter.consumer_unknown`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn redrive_dead_letter(
    State(state): State<AdminState>,
    Admin(principal): Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    let result = redrive(&state, &principal, id).await;
    if result.is_ok() {
        state.relay.wake();
        dead_letter::refresh_waiting(&state.pool, &[]).await;
    }
    Action::DEAD_LETTER_REDRIVE
        .outcome(result)
        .map(|()| StatusCode::ACCEPTED)
}

fn own_tenant(principal: &longship_tenant::AdminPrincipal) -> Option<&str> {
    match &principal.scope {
        AdminScope::Operator => None,
        AdminScope::Tenant(t) => Some(t.as_str()),
    }
}

async fn redrive(
    state: &AdminState,
    principal: &longship_tenant::AdminPrincipal,
    id: Uuid,
) -> Result<(), Error> {
    let db = |e| Error::from_sqlx(e, &[]);
    let mut tx = state.pool.begin().await.map_err(db)?;
    let letter = dead_letter::lock(&mut tx, id, own_tenant(principal))
        .await
        .map_err(db)?
        .ok_or_else(|| Error::from_code(AdminCode::DeadLetterNotFound))?;
    let handler = state
        .consumers
        .iter()
        .find(|(spec, _)| spec.durable_name == letter.consumer)
        .map(|(_, handler)| Arc::clone(handler))
        .ok_or_else(|| Error::from_code(AdminCode::ConsumerUnknown))?;
    sqlx::query("SAVEPOINT redrive")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let delivered = match EventEnvelope::decode(&letter.payload) {
        Err(e) => Err(e.to_string()),
        Ok(envelope) => dead_letter::deliver(&mut tx, &letter.consumer, &handler, &envelope)
            .await
            .map_err(|e| e.0),
    };
    match delivered {
        Ok(_handled_now) => {
            dead_letter::remove(&mut tx, id).await.map_err(db)?;
            audit::record(
                &mut tx,
                &principal.subject,
                letter.tenant_id.as_deref(),
                Action::DEAD_LETTER_REDRIVE,
                &id.to_string(),
                None,
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            tracing::info!(dead_letter = %id, consumer = %letter.consumer, actor = %principal.subject, "dead letter redriven");
            Ok(())
        }
        Err(error) => {
            // the handler's writes and the inbox row are undone; the dead letter records the try
            sqlx::query("ROLLBACK TO SAVEPOINT redrive")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            dead_letter::failed_again(&mut tx, id, &error)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Err(Error::coded(
                AdminCode::RedriveFailed,
                format!("the consumer failed again: {}", truncate(&error, 300)),
            ))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Body of `DELETE /admin/v1/dead-letters/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscardRequest {
    /// Why it is discarded (1-500 characters; audited).
    reason: String,
}

/// Discard a dead letter (audited with its reason).
#[utoipa::path(
    delete, path = "/admin/v1/dead-letters/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "Dead letter id")),
    request_body(content = DiscardRequest, example = json!({"reason": "duplicate of an order fixed by hand"})),
    responses(
        (status = 204, description = "Discarded; the audit log records who and why"),
        (status = 404, description = "No such dead letter (for a tenant admin: in its tenant) (`dead_letter.not_found`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn discard_dead_letter(
    State(state): State<AdminState>,
    Admin(principal): Admin,
    Path(id): Path<Uuid>,
    Json(request): Json<DiscardRequest>,
) -> Result<StatusCode, Error> {
    let result = async {
        let reason = longship_admin::parse_reason(&request.reason)?;
        let db = |e| Error::from_sqlx(e, &[]);
        let mut tx = state.pool.begin().await.map_err(db)?;
        let letter = dead_letter::lock(&mut tx, id, own_tenant(&principal))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::from_code(AdminCode::DeadLetterNotFound))?;
        dead_letter::remove(&mut tx, id).await.map_err(db)?;
        audit::record(
            &mut tx,
            &principal.subject,
            letter.tenant_id.as_deref(),
            Action::DEAD_LETTER_DISCARD,
            &id.to_string(),
            Some(&reason),
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        tracing::info!(dead_letter = %id, consumer = %letter.consumer, actor = %principal.subject, reason = %reason, "dead letter discarded");
        Ok(())
    }
    .await;
    if result.is_ok() {
        dead_letter::refresh_waiting(&state.pool, &[]).await;
    }
    Action::DEAD_LETTER_DISCARD
        .outcome(result)
        .map(|()| StatusCode::NO_CONTENT)
}

/// The outbox and the consumers of a service.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutboxView {
    /// Events committed and not yet published.
    pending: i64,
    /// Age of the oldest of them (0 when none waits).
    oldest_pending_age_seconds: f64,
    /// This service's consumers.
    consumers: Vec<ConsumerView>,
}

/// One consumer of a service.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsumerView {
    /// Its durable name.
    name: String,
    /// Messages in its stream not yet delivered to it (null for a tenant admin, or when NATS does
    /// not answer).
    pending: Option<u64>,
    /// Messages delivered and not yet acknowledged (null likewise).
    ack_pending: Option<u64>,
    /// Its dead letters waiting.
    dead_letters: i64,
}

/// The outbox backlog and each consumer's lag and dead letters.
#[utoipa::path(
    get, path = "/admin/v1/outbox", tag = "admin",
    responses(
        (status = 200, description = "Backlog, oldest age and per consumer pending, ack-pending and dead letters (a tenant admin: its tenant's backlog and dead letters; the stream counts are null)", body = OutboxView, example = outbox_example),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn outbox(
    State(state): State<AdminState>,
    Admin(principal): Admin,
) -> Result<Json<OutboxView>, Error> {
    let tenant = own_tenant(&principal);
    let db = |e| Error::from_sqlx(e, &[]);
    let row = sqlx::query(
        "SELECT count(*) AS pending,
                COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at))::float8, 0) AS age
         FROM outbox WHERE published_at IS NULL AND ($1::text IS NULL OR tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&state.pool)
    .await
    .map_err(db)?;
    let waiting = dead_letter::waiting(&state.pool, tenant)
        .await
        .map_err(db)?;
    let mut consumers = Vec::with_capacity(state.consumers.len());
    for (spec, _) in state.consumers.iter() {
        let lag = match tenant {
            Some(_) => None,
            None => consumer_lag(&state, spec).await,
        };
        consumers.push(ConsumerView {
            name: spec.durable_name.clone(),
            pending: lag.map(|l| l.0),
            ack_pending: lag.map(|l| l.1),
            dead_letters: waiting
                .iter()
                .find(|(c, _)| *c == spec.durable_name)
                .map_or(0, |(_, n)| *n),
        });
    }
    Ok(Json(OutboxView {
        pending: row.try_get("pending").map_err(db)?,
        oldest_pending_age_seconds: row.try_get::<f64, _>("age").map_err(db)?.max(0.0),
        consumers,
    }))
}

/// `(pending, ack pending)` of a consumer, from JetStream (None when it does not answer in 2 s).
async fn consumer_lag(state: &AdminState, spec: &ConsumerSpec) -> Option<(u64, u64)> {
    let ask = async {
        let stream = state
            .js
            .get_stream(state.naming.stream(&spec.stream))
            .await
            .ok()?;
        let info = stream
            .consumer_info(state.naming.consumer(&spec.durable_name))
            .await
            .ok()?;
        Some((info.num_pending, info.num_ack_pending as u64))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

/// Query of `GET /admin/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Only this tenant's records (operators; a tenant admin always sees its own only).
    tenant: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// The audit log of this service's admin actions, newest first.
#[utoipa::path(
    get, path = "/admin/v1/audit", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit records; `next_cursor` fetches the next one", body = AuditPage, example = audit_example),
        (status = 400, description = "Bad limit (`request.invalid_query`), a cursor this API did not issue (`request.invalid_cursor`) or a malformed tenant (`tenant.invalid`)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_audit(
    State(state): State<AdminState>,
    Admin(principal): Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, Error> {
    let tenant = longship_admin::parse_tenant(&principal, query.tenant.as_deref())?;
    let cursor = longship_admin::parse_cursor(query.cursor.as_deref())?;
    let limit = longship_admin::parse_limit(query.limit)?;
    let records = audit::list(
        &state.pool,
        tenant.as_ref().map(|t| t.as_str()),
        cursor,
        limit,
    )
    .await
    .map_err(|e| Error::from_sqlx(e, &[]))?;
    Ok(Json(records))
}
