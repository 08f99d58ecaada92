//! `GRPC_MTLS`, `TLS_CA_FILE`, `TLS_CERT_FILE`, `TLS_KEY_FILE`, `TLS_RELOAD_INTERVAL_SECS`: the
//! service identity of the gRPC plane (longship-identity), read and checked at start-up.

use std::path::PathBuf;

use longship_identity::{Mtls, MtlsConfig, TlsFiles};

use crate::{ConfigError, Env};

/// Reads the mTLS settings: `None` only when `GRPC_MTLS=off` is set explicitly. With mTLS on (the
/// default) the three files must exist and load (a certificate with a Longship SPIFFE ID, its key,
/// a CA bundle), checked here so a bad deployment stops at start-up naming the variable.
pub fn mtls(env: &Env) -> Result<Option<MtlsConfig>, ConfigError> {
    if !env.bool_or("GRPC_MTLS", true)? {
        return Ok(None);
    }
    let file = |key: &str| {
        env.get(key).map(PathBuf::from).ok_or_else(|| ConfigError {
            variable: key.into(),
            value: String::new(),
            reason: "required while GRPC_MTLS=on (the default): the platform CA bundle, this \
                     service's certificate and its key (`just certs` creates development ones); \
                     GRPC_MTLS=off runs the gRPC plane without service identity, never in production"
                .into(),
        })
    };
    let config = MtlsConfig {
        files: TlsFiles {
            ca: file("TLS_CA_FILE")?,
            cert: file("TLS_CERT_FILE")?,
            key: file("TLS_KEY_FILE")?,
        },
        reload_interval: env.secs_or("TLS_RELOAD_INTERVAL_SECS", 5, 1, 3600)?,
    };
    Mtls::load(&config).map_err(|reason| ConfigError {
        variable: reason
            .split_whitespace()
            .next()
            .unwrap_or("TLS_CERT_FILE")
            .to_owned(),
        value: String::new(),
        reason,
    })?;
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtls_is_on_unless_turned_off_and_needs_its_files() {
        let err = mtls(&Env::from_pairs([("X", "1")])).expect_err("files required");
        assert_eq!(err.variable, "TLS_CA_FILE");
        assert!(err.reason.contains("GRPC_MTLS=off"), "{err}");
        assert_eq!(
            mtls(&Env::from_pairs([("GRPC_MTLS", "off")])).ok(),
            Some(None)
        );
        let err = mtls(&Env::from_pairs([("GRPC_MTLS", "maybe")])).expect_err("bad switch");
        assert_eq!(err.variable, "GRPC_MTLS");
        let err = mtls(&Env::from_pairs([
            ("TLS_CA_FILE", "/nonexistent/ca.pem"),
            ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
            ("TLS_KEY_FILE", "/nonexistent/key.pem"),
        ]))
        .expect_err("missing files");
        assert_eq!(err.variable, "TLS_CA_FILE");
        assert!(err.reason.contains("/nonexistent/ca.pem"), "{err}");
    }
}
