//! Logs, traces and metrics for every Longship binary, set up by one [`init`] call.
//!
//! - JSON logs (or pretty ones for humans) filtered by `RUST_LOG`, each line carrying its spans' fields;
//!   request and saga spans record `trace_id`, `tenant_id` and `order_id` as fields.
//! - OpenTelemetry traces, exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it
//!   spans still get W3C ids (so logs and problem documents carry a trace id) and nothing is exported.
//!   [`spans`] builds the spans of every hop (HTTP and gRPC servers, gRPC clients, message producers
//!   and consumers) with their kinds and semantic-convention attributes.
//! - W3C `traceparent` propagation for HTTP and gRPC ([`propagation`]) and NATS headers.
//! - Prometheus metrics ([`render_metrics`]): the catalogue API ([`MetricFamily`], [`describe`]) that
//!   gives every family its help text and its series a start at zero, HTTP and gRPC RED metrics
//!   ([`http_metrics`], [`GrpcServerLayer`]) with bounded labels ([`labels`]), and the `process_*`
//!   families.

mod grpc_client;
mod grpc_server;
mod http_metrics;
pub mod labels;
mod metrics_setup;
mod process;
pub mod propagation;
pub mod spans;
pub mod testing;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use grpc_client::{GrpcClientTrace, GrpcClientTraceLayer};
pub use grpc_server::{GrpcServer, GrpcServerLayer, grpc_status_in_headers, zero_grpc_handled};
pub use http_metrics::{http_metrics, zero_http_requests};
pub use metrics_setup::{
    FAMILIES, MetricFamily, MetricKind, describe, metrics_handle, register, render_metrics,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default, for machines).
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            other => Err(format!("unknown log format {other:?} (use json or pretty)")),
        }
    }
}

/// Telemetry settings, usually read from the environment by the runtime crate.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of traces and the log's `service` field.
    pub service_name: String,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint, e.g. `http://otel-collector:4317`; `None` exports nothing.
    pub otlp_endpoint: Option<String>,
}

/// Errors of [`init`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter did not parse.
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes and shuts down trace export when dropped; keep it alive for the life of the process.
#[must_use = "dropping the guard shuts telemetry down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "trace provider shutdown");
        }
    }
}

/// Installs logging, tracing (with OTLP export when configured), the W3C propagator and the
/// Prometheus recorder. Call once, early in `main`, inside the Tokio runtime.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let provider = tracer_provider(config)?;
    let tracer = provider.tracer(config.service_name.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_target(true),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().compact())
            .try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
    let _ = metrics_handle();
    Ok(TelemetryGuard { provider })
}

fn tracer_provider(config: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(builder.build());
    };
    Ok(builder
        .with_batch_exporter(otlp_exporter(endpoint)?)
        .build())
}

fn otlp_exporter(endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })
}

/// Installs only the W3C propagator, an id-generating tracer layer and the span capture of
/// [`testing`], for tests that need trace context without logging setup. Safe to call many times.
pub fn init_for_tests() {
    install_test_telemetry(None);
}

/// Like [`init_for_tests`], and every span is also exported over OTLP/gRPC to `endpoint` (within
/// a fraction of a second of its end). Call it inside the Tokio runtime, before anything else of
/// the process installs telemetry (nextest runs each test in a process of its own): once test
/// telemetry is installed without an exporter, this fails with
/// [`TelemetryError::AlreadyInstalled`].
pub fn init_for_tests_exporting_to(endpoint: &str) -> Result<(), TelemetryError> {
    match install_test_telemetry(Some(endpoint)) {
        Ok(Some(installed)) if installed == endpoint => Ok(()),
        Ok(_) => Err(TelemetryError::AlreadyInstalled),
        Err(e) => Err(e.clone()),
    }
}

/// The test subscriber, installed once per process; remembers the OTLP endpoint it exports to.
fn install_test_telemetry(
    endpoint: Option<&str>,
) -> &'static Result<Option<String>, TelemetryError> {
    static INSTALLED: std::sync::OnceLock<Result<Option<String>, TelemetryError>> =
        std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let mut builder = SdkTracerProvider::builder();
        if let Some(endpoint) = endpoint {
            let exporter = otlp_exporter(endpoint)?;
            let batch = opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(100))
                .build();
            builder = builder.with_span_processor(
                opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                    .with_batch_config(batch)
                    .build(),
            );
        }
        let provider = builder.build();
        let tracer = provider.tracer("test");
        opentelemetry::global::set_tracer_provider(provider);
        let filter = std::env::var("TEST_LOG")
            .ok()
            .filter(|f| !f.is_empty() && f != "1")
            .unwrap_or_else(|| {
                if std::env::var_os("TEST_LOG").is_some() {
                    "info".into()
                } else {
                    "off".into()
                }
            });
        // spans at info and above, as the services' default RUST_LOG exports them (the
        // libraries' own debug and trace spans, such as h2's, would only clutter the traces)
        let otel = tracing_subscriber::Layer::with_filter(
            tracing_opentelemetry::layer().with_tracer(tracer),
            tracing_subscriber::filter::LevelFilter::INFO,
        );
        let _ = tracing_subscriber::registry()
            .with(otel)
            .with(testing::CaptureLayer)
            .with(tracing_subscriber::Layer::with_filter(
                tracing_subscriber::fmt::layer().with_test_writer(),
                EnvFilter::new(filter),
            ))
            .try_init();
        let _ = metrics_handle();
        Ok(endpoint.map(str::to_owned))
    })
}

/// Records the current OpenTelemetry trace id into `span`'s `trace_id` field (declare it with
/// `trace_id = tracing::field::Empty`), so every log line inside carries it.
pub fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

/// The trace id of the current span, if any.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
