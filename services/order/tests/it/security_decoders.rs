//! Property tests of the decoders that take outside bytes: none of them panics, whatever
//! it is fed; each accepts exactly what its rule says.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use longship_messaging::EventEnvelope;
use longship_tenant::{AuthConfig, Authenticator, JwtAlgorithm};
use order::domain::{PlaceOrderRequest, fingerprint, valid_idempotency_key, validate};
use proptest::prelude::*;

const SECRET: &str = "a-proptest-secret-long-enough";
const RSA_PUBLIC: &str = include_str!("../../../../libs/tenant/tests/it/fixtures/rsa_public.pem");

fn authenticators() -> [Authenticator; 2] {
    let hs = Authenticator::new(&AuthConfig {
        allow_tenant_header: true,
        algorithm: JwtAlgorithm::Hs256,
        secret: Some(SECRET.into()),
        public_key_pem: None,
        ..AuthConfig::default()
    })
    .expect("hs256");
    let rs = Authenticator::new(&AuthConfig {
        allow_tenant_header: false,
        algorithm: JwtAlgorithm::Rs256,
        secret: None,
        public_key_pem: Some(RSA_PUBLIC.into()),
        ..AuthConfig::default()
    })
    .expect("rs256");
    [hs, rs]
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    "\\PC{0,10}",
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("tenant_id".to_owned()),
                    Just("occurred_at".to_owned()),
                    Just("schema_version".to_owned()),
                    Just("data".to_owned()),
                    Just("customer_id".to_owned()),
                    Just("currency".to_owned()),
                    Just("items".to_owned()),
                    Just("sku".to_owned()),
                    Just("quantity".to_owned()),
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid envelope's JSON, so mutations start close to what is accepted.
fn valid_envelope() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "0190f0a0-0000-7000-8000-000000000000",
        "type": "orders.v1.order_confirmed",
        "tenant_id": "acme",
        "occurred_at": "2026-01-01T00:00:00Z",
        "schema_version": 1,
        "data": {"order_id": "0190f0a0-0000-7000-8000-000000000001"}
    }))
    .expect("json")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn event_envelope_decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = EventEnvelope::decode(&bytes);
    }

    #[test]
    fn event_envelope_decode_never_panics_on_mutated_envelopes(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_envelope();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
        if let Ok(envelope) = EventEnvelope::decode(&bytes) {
            // what is accepted is well-formed: a valid tenant and a `<service>.v<N>.<event>` type
            prop_assert!(longship_tenant::TenantId::parse(envelope.tenant_id.as_str()).is_ok());
            prop_assert_eq!(envelope.event_type.split('.').count(), 3);
        }
    }

    #[test]
    fn event_envelope_decode_never_panics_on_json_shaped_input(value in json_value()) {
        let bytes = serde_json::to_vec(&value).expect("json");
        let _ = EventEnvelope::decode(&bytes);
    }

    #[test]
    fn verify_token_never_panics_on_arbitrary_strings(token in "\\PC{0,300}") {
        for auth in &authenticators() {
            prop_assert!(auth.verify_token(&token).is_err());
        }
    }

    #[test]
    fn verify_token_never_panics_on_jwt_shaped_strings(
        header in json_value(),
        claims in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
        alg in prop_oneof![
            Just("HS256".to_owned()),
            Just("RS256".to_owned()),
            Just("ES256".to_owned()),
            Just("none".to_owned()),
            Just("HS512".to_owned()),
            Just("PS256".to_owned()),
            "\\PC{0,8}",
        ],
    ) {
        let header = match header {
            serde_json::Value::Object(mut m) => {
                m.insert("alg".into(), alg.into());
                serde_json::Value::Object(m)
            }
            other => other,
        };
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(&signature),
        );
        // never accepted: nobody here knows the secret or the private key
        for auth in &authenticators() {
            prop_assert!(auth.verify_token(&token).is_err());
        }
    }

    #[test]
    fn authenticate_never_panics_on_arbitrary_header_bytes(
        authorization in prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
        tenant in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
    ) {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = authorization.and_then(|v| http::HeaderValue::from_bytes(&v).ok()) {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if let Some(value) = tenant.and_then(|v| http::HeaderValue::from_bytes(&v).ok()) {
            headers.insert("x-tenant-id", value);
        }
        for auth in &authenticators() {
            if let Ok(t) = auth.authenticate(&headers) {
                // only a plain, valid tenant header is ever accepted here
                prop_assert!(!headers.contains_key(http::header::AUTHORIZATION));
                prop_assert_eq!(headers.get("x-tenant-id").map(|v| v.as_bytes()), Some(t.as_str().as_bytes()));
            }
        }
    }

    #[test]
    fn idempotency_key_accepts_exactly_1_to_255_printable_ascii(key in prop_oneof!["[ -~]{0,300}", "\\PC{0,300}", ".{0,20}"]) {
        let expected = (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b));
        prop_assert_eq!(valid_idempotency_key(&key), expected);
    }

    #[test]
    fn place_order_request_decoding_and_validation_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(request) = serde_json::from_slice::<PlaceOrderRequest>(&bytes) {
            let _ = validate(&request);
            let _ = fingerprint(&request);
        }
    }

    #[test]
    fn place_order_request_decoding_and_validation_never_panic_on_json(value in json_value()) {
        if let Ok(request) = serde_json::from_value::<PlaceOrderRequest>(value) {
            if validate(&request).is_ok() {
                // what passes validation satisfies the contract's rules
                prop_assert!((1..=100).contains(&request.items.len()));
                prop_assert!((1..=64).contains(&request.customer_id.chars().count()));
                prop_assert!(request.items.iter().all(|i| (1..=1000).contains(&i.quantity)));
            }
            prop_assert_eq!(fingerprint(&request), fingerprint(&request.clone()));
        }
    }

    #[test]
    fn place_order_request_with_hostile_field_values_never_panics(
        customer in "\\PC{0,100}|[\\x00-\\x1f]{0,5}",
        currency in "\\PC{0,6}",
        skus in prop::collection::vec("\\PC{0,70}", 0..6),
        valid_lines in 0usize..120,
        quantity in any::<u32>(),
    ) {
        // a few hostile skus among up to 120 plain ones, so the item-count rule is crossed too
        let items: Vec<serde_json::Value> = skus
            .iter()
            .cloned()
            .chain((0..valid_lines).map(|i| format!("SKU-{i}")))
            .map(|sku| serde_json::json!({"sku": sku, "quantity": quantity}))
            .collect();
        let body = serde_json::json!({
            "customer_id": customer,
            "currency": currency,
            "items": items,
        });
        let request: PlaceOrderRequest = serde_json::from_value(body).expect("shape");
        let _ = validate(&request);
    }
}
