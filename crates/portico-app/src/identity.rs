//! Who is making a request. Every use case takes an `Identity`, so authentication and
//! permissions can be added without touching the use cases' callers.

/// The caller of a use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials, in the open local mode (no auth configured).
    Anonymous,
    /// A signed-in user: the user entity ref and the refs the user owns through (itself and groups).
    User { user_entity_ref: String, ownership_entity_refs: Vec<String> },
    /// Another backend service or an external caller with a static token.
    Service { subject: String },
    /// Portico itself (providers, startup work).
    System,
}

impl Identity {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".into(),
            Identity::User { user_entity_ref, .. } => user_entity_ref.clone(),
            Identity::Service { subject } => subject.clone(),
            Identity::System => "portico".into(),
        }
    }
}
