//! sqlx errors mapped to client errors in one place.

use crate::{Error, Kind};

/// Named database constraints and the client error each violation means, e.g.
/// `("orders_tenant_idempotency_key_key", Error::conflict(...))`.
pub type ConstraintMap<'a> = &'a [(&'a str, fn() -> Error)];

impl Error {
    /// Maps a sqlx error: a named constraint from `constraints` becomes its client error; another
    /// unique violation is 409 `resource.conflict`; a check violation 422; no row 404; pool exhaustion
    /// or a lost connection 503; anything else 500. SQL text never reaches the client.
    pub fn from_sqlx(err: sqlx::Error, constraints: ConstraintMap<'_>) -> Error {
        let mapped = match &err {
            sqlx::Error::RowNotFound => {
                Error::not_found(Kind::NotFound.default_code(), "resource not found")
            }
            sqlx::Error::Database(db) => {
                let named = db
                    .constraint()
                    .and_then(|name| constraints.iter().find(|(c, _)| *c == name))
                    .map(|(_, make)| make());
                match named {
                    Some(e) => e,
                    None if db.is_unique_violation() => Error::conflict(
                        Kind::Conflict.default_code(),
                        "the resource already exists",
                    ),
                    None if db.is_check_violation() || db.is_foreign_key_violation() => {
                        Error::unprocessable(
                            "request.constraint_violated",
                            "the request violates a data rule",
                        )
                    }
                    None if db.code().as_deref() == Some("40001")
                        || db.code().as_deref() == Some("40P01") =>
                    {
                        // serialization failure / deadlock: safe to retry
                        Error::new(
                            Kind::Unavailable,
                            "service.retry",
                            "a concurrent update conflicted, retry",
                        )
                    }
                    None => Error::new(
                        Kind::Internal,
                        Kind::Internal.default_code(),
                        "internal error",
                    ),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::new(
                Kind::Unavailable,
                "database.unavailable",
                "the database is unavailable, retry later",
            ),
            _ => Error::new(
                Kind::Internal,
                Kind::Internal.default_code(),
                "internal error",
            ),
        };
        mapped.with_source(err)
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::from_sqlx(err, &[])
    }
}
