//! `serve`: the ChatKit backend over HTTP (axum), with the task assistant, an
//! MCP endpoint and a demo page.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /chatkit` | the ChatKit protocol: `Authorization: Bearer <JWT>`, JSON body; `application/json` or `text/event-stream` |
//! | `POST /chatkit/session`, `POST /chatkit/session/refresh` | hosted mode (optional): an OpenAI ChatKit session for the verified user |
//! | `/mcp` | the task tools over streamable HTTP MCP (Bearer JWT) |
//! | `GET /healthz`, `GET /readyz` | liveness; readiness (the database answers) |
//! | `GET /` | the demo page (`/static/app.js`, `/static/style.css`) |
//! | `GET /api/info`, `POST /api/dev/token` | what the page needs; development sign-in |
//!
//! [`Server::bind`] builds everything from a [`ServeConfig`] and
//! [`Server::run_until`] serves until a shutdown signal, then lets running
//! responses finish for the configured grace period.

pub mod app;
pub mod config;
pub mod connections;
pub mod dev_identity;
pub mod session;
pub mod sse;

pub use app::{AppState, router, router_at};
pub use config::{Args, IdentityMode, LogFormat, MetricsExposure, ServeConfig};

use chatkit_engine::config::redact_url;
use chatkit_engine::todo::App;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long, after the last response closed, shutdown waits for cancelled
/// turns to store their partial answers.
const TURN_WIND_DOWN: Duration = Duration::from_secs(5);

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
    config: ServeConfig,
    addr: SocketAddr,
    /// The `METRICS_ADDR` listener, when metrics have their own.
    metrics: Option<(TcpListener, SocketAddr)>,
}

impl Server {
    /// Opens the database, builds the engine and binds the listener.
    pub async fn bind(config: ServeConfig) -> Result<Server, String> {
        let app = App::from_config(config.engine.clone()).await.map_err(|e| {
            format!(
                "could not start the engine: {e} (DATABASE_URL is `{}`)",
                redact_url(&config.engine.database_url)
            )
        })?;
        let state = AppState::new(app, &config)?;
        let router = router_at(state.clone(), &config.cors_origins, &config.chatkit_path)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("could not listen on {}: {e}", config.addr))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("could not read the listening address: {e}"))?;
        let metrics = match &config.metrics {
            MetricsExposure::Separate { addr, .. } => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("could not listen on METRICS_ADDR {addr}: {e}"))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| format!("could not read the metrics address: {e}"))?;
                Some((listener, bound))
            }
            _ => None,
        };
        Ok(Server {
            listener,
            state,
            router,
            config,
            addr,
            metrics,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the separate metrics listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// The shared state (engine, open streams).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The start-up banner: where to open the page, which model answers,
    /// and which identity mode is on (loudly, when it is the development
    /// one).
    pub fn banner(&self) -> String {
        let engine = self.state.engine();
        let mut lines = vec![format!(
            "chatkit-engine serve {} listening on http://{}",
            chatkit_engine::VERSION,
            self.addr
        )];
        lines.push(format!("  demo page:  http://{}/", self.addr));
        lines.push(format!(
            "  database:   {}",
            redact_url(&self.config.engine.database_url)
        ));
        if engine.model_name() == chatkit_engine::models::scripted::SCRIPTED_MODEL_NAME {
            lines.push(
                "  model:      offline scripted model (keyword rules for development and tests, \
                 not a language model; set OPENAI_API_KEY for a real one)"
                    .into(),
            );
        } else {
            lines.push(format!(
                "  model:      {} at {}",
                engine.model_name(),
                self.config
                    .engine
                    .openai_base_url
                    .as_deref()
                    .unwrap_or("https://api.openai.com/v1")
            ));
        }
        match self.config.identity {
            IdentityMode::Dev => {
                lines.push("  identity:   DEVELOPMENT MODE".into());
                lines.push(String::new());
                lines.push(
                    "  !!! WARNING: development identity mode is ON. Anyone who can reach".into(),
                );
                lines.push(format!(
                    "  !!! {} can sign in as any user. It is only allowed on loopback and",
                    self.addr
                ));
                lines.push(
                    "  !!! switches off when JWKS_URL, JWKS or JWT_SECRET is set. Never expose it."
                        .into(),
                );
            }
            IdentityMode::Jwt => {
                let source = if let Some(url) = &self.config.engine.jwks_url {
                    format!("JWKS at {url}")
                } else if self.config.engine.jwks.is_some() {
                    "inline JWKS".to_owned()
                } else {
                    "HS256 shared secret".to_owned()
                };
                lines.push(format!("  identity:   Bearer JWTs verified with {source}"));
            }
        }
        if let Some(hosted) = &self.config.hosted {
            lines.push(format!(
                "  hosted:     POST /chatkit/session creates ChatKit sessions for workflow {}",
                hosted.workflow_id
            ));
        }
        match (&self.config.metrics, self.metrics_addr()) {
            (MetricsExposure::Separate { token, .. }, Some(addr)) => lines.push(format!(
                "  metrics:    http://{addr}/metrics{}",
                if token.is_some() {
                    " (METRICS_TOKEN required)"
                } else {
                    ""
                }
            )),
            (MetricsExposure::Main { token }, _) => lines.push(format!(
                "  metrics:    http://{}/metrics{}",
                self.addr,
                if token.is_some() {
                    " (METRICS_TOKEN required)"
                } else {
                    ""
                }
            )),
            _ if self.config.engine.metrics => lines.push(
                "  metrics:    not served on a public address; set METRICS_ADDR or METRICS_TOKEN"
                    .into(),
            ),
            _ => lines.push("  metrics:    off (CHATKIT_METRICS=false)".into()),
        }
        if !self.config.dev_stream_delay.is_zero() {
            lines.push(format!(
                "  streaming:  the model is slowed down by {} ms per event (CHATKIT_DEV_STREAM_DELAY_MS)",
                self.config.dev_stream_delay.as_millis()
            ));
        }
        lines.join("\n")
    }

    /// Serves until `shutdown` completes, then stops accepting connections
    /// and lets running responses finish for the grace period; responses
    /// still open after it end with an `error` event (the engine keeps their
    /// partial answers).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let Server {
            listener,
            state,
            router,
            config,
            metrics,
            ..
        } = self;
        // The metrics listener lives as long as the server; it has no
        // streams to drain.
        let metrics_task = metrics.map(|(listener, _)| {
            let router = app::metrics_router(state.clone());
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            })
        });
        let grace = config.shutdown_grace;
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let in_flight = state.in_flight().clone();
        let on_signal = async move {
            shutdown.await;
            tracing::info!(
                open_streams = in_flight.count(),
                grace_secs = grace.as_secs_f64(),
                "shutting down: no new connections; letting running responses finish"
            );
            let _ = signalled_tx.send(());
        };
        // Handlers are turned into routes once, here; every connection gets
        // a clone of the router (an `Arc`).
        let serve = connections::serve(listener, router.with_state::<()>(()), on_signal);
        tokio::pin!(serve);
        let deadline = async {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = &mut serve => {}
            () = deadline => {
                tracing::warn!(
                    open_streams = state.in_flight().count(),
                    "grace period over: ending the responses still running"
                );
                state.in_flight().stop_all();
                // The streams end now, so the connections close quickly.
                if tokio::time::timeout(Duration::from_secs(5), &mut serve).await.is_err() {
                    tracing::warn!("some connections did not close; stopping anyway");
                }
            }
        }
        let engine = state.engine();
        let until = Instant::now() + TURN_WIND_DOWN;
        while engine.running_turns() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if engine.running_turns() > 0 {
            tracing::warn!(
                running_turns = engine.running_turns(),
                "stopping with turns still running"
            );
        }
        if let Some(task) = metrics_task {
            task.abort();
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Structured logs on stderr: `RUST_LOG` filters (default `info`), text or
/// one JSON object per line, every value from a request escaped
/// ([`crate::logging`]).
pub fn init_logging(format: LogFormat) {
    crate::logging::init(format, "info");
}
