//! Who is calling: the identity every store call and tool call receives, and
//! the host's own data of that request.
//!
//! | field | set by | read by |
//! | --- | --- | --- |
//! | `user_id`, `email`, `name` | the verifier (`ChatEngine::authenticate`) or the host | every store query and tool |
//! | `locale` | the host (`Accept-Language`) | agents' prompts |
//! | extensions | the host, per request | the host's own tools |
//!
//! Extensions are typed values a host attaches to one request and reads back
//! in a tool it registered: a binding puts its event loop there so that a
//! host-language tool runs in the loop (and the `contextvars`) of the request
//! that called it, never in whichever loop last asked for the same user.
//!
//! ```
//! use chatkit_engine::RequestContext;
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct TenantPlan(&'static str);
//!
//! let mut ctx = RequestContext::new("alice");
//! ctx.extensions_mut().insert(TenantPlan("pro"));
//! assert_eq!(ctx.extensions().get::<TenantPlan>(), Some(&TenantPlan("pro")));
//! // Extensions are request data, not identity: they do not affect equality.
//! assert_eq!(ctx, RequestContext::new("alice"));
//! ```

pub use http::Extensions;

/// The verified identity of the caller of one request, with the host's data
/// of that request.
///
/// The host application builds it after authenticating the request (the auth
/// module does this from a JWT) and passes it to
/// [`ChatEngine::process`](crate::engine::ChatEngine::process). Every store
/// query filters by [`RequestContext::user_id`], so one user never sees
/// another's threads, items, attachments or tasks.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The stable id of the user (a JWT's `sub`).
    pub user_id: String,
    /// The user's e-mail address, when the token carries one.
    pub email: Option<String>,
    /// The user's display name, when the token carries one.
    pub name: Option<String>,
    /// The client's locale (`Accept-Language`), when the host passes it on.
    pub locale: Option<String>,
    /// Typed values the host attached to this request (see the module docs).
    extensions: Extensions,
}

impl RequestContext {
    /// A context for `user_id` with no optional claims.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            ..Self::default()
        }
    }

    /// The host's typed values of this request.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Mutable access to the host's typed values of this request.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// This context with `value` attached (replacing one of the same type).
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }
}

/// Two contexts are equal when they name the same caller; extensions are
/// request data and are not compared.
impl PartialEq for RequestContext {
    fn eq(&self, other: &Self) -> bool {
        self.user_id == other.user_id
            && self.email == other.email
            && self.name == other.name
            && self.locale == other.locale
    }
}

impl Eq for RequestContext {}
