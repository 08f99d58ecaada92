//! An in-process OTLP/gRPC trace receiver: the collector end of the services' real export path,
//! so a test sees the spans exactly as a trace backend would (names, kinds, parent links,
//! attributes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// One received span.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// The parent's span id (empty for a root span).
    pub parent_span_id: String,
    /// The span name.
    pub name: String,
    /// `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER` or `INTERNAL`.
    pub kind: &'static str,
    /// Attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// `ERROR`, `OK` or `UNSET`.
    pub status: &'static str,
}

impl ReceivedSpan {
    /// The attribute `key` as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let received = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .map(|span| ReceivedSpan {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: match SpanKind::try_from(span.kind) {
                    Ok(SpanKind::Server) => "SERVER",
                    Ok(SpanKind::Client) => "CLIENT",
                    Ok(SpanKind::Producer) => "PRODUCER",
                    Ok(SpanKind::Consumer) => "CONSUMER",
                    _ => "INTERNAL",
                },
                status: match span.status.map(|s| s.code) {
                    Some(2) => "ERROR",
                    Some(1) => "OK",
                    _ => "UNSET",
                },
                attributes: span
                    .attributes
                    .into_iter()
                    .map(|kv| {
                        (
                            kv.key,
                            kv.value.and_then(|v| v.value).map(text).unwrap_or_default(),
                        )
                    })
                    .collect(),
                name: span.name,
            });
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(received);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Value) -> String {
    match value {
        Value::StringValue(s) => s,
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// A receiver listening on a port of its own until dropped.
#[derive(Debug)]
pub struct TraceReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Dropping it stops the server.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TraceReceiver {
    /// Starts a receiver on 127.0.0.1 (port 0).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn start() -> TraceReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let collector = Collector::default();
        let spans = Arc::clone(&collector.spans);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.await;
                }),
        );
        TraceReceiver {
            addr,
            spans,
            _stop: stop,
        }
    }

    /// The endpoint to export to (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (up to `within`) until `done` holds for the spans received, and returns them; the
    /// last spans seen when it never does.
    pub async fn wait_for(
        &self,
        within: Duration,
        mut done: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(spans);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
