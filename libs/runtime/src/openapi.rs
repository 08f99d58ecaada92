//! What the platform adds to every service's OpenAPI document: the answers its middleware gives on
//! any `/v1` operation (authentication, per-tenant limits, body limit, timeouts, unavailable
//! dependencies) and the two ways to name the tenant. Documented once here, where the behaviour
//! lives, so a service's document cannot forget a status code the platform may answer.

use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use longship_errors::{PROBLEM_CONTENT_TYPE, ProblemDetails};

/// The security scheme name of `Authorization: Bearer <JWT>`.
pub const BEARER_SCHEME: &str = "bearer";
/// The security scheme name of `X-Tenant-Id` (local development only).
pub const TENANT_HEADER_SCHEME: &str = "tenant_header";

/// Answers any `/v1` operation may give, whatever the handler: (status, description).
const EVERY_OPERATION: &[(&str, &str)] = &[
    (
        "400",
        "Malformed request or tenant id (`tenant.invalid`, `request.*`)",
    ),
    (
        "401",
        "No or invalid credentials (`auth.missing_credentials`, `auth.invalid_token`, `auth.tenant_header_not_allowed`)",
    ),
    (
        "429",
        "The tenant is over its concurrency or rate limit (`request.rate_limited`); retry after `Retry-After` seconds",
    ),
    (
        "503",
        "A dependency is unavailable or a concurrent request conflicted; retry (`service.unavailable`, `service.retry`)",
    ),
    (
        "504",
        "The request took longer than HTTP_REQUEST_TIMEOUT_SECS",
    ),
];

/// Further answers of operations that take a request body.
const WITH_BODY: &[(&str, &str)] = &[
    ("413", "Body over 64 KiB (`request.body_too_large`)"),
    (
        "415",
        "Not `Content-Type: application/json` (`request.unsupported_media_type`)",
    ),
    (
        "422",
        "Well-formed JSON of the wrong shape or invalid fields (`request.invalid_body`, `request.invalid`)",
    ),
];

/// Adds the platform's answers and security schemes to every `/v1` operation of `openapi`. What a
/// service documented itself is kept as it is.
pub fn document_platform(openapi: &mut OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    let problem_name = <ProblemDetails as ToSchema>::name().into_owned();
    if !components.schemas.contains_key(&problem_name) {
        let mut nested = Vec::new();
        <ProblemDetails as ToSchema>::schemas(&mut nested);
        for (name, schema) in nested {
            components.schemas.entry(name).or_insert(schema);
        }
        components
            .schemas
            .insert(problem_name.clone(), ProblemDetails::schema());
    }
    if !components.security_schemes.contains_key(BEARER_SCHEME) {
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
    if !components
        .security_schemes
        .contains_key(TENANT_HEADER_SCHEME)
    {
        components.add_security_scheme(
            TENANT_HEADER_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Tenant-Id"))),
        );
    }

    for (path, item) in openapi.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            document_operation(operation, &problem_name);
        }
    }
}

fn document_operation(operation: &mut Operation, problem_name: &str) {
    let has_body = operation.request_body.is_some();
    let answers = EVERY_OPERATION
        .iter()
        .chain(has_body.then_some(WITH_BODY).into_iter().flatten());
    for (status, description) in answers {
        if operation.responses.responses.contains_key(*status) {
            continue;
        }
        let mut response = Response::new(*description);
        response.content.insert(
            PROBLEM_CONTENT_TYPE.to_owned(),
            RefOr::T(Content::new(Some(Ref::from_schema_name(problem_name)))),
        );
        if *status == "429" {
            response.headers.insert(
                "Retry-After".to_owned(),
                RefOr::T(Header::new(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )),
            );
        }
        operation
            .responses
            .responses
            .insert((*status).to_owned(), RefOr::T(response));
    }
    if operation.security.is_none() {
        operation.security = Some(vec![
            SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
            SecurityRequirement::new(TENANT_HEADER_SCHEME, Vec::<String>::new()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(get_thing, put_thing))]
    struct Doc;

    /// Reads a thing.
    #[utoipa::path(get, path = "/v1/things/{id}", params(("id" = String, Path)), responses((status = 200, description = "ok"), (status = 401, description = "mine")))]
    #[allow(dead_code)] // reason: only its documentation is used
    async fn get_thing() {}

    /// Writes a thing.
    #[utoipa::path(put, path = "/v1/things/{id}", params(("id" = String, Path)), request_body = String, responses((status = 200, description = "ok")))]
    #[allow(dead_code)] // reason: only its documentation is used
    async fn put_thing() {}

    #[test]
    fn every_v1_operation_documents_the_platform_answers() {
        let mut doc = <Doc as utoipa::OpenApi>::openapi();
        document_platform(&mut doc);
        let json = serde_json::to_value(&doc).unwrap_or_default();
        let get = &json["paths"]["/v1/things/{id}"]["get"];
        for status in ["200", "400", "401", "429", "503", "504"] {
            assert!(get["responses"][status].is_object(), "GET {status}");
        }
        // a service's own description is kept
        assert_eq!(get["responses"]["401"]["description"], "mine");
        assert!(get["responses"]["413"].is_null());
        assert!(
            get["responses"]["429"]["headers"]["Retry-After"].is_object(),
            "{get}"
        );
        let put = &json["paths"]["/v1/things/{id}"]["put"];
        for status in ["413", "415", "422"] {
            assert!(put["responses"][status].is_object(), "PUT {status}");
        }
        assert_eq!(
            put["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/ProblemDetails"
        );
        assert!(json["components"]["schemas"]["ProblemDetails"].is_object());
        assert!(json["components"]["schemas"]["FieldError"].is_object());
        assert!(json["components"]["securitySchemes"]["bearer"].is_object());
        assert_eq!(put["security"][1]["tenant_header"], serde_json::json!([]));
    }
}
