//! Set-based consumers (`ConsumerSpec::set_based`): one statement claims a batch's events and the
//! handler gets the newly claimed ones at once; duplicates and other types are not passed on; a
//! payload that does not read falls back to one-by-one handling and is dead-lettered alone; the
//! defaults (`consume_many`, `handle_set`) scope each event back to its own tenant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use longship_messaging::{
    ConsumedPayload, Consumer, ConsumerSpec, Delivered, EventContract, EventEnvelope, HandlerError,
    StreamSpec,
};
use longship_tenant::TenantId;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::helpers::{Harness, ScriptedHandler, envelope};

const DEAD_LETTERS: &str = "DEADLETTER";

/// The payload the test consumers read: `fail_times` must be a number.
#[derive(Debug, Deserialize)]
struct Placed {
    #[allow(dead_code)] // reason: read to check the payload's shape
    fail_times: u64,
}

impl ConsumedPayload for Placed {
    const EVENT: EventContract = EventContract::new(
        "orders.v1.order_placed",
        StreamSpec::new("ORDERS", "orders"),
    );
}

/// What a test consumer saw: the sizes of the sets it got, and its one-by-one calls.
#[derive(Default)]
struct Seen {
    sets: Mutex<Vec<usize>>,
    single: AtomicU64,
}

/// Records every event in `handled` with the transaction's tenant scope as
/// `app.tenant_id|app.tenant_ids`.
async fn record(
    tx: &mut PgConnection,
    consumer: &str,
    events: &[(Uuid, &TenantId)],
) -> Result<(), HandlerError> {
    let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
    let tenants: Vec<&str> = events.iter().map(|(_, t)| t.as_str()).collect();
    sqlx::query(
        "INSERT INTO handled (consumer, event_id, attempt, envelope_tenant, tx_tenant)
         SELECT $1, u.id, 1, u.tenant,
                coalesce(current_setting('app.tenant_id', true), '') || '|'
                || coalesce(current_setting('app.tenant_ids', true), '')
         FROM unnest($2::uuid[], $3::text[]) AS u(id, tenant)",
    )
    .bind(consumer)
    .bind(ids)
    .bind(tenants)
    .execute(tx)
    .await?;
    Ok(())
}

/// A set-based consumer that records each set in one statement.
struct SetRecorder {
    name: &'static str,
    seen: Arc<Seen>,
}

#[async_trait::async_trait]
impl Consumer for SetRecorder {
    type Event = Placed;

    fn spec(&self) -> ConsumerSpec {
        Harness::consumer_spec(self.name, 3).batched(16).set_based()
    }

    async fn consume(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        _event: Placed,
    ) -> Result<(), HandlerError> {
        self.seen.single.fetch_add(1, Ordering::SeqCst);
        let id: Uuid = sqlx::query_scalar("SELECT gen_random_uuid()")
            .fetch_one(&mut *tx)
            .await?;
        record(tx, self.name, &[(id, tenant)]).await
    }

    async fn consume_many(
        &self,
        tx: &mut PgConnection,
        events: Vec<Delivered<Placed>>,
    ) -> Result<(), HandlerError> {
        self.seen.sets.lock().expect("sets").push(events.len());
        let items: Vec<(Uuid, &TenantId)> =
            events.iter().map(|d| (d.event_id, &d.tenant)).collect();
        record(tx, self.name, &items).await
    }
}

/// A set-based consumer without `consume_many` of its own: the default consumes one by one.
struct PerEventRecorder;

#[async_trait::async_trait]
impl Consumer for PerEventRecorder {
    type Event = Placed;

    fn spec(&self) -> ConsumerSpec {
        Harness::consumer_spec("per-event", 3)
            .batched(16)
            .set_based()
    }

    async fn consume(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        _event: Placed,
    ) -> Result<(), HandlerError> {
        // the event's id is not passed to `consume`: a fresh one per call, counted below
        let id = Uuid::now_v7();
        record(tx, "per-event", &[(id, tenant)]).await
    }
}

fn of_type(tenant: &str, event_type: &str) -> EventEnvelope {
    EventEnvelope {
        event_type: event_type.to_owned(),
        ..envelope(tenant, 0)
    }
}

/// `handled` rows of `consumer`: (event id, envelope tenant, tx scope).
async fn handled(h: &Harness, consumer: &str) -> Vec<(Uuid, String, String)> {
    sqlx::query_as(
        "SELECT event_id, envelope_tenant, tx_tenant FROM handled WHERE consumer = $1 ORDER BY event_id",
    )
    .bind(consumer)
    .fetch_all(h.db.pool())
    .await
    .expect("read handled rows")
}

#[tokio::test]
async fn a_set_based_consumer_gets_only_the_newly_claimed_events_of_its_type_at_once() {
    let mut h = Harness::start().await;
    let tenants = ["acme", "globex", "initech"];
    let mut events = Vec::new();
    // the events wait in the stream before the consumer starts, so they arrive together
    for i in 0..30 {
        let event = envelope(tenants[i % tenants.len()], 0);
        h.publish_envelope(&event, &event.id.to_string()).await;
        events.push(event);
    }
    let others: Vec<EventEnvelope> = (0..2)
        .map(|i| of_type(tenants[i], "orders.v1.order_cancelled"))
        .collect();
    for other in &others {
        h.publish_envelope(other, &other.id.to_string()).await;
    }
    // a second copy inside the batches, and an event this consumer handled before
    h.publish_envelope(&events[3], "a-second-copy").await;
    sqlx::query("INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('sets', $1, $2)")
        .bind(events[5].id)
        .bind(events[5].tenant_id.as_str())
        .execute(h.db.pool())
        .await
        .expect("an earlier claim");

    let seen = Arc::new(Seen::default());
    let consumer = SetRecorder {
        name: "sets",
        seen: seen.clone(),
    };
    h.spawn_consumer(consumer.spec(), Arc::new(consumer));
    h.wait_until_consumer_settled("sets", 33).await;

    let rows = handled(&h, "sets").await;
    let mut expected: Vec<Uuid> = events
        .iter()
        .filter(|e| e.id != events[5].id)
        .map(|e| e.id)
        .collect();
    expected.sort();
    let got: Vec<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(got, expected, "each new event of its type handled once");
    for (_, tenant, scope) in &rows {
        let (alone, set) = scope.split_once('|').expect("scope");
        assert_eq!(alone, "", "no single tenant is set in a set-based batch");
        let set: Vec<&str> = set.trim_matches(['{', '}']).split(',').collect();
        assert!(
            set.contains(&tenant.as_str()),
            "the batch's tenant set {set:?} admits the event's tenant {tenant}"
        );
    }
    let sets = seen.sets.lock().expect("sets").clone();
    assert_eq!(sets.iter().sum::<usize>(), 29, "{sets:?}");
    assert!(
        sets.iter().any(|n| *n > 1),
        "waiting events were handed over together: {sets:?}"
    );
    assert_eq!(
        seen.single.load(Ordering::SeqCst),
        0,
        "nothing was handled one by one"
    );
    assert_eq!(
        h.inbox_rows("sets").await,
        32,
        "every event is claimed once, those of other types too"
    );
    assert_eq!(h.stream_len(DEAD_LETTERS).await, 0, "nothing dead-lettered");
    h.finish().await;
}

#[tokio::test]
async fn a_payload_that_does_not_read_fails_its_set_which_falls_back_and_it_alone_is_dead_lettered()
{
    let mut h = Harness::start().await;
    let mut good = Vec::new();
    for i in 0..8 {
        let event = envelope(["acme", "globex"][i % 2], 0);
        h.publish_envelope(&event, &event.id.to_string()).await;
        good.push(event);
        if i == 3 {
            let bad = EventEnvelope {
                data: serde_json::json!({ "fail_times": "not a number" }),
                ..envelope("acme", 0)
            };
            h.publish_envelope(&bad, &bad.id.to_string()).await;
        }
    }
    let seen = Arc::new(Seen::default());
    let consumer = SetRecorder {
        name: "bad-set",
        seen: seen.clone(),
    };
    h.spawn_consumer(consumer.spec(), Arc::new(consumer));
    h.wait_for_stream_len(DEAD_LETTERS, 1, std::time::Duration::from_secs(20))
        .await;
    h.wait_until_consumer_settled("bad-set", 9).await;

    let rows = handled(&h, "bad-set").await;
    assert_eq!(rows.len(), good.len(), "each good event handled once");
    assert!(
        seen.single.load(Ordering::SeqCst) > 0,
        "the set that held the bad payload rolled back and was handled one by one"
    );
    assert_eq!(h.inbox_rows("bad-set").await, good.len() as i64);
    let dead: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT tenant_id, error FROM dead_letter WHERE consumer = 'bad-set'")
            .fetch_all(h.db.pool())
            .await
            .expect("dead letters");
    assert_eq!(
        dead.len(),
        1,
        "only the bad event is dead-lettered: {dead:?}"
    );
    assert!(dead[0].1.contains("not a number"), "{}", dead[0].1);
    h.finish().await;
}

#[tokio::test]
async fn without_consume_many_a_set_is_consumed_event_by_event_each_scoped_to_its_own_tenant() {
    let mut h = Harness::start().await;
    let tenants = ["acme", "globex", "initech"];
    for i in 0..12 {
        let event = envelope(tenants[i % tenants.len()], 0);
        h.publish_envelope(&event, &event.id.to_string()).await;
    }
    h.spawn_consumer(PerEventRecorder.spec(), Arc::new(PerEventRecorder));
    h.wait_until_consumer_settled("per-event", 12).await;

    let rows = handled(&h, "per-event").await;
    assert_eq!(rows.len(), 12);
    for (_, tenant, scope) in &rows {
        assert_eq!(
            scope,
            &format!("{tenant}|{{}}"),
            "each event runs under its own tenant alone, the batch's set cleared"
        );
    }
    // rows inserted by one transaction share xmin: fewer transactions than events means sets
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM handled WHERE consumer = 'per-event'",
    )
    .fetch_one(h.db.pool())
    .await
    .expect("count transactions");
    assert!(
        transactions < 12,
        "{transactions} transactions for 12 events"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_plain_handler_opting_into_sets_handles_each_event_under_its_own_tenant() {
    let mut h = Harness::start().await;
    let tenants = ["acme", "globex", "initech"];
    let mut events = Vec::new();
    for i in 0..12 {
        // one event fails once: its set rolls back and is handled one by one
        let event = envelope(tenants[i % tenants.len()], u64::from(i == 7));
        h.publish_envelope(&event, &event.id.to_string()).await;
        events.push(event);
    }
    let handler = ScriptedHandler::new("plain-set");
    h.spawn_consumer(
        Harness::consumer_spec("plain-set", 5)
            .batched(16)
            .set_based(),
        handler.clone(),
    );
    h.wait_until_consumer_settled("plain-set", 12).await;

    let rows = h.handled("plain-set").await;
    assert_eq!(rows.len(), events.len(), "each event committed once");
    for row in &rows {
        assert_eq!(
            row.tx_tenant.as_deref(),
            Some(row.envelope_tenant.as_str()),
            "the default handle_set scopes each event to its own tenant"
        );
    }
    assert!(
        handler.calls(events[7].id) >= 2,
        "the failing event was tried again"
    );
    assert_eq!(h.inbox_rows("plain-set").await, events.len() as i64);
    h.finish().await;
}
