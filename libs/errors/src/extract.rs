//! axum extractors whose rejections are platform errors (problem+json), not axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Kind};

/// JSON body extractor and responder: like `axum::Json`, but bad bodies answer problem+json
/// (400 malformed, 413 too large, 415 wrong content type, 422 wrong shape).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Query string extractor answering problem+json 400 on bad input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

/// Path parameters extractor answering problem+json 400 on bad input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        let (kind, code) = match &rejection {
            JsonRejection::JsonSyntaxError(_) => (Kind::BadRequest, "request.malformed_json"),
            JsonRejection::JsonDataError(_) => (Kind::Validation, "request.invalid_body"),
            JsonRejection::MissingJsonContentType(_) => {
                (Kind::UnsupportedMediaType, "request.unsupported_media_type")
            }
            other => {
                let kind = Kind::from_http_status(other.status());
                (kind, kind.default_code())
            }
        };
        let message = match kind {
            Kind::UnsupportedMediaType => "expected Content-Type: application/json".to_owned(),
            Kind::PayloadTooLarge => "the request body is too large".to_owned(),
            // serde's message names the path and the expected type; it carries no internals
            _ => rejection.body_text(),
        };
        Error::new(kind, code, message)
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::bad_request("request.invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        let status = rejection.status();
        if status.is_server_error() {
            return Error::internal(std::io::Error::other(rejection.body_text()));
        }
        Error::bad_request("request.invalid_path", rejection.body_text())
    }
}

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}
