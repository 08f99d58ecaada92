//! Set-based batches ([`ConsumerSpec::set_based`](crate::ConsumerSpec::set_based)): one statement
//! claims the inbox rows of all of a batch's events and scopes the transaction to the batch's
//! tenants, then the handler gets the newly claimed events at once.

use std::collections::HashSet;

use async_nats::jetstream;

use super::{Consumer, Outcome, event_span};
use crate::{EventEnvelope, HandlerError};

/// An event of a set-based batch, newly claimed in the consumer's inbox, as
/// [`EventHandler::handle_set`](crate::EventHandler::handle_set) gets it.
#[derive(Debug)]
pub struct ClaimedEvent<'a> {
    /// The event.
    pub envelope: &'a EventEnvelope,
    /// Its CONSUMER span (a child of the producer's): enter it to log about this event, or to
    /// capture its trace context for events written on its behalf.
    pub span: tracing::Span,
}

impl Consumer<'_> {
    /// One transaction for the whole batch: one statement claims every event's inbox row (each
    /// event once; a copy already in the inbox is a duplicate) and scopes the transaction to the
    /// batch's tenants, then the handler gets the newly claimed events together; one commit.
    pub(super) async fn handle_set_in_tx(
        &self,
        batch: &[(jetstream::Message, EventEnvelope)],
    ) -> Result<Vec<Outcome>, HandlerError> {
        let (spec, handler) = (self.spec, self.handler);
        let mut seen = HashSet::with_capacity(batch.len());
        // a second copy of an event in the same batch is a duplicate of the first
        let first: Vec<bool> = batch.iter().map(|(_, e)| seen.insert(e.id)).collect();
        let unique: Vec<&EventEnvelope> = batch
            .iter()
            .zip(&first)
            .filter_map(|((_, envelope), first)| first.then_some(envelope))
            .collect();
        let mut tx = self.pool.begin().await?;
        let claimed = crate::inbox::claim_set(
            &mut tx,
            &spec.durable_name,
            &unique,
            spec.batch_lock_timeout,
        )
        .await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(claimed.len());
        for ((message, envelope), first) in batch.iter().zip(first) {
            if !(first && claimed.contains(&envelope.id)) {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            let span = event_span(spec, message, delivered);
            span.record("tenant_id", envelope.tenant_id.as_str());
            span.record("event_id", envelope.id.to_string());
            events.push(ClaimedEvent { envelope, span });
            outcomes.push(Outcome::Handled);
        }
        if !events.is_empty() {
            handler.handle_set(&mut tx, &events).await?;
        }
        tx.commit().await?;
        if !events.is_empty() {
            self.relay.wake();
        }
        Ok(outcomes)
    }
}
