//! The outbox relay against real Postgres and JetStream.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::connection::State;
use longship_messaging::{EventEnvelope, enqueue};
use longship_testkit::FaultProxy;
use longship_testkit::proxy::Mode;
use tracing::Instrument;
use uuid::Uuid;

use crate::helpers::{Harness, ORDERS, eventually, header, order_event, socket_addr};

#[tokio::test]
async fn events_of_a_rolled_back_transaction_are_never_published_and_committed_ones_are() {
    let mut h = Harness::start().await;
    let relay = h.relay(h.js.clone(), Harness::relay_config(64));
    h.spawn_relay(relay.clone());

    let mut rolled_back = h.db.pool().begin().await.expect("begin");
    let doomed = enqueue(&mut rolled_back, &order_event("acme", 0))
        .await
        .expect("enqueue");
    rolled_back.rollback().await.expect("rollback");
    let committed = h.enqueue_committed("acme", 2).await;
    relay.wake();
    // a later commit: once it is out, everything before it in the outbox has been considered
    let later = h.enqueue_committed("acme", 1).await;
    relay.wake();

    h.wait_until_outbox_drained(3, Duration::from_secs(15))
        .await;
    h.wait_for_stream_len(ORDERS.name, 3, Duration::from_secs(5))
        .await;
    let published: Vec<Uuid> = h
        .stream_messages(ORDERS.name)
        .await
        .iter()
        .map(|m| {
            header(m, "Nats-Msg-Id")
                .expect("Nats-Msg-Id")
                .parse()
                .expect("uuid")
        })
        .collect();
    assert_eq!(published, [committed, later].concat());
    assert!(
        !published.contains(&doomed),
        "a rolled-back event was published"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE id = $1")
        .bind(doomed)
        .fetch_one(h.db.pool())
        .await
        .expect("count");
    assert_eq!(stored, 0, "the rolled-back event left no outbox row");
    h.finish().await;
}

#[tokio::test]
async fn published_message_carries_id_tenant_trace_and_type_headers_and_a_decodable_envelope() {
    let h = Harness::start().await;
    let relay = h.relay(h.js.clone(), Harness::relay_config(64));

    let producer = tracing::info_span!("place_order");
    let (id, trace_id) = async {
        let trace_id =
            longship_telemetry::current_trace_id().expect("the producer span has a trace id");
        let mut tx = h.db.pool().begin().await.expect("begin");
        let id = enqueue(&mut tx, &order_event("acme-eu", 7))
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        (id, trace_id)
    }
    .instrument(producer)
    .await;
    assert_eq!(relay.publish_batch().await.expect("publish"), 1);

    h.wait_for_stream_len(ORDERS.name, 1, Duration::from_secs(5))
        .await;
    let messages = h.stream_messages(ORDERS.name).await;
    let [message] = messages.as_slice() else {
        panic!("expected one message, got {}", messages.len())
    };
    assert_eq!(
        message.subject.as_str(),
        h.naming.subject("orders.v1.order_placed")
    );
    assert_eq!(
        header(message, "Nats-Msg-Id"),
        Some(id.to_string().as_str())
    );
    assert_eq!(header(message, "Tenant-Id"), Some("acme-eu"));
    assert_eq!(
        header(message, "Event-Type"),
        Some("orders.v1.order_placed")
    );
    assert!(header(message, "Event-Time").is_some(), "Event-Time header");
    let traceparent = header(message, "traceparent").expect("traceparent header");
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(trace_id.as_str()),
        "traceparent {traceparent} continues the producer's trace"
    );

    let envelope = EventEnvelope::decode(&message.payload).expect("the body is an event envelope");
    assert_eq!(envelope.id, id);
    assert_eq!(envelope.event_type, "orders.v1.order_placed");
    assert_eq!(envelope.tenant_id.as_str(), "acme-eu");
    assert_eq!(envelope.schema_version, 1);
    assert_eq!(envelope.data, serde_json::json!({ "n": 7 }));
    h.finish().await;
}

#[tokio::test]
async fn two_concurrent_relays_publish_each_of_500_events_exactly_once() {
    let mut h = Harness::start().await;
    // two replicas: separate NATS connections, small batches so their claims interleave
    let second_client = async_nats::connect(h.nats.url())
        .await
        .expect("second NATS connection");
    let first = h.relay(h.js.clone(), Harness::relay_config(16));
    let second = h.relay(
        async_nats::jetstream::new(second_client),
        Harness::relay_config(16),
    );
    h.spawn_relay(first);
    h.spawn_relay(second);

    // 500 events in 50 transactions from 5 writers, committed while both relays run
    let writers: Vec<_> = (0..5)
        .map(|_| {
            let pool = h.db.pool().clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    let mut tx = pool.begin().await.expect("begin");
                    for n in 0..10 {
                        enqueue(&mut tx, &order_event("acme", n))
                            .await
                            .expect("enqueue");
                    }
                    tx.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }

    h.wait_until_outbox_drained(500, Duration::from_secs(60))
        .await;
    h.wait_for_stream_len(ORDERS.name, 500, Duration::from_secs(10))
        .await;
    let messages = h.stream_messages(ORDERS.name).await;
    assert_eq!(messages.len(), 500, "total messages in the stream");
    let ids: Vec<Uuid> = messages
        .iter()
        .map(|m| {
            header(m, "Nats-Msg-Id")
                .expect("Nats-Msg-Id")
                .parse()
                .expect("uuid")
        })
        .collect();
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 500, "distinct Nats-Msg-Id values");
    let outbox: HashSet<Uuid> = h.outbox_ids_in_order().await.into_iter().collect();
    assert_eq!(
        distinct, outbox,
        "the stream holds exactly the outbox's events"
    );
    for message in &messages {
        let envelope = EventEnvelope::decode(&message.payload).expect("envelope");
        assert_eq!(
            Some(envelope.id.to_string().as_str()),
            header(message, "Nats-Msg-Id")
        );
    }
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(h.db.pool())
        .await
        .expect("count");
    assert_eq!(unsent, 0, "every outbox row has published_at set");
    h.finish().await;
}

#[tokio::test]
async fn events_committed_while_nats_is_unreachable_stay_pending_then_drain_in_insertion_order() {
    let mut h = Harness::start().await;
    let proxy = FaultProxy::start(socket_addr(h.nats.url()).await).await;
    let relay_client = connect_through(&proxy).await;
    let relay = h.relay(jetstream_of(&relay_client), Harness::relay_config(20));
    h.spawn_relay(relay.clone());

    // healthy: the first events go straight out
    h.enqueue_committed("acme", 10).await;
    relay.wake();
    h.wait_until_outbox_drained(10, Duration::from_secs(15))
        .await;

    // NATS becomes unreachable: commits keep succeeding, the backlog grows, nothing is published
    proxy.set_mode(Mode::Refuse);
    eventually(
        "the relay's NATS client to notice the outage",
        Duration::from_secs(10),
        async || (relay_client.connection_state() != State::Connected).then_some(()),
    )
    .await;
    let failures_before = publish_failures();
    for _ in 0..20 {
        h.enqueue_committed("acme", 5).await;
        relay.wake();
    }
    eventually(
        "the relay to fail at least two publish attempts",
        Duration::from_secs(20),
        async || (publish_failures() >= failures_before + 2.0).then_some(()),
    )
    .await;
    assert_eq!(
        h.pending().await,
        100,
        "every event committed during the outage is pending"
    );
    assert_eq!(
        h.stream_len(ORDERS.name).await,
        10,
        "nothing reached the stream during the outage"
    );

    // NATS is back: the backlog drains completely, in insertion order
    proxy.set_mode(Mode::Pass);
    h.wait_until_outbox_drained(110, Duration::from_secs(30))
        .await;
    assert_stream_in_outbox_order(&h, 110).await;

    // a dropped connection is survived too
    proxy.cut();
    h.enqueue_committed("acme", 10).await;
    relay.wake();
    h.wait_until_outbox_drained(120, Duration::from_secs(30))
        .await;
    assert_stream_in_outbox_order(&h, 120).await;
    h.finish().await;
}

#[tokio::test]
async fn connections_cut_mid_drain_lose_and_duplicate_nothing() {
    let mut h = Harness::start().await;
    let proxy = FaultProxy::start(socket_addr(h.nats.url()).await).await;
    let relay_client = connect_through(&proxy).await;
    let relay = h.relay(jetstream_of(&relay_client), Harness::relay_config(256));
    for _ in 0..10 {
        h.enqueue_committed("acme", 200).await;
    }
    // stretch the drain so the cuts land while batches are in flight
    proxy.set_latency(Duration::from_millis(5));
    h.spawn_relay(relay);
    for round in 1..=3 {
        h.wait_for_stream_len(ORDERS.name, round * 400, Duration::from_secs(30))
            .await;
        proxy.cut();
    }

    h.wait_until_outbox_drained(2000, Duration::from_secs(60))
        .await;
    let messages = h.stream_messages(ORDERS.name).await;
    let ids: HashSet<Uuid> = messages
        .iter()
        .map(|m| {
            header(m, "Nats-Msg-Id")
                .expect("Nats-Msg-Id")
                .parse()
                .expect("uuid")
        })
        .collect();
    let outbox: HashSet<Uuid> = h.outbox_ids_in_order().await.into_iter().collect();
    assert_eq!(messages.len(), 2000, "total messages in the stream");
    assert_eq!(ids, outbox, "every event is in the stream exactly once");
    h.finish().await;
}

#[tokio::test]
async fn an_invalid_event_type_is_refused_at_enqueue_and_cannot_hold_back_later_events() {
    let mut h = Harness::start().await;
    let relay = h.relay(h.js.clone(), Harness::relay_config(64));
    h.spawn_relay(relay.clone());

    let mut tx = h.db.pool().begin().await.expect("begin");
    for invalid in [
        "orders.v1.order placed",
        "orders.v1.>",
        "orders.order_placed",
        "",
    ] {
        let mut event = order_event("acme", 0);
        event.event_type = invalid.to_owned();
        let refused = enqueue(&mut tx, &event).await;
        assert!(
            matches!(
                refused,
                Err(longship_messaging::EnqueueError::Invalid(
                    longship_messaging::OutboxError::InvalidType(_)
                ))
            ),
            "{invalid:?} was accepted: {refused:?}"
        );
    }
    // a payload NATS could never carry is refused too
    let mut huge = order_event("acme", 0);
    huge.data =
        serde_json::json!({ "blob": "x".repeat(longship_messaging::outbox::MAX_PAYLOAD_BYTES) });
    let refused = enqueue(&mut tx, &huge).await;
    assert!(
        matches!(
            refused,
            Err(longship_messaging::EnqueueError::Invalid(
                longship_messaging::OutboxError::TooLarge { .. }
            ))
        ),
        "oversized payload was accepted"
    );
    // the transaction is still usable and nothing was written
    let valid = enqueue(&mut tx, &order_event("acme", 1))
        .await
        .expect("enqueue a valid event");
    tx.commit().await.expect("commit");
    relay.wake();

    h.wait_until_outbox_drained(1, Duration::from_secs(15))
        .await;
    let messages = h.stream_messages(ORDERS.name).await;
    let published: Vec<&str> = messages
        .iter()
        .filter_map(|m| header(m, "Nats-Msg-Id"))
        .collect();
    assert_eq!(published, [valid.to_string().as_str()]);
    h.finish().await;
}

/// A NATS client connected through `proxy` that retries every 50 ms while it is down.
async fn connect_through(proxy: &FaultProxy) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(format!("nats://{}", proxy.addr()))
        .await
        .expect("connect to NATS through the proxy")
}

/// JetStream on `client` with a 1 s request timeout, so failed publishes surface quickly.
fn jetstream_of(client: &async_nats::Client) -> async_nats::jetstream::Context {
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(1));
    js
}

/// The stream holds exactly the outbox's `total` events, in the outbox's `seq` order.
async fn assert_stream_in_outbox_order(h: &Harness, total: u64) {
    h.wait_for_stream_len(ORDERS.name, total, Duration::from_secs(10))
        .await;
    let in_stream: Vec<Uuid> = h
        .stream_messages(ORDERS.name)
        .await
        .iter()
        .map(|m| {
            header(m, "Nats-Msg-Id")
                .expect("Nats-Msg-Id")
                .parse()
                .expect("uuid")
        })
        .collect();
    let in_outbox = h.outbox_ids_in_order().await;
    assert_eq!(in_stream.len() as u64, total, "messages in the stream");
    if in_stream != in_outbox {
        let position: HashMap<Uuid, usize> = in_outbox
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        let order: Vec<Option<usize>> = in_stream
            .iter()
            .map(|id| position.get(id).copied())
            .collect();
        panic!("the stream is not in outbox order; outbox positions in stream order: {order:?}");
    }
}

/// `outbox_publish_failures_total` from the process's metrics recorder.
fn publish_failures() -> f64 {
    longship_telemetry::metrics_handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix("outbox_publish_failures_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn prune_deletes_sent_rows_past_the_retention_and_keeps_the_rest() {
    let h = Harness::start().await;
    let relay = h.relay(
        h.js.clone(),
        longship_messaging::RelayConfig {
            retention: Duration::from_secs(3600),
            ..Harness::relay_config(64)
        },
    );
    let old_sent = h.enqueue_committed("acme", 5).await;
    let old_unsent = h.enqueue_committed("acme", 2).await;
    let young_sent = h.enqueue_committed("acme", 3).await;
    let backdate = |ids: &[Uuid], sent: bool| {
        let ids = ids.to_vec();
        let pool = h.db.pool().clone();
        async move {
            sqlx::query(
                "UPDATE outbox SET occurred_at = now() - interval '2 hours',
                        published_at = CASE WHEN $2 THEN now() - interval '2 hours' END
                 WHERE id = ANY($1)",
            )
            .bind(&ids)
            .bind(sent)
            .execute(&pool)
            .await
            .expect("backdate");
        }
    };
    backdate(&old_sent, true).await;
    backdate(&old_unsent, false).await;
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&young_sent)
        .execute(h.db.pool())
        .await
        .expect("mark young rows sent");

    assert_eq!(relay.prune().await.expect("prune"), 5, "rows pruned");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY seq")
        .fetch_all(h.db.pool())
        .await
        .expect("rows left");
    assert_eq!(
        left,
        [old_unsent, young_sent].concat(),
        "unsent rows and rows inside the retention stay"
    );
    assert_eq!(
        relay.prune().await.expect("prune again"),
        0,
        "nothing more to prune"
    );
    h.finish().await;
}

/// A batch the stream accepts only in part: the acknowledged prefix stays published, the rest is
/// marked unsent again in the same transaction and goes out, in order, once the stream takes it.
#[tokio::test]
async fn a_partly_acknowledged_batch_keeps_its_prefix_sent_and_the_rest_pending() {
    let h = Harness::start().await;
    let relay = h.relay(h.js.clone(), Harness::relay_config(64));
    let stream_name = h.naming.stream(ORDERS.name);
    let set_limit = async |max_messages: i64| {
        let mut stream = h.js.get_stream(&stream_name).await.expect("stream");
        let mut config = stream.info().await.expect("info").config.clone();
        config.max_messages = max_messages;
        h.js.update_stream(config).await.expect("update stream");
    };
    // the stream refuses (discard new) every message past the third
    set_limit(3).await;
    let ids = h.enqueue_committed("acme", 5).await;
    let refused = relay.publish_batch().await;
    assert!(
        refused.is_err(),
        "a partly refused batch reports it: {refused:?}"
    );
    assert_eq!(h.stream_len(ORDERS.name).await, 3);
    assert_eq!(h.pending().await, 2, "the refused rows are pending again");
    let pending: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE published_at IS NULL ORDER BY seq")
            .fetch_all(h.db.pool())
            .await
            .expect("pending ids");
    assert_eq!(pending, ids[3..].to_vec(), "the refused suffix, in order");

    set_limit(-1).await;
    assert_eq!(relay.publish_batch().await.expect("publish"), 2);
    assert_eq!(h.pending().await, 0);
    assert_stream_in_outbox_order(&h, 5).await;
    h.finish().await;
}
