//! A consumer of one event type with a typed payload: it says which event type it handles, its
//! durable consumer's settings and what it does with the payload; reading the envelope (versions
//! and upcasts), skipping other types and the tenant are done here, once for every consumer.

use longship_tenant::TenantId;
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use crate::consumer::ClaimedEvent;
use crate::schemas::ConsumedPayload;
use crate::{ConsumerSpec, EventEnvelope, EventHandler, HandlerError};

/// A consumer of one event type. Every `Consumer` is an [`EventHandler`]: events of other types
/// are acknowledged and skipped; the payload is read with [`EventEnvelope::read`] (a version it
/// does not accept fails the delivery, an older one is upcast).
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The payload it reads.
    type Event: ConsumedPayload + Send;

    /// The event type it handles (`<service>.v1.<event>`): its payload's event.
    const EVENT_TYPE: &'static str = <Self::Event as ConsumedPayload>::EVENT.name;

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

    /// Handles the events of a set-based batch at once ([`ConsumerSpec::set_based`]): the newly
    /// claimed events of this type, in batch order, in one transaction that admits the rows of
    /// all their tenants, so every statement must key each event's rows by its own `tenant`. A
    /// failure rolls the batch back and its events are handled one by one with
    /// [`Consumer::consume`]. The default consumes them one by one here too, the transaction
    /// scoped back to each event's own tenant in turn.
    async fn consume_many(
        &self,
        tx: &mut PgConnection,
        events: Vec<Delivered<Self::Event>>,
    ) -> Result<(), HandlerError> {
        for delivered in events {
            let Delivered {
                tenant,
                event,
                span,
                ..
            } = delivered;
            async {
                longship_tenant::scope_to_tenant(&mut *tx, &tenant).await?;
                self.consume(&mut *tx, &tenant, event).await
            }
            .instrument(span)
            .await?;
        }
        Ok(())
    }
}

/// One event of a set-based batch as [`Consumer::consume_many`] gets it.
#[derive(Debug)]
pub struct Delivered<E> {
    /// The event's tenant: key the event's rows by it.
    pub tenant: TenantId,
    /// The event's id.
    pub event_id: Uuid,
    /// Its payload.
    pub event: E,
    /// The event's CONSUMER span: log about this event inside it (`span.in_scope(...)`).
    pub span: tracing::Span,
}

impl<E> Delivered<E> {
    /// The trace context of the event's span, to store with an event written on its behalf (what
    /// an `OutboxRow` made inside the span would store).
    pub fn traceparent(&self) -> Option<String> {
        longship_telemetry::propagation::traceparent_of(&self.span)
    }
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

    async fn handle_set(
        &self,
        tx: &mut PgConnection,
        events: &[ClaimedEvent<'_>],
    ) -> Result<(), HandlerError> {
        let mut delivered = Vec::with_capacity(events.len());
        for claimed in events {
            let envelope = claimed.envelope;
            if envelope.event_type != C::EVENT_TYPE {
                continue;
            }
            // a payload that does not read fails the batch: it rolls back, and the event is
            // retried (and dead-lettered) on its own while the others are handled
            let event: C::Event = envelope.read().map_err(|e| {
                HandlerError(format!("event {}: {}", envelope.id, HandlerError::from(e)))
            })?;
            delivered.push(Delivered {
                tenant: envelope.tenant_id.clone(),
                event_id: envelope.id,
                event,
                span: claimed.span.clone(),
            });
        }
        if delivered.is_empty() {
            return Ok(());
        }
        self.consume_many(tx, delivered).await
    }
}
