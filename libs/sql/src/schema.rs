//! The schema a library owns: its migrations, applied with a migrations table of its own, so a
//! library's tables are created once by the library (not copied into every service's migrations)
//! and its versions never collide with a service's or another library's.

use sqlx::PgConnection;
use sqlx::migrate::{MigrateError, Migrator};

/// A library's (or the platform's) schema: a name and its embedded migrations.
#[derive(Debug)]
pub struct Schema {
    name: &'static str,
    migrator: &'static Migrator,
}

impl Schema {
    /// The schema `name` (lower-case, e.g. `messaging`) made of `migrator`'s migrations
    /// (`sqlx::migrate!("./migrations")` in the library).
    pub const fn new(name: &'static str, migrator: &'static Migrator) -> Schema {
        Schema { name, migrator }
    }

    /// The schema's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The table recording which of its migrations a database has applied.
    pub fn migrations_table(&self) -> String {
        format!("_longship_{}_migrations", self.name)
    }

    /// Applies the migrations the database does not have yet (idempotent; safe from several
    /// replicas at once: sqlx takes an advisory lock).
    pub async fn apply(&self, conn: &mut PgConnection) -> Result<(), MigrateError> {
        let mut migrator = Migrator::with_migrations(self.migrator.migrations.to_vec());
        migrator.dangerous_set_table_name(self.migrations_table());
        migrator.run(conn).await
    }
}

/// Applies `schemas` in order (each library's before the service's own migrations, which may
/// refer to them).
pub async fn apply_all(conn: &mut PgConnection, schemas: &[&Schema]) -> Result<(), MigrateError> {
    for schema in schemas {
        schema.apply(conn).await?;
    }
    Ok(())
}
