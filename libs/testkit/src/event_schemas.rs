//! Event schemas in tests: a service's published schemas compared with the committed
//! `schemas/events/<service>/<type>.json`, and payloads validated against those files (formats
//! checked), so what a service really publishes is held to what its consumers were promised.

use std::collections::BTreeSet;
use std::time::Duration;

use longship_messaging::{EventEnvelope, Naming, PublishedSchema};

use crate::{TestNats, eventually, snapshot};

/// The directory of `service`'s schemas, relative to the repository root.
pub fn schema_dir(service: &str) -> String {
    format!("schemas/events/{service}")
}

/// Compares every schema in `published` with its committed file, and fails on committed files
/// no schema produces any more (a removed event type is a decision, made by deleting the file).
/// With `LONGSHIP_UPDATE_SNAPSHOTS=1` writes the files (and removes stale ones).
#[allow(clippy::panic)] // reason: a test assertion
pub fn assert_schema_snapshots(service: &str, published: &[PublishedSchema]) {
    let dir = schema_dir(service);
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for schema in published {
        names.insert(schema.file_name());
        if let Err(e) = snapshot::check(&format!("{dir}/{}", schema.file_name()), &schema.to_json())
        {
            problems.push(e);
        }
    }
    let on_disk = std::fs::read_dir(snapshot::repo_root().join(&dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"));
    for stale in on_disk
        .filter(|name| !names.contains(name))
        .collect::<Vec<_>>()
    {
        if snapshot::updating() {
            let _ = std::fs::remove_file(snapshot::repo_root().join(&dir).join(&stale));
        } else {
            problems.push(format!(
                "{dir}/{stale}: committed, but the service no longer publishes it (run `just snapshots`)"
            ));
        }
    }
    if !problems.is_empty() {
        panic!("{}", problems.join("\n\n"));
    }
}

/// The committed schema of `event_type` (published by `service`).
#[allow(clippy::panic)] // reason: a test assertion
pub fn committed_schema(service: &str, event_type: &str) -> serde_json::Value {
    let path = snapshot::repo_root()
        .join(schema_dir(service))
        .join(format!("{event_type}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `just snapshots`)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The problems of `payload` against `schema` (JSON Schema 2020-12, formats asserted), empty
/// when it is valid.
pub fn validation_errors(schema: &serde_json::Value, payload: &serde_json::Value) -> Vec<String> {
    let validator = match jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(v) => v,
        Err(e) => return vec![format!("the schema itself is invalid: {e}")],
    };
    validator
        .iter_errors(payload)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Checks a published event against `service`'s committed schema of its type: the type is one
/// the service declares, the envelope's `schema_version` is the schema's `x-schema-version`, and
/// the payload validates.
#[allow(clippy::panic)] // reason: a test assertion
pub fn assert_valid_event(service: &str, event: &EventEnvelope) {
    let schema = committed_schema(service, &event.event_type);
    let version = schema["x-schema-version"].as_u64().unwrap_or(0);
    assert_eq!(
        u64::from(event.schema_version),
        version,
        "{} published at schema version {}, its committed schema is version {version}",
        event.event_type,
        event.schema_version
    );
    let errors = validation_errors(&schema, &event.data);
    assert!(
        errors.is_empty(),
        "{} payload does not match schemas/events/{service}/{}.json:\n  {}\npayload: {}",
        event.event_type,
        event.event_type,
        errors.join("\n  "),
        event.data
    );
}

/// `value` with `extra` fields added to every object at every level (arrays' elements included):
/// what a newer producer might send; consumers must ignore them.
pub fn with_unknown_fields(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut out: serde_json::Map<String, serde_json::Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), with_unknown_fields(v)))
                .collect();
            out.insert(
                "x_unknown_field".into(),
                serde_json::json!({"nested": [1, "two", null]}),
            );
            out.insert("x_unknown_number".into(), serde_json::json!(42));
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(with_unknown_fields).collect())
        }
        other => other.clone(),
    }
}

/// Waits until every event type of `published` was published into `stream` (unprefixed) in
/// `nats`'s namespace (a stream not there yet counts as no events), and validates each event
/// against `service`'s committed schema.
pub async fn assert_published_events_valid(
    nats: &TestNats,
    service: &str,
    stream: &str,
    published: &[PublishedSchema],
) {
    let (js, naming) = (nats.jetstream(), Naming::new(nats.prefix()));
    for schema in published {
        let event_type = schema.event_type;
        let events = eventually(event_type, Duration::from_secs(20), || async {
            let events =
                longship_messaging::testing::stream_events(&js, &naming, stream, event_type)
                    .await
                    .unwrap_or_default();
            (!events.is_empty()).then_some(events)
        })
        .await;
        for event in &events {
            assert_valid_event(service, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked_and_unknown_fields_reach_every_level() {
        let schema = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"id": {"type": "string", "format": "uuid"},
                           "at": {"type": "string", "format": "date-time"}},
            "required": ["id", "at"]
        });
        let good = serde_json::json!({"id": "0190f0a0-0000-7000-8000-000000000000", "at": "2026-01-01T00:00:00Z"});
        assert!(validation_errors(&schema, &good).is_empty());
        let bad = serde_json::json!({"id": "not-a-uuid", "at": "yesterday"});
        assert_eq!(validation_errors(&schema, &bad).len(), 2);
        let wide = with_unknown_fields(&serde_json::json!({"a": [{"b": 1}], "c": {"d": 2}}));
        assert_eq!(wide["x_unknown_number"], 42);
        assert_eq!(wide["a"][0]["x_unknown_number"], 42);
        assert_eq!(wide["c"]["x_unknown_number"], 42);
        assert_eq!(wide["a"][0]["b"], 1);
    }
}
