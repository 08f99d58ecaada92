//! The certificate files of a service (CA bundle, certificate chain, key), loaded into rustls
//! configurations and re-read when they change, so a rotated certificate is used by the next
//! connection without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ServiceIdentity;

/// The three files of a service's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `TLS_CA_FILE`: the platform CA bundle (PEM) peers' certificates must chain to.
    pub ca: PathBuf,
    /// `TLS_CERT_FILE`: the service's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// `TLS_KEY_FILE`: the certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// mTLS settings (present when `GRPC_MTLS=on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsConfig {
    /// The files.
    pub files: TlsFiles,
    /// `TLS_RELOAD_INTERVAL_SECS`: how often the files are checked for changes.
    pub reload_interval: Duration,
}

/// One loaded generation of the files.
pub(crate) struct Material {
    raw: [Vec<u8>; 3],
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) identity: tonic::transport::Identity,
    pub(crate) own: ServiceIdentity,
    pub(crate) not_after_hint: String,
}

/// A service's live TLS identity: the current configuration, swapped when the files change.
pub struct Mtls {
    config: MtlsConfig,
    current: RwLock<Arc<Material>>,
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for Mtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mtls")
            .field("files", &self.config.files)
            .field("identity", &self.own_identity().uri())
            .finish()
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn load(files: &TlsFiles) -> Result<Material, String> {
    let raw = [
        read(&files.ca, "TLS_CA_FILE")?,
        read(&files.cert, "TLS_CERT_FILE")?,
        read(&files.key, "TLS_KEY_FILE")?,
    ];
    build(raw, files)
}

fn certificates(
    pem: &[u8],
    what: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn build(raw: [Vec<u8>; 3], files: &TlsFiles) -> Result<Material, String> {
    let [ca, cert, key] = &raw;
    let mut roots = RootCertStore::empty();
    for c in certificates(ca, "TLS_CA_FILE", &files.ca)? {
        roots.add(c).map_err(|e| {
            format!(
                "TLS_CA_FILE {}: unusable CA certificate: {e}",
                files.ca.display()
            )
        })?;
    }
    let chain = certificates(cert, "TLS_CERT_FILE", &files.cert)?;
    let own = ServiceIdentity::of_certificate(&chain[0])
        .map_err(|e| format!("TLS_CERT_FILE {}: {e}", files.cert.display()))?;
    let private = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        format!(
            "TLS_KEY_FILE {}: no usable private key: {e}",
            files.key.display()
        )
    })?;
    let roots = Arc::new(roots);
    let provider = provider();
    // the handshake accepts a connection without a client certificate, so that a caller without
    // one gets a gRPC UNAUTHENTICATED (the authorization layer refuses every such call but the
    // health check); a certificate that is presented must chain to the platform CA
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("TLS_CA_FILE {}: {e}", files.ca.display()))?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), private.clone_key())
        .map_err(|e| {
            format!(
                "TLS_CERT_FILE {} / TLS_KEY_FILE {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let identity = tonic::transport::Identity::from_pem(cert, key);
    let not_after_hint = x509_not_after(&chain[0]);
    Ok(Material {
        raw,
        server: Arc::new(server),
        roots,
        identity,
        own,
        not_after_hint,
    })
}

fn x509_not_after(der: &[u8]) -> String {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate.validity.not_after.to_string())
        .unwrap_or_default()
}

impl Mtls {
    /// Loads the files; the error names the file and what is wrong with it.
    pub fn load(config: &MtlsConfig) -> Result<Arc<Mtls>, String> {
        let material = load(&config.files)?;
        crate::metric_families::zero();
        let (generation, _) = watch::channel(0);
        Ok(Arc::new(Mtls {
            config: config.clone(),
            current: RwLock::new(Arc::new(material)),
            generation,
        }))
    }

    pub(crate) fn current(&self) -> Arc<Material> {
        match self.current.read() {
            Ok(m) => Arc::clone(&m),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// This service's identity (from its certificate).
    pub fn own_identity(&self) -> ServiceIdentity {
        self.current().own.clone()
    }

    /// The acceptor for the next incoming connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current().server))
    }

    /// Changes with every reload that took effect (clients rebuild their endpoints on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Re-reads the files; swaps the configuration when they changed and load cleanly. `Ok(true)`
    /// when a new certificate is now in use; on an error the previous one stays in use.
    pub fn reload(&self) -> Result<bool, String> {
        let files = &self.config.files;
        let raw = [
            read(&files.ca, "TLS_CA_FILE")?,
            read(&files.cert, "TLS_CERT_FILE")?,
            read(&files.key, "TLS_KEY_FILE")?,
        ];
        if raw == self.current().raw {
            return Ok(false);
        }
        let material = build(raw, files)?;
        let (identity, expires) = (material.own.uri(), material.not_after_hint.clone());
        match self.current.write() {
            Ok(mut m) => *m = Arc::new(material),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(material),
        }
        self.generation.send_modify(|g| *g += 1);
        metrics::counter!("tls_certificate_reloads_total", "result" => "loaded").increment(1);
        tracing::info!(identity = %identity, not_after = %expires, "TLS certificate files changed: new connections use them");
        Ok(true)
    }

    /// Polls the files every `TLS_RELOAD_INTERVAL_SECS` until `shutdown` (a half-written rotation
    /// is retried at the next poll; the previous certificate stays in use meanwhile).
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let current = self.current();
        tracing::info!(identity = %current.own, not_after = %current.not_after_hint, "mTLS on for gRPC");
        drop(current);
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.reload_interval) => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(e) = self.reload() {
                metrics::counter!("tls_certificate_reloads_total", "result" => "failed")
                    .increment(1);
                tracing::warn!(error = %e, "TLS certificate files unusable; keeping the previous ones");
            }
        }
    }
}
