//! The query and body values every admin route reads the same way, refused with problem+json and a
//! stable code: `limit` (1-100, default 20), `cursor` (the `next_cursor` a page gave), `tenant` (an
//! operator's filter; a tenant admin is always limited to its own), `reason` (1-500 characters).

use longship_errors::{Error, PlatformCode};
use longship_tenant::{AdminPrincipal, TenantId};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// `?cursor=&limit=` of a paged admin list.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct PageQuery {
    /// The `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The page size: 1-100, default 20 (else 400 `request.invalid_query`).
pub fn parse_limit(limit: Option<i64>) -> Result<i64, Error> {
    let limit = limit.unwrap_or(20);
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::coded(
            PlatformCode::InvalidQuery,
            "limit must be 1-100",
        ))
    }
}

/// A cursor this API issued (a hyphenated UUID; else 400 `request.invalid_cursor`); empty: none.
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, Error> {
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => (c.len() == 36)
            .then(|| Uuid::parse_str(c).ok())
            .flatten()
            .map(Some)
            .ok_or_else(|| {
                Error::coded(
                    PlatformCode::InvalidCursor,
                    "cursor is not one this API issued",
                )
            }),
    }
}

/// The tenant a query is limited to: a tenant admin's own (whatever it asked for), or an
/// operator's `?tenant=` filter (validated: 400 `tenant.invalid`), or none.
pub fn parse_tenant(
    principal: &AdminPrincipal,
    requested: Option<&str>,
) -> Result<Option<TenantId>, Error> {
    let requested = match requested {
        None | Some("") => None,
        Some(t) => {
            Some(TenantId::parse(t).map_err(|_| Error::from_code(PlatformCode::TenantInvalid))?)
        }
    };
    Ok(principal.tenant_filter(requested.as_ref()).cloned())
}

/// An operator's reason: trimmed, 1-500 characters (else 422 `request.invalid`).
pub fn parse_reason(reason: &str) -> Result<String, Error> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Error::invalid_field(
            "reason",
            "length",
            "reason must be 1-500 characters",
        ));
    }
    Ok(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use longship_tenant::AdminScope;

    use super::*;

    #[test]
    fn limits_cursors_and_reasons_are_checked() {
        assert_eq!(parse_limit(None).ok(), Some(20));
        assert_eq!(parse_limit(Some(100)).ok(), Some(100));
        assert_eq!(
            parse_limit(Some(0))
                .map_err(|e| e.code().to_owned())
                .err()
                .as_deref(),
            Some("request.invalid_query")
        );
        assert_eq!(
            parse_limit(Some(101))
                .map_err(|e| e.code().to_owned())
                .err()
                .as_deref(),
            Some("request.invalid_query")
        );
        assert_eq!(parse_cursor(Some("")).ok(), Some(None));
        let id = Uuid::now_v7();
        assert_eq!(parse_cursor(Some(&id.to_string())).ok(), Some(Some(id)));
        assert_eq!(
            parse_cursor(Some(&id.simple().to_string()))
                .map_err(|e| e.code().to_owned())
                .err()
                .as_deref(),
            Some("request.invalid_cursor")
        );
        assert_eq!(
            parse_reason("  fixed the sku  ").ok().as_deref(),
            Some("fixed the sku")
        );
        assert!(parse_reason("   ").is_err());
        assert!(parse_reason(&"x".repeat(501)).is_err());
        assert!(parse_reason(&"é".repeat(500)).is_ok());
    }

    #[test]
    fn a_tenant_admin_is_held_to_its_own_tenant() {
        let own = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        let admin = AdminPrincipal {
            subject: "ann".into(),
            scope: AdminScope::Tenant(own.clone()),
        };
        assert_eq!(
            parse_tenant(&admin, Some("globex")).ok().flatten(),
            Some(own.clone())
        );
        assert_eq!(parse_tenant(&admin, None).ok().flatten(), Some(own));
        let operator = AdminPrincipal {
            subject: "ops".into(),
            scope: AdminScope::Operator,
        };
        assert_eq!(parse_tenant(&operator, None).ok().flatten(), None);
        assert_eq!(
            parse_tenant(&operator, Some("globex"))
                .ok()
                .flatten()
                .map(|t| t.to_string()),
            Some("globex".to_owned())
        );
        assert_eq!(
            parse_tenant(&operator, Some("Not Valid"))
                .map_err(|e| e.code().to_owned())
                .err()
                .as_deref(),
            Some("tenant.invalid")
        );
    }
}
