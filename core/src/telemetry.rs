//! Operational metrics in the Prometheus text format.
//!
//! The engine records through the [`metrics`] facade. Until a recorder is
//! installed every recording is a no-op (one relaxed atomic load); the engine
//! installs the Prometheus recorder of `metrics-exporter-prometheus` once per
//! process when it is built with [`EngineConfig::metrics`](crate::EngineConfig::metrics)
//! on (the default), and [`render`] returns the exposition text. The text is
//! the exporter's, never written by hand.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `chatkit_turns_started_total` | counter | |
//! | `chatkit_turns_finished_total` | counter | `outcome`: `completed`, `cancelled`, `failed`, `budget_exceeded` |
//! | `chatkit_turn_duration_seconds` | histogram | `outcome` |
//! | `chatkit_turn_first_event_seconds` | histogram | (turn start to the responder's first event) |
//! | `chatkit_model_calls_total` | counter | `provider`, `outcome`: `ok`, `error`, `cancelled` |
//! | `chatkit_model_call_duration_seconds` | histogram | `provider` |
//! | `chatkit_model_tokens_total` | counter | `provider`, `direction`: `input`, `output` |
//! | `chatkit_tool_calls_total` | counter | `tool`, `outcome`: `ok`, `error` |
//! | `chatkit_tool_call_duration_seconds` | histogram | `tool` |
//! | `chatkit_open_streams` | gauge | |
//! | `chatkit_busy_threads` | gauge | |
//! | `chatkit_store_query_duration_seconds` | histogram | `store`, `op` (the [`Store`](crate::store::Store) method) |
//! | `chatkit_pool_connections` | gauge | `state`: `in_use`, `idle` (PostgreSQL pool) |
//! | `chatkit_pool_waits_total` | counter | (acquires that found no idle connection) |
//! | `chatkit_pool_wait_seconds` | histogram | |
//! | `chatkit_auth_failures_total` | counter | `code` (the [`Error::code`]) |
//!
//! Another recorder already installed by the host wins: the engine then
//! records into it, and [`render`] fails with `invalid_config`.
//!
//! ```
//! chatkit_engine::telemetry::install();
//! chatkit_engine::telemetry::tool_call("get_stats", true, std::time::Duration::from_millis(3));
//! let text = chatkit_engine::telemetry::render().unwrap();
//! assert!(text.contains(r#"chatkit_tool_calls_total{tool="get_stats",outcome="ok"}"#));
//! ```

use crate::error::{Error, Result};
use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Seconds buckets of the latency histograms: 5 ms to 2 minutes.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes (the exporter keeps raw samples until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, once installed (`None` when another recorder
/// was there first).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Handles of the metrics without labels (or with fixed ones), taken once
/// the recorder is installed: recording through a handle skips building,
/// hashing and looking up the metric's key on every call.
struct Fixed {
    turns_started: Counter,
    turn_first_event: Histogram,
    open_streams: Gauge,
    busy_threads: Gauge,
    pool_in_use: Gauge,
    pool_idle: Gauge,
    pool_waits: Counter,
    pool_wait_seconds: Histogram,
}

static FIXED: OnceLock<Fixed> = OnceLock::new();

fn fixed() -> Option<&'static Fixed> {
    FIXED.get()
}

/// The installed Prometheus recorder of this process.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    handle: Option<PrometheusHandle>,
}

impl MetricsHandle {
    /// The exposition text, or an empty string when another recorder owns
    /// the process.
    pub fn render(&self) -> String {
        self.handle.as_ref().map(|h| h.render()).unwrap_or_default()
    }

    /// Whether this process records into the engine's recorder.
    pub fn is_active(&self) -> bool {
        self.handle.is_some()
    }
}

/// Installs the engine's Prometheus recorder for this process (idempotent).
pub fn install() -> MetricsHandle {
    let handle = HANDLE.get_or_init(|| {
        let installed = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder);
        match installed {
            Ok(handle) => {
                describe();
                let upkeep = handle.clone();
                // A plain thread: recording must work outside any runtime too.
                let spawned = std::thread::Builder::new()
                    .name("chatkit-metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(err) = spawned {
                    tracing::warn!(error = %err, "metrics upkeep thread did not start; histograms are folded at each scrape only");
                }
                Some(handle)
            }
            Err(err) => {
                tracing::warn!(error = %err, "another metrics recorder is installed; the engine records into it");
                None
            }
        }
    });
    // Whichever recorder won (ours or the host's), it is in place now.
    FIXED.get_or_init(|| Fixed {
        turns_started: counter!("chatkit_turns_started_total"),
        turn_first_event: histogram!("chatkit_turn_first_event_seconds"),
        open_streams: gauge!("chatkit_open_streams"),
        busy_threads: gauge!("chatkit_busy_threads"),
        pool_in_use: gauge!("chatkit_pool_connections", "state" => "in_use"),
        pool_idle: gauge!("chatkit_pool_connections", "state" => "idle"),
        pool_waits: counter!("chatkit_pool_waits_total"),
        pool_wait_seconds: histogram!("chatkit_pool_wait_seconds"),
    });
    MetricsHandle {
        handle: handle.clone(),
    }
}

/// The Prometheus exposition text of this process.
///
/// Fails with `invalid_config` when the engine's recorder is not installed
/// (metrics off, or the host installed another recorder).
pub fn render() -> Result<String> {
    match HANDLE.get() {
        Some(Some(handle)) => Ok(handle.render()),
        Some(None) => Err(Error::Config(
            "another metrics recorder is installed in this process; render metrics with it".into(),
        )),
        None => Err(Error::Config(
            "metrics are off (EngineConfig::metrics / CHATKIT_METRICS)".into(),
        )),
    }
}

fn describe() {
    describe_counter!("chatkit_turns_started_total", "Turns started.");
    describe_counter!(
        "chatkit_turns_finished_total",
        "Turns finished, by outcome."
    );
    describe_histogram!(
        "chatkit_turn_duration_seconds",
        Unit::Seconds,
        "Turn duration."
    );
    describe_histogram!(
        "chatkit_turn_first_event_seconds",
        Unit::Seconds,
        "Time from the start of a turn to the responder's first event."
    );
    describe_counter!(
        "chatkit_model_calls_total",
        "Model calls, by provider and outcome."
    );
    describe_histogram!(
        "chatkit_model_call_duration_seconds",
        Unit::Seconds,
        "Model call duration, request to last chunk."
    );
    describe_counter!(
        "chatkit_model_tokens_total",
        "Tokens in and out of model calls (estimated when the provider reports none)."
    );
    describe_counter!(
        "chatkit_tool_calls_total",
        "Tool calls, by tool and outcome."
    );
    describe_histogram!(
        "chatkit_tool_call_duration_seconds",
        Unit::Seconds,
        "Tool call duration."
    );
    describe_gauge!("chatkit_open_streams", "Event streams open right now.");
    describe_gauge!("chatkit_busy_threads", "Threads with a running turn.");
    describe_histogram!(
        "chatkit_store_query_duration_seconds",
        Unit::Seconds,
        "Store call duration, by store and operation."
    );
    describe_gauge!(
        "chatkit_pool_connections",
        "PostgreSQL pool connections, by state."
    );
    describe_counter!(
        "chatkit_pool_waits_total",
        "Pool acquires that had to wait."
    );
    describe_histogram!(
        "chatkit_pool_wait_seconds",
        Unit::Seconds,
        "Time waited for a pool connection."
    );
    describe_counter!(
        "chatkit_auth_failures_total",
        "Rejected callers, by error code."
    );
}

/// A turn began.
pub(crate) fn turn_started() {
    match fixed() {
        Some(f) => f.turns_started.increment(1),
        None => counter!("chatkit_turns_started_total").increment(1),
    }
}

/// A turn ended with `outcome` after `elapsed`.
pub(crate) fn turn_finished(outcome: &'static str, elapsed: Duration) {
    counter!("chatkit_turns_finished_total", "outcome" => outcome).increment(1);
    histogram!("chatkit_turn_duration_seconds", "outcome" => outcome).record(elapsed);
}

/// The responder's first event of a turn, `elapsed` after the turn began.
pub(crate) fn turn_first_event(elapsed: Duration) {
    match fixed() {
        Some(f) => f.turn_first_event.record(elapsed),
        None => histogram!("chatkit_turn_first_event_seconds").record(elapsed),
    }
}

/// One model call ended.
pub(crate) fn model_call(
    provider: &str,
    outcome: &'static str,
    elapsed: Duration,
    tokens: Option<(u64, u64)>,
) {
    let provider = provider.to_owned();
    counter!("chatkit_model_calls_total", "provider" => provider.clone(), "outcome" => outcome)
        .increment(1);
    histogram!("chatkit_model_call_duration_seconds", "provider" => provider.clone())
        .record(elapsed);
    if let Some((input, output)) = tokens {
        counter!("chatkit_model_tokens_total", "provider" => provider.clone(), "direction" => "input")
            .increment(input);
        counter!("chatkit_model_tokens_total", "provider" => provider, "direction" => "output")
            .increment(output);
    }
}

/// One tool call ended.
pub fn tool_call(tool: &str, ok: bool, elapsed: Duration) {
    let tool = tool.to_owned();
    let outcome = if ok { "ok" } else { "error" };
    counter!("chatkit_tool_calls_total", "tool" => tool.clone(), "outcome" => outcome).increment(1);
    histogram!("chatkit_tool_call_duration_seconds", "tool" => tool).record(elapsed);
}

/// A stream opened (`+1`) or closed (`-1`).
pub(crate) fn open_streams(delta: f64) {
    match fixed() {
        Some(f) => f.open_streams.increment(delta),
        None => gauge!("chatkit_open_streams").increment(delta),
    }
}

/// A thread became busy (`+1`) or free (`-1`).
pub(crate) fn busy_threads(delta: f64) {
    match fixed() {
        Some(f) => f.busy_threads.increment(delta),
        None => gauge!("chatkit_busy_threads").increment(delta),
    }
}

/// The histogram of one store operation (callers keep the handle: recording
/// through a handle skips the registry lookup).
pub(crate) fn store_query_histogram(store: &'static str, op: &'static str) -> Histogram {
    histogram!("chatkit_store_query_duration_seconds", "store" => store, "op" => op)
}

/// The PostgreSQL pool's connections right now.
pub(crate) fn pool_connections(in_use: usize, idle: usize) {
    match fixed() {
        Some(f) => {
            f.pool_in_use.set(in_use as f64);
            f.pool_idle.set(idle as f64);
        }
        None => {
            gauge!("chatkit_pool_connections", "state" => "in_use").set(in_use as f64);
            gauge!("chatkit_pool_connections", "state" => "idle").set(idle as f64);
        }
    }
}

/// An acquire found no idle connection and waited `elapsed`.
pub(crate) fn pool_waited(elapsed: Duration) {
    match fixed() {
        Some(f) => {
            f.pool_waits.increment(1);
            f.pool_wait_seconds.record(elapsed);
        }
        None => {
            counter!("chatkit_pool_waits_total").increment(1);
            histogram!("chatkit_pool_wait_seconds").record(elapsed);
        }
    }
}

/// A caller was rejected with `code`.
pub(crate) fn auth_failure(code: &'static str) {
    counter!("chatkit_auth_failures_total", "code" => code).increment(1);
}
