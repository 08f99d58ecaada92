//! JWT verification keys: the configured HS256 secret or PEM public key (for tokens without a
//! `kid`) and JWKS keys chosen by `kid` (from a file and a URL), each with the one algorithm it
//! allows. Choosing the key and checking the header (`alg`, `crit`) happens here, before any
//! signature is checked.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use longship_errors::Error;

/// One verification key and the only algorithm a token verified with it may name.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) key: DecodingKey,
    pub(crate) algorithm: Algorithm,
}

/// Keys by `kid`, as read from one JWKS document.
pub(crate) type KidKeys = HashMap<String, VerifyKey>;

/// Every key the verifier accepts at one moment: swapped whole when a JWKS source is reloaded.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    /// The configured secret or public key: verifies tokens that carry no `kid`.
    pub(crate) unnamed: Option<VerifyKey>,
    /// Keys from `AUTH_JWKS_FILE`.
    pub(crate) file: Arc<KidKeys>,
    /// Keys from `AUTH_JWKS_URL`.
    pub(crate) url: Arc<KidKeys>,
}

/// Why a token's header was refused before its signature was checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderRefusal {
    /// Not a JWT header (or `alg` names no known algorithm, e.g. `none`).
    Malformed,
    /// `crit` lists an extension this verifier does not implement (RFC 7515 4.1.11: reject).
    Critical,
    /// `kid` names no key we hold.
    UnknownKey,
    /// No `kid` and no configured key for tokens without one.
    NoKey,
    /// `alg` is not the algorithm the chosen key allows.
    Algorithm,
}

impl HeaderRefusal {
    /// The 401 answered for this refusal (stable codes, no detail about our keys).
    pub(crate) fn error(&self) -> Error {
        let (code, message) = match self {
            HeaderRefusal::Malformed | HeaderRefusal::NoKey => (
                "auth.invalid_token",
                "the bearer token is invalid or expired",
            ),
            HeaderRefusal::Critical => (
                "auth.critical_header",
                "the token's crit header lists an extension this service does not support",
            ),
            HeaderRefusal::UnknownKey => (
                "auth.unknown_key",
                "the token's kid names no current verification key",
            ),
            HeaderRefusal::Algorithm => (
                "auth.algorithm_not_allowed",
                "the token's alg is not the algorithm of its verification key",
            ),
        };
        Error::unauthenticated(code, message)
    }
}

impl KeySet {
    /// Whether any key can verify a token.
    pub(crate) fn is_empty(&self) -> bool {
        self.unnamed.is_none() && self.file.is_empty() && self.url.is_empty()
    }

    /// The key that must verify a token with `header`: by `kid` (the URL's keys first, then the
    /// file's), else the configured key; its algorithm must be the header's `alg`.
    pub(crate) fn choose(&self, header: &Header) -> Result<&VerifyKey, HeaderRefusal> {
        if header.crit.is_some() {
            // no extension is implemented here, so every listed one is unknown (an empty list is
            // itself invalid per RFC 7515)
            return Err(HeaderRefusal::Critical);
        }
        let key = match header.kid.as_deref() {
            Some(kid) => self
                .url
                .get(kid)
                .or_else(|| self.file.get(kid))
                .ok_or(HeaderRefusal::UnknownKey)?,
            None => self.unnamed.as_ref().ok_or(HeaderRefusal::NoKey)?,
        };
        if key.algorithm != header.alg {
            return Err(HeaderRefusal::Algorithm);
        }
        Ok(key)
    }
}

/// Parses a JWKS document (`{"keys":[...]}`). Keys for encryption, without a `kid`, or of a type
/// other than RSA (RS256) and EC P-256 (ES256) are skipped with a warning; a document that is not
/// JSON, has no `keys` array or repeats a `kid` is an error (the previous keys stay in force).
pub(crate) fn parse_jwks(text: &str) -> Result<KidKeys, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = KidKeys::new();
    for value in document.keys {
        let Some((kid, key)) = usable_key(value) else {
            continue;
        };
        if keys.insert(kid.clone(), key).is_some() {
            return Err(format!("the JWKS document repeats kid {kid:?}"));
        }
    }
    Ok(keys)
}

fn usable_key(value: serde_json::Value) -> Option<(String, VerifyKey)> {
    let jwk: Jwk = match serde_json::from_value(value) {
        Ok(jwk) => jwk,
        Err(e) => {
            tracing::warn!(error = %e, "JWKS key ignored: not a key this service reads");
            return None;
        }
    };
    let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else {
        tracing::warn!("JWKS key ignored: it has no kid");
        return None;
    };
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => {
            tracing::warn!(%kid, "JWKS key ignored: only RSA (RS256) and EC P-256 (ES256) keys are used");
            return None;
        }
    };
    match DecodingKey::from_jwk(&jwk) {
        Ok(key) => Some((kid, VerifyKey { key, algorithm })),
        Err(e) => {
            tracing::warn!(%kid, error = %e, "JWKS key ignored: unusable");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public half of the test RSA key as a JWK with kid `r1`.
    fn rsa_jwk() -> String {
        let pem = include_str!("../tests/it/fixtures/rsa_private.pem");
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some("r1".into());
        serde_json::to_string(&jwk).expect("json")
    }

    #[test]
    fn a_jwks_keeps_rsa_and_p256_keys_by_kid_and_skips_the_rest() {
        let rsa = rsa_jwk();
        let doc = format!(
            r#"{{"keys":[{rsa},{{"kty":"oct","kid":"s","k":"c2VjcmV0"}},{{"kty":"RSA","n":"AQAB","e":"AQAB"}},{{"kty":"weird","kid":"w"}}]}}"#
        );
        let keys = parse_jwks(&doc).expect("parsed");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.get("r1").map(|k| k.algorithm), Some(Algorithm::RS256));
    }

    #[test]
    fn a_broken_document_or_a_repeated_kid_is_an_error() {
        let rsa = rsa_jwk();
        assert!(parse_jwks("nope").is_err());
        assert!(parse_jwks(r#"{"no_keys":[]}"#).is_err());
        assert!(parse_jwks(&format!(r#"{{"keys":[{rsa},{rsa}]}}"#)).is_err());
    }

    #[test]
    fn the_header_chooses_the_key_and_must_name_its_algorithm() {
        let keys = parse_jwks(&format!(r#"{{"keys":[{}]}}"#, rsa_jwk())).expect("parsed");
        let set = KeySet {
            unnamed: Some(VerifyKey {
                key: DecodingKey::from_secret(b"0123456789abcdef"),
                algorithm: Algorithm::HS256,
            }),
            file: Arc::new(keys),
            url: Arc::default(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("r1".into());
        assert!(set.choose(&header).is_ok());
        header.alg = Algorithm::HS256;
        assert_eq!(set.choose(&header).err(), Some(HeaderRefusal::Algorithm));
        header.kid = Some("gone".into());
        assert_eq!(set.choose(&header).err(), Some(HeaderRefusal::UnknownKey));
        header.kid = None;
        assert!(set.choose(&header).is_ok());
        header.crit = Some(vec!["b64".into()]);
        assert_eq!(set.choose(&header).err(), Some(HeaderRefusal::Critical));
    }
}
