//! Logs, traces and metrics for every Longship binary, set up by one [`init`] call.
//!
//! - JSON logs (or pretty ones for humans) filtered by `RUST_LOG`, each line carrying its spans' fields;
//!   request and saga spans record `trace_id`, `tenant_id` and `order_id` as fields.
//! - OpenTelemetry traces, exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it
//!   spans still get W3C ids (so logs and problem documents carry a trace id) and nothing is exported.
//! - W3C `traceparent` propagation for HTTP and gRPC ([`propagation`]) and NATS headers.
//! - Prometheus metrics ([`metrics_handle`]) with HTTP and gRPC request duration histograms ([`http_metrics`],
//!   [`GrpcMetricsLayer`]).

mod metrics_setup;
pub mod propagation;
pub mod testing;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use metrics_setup::{GrpcMetricsLayer, http_metrics, metrics_handle};

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
#[derive(Debug, thiserror::Error)]
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
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// Installs only the W3C propagator, an id-generating tracer layer and the span capture of
/// [`testing`], for tests that need trace context without logging setup. Safe to call many times.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = SdkTracerProvider::builder().build();
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
        let _ = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .with(testing::CaptureLayer)
            .with(tracing_subscriber::Layer::with_filter(
                tracing_subscriber::fmt::layer().with_test_writer(),
                EnvFilter::new(filter),
            ))
            .try_init();
        let _ = metrics_handle();
    });
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
