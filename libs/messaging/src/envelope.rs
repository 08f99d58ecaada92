//! The event envelope.

use chrono::{DateTime, Utc};
use longship_tenant::TenantId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event as published: the JSON body of every message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Unique id (UUID v7, time-ordered); also the `Nats-Msg-Id`.
    pub id: Uuid,
    /// `<service>.v1.<event>`, e.g. `orders.v1.order_confirmed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The tenant the event belongs to.
    pub tenant_id: TenantId,
    /// When the state change happened.
    pub occurred_at: DateTime<Utc>,
    /// Payload schema version.
    pub schema_version: u32,
    /// The payload.
    pub data: serde_json::Value,
}

/// Why bytes are not an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON or not the envelope's shape.
    #[error("not an event envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The type is not `<service>.v<N>.<event>`.
    #[error("invalid event type {0:?}")]
    InvalidType(String),
}

impl EventEnvelope {
    /// Decodes and validates a message body.
    pub fn decode(bytes: &[u8]) -> Result<EventEnvelope, DecodeError> {
        if bytes.len() > 1024 * 1024 {
            return Err(DecodeError::InvalidType("oversized envelope".into()));
        }
        let envelope: EventEnvelope = serde_json::from_slice(bytes)?;
        if !valid_type(&envelope.event_type) {
            return Err(DecodeError::InvalidType(envelope.event_type));
        }
        Ok(envelope)
    }

    /// The payload as a typed value.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

/// An event to enqueue.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `<service>.v1.<event>`.
    pub event_type: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Payload.
    pub data: serde_json::Value,
    /// Payload schema version.
    pub schema_version: u32,
}

impl NewEvent {
    /// An event of `event_type` with a serialisable payload (schema version 1).
    pub fn new(
        event_type: &str,
        tenant_id: &TenantId,
        data: &impl Serialize,
    ) -> Result<NewEvent, serde_json::Error> {
        Ok(NewEvent {
            event_type: event_type.to_owned(),
            tenant_id: tenant_id.clone(),
            data: serde_json::to_value(data)?,
            schema_version: 1,
        })
    }
}

impl NewEvent {
    /// The same event at payload schema `version` (a producer that moved to a newer version of
    /// the event's schema; see [`crate::schemas`]).
    pub fn with_schema_version(mut self, version: u32) -> NewEvent {
        self.schema_version = version;
        self
    }
}

/// `<service>.v<N>.<event>` with lower-case words.
pub(crate) fn valid_type(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        && parts[1]
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_round_trip_and_rejects_garbage() {
        let envelope = EventEnvelope {
            id: Uuid::now_v7(),
            event_type: "orders.v1.order_confirmed".into(),
            tenant_id: TenantId::parse("acme").unwrap_or_else(|_| unreachable!()),
            occurred_at: Utc::now(),
            schema_version: 1,
            data: serde_json::json!({"order_id": "x"}),
        };
        let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
        assert_eq!(EventEnvelope::decode(&bytes).ok(), Some(envelope));
        for garbage in [
            &b""[..],
            b"null",
            b"{}",
            b"[1,2]",
            b"\xff\xfe",
            br#"{"id":"nope"}"#,
        ] {
            assert!(EventEnvelope::decode(garbage).is_err());
        }
        let bad_tenant = br#"{"id":"0190f0a0-0000-7000-8000-000000000000","type":"orders.v1.x","tenant_id":"ACME","occurred_at":"2026-01-01T00:00:00Z","schema_version":1,"data":{}}"#;
        assert!(EventEnvelope::decode(bad_tenant).is_err());
        let bad_type = br#"{"id":"0190f0a0-0000-7000-8000-000000000000","type":"orders.x","tenant_id":"acme","occurred_at":"2026-01-01T00:00:00Z","schema_version":1,"data":{}}"#;
        assert!(matches!(
            EventEnvelope::decode(bad_type),
            Err(DecodeError::InvalidType(_))
        ));
    }

    #[test]
    fn event_types() {
        assert!(valid_type("orders.v1.order_confirmed"));
        assert!(valid_type("payments.v12.payment_captured"));
        assert!(!valid_type("orders.order_confirmed"));
        assert!(!valid_type("orders.vx.a"));
        assert!(!valid_type("Orders.v1.a"));
        assert!(!valid_type("orders.v1.a.b"));
        assert!(!valid_type("orders.v1.>"));
    }
}
