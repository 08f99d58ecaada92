//! The Prometheus recorder, and the catalogue API every crate uses to describe its metric families
//! (the `# HELP` lines) and to create its series at zero when it starts.
//!
//! Why at zero: Prometheus computes `increase()` and `rate()` from two samples of a series, so a
//! counter that first appears at 1 (the first dead letter, say) shows no increase, and an alert on
//! it never fires. A series that exists at 0 from start-up makes the first event count.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: 0.5 ms to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of every `*_batch_size` histogram: 1 to 1,024 items (the largest batches the relay,
/// the consumers and the saga's group commit make are a few hundred).
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The process-wide Prometheus handle (installed on first use). Prefer [`render_metrics`] for the
/// `/metrics` text: it adds the `process_*` families.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_batch_size".into()),
                        BATCH_SIZE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // a second install (another test binary thread) keeps the first recorder
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The `/metrics` text: every recorded family, then the `process_*` families read from `/proc`.
pub fn render_metrics() -> String {
    let mut text = metrics_handle().render();
    crate::process::render(&mut text);
    text
}

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric family: its name, type and the help text `/metrics` shows for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricFamily {
    /// The family name, e.g. `consumer_dead_letters_total`.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// One line saying what it counts or measures.
    pub help: &'static str,
}

impl MetricFamily {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str) -> MetricFamily {
        MetricFamily {
            name,
            kind: MetricKind::Counter,
            help,
        }
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, help: &'static str) -> MetricFamily {
        MetricFamily {
            name,
            kind: MetricKind::Gauge,
            help,
        }
    }

    /// A histogram (`*_seconds` and `*_batch_size` names get the buckets above).
    pub const fn histogram(name: &'static str, help: &'static str) -> MetricFamily {
        MetricFamily {
            name,
            kind: MetricKind::Histogram,
            help,
        }
    }

    /// Creates the series with these `labels` at zero (a counter or gauge at 0, a histogram with no
    /// observations); a series that exists already keeps its value.
    pub fn zero(&self, labels: &[(&'static str, String)]) {
        let labels = labels.to_vec();
        match self.kind {
            MetricKind::Counter => metrics::counter!(self.name, &labels).increment(0),
            MetricKind::Gauge => metrics::gauge!(self.name, &labels).increment(0.0),
            MetricKind::Histogram => {
                let _ = metrics::histogram!(self.name, &labels);
            }
        }
    }
}

/// Gives each of `families` its help text (the recorder is installed first if need be). Call it
/// when the component recording them starts; describing a family twice is harmless.
pub fn describe(families: &[MetricFamily]) {
    let _ = metrics_handle();
    for family in families {
        match family.kind {
            MetricKind::Counter => metrics::describe_counter!(family.name, family.help),
            MetricKind::Gauge => metrics::describe_gauge!(family.name, family.help),
            MetricKind::Histogram => metrics::describe_histogram!(family.name, family.help),
        }
    }
}

/// Gives each of `families` its help text and creates its one series (no labels) at zero, so
/// `/metrics` shows it from start-up. A family with labels is described with [`describe`] and its
/// series zeroed one by one ([`MetricFamily::zero`]).
pub fn register(families: &[MetricFamily]) {
    describe(families);
    for family in families {
        family.zero(&[]);
    }
}

/// Declares metric families as constants, one a line: `NAME = kind("metric_name", "help")` with
/// kind `counter`, `gauge` or `histogram`, each with its doc comment.
///
/// ```ignore
/// longship_telemetry::metric_families! {
///     /// Orders created.
///     pub PLACED = counter("orders_placed_total", "Orders created by POST /v1/orders");
/// }
/// ```
#[macro_export]
macro_rules! metric_families {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $kind:ident($metric:literal, $help:literal);)*) => {
        $(
            $(#[$meta])*
            $vis const $name: $crate::MetricFamily = $crate::MetricFamily::$kind($metric, $help);
        )*
    };
}

/// HTTP server requests: duration.
pub const HTTP_REQUEST_DURATION: MetricFamily = MetricFamily::histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP requests by method (unknown methods: _OTHER), route template (no route: unmatched) and status",
);
/// HTTP server requests: count.
pub const HTTP_REQUESTS: MetricFamily = MetricFamily::counter(
    "http_server_requests_total",
    "HTTP requests answered, by method (unknown methods: _OTHER), route template (no route: unmatched) and status",
);
/// gRPC server calls: duration.
pub const GRPC_HANDLING: MetricFamily = MetricFamily::histogram(
    "grpc_server_handling_seconds",
    "Duration of gRPC calls by method (/package.Service/Method; unknown methods: _OTHER) and status code",
);
/// gRPC server calls: count.
pub const GRPC_HANDLED: MetricFamily = MetricFamily::counter(
    "grpc_server_handled_total",
    "gRPC calls answered, by method (/package.Service/Method; unknown methods: _OTHER) and status code",
);

/// The families this crate records (HTTP and gRPC RED metrics).
pub const FAMILIES: &[MetricFamily] = &[
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    GRPC_HANDLING,
    GRPC_HANDLED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_families_have_help_and_zeroed_series_render() {
        const COUNTER: MetricFamily =
            MetricFamily::counter("catalogue_test_events_total", "Events of the test");
        const SIZES: MetricFamily =
            MetricFamily::histogram("catalogue_test_batch_size", "Batch sizes of the test");
        describe(&[COUNTER, SIZES]);
        COUNTER.zero(&[("kind", "a".to_owned())]);
        SIZES.zero(&[]);
        let text = render_metrics();
        assert!(
            text.contains("# HELP catalogue_test_events_total Events of the test"),
            "{text}"
        );
        assert!(
            text.contains("catalogue_test_events_total{kind=\"a\"} 0"),
            "{text}"
        );
        // a histogram, not a summary: batch sizes have buckets
        assert!(
            text.contains("# TYPE catalogue_test_batch_size histogram"),
            "{text}"
        );
        assert!(
            text.contains("catalogue_test_batch_size_bucket{le=\"1\"} 0"),
            "{text}"
        );
        // a zeroed series keeps what was counted before
        metrics::counter!("catalogue_test_events_total", "kind" => "a").increment(3);
        COUNTER.zero(&[("kind", "a".to_owned())]);
        assert!(render_metrics().contains("catalogue_test_events_total{kind=\"a\"} 3"));
    }
}
