//! HTTP authentication: the tenant from a verified JWT, or (local development only) a plain header.

use std::fmt;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use longship_errors::Error;
use serde::{Deserialize, Serialize};

use crate::TenantId;

/// The header that may carry the tenant when `AUTH_ALLOW_TENANT_HEADER=true`.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JWT algorithms a deployment may choose. One is configured; tokens signed otherwise are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSA PKCS#1 v1.5 SHA-256 with a public key (PEM).
    Rs256,
    /// ECDSA P-256 SHA-256 with a public key (PEM).
    Es256,
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "RS256" => Ok(JwtAlgorithm::Rs256),
            "ES256" => Ok(JwtAlgorithm::Es256),
            other => Err(format!(
                "unsupported JWT algorithm {other:?} (use HS256, RS256 or ES256)"
            )),
        }
    }
}

/// Authentication settings (see the configuration table in the README).
#[derive(Clone)]
pub struct AuthConfig {
    /// Whether a plain `X-Tenant-Id` header is trusted (local development only).
    pub allow_tenant_header: bool,
    /// The algorithm tokens must be signed with.
    pub algorithm: JwtAlgorithm,
    /// The HS256 secret.
    pub secret: Option<String>,
    /// The RS256/ES256 public key, PEM.
    pub public_key_pem: Option<String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("allow_tenant_header", &self.allow_tenant_header)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "public_key_pem",
                &self.public_key_pem.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// The claims Longship reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant the bearer acts for.
    pub tenant_id: String,
    /// Expiry (seconds since the epoch); required.
    pub exp: u64,
    /// Not before (seconds since the epoch), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Subject, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    tenant_id: Option<serde_json::Value>,
}

/// Verifies credentials and yields the tenant. Install it with [`Authenticator::layer`]; the
/// [`Tenant`] extractor then works in every handler.
pub struct Authenticator {
    allow_tenant_header: bool,
    key: Option<DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("allow_tenant_header", &self.allow_tenant_header)
            .field("jwt", &self.key.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Builds the verifier; fails on an unusable key so a bad deployment stops at start-up.
    pub fn new(config: &AuthConfig) -> Result<Authenticator, String> {
        let algorithm = match config.algorithm {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Es256 => Algorithm::ES256,
        };
        let key = match config.algorithm {
            JwtAlgorithm::Hs256 => match config.secret.as_deref() {
                Some(s) if s.len() < 16 => {
                    return Err("AUTH_JWT_SECRET must be at least 16 bytes".into());
                }
                Some(s) => Some(DecodingKey::from_secret(s.as_bytes())),
                None => None,
            },
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
                match config.public_key_pem.as_deref() {
                    None => None,
                    Some(pem) => {
                        let parsed = if config.algorithm == JwtAlgorithm::Rs256 {
                            DecodingKey::from_rsa_pem(pem.as_bytes())
                        } else {
                            DecodingKey::from_ec_pem(pem.as_bytes())
                        };
                        Some(parsed.map_err(|e| {
                            format!("AUTH_JWT_PUBLIC_KEY is not a usable PEM key: {e}")
                        })?)
                    }
                }
            }
        };
        if key.is_none() && !config.allow_tenant_header {
            return Err(
                "no way to authenticate: set AUTH_JWT_SECRET (HS256) or AUTH_JWT_PUBLIC_KEY (RS256/ES256), \
                 or AUTH_ALLOW_TENANT_HEADER=true for local development"
                    .into(),
            );
        }
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Authenticator {
            allow_tenant_header: config.allow_tenant_header,
            key,
            validation,
        })
    }

    /// An axum layer that makes this authenticator available to the [`Tenant`] extractor.
    pub fn layer(self: &Arc<Self>) -> axum::Extension<Arc<Authenticator>> {
        axum::Extension(Arc::clone(self))
    }

    /// Authenticates a request from its headers.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantId, Error> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            return self.authenticate_bearer(value);
        }
        match headers.get(TENANT_HEADER) {
            Some(value) if self.allow_tenant_header => {
                let text = value.to_str().map_err(|_| invalid_tenant())?;
                TenantId::parse(text).map_err(|_| invalid_tenant())
            }
            Some(_) => Err(Error::unauthenticated(
                "auth.tenant_header_not_allowed",
                "X-Tenant-Id is not accepted here; send Authorization: Bearer <JWT>",
            )),
            None => Err(Error::unauthenticated(
                "auth.missing_credentials",
                "send Authorization: Bearer <JWT> with a tenant_id claim",
            )),
        }
    }

    /// Verifies a bearer token and returns its tenant. Reasons are logged, never echoed back in detail.
    pub fn verify_token(&self, token: &str) -> Result<TenantId, Error> {
        let claims: RawClaims = self.decode(token)?;
        match claims.tenant_id {
            Some(serde_json::Value::String(s)) => TenantId::parse(&s).map_err(|_| invalid_tenant()),
            Some(_) => Err(invalid_tenant()),
            None => Err(Error::unauthenticated(
                "auth.invalid_token",
                "the token has no tenant_id claim",
            )),
        }
    }

    /// Verifies `token` (signature, algorithm, expiry) and decodes its claims as `T`.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, Error> {
        let Some(key) = &self.key else {
            return Err(Error::unauthenticated(
                "auth.invalid_token",
                "bearer tokens are not configured here",
            ));
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::unauthenticated(
                "auth.invalid_token",
                "token too large",
            ));
        }
        let data = jsonwebtoken::decode::<T>(token, key, &self.validation).map_err(|e| {
            tracing::info!(reason = %e, "bearer token refused");
            Error::unauthenticated(
                "auth.invalid_token",
                "the bearer token is invalid or expired",
            )
        })?;
        Ok(data.claims)
    }

    fn authenticate_bearer(&self, value: &http::HeaderValue) -> Result<TenantId, Error> {
        self.verify_token(bearer_token(value)?)
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer_token(value: &http::HeaderValue) -> Result<&str, Error> {
    let text = value.to_str().map_err(|_| malformed_authorization())?;
    text.strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(malformed_authorization)
}

fn invalid_tenant() -> Error {
    Error::bad_request(
        "tenant.invalid",
        "tenant id must match [a-z0-9][a-z0-9-]{0,62}",
    )
}

fn malformed_authorization() -> Error {
    Error::unauthenticated("auth.invalid_token", "Authorization must be `Bearer <JWT>`")
}

/// The authenticated tenant of an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(tenant) = parts.extensions.get::<Tenant>() {
            return Ok(tenant.clone());
        }
        let auth = parts
            .extensions
            .get::<Arc<Authenticator>>()
            .ok_or_else(|| {
                Error::internal(std::io::Error::other(
                    "Authenticator layer is not installed on this router",
                ))
            })?;
        let tenant = auth.authenticate(&parts.headers)?;
        tracing::Span::current().record("tenant_id", tenant.as_str());
        parts.extensions.insert(Tenant(tenant.clone()));
        Ok(Tenant(tenant))
    }
}

/// Issues an HS256 token for `tenant` valid for `ttl_secs` (for `just token` and tests).
pub fn issue_dev_token(secret: &str, tenant: &TenantId, ttl_secs: u64) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = Claims {
        tenant_id: tenant.to_string(),
        exp: now + ttl_secs,
        nbf: None,
        sub: Some("dev".into()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
