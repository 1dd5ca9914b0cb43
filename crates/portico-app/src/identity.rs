//! Who is making a request. Every use case takes an `Identity`, so authentication and
//! permissions can be added without touching the use cases' callers.

/// The caller of a use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials, in the open local mode (no auth configured).
    Anonymous,
    /// A signed-in user: the user entity ref and the refs the user owns through (itself and groups).
    User { user_entity_ref: String, ownership_entity_refs: Vec<String> },
    /// Another backend service or an external caller (static token, legacy secret, external
    /// issuer), limited to some plugins and permissions when `restrictions` is not empty.
    Service { subject: String, restrictions: Vec<Restriction> },
    /// Portico itself (providers, startup work).
    System,
}

impl Identity {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".into(),
            Identity::User { user_entity_ref, .. } => user_entity_ref.clone(),
            Identity::Service { subject, .. } => subject.clone(),
            Identity::System => "portico".into(),
        }
    }
}

/// One `accessRestrictions` entry of an external credential: a plugin it may call and, there,
/// the permissions it may use (by name or action; both empty: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub plugin: String,
    pub permissions: Vec<String>,
    pub actions: Vec<String>,
}

impl Identity {
    /// Whether this is a service limited by access restrictions.
    pub fn is_restricted(&self) -> bool {
        matches!(self, Identity::Service { restrictions, .. } if !restrictions.is_empty())
    }

    /// For a restricted service: whether its restrictions allow this permission (of the plugin
    /// named by the permission's first segment, `catalog.entity.read` → `catalog`). Everyone
    /// else is not restricted here (the policy decides for them).
    pub fn restrictions_allow(&self, name: &str, action: &str) -> bool {
        let Identity::Service { restrictions, .. } = self else { return true };
        if restrictions.is_empty() {
            return true;
        }
        let plugin = name.split('.').next().unwrap_or("");
        restrictions.iter().filter(|restriction| restriction.plugin == plugin).any(|restriction| {
            (restriction.permissions.is_empty() && restriction.actions.is_empty())
                || restriction.permissions.iter().any(|permission| permission == name)
                || (!action.is_empty() && restriction.actions.iter().any(|allowed| allowed == action))
        })
    }
}
