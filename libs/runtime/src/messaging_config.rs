//! The messaging settings of the common configuration: the outbox relay's tuning (`OUTBOX_*`),
//! how streams are stored (`NATS_STREAM_*`) and how durable consumers are delivered to
//! (`NATS_CONSUMER_*`). Production defaults; a value out of range stops start-up naming it.

use std::time::Duration;

use async_nats::jetstream::stream::StorageType;
use longship_messaging::{ConsumerSettings, RelayConfig, StreamSettings};

use crate::{ConfigError, Env};

/// The largest `NATS_STREAM_MAX_BYTES` (1 PiB) and the smallest limit (1 MiB).
const MAX_BYTES_RANGE: (i64, i64) = (1 << 20, 1 << 50);

/// `OUTBOX_BATCH_SIZE`, `OUTBOX_LINGER_MS` over the relay's defaults.
pub(crate) fn relay(env: &Env) -> Result<RelayConfig, ConfigError> {
    let relay = RelayConfig::default();
    let outbox = RelayConfig {
        // at most 10,000, so the cast cannot wrap
        batch_size: env.within_or(
            "OUTBOX_BATCH_SIZE",
            relay.batch_size.unsigned_abs(),
            (1, 10_000),
            "events",
        )? as i64,
        linger: Duration::from_millis(env.within_or(
            "OUTBOX_LINGER_MS",
            relay.linger.as_millis() as u64,
            (0, 1000),
            "milliseconds",
        )?),
        ..relay
    };
    Ok(outbox)
}

/// `NATS_STREAM_REPLICAS`, `NATS_STREAM_STORAGE`, `NATS_STREAM_MAX_AGE_SECS`,
/// `NATS_STREAM_MAX_BYTES`, `NATS_STREAM_DUPLICATE_WINDOW_SECS` over [`StreamSettings::default`].
pub(crate) fn streams(env: &Env) -> Result<StreamSettings, ConfigError> {
    let defaults = StreamSettings::default();
    let replicas = env.within_or(
        "NATS_STREAM_REPLICAS",
        defaults.replicas as u64,
        (1, 5),
        "replicas (1 for a single NATS server)",
    )? as usize;
    let storage = match env.get("NATS_STREAM_STORAGE").map(|v| v.trim().to_owned()) {
        None => defaults.storage,
        Some(v) if v == "file" => StorageType::File,
        Some(v) if v == "memory" => StorageType::Memory,
        Some(v) => {
            return Err(ConfigError {
                variable: "NATS_STREAM_STORAGE".into(),
                value: v,
                reason: "must be file or memory".into(),
            });
        }
    };
    let max_age = env.secs_or(
        "NATS_STREAM_MAX_AGE_SECS",
        defaults.max_age.as_secs(),
        0,
        100 * 365 * 24 * 3600,
    )?;
    let max_bytes: i64 = env.parse_or("NATS_STREAM_MAX_BYTES", defaults.max_bytes)?;
    let (min, max) = MAX_BYTES_RANGE;
    if max_bytes != -1 && !(min..=max).contains(&max_bytes) {
        return Err(ConfigError {
            variable: "NATS_STREAM_MAX_BYTES".into(),
            value: max_bytes.to_string(),
            reason: format!(
                "must be -1 (no limit) or between {min} (1 MiB) and {max} (1 PiB) bytes"
            ),
        });
    }
    let duplicate_window = env.secs_or(
        "NATS_STREAM_DUPLICATE_WINDOW_SECS",
        defaults.duplicate_window.as_secs(),
        1,
        7 * 24 * 3600,
    )?;
    if !max_age.is_zero() && duplicate_window > max_age {
        return Err(ConfigError {
            variable: "NATS_STREAM_DUPLICATE_WINDOW_SECS".into(),
            value: duplicate_window.as_secs().to_string(),
            reason: format!(
                "must not exceed NATS_STREAM_MAX_AGE_SECS ({}): JetStream cannot remember an event \
                 longer than it keeps it",
                max_age.as_secs()
            ),
        });
    }
    Ok(StreamSettings {
        replicas,
        storage,
        max_age,
        max_bytes,
        duplicate_window,
    })
}

/// `NATS_CONSUMER_ACK_WAIT_SECS`, `NATS_CONSUMER_MAX_DELIVER`, `NATS_CONSUMER_MAX_ACK_PENDING` over
/// [`ConsumerSettings::default`].
pub(crate) fn consumers(env: &Env) -> Result<ConsumerSettings, ConfigError> {
    let defaults = ConsumerSettings::default();
    let max_ack_pending = match env.get("NATS_CONSUMER_MAX_ACK_PENDING") {
        None => None,
        Some(_) => {
            Some(
                env.within_or("NATS_CONSUMER_MAX_ACK_PENDING", 0, (1, 100_000), "messages")? as i64,
            )
        }
    };
    Ok(ConsumerSettings {
        ack_wait: env.secs_or(
            "NATS_CONSUMER_ACK_WAIT_SECS",
            defaults.ack_wait.as_secs(),
            1,
            3600,
        )?,
        max_deliver: env.within_or(
            "NATS_CONSUMER_MAX_DELIVER",
            defaults.max_deliver.unsigned_abs(),
            (1, 100),
            "deliveries",
        )? as i64,
        max_ack_pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_defaults() {
        let env = Env::from_pairs([("X", "1")]);
        let streams = streams(&env).expect("defaults");
        assert_eq!(streams, StreamSettings::default());
        assert_eq!(streams.replicas, 3);
        assert_eq!(streams.storage, StorageType::File);
        assert_eq!(streams.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(streams.max_bytes, 1 << 30);
        assert_eq!(streams.duplicate_window, Duration::from_secs(120));
        let consumers = consumers(&env).expect("defaults");
        assert_eq!(consumers.ack_wait, Duration::from_secs(30));
        assert_eq!(consumers.max_deliver, 5);
        assert_eq!(consumers.max_ack_pending, None);
    }

    #[test]
    fn every_setting_is_read() {
        let env = Env::from_pairs([
            ("NATS_STREAM_REPLICAS", "1"),
            ("NATS_STREAM_STORAGE", "memory"),
            ("NATS_STREAM_MAX_AGE_SECS", "0"),
            ("NATS_STREAM_MAX_BYTES", "-1"),
            ("NATS_STREAM_DUPLICATE_WINDOW_SECS", "600"),
            ("NATS_CONSUMER_ACK_WAIT_SECS", "90"),
            ("NATS_CONSUMER_MAX_DELIVER", "10"),
            ("NATS_CONSUMER_MAX_ACK_PENDING", "256"),
        ]);
        let streams = streams(&env).expect("streams");
        assert_eq!(
            streams,
            StreamSettings {
                replicas: 1,
                storage: StorageType::Memory,
                max_age: Duration::ZERO,
                max_bytes: -1,
                duplicate_window: Duration::from_secs(600),
            }
        );
        let consumers = consumers(&env).expect("consumers");
        assert_eq!(
            consumers,
            ConsumerSettings {
                ack_wait: Duration::from_secs(90),
                max_deliver: 10,
                max_ack_pending: Some(256),
            }
        );
    }

    #[test]
    fn bad_values_name_their_variable_and_the_allowed_range() {
        let cases = [
            ("NATS_STREAM_REPLICAS", "0", "between 1 and 5"),
            ("NATS_STREAM_REPLICAS", "6", "between 1 and 5"),
            ("NATS_STREAM_REPLICAS", "three", "invalid digit"),
            ("NATS_STREAM_STORAGE", "disk", "file or memory"),
            ("NATS_STREAM_MAX_AGE_SECS", "-1", "invalid digit"),
            ("NATS_STREAM_MAX_BYTES", "-2", "-1 (no limit) or between"),
            ("NATS_STREAM_MAX_BYTES", "0", "-1 (no limit) or between"),
            ("NATS_STREAM_MAX_BYTES", "1024", "1048576 (1 MiB)"),
            ("NATS_STREAM_DUPLICATE_WINDOW_SECS", "0", "between 1 and"),
            ("NATS_CONSUMER_ACK_WAIT_SECS", "0", "between 1 and 3600"),
            ("NATS_CONSUMER_MAX_DELIVER", "0", "between 1 and 100"),
            ("NATS_CONSUMER_MAX_ACK_PENDING", "0", "between 1 and 100000"),
        ];
        for (key, value, range) in cases {
            let env = Env::from_pairs([(key, value)]);
            let err = streams(&env)
                .map(|_| ())
                .and_then(|()| consumers(&env).map(|_| ()))
                .expect_err(key);
            assert_eq!(err.variable, key, "{err}");
            assert!(err.to_string().contains(range), "{key}={value}: {err}");
        }
    }

    #[test]
    fn the_duplicate_window_fits_in_the_max_age() {
        let env = Env::from_pairs([
            ("NATS_STREAM_MAX_AGE_SECS", "60"),
            ("NATS_STREAM_DUPLICATE_WINDOW_SECS", "120"),
        ]);
        let err = streams(&env).expect_err("window longer than the age");
        assert_eq!(err.variable, "NATS_STREAM_DUPLICATE_WINDOW_SECS");
        assert!(
            err.reason.contains("NATS_STREAM_MAX_AGE_SECS (60)"),
            "{err}"
        );
        let unlimited = env.set("NATS_STREAM_MAX_AGE_SECS", "0");
        assert!(streams(&unlimited).is_ok());
    }
}
