//! Location references `<type>:<target>` (reference §5.1).

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocationRef {
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LocationRefError {
    pub message: String,
}

impl LocationRef {
    /// Splits on the first `:`, trims both parts, rejects empty parts, `http`/`https` types
    /// and `javascript:` targets, with Backstage's messages.
    pub fn parse(text: &str) -> Result<LocationRef, LocationRefError> {
        let _ = text;
        unimplemented!()
    }
}

impl std::fmt::Display for LocationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.target)
    }
}
