//! JWT keys chosen by `kid` from a JWKS file and a JWKS URL (a local HTTP server): rotation with
//! an overlap, removal after a refresh, a new key picked up on its first token; and the header
//! attacks: unknown `crit`, `alg` confusion, `alg: none`, two `Authorization` headers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longship_errors::Kind;
use longship_tenant::{
    AdminScope, AuthConfig, Authenticator, issue_dev_admin_token, issue_dev_token,
};

const SECRET: &str = "a-test-secret-of-enough-length";
const RSA_PRIVATE: &str = include_str!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("fixtures/ec_private.pem");

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa")
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec")
}

/// A JWKS document with the public halves of `keys` as `(kid, key, alg)`.
fn jwks(keys: &[(&str, &EncodingKey, Algorithm)]) -> String {
    let keys = keys
        .iter()
        .map(|(kid, key, alg)| {
            let mut jwk = Jwk::from_encoding_key(key, *alg).expect("jwk");
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).expect("json")
}

fn token(kid: Option<&str>, alg: Algorithm, key: &EncodingKey, tenant: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let claims =
        serde_json::json!({"tenant_id": tenant, "exp": chrono::Utc::now().timestamp() + 60});
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

fn tenant_of(auth: &Authenticator, token: &str) -> Result<String, (Kind, String)> {
    auth.authenticate(&bearer(token))
        .map(|t| t.to_string())
        .map_err(|e| (e.kind(), e.code().to_owned()))
}

fn refused_with(code: &str) -> Result<String, (Kind, String)> {
    Err((Kind::Unauthenticated, code.to_owned()))
}

struct JwksFile {
    dir: std::path::PathBuf,
}

impl JwksFile {
    fn new(name: &str, document: &str) -> JwksFile {
        let dir = std::env::temp_dir().join(format!(
            "longship-jwks-{name}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = JwksFile { dir };
        file.write(document);
        file
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.join("jwks.json")
    }

    /// Replaced atomically, like a Secret volume update.
    fn write(&self, document: &str) {
        let tmp = self.dir.join("jwks.json.tmp");
        std::fs::write(&tmp, document).expect("write");
        std::fs::rename(&tmp, self.path()).expect("rename");
    }
}

impl Drop for JwksFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_rotated_key_overlaps_with_the_old_one_and_a_removed_kid_is_refused_after_refresh() {
    let (rsa, ec) = (rsa(), ec());
    let file = JwksFile::new("rotation", &jwks(&[("old", &rsa, Algorithm::RS256)]));
    let auth = Authenticator::new(&AuthConfig {
        secret: Some(SECRET.into()),
        jwks_file: Some(file.path()),
        ..AuthConfig::default()
    })
    .expect("config");
    let old = token(Some("old"), Algorithm::RS256, &rsa, "acme");
    let new = token(Some("new"), Algorithm::ES256, &ec, "acme");
    assert_eq!(tenant_of(&auth, &old).as_deref(), Ok("acme"));
    assert_eq!(tenant_of(&auth, &new), refused_with("auth.unknown_key"));

    // step 1 of a rotation: publish the new key beside the old one; both verify
    file.write(&jwks(&[
        ("old", &rsa, Algorithm::RS256),
        ("new", &ec, Algorithm::ES256),
    ]));
    auth.refresh_keys().await.expect("refresh");
    assert_eq!(tenant_of(&auth, &old).as_deref(), Ok("acme"));
    assert_eq!(tenant_of(&auth, &new).as_deref(), Ok("acme"));

    // step 3: once no token signed with the old key is alive, drop it
    file.write(&jwks(&[("new", &ec, Algorithm::ES256)]));
    auth.refresh_keys().await.expect("refresh");
    assert_eq!(tenant_of(&auth, &old), refused_with("auth.unknown_key"));
    assert_eq!(tenant_of(&auth, &new).as_deref(), Ok("acme"));

    // a broken document keeps the keys in force
    file.write("{ not json");
    assert!(auth.refresh_keys().await.is_err());
    assert_eq!(tenant_of(&auth, &new).as_deref(), Ok("acme"));

    // the HS256 secret (tokens without kid, `just token`) keeps working beside the JWKS
    let dev = issue_dev_token(SECRET, &"acme".parse().expect("tenant"), 60).expect("dev");
    assert_eq!(tenant_of(&auth, &dev).as_deref(), Ok("acme"));
    // and admin routes use the same keys
    let admin = token(Some("new"), Algorithm::ES256, &ec, "acme");
    assert!(
        auth.authenticate_admin(&bearer(&admin)).is_err(),
        "no scope: 403"
    );
    let operator = issue_dev_admin_token(SECRET, "ops", &AdminScope::Operator, 60).expect("op");
    assert!(auth.authenticate_admin(&bearer(&operator)).is_ok());
}

/// A JWKS endpoint on port 0 serving whatever `document` holds, counting its fetches.
async fn jwks_server(document: Arc<Mutex<String>>, fetches: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let document = Arc::clone(&document);
            let fetches = Arc::clone(&fetches);
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = document.lock().expect("lock").clone();
                ([(http::header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn keys_from_a_jwks_url_are_fetched_refreshed_and_a_new_kid_is_picked_up_at_once() {
    let (rsa, ec) = (rsa(), ec());
    let document = Arc::new(Mutex::new(jwks(&[("k1", &rsa, Algorithm::RS256)])));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(Arc::clone(&document), Arc::clone(&fetches)).await;
    let auth = Arc::new(
        Authenticator::new(&AuthConfig {
            jwks_url: Some(url),
            jwks_refresh: Duration::from_millis(300),
            jwks_min_refresh: Duration::from_secs(3600),
            ..AuthConfig::default()
        })
        .expect("config"),
    );
    let stop = tokio_util_like_stop();
    let refresher = tokio::spawn(Arc::clone(&auth).keep_keys_fresh(stop.wait()));
    let k1 = token(Some("k1"), Algorithm::RS256, &rsa, "acme");
    wait_until("k1 fetched", || tenant_of(&auth, &k1).is_ok()).await;

    // the provider rotates: k2 published, k1 withdrawn; the periodic refresh follows
    *document.lock().expect("lock") = jwks(&[("k2", &ec, Algorithm::ES256)]);
    let k2 = token(Some("k2"), Algorithm::ES256, &ec, "acme");
    wait_until("k1 withdrawn", || {
        tenant_of(&auth, &k1) == refused_with("auth.unknown_key")
    })
    .await;
    assert_eq!(tenant_of(&auth, &k2).as_deref(), Ok("acme"));

    // unknown kids (made up by an attacker) do not hammer the provider: the minimum gap holds
    let before = fetches.load(Ordering::SeqCst);
    for i in 0..50 {
        let forged = token(
            Some(&format!("made-up-{i}")),
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            "acme",
        );
        let refused = auth.authenticate_refreshing(&bearer(&forged)).await;
        assert_eq!(
            refused.map_err(|e| e.code().to_owned()),
            Err("auth.unknown_key".into())
        );
    }
    assert!(
        fetches.load(Ordering::SeqCst) <= before + 2,
        "50 unknown kids caused {} fetches",
        fetches.load(Ordering::SeqCst) - before
    );
    stop.fire();
    refresher.await.expect("refresher stops");
}

#[tokio::test]
async fn a_token_signed_with_a_just_published_key_is_accepted_on_its_first_request() {
    let (rsa, ec) = (rsa(), ec());
    let document = Arc::new(Mutex::new(jwks(&[("k1", &rsa, Algorithm::RS256)])));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(Arc::clone(&document), Arc::clone(&fetches)).await;
    let auth = Authenticator::new(&AuthConfig {
        jwks_url: Some(url),
        jwks_refresh: Duration::from_secs(3600),
        jwks_min_refresh: Duration::ZERO,
        ..AuthConfig::default()
    })
    .expect("config");
    auth.refresh_keys().await.expect("first fetch");
    *document.lock().expect("lock") = jwks(&[
        ("k1", &rsa, Algorithm::RS256),
        ("k2", &ec, Algorithm::ES256),
    ]);
    let k2 = token(Some("k2"), Algorithm::ES256, &ec, "acme");
    assert_eq!(tenant_of(&auth, &k2), refused_with("auth.unknown_key"));
    let tenant = auth
        .authenticate_refreshing(&bearer(&k2))
        .await
        .expect("picked up on the unknown kid");
    assert_eq!(tenant.as_str(), "acme");
}

#[test]
fn unknown_crit_alg_confusion_alg_none_and_two_authorization_headers_are_401() {
    let rsa = rsa();
    let file = JwksFile::new("attacks", &jwks(&[("r1", &rsa, Algorithm::RS256)]));
    let auth = Authenticator::new(&AuthConfig {
        secret: Some(SECRET.into()),
        jwks_file: Some(file.path()),
        ..AuthConfig::default()
    })
    .expect("config");
    let good = token(Some("r1"), Algorithm::RS256, &rsa, "acme");
    assert_eq!(tenant_of(&auth, &good).as_deref(), Ok("acme"));

    // crit naming an extension we do not implement (RFC 7515 4.1.11)
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("r1".into());
    header.crit = Some(vec!["http://example.com/ext".into()]);
    let claims =
        serde_json::json!({"tenant_id": "acme", "exp": chrono::Utc::now().timestamp() + 60});
    let crit = jsonwebtoken::encode(&header, &claims, &rsa).expect("sign");
    assert_eq!(
        tenant_of(&auth, &crit),
        refused_with("auth.critical_header")
    );

    // alg confusion: HS256 signed with the RSA public key, naming the RSA key's kid
    let confused = token(
        Some("r1"),
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        "acme",
    );
    assert_eq!(
        tenant_of(&auth, &confused),
        refused_with("auth.algorithm_not_allowed")
    );
    // and an RS256 token without kid against the HS256 secret
    let no_kid = token(None, Algorithm::RS256, &rsa, "acme");
    assert_eq!(
        tenant_of(&auth, &no_kid),
        refused_with("auth.algorithm_not_allowed")
    );

    // alg none, with and without kid
    for header in [r#"{"alg":"none","kid":"r1"}"#, r#"{"alg":"none"}"#] {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(r#"{"tenant_id":"acme","exp":9999999999}"#)
        );
        assert_eq!(tenant_of(&auth, &none), refused_with("auth.invalid_token"));
    }

    // two Authorization headers, even both valid: neither is trusted
    let mut two = bearer(&good);
    two.append(
        http::header::AUTHORIZATION,
        format!("Bearer {good}").parse().expect("header"),
    );
    let refused = auth
        .authenticate(&two)
        .map_err(|e| (e.kind(), e.code().to_owned()));
    assert_eq!(
        refused,
        Err((Kind::Unauthenticated, "auth.duplicate_authorization".into()))
    );
    let admin = auth
        .authenticate_admin(&two)
        .map_err(|e| e.code().to_owned());
    assert_eq!(admin, Err("auth.duplicate_authorization".into()));
}

#[test]
fn a_jwks_source_that_cannot_be_read_stops_start_up() {
    let missing = Authenticator::new(&AuthConfig {
        jwks_file: Some("/nonexistent/jwks.json".into()),
        ..AuthConfig::default()
    });
    assert!(missing.is_err());
    let not_a_url = Authenticator::new(&AuthConfig {
        jwks_url: Some("ftp://idp/jwks".into()),
        ..AuthConfig::default()
    });
    assert!(not_a_url.is_err());
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A one-shot stop signal for [`Authenticator::keep_keys_fresh`].
struct Stop(Arc<tokio::sync::Notify>);

fn tokio_util_like_stop() -> Stop {
    Stop(Arc::new(tokio::sync::Notify::new()))
}

impl Stop {
    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let notify = Arc::clone(&self.0);
        async move { notify.notified().await }
    }

    fn fire(&self) {
        self.0.notify_one();
    }
}
