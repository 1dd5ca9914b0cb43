//! The built-in actions of reference §5.2 (those that need no SCM host), and the generic git
//! publisher.

mod catalog;
mod debug;
mod fetch;
mod fs;
mod hosted;
mod publish;

use std::sync::Arc;

use crate::action::Action;

pub(crate) fn builtin() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(catalog::Register),
        Arc::new(catalog::Write),
        Arc::new(catalog::Fetch),
        Arc::new(debug::Log),
        Arc::new(debug::Wait),
        Arc::new(fetch::Plain),
        Arc::new(fetch::PlainFile),
        Arc::new(fetch::Template),
        Arc::new(fetch::TemplateFile),
        Arc::new(fs::Delete),
        Arc::new(fs::Rename),
        Arc::new(fs::Read),
        Arc::new(publish::Git),
        Arc::new(hosted::Github),
        Arc::new(hosted::Gitlab),
    ]
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, crate::action::ActionError>
where
    F: FnOnce() -> Result<T, crate::action::ActionError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| crate::action::ActionError::failed(format!("file work stopped: {error}")))?
}
