//! Event schemas and versions: what a producer declares it publishes, and what a consumer accepts.
//!
//! A producer lists its [`PublishedSchema`]s (one per event type, at the version it publishes),
//! declaring each event once with [`published_events!`](crate::published_events);
//! the JSON Schema of each is generated from the payload's Rust type (`#[derive(JsonSchema)]`),
//! kept in the repository as `schemas/events/<service>/<type>.json` and compared with the previous
//! release by `just check-compat`. A consumer reads a payload through [`ConsumedPayload`]: its
//! view names the event's [`EventContract`] (the schema versions there are) and upcasts older ones
//! to the shape it reads, so a producer may move to a new version while payloads of the old one
//! are still in the stream.
//! Unknown fields are ignored at every level (no `deny_unknown_fields` on payload types).

use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;

use crate::EventEnvelope;

/// The JSON Schema of one event type at the version its producer publishes.
#[derive(Debug, Clone)]
pub struct PublishedSchema {
    /// `<service>.v<N>.<event>`.
    pub event_type: &'static str,
    /// The payload's schema version (the envelope's `schema_version`).
    pub version: u32,
    /// The schema (JSON Schema 2020-12) with `x-event-type` and `x-schema-version`.
    pub schema: Schema,
}

impl PublishedSchema {
    /// The schema of payload `T`, published as `event_type` at schema `version`.
    pub fn of<T: JsonSchema>(event_type: &'static str, version: u32) -> PublishedSchema {
        let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let mut schema = generator.into_root_schema_for::<T>();
        schema.insert("x-event-type".to_owned(), event_type.into());
        schema.insert("x-schema-version".to_owned(), version.into());
        PublishedSchema {
            event_type,
            version,
            schema,
        }
    }

    /// The committed file's name: `<type>.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.event_type)
    }

    /// The schema as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        self.schema.as_value().clone()
    }
}

/// Declares the event types a service publishes, each once, grouped by the payload type that
/// carries them and its schema version: each type name as a `&str` constant, and a
/// `published_schemas()` that lists every one with its payload's schema and version (what
/// `schemas/events/<service>/` holds and `just check-compat` compares):
///
/// ```
/// # #[derive(schemars::JsonSchema)]
/// # struct ItemCreated { name: String }
/// # #[derive(schemars::JsonSchema)]
/// # struct ItemMoved { to: String }
/// longship_messaging::published_events! {
///     ItemCreated, version 1 => {
///         /// An item was created.
///         ITEM_CREATED = "shop.v1.item_created";
///     }
///     ItemMoved, version 2 => {
///         /// An item moved to another shelf.
///         ITEM_MOVED = "shop.v1.item_moved";
///         /// An item came back to its shelf.
///         ITEM_RETURNED = "shop.v1.item_returned";
///     }
/// }
/// assert_eq!(ITEM_CREATED, "shop.v1.item_created");
/// assert_eq!(published_schemas()[0].version, 1);
/// assert_eq!(published_schemas()[2].event_type, ITEM_RETURNED);
/// ```
///
/// The type name may be another crate's constant (an event whose name its consumers share, e.g.
/// an [`EventContract`]'s `name`).
#[macro_export]
macro_rules! published_events {
    (
        $( $payload:ty, version $version:expr => {
            $( $(#[$meta:meta])* $name:ident = $event_type:expr; )+
        } )+
    ) => {
        $( $( $(#[$meta])* pub const $name: &str = $event_type; )+ )+

        /// Every event type this service publishes, with its payload's schema and version.
        pub fn published_schemas() -> ::std::vec::Vec<$crate::PublishedSchema> {
            ::std::vec![ $( $( $crate::PublishedSchema::of::<$payload>($name, $version), )+ )+ ]
        }
    };
}

/// An event type as its consumers know it, declared once by its producer's side (the names that
/// cross service boundaries live in `longship-contracts`): its type name, the stream that carries
/// it, the schema versions published so far and the times each later version added. A consumer's
/// payload names the contract it reads ([`ConsumedPayload::EVENT`]); its consumer's subscription
/// and the reading of older versions follow from it.
#[derive(Debug, Clone, Copy)]
pub struct EventContract {
    /// `<service>.v<N>.<event>`.
    pub name: &'static str,
    /// The stream it is published on.
    pub stream: crate::StreamSpec,
    /// Its schema versions, oldest first; the last one is the one published now.
    pub versions: &'static [u32],
    /// Times added in a later version, `(the version that added it, the field)`: a payload of an
    /// older version takes its event's own time (`occurred_at`) for them.
    pub event_time_fields: &'static [(u32, &'static str)],
}

impl EventContract {
    /// The event `name` on `stream`, with schema version 1 only.
    pub const fn new(name: &'static str, stream: crate::StreamSpec) -> EventContract {
        EventContract {
            name,
            stream,
            versions: &[1],
            event_time_fields: &[],
        }
    }

    /// The schema version published now (the newest).
    pub const fn version(&self) -> u32 {
        match self.versions.last() {
            Some(version) => *version,
            None => 1,
        }
    }
}

/// Why an event's payload cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload's schema version is not one the consumer declares (a producer ahead of its
    /// consumers: deploy the consumers that accept it first).
    #[error(
        "{event_type} schema version {version} is not accepted (this consumer reads {accepted:?})"
    )]
    UnsupportedVersion {
        /// The event's type.
        event_type: String,
        /// Its schema version.
        version: u32,
        /// The versions the consumer accepts.
        accepted: &'static [u32],
    },
    /// An older payload could not be upcast.
    #[error("{event_type} schema version {version} cannot be upcast: {reason}")]
    Upcast {
        /// The event's type.
        event_type: String,
        /// Its schema version.
        version: u32,
        /// Why.
        reason: String,
    },
    /// The payload does not have the shape of its version.
    #[error("{event_type} payload: {source}")]
    Shape {
        /// The event's type.
        event_type: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// A payload a consumer reads: its own view of an event (the fields it needs), of the shape of
/// the event's newest schema version; [`ConsumedPayload::upcast`] brings older payloads to that
/// shape.
pub trait ConsumedPayload: DeserializeOwned {
    /// The event it is a view of: its name, stream and schema versions (the versions it accepts).
    const EVENT: EventContract;

    /// Turns `data`, a payload of the older schema `version` (one of the event's versions), into
    /// the newest version's shape; `envelope` is the event it came in. The default fills in the
    /// event's [`EventContract::event_time_fields`] added after `version` and accepts the rest
    /// unchanged (versions that only added optional fields).
    fn upcast(
        version: u32,
        data: serde_json::Value,
        envelope: &EventEnvelope,
    ) -> Result<serde_json::Value, String> {
        Self::EVENT
            .event_time_fields
            .iter()
            .filter(|(added_in, _)| *added_in > version)
            .try_fold(data, |data, (_, field)| {
                with_field(data, field, envelope.occurred_at)
            })
    }
}

/// For an upcast: `data` (an object) with `field` set to `value` when it lacks it; the usual step
/// from a version that did not have the field to one that does.
pub fn with_field(
    mut data: serde_json::Value,
    field: &str,
    value: impl serde::Serialize,
) -> Result<serde_json::Value, String> {
    let object = data
        .as_object_mut()
        .ok_or_else(|| "the payload is not a JSON object".to_owned())?;
    if !object.contains_key(field) {
        let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
        object.insert(field.to_owned(), value);
    }
    Ok(data)
}

impl EventEnvelope {
    /// The payload read as `T`: refused when its schema version is not one `T` accepts,
    /// upcast when it is an older one.
    pub fn read<T: ConsumedPayload>(&self) -> Result<T, PayloadError> {
        let newest = T::EVENT.version();
        if !T::EVENT.versions.contains(&self.schema_version) {
            return Err(PayloadError::UnsupportedVersion {
                event_type: self.event_type.clone(),
                version: self.schema_version,
                accepted: T::EVENT.versions,
            });
        }
        let data = if self.schema_version == newest {
            self.data.clone()
        } else {
            T::upcast(self.schema_version, self.data.clone(), self).map_err(|reason| {
                PayloadError::Upcast {
                    event_type: self.event_type.clone(),
                    version: self.schema_version,
                    reason,
                }
            })?
        };
        T::deserialize(data).map_err(|source| PayloadError::Shape {
            event_type: self.event_type.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use longship_tenant::TenantId;
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    use super::*;

    /// Version 2 added `confirmed_at`; version 1 payloads take the event's time.
    #[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
    struct Confirmed {
        order_id: Uuid,
        confirmed_at: DateTime<Utc>,
        #[serde(default)]
        note: Option<String>,
    }

    impl ConsumedPayload for Confirmed {
        const EVENT: EventContract = EventContract {
            name: "orders.v1.order_confirmed",
            stream: crate::StreamSpec::new("ORDERS", "orders"),
            versions: &[1, 2],
            event_time_fields: &[(2, "confirmed_at")],
        };
    }

    fn envelope(version: u32, data: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
            id: Uuid::now_v7(),
            event_type: "orders.v1.order_confirmed".into(),
            tenant_id: TenantId::parse("acme").unwrap_or_else(|_| unreachable!()),
            occurred_at: "2026-01-02T03:04:05Z".parse().unwrap_or_default(),
            schema_version: version,
            data,
        }
    }

    #[test]
    fn reads_the_newest_version_and_upcasts_older_ones() {
        let id = Uuid::now_v7();
        let v2 = envelope(
            2,
            serde_json::json!({"order_id": id, "confirmed_at": "2026-05-05T00:00:00Z", "extra": {"x": 1}}),
        );
        let read: Confirmed = v2.read().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.confirmed_at.to_rfc3339(), "2026-05-05T00:00:00+00:00");
        let v1 = envelope(1, serde_json::json!({"order_id": id, "unknown": [1, 2]}));
        let read: Confirmed = v1.read().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.confirmed_at, v1.occurred_at);
        assert_eq!(read.order_id, id);
        // a version 1 payload that has the field keeps its own value
        let given = "2026-07-07T00:00:00Z";
        let v1 = envelope(
            1,
            serde_json::json!({"order_id": id, "confirmed_at": given}),
        );
        let read: Confirmed = v1.read().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.confirmed_at.to_rfc3339(), "2026-07-07T00:00:00+00:00");
    }

    #[test]
    fn refuses_versions_it_does_not_declare_and_bad_shapes() {
        let id = Uuid::now_v7();
        for version in [0, 3] {
            let error = envelope(version, serde_json::json!({"order_id": id}))
                .read::<Confirmed>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("is not accepted"), "{error}");
        }
        let error = envelope(1, serde_json::json!([1]))
            .read::<Confirmed>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("cannot be upcast"), "{error}");
        let error = envelope(2, serde_json::json!({"order_id": "nope"}))
            .read::<Confirmed>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("payload"), "{error}");
    }

    #[test]
    fn an_envelope_with_unknown_fields_still_decodes() {
        let bytes = br#"{"id":"0190f0a0-0000-7000-8000-000000000000","type":"orders.v1.order_confirmed","tenant_id":"acme","occurred_at":"2026-01-01T00:00:00Z","schema_version":2,"data":{"order_id":"0190f0a0-0000-7000-8000-000000000001","confirmed_at":"2026-01-01T00:00:00Z","more":{"x":1}},"priority":"high","routing":{"zone":"eu"}}"#;
        let envelope = EventEnvelope::decode(bytes).unwrap_or_else(|e| panic!("{e}"));
        let read: Confirmed = envelope.read().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read.order_id.to_string(),
            "0190f0a0-0000-7000-8000-000000000001"
        );
    }

    #[test]
    fn published_schema_names_its_type_and_version() {
        let published = PublishedSchema::of::<Confirmed>("orders.v1.order_confirmed", 2);
        let json = published.to_json();
        assert_eq!(json["x-event-type"], "orders.v1.order_confirmed");
        assert_eq!(json["x-schema-version"], 2);
        assert_eq!(json["properties"]["order_id"]["format"], "uuid");
        assert_eq!(json["properties"]["confirmed_at"]["format"], "date-time");
        assert_eq!(published.file_name(), "orders.v1.order_confirmed.json");
    }
}
