//! Why a consumer's handler failed: the text its message is retried and dead-lettered with.

/// Why a handler failed. Every failure is retried until the delivery limit; then the message is
/// dead-lettered with this text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// `error` and its whole source chain, on one line (what the log and the dead letter keep).
    pub fn with_sources(error: impl std::error::Error) -> HandlerError {
        let mut text = error.to_string();
        let mut next = error.source();
        while let Some(source) = next {
            text.push_str(": ");
            text.push_str(&source.to_string());
            next = source.source();
        }
        HandlerError(text)
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError(format!("database: {e}"))
    }
}

impl From<crate::PayloadError> for HandlerError {
    fn from(e: crate::PayloadError) -> Self {
        HandlerError(e.to_string())
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        HandlerError(format!("payload: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::HandlerError;

    #[derive(Debug, thiserror::Error)]
    #[error("commit failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_handler_error_keeps_the_whole_source_chain() {
        let error = Outer(std::io::Error::other("connection reset"));
        assert_eq!(
            HandlerError::with_sources(error).0,
            "commit failed: connection reset"
        );
        let alone = std::io::Error::other("no source");
        assert_eq!(HandlerError::with_sources(alone).0, "no source");
    }
}
