//! Admin principals: scopes from the JWT, never from `X-Tenant-Id`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longship_errors::Kind;
use longship_tenant::{
    AdminPrincipal, AdminScope, AuthConfig, Authenticator, JwtAlgorithm, TenantId,
    issue_dev_admin_token, issue_dev_token,
};

const SECRET: &str = "a-test-secret-of-enough-length";

fn auth() -> Authenticator {
    // the tenant header is allowed, as in local development: it must still never grant admin
    Authenticator::new(&AuthConfig {
        allow_tenant_header: true,
        algorithm: JwtAlgorithm::Hs256,
        secret: Some(SECRET.into()),
        public_key_pem: None,
        ..AuthConfig::default()
    })
    .expect("valid config")
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

fn hs(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn exp() -> i64 {
    chrono::Utc::now().timestamp() + 60
}

fn refused(headers: &http::HeaderMap) -> (Kind, String) {
    let err = auth()
        .authenticate_admin(headers)
        .expect_err("must be refused");
    (err.kind(), err.code().to_owned())
}

#[test]
fn an_operator_token_sees_every_tenant() {
    let token =
        issue_dev_admin_token(SECRET, "ops@example", &AdminScope::Operator, 60).expect("token");
    let principal = auth().authenticate_admin(&bearer(&token)).expect("admin");
    assert_eq!(
        principal,
        AdminPrincipal {
            subject: "ops@example".into(),
            scope: AdminScope::Operator
        }
    );
    let acme = TenantId::parse("acme").expect("tenant");
    assert!(principal.may_access(&acme));
    assert_eq!(principal.tenant_filter(None), None);
    assert_eq!(principal.tenant_filter(Some(&acme)), Some(&acme));
}

#[test]
fn a_tenant_admin_reaches_its_own_tenant_only() {
    let acme = TenantId::parse("acme").expect("tenant");
    let globex = TenantId::parse("globex").expect("tenant");
    let token = issue_dev_admin_token(SECRET, "alice", &AdminScope::Tenant(acme.clone()), 60)
        .expect("token");
    let principal = auth().authenticate_admin(&bearer(&token)).expect("admin");
    assert_eq!(principal.scope, AdminScope::Tenant(acme.clone()));
    assert!(principal.may_access(&acme));
    assert!(!principal.may_access(&globex));
    // asking for another tenant still yields its own
    assert_eq!(principal.tenant_filter(Some(&globex)), Some(&acme));
    // several scopes in one claim, space-separated
    let token = hs(
        serde_json::json!({"sub": "bob", "scope": "openid longship:admin", "tenant_id": "globex", "exp": exp()}),
    );
    let principal = auth().authenticate_admin(&bearer(&token)).expect("admin");
    assert_eq!(principal.scope, AdminScope::Tenant(globex));
}

#[test]
fn no_credentials_and_a_tenant_header_alone_are_401() {
    assert_eq!(
        refused(&http::HeaderMap::new()),
        (Kind::Unauthenticated, "auth.missing_credentials".into())
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant-id", "acme".parse().expect("header"));
    assert_eq!(
        refused(&headers),
        (Kind::Unauthenticated, "auth.missing_credentials".into())
    );
}

#[test]
fn a_tenant_token_without_an_admin_scope_is_403() {
    let acme = TenantId::parse("acme").expect("tenant");
    let token = issue_dev_token(SECRET, &acme, 60).expect("token");
    assert_eq!(
        refused(&bearer(&token)),
        (Kind::PermissionDenied, "auth.admin_scope_required".into())
    );
    let token = hs(serde_json::json!({"sub": "x", "scope": "longship:operatorx", "exp": exp()}));
    assert_eq!(refused(&bearer(&token)).0, Kind::PermissionDenied);
}

#[test]
fn bad_admin_tokens_are_refused() {
    // an admin scope without a usable tenant
    let token = hs(serde_json::json!({"sub": "x", "scope": "longship:admin", "exp": exp()}));
    assert_eq!(
        refused(&bearer(&token)),
        (Kind::PermissionDenied, "auth.admin_tenant_missing".into())
    );
    let token = hs(
        serde_json::json!({"sub": "x", "scope": "longship:admin", "tenant_id": "Not Valid", "exp": exp()}),
    );
    assert_eq!(refused(&bearer(&token)).0, Kind::PermissionDenied);
    // no subject to record in the audit log
    let token = hs(serde_json::json!({"scope": "longship:operator", "exp": exp()}));
    assert_eq!(refused(&bearer(&token)).0, Kind::Unauthenticated);
    // expired, and signed with another secret
    let token = hs(serde_json::json!({"sub": "x", "scope": "longship:operator", "exp": 1}));
    assert_eq!(refused(&bearer(&token)).0, Kind::Unauthenticated);
    let other = issue_dev_admin_token(
        "another-secret-of-enough-length",
        "x",
        &AdminScope::Operator,
        60,
    )
    .expect("token");
    assert_eq!(refused(&bearer(&other)).0, Kind::Unauthenticated);
}
