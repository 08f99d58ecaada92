//! A set-based consumer: it names the row each event acts on ([`SetConsumer::key`]), one set
//! statement over many such items ([`SetConsumer::apply`]) and what to say about each event's
//! outcome ([`SetConsumer::report`]). Every `SetConsumer` is a [`Consumer`]: a batch runs the
//! statement once for all its events, each event reported inside its own span, and an event
//! handled alone (a batch that gave way, a redriven dead letter) runs the same statement as a set
//! of one, in the transaction of its own tenant.

use std::hash::Hash;

use longship_tenant::TenantId;
use sqlx::PgConnection;

use crate::schemas::ConsumedPayload;
use crate::{Consumer, ConsumerSpec, Delivered, HandlerError, SetItem};

/// The most events a set-based consumer's batch takes by default.
pub const SET_BATCH: usize = 32;

/// A consumer whose work for any number of events is one set statement.
#[async_trait::async_trait]
pub trait SetConsumer: Send + Sync + 'static {
    /// The payload it reads.
    type Event: ConsumedPayload + Send + Sync;
    /// The key of the row an event acts on (e.g. its order id).
    type Key: Clone + Eq + Hash + Send + Sync;
    /// What the statement found and did for one item.
    type Outcome: Send;

    /// The event type it handles (`<service>.v1.<event>`).
    const EVENT: &'static str;
    /// Its durable consumer's name.
    const DURABLE_NAME: &'static str;
    /// The stream it reads (unprefixed, e.g. `ORDERS`).
    const STREAM: &'static str;

    /// Its durable consumer's settings: batched ([`SET_BATCH`]) and set-based.
    fn spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(Self::DURABLE_NAME, Self::STREAM, Self::EVENT)
            .batched(SET_BATCH)
            .set_based()
    }

    /// The row `event` acts on.
    fn key(event: &Self::Event) -> Self::Key;

    /// Does the work of every item at once, in the caller's transaction (which admits the rows of
    /// every item's tenant, so key each item's rows by its own tenant): one outcome per item, in
    /// order. An `Err` rolls the whole batch back.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        items: &[SetItem<Self::Key>],
    ) -> Result<Vec<Self::Outcome>, HandlerError>;

    /// Logs (and counts) what happened for one event; runs inside the event's span.
    fn report(&self, event: &Self::Event, outcome: &Self::Outcome);
}

#[async_trait::async_trait]
impl<S: SetConsumer> Consumer for S {
    type Event = S::Event;
    const EVENT_TYPE: &'static str = S::EVENT;

    fn spec(&self) -> ConsumerSpec {
        SetConsumer::spec(self)
    }

    async fn consume(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        event: S::Event,
    ) -> Result<(), HandlerError> {
        let item = SetItem {
            tenant: tenant.clone(),
            key: S::key(&event),
            traceparent: longship_telemetry::propagation::current_traceparent(),
        };
        let outcomes = answered(self.apply(tx, std::slice::from_ref(&item)).await?, 1)?;
        for outcome in &outcomes {
            self.report(&event, outcome);
        }
        Ok(())
    }

    async fn consume_many(
        &self,
        tx: &mut PgConnection,
        events: Vec<Delivered<S::Event>>,
    ) -> Result<(), HandlerError> {
        let items: Vec<SetItem<S::Key>> = events.iter().map(|d| d.item(S::key(&d.event))).collect();
        let outcomes = answered(self.apply(tx, &items).await?, items.len())?;
        for (delivered, outcome) in events.iter().zip(outcomes) {
            delivered
                .span
                .in_scope(|| self.report(&delivered.event, &outcome));
        }
        Ok(())
    }
}

/// `outcomes` as exactly `expected` of them (fewer or more: the statement broke its promise, and
/// the batch rolls back).
fn answered<T>(outcomes: Vec<T>, expected: usize) -> Result<Vec<T>, HandlerError> {
    if outcomes.len() != expected {
        return Err(HandlerError(format!(
            "a set statement of {expected} items answered {} outcomes",
            outcomes.len()
        )));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_must_match_the_items() {
        assert_eq!(answered(vec![7], 1).ok(), Some(vec![7]));
        assert_eq!(
            answered::<u8>(Vec::new(), 1).err().map(|e| e.0),
            Some("a set statement of 1 items answered 0 outcomes".to_owned())
        );
        assert!(answered(vec![1, 2], 3).is_err());
    }
}
