//! The identity a certificate carries: the SPIFFE URI SAN `spiffe://longship/<namespace>/<service>`.

use std::fmt;

use x509_cert::der::Decode;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// The trust domain of every Longship identity.
pub const TRUST_DOMAIN: &str = "longship";

/// A workload's identity: the service and the namespace (environment) it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceIdentity {
    namespace: String,
    service: String,
}

fn valid_segment(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

impl ServiceIdentity {
    /// `service` in `namespace`; both `[a-z0-9-]{1,63}`, not starting with a dash.
    pub fn new(namespace: &str, service: &str) -> Result<ServiceIdentity, String> {
        if !valid_segment(namespace) || !valid_segment(service) {
            return Err(format!(
                "namespace {namespace:?} and service {service:?} must match [a-z0-9][a-z0-9-]{{0,62}}"
            ));
        }
        Ok(ServiceIdentity {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
        })
    }

    /// Parses `spiffe://longship/<namespace>/<service>`; anything else is `None`.
    pub fn parse_uri(uri: &str) -> Option<ServiceIdentity> {
        let rest = uri.strip_prefix("spiffe://")?;
        let mut parts = rest.split('/');
        let (domain, namespace, service) = (parts.next()?, parts.next()?, parts.next()?);
        if domain != TRUST_DOMAIN || parts.next().is_some() {
            return None;
        }
        ServiceIdentity::new(namespace, service).ok()
    }

    /// The SPIFFE ID.
    pub fn uri(&self) -> String {
        format!(
            "spiffe://{TRUST_DOMAIN}/{}/{}",
            self.namespace, self.service
        )
    }

    /// The service name (e.g. `order`).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The identity of a DER certificate: its (single) Longship SPIFFE URI SAN.
    pub fn of_certificate(der: &[u8]) -> Result<ServiceIdentity, String> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut found = Vec::new();
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id != SubjectAltName::OID {
                continue;
            }
            let names = SubjectAltName::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("unreadable subjectAltName: {e}"))?;
            for name in names.0 {
                if let GeneralName::UniformResourceIdentifier(uri) = name
                    && let Some(id) = ServiceIdentity::parse_uri(uri.as_str())
                {
                    found.push(id);
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(format!(
                "the certificate has no URI SAN spiffe://{TRUST_DOMAIN}/<namespace>/<service>"
            )),
            _ => Err("the certificate has more than one Longship identity".into()),
        }
    }
}

impl fmt::Display for ServiceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_parse_only_in_the_longship_trust_domain() {
        let id = ServiceIdentity::parse_uri("spiffe://longship/prod/order").expect("id");
        assert_eq!((id.namespace(), id.service()), ("prod", "order"));
        assert_eq!(id.uri(), "spiffe://longship/prod/order");
        for bad in [
            "spiffe://other/prod/order",
            "spiffe://longship/prod",
            "spiffe://longship/prod/order/x",
            "spiffe://longship/Prod/order",
            "https://longship/prod/order",
            "spiffe://longship//order",
        ] {
            assert_eq!(ServiceIdentity::parse_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_identity_is_read_from_the_uri_san() {
        let mut params = rcgen::CertificateParams::new(vec!["order".to_owned()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("spiffe://longship/dev/order").expect("uri"),
        ));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let id = ServiceIdentity::of_certificate(cert.der()).expect("identity");
        assert_eq!(id.uri(), "spiffe://longship/dev/order");

        let plain = rcgen::CertificateParams::new(vec!["order".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert!(ServiceIdentity::of_certificate(plain.der()).is_err());
        assert!(ServiceIdentity::of_certificate(b"junk").is_err());
    }
}
