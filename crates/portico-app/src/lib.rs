//! portico-app
