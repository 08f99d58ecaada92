//! The identity metrics, with their help text, created at zero when mTLS starts.

use longship_telemetry::MetricFamily;

/// Calls refused by a service's access declaration.
pub(crate) const PEER_REFUSALS: MetricFamily = MetricFamily::counter(
    "grpc_peer_refusals_total",
    "gRPC calls refused before any handler by the caller's identity, by gRPC service and reason (unauthenticated, permission_denied)",
);
/// Refused handshakes.
pub(crate) const HANDSHAKE_FAILURES: MetricFamily = MetricFamily::counter(
    "grpc_tls_handshake_failures_total",
    "gRPC TLS handshakes refused, by reason (bad_certificate: none of the platform CA, handshake, timeout)",
);
/// Certificate reloads.
pub(crate) const RELOADS: MetricFamily = MetricFamily::counter(
    "tls_certificate_reloads_total",
    "Changes of the TLS certificate files, by result (loaded: new connections use them; failed: the previous ones stay in use)",
);

pub(crate) fn zero() {
    longship_telemetry::describe(&[PEER_REFUSALS, HANDSHAKE_FAILURES, RELOADS]);
    for reason in ["bad_certificate", "handshake", "timeout"] {
        HANDSHAKE_FAILURES.zero(&[("reason", reason.to_owned())]);
    }
    for result in ["loaded", "failed"] {
        RELOADS.zero(&[("result", result.to_owned())]);
    }
}

pub(crate) fn zero_refusals(service: &'static str) {
    for reason in ["unauthenticated", "permission_denied"] {
        PEER_REFUSALS.zero(&[
            ("service", service.to_owned()),
            ("reason", reason.to_owned()),
        ]);
    }
}
