//! axum extractors whose rejections are platform errors (problem+json), not axum's plain text.

use axum::body::Bytes;
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
        if !json_content_type(req.headers()) {
            return Err(JsonRejection::MissingJsonContentType(Default::default()).into());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(JsonRejection::from)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Json(value)),
            // JSON has one number type, so `2.0` is the integer 2 (JSON Schema agrees); serde's
            // integer types refuse it. Retry once with integral literals written as integers, and
            // answer the first error (it names the field) when that does not help either.
            Err(rejection @ JsonRejection::JsonDataError(_)) => integral::normalized(&bytes)
                .and_then(|rewritten| axum::Json::<T>::from_bytes(&rewritten).ok())
                .map(|axum::Json(value)| Json(value))
                .ok_or_else(|| rejection.into()),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `application/json` or `application/<anything>+json`, parameters allowed (as axum's `Json`).
fn json_content_type(headers: &http::HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

/// Integral JSON numbers spelled with a fraction or an exponent (`2.0`, `2.50e1`, `-3e2`)
/// rewritten as plain integers (`2`, `25`, `-300`), decided on the literal's digits so no float
/// rounding is involved. Strings and every other token are copied unchanged.
mod integral {
    /// Integers longer than this do not fit any integer type; such literals are left alone.
    const MAX_DIGITS: usize = 20;

    /// `bytes` (a syntactically valid JSON text) with integral numbers rewritten, or `None` when
    /// nothing was rewritten.
    pub(super) fn normalized(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut changed = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let end = string_end(bytes, i);
                    out.extend_from_slice(&bytes[i..end]);
                    i = end;
                }
                b'-' | b'0'..=b'9' => {
                    let end = bytes[i..]
                        .iter()
                        .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                        .map_or(bytes.len(), |n| i + n);
                    let literal = &bytes[i..end];
                    match as_integer(literal) {
                        Some(integer) if integer.as_bytes() != literal => {
                            out.extend_from_slice(integer.as_bytes());
                            changed = true;
                        }
                        _ => out.extend_from_slice(literal),
                    }
                    i = end;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        changed.then_some(out)
    }

    /// The index just past the string starting at `start` (a `"`).
    fn string_end(bytes: &[u8], start: usize) -> usize {
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        bytes.len()
    }

    /// The plain integer a number literal denotes exactly, if it denotes one.
    fn as_integer(literal: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(literal).ok()?;
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i32>().ok()?),
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits: String = format!("{whole}{fraction}");
        // the value is digits x 10^shift
        let shift = i64::from(exponent) - fraction.len() as i64;
        if shift >= 0 {
            if digits.trim_start_matches('0').len() as i64 + shift > MAX_DIGITS as i64 {
                return None;
            }
            digits.extend(std::iter::repeat_n('0', shift as usize));
        } else {
            let cut = usize::try_from(-shift).ok()?;
            let keep = digits.len().checked_sub(cut)?;
            if !digits[keep..].bytes().all(|b| b == b'0') {
                return None;
            }
            digits.truncate(keep);
        }
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return None;
        }
        Some(match (digits.is_empty(), negative) {
            (true, _) => "0".to_owned(),
            (false, true) => format!("-{digits}"),
            (false, false) => digits.to_owned(),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn rewrite(text: &str) -> String {
            normalized(text.as_bytes())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| text.to_owned())
        }

        #[test]
        fn integral_literals_become_plain_integers() {
            for (from, to) in [
                ("2.0", "2"),
                ("2e0", "2"),
                ("2.50e1", "25"),
                ("-3e2", "-300"),
                ("-0.0", "0"),
                ("1915630946993557.0", "1915630946993557"),
                ("9007199254740993.000", "9007199254740993"),
                ("18446744073709551615.0", "18446744073709551615"),
                ("150E-2", "150E-2"),
                ("1500e-2", "15"),
            ] {
                assert_eq!(rewrite(from), to, "{from}");
            }
        }

        #[test]
        fn everything_else_is_left_as_written() {
            for same in [
                "1.5",
                "4503599627370496.3",
                "1e300",
                "1e-300",
                "123456789012345678901.0",
                "7",
                "-7",
                r#"{"a":"2.0","b\"c":"3.0 \" 4.0"}"#,
                "[true,false,null]",
            ] {
                assert_eq!(rewrite(same), same, "{same}");
                assert!(normalized(same.as_bytes()).is_none(), "{same}");
            }
            assert_eq!(
                rewrite(r#"{"s":"x\"1.0","n":[1.0,2.5,3e1]}"#),
                r#"{"s":"x\"1.0","n":[1,2.5,30]}"#
            );
        }
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

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::Json;

    #[derive(serde::Deserialize)]
    struct Body {
        count: u32,
    }

    async fn post_body(content_type: &str, body: &'static str) -> (u16, serde_json::Value) {
        let app = Router::new().route(
            "/",
            post(|Json(b): Json<Body>| async move { b.count.to_string() }),
        );
        let request = http::Request::post("/")
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .unwrap_or_else(|_| unreachable!());
        let response = app
            .oneshot(request)
            .await
            .unwrap_or_else(|_| unreachable!());
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, json)
    }

    #[tokio::test]
    async fn integral_numbers_are_integers_whatever_their_spelling() {
        for body in [r#"{"count":2}"#, r#"{"count":2.0}"#, r#"{"count":2e0}"#] {
            assert_eq!(
                post_body("application/json", body).await,
                (200, serde_json::json!(2)),
                "{body}"
            );
        }
        let (status, problem) = post_body("application/json", r#"{"count":2.5}"#).await;
        assert_eq!(status, 422);
        assert_eq!(problem["code"], "request.invalid_body");
        // the message of the first, typed attempt names the field
        assert!(
            problem["detail"].as_str().unwrap_or("").contains("count"),
            "{problem}"
        );
        let (status, _) = post_body("application/json", r#"{"count":1,"count":2.0}"#).await;
        assert_eq!(status, 422, "a repeated key stays refused");
        let (status, _) = post_body("application/json", r#"{"count":-1.0}"#).await;
        assert_eq!(status, 422);
    }

    #[tokio::test]
    async fn json_content_types_are_recognised_as_axum_does() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert_eq!(post_body(ok, r#"{"count":1}"#).await.0, 200, "{ok}");
        }
        for bad in ["text/json", "application/jsonx", "text/plain", ""] {
            assert_eq!(post_body(bad, r#"{"count":1}"#).await.0, 415, "{bad}");
        }
    }
}
