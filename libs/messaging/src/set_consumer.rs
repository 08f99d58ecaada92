//! A set-based consumer, declared as a value: its durable consumer's name, the row each event acts
//! on ([`SetConsumer::new`]'s `key`), one set statement over many such items and what to say about
//! each event's outcome. The event it subscribes to, and the stream, come from its payload's
//! [`EventContract`](crate::EventContract). Every `SetConsumer` is a [`Consumer`]: a batch runs the
//! statement once for all its events, each event reported inside its own span, and an event
//! handled alone (a batch that gave way, a redriven dead letter) runs the same statement as a set
//! of one, in the transaction of its own tenant.

use std::hash::Hash;

use futures::future::BoxFuture;
use longship_tenant::TenantId;
use sqlx::PgConnection;

use crate::schemas::ConsumedPayload;
use crate::{Consumer, ConsumerSpec, Delivered, HandlerError, SetItem};

/// The most events a set-based consumer's batch takes by default.
pub const SET_BATCH: usize = 32;

/// A set statement: the work of every item at once, in the caller's transaction (which admits the
/// rows of every item's tenant, so key each item's rows by its own tenant), one outcome per item,
/// in order. An `Err` rolls the whole batch back. Usually a store function, boxed:
/// `|tx, items| Box::pin(store::commit_many(tx, items))`.
pub type SetStatement<K, O> = for<'a> fn(
    &'a mut PgConnection,
    &'a [SetItem<K>],
) -> BoxFuture<'a, Result<Vec<O>, longship_errors::Error>>;

/// A consumer whose work for any number of events of payload `E` is one set statement over
/// their keys `K`, with an outcome `O` per event.
pub struct SetConsumer<E, K, O> {
    durable_name: &'static str,
    key: fn(&E) -> K,
    apply: SetStatement<K, O>,
    report: fn(&E, &O),
}

impl<E, K, O> SetConsumer<E, K, O> {
    /// The durable consumer `durable_name` of `E`'s event: `key` names the row an event acts on
    /// (e.g. its order id), `apply` is the set statement, `report` logs (and counts) what happened
    /// for one event, inside the event's span.
    pub const fn new(
        durable_name: &'static str,
        key: fn(&E) -> K,
        apply: SetStatement<K, O>,
        report: fn(&E, &O),
    ) -> SetConsumer<E, K, O> {
        SetConsumer {
            durable_name,
            key,
            apply,
            report,
        }
    }

    /// Runs the set statement over `items`, holding it to one outcome per item.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        items: &[SetItem<K>],
    ) -> Result<Vec<O>, HandlerError> {
        let outcomes = (self.apply)(tx, items)
            .await
            .map_err(HandlerError::with_sources)?;
        answered(outcomes, items.len())
    }
}

#[async_trait::async_trait]
impl<E, K, O> Consumer for SetConsumer<E, K, O>
where
    E: ConsumedPayload + Send + Sync + 'static,
    K: Clone + Eq + Hash + Send + Sync + 'static,
    O: Send + 'static,
{
    type Event = E;

    /// Batched ([`SET_BATCH`]) and set-based, on the stream of `E`'s event.
    fn spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(self.durable_name, E::EVENT.stream.name, E::EVENT.name)
            .batched(SET_BATCH)
            .set_based()
    }

    async fn consume(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        event: E,
    ) -> Result<(), HandlerError> {
        let item = SetItem {
            tenant: tenant.clone(),
            key: (self.key)(&event),
            traceparent: longship_telemetry::propagation::current_traceparent(),
        };
        for outcome in self.apply(tx, std::slice::from_ref(&item)).await? {
            (self.report)(&event, &outcome);
        }
        Ok(())
    }

    async fn consume_many(
        &self,
        tx: &mut PgConnection,
        events: Vec<Delivered<E>>,
    ) -> Result<(), HandlerError> {
        let items: Vec<SetItem<K>> = events
            .iter()
            .map(|d| d.item((self.key)(&d.event)))
            .collect();
        let outcomes = self.apply(tx, &items).await?;
        for (delivered, outcome) in events.iter().zip(outcomes) {
            delivered
                .span
                .in_scope(|| (self.report)(&delivered.event, &outcome));
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
