//! sqlx errors mapped to client errors in one place.

use crate::{Error, Kind};

/// Named database constraints and the client error each violation means, e.g.
/// `("orders_tenant_idempotency_key_key", Error::conflict(...))`.
pub type ConstraintMap<'a> = &'a [(&'a str, fn() -> Error)];

/// Seconds a client is told to wait before retrying when the database is unavailable.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 1;

/// Whether a SQLSTATE means the connection or the server went away, so the same request can
/// succeed on another connection: class 08 (connection exception), 57P01 (terminated by an
/// administrator), 57P02 (crash shutdown), 57P03 (cannot connect now), 53300 (too many
/// connections) and 25006 (read-only transaction: a failover in progress).
pub fn is_connection_loss(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300" | "25006")
}

fn database_unavailable() -> Error {
    Error::new(
        Kind::Unavailable,
        "database.unavailable",
        "the database is unavailable, retry later",
    )
    .with_retry_after(DATABASE_RETRY_AFTER_SECS)
}

impl Error {
    /// Maps a sqlx error: a named constraint from `constraints` becomes its client error; another
    /// unique violation is 409 `resource.conflict`; a check violation 422; no row 404; pool
    /// exhaustion, a lost or terminated connection and a server that refuses connections 503
    /// `database.unavailable` with `Retry-After`; anything else 500. SQL text never reaches the
    /// client.
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
                let code = db.code();
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
                    None if matches!(code.as_deref(), Some("40001" | "40P01")) => {
                        // serialization failure / deadlock: safe to retry
                        Error::new(
                            Kind::Unavailable,
                            "service.retry",
                            "a concurrent update conflicted, retry",
                        )
                    }
                    None if code.as_deref().is_some_and(is_connection_loss) => {
                        database_unavailable()
                    }
                    None => Error::new(
                        Kind::Internal,
                        Kind::Internal.default_code(),
                        "internal error",
                    ),
                }
            }
            // the pool is exhausted or closed, or the connection broke mid-conversation (a
            // terminated session answers its next use with an I/O or protocol error)
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => database_unavailable(),
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

#[cfg(test)]
mod tests {
    use super::is_connection_loss;

    #[test]
    fn connection_loss_sqlstates() {
        for code in [
            "08000", "08003", "08006", "57P01", "57P02", "57P03", "53300", "25006",
        ] {
            assert!(is_connection_loss(code), "{code}");
        }
        for code in ["23505", "40001", "42601", "57014", "XX000"] {
            assert!(!is_connection_loss(code), "{code}");
        }
    }
}
