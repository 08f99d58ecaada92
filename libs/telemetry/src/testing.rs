//! Span capture for tests: every closed span that recorded a `trace_id` is kept with its fields,
//! so a test can assert that one trace crossed HTTP, the saga, gRPC and NATS consumers.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A closed span with its recorded fields (as text).
#[derive(Debug, Clone)]
pub struct CapturedSpan {
    /// Span name, e.g. `grpc.request`.
    pub name: &'static str,
    /// Field name -> value.
    pub fields: BTreeMap<String, String>,
}

static CAPTURED: Mutex<Vec<CapturedSpan>> = Mutex::new(Vec::new());

/// The captured spans of one trace.
pub fn spans_in_trace(trace_id: &str) -> Vec<CapturedSpan> {
    CAPTURED
        .lock()
        .map(|spans| {
            spans
                .iter()
                .filter(|s| s.fields.get("trace_id").is_some_and(|t| t == trace_id))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The capturing layer (installed by [`crate::init_for_tests`]).
pub(crate) struct CaptureLayer;

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(fields) = span.extensions_mut().remove::<Fields>() else {
            return;
        };
        if fields.0.contains_key("trace_id")
            && let Ok(mut captured) = CAPTURED.lock()
        {
            captured.push(CapturedSpan {
                name: span.name(),
                fields: fields.0,
            });
        }
    }
}
