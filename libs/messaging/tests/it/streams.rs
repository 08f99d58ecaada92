//! Stream and consumer settings from config against a real (single, non-clustered) NATS server:
//! created as configured, updated where JetStream allows, refused naming the setting where it does
//! not, and replicas a single server cannot hold refused at once instead of waited for.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::{DiscardPolicy, StorageType};
use longship_messaging::{
    ConsumerSettings, ConsumerStart, DEAD_LETTER_MIN_AGE, StreamSettings, StreamSpec,
    ensure_dead_letter_stream, ensure_stream, ensure_streams_with_retry, run_consumer,
};
use longship_testkit::TestNats;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Harness, ScriptedHandler, envelope, eventually};

const SETTINGS: StreamSpec = StreamSpec {
    name: "SETTINGS",
    subject_root: "settings",
};

fn settings() -> StreamSettings {
    StreamSettings {
        replicas: 1,
        storage: StorageType::File,
        max_age: Duration::from_secs(3600),
        max_bytes: 8 << 20,
        duplicate_window: Duration::from_secs(30),
    }
}

async fn stream_config(nats: &TestNats, name: &str) -> async_nats::jetstream::stream::Config {
    let naming = longship_messaging::Naming::new(nats.prefix());
    let mut stream = nats
        .jetstream()
        .get_stream(naming.stream(name))
        .await
        .expect("the stream exists");
    stream.info().await.expect("stream info").config.clone()
}

#[tokio::test]
async fn streams_are_created_with_the_configured_settings() {
    let nats = TestNats::new().await;
    let (js, naming) = (
        nats.jetstream(),
        longship_messaging::Naming::new(nats.prefix()),
    );
    ensure_stream(&js, &naming, SETTINGS, &settings())
        .await
        .expect("created");
    let config = stream_config(&nats, SETTINGS.name).await;
    assert_eq!(config.num_replicas, 1);
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.max_bytes, 8 << 20);
    assert_eq!(config.duplicate_window, Duration::from_secs(30));
    assert_eq!(
        config.discard,
        DiscardPolicy::New,
        "a full stream refuses new events rather than dropping unread ones"
    );
    // the dead-letter stream: the same replicas, storage and size, kept at least 30 days
    ensure_dead_letter_stream(&js, &naming, &settings())
        .await
        .expect("created");
    let dead = stream_config(&nats, "DEADLETTER").await;
    assert_eq!((dead.num_replicas, dead.storage), (1, StorageType::File));
    assert_eq!(dead.max_age, DEAD_LETTER_MIN_AGE);
    assert_eq!(dead.max_bytes, 8 << 20);
    // again with the same settings: nothing to do
    ensure_stream(&js, &naming, SETTINGS, &settings())
        .await
        .expect("idempotent");
    nats.cleanup().await;
}

#[tokio::test]
async fn a_changed_updatable_setting_is_applied_to_the_existing_stream_keeping_its_events() {
    let nats = TestNats::new().await;
    let (js, naming) = (
        nats.jetstream(),
        longship_messaging::Naming::new(nats.prefix()),
    );
    ensure_stream(&js, &naming, SETTINGS, &settings())
        .await
        .expect("created");
    js.publish(naming.subject("settings.v1.kept"), "kept".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let changed = StreamSettings {
        max_age: Duration::from_secs(7200),
        max_bytes: -1,
        duplicate_window: Duration::from_secs(90),
        ..settings()
    };
    let info = ensure_stream(&js, &naming, SETTINGS, &changed)
        .await
        .expect("updated");
    assert_eq!(info.config.max_age, Duration::from_secs(7200));
    assert_eq!(info.config.max_bytes, -1);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(90));
    let config = stream_config(&nats, SETTINGS.name).await;
    assert_eq!(
        (config.max_age, config.duplicate_window),
        (Duration::from_secs(7200), Duration::from_secs(90)),
        "the server holds the new settings"
    );
    assert_eq!(
        info.state.messages, 1,
        "the update keeps the stream's events"
    );
    nats.cleanup().await;
}

#[tokio::test]
async fn a_storage_change_is_refused_naming_the_setting() {
    let nats = TestNats::new().await;
    let (js, naming) = (
        nats.jetstream(),
        longship_messaging::Naming::new(nats.prefix()),
    );
    ensure_stream(&js, &naming, SETTINGS, &settings())
        .await
        .expect("created");
    let memory = StreamSettings {
        storage: StorageType::Memory,
        ..settings()
    };
    let err = ensure_stream(&js, &naming, SETTINGS, &memory)
        .await
        .expect_err("JetStream cannot change a stream's storage");
    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("NATS_STREAM_STORAGE") && message.contains(&naming.stream("SETTINGS")),
        "{message}"
    );
    assert_eq!(
        stream_config(&nats, SETTINGS.name).await.storage,
        StorageType::File
    );
    nats.cleanup().await;
}

#[tokio::test]
async fn replicas_a_single_server_cannot_hold_are_refused_at_once_naming_the_setting() {
    let nats = TestNats::new().await;
    let (js, naming) = (
        nats.jetstream(),
        longship_messaging::Naming::new(nats.prefix()),
    );
    let three = StreamSettings {
        replicas: 3,
        ..settings()
    };
    // a new stream: refused, not waited for (the retry loop gives up at once)
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        ensure_streams_with_retry(&js, &naming, SETTINGS, &three, &CancellationToken::new()),
    )
    .await
    .expect("refused at once, not retried (this test needs a single, non-clustered NATS server)")
    .expect_err("R3 on one server");
    assert!(!refused.is_transient());
    assert!(
        refused.to_string().contains("NATS_STREAM_REPLICAS"),
        "{refused}"
    );
    assert!(
        js.get_stream(naming.stream(SETTINGS.name)).await.is_err(),
        "no stream was created"
    );
    // an existing R1 stream: a single server would accept R3 and report replicas it does not
    // have, so the update is refused before it is sent
    ensure_stream(&js, &naming, SETTINGS, &settings())
        .await
        .expect("R1 created");
    let err = ensure_stream(&js, &naming, SETTINGS, &three)
        .await
        .expect_err("R3 on one server");
    assert!(err.to_string().contains("NATS_STREAM_REPLICAS"), "{err}");
    assert_eq!(stream_config(&nats, SETTINGS.name).await.num_replicas, 1);
    nats.cleanup().await;
}

#[tokio::test]
async fn a_durable_consumers_ack_wait_and_max_ack_pending_follow_the_config_keeping_its_position() {
    let mut h = Harness::start().await;
    let durable = "settings-consumer";
    let handler = ScriptedHandler::new(durable);
    let first = ConsumerSettings {
        ack_wait: Duration::from_secs(2),
        max_deliver: 3,
        max_ack_pending: Some(16),
    };
    let mut spec = Harness::consumer_spec(durable, 3).with_settings(&first);
    spec.start = Some(ConsumerStart::New);
    let stop = CancellationToken::new();
    let running = tokio::spawn(run_consumer(
        h.context(h.db.pool().clone()),
        spec.clone(),
        handler.clone(),
        stop.clone(),
    ));
    let info = eventually(
        "the consumer created",
        Duration::from_secs(10),
        async || h.consumer_info(durable).await,
    )
    .await;
    assert_eq!(info.config.ack_wait, Duration::from_secs(2));
    assert_eq!(info.config.max_ack_pending, 16);
    stop.cancel();
    running.await.expect("the consumer stops");

    // restarted with other settings (and another start position, which an existing consumer
    // ignores): the updatable settings change, the position stays
    let second = ConsumerSettings {
        ack_wait: Duration::from_secs(7),
        max_deliver: 4,
        max_ack_pending: None,
    };
    let mut spec = spec.with_settings(&second);
    spec.start = Some(ConsumerStart::All);
    h.spawn_consumer(spec, handler.clone());
    let info = eventually(
        "the consumer updated to the new settings",
        Duration::from_secs(10),
        async || {
            h.consumer_info(durable)
                .await
                .filter(|i| i.config.ack_wait == Duration::from_secs(7))
        },
    )
    .await;
    assert_eq!(
        info.config.max_ack_pending, 16,
        "unset: four times the concurrency of 4"
    );
    assert_eq!(info.config.deliver_policy, DeliverPolicy::New);
    // and it still delivers
    let event = envelope("acme", 0);
    h.publish_envelope(&event, &event.id.to_string()).await;
    eventually("the event handled", Duration::from_secs(10), async || {
        (handler.calls(event.id) == 1).then_some(())
    })
    .await;
    h.finish().await;
}
