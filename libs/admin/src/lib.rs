//! What every service's admin API (`/admin/v1`) shares, owned once: the audit log ([`audit`]), the
//! query helpers of admin routes ([`query`]: limit, cursor, tenant, reason), the admin error codes
//! ([`AdminCode`]) and the operator-action counter ([`Action`]). The routes live beside what they
//! act on: sagas in `longship-saga`, dead letters, outbox and audit in `longship-runtime`.

pub mod audit;
pub mod query;

pub use audit::{AuditPage, AuditRecord};
pub use query::{PageQuery, parse_cursor, parse_limit, parse_reason, parse_tenant};

use longship_telemetry::MetricFamily;

longship_errors::error_codes! {
    /// The admin API's own codes (the saga library's are in its `SagaCode`).
    pub enum AdminCode in "admin" {
        /// Unknown dead letter.
        DeadLetterNotFound = ("dead_letter.not_found", NotFound, "no dead letter with this id (for a tenant admin: in their tenant)"),
        /// The redrive failed in the handler.
        RedriveFailed = ("dead_letter.redrive_failed", FailedPrecondition, "the consumer failed to handle the event again; the dead letter stays, with the new error"),
        /// No consumer of that name in this service.
        ConsumerUnknown = ("dead_letter.consumer_unknown", FailedPrecondition, "the dead letter's consumer does not run in this service (any more): discard it or redrive it where it runs"),
    }
}

/// The library's tables (`admin_audit`), applied by the runtime to every service database.
pub static SCHEMA: longship_sql::Schema = longship_sql::Schema::new("admin", &MIGRATOR);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Operator actions through the admin API.
pub const ACTIONS: MetricFamily = MetricFamily::counter(
    "admin_actions_total",
    "State-changing admin API calls (retry, cancel, redrive, discard), by action and outcome (ok, not_found, conflict, invalid, error)",
);

/// The outcomes `admin_actions_total` counts.
pub const OUTCOMES: [&str; 5] = ["ok", "not_found", "conflict", "invalid", "error"];

/// One kind of operator action, as audited and counted (e.g. `saga.retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action(pub &'static str);

impl Action {
    /// Retry a saga now.
    pub const SAGA_RETRY: Action = Action("saga.retry");
    /// Cancel a saga.
    pub const SAGA_CANCEL: Action = Action("saga.cancel");
    /// Redrive a dead letter.
    pub const DEAD_LETTER_REDRIVE: Action = Action("dead_letter.redrive");
    /// Discard a dead letter.
    pub const DEAD_LETTER_DISCARD: Action = Action("dead_letter.discard");

    /// Describes `admin_actions_total` and creates this action's series at zero, one per outcome.
    pub fn register(self) {
        longship_telemetry::describe(&[ACTIONS]);
        for outcome in OUTCOMES {
            ACTIONS.zero(&[
                ("action", self.0.to_owned()),
                ("outcome", outcome.to_owned()),
            ]);
        }
    }

    /// Counts one call of this action by how it ended, and hands the result back.
    pub fn outcome<T>(
        self,
        result: Result<T, longship_errors::Error>,
    ) -> Result<T, longship_errors::Error> {
        use longship_errors::Kind;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => match e.kind() {
                Kind::NotFound => "not_found",
                Kind::Conflict | Kind::FailedPrecondition => "conflict",
                Kind::BadRequest | Kind::Validation => "invalid",
                _ => "error",
            },
        };
        metrics::counter!(ACTIONS.name, "action" => self.0, "outcome" => outcome).increment(1);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_codes_are_in_the_catalogue() {
        let catalogue = include_str!("../../../docs/errors.md");
        if let Err(e) = longship_errors::check_catalogue::<AdminCode>(catalogue) {
            panic!("{e}");
        }
    }
}
