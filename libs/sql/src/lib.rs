//! SQL plumbing the libraries share: statements composed from parts that several libraries
//! contribute, with bind positions numbered by a builder instead of by hand ([`Binds`]), and the
//! schema each library owns ([`Schema`]).
//!
//! A statement that writes a business row, its outbox event and its saga row at once (one round
//! trip) has parameters from three places. [`Binds`] numbers them in the order they are pushed:
//!
//! ```
//! use longship_sql::Binds;
//! let mut binds = Binds::new();
//! let sql = format!(
//!     "UPDATE orders SET status = {} WHERE id = {}",
//!     binds.push("CONFIRMED"),
//!     binds.push(7_i64)
//! );
//! assert_eq!(sql, "UPDATE orders SET status = $1 WHERE id = $2");
//! let _query = binds.query(sql)?; // then .execute(conn), .fetch_optional(conn), ...
//! # Ok::<(), sqlx::Error>(())
//! ```
//!
//! Placeholders are numbered when pushed, so build the SQL text in the order the values are
//! pushed (`format!` evaluates its arguments left to right). The rows of a set-based statement bind
//! as one array per column, read back by `unnest` ([`Binds::unnest`] over [`Columns`]).

mod columns;
mod schema;

pub use columns::Columns;
pub use schema::{Schema, apply_all};

use std::fmt;

use sqlx::Arguments;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgQueryResult, Postgres};

/// The parameters of one statement being composed.
#[derive(Default)]
pub struct Binds {
    args: PgArguments,
    count: usize,
    error: Option<BoxDynError>,
}

impl fmt::Debug for Binds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binds").field("count", &self.count).finish()
    }
}

/// The placeholder of one bound value (`$n`), to put into the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder(usize);

impl Placeholder {
    /// The parameter's 1-based position.
    pub fn position(self) -> usize {
        self.0
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0)
    }
}

impl Binds {
    /// No parameters yet.
    pub fn new() -> Binds {
        Binds::default()
    }

    /// Binds `value` as the next parameter and returns its placeholder. A value that cannot be
    /// encoded makes the statement fail when it runs (with that error), like sqlx's own `bind`.
    pub fn push<'q, T>(&mut self, value: T) -> Placeholder
    where
        T: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + 'q,
    {
        self.count += 1;
        if let Err(e) = self.args.add(value)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        Placeholder(self.count)
    }

    /// How many parameters are bound.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is bound yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The statement `sql` with these parameters, ready to execute (a prepared statement cached by
    /// its text, like any sqlx query); the first value that could not be encoded, if any, as
    /// [`sqlx::Error::Encode`].
    pub fn query(
        self,
        sql: impl Into<String>,
    ) -> Result<sqlx::query::Query<'static, Postgres, PgArguments>, sqlx::Error> {
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok(sqlx::query_with(sqlx::AssertSqlSafe(sql.into()), self.args)),
        }
    }

    /// Runs the statement `sql` with these parameters on `conn` ([`Binds::query`], executed): a
    /// value that could not be encoded fails it as [`sqlx::Error::Encode`] before it is sent.
    pub async fn execute<'c, E>(
        self,
        sql: impl Into<String>,
        conn: E,
    ) -> Result<PgQueryResult, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        self.query(sql)?.execute(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_push_order() {
        let mut binds = Binds::new();
        assert!(binds.is_empty());
        let a = binds.push(1_i32);
        let b = binds.push("x");
        let c = binds.push(Some(2.5_f64));
        assert_eq!(
            (a.to_string(), b.to_string(), c.to_string()),
            ("$1".into(), "$2".into(), "$3".into())
        );
        assert_eq!((binds.len(), c.position()), (3, 3));
    }
}
