//! What the platform adds to every service's OpenAPI document: the answers its middleware gives on
//! any `/v1` operation (authentication, per-tenant limits, body limit, timeouts, unavailable
//! dependencies), the two ways to name the tenant, the server, each `/v1` operation's tag (its
//! resource, unless it names one), and for every problem+json answer
//! the stable error codes it carries (`x-error-codes`, also named in its description) with an
//! example problem document. Documented once here, where the behaviour lives, so a service's
//! document cannot forget a status code or an error code the platform may answer.
//!
//! A service names the codes of its own answers in their descriptions, in backticks
//! (``"No such order (`order.not_found`)"``); they are collected into `x-error-codes` with the
//! platform's codes for the same status. So in a problem answer's description, backticks are for
//! codes only (a lower-case word or dotted words).

use std::collections::BTreeMap;

use utoipa::openapi::content::Content;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use longship_errors::{Error, FieldError, Kind, PROBLEM_CONTENT_TYPE, ProblemDetails};

/// The security scheme name of `Authorization: Bearer <JWT>`.
pub const BEARER_SCHEME: &str = "bearer";
/// The security scheme name of `X-Tenant-Id` (local development only).
pub const TENANT_HEADER_SCHEME: &str = "tenant_header";
/// The extension listing the stable error codes of a problem+json answer.
pub const ERROR_CODES_EXTENSION: &str = "x-error-codes";

/// An answer the platform may give: status, description, the stable codes it carries.
type Answer = (&'static str, &'static str, &'static [&'static str]);

/// Answers any `/v1` operation may give, whatever the handler.
const EVERY_OPERATION: &[Answer] = &[
    ("400", "Malformed tenant id", &["tenant.invalid"]),
    (
        "401",
        "No or invalid credentials",
        &[
            "auth.missing_credentials",
            "auth.invalid_token",
            "auth.tenant_header_not_allowed",
        ],
    ),
    (
        "429",
        "The tenant is over its concurrency or rate limit; retry after `Retry-After` seconds",
        &["request.rate_limited"],
    ),
    (
        "500",
        "An unexpected failure; the problem's trace_id finds it in the logs",
        &["internal"],
    ),
    (
        "503",
        "A dependency is unavailable or a concurrent request conflicted; retry",
        &[
            "service.unavailable",
            "service.retry",
            "database.unavailable",
        ],
    ),
    (
        "504",
        "The request took longer than HTTP_REQUEST_TIMEOUT_SECS",
        &["service.timeout"],
    ),
];

/// Answers any admin (`/admin/`) operation may give, whatever the handler: a JWT with an admin
/// scope is required (`X-Tenant-Id` never grants admin).
const EVERY_ADMIN_OPERATION: &[Answer] = &[
    (
        "401",
        "No or invalid credentials (a JWT is required; `X-Tenant-Id` never grants admin)",
        &["auth.missing_credentials", "auth.invalid_token"],
    ),
    (
        "403",
        "A valid token without the longship:operator or longship:admin scope",
        &["auth.admin_scope_required", "auth.admin_tenant_missing"],
    ),
    (
        "500",
        "An unexpected failure; the problem's trace_id finds it in the logs",
        &["internal"],
    ),
    (
        "503",
        "A dependency is unavailable; retry",
        &["service.unavailable", "database.unavailable"],
    ),
    (
        "504",
        "The request took longer than HTTP_REQUEST_TIMEOUT_SECS",
        &["service.timeout"],
    ),
];

/// Further answers of operations that take a request body.
const WITH_BODY: &[Answer] = &[
    ("400", "Malformed JSON", &["request.malformed_json"]),
    ("413", "Body over 64 KiB", &["request.body_too_large"]),
    (
        "415",
        "Not `Content-Type: application/json`",
        &["request.unsupported_media_type"],
    ),
    (
        "422",
        "Well-formed JSON of the wrong shape, or invalid fields (listed in errors)",
        &["request.invalid_body", "request.invalid"],
    ),
];

/// Further answers of operations with path parameters.
const WITH_PATH: &[Answer] = &[(
    "400",
    "A malformed path parameter",
    &["request.invalid_path"],
)];

/// Further answers of operations with query parameters.
const WITH_QUERY: &[Answer] = &[("400", "A malformed query", &["request.invalid_query"])];

/// The trace id of the example problems.
const EXAMPLE_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Adds the platform's answers, security schemes and server to `openapi`, and the error codes and
/// an example to every problem+json answer. What a service documented itself is kept.
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
    if openapi.servers.as_ref().is_none_or(Vec::is_empty) {
        let mut server = Server::new("/");
        server.description = Some("This service: the origin that served this document".to_owned());
        openapi.servers = Some(vec![server]);
    }

    for (path, item) in openapi.paths.paths.iter_mut() {
        let public_api = path.starts_with("/v1/");
        let admin_api = path.starts_with("/admin/");
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if public_api {
                if operation.tags.as_ref().is_none_or(Vec::is_empty) {
                    operation.tags = resource_tag(path).map(|tag| vec![tag.to_owned()]);
                }
                document_operation(path, operation, &problem_name, EVERY_OPERATION);
            } else if admin_api {
                document_operation(path, operation, &problem_name, EVERY_ADMIN_OPERATION);
            }
            document_error_codes(operation);
        }
    }
}

/// The tag of a `/v1` operation that names none: its resource, the segment after `/v1/`
/// (`/v1/products/{sku}`: `products`), so every service groups its operations by what they act on.
fn resource_tag(path: &str) -> Option<&str> {
    let resource = path.strip_prefix("/v1/")?.split('/').next()?;
    (!resource.is_empty()).then_some(resource)
}

/// The platform answers of `operation` on `path`, by status: descriptions and codes.
fn platform_answers(
    path: &str,
    operation: &Operation,
    every: &'static [Answer],
) -> BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)> {
    let in_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    let groups = [
        (true, every),
        (operation.request_body.is_some(), WITH_BODY),
        (path.contains('{'), WITH_PATH),
        (in_query, WITH_QUERY),
    ];
    let mut answers: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (applies, group) in groups {
        if !applies {
            continue;
        }
        for (status, description, codes) in group {
            let entry = answers.entry(*status).or_default();
            entry.0.push(description);
            entry.1.extend_from_slice(codes);
        }
    }
    answers
}

fn document_operation(
    path: &str,
    operation: &mut Operation,
    problem_name: &str,
    every: &'static [Answer],
) {
    for (status, (descriptions, codes)) in platform_answers(path, operation, every) {
        let response = operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                let mut response = Response::new(descriptions.join("; "));
                response.content.insert(
                    PROBLEM_CONTENT_TYPE.to_owned(),
                    RefOr::T(Content::new(Some(Ref::from_schema_name(problem_name)))),
                );
                if status == "429" {
                    response.headers.insert(
                        "Retry-After".to_owned(),
                        RefOr::T(Header::new(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1)),
                        )),
                    );
                }
                RefOr::T(response)
            });
        if let RefOr::T(response) = response {
            add_error_codes(response, &codes);
        }
    }
    if operation.security.is_none() {
        operation.security = Some(vec![
            SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
            SecurityRequirement::new(TENANT_HEADER_SCHEME, Vec::<String>::new()),
        ]);
    }
}

/// Collects the codes a problem+json answer's description names into `x-error-codes` and gives
/// it an example problem document.
fn document_error_codes(operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !response.content.contains_key(PROBLEM_CONTENT_TYPE) {
            continue;
        }
        add_error_codes(response, &[]);
        let codes = listed_codes(response);
        let Some(first) = codes.first() else { continue };
        if let Some(RefOr::T(content)) = response.content.get_mut(PROBLEM_CONTENT_TYPE)
            && content.example.is_none()
            && content.examples.is_empty()
        {
            content.example = Some(example_problem(status, first, &response.description));
        }
    }
}

/// Adds `codes` and the codes the description names to the answer's `x-error-codes`, and names
/// in the description any listed code it did not mention.
fn add_error_codes(response: &mut Response, codes: &[&str]) {
    let mut listed = listed_codes(response);
    for code in codes_in(&response.description)
        .into_iter()
        .chain(codes.iter().copied().map(str::to_owned))
    {
        if !listed.contains(&code) {
            listed.push(code);
        }
    }
    let unmentioned: Vec<String> = listed
        .iter()
        .filter(|c| !response.description.contains(&format!("`{c}`")))
        .map(|c| format!("`{c}`"))
        .collect();
    if !unmentioned.is_empty() {
        let separator = if response.description.is_empty() {
            ""
        } else {
            "; "
        };
        response.description = format!(
            "{}{separator}codes: {}",
            response.description,
            unmentioned.join(", ")
        );
    }
    let extensions = response.extensions.get_or_insert_with(Extensions::default);
    extensions.insert(ERROR_CODES_EXTENSION.to_owned(), serde_json::json!(listed));
}

/// The codes in an answer's `x-error-codes`.
fn listed_codes(response: &Response) -> Vec<String> {
    response
        .extensions
        .as_ref()
        .and_then(|e| e.get(ERROR_CODES_EXTENSION))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The stable codes a description names in backticks (dotted lower-case words).
fn codes_in(description: &str) -> Vec<String> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            !word.is_empty()
                && word.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        })
        .map(str::to_owned)
        .collect()
}

/// The `detail` of an example problem: the description's first clause without the codes it names
/// in parentheses (`"No such order (`order.not_found`)"` -> `"No such order"`).
fn example_detail(description: &str) -> String {
    let first = description.split(';').next().unwrap_or(description);
    let mut detail = String::new();
    let mut rest = first;
    while let Some(open) = rest.find(" (") {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let inside = &rest[open..open + close];
        detail.push_str(&rest[..open]);
        if !inside.contains('`') {
            detail.push_str(&rest[open..=open + close]);
        }
        rest = &rest[open + close + 1..];
    }
    detail.push_str(rest);
    detail.trim().to_owned()
}

/// A problem document as the platform would answer `code` with `status`.
fn example_problem(status: &str, code: &str, description: &str) -> serde_json::Value {
    let status = status
        .parse()
        .ok()
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .unwrap_or(http::StatusCode::BAD_REQUEST);
    let detail = example_detail(description);
    let mut error = Error::new(Kind::from_http_status(status), code.to_owned(), detail);
    if status == http::StatusCode::UNPROCESSABLE_ENTITY {
        error = error.with_fields(vec![FieldError::new(
            "currency",
            "format",
            "must be 3 upper-case letters",
        )]);
    }
    let mut problem = ProblemDetails::from_error(&error);
    problem.status = status.as_u16();
    problem.trace_id = Some(EXAMPLE_TRACE_ID.to_owned());
    serde_json::to_value(problem).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(get_thing, put_thing))]
    struct Doc;

    /// Reads a thing.
    #[utoipa::path(get, path = "/v1/things/{id}", params(("id" = String, Path)), responses((status = 200, description = "ok"), (status = 401, description = "mine"), (status = 404, description = "No such thing (`thing.not_found`)", body = ProblemDetails, content_type = "application/problem+json")))]
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
        // a service's own description is kept, the platform's codes are added to it
        let unauthorized = &get["responses"]["401"];
        let description = unauthorized["description"].as_str().unwrap_or("");
        assert!(description.starts_with("mine; codes: "), "{description}");
        assert_eq!(
            unauthorized["x-error-codes"],
            serde_json::json!([
                "auth.missing_credentials",
                "auth.invalid_token",
                "auth.tenant_header_not_allowed"
            ])
        );
        // the codes a service names in backticks are listed with the platform's of that status
        let not_found = &get["responses"]["404"];
        assert_eq!(
            not_found["x-error-codes"],
            serde_json::json!(["thing.not_found"])
        );
        let bad_request = &get["responses"]["400"]["x-error-codes"];
        assert_eq!(
            bad_request,
            &serde_json::json!(["tenant.invalid", "request.invalid_path"])
        );
        // every problem answer has an example naming its first code
        let example = &not_found["content"]["application/problem+json"]["example"];
        assert_eq!(example["code"], "thing.not_found");
        assert_eq!(example["detail"], "No such thing");
        assert_eq!(example["status"], 404);
        assert_eq!(json["servers"][0]["url"], "/");
        assert!(get["responses"]["413"].is_null());
        assert!(
            get["responses"]["429"]["headers"]["Retry-After"].is_object(),
            "{get}"
        );
        let put = &json["paths"]["/v1/things/{id}"]["put"];
        for status in ["413", "415", "422", "500"] {
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
        // an operation that names no tag is grouped under its resource
        assert_eq!(get["tags"], serde_json::json!(["things"]));
    }

    #[test]
    fn the_resource_tag_is_the_segment_after_v1() {
        assert_eq!(resource_tag("/v1/products/{sku}"), Some("products"));
        assert_eq!(resource_tag("/v1/payments"), Some("payments"));
        assert_eq!(resource_tag("/v1/"), None);
        assert_eq!(resource_tag("/admin/v1/tenants"), None);
    }
}
