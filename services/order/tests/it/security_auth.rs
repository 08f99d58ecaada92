//! Authentication attacks over HTTP against a running order service with header trust off:
//! every forged, expired, malformed or oversized credential is refused with 401/400 problem+json,
//! the token's own tenant wins over an `X-Tenant-Id`, and no token ever reaches the logs.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longship_testkit::{HttpClient, TestDb, TestNats};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Service, order_body, start_order};

/// The HS256 secret the harness configures.
const SECRET: &str = longship_testkit::TEST_JWT_SECRET;
const RSA_PRIVATE: &str = include_str!("../../../../libs/tenant/tests/it/fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../../../../libs/tenant/tests/it/fixtures/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("../../../../libs/tenant/tests/it/fixtures/ec_private.pem");

/// An order service on its own (its participants are never called here).
struct LoneOrder {
    nats: TestNats,
    db: TestDb,
    service: Service,
}

impl LoneOrder {
    async fn start(extra: &[(&str, &str)]) -> LoneOrder {
        let nats = TestNats::new().await;
        let db = TestDb::new().await;
        let nowhere: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let service = start_order(&db, &nats, nowhere, nowhere, extra).await;
        let client = HttpClient::new(format!("http://{}", service.http));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !client
            .get("/readyz")
            .await
            .map(|r| r.status == 200)
            .unwrap_or(false)
        {
            assert!(tokio::time::Instant::now() < deadline, "order not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        LoneOrder { nats, db, service }
    }

    fn client(&self) -> HttpClient {
        HttpClient::new(format!("http://{}", self.service.http))
    }

    async fn stop(self) {
        self.service.stop().await;
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

/// Everything logged on this thread (where the in-process service runs), at every level.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs256(secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn unsigned(claims: &Value) -> (String, String) {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    (
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    )
}

/// One attack: the headers sent and the answer expected.
struct Attack {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
}

fn bearer(name: &'static str, token: String, status: u16, code: &'static str) -> Attack {
    Attack {
        name,
        headers: vec![("authorization", format!("Bearer {token}"))],
        status,
        code,
    }
}

fn hs256_attacks() -> Vec<Attack> {
    let valid = |tenant: &str| json!({"tenant_id": tenant, "exp": now() + 300});
    let (none_dot, none_bare) = unsigned(&valid("tenant-a"));
    let good = hs256(SECRET.as_bytes(), valid("tenant-a"));
    let mut tampered: Vec<String> = good.split('.').map(str::to_owned).collect();
    tampered[1] = URL_SAFE_NO_PAD.encode(valid("tenant-b").to_string());
    vec![
        Attack {
            name: "no credentials",
            headers: vec![],
            status: 401,
            code: "auth.missing_credentials",
        },
        Attack {
            name: "tenant header where header trust is off",
            headers: vec![("x-tenant-id", "tenant-a".into())],
            status: 401,
            code: "auth.tenant_header_not_allowed",
        },
        bearer("alg none with a dot", none_dot, 401, "auth.invalid_token"),
        bearer(
            "alg none without signature",
            none_bare,
            401,
            "auth.invalid_token",
        ),
        bearer(
            "signed with another secret",
            hs256(b"another-secret-of-enough-length", valid("tenant-a")),
            401,
            "auth.invalid_token",
        ),
        bearer(
            "payload swapped after signing",
            tampered.join("."),
            401,
            "auth.invalid_token",
        ),
        bearer(
            "expired",
            hs256(
                SECRET.as_bytes(),
                json!({"tenant_id": "tenant-a", "exp": now() - 3600}),
            ),
            401,
            "auth.invalid_token",
        ),
        bearer(
            "not yet valid",
            hs256(
                SECRET.as_bytes(),
                json!({"tenant_id": "tenant-a", "exp": now() + 7200, "nbf": now() + 3600}),
            ),
            401,
            "auth.invalid_token",
        ),
        bearer(
            "no expiry",
            hs256(SECRET.as_bytes(), json!({"tenant_id": "tenant-a"})),
            401,
            "auth.invalid_token",
        ),
        bearer(
            "no tenant_id claim",
            hs256(SECRET.as_bytes(), json!({"sub": "x", "exp": now() + 300})),
            401,
            "auth.invalid_token",
        ),
        bearer(
            "malformed tenant_id claim",
            hs256(
                SECRET.as_bytes(),
                json!({"tenant_id": "ACME'; DROP TABLE orders; --", "exp": now() + 300}),
            ),
            400,
            "tenant.invalid",
        ),
        bearer(
            "numeric tenant_id claim",
            hs256(
                SECRET.as_bytes(),
                json!({"tenant_id": 42, "exp": now() + 300}),
            ),
            400,
            "tenant.invalid",
        ),
        bearer(
            "RS256 token where HS256 is configured",
            jsonwebtoken::encode(
                &Header::new(Algorithm::RS256),
                &valid("tenant-a"),
                &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa"),
            )
            .expect("sign"),
            401,
            "auth.algorithm_not_allowed",
        ),
        bearer(
            "100 KB token",
            "a".repeat(100 * 1024),
            401,
            "auth.invalid_token",
        ),
        bearer("garbage", "a.b.c".into(), 401, "auth.invalid_token"),
        bearer("empty", String::new(), 401, "auth.invalid_token"),
        Attack {
            name: "basic scheme",
            headers: vec![("authorization", "Basic dGVuYW50LWE6eA==".into())],
            status: 401,
            code: "auth.invalid_token",
        },
        Attack {
            name: "non-ASCII authorization",
            headers: vec![("authorization", "Bearer ключ".into())],
            status: 401,
            code: "auth.invalid_token",
        },
    ]
}

/// Sends `attack` to GET and POST /v1/orders and checks the problem document.
async fn assert_refused(client: &HttpClient, attack: &Attack) {
    let headers: Vec<(&str, &str)> = attack
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let get = client
        .send(http::Method::GET, "/v1/orders", &headers, None)
        .await;
    let post = client
        .send_json(
            http::Method::POST,
            "/v1/orders",
            &headers,
            &order_body("c-1", "USD", &[("SKU-1", 1)]),
        )
        .await;
    for (method, r) in [("GET", get), ("POST", post)] {
        let r = r.unwrap_or_else(|e| panic!("{} {method}: no answer: {e}", attack.name));
        assert_eq!(
            (r.status.as_u16(), r.header("content-type").as_deref()),
            (attack.status, Some("application/problem+json")),
            "{} {method}: {}",
            attack.name,
            r.text()
        );
        let problem = r.json();
        assert_eq!(problem["code"], attack.code, "{} {method}", attack.name);
        assert_eq!(problem["status"], attack.status, "{} {method}", attack.name);
        for (_, value) in &attack.headers {
            let secret_part = value.trim_start_matches("Bearer ");
            if secret_part.len() >= 8 {
                assert!(
                    !r.text().contains(secret_part),
                    "{} {method}: the credential is echoed",
                    attack.name
                );
            }
        }
    }
}

/// A request whose header section is larger than the server reads, over a raw connection: the
/// server must answer (431), not reset the connection or fail with a 5xx.
async fn oversized_header_section(addr: SocketAddr, bytes: usize) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET /v1/orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        "a".repeat(bytes)
    );
    let (mut read, mut write) = stream.split();
    let writer = async {
        // the server may close before reading it all; what it answered is what counts
        let _ = write.write_all(head.as_bytes()).await;
    };
    let reader = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Err(e) => panic!("connection error instead of an answer: {e}"),
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    let ((), answer) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(writer, reader)
    })
    .await
    .expect("an answer within 20 s");
    answer
}

#[tokio::test]
async fn forged_expired_malformed_and_oversized_credentials_are_refused_and_never_logged() {
    // capture every log line of the service (it runs on this thread) at every level
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _capture = tracing::subscriber::set_default(subscriber);

    let order = LoneOrder::start(&[("AUTH_ALLOW_TENANT_HEADER", "false")]).await;
    let client = order.client();
    let attacks = hs256_attacks();
    for attack in &attacks {
        assert_refused(&client, attack).await;
    }

    // the header section past the server's limit is answered, not reset
    let answer = oversized_header_section(order.service.http, 1024 * 1024).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "1 MiB of headers: {answer:?}"
    );

    // a valid token works, and its tenant wins over an X-Tenant-Id naming another
    let token_a = longship_tenant::issue_dev_token(
        SECRET,
        &longship_tenant::TenantId::parse("tenant-a").expect("tenant"),
        300,
    )
    .expect("token");
    let token_b = longship_tenant::issue_dev_token(
        SECRET,
        &longship_tenant::TenantId::parse("tenant-b").expect("tenant"),
        300,
    )
    .expect("token");
    let as_a = client.with_header("authorization", &format!("Bearer {token_a}"));
    let placed = as_a
        .send_json(
            http::Method::POST,
            "/v1/orders",
            &[],
            &order_body("c-1", "USD", &[("SKU-1", 1)]),
        )
        .await
        .expect("post");
    assert_eq!(placed.status, 202, "{}", placed.text());
    let id = placed.json()["id"].as_str().expect("id").to_owned();
    let b_naming_a = client
        .with_header("authorization", &format!("Bearer {token_b}"))
        .with_header("x-tenant-id", "tenant-a");
    let r = b_naming_a
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("get");
    assert_eq!(r.status, 404, "B's token with A's header: {}", r.text());
    let list = b_naming_a.get("/v1/orders").await.expect("list").json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    let r = as_a
        .with_header("x-tenant-id", "tenant-b")
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("get");
    assert_eq!(r.status, 200, "{}", r.text());

    // the refusals were logged (so the capture works), with the reason and never a credential
    let text = logs.text();
    assert!(text.contains("bearer token refused"), "nothing captured");
    assert!(text.contains("ExpiredSignature"), "reasons are logged");
    let mut secrets: Vec<String> = attacks
        .iter()
        .flat_map(|a| a.headers.iter().map(|(_, v)| v.clone()))
        .map(|v| v.trim_start_matches("Bearer ").to_owned())
        .filter(|v| v.len() >= 16)
        .collect();
    secrets.extend([token_a, token_b, SECRET.to_owned()]);
    for secret in &secrets {
        // any 16-character slice of the token's signature or payload would do as evidence
        let probe = &secret[secret.len() - 16..];
        assert!(
            !text.contains(probe),
            "a credential reached the logs: ...{probe}"
        );
    }
    order.stop().await;
}

#[tokio::test]
async fn an_rs256_service_refuses_key_confusion_and_foreign_algorithms() {
    let order = LoneOrder::start(&[
        ("AUTH_ALLOW_TENANT_HEADER", "false"),
        ("AUTH_JWT_ALGORITHM", "RS256"),
        ("AUTH_JWT_PUBLIC_KEY", RSA_PUBLIC),
    ])
    .await;
    let client = order.client();
    let claims = json!({"tenant_id": "tenant-a", "exp": now() + 300});
    let (none_dot, _) = unsigned(&claims);
    let attacks = [
        // the classic confusion: HMAC keyed with the server's public key, which anyone can read
        bearer(
            "HS256 signed with the RSA public key",
            hs256(RSA_PUBLIC.as_bytes(), claims.clone()),
            401,
            "auth.algorithm_not_allowed",
        ),
        bearer(
            "HS256 signed with the configured dev secret",
            hs256(SECRET.as_bytes(), claims.clone()),
            401,
            "auth.algorithm_not_allowed",
        ),
        bearer(
            "ES256 where RS256 is configured",
            jsonwebtoken::encode(
                &Header::new(Algorithm::ES256),
                &claims,
                &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec"),
            )
            .expect("sign"),
            401,
            "auth.algorithm_not_allowed",
        ),
        bearer("alg none", none_dot, 401, "auth.invalid_token"),
    ];
    for attack in &attacks {
        assert_refused(&client, attack).await;
    }
    let valid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa"),
    )
    .expect("sign");
    let r = client
        .with_header("authorization", &format!("Bearer {valid}"))
        .get("/v1/orders")
        .await
        .expect("get");
    assert_eq!(r.status, 200, "a genuine RS256 token: {}", r.text());
    order.stop().await;
}
