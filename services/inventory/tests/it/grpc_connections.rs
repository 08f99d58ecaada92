//! The gRPC port's connection limits against the real service, with raw TCP sockets: a socket that
//! connects and sends nothing, half a TLS ClientHello or half the HTTP/2 preface is closed within
//! `GRPC_HANDSHAKE_TIMEOUT_SECS` (with mTLS and without), other bytes than the preface are closed
//! at once, a peer that stops answering HTTP/2 PINGs is closed after the keepalive interval and
//! timeout, and beyond `GRPC_MAX_CONNECTIONS` a connection is closed at once while the others are
//! served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::TestApp;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/2 SETTINGS frame with no settings (length 0, type 4, no flags, stream 0).
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Reads (and drops) what arrives until the server closes the socket: how long that took, or
/// `None` if it was still open after `limit`.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

async fn connect(addr: SocketAddr, first_bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    if !first_bytes.is_empty() {
        stream.write_all(first_bytes).await.expect("write");
    }
    stream
}

async fn health(app: &TestApp) -> Result<(), tonic::Status> {
    let mut client = HealthClient::new(app.grpc_channel());
    let call = client.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(answer) => answer.map(|_| ()),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 5 s")),
    }
}

/// The value of the series `line_start` (`name{labels}`) on the service's `/metrics`.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app
        .anonymous()
        .get("/metrics")
        .await
        .expect("metrics")
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not on /metrics"))
}

/// Each socket is closed by the server after the handshake timeout (1 s): not at once, not never.
async fn assert_closed_after_the_timeout(app: &TestApp, cases: &[(&str, &[u8])]) {
    let mut sockets = Vec::new();
    for (what, bytes) in cases {
        sockets.push((*what, Instant::now(), connect(app.grpc_addr, bytes).await));
    }
    for (what, opened, socket) in &mut sockets {
        closed_after(socket, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{what}: still open after 5 s"));
        let after = opened.elapsed();
        assert!(
            after >= Duration::from_millis(700) && after < Duration::from_secs(4),
            "{what}: closed after {after:?}, wanted about the 1 s handshake timeout"
        );
    }
}

#[tokio::test]
async fn with_mtls_a_socket_that_never_finishes_its_tls_handshake_is_closed_after_the_timeout() {
    let app = TestApp::builder()
        .env("GRPC_HANDSHAKE_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    assert!(app.mtls, "the test service runs with mTLS by default");
    assert_closed_after_the_timeout(
        &app,
        &[
            ("a silent socket", b""),
            // a TLS record header announcing a ClientHello that never comes
            ("half a ClientHello", &[0x16, 0x03, 0x01, 0x01, 0x00, 0x01]),
        ],
    )
    .await;
    health(&app)
        .await
        .expect("a real client is served meanwhile");
    assert!(
        metric(
            &app,
            "grpc_tls_handshake_failures_total{reason=\"timeout\"}"
        )
        .await
            >= 2.0
    );
    assert!(metric(&app, "grpc_connections_dropped_total{reason=\"timeout\"}").await >= 2.0);
    app.stop().await;
}

#[tokio::test]
async fn without_mtls_a_socket_without_the_http2_preface_is_closed() {
    let app = TestApp::builder()
        .env("GRPC_MTLS", "off")
        .env("GRPC_HANDSHAKE_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    assert!(!app.mtls);
    assert_closed_after_the_timeout(
        &app,
        &[
            ("a silent socket", b""),
            ("half the preface", &PREFACE[..16]),
        ],
    )
    .await;
    // other bytes than the preface: closed at once
    let mut http1 = connect(app.grpc_addr, b"GET / HTTP/1.1\r\nhost: inventory\r\n\r\n").await;
    let after = closed_after(&mut http1, Duration::from_secs(5))
        .await
        .expect("an HTTP/1.1 request on the gRPC port is closed");
    assert!(after < Duration::from_millis(700), "closed after {after:?}");
    health(&app).await.expect("a real client is served");
    assert!(metric(&app, "grpc_connections_dropped_total{reason=\"timeout\"}").await >= 2.0);
    assert!(metric(&app, "grpc_connections_dropped_total{reason=\"not_http2\"}").await >= 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_http2_pings_is_closed() {
    let app = TestApp::builder()
        .env("GRPC_MTLS", "off")
        .env("GRPC_KEEPALIVE_INTERVAL_SECS", "1")
        .env("GRPC_KEEPALIVE_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    // a complete HTTP/2 start, then silence: the server's PINGs go unanswered
    let mut mute = connect(app.grpc_addr, &[PREFACE, EMPTY_SETTINGS].concat()).await;
    let after = closed_after(&mut mute, Duration::from_secs(10))
        .await
        .expect("a peer that answers no PING is closed within 10 s");
    assert!(
        after >= Duration::from_millis(1500),
        "closed after {after:?}: before the keepalive interval and timeout had passed"
    );
    health(&app).await.expect("a real client is served");
    app.stop().await;
}

#[tokio::test]
async fn beyond_the_grpc_connection_cap_a_socket_is_closed_at_once() {
    let app = TestApp::builder()
        .env("GRPC_MTLS", "off")
        .env("GRPC_MAX_CONNECTIONS", "3")
        .env("GRPC_HANDSHAKE_TIMEOUT_SECS", "60")
        .spawn()
        .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(app.grpc_addr, b"").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // accepted, each holding its place
    for socket in &mut held {
        assert_eq!(
            closed_after(socket, Duration::from_millis(300)).await,
            None,
            "a connection within the cap is kept"
        );
    }
    let mut fourth = connect(app.grpc_addr, b"").await;
    let after = closed_after(&mut fourth, Duration::from_secs(3))
        .await
        .expect("the connection beyond the cap is closed");
    assert!(after < Duration::from_secs(1), "closed after {after:?}");
    assert!(
        health(&app).await.is_err(),
        "a client beyond the cap is not served"
    );
    assert!(metric(&app, "connections_refused_total{server=\"grpc\"}").await >= 2.0);
    // once one closes, a new connection is served again
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    health(&app)
        .await
        .expect("served once a place is free again");
    app.stop().await;
}
