//! Service identity for tests: one throwaway CA per test process (in the temp directory) and a
//! certificate per service name, so every [`crate::TestApp`] runs with mTLS like production and
//! test clients can call as any service (or present no certificate at all).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use longship_identity::pki::DevPki;
use longship_identity::{ClientTls, Mtls, MtlsConfig, TlsFiles};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// The namespace of the test identities (`spiffe://longship/test/<service>`).
pub const TEST_NAMESPACE: &str = "test";

/// The test process's CA and the certificates it issued.
pub struct TestPki {
    pki: DevPki,
    issued: Mutex<HashMap<String, TlsFiles>>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("ca", &self.pki.ca_file())
            .finish()
    }
}

/// A fresh scratch directory under the temp directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "longship-{name}-{}-{}",
        std::process::id(),
        crate::unique_suffix()
    ))
}

impl TestPki {
    /// The process-wide test PKI.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn shared() -> &'static TestPki {
        static PKI: OnceLock<TestPki> = OnceLock::new();
        PKI.get_or_init(|| TestPki::new(&scratch_dir("test-pki")))
    }

    /// A PKI of its own in `dir` (another CA: for "foreign certificate" and rotation tests).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn new(dir: &std::path::Path) -> TestPki {
        TestPki {
            pki: DevPki::open_or_create(dir, TEST_NAMESPACE).expect("a test CA"),
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// The CA bundle file.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca_file()
    }

    /// `service`'s files (issued on first use, then reused).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn files(&self, service: &str) -> TlsFiles {
        let mut issued = self.issued.lock().expect("the PKI lock");
        issued
            .entry(service.to_owned())
            .or_insert_with(|| self.pki.issue(service, 2).expect("a test certificate"))
            .clone()
    }

    /// Issues `service`'s certificate again (a rotation), into the same files.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn rotate(&self, service: &str) -> TlsFiles {
        let files = self.pki.issue(service, 2).expect("a rotated certificate");
        self.issued
            .lock()
            .expect("the PKI lock")
            .insert(service.to_owned(), files.clone());
        files
    }

    /// The environment of a service running as `service`: `TLS_CA_FILE`, `TLS_CERT_FILE`,
    /// `TLS_KEY_FILE`.
    pub fn env(&self, service: &str) -> [(&'static str, String); 3] {
        let files = self.files(service);
        let path = |p: PathBuf| p.display().to_string();
        [
            ("TLS_CA_FILE", path(files.ca)),
            ("TLS_CERT_FILE", path(files.cert)),
            ("TLS_KEY_FILE", path(files.key)),
        ]
    }

    /// `service`'s live identity (polling its files every 200 ms when watched).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn mtls(&self, service: &str) -> Arc<Mtls> {
        Mtls::load(&MtlsConfig {
            files: self.files(service),
            reload_interval: Duration::from_millis(200),
        })
        .expect("the test certificate loads")
    }

    /// A lazily connecting channel to `addr` calling as `caller` (a platform service name), to
    /// the service `peer`; `None` presents no client certificate (but trusts the CA).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn channel(
        &self,
        addr: std::net::SocketAddr,
        caller: Option<&str>,
        peer: &str,
    ) -> tonic::transport::Channel {
        let endpoint = Endpoint::from_shared(format!("https://{addr}")).expect("URL");
        let endpoint = match caller {
            Some(caller) => ClientTls::new(self.mtls(caller), peer)
                .configure(endpoint)
                .expect("client TLS"),
            None => {
                let ca = std::fs::read(self.ca_file()).expect("the CA file");
                endpoint
                    .tls_config(
                        ClientTlsConfig::new()
                            .ca_certificate(Certificate::from_pem(ca))
                            .domain_name(peer),
                    )
                    .expect("client TLS")
            }
        };
        endpoint.connect_lazy()
    }
}
