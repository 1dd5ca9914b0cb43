//! Integration tests: the real `portico` binary, started on a free loopback port against real
//! files and a real SQLite file (and PostgreSQL where a test says so), driven over HTTP.

// Test modules share helpers with `pub`; nothing here is a public API.
#![allow(unreachable_pub)]

mod api;
mod auth;
mod catalog_client;
mod cli;
mod ingest;
mod oidc;
mod scaffolder;
mod support;
mod ui;
