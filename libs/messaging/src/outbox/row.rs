//! Writing events to the outbox in the caller's transaction: [`enqueue`] on its own, or
//! [`OutboxRow`] as part of a statement of the caller's own (no round trip of its own).

use longship_sql::Binds;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::NewEvent;

/// Largest event payload the outbox accepts (the envelope must stay under NATS' 1 MiB limit).
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;

/// The head of every insert into the outbox: its columns, in the order rows bind them.
pub(crate) const OUTBOX_INSERT: &str =
    "INSERT INTO outbox (id, tenant_id, event_type, schema_version, payload, traceparent)";

/// Why an event cannot go to the outbox (nothing is written).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The type is not `<service>.v<N>.<event>`: the relay could never publish it, and publishes
    /// in order, so it would hold back every later event.
    #[error("invalid event type {0:?} (expected <service>.v<N>.<event>)")]
    InvalidType(String),
    /// The payload is over [`MAX_PAYLOAD_BYTES`]: NATS would refuse the message.
    #[error("{event_type} payload of {bytes} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")]
    TooLarge {
        /// The event's type.
        event_type: String,
        /// The payload's size.
        bytes: usize,
    },
    /// The payload cannot be serialised as JSON.
    #[error("event payload: {0}")]
    Payload(#[from] serde_json::Error),
}

/// Why [`enqueue`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The event was refused before anything was written.
    #[error(transparent)]
    Invalid(#[from] OutboxError),
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Writes `event` to the outbox in the caller's transaction (it is published only if that
/// commits) and returns its id. The current span's trace context is stored with it.
pub async fn enqueue(conn: &mut PgConnection, event: &NewEvent) -> Result<Uuid, EnqueueError> {
    let row = OutboxRow::from_event(event.clone())?;
    let id = row.id;
    let mut binds = Binds::new();
    let sql = row.insert(&mut binds);
    binds.query(sql)?.execute(conn).await?;
    Ok(id)
}

/// An event checked and ready to be written to the outbox by a statement of the caller's own: the
/// `INSERT` of [`OutboxRow::insert`] used as a data-modifying CTE beside the state change it
/// belongs to, so the event costs no round trip of its own. Its parameters are bound in the
/// caller's [`Binds`], numbered where they fall:
///
/// ```no_run
/// # async fn f(conn: &mut sqlx::PgConnection, event: longship_messaging::OutboxRow) -> Result<(), sqlx::Error> {
/// use longship_sql::Binds;
/// let mut binds = Binds::new();
/// let sql = format!(
///     "WITH event AS ({}) UPDATE orders SET status = 'CONFIRMED' WHERE id = {}",
///     event.insert(&mut binds),
///     binds.push(uuid::Uuid::nil())
/// );
/// binds.query(sql)?.execute(conn).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The event id (UUID v7, also its `Nats-Msg-Id`).
    pub id: Uuid,
    tenant_id: String,
    event_type: String,
    schema_version: i32,
    payload: serde_json::Value,
    traceparent: Option<String>,
}

impl OutboxRow {
    /// The event of `event_type` for `tenant` with `payload` (schema version 1), checked as by
    /// [`OutboxRow::from_event`].
    pub fn new(
        event_type: &str,
        tenant: &longship_tenant::TenantId,
        payload: &impl serde::Serialize,
    ) -> Result<OutboxRow, OutboxError> {
        OutboxRow::from_event(NewEvent::new(event_type, tenant, payload)?)
    }

    /// Checks `event` (type and size) and captures the current trace context.
    pub fn from_event(event: NewEvent) -> Result<OutboxRow, OutboxError> {
        if !crate::envelope::valid_type(&event.event_type) {
            return Err(OutboxError::InvalidType(event.event_type));
        }
        let bytes = serde_json::to_vec(&event.data)?.len();
        if bytes > MAX_PAYLOAD_BYTES {
            return Err(OutboxError::TooLarge {
                event_type: event.event_type,
                bytes,
            });
        }
        Ok(OutboxRow {
            id: Uuid::now_v7(),
            tenant_id: event.tenant_id.as_str().to_owned(),
            event_type: event.event_type,
            schema_version: event.schema_version as i32,
            payload: event.data,
            traceparent: longship_telemetry::propagation::current_traceparent(),
        })
    }

    /// `INSERT INTO outbox (...) VALUES (...)` with the row's values bound in `binds`.
    pub fn insert(self, binds: &mut Binds) -> String {
        format!("{OUTBOX_INSERT} VALUES ({})", self.values(binds))
    }

    /// `INSERT INTO outbox (...) SELECT ... FROM source`: the row is written once for each row of
    /// `source` (a CTE of the same statement). With a CTE that inserts a row `ON CONFLICT DO
    /// NOTHING ... RETURNING`, the event is written only when that row was.
    pub fn insert_from(self, binds: &mut Binds, source: &str) -> String {
        format!(
            "{OUTBOX_INSERT} SELECT {} FROM {source}",
            self.values(binds)
        )
    }

    /// `INSERT INTO outbox (...) SELECT ... FROM unnest(...)`: every row of `rows` in one
    /// statement (a set-based command writes the events of many state changes at once). Six
    /// array parameters whatever the number of rows, so the statement text stays the same.
    pub fn insert_many(rows: Vec<OutboxRow>, binds: &mut Binds) -> String {
        let mut ids = Vec::with_capacity(rows.len());
        let mut tenants = Vec::with_capacity(rows.len());
        let mut types = Vec::with_capacity(rows.len());
        let mut versions = Vec::with_capacity(rows.len());
        let mut payloads = Vec::with_capacity(rows.len());
        let mut traceparents = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.id);
            tenants.push(row.tenant_id);
            types.push(row.event_type);
            versions.push(row.schema_version);
            payloads.push(row.payload);
            traceparents.push(row.traceparent);
        }
        format!(
            "{OUTBOX_INSERT} SELECT * FROM unnest({}::uuid[], {}::text[], {}::text[], {}::int[], {}::jsonb[], {}::text[])",
            binds.push(ids),
            binds.push(tenants),
            binds.push(types),
            binds.push(versions),
            binds.push(payloads),
            binds.push(traceparents),
        )
    }

    fn values(self, binds: &mut Binds) -> String {
        [
            binds.push(self.id),
            binds.push(self.tenant_id),
            binds.push(self.event_type),
            binds.push(self.schema_version),
            binds.push(self.payload),
            binds.push(self.traceparent),
        ]
        .map(|p| p.to_string())
        .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use longship_tenant::TenantId;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn a_row_binds_its_six_values_where_they_fall() {
        let row = OutboxRow::new("orders.v1.order_placed", &acme(), &serde_json::json!({}))
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut binds = Binds::new();
        let before = binds.push(1_i32);
        let sql = row.insert_from(&mut binds, "placed");
        assert_eq!(before.to_string(), "$1");
        assert!(
            sql.ends_with("SELECT $2, $3, $4, $5, $6, $7 FROM placed"),
            "{sql}"
        );
        assert_eq!(binds.len(), 7);
    }

    #[test]
    fn many_rows_bind_six_arrays_whatever_their_number() {
        let rows = |n: usize| -> Vec<OutboxRow> {
            (0..n)
                .map(|_| {
                    OutboxRow::new("orders.v1.order_confirmed", &acme(), &serde_json::json!({}))
                        .unwrap_or_else(|e| unreachable!("{e}"))
                })
                .collect()
        };
        let mut two = Binds::new();
        let mut five = Binds::new();
        let sql_two = OutboxRow::insert_many(rows(2), &mut two);
        let sql_five = OutboxRow::insert_many(rows(5), &mut five);
        assert_eq!(
            sql_two, sql_five,
            "one statement text for any number of rows"
        );
        assert!(
            sql_two.contains(
                "unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::jsonb[], $6::text[])"
            ),
            "{sql_two}"
        );
        assert_eq!((two.len(), five.len()), (6, 6));
    }

    #[test]
    fn bad_types_and_oversized_payloads_are_refused() {
        assert!(matches!(
            OutboxRow::new("orders.placed", &acme(), &1),
            Err(OutboxError::InvalidType(_))
        ));
        let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        assert!(matches!(
            OutboxRow::new("orders.v1.big", &acme(), &big),
            Err(OutboxError::TooLarge { .. })
        ));
    }
}
