//! The accepting side: TCP connections, the TLS handshake (when mTLS is on) off the accept loop,
//! and the peer's identity attached to the connection ([`PeerInfo`], which tonic puts into every
//! request's extensions).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{Mtls, ServiceIdentity};

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4): read before the connection is
/// handed to tonic, so a client that connects and sends nothing holds it for a bounded time.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How [`incoming`] accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Connections open at once (handshakes included); one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time from accepting a connection to a complete TLS handshake (with mTLS) and the HTTP/2
    /// connection preface; a connection slower than that is closed.
    pub handshake_timeout: Duration,
    /// TCP keepalive probes on an accepted socket after it was idle this long (`None`: off), so a
    /// peer that vanished without a FIN is noticed by the kernel as well.
    pub tcp_keepalive: Option<Duration>,
}

impl Default for AcceptLimits {
    fn default() -> Self {
        AcceptLimits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(60)),
        }
    }
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo(Arc<PeerInner>);

#[derive(Debug, Default)]
struct PeerInner {
    remote_addr: Option<SocketAddr>,
    tls: bool,
    identity: Option<ServiceIdentity>,
    certificate: Option<Vec<u8>>,
}

impl PeerInfo {
    /// The peer's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.0.remote_addr
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.0.tls
    }

    /// The identity of the peer's certificate (verified against the platform CA in the handshake),
    /// `None` without a certificate or without mTLS.
    pub fn identity(&self) -> Option<&ServiceIdentity> {
        self.0.identity.as_ref()
    }

    /// The peer's leaf certificate (DER), when it presented one.
    pub fn certificate(&self) -> Option<&[u8]> {
        self.0.certificate.as_deref()
    }
}

/// An accepted connection: plain TCP (mTLS off) or TLS, with its [`PeerInfo`]. Its HTTP/2
/// preface was already read (and checked): reads give it back first.
pub struct PeerIo {
    io: Io,
    info: PeerInfo,
    /// Bytes of [`PREFACE`] not yet given back to the reader.
    preface_left: usize,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for PeerIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIo").field("info", &self.info).finish()
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for PeerIo {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.preface_left > 0 {
            let start = PREFACE.len() - this.preface_left;
            let n = this.preface_left.min(buf.remaining());
            buf.put_slice(&PREFACE[start..start + n]);
            this.preface_left -= n;
            return Poll::Ready(Ok(()));
        }
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a connection was closed before tonic got it, for `on_dropped` of [`incoming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The connection cap was reached.
    OverCap,
    /// No TLS handshake and HTTP/2 preface within [`AcceptLimits::handshake_timeout`].
    Timeout,
    /// The first bytes were not the HTTP/2 connection preface (or the peer closed before it).
    NotHttp2,
}

/// The connections of `listener` for `tonic::transport::Server::serve_with_incoming_shutdown`:
/// plain when `mtls` is `None`, else TLS with the current certificate. Each connection gets
/// [`AcceptLimits::handshake_timeout`] to finish the TLS handshake (a refused one is logged and
/// counted in `grpc_tls_handshake_failures_total`) and send the HTTP/2 preface, beside the accept
/// loop; it is closed otherwise. At most [`AcceptLimits::max_connections`] are open at once
/// (handshakes included): one more is closed at once. `on_dropped` hears of every connection
/// closed before tonic got it. Ends when `shutdown` is cancelled.
pub fn incoming(
    listener: TcpListener,
    mtls: Option<Arc<Mtls>>,
    limits: AcceptLimits,
    on_dropped: impl Fn(Dropped) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> impl Stream<Item = io::Result<PeerIo>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<PeerIo>(128);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let on_dropped = Arc::new(on_dropped);
    tokio::spawn(async move {
        loop {
            let (stream, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // out of file descriptors and the like: back off instead of spinning
                        tracing::warn!(error = %e, "accepting a gRPC connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => return,
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                on_dropped(Dropped::OverCap);
                drop(stream);
                continue;
            };
            configure_socket(&stream, limits.tcp_keepalive);
            let (tx, acceptor, on_dropped) = (
                tx.clone(),
                mtls.as_ref().map(|m| m.acceptor()),
                Arc::clone(&on_dropped),
            );
            let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
            tokio::spawn(async move {
                match handshake(acceptor, stream, addr, permit, deadline).await {
                    Ok(io) => {
                        let _ = tx.send(io).await;
                    }
                    Err(Some(reason)) => on_dropped(reason),
                    Err(None) => {}
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|io| (Ok(io), rx))
    })
}

/// No Nagle delay (small gRPC frames go out at once) and TCP keepalive probes after `keepalive`.
fn configure_socket(stream: &TcpStream, keepalive: Option<Duration>) {
    let _ = stream.set_nodelay(true);
    if let Some(idle) = keepalive {
        let probes = socket2::TcpKeepalive::new().with_time(idle);
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&probes) {
            tracing::debug!(error = %e, "setting TCP keepalive on a gRPC connection failed");
        }
    }
}

/// The TLS handshake (with `acceptor`) and the HTTP/2 preface, both before `deadline`. `Err(None)`:
/// a refused TLS handshake (already counted and logged).
async fn handshake(
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stream: TcpStream,
    addr: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
) -> Result<PeerIo, Option<Dropped>> {
    let (mut io, info) = match acceptor {
        None => {
            let info = PeerInfo(Arc::new(PeerInner {
                remote_addr: Some(addr),
                ..PeerInner::default()
            }));
            (Io::Plain(stream), info)
        }
        Some(acceptor) => tls_handshake(acceptor, stream, addr, deadline).await?,
    };
    let mut preface = [0u8; PREFACE.len()];
    let read = match &mut io {
        Io::Plain(s) => tokio::time::timeout_at(deadline, s.read_exact(&mut preface)).await,
        Io::Tls(s) => tokio::time::timeout_at(deadline, s.read_exact(&mut preface)).await,
    };
    match read {
        Ok(Ok(_)) if &preface == PREFACE => Ok(PeerIo {
            io,
            info,
            preface_left: PREFACE.len(),
            _permit: permit,
        }),
        Ok(_) => {
            tracing::debug!(peer = %addr, "a gRPC connection did not start with the HTTP/2 preface; closed");
            Err(Some(Dropped::NotHttp2))
        }
        Err(_) => {
            tracing::debug!(peer = %addr, "a gRPC connection sent no HTTP/2 preface in time; closed");
            Err(Some(Dropped::Timeout))
        }
    }
}

async fn tls_handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<(Io, PeerInfo), Option<Dropped>> {
    let refused = |reason: &'static str, error: &dyn std::fmt::Display| {
        metrics::counter!("grpc_tls_handshake_failures_total", "reason" => reason).increment(1);
        tracing::warn!(peer = %addr, reason, error = %error, "gRPC TLS handshake refused");
    };
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = if e.to_string().contains("certificate") {
                "bad_certificate"
            } else {
                "handshake"
            };
            refused(reason, &e);
            return Err(None);
        }
        Err(_) => {
            refused("timeout", &"no TLS handshake within the handshake timeout");
            return Err(Some(Dropped::Timeout));
        }
    };
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    // the chain was verified against the platform CA during the handshake; a certificate without
    // a Longship SPIFFE ID has no identity (its calls are refused as unauthenticated)
    let identity = certificate
        .as_deref()
        .and_then(|der| ServiceIdentity::of_certificate(der).ok());
    let info = PeerInfo(Arc::new(PeerInner {
        remote_addr: Some(addr),
        tls: true,
        identity,
        certificate,
    }));
    Ok((Io::Tls(Box::new(tls)), info))
}
