//! Signing keys for user tokens (`auth_keys`).

use crate::{dispatch, Result, Store};

/// One stored signing key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuthKeyRow {
    pub kid: String,
    /// PKCS#8 DER of the private key, base64.
    pub private_key: String,
    /// The public JWK, JSON text.
    pub public_jwk: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

impl Store {
    /// Every stored key, newest first.
    pub async fn auth_keys(&self) -> Result<Vec<AuthKeyRow>> {
        let rows = dispatch!(self, pool => {
            sqlx::query_as("SELECT kid, private_key, public_jwk, created_at FROM auth_keys ORDER BY created_at DESC, kid")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    pub async fn insert_auth_key(&self, key: &AuthKeyRow) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("INSERT INTO auth_keys (kid, private_key, public_jwk, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&key.kid)
                .bind(&key.private_key)
                .bind(&key.public_jwk)
                .bind(key.created_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Deletes keys created before `before` (milliseconds); nothing they signed is still valid.
    pub async fn prune_auth_keys(&self, before: i64) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("DELETE FROM auth_keys WHERE created_at < $1").bind(before).execute(pool).await?;
        });
        Ok(())
    }
}
