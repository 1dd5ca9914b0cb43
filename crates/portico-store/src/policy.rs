//! The permission policy saved by an admin (`permission_policy`, one row at most).

use crate::{dispatch, now_millis, Result, Store};

/// The saved policy document (YAML text) and who saved it when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredPolicy {
    pub document: String,
    pub updated_by: String,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

impl Store {
    pub async fn stored_policy(&self) -> Result<Option<StoredPolicy>> {
        let row = dispatch!(self, pool => {
            sqlx::query_as("SELECT document, updated_by, updated_at FROM permission_policy WHERE id = 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    /// Replaces the saved policy.
    pub async fn save_policy(&self, document: &str, actor: &str) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO permission_policy (id, document, updated_by, updated_at) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET document = excluded.document,
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(document)
            .bind(actor)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|_| ())?
        });
        Ok(())
    }

    /// Removes the saved policy, so the configured one applies again.
    pub async fn clear_policy(&self) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("DELETE FROM permission_policy").execute(pool).await.map(|_| ())?
        });
        Ok(())
    }
}
