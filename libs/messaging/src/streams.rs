//! The producers' streams and the dead-letter stream, with their settings from config: created when
//! missing, updated where JetStream allows when an existing stream's settings differ, and refused
//! (naming the setting) where it does not.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};

use crate::naming::{Naming, StreamSpec};

/// How the streams are stored and bounded (`NATS_STREAM_*`). The defaults are production's: three
/// replicas on file storage, events kept a week, at most 1 GiB per stream, a 2-minute duplicate
/// window. A single NATS server holds one replica only: development runs with `replicas: 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Copies of each stream on distinct servers of a NATS cluster (`NATS_STREAM_REPLICAS`, 1-5).
    pub replicas: usize,
    /// File or memory (`NATS_STREAM_STORAGE`). JetStream cannot change it on an existing stream.
    pub storage: StorageType,
    /// How long a stream keeps an event (`NATS_STREAM_MAX_AGE_SECS`; zero: no limit).
    pub max_age: Duration,
    /// The most bytes a stream holds (`NATS_STREAM_MAX_BYTES`; -1: no limit). A full stream
    /// refuses new events (the outbox keeps them and retries) instead of dropping old ones that a
    /// consumer may not have read yet.
    pub max_bytes: i64,
    /// Within this window JetStream drops a second publish of the same `Nats-Msg-Id`
    /// (`NATS_STREAM_DUPLICATE_WINDOW_SECS`): what makes the relay's republish after a crash
    /// harmless. At most `max_age` when that is set.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 3,
            storage: StorageType::File,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Dead letters are kept at least this long, whatever the event streams' `max_age`.
pub const DEAD_LETTER_MIN_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

impl StreamSettings {
    /// One replica, the other settings as in production: for a single NATS server (development,
    /// tests).
    pub fn single_node() -> StreamSettings {
        StreamSettings {
            replicas: 1,
            ..StreamSettings::default()
        }
    }

    /// The dead-letter stream's settings: these (replicas, storage, size, duplicate window), but
    /// kept at least [`DEAD_LETTER_MIN_AGE`] (30 days; dead letters wait for an operator).
    pub fn for_dead_letters(&self) -> StreamSettings {
        let max_age = if self.max_age.is_zero() {
            Duration::ZERO
        } else {
            self.max_age.max(DEAD_LETTER_MIN_AGE)
        };
        StreamSettings { max_age, ..*self }
    }

    fn config(&self, name: String, subject: String) -> Config {
        Config {
            name,
            subjects: vec![subject],
            storage: self.storage,
            num_replicas: self.replicas,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            discard: DiscardPolicy::New,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

/// Why a stream could not be made to match its settings.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// JetStream did not answer, or answered that it cannot serve the request now (no leader, a
    /// peer missing for the replicas): worth retrying.
    #[error("JetStream is not available for stream {stream}: {reason}")]
    Unavailable {
        /// The stream (prefixed).
        stream: String,
        /// What JetStream or the connection said.
        reason: String,
    },
    /// The settings cannot hold against this server, or the existing stream has a setting
    /// JetStream cannot change: start-up must stop.
    #[error("stream {stream}: {reason}")]
    Refused {
        /// The stream (prefixed).
        stream: String,
        /// What is wrong, naming the setting.
        reason: String,
    },
}

impl StreamError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StreamError::Unavailable { .. })
    }
}

const NOT_CLUSTERED: &str = "NATS_STREAM_REPLICAS is above 1 but the NATS server is not clustered: \
a single server holds one replica only (set NATS_STREAM_REPLICAS=1 for a single server, or run a \
NATS cluster with at least that many JetStream servers)";

/// Creates the stream with `settings` if missing; an existing stream whose replicas, size and age
/// limits or duplicate window differ is updated; one whose storage differs is refused (JetStream
/// cannot change it), as are replicas above 1 on a server that is not clustered. Idempotent; safe
/// to call from every replica at start-up.
pub async fn ensure_stream(
    js: &jetstream::Context,
    naming: &Naming,
    spec: StreamSpec,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Info, StreamError> {
    let wanted = settings.config(
        naming.stream(spec.name),
        naming.subject(&format!("{}.>", spec.subject_root)),
    );
    ensure(js, wanted).await
}

/// Creates or updates the dead-letter stream (`DEADLETTER` over `deadletter.>`), so dead letters
/// are kept for inspection, with [`StreamSettings::for_dead_letters`].
pub async fn ensure_dead_letter_stream(
    js: &jetstream::Context,
    naming: &Naming,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Info, StreamError> {
    let wanted = settings
        .for_dead_letters()
        .config(naming.dead_letter_stream(), naming.subject("deadletter.>"));
    ensure(js, wanted).await
}

/// Ensures `own` (the service's stream) and the dead-letter stream, retrying every second while
/// JetStream is unavailable, until both match their settings, `shutdown` is cancelled (`Ok`), or
/// JetStream refuses the settings (`Err`: start-up must stop). Services run it in the background
/// so they start (and report not-ready) while NATS is down.
pub async fn ensure_streams_with_retry(
    js: &jetstream::Context,
    naming: &Naming,
    own: StreamSpec,
    settings: &StreamSettings,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), StreamError> {
    let mut logged = false;
    loop {
        let attempt = async {
            ensure_stream(js, naming, own, settings).await?;
            ensure_dead_letter_stream(js, naming, settings).await?;
            Ok::<(), StreamError>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) if !logged => {
                tracing::warn!(error = %e, stream = own.name, "cannot create or check JetStream streams yet; retrying every second");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

async fn ensure(
    js: &jetstream::Context,
    wanted: Config,
) -> Result<jetstream::stream::Info, StreamError> {
    let name = wanted.name.clone();
    let existing = match js.get_stream(&name).await {
        Ok(stream) => stream.cached_info().clone(),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(err)
                if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                let created = js
                    .create_stream(wanted.clone())
                    .await
                    .map_err(|e| create_error(&name, e))?;
                let info = created.cached_info().clone();
                check_clustered(&info, &wanted)?;
                tracing::info!(stream = %name, replicas = wanted.num_replicas, "stream created");
                return Ok(info);
            }
            _ => return Err(unavailable(&name, e)),
        },
    };
    let changes = differences(&existing.config, &wanted)?;
    if changes.is_empty() {
        return Ok(existing);
    }
    if wanted.num_replicas > 1 && existing.cluster.as_ref().is_none_or(|c| c.name.is_none()) {
        // a single server would accept the update and report replicas it does not have
        return Err(refused(&name, NOT_CLUSTERED));
    }
    let updated = Config {
        num_replicas: wanted.num_replicas,
        max_age: wanted.max_age,
        max_bytes: wanted.max_bytes,
        discard: wanted.discard,
        duplicate_window: wanted.duplicate_window,
        ..existing.config
    };
    let info = js
        .update_stream(&updated)
        .await
        .map_err(|e| create_error(&name, e))?;
    tracing::warn!(stream = %name, changed = %changes.join(", "), "stream settings updated to the configured ones");
    Ok(info)
}

/// The settings of `existing` that differ from `wanted` and JetStream can change; an error for
/// one it cannot change.
fn differences(existing: &Config, wanted: &Config) -> Result<Vec<String>, StreamError> {
    if existing.storage != wanted.storage {
        return Err(refused(
            &wanted.name,
            &format!(
                "its storage is {} but NATS_STREAM_STORAGE asks for {}, and JetStream cannot \
                 change a stream's storage (keep the setting, or move the events to a new stream \
                 and delete this one)",
                storage_name(existing.storage),
                storage_name(wanted.storage)
            ),
        ));
    }
    let unlimited = |bytes: i64| if bytes <= 0 { -1 } else { bytes };
    let mut changes = Vec::new();
    let mut differs = |what: &str, was: String, now: String| {
        if was != now {
            changes.push(format!("{what} {was} -> {now}"));
        }
    };
    differs(
        "replicas (NATS_STREAM_REPLICAS)",
        existing.num_replicas.max(1).to_string(),
        wanted.num_replicas.to_string(),
    );
    differs(
        "max age (NATS_STREAM_MAX_AGE_SECS)",
        existing.max_age.as_secs().to_string(),
        wanted.max_age.as_secs().to_string(),
    );
    differs(
        "max bytes (NATS_STREAM_MAX_BYTES)",
        unlimited(existing.max_bytes).to_string(),
        unlimited(wanted.max_bytes).to_string(),
    );
    differs(
        "duplicate window (NATS_STREAM_DUPLICATE_WINDOW_SECS)",
        existing.duplicate_window.as_secs().to_string(),
        wanted.duplicate_window.as_secs().to_string(),
    );
    differs(
        "discard policy",
        format!("{:?}", existing.discard),
        format!("{:?}", wanted.discard),
    );
    Ok(changes)
}

fn storage_name(storage: StorageType) -> &'static str {
    match storage {
        StorageType::File => "file",
        StorageType::Memory => "memory",
    }
}

/// Replicas above 1 need a cluster: refuses a stream a server reports without one.
fn check_clustered(info: &jetstream::stream::Info, wanted: &Config) -> Result<(), StreamError> {
    if wanted.num_replicas > 1 && info.cluster.as_ref().is_none_or(|c| c.name.is_none()) {
        return Err(refused(&wanted.name, NOT_CLUSTERED));
    }
    Ok(())
}

fn create_error(stream: &str, e: jetstream::context::CreateStreamError) -> StreamError {
    use jetstream::ErrorCode;
    use jetstream::context::CreateStreamErrorKind as Kind;
    match e.kind() {
        Kind::JetStream(err) if err.error_code() == ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED => {
            refused(stream, NOT_CLUSTERED)
        }
        // no leader yet, not enough peers up for the replicas, out of resources for now: these
        // pass (a node restarts, an election ends)
        Kind::JetStream(err)
            if err.code() == 503
                || [
                    ErrorCode::CLUSTER_NOT_AVAILABLE,
                    ErrorCode::INSUFFICIENT_RESOURCES,
                    ErrorCode(10005), // no suitable peers for placement
                ]
                .contains(&err.error_code()) =>
        {
            StreamError::Unavailable {
                stream: stream.to_owned(),
                reason: format!(
                    "{err} (a NATS cluster needs NATS_STREAM_REPLICAS servers with JetStream up)"
                ),
            }
        }
        Kind::JetStream(err) => refused(stream, &format!("JetStream refused its settings: {err}")),
        _ => unavailable(stream, e),
    }
}

fn refused(stream: &str, reason: &str) -> StreamError {
    StreamError::Refused {
        stream: stream.to_owned(),
        reason: reason.to_owned(),
    }
}

fn unavailable(stream: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError::Unavailable {
        stream: stream.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_defaults_and_the_dead_letter_stream() {
        let defaults = StreamSettings::default();
        assert_eq!(defaults.replicas, 3);
        assert_eq!(defaults.storage, StorageType::File);
        assert_eq!(defaults.max_age, Duration::from_secs(604_800));
        assert_eq!(defaults.max_bytes, 1_073_741_824);
        assert_eq!(defaults.duplicate_window, Duration::from_secs(120));
        let dead = defaults.for_dead_letters();
        assert_eq!(dead.max_age, DEAD_LETTER_MIN_AGE);
        assert_eq!((dead.replicas, dead.storage), (3, StorageType::File));
        let unlimited = StreamSettings {
            max_age: Duration::ZERO,
            ..defaults
        };
        assert_eq!(unlimited.for_dead_letters().max_age, Duration::ZERO);
        let longer = StreamSettings {
            max_age: DEAD_LETTER_MIN_AGE * 2,
            ..defaults
        };
        assert_eq!(longer.for_dead_letters().max_age, DEAD_LETTER_MIN_AGE * 2);
    }

    #[test]
    fn storage_cannot_change_the_rest_can() {
        let settings = StreamSettings::single_node();
        let existing = settings.config("S".into(), "s.>".into());
        assert!(differences(&existing, &existing).expect("same").is_empty());
        let memory = StreamSettings {
            storage: StorageType::Memory,
            ..settings
        }
        .config("S".into(), "s.>".into());
        let err = differences(&existing, &memory).expect_err("storage");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("NATS_STREAM_STORAGE"), "{err}");
        let shorter = StreamSettings {
            max_age: Duration::from_secs(60),
            ..settings
        }
        .config("S".into(), "s.>".into());
        let changes = differences(&existing, &shorter).expect("updatable");
        assert_eq!(changes, ["max age (NATS_STREAM_MAX_AGE_SECS) 604800 -> 60"]);
    }
}
