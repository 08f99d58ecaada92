//! Who may operate the platform: the admin principal of an `/admin` request, from a verified JWT's
//! `scope` claim. A plain `X-Tenant-Id` header never grants admin, not even where it stands in for
//! a tenant token (local development).

use axum::extract::FromRequestParts;
use http::request::Parts;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longship_errors::Error;
use serde::{Deserialize, Serialize};

use crate::TenantId;
use crate::auth::{Authenticator, bearer_token, installed, is_unknown_key, single_authorization};

/// The scope that sees and acts on every tenant.
pub const OPERATOR_SCOPE: &str = "longship:operator";
/// The scope that sees and acts on the token's own tenant (its `tenant_id` claim) only.
pub const TENANT_ADMIN_SCOPE: &str = "longship:admin";

/// What an admin principal may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// Every tenant (`longship:operator`).
    Operator,
    /// One tenant (`longship:admin` with a `tenant_id` claim).
    Tenant(TenantId),
}

/// The authenticated caller of an admin route: its JWT `sub` (the actor in the audit log and in
/// saga history) and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// The token's `sub` claim.
    pub subject: String,
    /// What the caller may reach.
    pub scope: AdminScope,
}

impl AdminPrincipal {
    /// The tenant a query must be limited to: the caller's own for a tenant admin; for an
    /// operator, `requested` (an optional `?tenant=` filter).
    pub fn tenant_filter<'a>(&'a self, requested: Option<&'a TenantId>) -> Option<&'a TenantId> {
        match &self.scope {
            AdminScope::Operator => requested,
            AdminScope::Tenant(own) => Some(own),
        }
    }

    /// Whether the caller may see and act on a resource of `tenant` (when not, answer 404: the
    /// existence of another tenant's resource does not leak).
    pub fn may_access(&self, tenant: &TenantId) -> bool {
        match &self.scope {
            AdminScope::Operator => true,
            AdminScope::Tenant(own) => own == tenant,
        }
    }
}

#[derive(Deserialize)]
struct AdminClaims {
    #[serde(default)]
    sub: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<serde_json::Value>,
    #[serde(default)]
    tenant_id: Option<serde_json::Value>,
}

impl Authenticator {
    /// Authenticates an admin request: a bearer JWT is required (401 without one, also when
    /// `X-Tenant-Id` is sent); a valid token without an admin scope is 403.
    pub fn authenticate_admin(&self, headers: &http::HeaderMap) -> Result<AdminPrincipal, Error> {
        let Some(value) = single_authorization(headers)? else {
            return Err(Error::unauthenticated(
                "auth.missing_credentials",
                "admin routes need Authorization: Bearer <JWT> with an admin scope",
            ));
        };
        let claims: AdminClaims = self.decode(bearer_token(value)?)?;
        let subject = match claims.sub {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s,
            _ => {
                return Err(Error::unauthenticated(
                    "auth.invalid_token",
                    "admin tokens need a sub claim (1-256 characters)",
                ));
            }
        };
        let scopes = match &claims.scope {
            Some(serde_json::Value::String(s)) => s.split_ascii_whitespace().collect(),
            _ => Vec::new(),
        };
        let scope = if scopes.contains(&OPERATOR_SCOPE) {
            AdminScope::Operator
        } else if scopes.contains(&TENANT_ADMIN_SCOPE) {
            let tenant = match &claims.tenant_id {
                Some(serde_json::Value::String(t)) => TenantId::parse(t).ok(),
                _ => None,
            };
            AdminScope::Tenant(tenant.ok_or_else(|| {
                Error::forbidden(
                    "auth.admin_tenant_missing",
                    "a longship:admin token needs a valid tenant_id claim",
                )
            })?)
        } else {
            return Err(Error::forbidden(
                "auth.admin_scope_required",
                "this token has neither the longship:operator nor the longship:admin scope",
            ));
        };
        Ok(AdminPrincipal { subject, scope })
    }
}

/// The authenticated admin caller of an HTTP request (see [`Authenticator::authenticate_admin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub AdminPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(admin) = parts.extensions.get::<Admin>() {
            return Ok(admin.clone());
        }
        let auth = installed(parts)?;
        let principal = match auth.authenticate_admin(&parts.headers) {
            Err(e) if is_unknown_key(&e) => {
                auth.refresh_for_unknown_key().await;
                auth.authenticate_admin(&parts.headers)?
            }
            other => other?,
        };
        let admin = Admin(principal);
        parts.extensions.insert(admin.clone());
        Ok(admin)
    }
}

#[derive(Serialize)]
struct DevAdminClaims<'a> {
    sub: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    exp: u64,
}

/// Issues an HS256 admin token (for `just token --operator`, `just token --admin TENANT` and
/// tests): [`AdminScope::Operator`] gets `longship:operator`, [`AdminScope::Tenant`] gets
/// `longship:admin` with its `tenant_id`.
pub fn issue_dev_admin_token(
    secret: &str,
    subject: &str,
    scope: &AdminScope,
    ttl_secs: u64,
) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let (scope, tenant_id) = match scope {
        AdminScope::Operator => (OPERATOR_SCOPE, None),
        AdminScope::Tenant(t) => (TENANT_ADMIN_SCOPE, Some(t.as_str())),
    };
    let claims = DevAdminClaims {
        sub: subject,
        scope,
        tenant_id,
        exp: now + ttl_secs,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
