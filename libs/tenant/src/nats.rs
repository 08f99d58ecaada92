//! The tenant on NATS messages: header `Tenant-Id`.

use async_nats::HeaderMap;

use crate::{InvalidTenantId, TenantId};

/// The NATS header carrying the tenant.
pub const HEADER: &str = "Tenant-Id";

/// Writes the tenant header.
pub fn inject(headers: &mut HeaderMap, tenant: &TenantId) {
    headers.insert(HEADER, tenant.as_str());
}

/// Reads and validates the tenant header. `Ok(None)` when absent.
pub fn extract(headers: Option<&HeaderMap>) -> Result<Option<TenantId>, InvalidTenantId> {
    match headers.and_then(|h| h.get(HEADER)) {
        None => Ok(None),
        Some(value) => TenantId::parse(value.as_str()).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let mut headers = HeaderMap::new();
        let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
        inject(&mut headers, &tenant);
        assert_eq!(extract(Some(&headers)), Ok(Some(tenant)));
        assert_eq!(extract(None), Ok(None));
        let mut bad = HeaderMap::new();
        bad.insert(HEADER, "ACME!");
        assert_eq!(extract(Some(&bad)), Err(InvalidTenantId));
    }
}
