//! Who is calling: the identity every store call and tool call receives.

/// The verified identity of the caller of one request.
///
/// The host application builds it after authenticating the request (the auth
/// module does this from a JWT) and passes it to
/// [`ChatEngine::process`](crate::engine::ChatEngine::process). Every store
/// query filters by [`RequestContext::user_id`], so one user never sees
/// another's threads, items, attachments or tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The stable id of the user (a JWT's `sub`).
    pub user_id: String,
    /// The user's e-mail address, when the token carries one.
    pub email: Option<String>,
    /// The user's display name, when the token carries one.
    pub name: Option<String>,
    /// The client's locale (`Accept-Language`), when the host passes it on.
    pub locale: Option<String>,
}

impl RequestContext {
    /// A context for `user_id` with no optional claims.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            email: None,
            name: None,
            locale: None,
        }
    }
}
