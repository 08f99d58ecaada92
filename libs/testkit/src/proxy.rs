//! A fault-injecting TCP proxy: put it between code under test and Postgres or NATS, then make the
//! network misbehave on demand (stall, refuse, cut, slow down).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards bytes both ways.
    Pass,
    /// Accepts connections but moves no bytes in either direction, like a path that drops every
    /// packet; held traffic resumes where it stopped once the mode is `Pass` again.
    Blackhole,
    /// Resets new connections as soon as they are accepted and resets every existing one, like a
    /// server that is down.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    mode: Mode,
    latency: Duration,
    /// Bumped by [`FaultProxy::cut`]; a connection opened under an older value is reset.
    cuts: u64,
}

/// A TCP proxy forwarding every connection to one upstream address, with switchable faults that
/// apply to new and open connections alike. Dropping it closes the listener and resets every
/// connection it carries.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    settings: watch::Sender<Settings>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on `127.0.0.1:0`, in [`Mode::Pass`] with no added latency.
    #[allow(clippy::panic)] // reason: a test helper that cannot bind a loopback port must fail loudly
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        match FaultProxy::bind(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await {
            Ok(proxy) => proxy,
            Err(e) => panic!("binding a fault proxy to {upstream} on 127.0.0.1: {e}"),
        }
    }

    /// Starts a proxy to `upstream` listening on `listen` (for tools that need a fixed port).
    pub async fn bind(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (settings, watcher) = watch::channel(Settings {
            mode: Mode::Pass,
            latency: Duration::ZERO,
            cuts: 0,
        });
        let accept = tokio::spawn(accept_loop(listener, upstream, watcher));
        Ok(FaultProxy {
            addr,
            settings,
            accept,
        })
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the fault mode for new and existing connections.
    pub fn set_mode(&self, mode: Mode) {
        self.settings.send_modify(|s| s.mode = mode);
    }

    /// The current fault mode.
    pub fn mode(&self) -> Mode {
        self.settings.borrow().mode
    }

    /// Delays every forwarded chunk by `latency` (zero for none).
    pub fn set_latency(&self, latency: Duration) {
        self.settings.send_modify(|s| s.latency = latency);
    }

    /// Resets every connection open now; later connections are served according to the mode.
    pub fn cut(&self) {
        self.settings.send_modify(|s| s.cuts += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // dropping the sender (after this) ends every connection task; the listener goes with this one
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    settings: watch::Receiver<Settings>,
) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(serve(client, upstream, settings.clone()));
            }
            // e.g. out of file descriptors: back off instead of spinning
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut settings: watch::Receiver<Settings>,
) {
    let born = *settings.borrow();
    if born.mode == Mode::Refuse {
        return reset(client);
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let doomed = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let both_ways = futures::future::join(
            pump(client_read, server_write, settings.clone()),
            pump(server_read, client_write, settings.clone()),
        );
        // an error means the proxy was dropped: the connection ends with it
        let fault = settings.wait_for(|s| s.mode == Mode::Refuse || s.cuts != born.cuts);
        tokio::select! {
            // checked first, so bytes that arrive with a fault are never forwarded
            biased;
            _ = fault => true,
            _ = both_ways => false,
        }
    };
    if doomed {
        reset(client);
        reset(server);
    }
}

/// Copies `from` to `to` chunk by chunk, holding chunks while blackholed and delaying them by the
/// configured latency; half-closes `to` when `from` ends.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut settings: watch::Receiver<Settings>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if settings.wait_for(|s| s.mode == Mode::Pass).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let latency = settings.borrow().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // a chunk read just before a switch to Blackhole waits, so nothing slips through
        if settings.wait_for(|s| s.mode == Mode::Pass).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// Closes with RST rather than FIN, so the peer sees "connection reset" at once.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind echo server");
        let addr = listener.local_addr().expect("echo address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// Sends `message` and reads the echo back, within a second.
    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut back = vec![0u8; message.len()];
        let (mut read, mut write) = stream.split();
        let exchange = async {
            // concurrently, so a large message cannot fill both socket buffers and stall
            tokio::try_join!(write.write_all(message), read.read_exact(&mut back))?;
            Ok(back)
        };
        tokio::time::timeout(Duration::from_secs(1), exchange)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    #[tokio::test]
    async fn passes_bytes_both_ways_with_and_without_latency() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr())
            .await
            .expect("connect through proxy");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            round_trip(&mut stream, &big)
                .await
                .expect("echo through proxy"),
            big
        );

        proxy.set_latency(Duration::from_millis(150));
        let started = tokio::time::Instant::now();
        assert_eq!(
            round_trip(&mut stream, b"slow").await.expect("slow echo"),
            b"slow"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "latency applies to each direction"
        );
    }

    #[tokio::test]
    async fn refuse_mode_fails_new_and_existing_connections_until_pass() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut existing = TcpStream::connect(proxy.addr())
            .await
            .expect("connect through proxy");
        assert_eq!(
            round_trip(&mut existing, b"hello").await.expect("echo"),
            b"hello"
        );

        proxy.set_mode(Mode::Refuse);
        assert!(
            round_trip(&mut existing, b"again").await.is_err(),
            "existing connection is reset"
        );
        // the kernel completes the handshake; the proxy resets it at once
        if let Ok(mut fresh) = TcpStream::connect(proxy.addr()).await {
            assert!(
                round_trip(&mut fresh, b"new").await.is_err(),
                "new connection is refused"
            );
        }

        proxy.set_mode(Mode::Pass);
        let mut healed = TcpStream::connect(proxy.addr())
            .await
            .expect("connect after healing");
        assert_eq!(
            round_trip(&mut healed, b"back")
                .await
                .expect("echo after healing"),
            b"back"
        );
    }

    #[tokio::test]
    async fn cut_resets_current_connections_but_not_later_ones() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut before = TcpStream::connect(proxy.addr())
            .await
            .expect("connect through proxy");
        assert_eq!(round_trip(&mut before, b"one").await.expect("echo"), b"one");

        proxy.cut();
        assert!(
            round_trip(&mut before, b"two").await.is_err(),
            "cut connection fails"
        );
        let mut after = TcpStream::connect(proxy.addr())
            .await
            .expect("connect after cut");
        assert_eq!(
            round_trip(&mut after, b"three")
                .await
                .expect("echo after cut"),
            b"three"
        );
    }

    #[tokio::test]
    async fn blackhole_holds_traffic_until_pass() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr())
            .await
            .expect("connect through proxy");
        assert_eq!(
            round_trip(&mut stream, b"ping").await.expect("echo"),
            b"ping"
        );

        proxy.set_mode(Mode::Blackhole);
        stream.write_all(b"held").await.expect("write is buffered");
        let mut back = [0u8; 4];
        let stalled =
            tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut back)).await;
        assert!(stalled.is_err(), "nothing comes back while blackholed");

        proxy.set_mode(Mode::Pass);
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut back))
            .await
            .expect("held bytes arrive after healing")
            .expect("read");
        assert_eq!(&back, b"held");
    }
}
