//! Entity providers: the sources that root entities in the catalog (reference §6.3).
//!
//! A provider has a stable name and pushes full or delta mutations through a
//! `ProviderConnection`. This is where GitHub, LDAP and other sources plug in: implement
//! `EntityProvider`, and the engine does the rest (processing, conflicts, deletion, stitching).

use std::sync::Arc;

use portico_catalog::entity_ref::canonical_ref_of;
use portico_catalog::validate::check_envelope;
use portico_store::{DeferredEntity, ProviderMutation, Store};
use serde_json::Value;

use crate::engine::Engine;
use crate::processing::sha1_hex;

/// An entity handed to the catalog by a provider. Provider entities must carry the
/// `backstage.io/managed-by-location` and `managed-by-origin-location` annotations.
#[derive(Debug, Clone)]
pub struct ProvidedEntity {
    pub entity: Value,
    /// The owner of the ref; defaults to none (any provider may write it).
    pub location_key: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace every entity this provider roots.
    Full { entities: Vec<ProvidedEntity> },
    /// Add or update some, remove others (by canonical ref).
    Delta { added: Vec<ProvidedEntity>, removed: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("Malformed entity envelope, {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] portico_store::Error),
}

/// A source of entities. `connect` is called once at startup; the provider keeps the
/// connection and applies mutations whenever its source changes.
pub trait EntityProvider: Send + Sync + std::fmt::Debug {
    /// Unique and stable across restarts: the entities it roots are keyed by it.
    fn name(&self) -> &str;
    fn connect(self: Arc<Self>, connection: ProviderConnection);
}

/// The handle through which a provider changes the catalog.
#[derive(Debug, Clone)]
pub struct ProviderConnection {
    name: String,
    store: Store,
    engine: Arc<Engine>,
}

impl ProviderConnection {
    pub fn new(name: &str, store: Store, engine: Arc<Engine>) -> ProviderConnection {
        ProviderConnection { name: name.to_owned(), store, engine }
    }

    /// Applies a mutation. Every entity is envelope-checked first; one malformed entity fails the
    /// whole call and changes nothing.
    pub async fn apply_mutation(&self, mutation: Mutation) -> Result<(), ProviderError> {
        let mutation = match mutation {
            Mutation::Full { entities } => ProviderMutation::Full { entities: deferred(entities)? },
            Mutation::Delta { added, removed } => {
                ProviderMutation::Delta { added: deferred(added)?, removed }
            }
        };
        let summary = self.store.apply_mutation(&self.name, mutation).await?;
        for conflict in &summary.conflicts {
            tracing::warn!(
                provider = %self.name,
                entity.r#ref = %conflict.entity_ref,
                "provider entity conflicts with an entity from another location; the existing one stays"
            );
        }
        self.engine.wake();
        Ok(())
    }

    /// Makes every listed entity due for processing now.
    pub async fn refresh(&self, entity_refs: &[&str]) -> Result<(), ProviderError> {
        self.store.make_due(entity_refs).await?;
        self.engine.wake();
        Ok(())
    }
}

fn deferred(entities: Vec<ProvidedEntity>) -> Result<Vec<DeferredEntity>, ProviderError> {
    entities
        .into_iter()
        .map(|provided| {
            let problems = check_envelope(&provided.entity);
            if let Some(problem) = problems.first() {
                return Err(ProviderError::Malformed(problem.message.clone()));
            }
            let entity_ref = canonical_ref_of(&provided.entity)
                .ok_or_else(|| ProviderError::Malformed("entity has no kind or name".into()))?;
            let text = provided.entity.to_string();
            Ok(DeferredEntity {
                entity_ref,
                hash: sha1_hex(&text),
                entity: text,
                location_key: provided.location_key,
                processed: None,
            })
        })
        .collect()
}

/// Roots one generated Location entity per `catalog.locations` entry (Backstage's
/// ConfigLocationProvider): a full mutation at startup.
#[derive(Debug)]
pub struct ConfigLocationProvider {
    locations: Vec<portico_catalog::location_ref::LocationRef>,
}

impl ConfigLocationProvider {
    pub fn new(locations: Vec<portico_catalog::location_ref::LocationRef>) -> ConfigLocationProvider {
        ConfigLocationProvider { locations }
    }

    pub fn entities(&self) -> Vec<ProvidedEntity> {
        self.locations
            .iter()
            .map(|location| ProvidedEntity {
                entity: crate::processing::generated_location_entity(location),
                location_key: Some(location.to_string()),
            })
            .collect()
    }
}

pub const CONFIG_PROVIDER: &str = "ConfigLocationProvider";
pub const LOCATION_STORE_PROVIDER: &str = "DefaultLocationStore";
