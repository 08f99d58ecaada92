//! The connection layer of both servers: listeners with a configurable backlog, a cap on the
//! connections a process serves at once, and timeouts that close connections which do nothing.
//!
//! HTTP ([`serve_http`]) answers a connection beyond the cap at once with 503 problem+json and
//! `Retry-After` (never queued), closes a connection whose request headers are not complete within
//! the header-read timeout (slowloris) and one that carries no request for the idle timeout. gRPC
//! ([`crate::grpc::serve`], accepting through `longship_identity::incoming`) closes a connection
//! beyond its cap at once and one that has not finished its TLS handshake and HTTP/2 preface
//! within the handshake timeout; tonic's own settings bound the rest (streams and calls per
//! connection, call timeout, HTTP/2 keepalive pings, connection age).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The connection settings of both servers (`LISTEN_BACKLOG`, `HTTP_*`, `GRPC_*`; defaults and
/// ranges in docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections the kernel queues for each listener before the process accepts them.
    pub listen_backlog: u32,
    /// The HTTP server's limits.
    pub http: HttpLimits,
    /// The gRPC server's limits.
    pub grpc: GrpcLimits,
}

/// Limits of the HTTP server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers once it started (or opened the connection).
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
}

/// Limits of the gRPC server's connections and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Calls one connection may have in flight (HTTP/2 streams and tonic's concurrency limit).
    pub concurrency_per_connection: usize,
    /// A call not finished by then is answered `DEADLINE_EXCEEDED` (a shorter client deadline wins).
    pub call_timeout: Duration,
    /// A connection is asked to close (GOAWAY, calls in flight finish) after this long, so
    /// clients rebalance and a connection that never does anything does not stay forever.
    pub max_connection_age: Duration,
    /// Time from accepting a connection to a complete TLS handshake (mTLS) and HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// HTTP/2 PING sent to a connection after this long without frames from the peer.
    pub keepalive_interval: Duration,
    /// A connection whose peer does not answer a PING within this is closed.
    pub keepalive_timeout: Duration,
    /// TCP keepalive probes on an idle socket after this long.
    pub tcp_keepalive: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            listen_backlog: 1024,
            http: HttpLimits::default(),
            grpc: GrpcLimits {
                max_connections: 1024,
                concurrency_per_connection: 256,
                call_timeout: Duration::from_secs(15),
                max_connection_age: Duration::from_secs(1800),
                handshake_timeout: Duration::from_secs(10),
                keepalive_interval: Duration::from_secs(30),
                keepalive_timeout: Duration::from_secs(10),
                tcp_keepalive: Duration::from_secs(60),
            },
        }
    }
}

impl ConnectionLimits {
    /// Reads the settings; the error names the variable at fault.
    pub fn from_env(env: &crate::Env) -> Result<ConnectionLimits, crate::ConfigError> {
        let d = ConnectionLimits::default();
        let count = |key: &str, default: usize, max: u64| {
            env.within_or(key, default as u64, (1, max), "connections")
                .map(|v| v as usize)
        };
        Ok(ConnectionLimits {
            listen_backlog: env.within_or("LISTEN_BACKLOG", 1024, (16, 65_535), "connections")?
                as u32,
            http: HttpLimits {
                max_connections: count("HTTP_MAX_CONNECTIONS", d.http.max_connections, 1_000_000)?,
                header_read_timeout: env.secs_or("HTTP_HEADER_READ_TIMEOUT_SECS", 10, 1, 300)?,
                idle_timeout: env.secs_or("HTTP_IDLE_TIMEOUT_SECS", 60, 1, 3600)?,
            },
            grpc: GrpcLimits {
                max_connections: count("GRPC_MAX_CONNECTIONS", d.grpc.max_connections, 1_000_000)?,
                concurrency_per_connection: env.within_or(
                    "GRPC_CONCURRENCY_PER_CONNECTION",
                    256,
                    (1, 10_000),
                    "calls",
                )? as usize,
                call_timeout: env.secs_or("GRPC_CALL_TIMEOUT_SECS", 15, 1, 300)?,
                max_connection_age: env.secs_or(
                    "GRPC_MAX_CONNECTION_AGE_SECS",
                    1800,
                    10,
                    86_400,
                )?,
                handshake_timeout: env.secs_or("GRPC_HANDSHAKE_TIMEOUT_SECS", 10, 1, 300)?,
                keepalive_interval: env.secs_or("GRPC_KEEPALIVE_INTERVAL_SECS", 30, 1, 3600)?,
                keepalive_timeout: env.secs_or("GRPC_KEEPALIVE_TIMEOUT_SECS", 10, 1, 300)?,
                tcp_keepalive: env.secs_or("GRPC_TCP_KEEPALIVE_SECS", 60, 1, 7200)?,
            },
        })
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Binds `addr` with a listen backlog of `backlog` connections (the kernel caps it at
/// `net.core.somaxconn`), so a burst of connections waits in the kernel instead of being dropped.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The answer to a connection beyond the cap (503 problem+json, `service.unavailable`,
/// `Retry-After: 1`): written at once, then the connection is closed.
fn refused_response() -> &'static [u8] {
    static RESPONSE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    RESPONSE.get_or_init(|| {
        let error = longship_errors::Error::new(
            longship_errors::Kind::Unavailable,
            longship_errors::Kind::Unavailable.default_code(),
            "too many connections; retry shortly",
        );
        let body = serde_json::to_vec(&longship_errors::ProblemDetails::from_error(&error))
            .unwrap_or_default();
        let mut response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n",
            longship_errors::PROBLEM_CONTENT_TYPE,
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(&body);
        response
    })
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled; then stops
/// accepting, asks every connection to finish its request in flight and close, and returns once
/// all have closed (the caller bounds the wait).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let (router, builder, stop) =
                    (router.clone(), Arc::clone(&builder), shutdown.clone());
                tokio::spawn(serve_connection(
                    stream, router, builder, limits, stop, permit,
                ));
            }
            Err(_) => {
                metrics::counter!(crate::platform_metrics::CONNECTIONS_REFUSED.name, "server" => "http")
                    .increment(1);
                tokio::spawn(refuse(stream));
            }
        }
    }
    drop(listener);
    // every connection holds a permit until it closes
    let _ = permits.acquire_many(limits.max_connections as u32).await;
}

/// Writes the 503 and closes the connection gracefully: the client's request is read and dropped
/// for up to a second, so the close is a FIN after the answer rather than a reset that may
/// overtake it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(refused_response()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Serves one connection until it closes, is idle past the idle timeout, or the server drains.
async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    limits: HttpLimits,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let busy = activity.begin();
            let router = router.clone();
            async move {
                let response = tower::ServiceExt::oneshot(router, request).await;
                drop(busy);
                response
            }
        })
    };
    // control bytes in header values reach the router marked, to be answered with problem+json
    let stream = crate::header_guard::HeaderGuard::new(stream);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let closing = tokio::select! {
        _ = connection.as_mut() => return,
        () = activity.idle_for(limits.idle_timeout, limits.header_read_timeout) => Duration::from_millis(100),
        () = shutdown.cancelled() => Duration::MAX,
    };
    // finish the request in flight, if any, and close; an idle connection that does not close
    // at once (a half-sent request) is dropped shortly after
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(closing, connection).await;
}

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    last: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Held while a request is in flight.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last.lock() {
            *last = Some(tokio::time::Instant::now());
        }
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    /// Returns once no request has been in flight for `idle`, or when the first request has not
    /// begun within `first` (a connection that sends nothing is a slowloris as well).
    async fn idle_for(&self, idle: Duration, first: Duration) {
        let opened = tokio::time::Instant::now();
        loop {
            let last = self.last.lock().ok().and_then(|l| *l);
            let (quiet_since, limit) = match last {
                Some(at) => (at, idle),
                None => (opened, first.min(idle)),
            };
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && quiet_since.elapsed() >= limit {
                return;
            }
            let wait = limit.saturating_sub(quiet_since.elapsed());
            tokio::time::sleep(wait.max(limit / 10).max(Duration::from_millis(5))).await;
        }
    }
}

/// Counts a gRPC connection closed before tonic got it: beyond the cap
/// (`connections_refused_total{server="grpc"}`), or without its handshake and preface in time or
/// with other bytes first (`grpc_connections_dropped_total`).
pub(crate) fn count_grpc_drop(dropped: longship_identity::Dropped) {
    use longship_identity::Dropped;
    let reason = match dropped {
        Dropped::OverCap => {
            metrics::counter!(crate::platform_metrics::CONNECTIONS_REFUSED.name, "server" => "grpc")
                .increment(1);
            return;
        }
        Dropped::Timeout => "timeout",
        Dropped::NotHttp2 => "not_http2",
    };
    metrics::counter!(crate::platform_metrics::GRPC_CONNECTIONS_DROPPED.name, "reason" => reason)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server with `limits` whose `POST /v1/orders` takes `work` and answers 202.
    async fn server(limits: HttpLimits, work: Duration) -> (SocketAddr, CancellationToken) {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 1024).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/v1/orders",
                post(move || async move {
                    tokio::time::sleep(work).await;
                    (http::StatusCode::ACCEPTED, "{}")
                }),
            );
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_http(listener, router, limits, shutdown.clone()));
        (addr, shutdown)
    }

    /// Reads until the peer closes (or `limit` passes): what arrived and whether it closed.
    async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = tokio::time::timeout(limit, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .is_ok();
        (String::from_utf8_lossy(&received).into_owned(), closed)
    }

    const GET_KEEP_ALIVE: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n";

    #[tokio::test]
    async fn a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let (addr, shutdown) = server(limits, Duration::ZERO).await;
        let mut slow = Vec::new();
        for _ in 0..20 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"POST /v1/orders HTTP/1.1\r\nhost: t\r\nx-slow: 1")
                .await
                .expect("write");
            slow.push(s);
        }
        let started = Instant::now();
        for s in &mut slow {
            let (_, closed) = read_until_closed(s, Duration::from_secs(3)).await;
            assert!(closed, "a slowloris socket stayed open");
        }
        assert!(started.elapsed() < Duration::from_secs(3));
        // a socket that sends nothing at all is closed too
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
        assert!(closed, "a silent socket stayed open");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let limits = HttpLimits {
            idle_timeout: Duration::from_millis(400),
            ..HttpLimits::default()
        };
        let (addr, shutdown) = server(limits, Duration::ZERO).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // requests keep the connection in use: it outlives the idle timeout while busy
        for _ in 0..4 {
            s.write_all(GET_KEEP_ALIVE).await.expect("write");
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let idle_from = Instant::now();
        let (rest, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(closed && rest.is_empty(), "idle connection kept: {rest:?}");
        let idle = idle_from.elapsed();
        assert!(
            idle >= Duration::from_millis(150) && idle < Duration::from_secs(2),
            "closed after {idle:?}"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_is_answered_503_problem_json_at_once() {
        let limits = HttpLimits {
            max_connections: 2,
            ..HttpLimits::default()
        };
        let (addr, shutdown) = server(limits, Duration::ZERO).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(GET_KEEP_ALIVE).await.expect("write");
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            held.push(s);
        }
        let started = Instant::now();
        let mut third = TcpStream::connect(addr).await.expect("connect");
        third.write_all(GET_KEEP_ALIVE).await.expect("write");
        let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(2)).await;
        assert!(closed, "refused connection left open");
        assert!(started.elapsed() < Duration::from_millis(1500));
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let problem: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(problem["code"], "service.unavailable");
        assert_eq!(problem["status"], 503);
        // once a held connection closes, a new one is served again
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(addr).await.expect("connect");
        again.write_all(GET_KEEP_ALIVE).await.expect("write");
        let mut buf = [0u8; 1024];
        let n = again.read(&mut buf).await.expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        shutdown.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_2000_concurrent_posts_is_answered_in_full_202_or_503_with_retry_after() {
        let limits = HttpLimits {
            max_connections: 64,
            ..HttpLimits::default()
        };
        let (addr, shutdown) = server(limits, Duration::from_millis(5)).await;
        let request = b"POST /v1/orders HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
content-length: 2\r\nconnection: close\r\n\r\n{}";
        let clients: Vec<_> = (0..2000)
            .map(|_| {
                tokio::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                    // the server may answer 503 before reading: a failed write still has an answer
                    let _ = s.write_all(request).await;
                    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(30)).await;
                    if !closed {
                        return Err("no answer within 30 s".to_owned());
                    }
                    Ok::<String, String>(answer)
                })
            })
            .collect();
        let (mut accepted, mut refused) = (0, 0);
        for client in clients {
            let answer = client.await.expect("client task").expect("answered");
            if answer.starts_with("HTTP/1.1 202") {
                accepted += 1;
            } else if answer.starts_with("HTTP/1.1 503") {
                assert!(answer.contains("retry-after: 1"), "{answer}");
                refused += 1;
            } else {
                panic!("unexpected answer: {answer:?}");
            }
        }
        assert_eq!(accepted + refused, 2000);
        assert!(accepted > 0, "nothing was served");
        shutdown.cancel();
    }
}
