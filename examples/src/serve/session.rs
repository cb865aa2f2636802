//! Hosted mode (optional): ChatKit sessions from OpenAI's ChatKit sessions
//! API, for apps that run the ChatKit UI against an Agent Builder workflow
//! hosted by OpenAI instead of (or beside) this server's `/chatkit`.
//!
//! `POST /chatkit/session` verifies the caller's JWT and calls
//! `POST {CHATKIT_API_BASE}/chatkit/sessions` with the header
//! `OpenAI-Beta: chatkit_beta=v1` and the body
//! `{"workflow":{"id":..},"user":<verified user id>}`; it answers with the
//! session's `client_secret` and `expires_at` (Unix seconds). The API has no
//! refresh call (only create and `/chatkit/sessions/{id}/cancel`), so
//! `POST /chatkit/session/refresh` creates a fresh session for the same
//! verified user, which is what ChatKit's `getClientSecret(current)` needs.

use super::config::HostedSessions;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The part of a created ChatKit session the browser needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionSecret {
    /// The ChatKit session id (`cksess_...`).
    pub session_id: String,
    /// Ephemeral secret for `getClientSecret`.
    pub client_secret: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// Why a session could not be created.
#[derive(Debug)]
pub struct SessionError {
    /// HTTP status for our own caller.
    pub status: u16,
    /// Stable code (`upstream_error`, `upstream_unreachable`).
    pub code: &'static str,
    /// What happened; never contains the API key.
    pub message: String,
}

/// Calls OpenAI's ChatKit sessions API.
#[derive(Clone, Debug)]
pub struct SessionClient {
    http: reqwest::Client,
    config: Arc<HostedSessions>,
}

#[derive(Deserialize)]
struct CreatedSession {
    id: String,
    client_secret: String,
    expires_at: i64,
}

impl SessionClient {
    /// A client for the configured API base, key and workflow.
    pub fn new(config: HostedSessions) -> Result<Self, String> {
        Ok(Self {
            http: http_client()?,
            config: Arc::new(config),
        })
    }

    /// Creates a ChatKit session for `user` (a verified user id).
    pub async fn create(&self, user: &str) -> Result<SessionSecret, SessionError> {
        let url = format!("{}/chatkit/sessions", self.config.api_base);
        let body = serde_json::json!({
            "workflow": { "id": self.config.workflow_id },
            "user": user,
        });
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.config.api_key)
            .header("OpenAI-Beta", "chatkit_beta=v1")
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| SessionError {
                status: 502,
                code: "upstream_unreachable",
                message: format!("the ChatKit sessions API could not be reached: {e}"),
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| SessionError {
            status: 502,
            code: "upstream_error",
            message: format!("the ChatKit sessions API response broke off: {e}"),
        })?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "no error message".to_owned());
            tracing::warn!(status = status.as_u16(), detail = %detail, "ChatKit session creation failed");
            return Err(SessionError {
                status: 502,
                code: "upstream_error",
                message: format!(
                    "the ChatKit sessions API answered {}: {detail}",
                    status.as_u16()
                ),
            });
        }
        let created: CreatedSession = serde_json::from_slice(&bytes).map_err(|e| SessionError {
            status: 502,
            code: "upstream_error",
            message: format!("unexpected ChatKit sessions API response: {e}"),
        })?;
        Ok(SessionSecret {
            session_id: created.id,
            client_secret: created.client_secret,
            expires_at: created.expires_at,
        })
    }
}

/// An HTTP client (rustls with ring and the webpki roots; 10 s connect and
/// 30 s overall timeouts).
pub fn http_client() -> Result<reqwest::Client, String> {
    let builder = chatkit_engine::http::client_builder().map_err(|e| e.to_string())?;
    builder
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client setup failed: {e}"))
}
