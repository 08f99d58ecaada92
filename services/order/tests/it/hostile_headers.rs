//! Hostile headers over a raw connection: control bytes (DEL, NUL, ...) in a header value are
//! 400 problem+json `request.invalid_header` (not a bare 400 from the parser, not a 5xx), the
//! connection keeps serving the next request; two `Authorization` headers are 401
//! `auth.duplicate_authorization`, even when both carry a valid token.

use std::net::SocketAddr;
use std::time::Duration;

use longship_testkit::TEST_JWT_SECRET;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::Platform;

/// One answer read off a keep-alive connection: status, headers (lower-case) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one response (with a `content-length` body) from `stream`, keeping any surplus in `buffer`.
async fn read_answer(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Answer {
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                    buffer.drain(..end + 4 + length);
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    return Answer { status, head, body };
                }
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "connection closed instead of an answer: {:?}",
                String::from_utf8_lossy(buffer)
            );
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
}

async fn connect(addr: SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

fn assert_invalid_header(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status, 400,
        "{what}: {} {}",
        answer.head, answer.body
    );
    assert!(
        answer
            .head
            .contains("content-type: application/problem+json"),
        "{what}: {}",
        answer.head
    );
    assert_eq!(
        answer.json()["code"],
        "request.invalid_header",
        "{what}: {}",
        answer.body
    );
}

#[tokio::test]
async fn control_bytes_in_header_values_are_400_problem_json_and_the_connection_lives_on() {
    let p = Platform::start().await;
    let body = r#"{"customer_id":"c-1","currency":"USD","items":[{"sku":"SKU-1","quantity":1}]}"#;
    let mut stream = connect(p.order.http).await;
    let mut buffer = Vec::new();
    for (what, value) in [
        ("DEL", &b"key\x7fone"[..]),
        ("NUL", &b"key\x00one"[..]),
        ("ESC", &b"\x1b[31mred"[..]),
        ("BEL", &b"ring\x07"[..]),
    ] {
        let mut request = format!(
            "POST /v1/orders HTTP/1.1\r\nhost: order\r\nx-tenant-id: acme\r\ncontent-type: application/json\r\ncontent-length: {}\r\nidempotency-key: ",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body.as_bytes());
        stream.write_all(&request).await.expect("write");
        let answer = read_answer(&mut stream, &mut buffer).await;
        assert_invalid_header(&answer, what);
    }
    // the same connection still serves a clean request, and a control byte in another header
    // of a GET is refused the same way
    stream
        .write_all(b"GET /v1/orders HTTP/1.1\r\nhost: order\r\nx-tenant-id: acme\r\n\r\nGET /v1/orders HTTP/1.1\r\nhost: order\r\nx-tenant-id: acme\r\nx-note: a\x7fb\r\n\r\n")
        .await
        .expect("write");
    let clean = read_answer(&mut stream, &mut buffer).await;
    assert_eq!(clean.status, 200, "{} {}", clean.head, clean.body);
    let refused = read_answer(&mut stream, &mut buffer).await;
    assert_invalid_header(&refused, "DEL in x-note");
    // nothing was created by the refused requests
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(p.orders_db.pool())
        .await
        .expect("count");
    assert_eq!(orders, 0);
    p.stop().await;
}

#[tokio::test]
async fn two_authorization_headers_are_401_even_when_both_are_valid() {
    let p = Platform::start().await;
    let tenant = "acme".parse().expect("tenant");
    let token = longship_tenant::issue_dev_token(TEST_JWT_SECRET, &tenant, 60).expect("token");
    let mut stream = connect(p.order.http).await;
    let mut buffer = Vec::new();
    let request = format!(
        "GET /v1/orders HTTP/1.1\r\nhost: order\r\nauthorization: Bearer {token}\r\n\r\nGET /v1/orders HTTP/1.1\r\nhost: order\r\nauthorization: Bearer {token}\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let one = read_answer(&mut stream, &mut buffer).await;
    assert_eq!(one.status, 200, "{} {}", one.head, one.body);
    let two = read_answer(&mut stream, &mut buffer).await;
    assert_eq!(two.status, 401, "{} {}", two.head, two.body);
    assert!(
        two.head.contains("application/problem+json"),
        "{}",
        two.head
    );
    assert_eq!(two.json()["code"], "auth.duplicate_authorization");
    p.stop().await;
}
