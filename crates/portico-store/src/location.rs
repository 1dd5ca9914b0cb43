//! Registered locations (`POST /locations`), the `locations` table.

use crate::{dispatch, Error, Result, Store};

/// One registered location. `entity_ref` is the canonical ref of its generated Location entity.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LocationRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub target: String,
    pub entity_ref: String,
}

impl Store {
    pub async fn list_locations(&self) -> Result<Vec<LocationRow>> {
        let rows = dispatch!(self, pool => {
            sqlx::query_as("SELECT id, type, target, entity_ref FROM locations ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    pub async fn location(&self, id: &str) -> Result<Option<LocationRow>> {
        let row = dispatch!(self, pool => {
            sqlx::query_as("SELECT id, type, target, entity_ref FROM locations WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    pub async fn location_by_target(&self, kind: &str, target: &str) -> Result<Option<LocationRow>> {
        let row = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, type, target, entity_ref FROM locations WHERE type = $1 AND target = $2",
            )
            .bind(kind)
            .bind(target)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Inserts a location; fails with `LocationExists` when the same type and target exist.
    pub async fn insert_location(&self, location: &LocationRow) -> Result<()> {
        let result = dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO locations (id, type, target, entity_ref) VALUES ($1, $2, $3, $4)",
            )
            .bind(&location.id)
            .bind(&location.kind)
            .bind(&location.target)
            .bind(&location.entity_ref)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(Error::LocationExists { kind: location.kind.clone(), target: location.target.clone() })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Changes a location's type and target, keeping its id and entity ref (Backstage keeps the
    /// generated Location entity's name derived from the original target).
    /// Fails with `LocationNotFound` or `LocationExists`.
    pub async fn update_location(&self, id: &str, kind: &str, target: &str) -> Result<LocationRow> {
        let result: std::result::Result<Option<LocationRow>, sqlx::Error> = dispatch!(self, pool => {
            sqlx::query_as(
                "UPDATE locations SET type = $1, target = $2 WHERE id = $3
                 RETURNING id, type, target, entity_ref",
            )
            .bind(kind)
            .bind(target)
            .bind(id)
            .fetch_optional(pool)
            .await
        });
        match result {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(Error::LocationNotFound { id: id.to_owned() }),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(Error::LocationExists { kind: kind.to_owned(), target: target.to_owned() })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a location row and returns it; the caller removes its entity tree.
    pub async fn delete_location(&self, id: &str) -> Result<LocationRow> {
        let row: Option<LocationRow> = dispatch!(self, pool => {
            sqlx::query_as(
                "DELETE FROM locations WHERE id = $1 RETURNING id, type, target, entity_ref",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| Error::LocationNotFound { id: id.to_owned() })
    }
}
