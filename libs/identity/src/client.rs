//! The calling side: endpoints that present this service's certificate and accept only the
//! service they meant to reach (its certificate chains to the platform CA and carries that
//! service's SPIFFE ID in the caller's namespace; DNS names and IP addresses are not trusted).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::sync::watch;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::{Mtls, ServiceIdentity};

/// How a client reaches one peer service over mTLS.
#[derive(Debug, Clone)]
pub struct ClientTls {
    mtls: Arc<Mtls>,
    peer: String,
}

impl ClientTls {
    /// Calls to `peer` (a service name such as `inventory`) with `mtls`'s certificate.
    pub fn new(mtls: Arc<Mtls>, peer: &str) -> ClientTls {
        ClientTls {
            mtls,
            peer: peer.to_owned(),
        }
    }

    /// The service this client expects at the other end.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Changes whenever the certificate files were reloaded: endpoints configured before present
    /// the old certificate, so rebuild them ([`ClientTls::configure`]) for new connections.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.mtls.subscribe()
    }

    /// `endpoint` (an `https://` URL) with TLS: the current client certificate, and the server
    /// verified as [`ClientTls::peer`].
    pub fn configure(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        let material = self.mtls.current();
        let tls = ClientTlsConfig::new()
            .identity(material.identity.clone())
            .domain_name(self.peer.clone())
            .assume_http2(true);
        let verifier = PeerVerifier {
            mtls: Arc::clone(&self.mtls),
            peer: self.peer.clone(),
            provider: crate::material::provider(),
        };
        endpoint.tls_config_with_verifier(tls, Arc::new(verifier))
    }
}

/// Verifies the server's chain against the current CA bundle and its SPIFFE ID against the
/// expected service.
#[derive(Debug)]
struct PeerVerifier {
    mtls: Arc<Mtls>,
    peer: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let material = self.mtls.current();
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &material.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let expected = ServiceIdentity::new(material.own.namespace(), &self.peer)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        match ServiceIdentity::of_certificate(end_entity.as_ref()) {
            Ok(found) if found == expected => Ok(ServerCertVerified::assertion()),
            found => {
                tracing::warn!(expected = %expected, found = ?found, "a gRPC server is not the service it should be");
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
