//! portico-web
