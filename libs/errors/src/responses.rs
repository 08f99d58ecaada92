//! The problem answers the operations of several services document alike, as `utoipa`
//! response sets: name one in an operation's `responses(...)` beside its own answers, instead of
//! writing the same status, description and problem body again in every service.

use utoipa::IntoResponses;

use crate::ProblemDetails;

/// The refusals of an operation that takes a JSON body: malformed JSON or tenant (400), no
/// credentials (401), another content type (415), invalid fields (422, each in `errors`).
#[derive(IntoResponses)]
pub enum JsonBodyRefusals {
    /// 400.
    #[response(
        status = 400,
        description = "Malformed JSON or tenant",
        content_type = "application/problem+json"
    )]
    Malformed(ProblemDetails),
    /// 401.
    #[response(
        status = 401,
        description = "No credentials",
        content_type = "application/problem+json"
    )]
    Unauthenticated(ProblemDetails),
    /// 415.
    #[response(
        status = 415,
        description = "Not JSON",
        content_type = "application/problem+json"
    )]
    NotJson(ProblemDetails),
    /// 422.
    #[response(
        status = 422,
        description = "Invalid fields (`request.invalid`, each in errors)",
        content_type = "application/problem+json"
    )]
    Invalid(ProblemDetails),
}

/// The refusal of any `/v1` operation without credentials (401).
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "No credentials",
    content_type = "application/problem+json"
)]
pub struct NoCredentials(pub ProblemDetails);
