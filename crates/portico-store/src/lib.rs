//! Durable catalog state on SQLite or PostgreSQL.
//!
//! This crate holds all of Portico's SQL. It stores what the processing engine needs to survive a
//! restart and to share work between replicas: registered locations, the refresh state of every
//! entity (unprocessed and processed bodies, errors, leases), emitter edges, relations, and the
//! final entities the API serves, each stamped with a global change sequence number.
//!
//! It deliberately knows nothing about the entity model: bodies are JSON text, refs are canonical
//! strings computed by the caller. Every use case runs in one transaction, so a crash at any point
//! leaves either the old or the new state, never a mix.
//!
//! Layout:
//! - `lib.rs`: `Store`, connecting, migrations, the dialect dispatch macro.
//! - `location`: the `locations` table.
//! - `processing`: provider mutations, claiming due entities under a lease, writing results.
//! - `stitch`: the stitch queue and final entities, change feed for the in-memory index.
//! - `deletion`: orphan and eager deletion, refresh requests, ancestry.
//! - `audit`, `keys`, `policy`: the audit log, signing keys, the saved permission policy.
//! - `tasks`: software template runs and their events.

mod audit;
mod deletion;
mod keys;
mod location;
mod policy;
mod processing;
mod relations;
mod stitch;
mod tasks;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};

pub use crate::audit::AuditRow;
pub use crate::deletion::{AncestryItem, StoreCounts};
pub use crate::keys::AuthKeyRow;
pub use crate::location::LocationRow;
pub use crate::policy::StoredPolicy;
pub use crate::processing::{
    ClaimedEntity, Conflict, DeferredEntity, InlineResult, Outcome, ProcessOutcome, ProviderMutation,
    RelationRow, WriteSummary,
};
pub use crate::stitch::{inline_input, Changes, FinalRow, FinalWrite, StitchInput, StitchState, Stitched};
pub use crate::tasks::{ClaimedTask, Recovery, TaskEventRow, TaskQuery, TaskRow};

/// Where the catalog lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// An SQLite file; `None` keeps the database in memory (lost on exit, as Backstage's `:memory:`).
    Sqlite { path: Option<PathBuf> },
    /// A PostgreSQL connection string (`postgres://user:pass@host:port/db`).
    Postgres { url: String },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("location {kind}:{target} already exists")]
    LocationExists { kind: String, target: String },
    #[error("found no location with ID {id}")]
    LocationNotFound { id: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The catalog's durable store. Cheap to clone (pools are reference counted).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool the store has. Most of our SQL is written in the
/// common subset of SQLite and PostgreSQL (`$n` parameters work in both), so the body is shared
/// text compiled twice, once per database type, instead of going through `sqlx::Any`.
macro_rules! dispatch {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use dispatch;

/// Like `dispatch!`, inside one transaction that commits when the body succeeds.
///
/// SQLite transactions take the write lock up front (`BEGIN IMMEDIATE`): a deferred transaction
/// that reads first cannot upgrade to writing once another connection has written, and fails with
/// "database is locked" at once instead of waiting out the busy timeout.
macro_rules! transaction {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let result = $body;
                $tx.commit().await?;
                result
            }
            $crate::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let result = $body;
                $tx.commit().await?;
                result
            }
        }
    };
}
pub(crate) use transaction;

impl Store {
    /// Connects without touching the schema.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store> {
        let backend = match config {
            DatabaseConfig::Sqlite { path } => {
                let (options, max_connections) = match path {
                    // Each in-memory connection is its own database, so keep exactly one.
                    None => (SqliteConnectOptions::from_str("sqlite::memory:")?, 1),
                    Some(path) => (
                        SqliteConnectOptions::new()
                            .filename(path)
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal),
                        4,
                    ),
                };
                // Bulk writes of a large ingestion legitimately take more than sqlx's one-second
                // "slow statement" threshold; that is not worth a warning in the operator's log.
                let options = options
                    .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
                    .pragma("cache_size", "-2048")
                    // A multi-row statement inside a transaction keeps a statement journal of the
                    // pages it changes; in memory it costs no temporary file writes.
                    .pragma("temp_store", "memory");
                if path.is_some() {
                    // Create the file and switch it to WAL on one connection first: several pool
                    // connections racing to change the journal mode of a new file can fail with
                    // "database is locked" (the change needs an exclusive lock and does not wait).
                    let connection = options.connect().await?;
                    connection.close().await?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await?;
                Backend::Sqlite(pool)
            }
            DatabaseConfig::Postgres { url } => {
                let options = PgConnectOptions::from_str(url)?
                    .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?;
                Backend::Postgres(pool)
            }
        };
        Ok(Store { backend })
    }

    /// Connects and applies every pending migration.
    pub async fn open(config: &DatabaseConfig) -> Result<Store> {
        let store = Store::connect(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations. Safe to run from several replicas at once: sqlx takes an
    /// advisory lock on PostgreSQL, and SQLite serializes writers.
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Reverts every migration (used by `portico migrate --down` and the migration tests).
    pub async fn migrate_down(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").undo(pool, 0).await?,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").undo(pool, 0).await?,
        }
        Ok(())
    }

    /// Reverts the migrations after `version` (tests of upgrades from an older schema).
    #[doc(hidden)]
    pub async fn migrate_down_to(&self, version: i64) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").undo(pool, version).await?,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").undo(pool, version).await?,
        }
        Ok(())
    }

    /// The names of applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT description FROM _sqlx_migrations ORDER BY version")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    /// True when the database answers a trivial query (readiness).
    pub async fn ping(&self) -> bool {
        let result: std::result::Result<(i32,), sqlx::Error> = dispatch!(self, pool => {
            sqlx::query_as("SELECT 1").fetch_one(pool).await
        });
        result.is_ok()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// A statement in this database's best parameter form (see `positional`).
    pub(crate) fn sql(&self, text: String) -> String {
        match self.backend {
            Backend::Sqlite(_) => positional(text),
            Backend::Postgres(_) => text,
        }
    }

    pub async fn close(&self) {
        dispatch!(self, pool => pool.close().await)
    }
}

/// Runs a statement whose only parameters are an `IN ({})` list once per `CHUNK` of `$items`,
/// evaluating to every row it returns. `$executor` is re-borrowed for each chunk.
macro_rules! fetch_in {
    ($executor:expr, $sql:literal, $items:expr, $row:ty) => {{
        let mut rows: Vec<$row> = Vec::new();
        for chunk in $items.chunks($crate::CHUNK) {
            let sql = format!($sql, $crate::placeholders(chunk.len(), 1));
            let mut query = sqlx::query_as::<_, $row>(&sql);
            for item in chunk {
                query = query.bind(item);
            }
            rows.extend(query.fetch_all($executor).await?);
        }
        rows
    }};
}
pub(crate) use fetch_in;

/// Like `fetch_in!` for statements that return nothing.
macro_rules! execute_in {
    ($executor:expr, $sql:literal, $items:expr) => {{
        for chunk in $items.chunks($crate::CHUNK) {
            let sql = format!($sql, $crate::placeholders(chunk.len(), 1));
            let mut query = sqlx::query(&sql);
            for item in chunk {
                query = query.bind(item);
            }
            query.execute($executor).await?;
        }
    }};
}
pub(crate) use execute_in;

/// Builds `($1,$2,$3),($4,$5,$6)…` for a multi-row statement.
pub(crate) fn value_tuples(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut index = first;
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&index.to_string());
            index += 1;
        }
        sql.push(')');
    }
    sql
}

/// Builds `$1,$2,…` for an `IN (…)` list.
pub(crate) fn placeholders(count: usize, first: usize) -> String {
    (first..first + count).map(|index| format!("${index}")).collect::<Vec<_>>().join(",")
}

/// Rewrites `$1, $2, …` as bare `?` when they appear exactly once each and in order, for SQLite.
///
/// SQLite keeps the names of `$n` (and `?n`) parameters in a list it searches linearly, both
/// when preparing and when sqlx asks each parameter's name before binding it, so a multi-row
/// statement costs the square of its parameter count; bare `?` parameters have no names.
/// Statements that reuse or reorder parameters are left alone.
pub(crate) fn positional(text: String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut expected = 1u64;
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'$' {
            let digits = bytes[at + 1..].iter().take_while(|byte| byte.is_ascii_digit()).count();
            if digits > 0 {
                let number: Option<u64> = text[at + 1..at + 1 + digits].parse().ok();
                if number != Some(expected) {
                    return text;
                }
                expected += 1;
                out.push_str(&text[copied..at]);
                out.push('?');
                at += 1 + digits;
                copied = at;
                continue;
            }
        }
        at += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Rows per multi-row statement. Far below SQLite's and PostgreSQL's parameter limits on
/// purpose: sqlx resolves each `$n` parameter of an SQLite statement by name, which SQLite looks
/// up with a linear walk, so binding costs grow with the square of the parameter count
/// (at 500 rows it dominated ingestion). At 100 rows that cost is negligible and the number of
/// statements is still small.
pub(crate) const CHUNK: usize = 100;

/// Milliseconds since the epoch, as every timestamp column stores them.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
