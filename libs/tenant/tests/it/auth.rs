use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longship_errors::Kind;
use longship_tenant::{AuthConfig, Authenticator, JwtAlgorithm, TenantId, issue_dev_token};

const SECRET: &str = "a-test-secret-of-enough-length";
const RSA_PRIVATE: &str = include_str!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("fixtures/ec_private.pem");
const EC_PUBLIC: &str = include_str!("fixtures/ec_public.pem");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs_auth(allow_header: bool) -> Authenticator {
    Authenticator::new(&AuthConfig {
        allow_tenant_header: allow_header,
        algorithm: JwtAlgorithm::Hs256,
        secret: Some(SECRET.into()),
        public_key_pem: None,
        ..AuthConfig::default()
    })
    .expect("valid config")
}

fn rs_auth() -> Authenticator {
    Authenticator::new(&AuthConfig {
        allow_tenant_header: false,
        algorithm: JwtAlgorithm::Rs256,
        secret: None,
        public_key_pem: Some(RSA_PUBLIC.into()),
        ..AuthConfig::default()
    })
    .expect("valid config")
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("sign")
}

fn hs(claims: serde_json::Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid tenant")
}

fn refused(auth: &Authenticator, headers: &http::HeaderMap) -> (Kind, String) {
    let err = auth.authenticate(headers).expect_err("must be refused");
    (err.kind(), err.code().to_owned())
}

#[test]
fn valid_hs256_token_yields_its_tenant() {
    let token = hs(serde_json::json!({"tenant_id": "acme", "exp": now() + 60}));
    assert_eq!(
        hs_auth(false).authenticate(&bearer(&token)).expect("ok"),
        tenant("acme")
    );
}

#[test]
fn dev_token_is_accepted() {
    let token = issue_dev_token(SECRET, &tenant("globex"), 60).expect("token");
    assert_eq!(
        hs_auth(false).authenticate(&bearer(&token)).expect("ok"),
        tenant("globex")
    );
}

#[test]
fn expired_token_is_401() {
    let token = hs(serde_json::json!({"tenant_id": "acme", "exp": now() - 3600}));
    assert_eq!(
        refused(&hs_auth(false), &bearer(&token)),
        (Kind::Unauthenticated, "auth.invalid_token".into())
    );
}

#[test]
fn not_yet_valid_token_is_401() {
    let token =
        hs(serde_json::json!({"tenant_id": "acme", "exp": now() + 3600, "nbf": now() + 600}));
    assert_eq!(
        refused(&hs_auth(false), &bearer(&token)).0,
        Kind::Unauthenticated
    );
}

#[test]
fn token_without_exp_is_401() {
    let token = hs(serde_json::json!({"tenant_id": "acme"}));
    assert_eq!(
        refused(&hs_auth(false), &bearer(&token)).0,
        Kind::Unauthenticated
    );
}

#[test]
fn wrongly_signed_token_is_401() {
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-entirely-wrong"),
        serde_json::json!({"tenant_id": "acme", "exp": now() + 60}),
    );
    assert_eq!(
        refused(&hs_auth(false), &bearer(&token)).0,
        Kind::Unauthenticated
    );
}

#[test]
fn tampered_payload_is_401() {
    let token = hs(serde_json::json!({"tenant_id": "acme", "exp": now() + 60}));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"tenant_id": "globex", "exp": now() + 60}).to_string());
    assert_eq!(
        refused(&hs_auth(false), &bearer(&parts.join("."))).0,
        Kind::Unauthenticated
    );
}

#[test]
fn alg_none_is_401() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"tenant_id": "acme", "exp": now() + 60}).to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(
            refused(&hs_auth(false), &bearer(&token)).0,
            Kind::Unauthenticated,
            "{token}"
        );
        assert_eq!(
            refused(&rs_auth(), &bearer(&token)).0,
            Kind::Unauthenticated,
            "{token}"
        );
    }
}

#[test]
fn hs_rs_key_confusion_is_401() {
    // the classic attack: sign HS256 with the server's RSA *public* key as the HMAC secret
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        serde_json::json!({"tenant_id": "acme", "exp": now() + 60}),
    );
    assert_eq!(
        refused(&rs_auth(), &bearer(&token)).0,
        Kind::Unauthenticated
    );
}

#[test]
fn rs256_and_es256_tokens_verify_with_their_public_keys() {
    let claims = serde_json::json!({"tenant_id": "acme", "exp": now() + 60});
    let rs = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa"),
        claims.clone(),
    );
    assert_eq!(
        rs_auth().authenticate(&bearer(&rs)).expect("rs ok"),
        tenant("acme")
    );

    let es_auth = Authenticator::new(&AuthConfig {
        allow_tenant_header: false,
        algorithm: JwtAlgorithm::Es256,
        secret: None,
        public_key_pem: Some(EC_PUBLIC.into()),
        ..AuthConfig::default()
    })
    .expect("ec config");
    let es = sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec"),
        claims,
    );
    assert_eq!(
        es_auth.authenticate(&bearer(&es)).expect("es ok"),
        tenant("acme")
    );
    // an RS256 token is refused where ES256 is configured
    assert_eq!(refused(&es_auth, &bearer(&rs)).0, Kind::Unauthenticated);
}

#[test]
fn missing_or_malformed_tenant_claim() {
    let auth = hs_auth(false);
    let no_claim = hs(serde_json::json!({"sub": "x", "exp": now() + 60}));
    assert_eq!(
        refused(&auth, &bearer(&no_claim)),
        (Kind::Unauthenticated, "auth.invalid_token".into())
    );
    let bad_claim = hs(serde_json::json!({"tenant_id": "ACME; DROP TABLE", "exp": now() + 60}));
    assert_eq!(
        refused(&auth, &bearer(&bad_claim)),
        (Kind::BadRequest, "tenant.invalid".into())
    );
    let number_claim = hs(serde_json::json!({"tenant_id": 42, "exp": now() + 60}));
    assert_eq!(refused(&auth, &bearer(&number_claim)).0, Kind::BadRequest);
}

#[test]
fn oversized_and_garbage_tokens_are_401() {
    let auth = hs_auth(false);
    let huge = "a".repeat(64 * 1024);
    assert_eq!(refused(&auth, &bearer(&huge)).0, Kind::Unauthenticated);
    for garbage in ["", "x", "a.b.c", "....", "Basic abc"] {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            garbage.parse().expect("header"),
        );
        assert_eq!(
            refused(&auth, &headers).0,
            Kind::Unauthenticated,
            "{garbage:?}"
        );
    }
}

#[test]
fn no_credentials_is_401() {
    assert_eq!(
        refused(&hs_auth(true), &http::HeaderMap::new()),
        (Kind::Unauthenticated, "auth.missing_credentials".into())
    );
}

#[test]
fn tenant_header_only_where_allowed() {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant-id", "acme".parse().expect("header"));
    assert_eq!(
        hs_auth(true).authenticate(&headers).expect("dev mode"),
        tenant("acme")
    );
    assert_eq!(
        refused(&hs_auth(false), &headers),
        (
            Kind::Unauthenticated,
            "auth.tenant_header_not_allowed".into()
        )
    );
    let mut bad = http::HeaderMap::new();
    bad.insert("x-tenant-id", "Acme_Corp".parse().expect("header"));
    assert_eq!(
        refused(&hs_auth(true), &bad),
        (Kind::BadRequest, "tenant.invalid".into())
    );
}

#[test]
fn config_without_any_method_is_refused_at_startup() {
    let err = Authenticator::new(&AuthConfig {
        allow_tenant_header: false,
        algorithm: JwtAlgorithm::Hs256,
        secret: None,
        public_key_pem: None,
        ..AuthConfig::default()
    });
    assert!(err.is_err());
    let short = Authenticator::new(&AuthConfig {
        allow_tenant_header: false,
        algorithm: JwtAlgorithm::Hs256,
        secret: Some("short".into()),
        public_key_pem: None,
        ..AuthConfig::default()
    });
    assert!(short.is_err());
}

#[tokio::test]
async fn extractor_answers_problem_json() {
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let auth = Arc::new(hs_auth(false));
    let app = axum::Router::new()
        .route(
            "/who",
            get(|longship_tenant::Tenant(t): longship_tenant::Tenant| async move { t.to_string() }),
        )
        .layer(auth.layer());
    let ok = hs(serde_json::json!({"tenant_id": "acme", "exp": now() + 60}));
    let response = app
        .clone()
        .oneshot(
            http::Request::get("/who")
                .header("authorization", format!("Bearer {ok}"))
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"acme");

    let response = app
        .oneshot(
            http::Request::get("/who")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["code"], "auth.missing_credentials");
}
