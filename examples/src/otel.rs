//! Trace export over OTLP/HTTP: `serve`'s `tracing` spans as OpenTelemetry
//! spans, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! | setting | effect |
//! | --- | --- |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` unset or empty | nothing is built or installed: no layer, no exporter thread, no header parsing |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318` | spans go in batches to `{endpoint}/v1/traces` (protobuf over HTTP) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*` | read by the OpenTelemetry SDK as the specification says |
//! | `OTEL_SERVICE_NAME` | the `service.name` resource (default `chatkit-engine`) |
//! | an incoming W3C `traceparent` header | the request's `http` span continues that trace (its parent is the caller's span) |
//!
//! The spans, parent first: `http` (one per request) → `chatkit.request` →
//! `chatkit.turn` → `agent.run` → `agent.turn` (one per model call) and
//! `tool.call` (one per tool call). Only spans the log filter lets through
//! (`RUST_LOG`, default `info`) are exported.
//!
//! ```no_run
//! // In main(), before the first span:
//! let otel = chatkit_engine_examples::otel::Otel::from_env().expect("valid OTLP settings");
//! chatkit_engine_examples::logging::init_with(
//!     chatkit_engine_examples::logging::LogFormat::Text,
//!     "info",
//!     otel.as_ref(),
//! );
//! // ... serve ...
//! if let Some(otel) = otel {
//!     otel.shutdown(); // sends the last batch
//! }
//! ```

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The environment variable that switches export on.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Whether some [`Otel`] was built in this process (so `traceparent` is
/// worth reading).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The OTLP exporter and the tracer the log subscriber's layer uses.
#[derive(Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
    tracer: Tracer,
}

impl Otel {
    /// The exporter `OTEL_EXPORTER_OTLP_ENDPOINT` asks for, or `None` when it
    /// is unset or empty.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(ENDPOINT_VAR) {
            Ok(endpoint) if !endpoint.trim().is_empty() => {
                install_tls_provider();
                // The SDK reads the variable itself and adds `/v1/traces`.
                let exporter = SpanExporter::builder()
                    .with_http()
                    .build()
                    .map_err(|e| format!("{ENDPOINT_VAR}: {e}"))?;
                Ok(Some(Self::with_exporter(exporter)))
            }
            _ => Ok(None),
        }
    }

    /// An exporter that posts to `traces_url` exactly (e.g.
    /// `http://127.0.0.1:4318/v1/traces`); for tests and hosts that
    /// configure in code.
    pub fn to_url(traces_url: &str) -> Result<Self, String> {
        install_tls_provider();
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_url)
            .build()
            .map_err(|e| format!("OTLP endpoint {traces_url}: {e}"))?;
        Ok(Self::with_exporter(exporter))
    }

    fn with_exporter(exporter: SpanExporter) -> Self {
        let service = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "chatkit-engine".to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let tracer = provider.tracer("chatkit-engine");
        ENABLED.store(true, Ordering::Relaxed);
        Self { provider, tracer }
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, Tracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer.clone())
    }

    /// Sends every finished span now.
    pub fn flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Sends what is left and stops the exporter.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "the OTLP exporter did not shut down cleanly");
        }
    }
}

/// The exporter's HTTP client (reqwest, built by the SDK) finds its TLS
/// provider in the process default: ring, as everywhere in this workspace.
/// A provider the host installed first is kept.
fn install_tls_provider() {
    // rustls deprecates ring only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Makes `span` continue the trace of an incoming W3C `traceparent` (and
/// `tracestate`) header. Does nothing unless an [`Otel`] exists.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !ENABLED.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    // A span the layer does not know (filtered out) has nothing to set.
    let _ = span.set_parent(context);
}

/// `axum::http::HeaderMap` as an OpenTelemetry extractor.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}
