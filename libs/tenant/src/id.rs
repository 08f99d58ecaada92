//! The tenant id type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A tenant id: `[a-z0-9][a-z0-9-]{0,62}`. Holding one means it was validated.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant id must match [a-z0-9][a-z0-9-]{{0,62}}")]
pub struct InvalidTenantId;

impl TenantId {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<TenantId, InvalidTenantId> {
        let bytes = raw.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if valid {
            Ok(TenantId(raw.to_owned()))
        } else {
            Err(InvalidTenantId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TenantId::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_valid_ids() {
        for ok in ["a", "acme", "acme-eu-1", "0", "9lives", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "",
            "-acme",
            "Acme",
            "acme_eu",
            "acme eu",
            "acme;drop",
            "ацме",
            "a/b",
            &"a".repeat(64),
            "acme\n",
        ] {
            assert_eq!(TenantId::parse(bad), Err(InvalidTenantId), "{bad:?}");
        }
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<TenantId>("\"acme\"").is_ok());
        assert!(serde_json::from_str::<TenantId>("\"ACME\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_the_pattern(s in "\\PC{0,80}") {
            let ok = TenantId::parse(&s).is_ok();
            let expected = !s.is_empty() && s.len() <= 63
                && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert_eq!(ok, expected);
        }

        #[test]
        fn generated_valid_ids_are_accepted(s in "[a-z0-9][a-z0-9-]{0,62}") {
            prop_assert!(TenantId::parse(&s).is_ok());
        }
    }
}
