//! Software templates: Backstage's `scaffolder.backstage.io/v1beta3` templates, run step by step.
//!
//! Layout:
//! - `template`: the Template entity's spec (parameter pages, steps, output), read from its JSON.
//! - `render`: `${{ }}` templating with Backstage's semantics on minijinja, and the file
//!   templating `fetch:template` uses.
//! - `workspace`: paths that never leave a task's workspace.
//! - `fetch`: the `fetch:template` copy-and-render algorithm over a local directory.
//! - `action`: the `Action` trait, its context and the registry; `actions/`: the built-in ones.
//! - `run`: one task run, step by step (`if`, `each`, outputs, cancellation, redacted logs).
//!
//! Invariant: no SQL and no HTTP server; the catalog is reached through a trait the application
//! implements, and only the GitHub and GitLab publishers call out, to configured API hosts.

pub mod action;
mod actions;
pub mod fetch;
pub mod remote;
pub mod render;
pub mod run;
pub mod template;
pub mod workspace;
