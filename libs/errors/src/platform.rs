//! The codes every service can answer, whatever its API.

crate::error_codes! {
    /// The platform's codes: malformed requests, authentication, limits, unknown routes, outages.
    /// A service's business codes are its own enum beside it.
    pub enum PlatformCode in "platform" {
        /// The request cannot be parsed.
        Malformed = ("request.malformed", BadRequest, "the request cannot be parsed"),
        /// Not JSON.
        MalformedJson = ("request.malformed_json", BadRequest, "the body is not valid JSON"),
        /// Wrong JSON shape.
        InvalidBody = ("request.invalid_body", Validation, "the JSON body does not have the expected fields or types"),
        /// Field rules failed.
        Invalid = ("request.invalid", Validation, "one or more fields are invalid; `errors` lists each"),
        /// A query parameter.
        InvalidQuery = ("request.invalid_query", BadRequest, "a query parameter is invalid"),
        /// A path parameter.
        InvalidPath = ("request.invalid_path", BadRequest, "a path parameter is invalid"),
        /// A paging cursor.
        InvalidCursor = ("request.invalid_cursor", BadRequest, "the cursor is not one this API issued"),
        /// A header value.
        InvalidHeader = ("request.invalid_header", BadRequest, "a header value holds control characters or is not visible ASCII"),
        /// Not JSON by content type.
        UnsupportedMediaType = ("request.unsupported_media_type", UnsupportedMediaType, "the body must be application/json"),
        /// Over the body limit.
        BodyTooLarge = ("request.body_too_large", PayloadTooLarge, "the body is over 64 KiB"),
        /// A database rule.
        ConstraintViolated = ("request.constraint_violated", Validation, "the request violates a data rule"),
        /// State does not allow it.
        FailedPrecondition = ("request.failed_precondition", FailedPrecondition, "the resource's state does not allow this request"),
        /// Per-tenant limits.
        RateLimited = ("request.rate_limited", TooManyRequests, "the tenant is over its request rate or concurrency limit; retry after Retry-After"),
        /// No credentials.
        MissingCredentials = ("auth.missing_credentials", Unauthenticated, "no credentials: send Authorization: Bearer <JWT>"),
        /// Bad token.
        InvalidToken = ("auth.invalid_token", Unauthenticated, "the bearer token is malformed, invalid or expired"),
        /// Two Authorization headers.
        DuplicateAuthorization = ("auth.duplicate_authorization", Unauthenticated, "more than one Authorization header: send exactly one"),
        /// A JWT whose kid names no current key.
        UnknownKey = ("auth.unknown_key", Unauthenticated, "the token's kid names no current verification key (rotated out, or not yet published)"),
        /// A JWT with a crit header.
        CriticalHeader = ("auth.critical_header", Unauthenticated, "the token's crit header lists an extension this service does not implement"),
        /// A JWT whose alg is not its key's.
        AlgorithmNotAllowed = ("auth.algorithm_not_allowed", Unauthenticated, "the token's alg is not the algorithm of its verification key"),
        /// Header where a token is needed.
        TenantHeaderNotAllowed = ("auth.tenant_header_not_allowed", Unauthenticated, "X-Tenant-Id is not accepted here: send a JWT"),
        /// Other authentication failures.
        Unauthenticated = ("auth.unauthenticated", Unauthenticated, "authentication failed"),
        /// Not allowed.
        Forbidden = ("auth.forbidden", PermissionDenied, "authenticated, but not allowed to do this"),
        /// Admin routes.
        AdminScopeRequired = ("auth.admin_scope_required", PermissionDenied, "admin routes need the longship:operator or longship:admin scope"),
        /// Tenant admin without tenant.
        AdminTenantMissing = ("auth.admin_tenant_missing", PermissionDenied, "a longship:admin token needs a valid tenant_id claim"),
        /// gRPC without tenant.
        TenantMissing = ("tenant.missing", Unauthenticated, "the x-tenant-id metadata is required"),
        /// Bad tenant id.
        TenantInvalid = ("tenant.invalid", BadRequest, "the tenant id must match [a-z0-9][a-z0-9-]{0,62}"),
        /// Unknown route.
        RouteNotFound = ("route.not_found", NotFound, "no such route"),
        /// Known route, other method (answered 405 with Allow).
        MethodNotAllowed = ("route.method_not_allowed", NotFound, "the route does not take this method (answered 405 with Allow)"),
        /// No such resource.
        ResourceNotFound = ("resource.not_found", NotFound, "no such resource"),
        /// It exists already.
        ResourceConflict = ("resource.conflict", Conflict, "the resource already exists"),
        /// A dependency is down.
        Unavailable = ("service.unavailable", Unavailable, "a dependency is unavailable; retry later"),
        /// A concurrent update.
        Retry = ("service.retry", Unavailable, "a concurrent update conflicted; retry"),
        /// Too slow.
        Timeout = ("service.timeout", Timeout, "the request took longer than the service's timeout"),
        /// The database is down.
        DatabaseUnavailable = ("database.unavailable", Unavailable, "the database is unreachable; retry after Retry-After"),
        /// A bug or an unexpected failure.
        Internal = ("internal", Internal, "an unexpected failure; the service's log has the details under the trace id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_codes_are_in_the_catalogue() {
        let catalogue = include_str!("../../../docs/errors.md");
        if let Err(e) = crate::check_catalogue::<PlatformCode>(catalogue) {
            panic!("{e}");
        }
    }
}
