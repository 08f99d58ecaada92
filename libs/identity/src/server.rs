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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{Mtls, ServiceIdentity};

/// A TLS handshake that takes longer is dropped (a client that connects and sends nothing).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// An accepted connection: plain TCP (mTLS off) or TLS, with its [`PeerInfo`].
pub struct PeerIo {
    io: Io,
    info: PeerInfo,
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
        match &mut self.get_mut().io {
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

/// The connections of `listener` for `tonic::transport::Server::serve_with_incoming_shutdown`:
/// plain when `mtls` is `None`, else TLS with the current certificate (handshakes run beside the
/// accept loop, each within 10 s; a refused handshake is logged and counted in
/// `grpc_tls_handshake_failures_total`). At most `max_connections` are open at once (handshakes
/// included): one more is closed at once and `on_refused` called. Ends when `shutdown` is cancelled.
pub fn incoming(
    listener: TcpListener,
    mtls: Option<Arc<Mtls>>,
    max_connections: usize,
    on_refused: impl Fn() + Send + 'static,
    shutdown: CancellationToken,
) -> impl Stream<Item = io::Result<PeerIo>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<PeerIo>(128);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
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
            let _ = stream.set_nodelay(true);
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                on_refused();
                drop(stream);
                continue;
            };
            let tx = tx.clone();
            match &mtls {
                None => {
                    let info = PeerInfo(Arc::new(PeerInner {
                        remote_addr: Some(addr),
                        ..PeerInner::default()
                    }));
                    let io = PeerIo {
                        io: Io::Plain(stream),
                        info,
                        _permit: permit,
                    };
                    if tx.send(io).await.is_err() {
                        return;
                    }
                }
                Some(mtls) => {
                    let acceptor = mtls.acceptor();
                    tokio::spawn(async move {
                        if let Some(io) = handshake(acceptor, stream, addr, permit).await {
                            let _ = tx.send(io).await;
                        }
                    });
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|io| (Ok(io), rx))
    })
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<PeerIo> {
    let refused = |reason: &'static str, error: &dyn std::fmt::Display| {
        metrics::counter!("grpc_tls_handshake_failures_total", "reason" => reason).increment(1);
        tracing::warn!(peer = %addr, reason, error = %error, "gRPC TLS handshake refused");
    };
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = if e.to_string().contains("certificate") {
                "bad_certificate"
            } else {
                "handshake"
            };
            refused(reason, &e);
            return None;
        }
        Err(_) => {
            refused("timeout", &"no handshake within 10 s");
            return None;
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
    Some(PeerIo {
        io: Io::Tls(Box::new(tls)),
        info,
        _permit: permit,
    })
}
