//! A consumer of one event type with a typed payload: it says which event type it handles, its
//! durable consumer's settings and what it does with the payload; reading the envelope (versions
//! and upcasts), skipping other types and the tenant are done here, once for every consumer.

use longship_tenant::TenantId;
use sqlx::PgConnection;

use crate::schemas::ConsumedPayload;
use crate::{ConsumerSpec, EventEnvelope, EventHandler, HandlerError};

/// A consumer of one event type. Every `Consumer` is an [`EventHandler`]: events of other types
/// are acknowledged and skipped; the payload is read with [`EventEnvelope::read`] (a version it
/// does not accept fails the delivery, an older one is upcast).
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The payload it reads.
    type Event: ConsumedPayload + Send;

    /// The event type it handles (`<service>.v1.<event>`).
    const EVENT_TYPE: &'static str;

    /// Its durable consumer's settings.
    fn spec(&self) -> ConsumerSpec;

    /// Handles one event's payload inside the transaction scoped to the event's `tenant` (write
    /// only through `tx`, as for [`EventHandler::handle`]).
    async fn consume(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        event: Self::Event,
    ) -> Result<(), HandlerError>;
}

#[async_trait::async_trait]
impl<C: Consumer> EventHandler for C {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        if event.event_type != C::EVENT_TYPE {
            return Ok(());
        }
        let payload: C::Event = event.read()?;
        self.consume(tx, &event.tenant_id, payload).await
    }
}
