//! The tenant over gRPC: metadata `x-tenant-id`, required by servers, added by clients.

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::TenantId;

/// The metadata key carrying the tenant.
pub const METADATA_KEY: &str = "x-tenant-id";

/// A server interceptor: refuses calls without a valid `x-tenant-id` (UNAUTHENTICATED when missing,
/// INVALID_ARGUMENT when malformed) and stores the [`TenantId`] in the request extensions.
#[allow(clippy::result_large_err)] // reason: tonic's interceptor signature returns Status
pub fn require_tenant(mut request: Request<()>) -> Result<Request<()>, Status> {
    let tenant = tenant_from_metadata(request.metadata())?;
    request.extensions_mut().insert(tenant);
    Ok(request)
}

#[allow(clippy::result_large_err)] // reason: tonic's Status is the error type of every handler
fn tenant_from_metadata(metadata: &tonic::metadata::MetadataMap) -> Result<TenantId, Status> {
    let raw = metadata.get(METADATA_KEY).ok_or_else(|| {
        Status::from(longship_errors::Error::unauthenticated(
            "tenant.missing",
            "x-tenant-id metadata is required",
        ))
    })?;
    let text = raw.to_str().map_err(|_| invalid())?;
    TenantId::parse(text).map_err(|_| invalid())
}

fn invalid() -> Status {
    Status::from(longship_errors::Error::bad_request(
        "tenant.invalid",
        "x-tenant-id must match [a-z0-9][a-z0-9-]{0,62}",
    ))
}

/// The tenant a server handler runs for, recorded on the current span (`tenant_id`). Call on
/// requests that passed [`require_tenant`]; it reads the extension, or the metadata again when the
/// interceptor was not installed.
#[allow(clippy::result_large_err)] // reason: tonic's Status is the error type of every handler
pub fn tenant_of<T>(request: &Request<T>) -> Result<TenantId, Status> {
    let tenant = match request.extensions().get::<TenantId>() {
        Some(t) => t.clone(),
        None => tenant_from_metadata(request.metadata())?,
    };
    tracing::Span::current().record("tenant_id", tenant.as_str());
    Ok(tenant)
}

/// Adds `x-tenant-id` to an outgoing request.
pub fn with_tenant<T>(mut request: Request<T>, tenant: &TenantId) -> Request<T> {
    if let Ok(value) = MetadataValue::try_from(tenant.as_str()) {
        request.metadata_mut().insert(METADATA_KEY, value);
    }
    request
}

/// A client interceptor that stamps every call with one tenant (for clients bound to a tenant).
#[derive(Debug, Clone)]
pub struct TenantInterceptor(pub TenantId);

impl tonic::service::Interceptor for TenantInterceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        Ok(with_tenant(request, &self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn client_side_adds_and_server_side_reads() {
        let mut interceptor = TenantInterceptor(acme());
        let out = tonic::service::Interceptor::call(&mut interceptor, Request::new(()));
        let request = out.unwrap_or_else(|_| unreachable!());
        let request = require_tenant(request).unwrap_or_else(|_| unreachable!());
        assert_eq!(tenant_of(&request).ok(), Some(acme()));
    }

    #[test]
    fn missing_is_unauthenticated_and_malformed_is_invalid() {
        let missing = require_tenant(Request::new(())).err().map(|s| s.code());
        assert_eq!(missing, Some(tonic::Code::Unauthenticated));
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert(METADATA_KEY, MetadataValue::from_static("Not Valid"));
        let status = require_tenant(request).err();
        assert_eq!(
            status.as_ref().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let code = status
            .as_ref()
            .and_then(|s| s.metadata().get(longship_errors::CODE_METADATA_KEY))
            .cloned();
        assert_eq!(
            code.as_ref().and_then(|v| v.to_str().ok()),
            Some("tenant.invalid")
        );
    }
}
