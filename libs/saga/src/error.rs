//! The engine's errors.

/// Why the engine could not start or record a saga.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The saga data could not be (de)serialised.
    #[error("saga data: {0}")]
    Data(#[from] serde_json::Error),
    /// Another worker owns the saga now (our claim was taken over, or an operator acted on it).
    #[error("claim lost")]
    LeaseLost,
    /// A definition set that cannot run: no version, versions of different types, a version twice,
    /// or a saga without steps.
    #[error("saga definitions: {0}")]
    Definition(String),
}
