//! Inbox-deduplicated JetStream consumers: retries, dead letters, tenant scope and trace context.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use longship_messaging::{
    ConsumerSpec, ConsumerStart, EventEnvelope, EventHandler, HandlerError, enqueue,
};
use longship_testkit::FaultProxy;
use longship_testkit::proxy::Mode;
use sqlx::PgConnection;
use tracing::Instrument;

use crate::helpers::{Harness, ORDERS, ScriptedHandler, envelope, eventually, header, order_event};

const DEAD_LETTERS: &str = "DEADLETTER";

/// Effectively "forever" for a handler's scripted failures.
const ALWAYS: u64 = u64::MAX;

#[tokio::test]
async fn a_redelivered_event_runs_the_handler_once() {
    let mut h = Harness::start().await;
    let handler = ScriptedHandler::new("dedupe");
    h.spawn_consumer(Harness::consumer_spec("dedupe", 3), handler.clone());

    // the same event twice under different message ids, so JetStream keeps both deliveries
    let event = envelope("acme", 0);
    h.publish_envelope(&event, "first-delivery").await;
    h.publish_envelope(&event, "second-delivery").await;
    assert_eq!(
        h.stream_len(ORDERS.name).await,
        2,
        "both copies are in the stream"
    );

    let info = h.wait_until_consumer_settled("dedupe", 2).await;
    assert_eq!(
        info.delivered.stream_sequence, 2,
        "both copies were delivered"
    );
    assert_eq!(handler.calls(event.id), 1, "handler calls");
    assert_eq!(
        h.handled("dedupe").await.len(),
        1,
        "committed handler writes"
    );
    assert_eq!(h.inbox_rows("dedupe").await, 1, "inbox rows");
    h.finish().await;
}

#[tokio::test]
async fn a_handler_failing_twice_is_retried_and_its_work_committed_once() {
    let mut h = Harness::start().await;
    let handler = ScriptedHandler::new("retry");
    h.spawn_consumer(Harness::consumer_spec("retry", 5), handler.clone());

    let event = envelope("acme", 2);
    h.publish_envelope(&event, &event.id.to_string()).await;

    let info = h.wait_until_consumer_settled("retry", 1).await;
    assert_eq!(info.delivered.consumer_sequence, 3, "deliveries");
    assert_eq!(handler.calls(event.id), 3, "handler calls");
    let handled = h.handled("retry").await;
    assert_eq!(
        handled.len(),
        1,
        "only the successful attempt's writes are committed"
    );
    assert_eq!(handled[0].attempt, 3);
    assert_eq!(h.inbox_rows("retry").await, 1, "inbox rows");
    assert_eq!(
        h.stream_len(DEAD_LETTERS).await,
        0,
        "nothing was dead-lettered"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_after_max_deliver_and_not_redelivered() {
    let mut h = Harness::start().await;
    let handler = ScriptedHandler::new("poison");
    h.spawn_consumer(Harness::consumer_spec("poison", 3), handler.clone());

    let event = envelope("acme", ALWAYS);
    h.publish_envelope(&event, &event.id.to_string()).await;

    let dead = wait_for_dead_letter(&h).await;
    assert_eq!(
        dead.subject.as_str(),
        h.naming.dead_letter_subject("poison")
    );
    assert_eq!(
        header(&dead, "Dead-Letter-Reason"),
        Some("scripted failure on attempt 3")
    );
    assert_eq!(header(&dead, "Dead-Letter-Consumer"), Some("poison"));
    assert_eq!(
        header(&dead, "Original-Subject"),
        Some(h.naming.subject("orders.v1.order_placed").as_str())
    );
    assert_eq!(
        header(&dead, "Tenant-Id"),
        Some("acme"),
        "the original headers are kept"
    );
    assert_eq!(
        dead.payload,
        serde_json::to_vec(&event).expect("encode"),
        "the original body is kept"
    );

    // terminated: nothing pending or awaiting an ack, so the server never delivers it again
    let info = h.wait_until_consumer_settled("poison", 1).await;
    assert_eq!(info.delivered.consumer_sequence, 3, "deliveries");
    assert_eq!(handler.calls(event.id), 3, "handler calls");
    assert!(
        h.handled("poison").await.is_empty(),
        "no failed attempt committed anything"
    );
    assert_eq!(h.inbox_rows("poison").await, 0, "inbox rows");
    assert_eq!(h.stream_len(DEAD_LETTERS).await, 1, "dead letters");
    h.finish().await;
}

#[tokio::test]
async fn an_undecodable_message_goes_straight_to_the_dead_letter_subject() {
    let mut h = Harness::start().await;
    let handler = ScriptedHandler::new("garbage");
    h.spawn_consumer(Harness::consumer_spec("garbage", 5), handler.clone());

    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, "garbage-1");
    h.publish_raw(
        "orders.v1.order_placed",
        headers,
        b"{not an envelope".to_vec(),
    )
    .await;

    let dead = wait_for_dead_letter(&h).await;
    assert_eq!(
        dead.subject.as_str(),
        h.naming.dead_letter_subject("garbage")
    );
    let reason = header(&dead, "Dead-Letter-Reason").expect("Dead-Letter-Reason header");
    assert!(
        reason.starts_with("not an event envelope"),
        "reason: {reason}"
    );
    assert_eq!(dead.payload.as_ref(), b"{not an envelope");

    let info = h.wait_until_consumer_settled("garbage", 1).await;
    assert_eq!(
        info.delivered.consumer_sequence, 1,
        "delivered once, not retried"
    );
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(handler.total_calls(), 0, "the handler never saw it");
    h.finish().await;
}

#[tokio::test]
async fn the_handler_gets_the_event_tenant_and_a_transaction_scoped_to_it() {
    let mut h = Harness::start().await;
    let relay = h.relay(h.js.clone(), Harness::relay_config(64));
    h.spawn_relay(relay.clone());
    let handler = ScriptedHandler::new("tenants");
    h.spawn_consumer(Harness::consumer_spec("tenants", 3), handler.clone());

    let acme = h.enqueue_committed("acme", 1).await[0];
    let globex = h.enqueue_committed("globex-7", 1).await[0];
    relay.wake();

    let handled = eventually(
        "both events to be handled",
        Duration::from_secs(20),
        async || {
            let handled = h.handled("tenants").await;
            (handled.len() == 2).then_some(handled)
        },
    )
    .await;
    for (id, tenant) in [(acme, "acme"), (globex, "globex-7")] {
        let row = handled
            .iter()
            .find(|r| r.event_id == id)
            .expect("handled row");
        assert_eq!(row.envelope_tenant, tenant, "envelope tenant");
        assert_eq!(
            row.tx_tenant.as_deref(),
            Some(tenant),
            "app.tenant_id in the handler's transaction"
        );
    }
    let tenant_headers: Vec<_> = h
        .stream_messages(ORDERS.name)
        .await
        .iter()
        .map(|m| header(m, "Tenant-Id").map(str::to_owned))
        .collect();
    assert_eq!(
        tenant_headers,
        [Some("acme".to_owned()), Some("globex-7".to_owned())]
    );
    h.finish().await;
}

#[tokio::test]
async fn the_handler_continues_the_producers_trace() {
    let mut h = Harness::start().await;
    let relay = h.relay(h.js.clone(), Harness::relay_config(64));
    h.spawn_relay(relay.clone());
    let handler = ScriptedHandler::new("traces");
    h.spawn_consumer(Harness::consumer_spec("traces", 3), handler.clone());

    let producer = tracing::info_span!("place_order");
    let (id, producer_trace) = async {
        let trace_id =
            longship_telemetry::current_trace_id().expect("the producer span has a trace id");
        let mut tx = h.db.pool().begin().await.expect("begin");
        let id = enqueue(&mut tx, &order_event("acme", 1))
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        (id, trace_id)
    }
    .instrument(producer)
    .await;
    relay.wake();

    let handled = eventually(
        "the event to be handled",
        Duration::from_secs(20),
        async || {
            h.handled("traces")
                .await
                .into_iter()
                .find(|r| r.event_id == id)
        },
    )
    .await;
    assert_eq!(
        handled.trace_id.as_deref(),
        Some(producer_trace.as_str()),
        "the handler's trace id"
    );
    h.finish().await;
}

/// Resets its own database connection (as a Postgres restart or a network cut does) on its first
/// `outages` calls, then hands over to a [`ScriptedHandler`].
struct ConnectionLostHandler {
    proxy: Arc<FaultProxy>,
    outages: u64,
    calls: AtomicU64,
    then: Arc<ScriptedHandler>,
}

#[async_trait::async_trait]
impl EventHandler for ConnectionLostHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.outages {
            self.proxy.cut();
            tokio::time::sleep(Duration::from_millis(50)).await;
            sqlx::query("SELECT 1").execute(&mut *tx).await?;
            return Err(HandlerError("the cut connection answered".into()));
        }
        self.then.handle(tx, event).await
    }
}

#[tokio::test]
async fn connections_lost_under_the_handler_are_retried_past_max_deliver_not_dead_lettered() {
    let mut h = Harness::start().await;
    let proxy = Arc::new(FaultProxy::start(h.db_addr().await).await);
    let scripted = ScriptedHandler::new("outage");
    let handler = Arc::new(ConnectionLostHandler {
        proxy: Arc::clone(&proxy),
        outages: 5,
        calls: AtomicU64::new(0),
        then: scripted.clone(),
    });
    h.spawn_consumer_on(
        h.pool_through(&proxy),
        Harness::consumer_spec("outage", 3),
        handler.clone(),
    );

    let event = envelope("acme", 0);
    h.publish_envelope(&event, &event.id.to_string()).await;

    let info = h.wait_until_consumer_settled("outage", 1).await;
    assert_eq!(
        info.delivered.consumer_sequence, 6,
        "five deliveries lost their connection, the sixth succeeded"
    );
    assert_eq!(
        scripted.calls(event.id),
        1,
        "handled once, after the outage"
    );
    assert_eq!(h.inbox_rows("outage").await, 1, "inbox rows");
    assert_eq!(
        h.stream_len(DEAD_LETTERS).await,
        0,
        "an outage is not a poison message"
    );
    h.finish().await;
}

#[tokio::test]
async fn an_unreachable_database_is_waited_out_not_dead_lettered() {
    let mut h = Harness::start().await;
    let proxy = FaultProxy::start(h.db_addr().await).await;
    let handler = ScriptedHandler::new("down");
    h.spawn_consumer_on(
        h.pool_through(&proxy),
        Harness::consumer_spec("down", 2),
        handler.clone(),
    );

    proxy.set_mode(Mode::Refuse);
    let event = envelope("acme", 0);
    h.publish_envelope(&event, &event.id.to_string()).await;
    eventually(
        "more deliveries than max_deliver while the database refuses",
        Duration::from_secs(20),
        async || {
            let info = h.consumer_info("down").await?;
            (info.delivered.consumer_sequence > 3).then_some(())
        },
    )
    .await;
    proxy.set_mode(Mode::Pass);

    h.wait_until_consumer_settled("down", 1).await;
    assert_eq!(
        handler.calls(event.id),
        1,
        "handled once the database is back"
    );
    assert_eq!(h.inbox_rows("down").await, 1, "inbox rows");
    assert_eq!(h.stream_len(DEAD_LETTERS).await, 0, "nothing dead-lettered");
    h.finish().await;
}

async fn wait_for_dead_letter(h: &Harness) -> StreamMessage {
    eventually(
        "a message on the dead-letter stream",
        Duration::from_secs(20),
        async || h.stream_messages(DEAD_LETTERS).await.into_iter().next(),
    )
    .await
}

#[tokio::test]
async fn a_batched_consumer_commits_waiting_events_together_each_under_its_tenant_and_isolates_a_failure()
 {
    let mut h = Harness::start().await;
    // events wait in the stream before the consumer starts, so they arrive together
    let tenants = ["acme", "globex", "initech"];
    let mut events = Vec::new();
    for i in 0..45 {
        // one event fails once: its batch is rolled back and handled event by event
        let fail_times = u64::from(i == 20);
        let event = envelope(tenants[i % tenants.len()], fail_times);
        h.publish_envelope(&event, &event.id.to_string()).await;
        events.push(event);
    }
    // a redelivered copy inside the same batches is handled once
    h.publish_envelope(&events[3], "a-second-copy").await;

    let handler = ScriptedHandler::new("batched");
    h.spawn_consumer(
        Harness::consumer_spec("batched", 5).batched(16),
        handler.clone(),
    );
    h.wait_until_consumer_settled("batched", 46).await;

    let handled = h.handled("batched").await;
    assert_eq!(
        handled.len(),
        events.len(),
        "each event's writes committed once"
    );
    for row in &handled {
        assert_eq!(
            row.tx_tenant.as_deref(),
            Some(row.envelope_tenant.as_str()),
            "the handler's transaction is scoped to its own event's tenant"
        );
    }
    let mut ids: Vec<_> = handled.iter().map(|r| r.event_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "no event handled twice");
    assert_eq!(
        h.inbox_rows("batched").await,
        events.len() as i64,
        "inbox rows"
    );
    assert!(
        handler.calls(events[20].id) >= 2,
        "the failing event was tried again after its batch rolled back"
    );
    let failing = handled.iter().find(|r| r.event_id == events[20].id);
    assert!(
        failing.is_some_and(|r| r.attempt >= 2),
        "its successful attempt is the one committed"
    );
    // rows inserted by one transaction share xmin: fewer transactions than events means batches
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM handled WHERE consumer = 'batched'",
    )
    .fetch_one(h.db.pool())
    .await
    .expect("count transactions");
    assert!(
        transactions < events.len() as i64 / 2,
        "{transactions} transactions for {} events: waiting events were not batched",
        events.len()
    );
    assert_eq!(
        h.stream_len(DEAD_LETTERS).await,
        0,
        "nothing was dead-lettered"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_batch_that_waits_on_a_lock_gives_way_and_its_events_are_handled_one_by_one() {
    let mut h = Harness::start().await;
    let mut events = Vec::new();
    for _ in 0..12 {
        let event = envelope("acme", 0);
        h.publish_envelope(&event, &event.id.to_string()).await;
        events.push(event);
    }
    // another transaction holds a lock every handler needs, longer than a batch may wait
    let mut holder = h.db.pool().begin().await.expect("begin");
    sqlx::query("LOCK TABLE handled IN EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .expect("lock");
    let handler = ScriptedHandler::new("giving-way");
    h.spawn_consumer(
        Harness::consumer_spec("giving-way", 5)
            .batched(16)
            .batch_lock_timeout(Duration::from_millis(50)),
        handler.clone(),
    );
    // the batch gave way (its first event was tried, then tried again alone) while the lock is
    // held: without the batch's lock timeout it would still be waiting
    eventually("a batch to give way", Duration::from_secs(10), async || {
        events
            .iter()
            .any(|e| handler.calls(e.id) >= 2)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.commit().await.expect("release the lock");
    h.wait_until_consumer_settled("giving-way", events.len() as u64)
        .await;

    let handled = h.handled("giving-way").await;
    assert_eq!(handled.len(), events.len(), "each event committed once");
    assert_eq!(h.inbox_rows("giving-way").await, events.len() as i64);
    // the events of the batch that gave way were committed one by one
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT event_id, xmin::text FROM handled WHERE consumer = 'giving-way'")
            .fetch_all(h.db.pool())
            .await
            .expect("rows");
    let retried: Vec<_> = rows
        .iter()
        .filter(|(id, _)| handler.calls(*id) >= 2)
        .collect();
    assert!(!retried.is_empty());
    for (id, xmin) in &retried {
        let sharing = rows.iter().filter(|(_, x)| x == xmin).count();
        assert_eq!(sharing, 1, "event {id} shares its transaction");
    }
    assert_eq!(
        h.stream_len(DEAD_LETTERS).await,
        0,
        "nothing was dead-lettered"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_new_consumer_starts_at_the_start_position_it_is_given() {
    let mut h = Harness::start().await;
    // an event published before either consumer exists
    let old = envelope("acme", 0);
    h.publish_envelope(&old, &old.id.to_string()).await;

    let from_all = ScriptedHandler::new("from-all");
    h.spawn_consumer(
        ConsumerSpec {
            start: Some(ConsumerStart::All),
            ..Harness::consumer_spec("from-all", 3)
        },
        from_all.clone(),
    );
    let from_new = ScriptedHandler::new("from-new");
    h.spawn_consumer(
        ConsumerSpec {
            start: Some(ConsumerStart::New),
            ..Harness::consumer_spec("from-new", 3)
        },
        from_new.clone(),
    );
    // both consumers exist (the one from `new` has delivered nothing yet) before the next event
    h.wait_until_consumer_settled("from-all", 1).await;
    eventually(
        "the new-only consumer exists",
        Duration::from_secs(10),
        async || h.consumer_info("from-new").await.map(|_| ()),
    )
    .await;
    let fresh = envelope("acme", 0);
    h.publish_envelope(&fresh, &fresh.id.to_string()).await;

    h.wait_until_consumer_settled("from-all", 2).await;
    h.wait_until_consumer_settled("from-new", 2).await;
    assert_eq!(
        (from_all.calls(old.id), from_all.calls(fresh.id)),
        (1, 1),
        "`all` reads the stream from its first event"
    );
    assert_eq!(
        (from_new.calls(old.id), from_new.calls(fresh.id)),
        (0, 1),
        "`new` reads only what is published after it exists"
    );
    assert!("sometimes".parse::<ConsumerStart>().is_err());
    h.finish().await;
}
