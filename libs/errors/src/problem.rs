//! RFC 9457 problem details: the JSON body every HTTP error of the platform carries.

use axum::response::{IntoResponse, Response};
use opentelemetry::trace::TraceContextExt;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::ToSchema;

use crate::{Error, Kind};

/// The media type of problem details.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One failing input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `items[0].quantity`.
    pub field: String,
    /// Stable reason code, e.g. `range`, `format`, `required`, `duplicate`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem details document with Longship's extension members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProblemDetails {
    /// A URI naming the problem type; one per stable code.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong for this request, safe to show to the client.
    pub detail: String,
    /// Stable machine-readable code, e.g. `order.not_found`.
    pub code: String,
    /// The trace this request belongs to (for support requests), when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Per-field errors for validation failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ProblemDetails {
    /// The problem document for `err` (without any of its internal source chain).
    pub fn from_error(err: &Error) -> Self {
        Self {
            type_uri: format!("https://longship.dev/problems/{}", err.code()),
            title: err.kind().title().to_owned(),
            status: err.kind().http_status().as_u16(),
            detail: err.message().to_owned(),
            code: err.code().to_owned(),
            trace_id: current_trace_id(),
            errors: err.fields().to_vec(),
        }
    }

    /// Rebuilds an [`Error`] from a problem document received from another service.
    pub fn into_error(self) -> Error {
        let status = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        Error::new(Kind::from_http_status(status), self.code, self.detail).with_fields(self.errors)
    }
}

/// The W3C trace id of the current span, if an OpenTelemetry layer is recording it.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let problem = ProblemDetails::from_error(&self);
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.kind.http_status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: Error) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    #[tokio::test]
    async fn renders_problem_json_with_code_and_fields() {
        let err = Error::validation(vec![FieldError::new(
            "currency",
            "format",
            "must be 3 upper-case letters",
        )]);
        let (status, headers, json) = render(err).await;
        assert_eq!(status, 422);
        assert_eq!(headers[http::header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(json["status"], 422);
        assert_eq!(json["code"], "request.invalid");
        assert_eq!(json["title"], "Validation failed");
        assert_eq!(
            json["type"],
            "https://longship.dev/problems/request.invalid"
        );
        assert_eq!(json["errors"][0]["field"], "currency");
    }

    #[tokio::test]
    async fn internal_errors_leak_nothing() {
        let err = Error::internal(std::io::Error::other(
            "syntax error at or near SELECT * FROM secrets",
        ));
        let (status, _, json) = render(err).await;
        assert_eq!(status, 500);
        let text = json.to_string();
        assert!(!text.contains("SELECT"), "{text}");
        assert_eq!(json["detail"], "internal error");
    }

    #[tokio::test]
    async fn retry_after_is_sent() {
        let err = Error::new(Kind::TooManyRequests, "request.rate_limited", "slow down")
            .with_retry_after(2);
        let (status, headers, _) = render(err).await;
        assert_eq!(status, 429);
        assert_eq!(headers[http::header::RETRY_AFTER], "2");
    }

    #[test]
    fn problem_round_trips_into_error() {
        let original = Error::not_found("order.not_found", "no such order");
        let problem = ProblemDetails::from_error(&original);
        let back = problem.into_error();
        assert_eq!(back.kind(), Kind::NotFound);
        assert_eq!(back.code(), "order.not_found");
    }
}
