//! A development PKI (`just certs`, the test harness, the chaos runner): a CA and, per service, a
//! certificate with the SPIFFE ID `spiffe://longship/<namespace>/<service>` (client and server
//! use), written as PEM files. Not for production: there cert-manager issues them (k8s/README.md).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::{ServiceIdentity, TlsFiles};

/// A CA in a directory (`ca.pem`, `ca.key`) that issues service certificates beside it.
#[derive(Debug)]
pub struct DevPki {
    dir: PathBuf,
    namespace: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn ca_params(namespace: &str) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Longship");
    name.push(
        DnType::CommonName,
        format!("Longship development CA ({namespace})"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params)
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), String> {
    // written beside and renamed, so a reader never sees half a file
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(|e| format!("{}: {e}", tmp.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

impl DevPki {
    /// The CA in `dir`, created (with a new key) when `dir` has none yet.
    pub fn open_or_create(dir: &Path, namespace: &str) -> Result<DevPki, String> {
        ServiceIdentity::new(namespace, "ca")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        let params = ca_params(namespace)?;
        let ca_key = if key_path.is_file() && cert_path.is_file() {
            let pem = std::fs::read_to_string(&key_path)
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
            KeyPair::from_pem(&pem).map_err(err("ca.key"))?
        } else {
            let key = KeyPair::generate().map_err(err("CA key"))?;
            let cert = params.self_signed(&key).map_err(err("CA certificate"))?;
            write(&key_path, &key.serialize_pem(), true)?;
            write(&cert_path, &cert.pem(), false)?;
            key
        };
        Ok(DevPki {
            dir: dir.to_owned(),
            namespace: namespace.to_owned(),
            ca_params: params,
            ca_key,
        })
    }

    /// The CA bundle (`TLS_CA_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The namespace of the identities this PKI issues.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Issues `<dir>/<service>.pem` and `<dir>/<service>.key` (replacing them) for
    /// `spiffe://longship/<namespace>/<service>`, valid for `days`.
    pub fn issue(&self, service: &str, days: i64) -> Result<TlsFiles, String> {
        let files = TlsFiles {
            ca: self.ca_file(),
            cert: self.dir.join(format!("{service}.pem")),
            key: self.dir.join(format!("{service}.key")),
        };
        self.issue_to(service, days, &files)?;
        Ok(files)
    }

    /// Issues a certificate for `service` into `files.cert` and `files.key`.
    pub fn issue_to(&self, service: &str, days: i64, files: &TlsFiles) -> Result<(), String> {
        let identity = ServiceIdentity::new(&self.namespace, service)?;
        let mut params = CertificateParams::new(vec![service.to_owned(), "localhost".to_owned()])
            .map_err(err("certificate"))?;
        params.subject_alt_names.push(SanType::URI(
            identity.uri().try_into().map_err(err("SPIFFE ID"))?,
        ));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, identity.uri());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(days.max(1));
        let key = KeyPair::generate().map_err(err("key"))?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(err("certificate"))?;
        // the key first: a reader between the two renames sees a pair that does not match and
        // keeps the previous one (the next poll picks up both)
        write(&files.key, &key.serialize_pem(), true)?;
        write(&files.cert, &cert.pem(), false)
    }
}
