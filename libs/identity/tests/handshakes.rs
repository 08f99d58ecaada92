//! Real handshakes against a server of [`longship_identity::incoming`] with a guarded service: no
//! certificate, a foreign CA, the wrong service, `x-tenant-id` from an unauthorized caller, and
//! rotated certificates on both sides.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use longship_identity::pki::DevPki;
use longship_identity::{Authorizer, GrpcAccess, Mtls, MtlsConfig, PeerInfo, TlsFiles, incoming};
use longship_tenant::{AuthConfig, Authenticator, JwtAlgorithm};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const NAMESPACE: &str = "test";

fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "longship-identity-{name}-{}-{nanos}",
        std::process::id()
    ))
}

fn load(files: &TlsFiles) -> Arc<Mtls> {
    Mtls::load(&MtlsConfig {
        files: files.clone(),
        reload_interval: Duration::from_millis(200),
    })
    .expect("loads")
}

/// What the guarded service saw: the caller's certificate and `x-tenant-id` of each call.
type Call = (Option<Vec<u8>>, Option<String>);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Call>>>);

#[derive(Clone)]
struct Recorder<S> {
    inner: S,
    seen: Seen,
}

impl<S: NamedService> NamedService for Recorder<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for Recorder<S>
where
    S: tower::Service<http::Request<Body>, Error = Infallible>,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> S::Future {
        let cert = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.certificate().map(<[u8]>::to_vec));
        let tenant = request
            .headers()
            .get("x-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.0.lock().unwrap().push((cert, tenant));
        self.inner.call(request)
    }
}

struct Server {
    pki: DevPki,
    dir: PathBuf,
    mtls: Arc<Mtls>,
    files: TlsFiles,
    addr: SocketAddr,
    seen: Seen,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn authenticator() -> Arc<Authenticator> {
    Arc::new(
        Authenticator::new(&AuthConfig {
            allow_tenant_header: false,
            algorithm: JwtAlgorithm::Hs256,
            secret: Some("a-test-secret-long-enough-for-hs256".into()),
            public_key_pem: None,
            ..Default::default()
        })
        .expect("authenticator"),
    )
}

/// Inventory's health service, callable by `order` only.
async fn server() -> Server {
    let dir = scratch("pki");
    let pki = DevPki::open_or_create(&dir, NAMESPACE).expect("pki");
    let files = pki.issue("inventory", 1).expect("inventory certificate");
    let mtls = load(&files);
    let seen = Seen::default();
    let (_, health) = tonic_health::server::health_reporter();
    let authorizer = Authorizer::new(Some(Arc::clone(&mtls)), authenticator());
    let guarded = authorizer.guard(
        GrpcAccess::Services(&["order"]),
        Recorder {
            inner: health,
            seen: seen.clone(),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let stream = incoming(
        listener,
        Some(Arc::clone(&mtls)),
        longship_identity::AcceptLimits::default(),
        |_| {},
        shutdown.clone(),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::new(guarded))
            .serve_with_incoming_shutdown(stream, shutdown.clone().cancelled_owned()),
    );
    Server {
        pki,
        dir,
        mtls,
        files,
        addr,
        seen,
        shutdown,
    }
}

impl Server {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn ca(&self) -> Certificate {
        Certificate::from_pem(std::fs::read(self.pki.ca_file()).unwrap())
    }

    /// A channel presenting `service`'s certificate of this PKI (through `ClientTls`).
    async fn channel_as(&self, service: &str) -> (Arc<Mtls>, Channel) {
        let mtls = load(&self.pki.issue(service, 1).unwrap());
        let channel = self.channel_with(&mtls).await;
        (mtls, channel)
    }

    async fn channel_with(&self, mtls: &Arc<Mtls>) -> Channel {
        let tls = longship_identity::ClientTls::new(Arc::clone(mtls), "inventory");
        tls.configure(Endpoint::from_shared(self.url()).unwrap())
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    /// A channel that trusts the CA but presents `identity` (or nothing).
    async fn channel_presenting(&self, identity: Option<Identity>) -> Result<Channel, String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(self.ca())
            .domain_name("inventory");
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Endpoint::from_shared(self.url())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))
    }

    fn calls(&self) -> usize {
        self.seen.0.lock().unwrap().len()
    }
}

async fn check(channel: Channel, tenant: Option<&str>) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    if let Some(t) = tenant {
        request
            .metadata_mut()
            .insert("x-tenant-id", t.parse().unwrap());
    }
    HealthClient::new(channel).check(request).await.map(|_| ())
}

fn code_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(longship_errors::CODE_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_allowed_service_is_served_with_its_tenant() {
    let server = server().await;
    let (_, channel) = server.channel_as("order").await;
    check(channel, Some("acme")).await.expect("order may call");
    let seen = server.seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.as_deref(), Some("acme"));
    assert!(
        seen[0].0.is_some(),
        "the caller's certificate is on the request"
    );
}

#[tokio::test]
async fn no_client_certificate_is_unauthenticated_and_never_reaches_the_service() {
    let server = server().await;
    let channel = server
        .channel_presenting(None)
        .await
        .expect("TLS without a client certificate");
    let status = check(channel, Some("victim")).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert_eq!(code_of(&status), "peer.unauthenticated");
    assert_eq!(server.calls(), 0, "the handler never ran");
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_in_the_handshake() {
    let server = server().await;
    let foreign_dir = scratch("foreign");
    let foreign = DevPki::open_or_create(&foreign_dir, NAMESPACE).expect("foreign pki");
    // the same SPIFFE ID as the real caller, signed by a CA the server does not trust
    let files = foreign.issue("order", 1).expect("foreign certificate");
    let identity = Identity::from_pem(
        std::fs::read(&files.cert).unwrap(),
        std::fs::read(&files.key).unwrap(),
    );
    let outcome = match server.channel_presenting(Some(identity)).await {
        Err(e) => e,
        Ok(channel) => format!(
            "{:?}",
            check(channel, Some("victim")).await.expect_err("refused")
        ),
    };
    let _ = std::fs::remove_dir_all(&foreign_dir);
    // TLS 1.3: the client learns of the refusal with the server's alert, on its first read
    assert!(
        outcome.contains("UnknownCA")
            || outcome.contains("BadCertificate")
            || outcome.contains("alert"),
        "the client sees why: {outcome}"
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn the_wrong_service_is_permission_denied_and_its_tenant_never_reaches_the_service() {
    let server = server().await;
    let (_, channel) = server.channel_as("payment").await;
    let status = check(channel, Some("victim")).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(code_of(&status), "peer.forbidden");
    assert!(
        status.message().contains("spiffe://longship/test/payment"),
        "{status:?}"
    );
    assert_eq!(server.calls(), 0, "the handler never ran");
}

#[tokio::test]
async fn a_client_expects_the_service_it_meant_to_reach() {
    let server = server().await;
    let (mtls, _) = server.channel_as("order").await;
    // order calling what it thinks is payment, but inventory answers
    let tls = longship_identity::ClientTls::new(mtls, "payment");
    let result = tls
        .configure(Endpoint::from_shared(server.url()).unwrap())
        .unwrap()
        .connect()
        .await;
    let error = format!("{:?}", result.expect_err("inventory is not payment"));
    assert!(error.contains("NotValidForName"), "{error}");
}

fn leaf(path: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The certificate the server presents to a new connection.
async fn served_certificate(server: &Server) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_file_iter(server.pki.ca_file()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("inventory").unwrap();
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn a_rotated_server_certificate_is_served_to_new_connections_without_a_restart() {
    let server = server().await;
    let before = served_certificate(&server).await;
    assert_eq!(before, leaf(&server.files.cert));
    // unchanged files: nothing to do
    assert_eq!(server.mtls.reload(), Ok(false));
    // a half-done rotation (a new key, the old certificate) keeps the previous pair in use
    std::fs::write(
        &server.files.key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    assert!(
        server.mtls.reload().is_err(),
        "a key that does not match is refused"
    );
    assert_eq!(served_certificate(&server).await, before);
    // the rotation completes; the watcher (polling every 200 ms) picks it up
    let mut changes = server.mtls.subscribe();
    tokio::spawn(Arc::clone(&server.mtls).watch(server.shutdown.clone()));
    server.pki.issue("inventory", 2).expect("rotated");
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the watcher reloads within seconds")
        .unwrap();
    let after = served_certificate(&server).await;
    assert_ne!(after, before);
    assert_eq!(after, leaf(&server.files.cert));
}

#[tokio::test]
async fn a_rotated_client_certificate_is_presented_on_new_connections() {
    let server = server().await;
    let (mtls, channel) = server.channel_as("order").await;
    check(channel.clone(), Some("acme")).await.unwrap();
    let order_cert = server.pki.ca_file().with_file_name("order.pem");
    let first = leaf(&order_cert);
    server.pki.issue("order", 2).expect("rotated");
    assert_eq!(mtls.reload(), Ok(true));
    // the open connection keeps its certificate; a new one presents the new certificate
    check(channel, Some("acme")).await.unwrap();
    check(server.channel_with(&mtls).await, Some("acme"))
        .await
        .unwrap();
    let seen: Vec<_> = server
        .seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(c, _)| c.clone().unwrap())
        .collect();
    assert_eq!(seen.len(), 3);
    assert_eq!((&seen[0], &seen[1]), (&first, &first));
    assert_ne!(seen[2], first);
    assert_eq!(seen[2], leaf(&order_cert));
}
