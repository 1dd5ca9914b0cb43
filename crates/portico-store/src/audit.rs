//! The audit log (`audit_log`): append-only records of writes and sign-ins.

use crate::{dispatch, now_millis, Result, Store};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// Who: a user or service ref, or `anonymous`.
    pub actor: String,
    /// What, e.g. `catalog.location.create`.
    pub action: String,
    /// On what: a path, ref or URL.
    pub target: String,
    /// From where: the client address.
    pub source: String,
    /// The request's parameters, as text.
    pub detail: String,
}

impl Store {
    /// Appends a record stamped now; evaluates to its id.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &str,
        detail: &str,
    ) -> Result<i64> {
        let (id,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as(
                "INSERT INTO audit_log (at, actor, action, target, source, detail) VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING id",
            )
            .bind(now_millis())
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(source)
            .bind(detail)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// Records newest first, up to `limit`, with ids below `before` when given.
    pub async fn audit_records(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, at, actor, action, target, source, detail FROM audit_log
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
