//! One error type for the whole platform: a stable machine-readable `code`, a [`Kind`] that fixes the
//! HTTP status and gRPC code, a safe public message, and the source chain kept for logs only.
//!
//! An [`Error`] renders as RFC 9457 `application/problem+json` ([`ProblemDetails`]) in axum handlers
//! and converts to and from [`tonic::Status`] without losing its code (carried in the
//! `x-error-code` metadata entry, field errors in the status details). sqlx errors map in one place
//! ([`Error::from_sqlx`] with named constraints), and axum's own rejections come out as problem+json
//! through the [`Json`], [`Query`] and [`Path`] extractors of this crate.
//!
//! Codes are closed enums ([`ErrorCode`], declared with [`error_codes!`]): [`PlatformCode`] here
//! for what every service can answer, and one enum per service and library for its own; each is
//! listed in `docs/errors.md`, which a test checks against the enum ([`check_catalogue`]). A
//! service declares its enum from that catalogue (`error_codes!`'s `from` form), so its codes are
//! written once.

mod codes;
mod extract;
pub mod fields;
mod grpc;
mod platform;
mod problem;
pub mod responses;
mod sql;

use std::borrow::Cow;
use std::fmt;

pub use codes::{ErrorCode, catalogue_section, check_catalogue};
pub use extract::{Json, Path, Query};
pub use fields::Fields;
pub use grpc::{
    CODE_METADATA_KEY, REFUSAL_METADATA_KEY, refusal_of, status_to_error, with_refusal,
};
#[doc(hidden)]
// reason: the expansion of `error_codes!`'s catalogue form, not an API of its own
pub use longship_errors_macros::codes_from_catalogue as __codes_from_catalogue;
pub use platform::PlatformCode;
pub use problem::{FieldError, PROBLEM_CONTENT_TYPE, ProblemDetails, current_trace_id};
pub use sql::ConstraintMap;

/// A platform result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closed set of error kinds. Each fixes one HTTP status and one gRPC code, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 400 / INVALID_ARGUMENT: the request cannot be parsed.
    BadRequest,
    /// 401 / UNAUTHENTICATED: missing or invalid credentials.
    Unauthenticated,
    /// 403 / PERMISSION_DENIED: authenticated but not allowed.
    PermissionDenied,
    /// 404 / NOT_FOUND: no such resource for this tenant.
    NotFound,
    /// 409 / ALREADY_EXISTS: conflicts with existing state.
    Conflict,
    /// 412-like business rule failure, 409 over HTTP / FAILED_PRECONDITION over gRPC.
    FailedPrecondition,
    /// 413 / OUT_OF_RANGE over gRPC: the body is too large.
    PayloadTooLarge,
    /// 415 / INVALID_ARGUMENT over gRPC: wrong content type.
    UnsupportedMediaType,
    /// 422 / INVALID_ARGUMENT: well-formed but invalid input (with field errors).
    Validation,
    /// 429 / RESOURCE_EXHAUSTED: rate or concurrency limit hit.
    TooManyRequests,
    /// 503 / UNAVAILABLE: a dependency is down; retry later.
    Unavailable,
    /// 504 / DEADLINE_EXCEEDED: the operation timed out.
    Timeout,
    /// 500 / INTERNAL: a bug or an unexpected failure; details only in the log.
    Internal,
}

impl Kind {
    /// The HTTP status of this kind.
    pub fn http_status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Kind::BadRequest => S::BAD_REQUEST,
            Kind::Unauthenticated => S::UNAUTHORIZED,
            Kind::PermissionDenied => S::FORBIDDEN,
            Kind::NotFound => S::NOT_FOUND,
            Kind::Conflict | Kind::FailedPrecondition => S::CONFLICT,
            Kind::PayloadTooLarge => S::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            Kind::Validation => S::UNPROCESSABLE_ENTITY,
            Kind::TooManyRequests => S::TOO_MANY_REQUESTS,
            Kind::Unavailable => S::SERVICE_UNAVAILABLE,
            Kind::Timeout => S::GATEWAY_TIMEOUT,
            Kind::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code of this kind.
    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            Kind::BadRequest | Kind::UnsupportedMediaType | Kind::Validation => C::InvalidArgument,
            Kind::Unauthenticated => C::Unauthenticated,
            Kind::PermissionDenied => C::PermissionDenied,
            Kind::NotFound => C::NotFound,
            Kind::Conflict => C::AlreadyExists,
            Kind::FailedPrecondition => C::FailedPrecondition,
            Kind::PayloadTooLarge => C::OutOfRange,
            Kind::TooManyRequests => C::ResourceExhausted,
            Kind::Unavailable => C::Unavailable,
            Kind::Timeout => C::DeadlineExceeded,
            Kind::Internal => C::Internal,
        }
    }

    /// A short human title for problem+json.
    pub fn title(self) -> &'static str {
        match self {
            Kind::BadRequest => "Bad request",
            Kind::Unauthenticated => "Unauthenticated",
            Kind::PermissionDenied => "Permission denied",
            Kind::NotFound => "Not found",
            Kind::Conflict => "Conflict",
            Kind::FailedPrecondition => "Failed precondition",
            Kind::PayloadTooLarge => "Payload too large",
            Kind::UnsupportedMediaType => "Unsupported media type",
            Kind::Validation => "Validation failed",
            Kind::TooManyRequests => "Too many requests",
            Kind::Unavailable => "Service unavailable",
            Kind::Timeout => "Timeout",
            Kind::Internal => "Internal error",
        }
    }

    /// Whether a caller may retry the same request later and expect a different outcome.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Kind::Unavailable | Kind::Timeout | Kind::TooManyRequests
        )
    }

    /// The kind for a gRPC code received from a peer (unknown or odd codes become `Internal`).
    pub fn from_grpc_code(code: tonic::Code) -> Kind {
        use tonic::Code as C;
        match code {
            C::InvalidArgument => Kind::Validation,
            C::Unauthenticated => Kind::Unauthenticated,
            C::PermissionDenied => Kind::PermissionDenied,
            C::NotFound => Kind::NotFound,
            C::AlreadyExists | C::Aborted => Kind::Conflict,
            C::FailedPrecondition => Kind::FailedPrecondition,
            C::OutOfRange => Kind::PayloadTooLarge,
            C::ResourceExhausted => Kind::TooManyRequests,
            C::Unavailable | C::Cancelled => Kind::Unavailable,
            C::DeadlineExceeded => Kind::Timeout,
            _ => Kind::Internal,
        }
    }

    /// The kind for an HTTP status (used when rebuilding errors from other layers' rejections).
    pub fn from_http_status(status: http::StatusCode) -> Kind {
        match status.as_u16() {
            400 => Kind::BadRequest,
            401 => Kind::Unauthenticated,
            403 => Kind::PermissionDenied,
            404 | 405 => Kind::NotFound,
            409 => Kind::Conflict,
            412 => Kind::FailedPrecondition,
            413 => Kind::PayloadTooLarge,
            415 => Kind::UnsupportedMediaType,
            422 => Kind::Validation,
            429 => Kind::TooManyRequests,
            503 => Kind::Unavailable,
            408 | 504 => Kind::Timeout,
            s if (400..500).contains(&s) => Kind::BadRequest,
            _ => Kind::Internal,
        }
    }

    /// The default stable code for this kind, used when no more specific one is given.
    pub fn default_code(self) -> &'static str {
        use PlatformCode as P;
        let code = match self {
            Kind::BadRequest => P::Malformed,
            Kind::Unauthenticated => P::Unauthenticated,
            Kind::PermissionDenied => P::Forbidden,
            Kind::NotFound => P::ResourceNotFound,
            Kind::Conflict => P::ResourceConflict,
            Kind::FailedPrecondition => P::FailedPrecondition,
            Kind::PayloadTooLarge => P::BodyTooLarge,
            Kind::UnsupportedMediaType => P::UnsupportedMediaType,
            Kind::Validation => P::Invalid,
            Kind::TooManyRequests => P::RateLimited,
            Kind::Unavailable => P::Unavailable,
            Kind::Timeout => P::Timeout,
            Kind::Internal => P::Internal,
        };
        code.as_str()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The platform error: what went wrong for the client (kind, code, message, field errors) and,
/// separately, why (the source chain) for the log.
pub struct Error {
    kind: Kind,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    fields: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` with a stable `code` and a public `message`.
    pub fn new(
        kind: Kind,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
            fields: Vec::new(),
            retry_after_secs: None,
            source: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::BadRequest, code, message)
    }

    /// 401 with `code`.
    pub fn unauthenticated(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Unauthenticated, code, message)
    }

    /// 403 with `code`: authenticated, but not allowed.
    pub fn forbidden(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::PermissionDenied, code, message)
    }

    /// 404 with `code`, e.g. `order.not_found`.
    pub fn not_found(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::NotFound, code, message)
    }

    /// 409 with `code`.
    pub fn conflict(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Conflict, code, message)
    }

    /// A business rule said no (409 / FAILED_PRECONDITION), e.g. `payment.declined`.
    pub fn failed_precondition(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::FailedPrecondition, code, message)
    }

    /// 422 `request.invalid` listing every failing field.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        Self::new(Kind::Validation, Kind::Validation.default_code(), message).with_fields(fields)
    }

    /// 422 `request.invalid` for one field: its name, a short code (`format`, `range`, ...) and
    /// what is wrong.
    pub fn invalid_field(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::validation(vec![FieldError::new(field, code, message)])
    }

    /// 422 with a specific `code` and message and no field errors.
    pub fn unprocessable(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(Kind::Validation, code, message)
    }

    /// 503: a dependency is unavailable; the source goes to the log only.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::new(
            Kind::Unavailable,
            Kind::Unavailable.default_code(),
            "a dependency is unavailable, retry later",
        )
        .with_source(source)
    }

    /// 500: an unexpected failure; the source goes to the log only.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(
            Kind::Internal,
            Kind::Internal.default_code(),
            "internal error",
        )
        .with_source(source)
    }

    /// Attaches the underlying cause (logged, never sent to clients).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches per-field errors.
    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.fields = fields;
        self
    }

    /// Sets a `Retry-After` hint (seconds) for 429/503 answers.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The public message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field errors (validation).
    pub fn fields(&self) -> &[FieldError] {
        &self.fields
    }

    /// The `Retry-After` hint, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The full source chain as one line, for logs.
    pub fn source_chain(&self) -> String {
        let mut out = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(err) = next {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&err.to_string());
            next = err.source();
        }
        out
    }

    /// Logs the error at a level that fits its kind: server faults at error, client faults at debug.
    pub fn log(&self) {
        let chain = self.source_chain();
        match self.kind {
            Kind::Internal => tracing::error!(code = %self.code, error = %chain, "request failed"),
            Kind::Unavailable | Kind::Timeout => {
                tracing::warn!(code = %self.code, error = %chain, "request failed")
            }
            _ => tracing::debug!(code = %self.code, message = %self.message, "request rejected"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("fields", &self.fields)
            .field("source", &self.source_chain())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_grpc_code_and_http_status_as_documented() {
        let kinds = [
            Kind::BadRequest,
            Kind::Unauthenticated,
            Kind::PermissionDenied,
            Kind::NotFound,
            Kind::Conflict,
            Kind::FailedPrecondition,
            Kind::PayloadTooLarge,
            Kind::UnsupportedMediaType,
            Kind::Validation,
            Kind::TooManyRequests,
            Kind::Unavailable,
            Kind::Timeout,
            Kind::Internal,
        ];
        for kind in kinds {
            let back = Kind::from_grpc_code(kind.grpc_code());
            // three kinds share INVALID_ARGUMENT; the code string (metadata) disambiguates them
            if kind.grpc_code() != tonic::Code::InvalidArgument {
                assert_eq!(back, kind, "grpc round trip of {kind:?}");
            }
            let from_http = Kind::from_http_status(kind.http_status());
            if kind != Kind::FailedPrecondition {
                assert_eq!(from_http, kind, "http round trip of {kind:?}");
            }
        }
    }

    #[test]
    fn source_chain_is_kept_for_logs_but_not_in_display() {
        let io = std::io::Error::other("connection refused to 10.0.0.7:5432");
        let err = Error::internal(io);
        assert_eq!(err.to_string(), "internal: internal error");
        assert!(err.source_chain().contains("10.0.0.7"));
    }

    #[test]
    fn validation_message_counts_fields() {
        let err = Error::validation(vec![
            FieldError::new("items[0].quantity", "range", "must be 1..=1000"),
            FieldError::new("currency", "format", "must be 3 upper-case letters"),
        ]);
        assert_eq!(err.kind(), Kind::Validation);
        assert_eq!(err.code(), "request.invalid");
        assert_eq!(err.message(), "2 fields are invalid");
    }
}
