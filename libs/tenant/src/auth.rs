//! HTTP authentication: the tenant from a verified JWT, or (local development only) a plain header.
//! Tokens are verified with the key their header chooses ([`crate::keys`]): a configured secret or
//! public key, or a JWKS key by `kid` from a file or URL that is re-read so keys rotate without
//! downtime ([`crate::jwks`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::FromRequestParts;
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use longship_errors::Error;
use serde::{Deserialize, Serialize};

use crate::TenantId;
use crate::jwks::Sources;
use crate::keys::{HeaderRefusal, KeySet, VerifyKey};

/// The header that may carry the tenant when `AUTH_ALLOW_TENANT_HEADER=true`.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How soon a failed JWKS read is tried again.
const RETRY_AFTER_FAILED_READ: Duration = Duration::from_secs(5);

/// The algorithm of the configured key (`AUTH_JWT_ALGORITHM`); JWKS keys carry their own.
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
    /// The algorithm of the configured key (tokens without a `kid`).
    pub algorithm: JwtAlgorithm,
    /// The HS256 secret.
    pub secret: Option<String>,
    /// The RS256/ES256 public key, PEM.
    pub public_key_pem: Option<String>,
    /// A JWKS file (`AUTH_JWKS_FILE`): keys chosen by `kid`, re-read every refresh.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (`AUTH_JWKS_URL`): keys chosen by `kid`, fetched every refresh.
    pub jwks_url: Option<String>,
    /// How often the JWKS sources are read again (`AUTH_JWKS_REFRESH_SECS`).
    pub jwks_refresh: Duration,
    /// The least time between reads caused by unknown `kid`s (`AUTH_JWKS_MIN_REFRESH_SECS`).
    pub jwks_min_refresh: Duration,
}

impl Default for AuthConfig {
    /// Nothing configured (no way to authenticate until a key or the header is allowed).
    fn default() -> Self {
        AuthConfig {
            allow_tenant_header: false,
            algorithm: JwtAlgorithm::Hs256,
            secret: None,
            public_key_pem: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(300),
            jwks_min_refresh: Duration::from_secs(30),
        }
    }
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
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh", &self.jwks_refresh)
            .field("jwks_min_refresh", &self.jwks_min_refresh)
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
/// [`Tenant`] extractor then works in every handler. With JWKS sources, run
/// [`Authenticator::keep_keys_fresh`] beside the server.
pub struct Authenticator {
    allow_tenant_header: bool,
    keys: RwLock<Arc<KeySet>>,
    sources: Option<Sources>,
    refresh: Duration,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current_keys();
        f.debug_struct("Authenticator")
            .field("allow_tenant_header", &self.allow_tenant_header)
            .field("jwt", &keys.unnamed.is_some())
            .field("jwks_keys", &(keys.file.len() + keys.url.len()))
            .finish()
    }
}

impl Authenticator {
    /// Builds the verifier and reads the JWKS file; fails on an unusable key or file so a bad
    /// deployment stops at start-up. The JWKS URL is fetched by [`Authenticator::keep_keys_fresh`]
    /// (or [`Authenticator::refresh_keys`]).
    pub fn new(config: &AuthConfig) -> Result<Authenticator, String> {
        let unnamed = configured_key(config)?;
        let sources = if config.jwks_file.is_some() || config.jwks_url.is_some() {
            Some(Sources::new(
                config.jwks_file.clone(),
                config.jwks_url.as_deref(),
                config.jwks_min_refresh,
            )?)
        } else {
            None
        };
        let file = match &sources {
            Some(s) => s.read_file()?.unwrap_or_default(),
            None => Default::default(),
        };
        let keys = KeySet {
            unnamed,
            file: Arc::new(file),
            url: Arc::default(),
        };
        let has_url = sources.as_ref().is_some_and(Sources::has_url);
        if keys.is_empty() && !has_url && !config.allow_tenant_header {
            return Err(
                "no way to authenticate: set AUTH_JWT_SECRET (HS256), AUTH_JWT_PUBLIC_KEY (RS256/ES256), \
                 AUTH_JWKS_FILE or AUTH_JWKS_URL, or AUTH_ALLOW_TENANT_HEADER=true for local development"
                    .into(),
            );
        }
        Ok(Authenticator {
            allow_tenant_header: config.allow_tenant_header,
            keys: RwLock::new(Arc::new(keys)),
            sources,
            refresh: config.jwks_refresh,
        })
    }

    /// An axum layer that makes this authenticator available to the [`Tenant`] extractor.
    pub fn layer(self: &Arc<Self>) -> axum::Extension<Arc<Authenticator>> {
        axum::Extension(Arc::clone(self))
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the JWKS file and URL again now; a source that fails keeps its previous keys (and
    /// the error is returned). A key no longer published is refused from now on.
    pub async fn refresh_keys(&self) -> Result<(), String> {
        let Some(sources) = &self.sources else {
            return Ok(());
        };
        let Some(_turn) = sources.begin_read(true).await else {
            return Ok(());
        };
        self.read_sources(sources).await
    }

    /// Called when a token names an unknown `kid`: reads the sources again unless they were read
    /// within the minimum gap (so a flood of made-up kids cannot hammer the identity provider).
    /// The caller then verifies the token once more.
    pub async fn refresh_for_unknown_key(&self) {
        let Some(sources) = &self.sources else {
            return;
        };
        let Some(_turn) = sources.begin_read(false).await else {
            return;
        };
        if let Err(e) = self.read_sources(sources).await {
            tracing::warn!(error = %e, "JWKS read after an unknown kid failed; keeping the previous keys");
        }
    }

    async fn read_sources(&self, sources: &Sources) -> Result<(), String> {
        let file = sources.read_file();
        let url = sources.fetch_url().await;
        let mut errors = Vec::new();
        let mut next = KeySet::clone(&self.current_keys());
        for (result, slot) in [(file, &mut next.file), (url, &mut next.url)] {
            match result {
                Ok(Some(keys)) => *slot = Arc::new(keys),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Reads the JWKS sources at once and then every refresh interval (5 s after a failure)
    /// until `stop` completes. Returns at once when no JWKS source is configured.
    pub async fn keep_keys_fresh(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        if self.sources.is_none() {
            return;
        }
        let mut stop = std::pin::pin!(stop);
        loop {
            let wait = match self.refresh_keys().await {
                Ok(()) => self.refresh,
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS read failed; keeping the previous keys");
                    RETRY_AFTER_FAILED_READ.min(self.refresh)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut stop => return,
            }
        }
    }

    /// Authenticates a request from its headers.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantId, Error> {
        if let Some(value) = single_authorization(headers)? {
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

    /// [`Authenticator::authenticate`], reading the JWKS sources again (rate-limited) when the
    /// token names an unknown `kid`, so a freshly rotated key works on its first token.
    pub async fn authenticate_refreshing(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<TenantId, Error> {
        match self.authenticate(headers) {
            Err(e) if is_unknown_key(&e) => {
                self.refresh_for_unknown_key().await;
                self.authenticate(headers)
            }
            other => other,
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

    /// Verifies `token` (header, key by `kid`, algorithm, signature, expiry) and decodes its
    /// claims as `T`.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::unauthenticated(
                "auth.invalid_token",
                "token too large",
            ));
        }
        let keys = self.current_keys();
        if keys.is_empty() && self.sources.is_none() {
            return Err(Error::unauthenticated(
                "auth.invalid_token",
                "bearer tokens are not configured here",
            ));
        }
        let refused = |refusal: HeaderRefusal| {
            tracing::info!(?refusal, "bearer token refused");
            refusal.error()
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| refused(HeaderRefusal::Malformed))?;
        let key = keys.choose(&header).map_err(refused)?;
        let data = jsonwebtoken::decode::<T>(token, &key.key, &validation(key.algorithm)).map_err(
            |e| {
                tracing::info!(reason = %e, "bearer token refused");
                Error::unauthenticated(
                    "auth.invalid_token",
                    "the bearer token is invalid or expired",
                )
            },
        )?;
        Ok(data.claims)
    }

    fn authenticate_bearer(&self, value: &http::HeaderValue) -> Result<TenantId, Error> {
        self.verify_token(bearer_token(value)?)
    }
}

/// Whether `error` is the refusal of a token whose `kid` names no key we hold.
pub(crate) fn is_unknown_key(error: &Error) -> bool {
    error.code() == "auth.unknown_key"
}

/// The configured secret or public key, for tokens without a `kid`.
fn configured_key(config: &AuthConfig) -> Result<Option<VerifyKey>, String> {
    let (key, algorithm) = match config.algorithm {
        JwtAlgorithm::Hs256 => match config.secret.as_deref() {
            Some(s) if s.len() < 16 => {
                return Err("AUTH_JWT_SECRET must be at least 16 bytes".into());
            }
            Some(s) => (DecodingKey::from_secret(s.as_bytes()), Algorithm::HS256),
            None => return Ok(None),
        },
        JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
            let Some(pem) = config.public_key_pem.as_deref() else {
                return Ok(None);
            };
            let (parsed, algorithm) = if config.algorithm == JwtAlgorithm::Rs256 {
                (DecodingKey::from_rsa_pem(pem.as_bytes()), Algorithm::RS256)
            } else {
                (DecodingKey::from_ec_pem(pem.as_bytes()), Algorithm::ES256)
            };
            let key =
                parsed.map_err(|e| format!("AUTH_JWT_PUBLIC_KEY is not a usable PEM key: {e}"))?;
            (key, algorithm)
        }
    };
    Ok(Some(VerifyKey { key, algorithm }))
}

/// The claim checks: exactly `algorithm`, `exp` required, `exp`/`nbf` checked with 5 s leeway.
fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp"]);
    validation
}

/// The request's one `Authorization` header, if any; two or more are refused (which one a proxy
/// or a framework would read differs, so neither is trusted).
pub(crate) fn single_authorization(
    headers: &http::HeaderMap,
) -> Result<Option<&http::HeaderValue>, Error> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (_, Some(_)) => Err(Error::unauthenticated(
            "auth.duplicate_authorization",
            "send exactly one Authorization header",
        )),
        (first, None) => Ok(first),
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

/// The authenticator installed by [`Authenticator::layer`].
pub(crate) fn installed(parts: &Parts) -> Result<Arc<Authenticator>, Error> {
    parts
        .extensions
        .get::<Arc<Authenticator>>()
        .cloned()
        .ok_or_else(|| {
            Error::internal(std::io::Error::other(
                "Authenticator layer is not installed on this router",
            ))
        })
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
        let auth = installed(parts)?;
        let tenant = auth.authenticate_refreshing(&parts.headers).await?;
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
