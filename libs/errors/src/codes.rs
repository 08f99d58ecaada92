//! Public error codes as closed enums: each crate declares the codes it can answer with
//! [`error_codes!`] (code string, [`Kind`], meaning), builds errors from them with
//! [`Error::coded`], and checks `docs/errors.md` against them ([`check_catalogue`]), so the code and
//! the catalogue a client reads cannot disagree.

use std::borrow::Cow;

use crate::{Error, Kind};

/// One crate's closed set of public error codes.
pub trait ErrorCode: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// The heading of the section of `docs/errors.md` that lists these codes.
    const CATALOGUE: &'static str;

    /// Every code of the set, in catalogue order.
    fn all() -> &'static [Self];

    /// The stable code string, e.g. `order.not_found`.
    fn as_str(self) -> &'static str;

    /// Its kind: the HTTP status and the gRPC code it is answered with.
    fn kind(self) -> Kind;

    /// What it means, in one line.
    fn meaning(self) -> &'static str;

    /// The code of this set that `code` names.
    fn parse(code: &str) -> Option<Self> {
        Self::all().iter().copied().find(|c| c.as_str() == code)
    }
}

/// Declares a closed enum of error codes and implements [`ErrorCode`] for it, from a table:
///
/// ```
/// longship_errors::error_codes! {
///     /// The order service's codes.
///     pub enum OrderCode in "order" {
///         /// No such order.
///         NotFound = ("order.not_found", NotFound, "no order with this id for this tenant"),
///     }
/// }
/// use longship_errors::ErrorCode;
/// assert_eq!(OrderCode::NotFound.as_str(), "order.not_found");
/// ```
///
/// or from the catalogue: `pub enum OrderCode in "order" from "../../docs/errors.md"` reads the
/// table of section `## order` of that file (relative to the crate's `Cargo.toml`) at build time,
/// each row `| code | HTTP | gRPC | meaning |` a variant named after the code's last segment
/// (`order.not_found`: `NotFound`) whose [`Kind`] answers that HTTP status and gRPC code.
#[macro_export]
macro_rules! error_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $section:literal from $catalogue:literal
    ) => {
        $crate::__codes_from_catalogue! {
            $crate; $(#[$meta])* $vis enum $name in $section from $catalogue
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $section:literal {
            $( $(#[$vmeta:meta])* $variant:ident = ($code:literal, $kind:ident, $meaning:literal), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $crate::ErrorCode for $name {
            const CATALOGUE: &'static str = $section;

            fn all() -> &'static [Self] {
                &[ $( $name::$variant, )+ ]
            }

            fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $code, )+ }
            }

            fn kind(self) -> $crate::Kind {
                match self { $( $name::$variant => $crate::Kind::$kind, )+ }
            }

            fn meaning(self) -> &'static str {
                match self { $( $name::$variant => $meaning, )+ }
            }
        }
    };
}

impl Error {
    /// An error of a typed `code` with a public `message` (the code fixes the kind).
    pub fn coded(code: impl ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(code.kind(), code.as_str(), message)
    }

    /// An error of a typed `code` whose message is the code's meaning.
    pub fn from_code(code: impl ErrorCode) -> Error {
        Error::new(code.kind(), code.as_str(), code.meaning())
    }
}

/// The gRPC code's name as the gRPC specification spells it.
fn grpc_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The catalogue section of `C` as `docs/errors.md` writes it: a heading and a table of code,
/// HTTP status, gRPC code and meaning.
pub fn catalogue_section<C: ErrorCode>() -> String {
    let mut out = format!(
        "## {}\n\n| code | HTTP | gRPC | meaning |\n|---|---|---|---|\n",
        C::CATALOGUE
    );
    for code in C::all() {
        let kind = code.kind();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            code.as_str(),
            kind.http_status().as_u16(),
            grpc_name(kind.grpc_code()),
            code.meaning()
        ));
    }
    out
}

/// Checks that `doc` (the text of `docs/errors.md`) lists exactly `C`'s codes, as
/// [`catalogue_section`] writes them; the error shows the section as it should read.
pub fn check_catalogue<C: ErrorCode>(doc: &str) -> Result<(), String> {
    let expected = catalogue_section::<C>();
    let heading = format!("## {}\n", C::CATALOGUE);
    let found = doc.find(&heading).map(|start| {
        let rest = &doc[start + heading.len()..];
        let end = rest.find("\n## ").map_or(rest.len(), |e| e + 1);
        format!("{heading}{}", &rest[..end])
    });
    let normal = |s: &str| {
        s.trim()
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
    };
    match found {
        Some(section) if normal(&section) == normal(&expected) => Ok(()),
        Some(section) => Err(format!(
            "docs/errors.md section `{}` disagrees with the code; it should read:\n\n{expected}\nit reads:\n\n{section}",
            C::CATALOGUE
        )),
        None => Err(format!(
            "docs/errors.md has no section `{}`; add:\n\n{expected}",
            C::CATALOGUE
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::error_codes! {
        /// Codes of a test.
        enum TestCode in "test" {
            /// One.
            Missing = ("test.missing", NotFound, "no such thing"),
            /// Two.
            Busy = ("test.busy", Unavailable, "try again later"),
        }
    }

    crate::error_codes! {
        /// One code of every kind, from a catalogue.
        enum EveryKind in "every kind" from "tests/every-kind.md"
    }

    #[test]
    fn the_catalogue_form_reads_a_section_and_every_kind() {
        let doc = include_str!("../tests/every-kind.md");
        assert_eq!(check_catalogue::<EveryKind>(doc), Ok(()));
        assert_eq!(EveryKind::all().len(), 13);
        assert_eq!(EveryKind::NotFound.as_str(), "fixture.not_found");
        assert_eq!(EveryKind::Conflict.kind(), Kind::Conflict);
        assert_eq!(
            EveryKind::FailedPrecondition.kind(),
            Kind::FailedPrecondition
        );
        assert_eq!(
            EveryKind::Validation.meaning(),
            "invalid fields; `errors` lists each"
        );
        // every kind is in the fixture (a new kind fails to compile here until it is added)
        let listed = |kind: Kind| match kind {
            Kind::BadRequest
            | Kind::Unauthenticated
            | Kind::PermissionDenied
            | Kind::NotFound
            | Kind::Conflict
            | Kind::FailedPrecondition
            | Kind::PayloadTooLarge
            | Kind::UnsupportedMediaType
            | Kind::Validation
            | Kind::TooManyRequests
            | Kind::Unavailable
            | Kind::Timeout
            | Kind::Internal => EveryKind::all().iter().any(|c| c.kind() == kind),
        };
        assert!(EveryKind::all().iter().all(|c| listed(c.kind())));
        let kinds: std::collections::HashSet<Kind> =
            EveryKind::all().iter().map(|c| c.kind()).collect();
        assert_eq!(kinds.len(), 13);
    }

    #[test]
    fn codes_know_their_kind_and_parse_back() {
        assert_eq!(TestCode::parse("test.busy"), Some(TestCode::Busy));
        assert_eq!(TestCode::parse("test.other"), None);
        let err = Error::coded(TestCode::Missing, "gone");
        assert_eq!(
            (err.kind(), err.code(), err.message()),
            (Kind::NotFound, "test.missing", "gone")
        );
        assert_eq!(
            Error::from_code(TestCode::Busy).message(),
            "try again later"
        );
    }

    #[test]
    fn the_catalogue_check_finds_every_disagreement() {
        let section = catalogue_section::<TestCode>();
        assert!(section.contains("| `test.busy` | 503 | UNAVAILABLE | try again later |"));
        let doc = format!("# Errors\n\n{section}\n## other\n\n| x |\n");
        assert_eq!(check_catalogue::<TestCode>(&doc), Ok(()));
        let stale = doc.replace("try again later", "later");
        assert!(check_catalogue::<TestCode>(&stale).is_err());
        let missing = doc.replace("| `test.missing` | 404 | NOT_FOUND | no such thing |\n", "");
        assert!(check_catalogue::<TestCode>(&missing).is_err());
        assert!(check_catalogue::<TestCode>("# Errors\n").is_err());
    }
}
