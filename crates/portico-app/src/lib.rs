//! The catalog application: one `App` with a method per use case, used by the HTTP API and the
//! CLI alike.
//!
//! `App` owns the store (durable state), the in-memory `Catalog` (the read side) and the
//! `Engine` (processing, stitching, orphan collection). Reads are answered from the catalog
//! index without touching the database; writes go through the store and come back into the index
//! through the engine.
//!
//! Layout:
//! - `index`, `catalog`, `query`: the read side.
//! - `processing`, `reader`, `rules`, `stitcher`: one processing pass and its inputs and outputs.
//! - `engine`: the loops that drive processing and keep the index current.
//! - `provider`: entity providers and their mutations.
//! - `identity`: who is asking; every use case takes one.
//!
//! It knows nothing about HTTP or JSON wire shapes; those belong to `portico-web`.

pub mod catalog;
pub mod engine;
pub mod identity;
pub mod index;
pub mod permission;
pub mod processing;
pub mod provider;
pub mod query;
pub mod reader;
pub mod rules;
pub mod stitcher;

use std::sync::Arc;

use portico_catalog::entity_ref::canonical_ref_of;
use portico_catalog::location_ref::LocationRef;
use portico_catalog::validate::{preprocess, validate_entity};
use portico_store::{LocationRow, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::engine::{Engine, EngineOptions};
use crate::identity::Identity;
use crate::processing::{
    generated_location_entity, Child, Processor, MANAGED_BY_LOCATION, MANAGED_BY_ORIGIN_LOCATION,
};
use crate::provider::{
    ConfigLocationProvider, Mutation, ProvidedEntity, ProviderConnection, CONFIG_PROVIDER,
    LOCATION_STORE_PROVIDER,
};
use crate::query::{ListPage, ListRequest, QueryFilter, QueryPage, QueryRequest};

/// Use-case errors, in Backstage's error vocabulary (the web layer maps names to statuses).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// InputError (400).
    #[error("{0}")]
    Input(String),
    /// NotFoundError (404).
    #[error("{0}")]
    NotFound(String),
    /// ConflictError (409).
    #[error("{0}")]
    Conflict(String),
    /// NotAllowedError (403).
    #[error("{0}")]
    NotAllowed(String),
    /// Validation failure of `validate-entity`: every error found.
    #[error("entity is not valid")]
    Invalid(Vec<processing::ProcessingError>),
    #[error(transparent)]
    Store(#[from] portico_store::Error),
}

/// Configuration of the catalog use cases.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub engine: EngineOptions,
    /// `catalog.locations`, resolved (file targets absolute).
    pub config_locations: Vec<LocationRef>,
    /// Location types `POST /locations` accepts (Backstage default `["url"]`).
    pub allowed_location_types: Vec<String>,
    /// `catalog.readonly`.
    pub readonly: bool,
    /// `catalog.defaultLocationConflictStrategy` is `refresh`.
    pub refresh_on_conflict: bool,
    /// The permission policy when `permission.enabled`; `None` allows everything.
    pub policy: Option<Arc<permission::Policy>>,
}

#[derive(Debug)]
pub struct App {
    store: Store,
    catalog: Arc<Catalog>,
    engine: Arc<Engine>,
    processor: Processor,
    options: AppOptions,
    locations: ProviderConnection,
    ready: std::sync::atomic::AtomicBool,
}

/// The result of `POST /locations`.
#[derive(Debug, Clone)]
pub struct CreatedLocation {
    pub location: LocationRow,
    pub entities: Vec<Value>,
    /// Only for dry runs: whether the location was already registered.
    pub exists: Option<bool>,
}

/// One item of an ancestry answer.
#[derive(Debug, Clone)]
pub struct AncestryItem {
    pub entity: Arc<str>,
    pub parent_entity_refs: Vec<String>,
}

impl App {
    /// Builds the app over an opened store and loads the index. Call `start` to run the engine.
    pub async fn new(store: Store, processor: Processor, options: AppOptions) -> Result<Arc<App>, Error> {
        if !store.is_postgres() {
            // SQLite is single-node: whatever was claimed belonged to a previous run of this
            // process, which is gone.
            store.expire_all_leases().await?;
        }
        let catalog = Arc::new(Catalog::new());
        let count = catalog.load(&store).await?;
        tracing::info!(entities = count, "catalog index loaded");
        let engine =
            Arc::new(Engine::new(store.clone(), catalog.clone(), processor.clone(), options.engine.clone()));
        let locations = ProviderConnection::new(LOCATION_STORE_PROVIDER, store.clone(), engine.clone());
        Ok(Arc::new(App {
            store,
            catalog,
            engine,
            processor,
            options,
            locations,
            ready: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Connects the built-in providers and starts the engine loops.
    pub async fn start(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        self.connect_providers().await?;
        let engine = self.engine.clone();
        let handle = tokio::spawn(engine.run(shutdown));
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(handle)
    }

    /// Applies the config and location-store providers' full mutations.
    pub async fn connect_providers(&self) -> Result<(), Error> {
        let config = ConfigLocationProvider::new(self.options.config_locations.clone());
        ProviderConnection::new(CONFIG_PROVIDER, self.store.clone(), self.engine.clone())
            .apply_mutation(Mutation::Full { entities: config.entities() })
            .await
            .map_err(provider_error)?;
        let registered = self.store.list_locations().await?;
        let entities =
            registered.iter().map(|row| registered_location_entity(&row.kind, &row.target)).collect();
        self.locations.apply_mutation(Mutation::Full { entities }).await.map_err(provider_error)?;
        Ok(())
    }

    /// A handle for a custom entity provider.
    pub fn provider_connection(&self, name: &str) -> ProviderConnection {
        ProviderConnection::new(name, self.store.clone(), self.engine.clone())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Processes and stitches until nothing is due (tests, benchmarks, one-shot ingestion).
    pub async fn settle(&self) -> Result<(), Error> {
        self.engine.run_until_idle().await?;
        Ok(())
    }

    // ----- reads -----

    pub fn list_entities(&self, _identity: &Identity, request: &ListRequest) -> Result<ListPage, Error> {
        query::list_entities(&self.catalog.read(), request)
    }

    pub fn query_entities(&self, _identity: &Identity, request: QueryRequest) -> Result<QueryPage, Error> {
        query::query_entities(&self.catalog.read(), request)
    }

    pub fn entity_by_uid(&self, _identity: &Identity, uid: &str) -> Result<Arc<str>, Error> {
        self.catalog.read().by_uid(uid).ok_or_else(|| Error::NotFound(format!("No entity with uid {uid}")))
    }

    pub fn entity_by_name(
        &self,
        _identity: &Identity,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<str>, Error> {
        let entity_ref =
            format!("{}:{}/{}", kind.to_lowercase(), namespace.to_lowercase(), name.to_lowercase());
        self.catalog.read().by_ref(&entity_ref).ok_or_else(|| {
            Error::NotFound(format!(
                "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
            ))
        })
    }

    pub fn entities_by_refs(
        &self,
        _identity: &Identity,
        refs: &[String],
        filter: &QueryFilter,
        fields: &[String],
    ) -> Result<Vec<Option<Arc<str>>>, Error> {
        query::entities_by_refs(&self.catalog.read(), refs, filter, fields)
    }

    pub fn entity_facets(
        &self,
        _identity: &Identity,
        filter: &QueryFilter,
        facets: &[String],
    ) -> Result<Vec<query::Facet>, Error> {
        query::facets(&self.catalog.read(), filter, facets)
    }

    /// Facets for the UI, which can also restrict to entities failing processing and keep
    /// only the `limit` most common values of each.
    pub fn entity_facets_within(
        &self,
        _identity: &Identity,
        filter: &QueryFilter,
        only_with_errors: bool,
        limit: usize,
        facets: &[String],
    ) -> Result<Vec<query::Facet>, Error> {
        query::facets_within(&self.catalog.read(), filter, only_with_errors, limit, facets)
    }

    /// Ownership refs of a user signing in: its own ref plus the groups of its `memberOf`
    /// relations when the user is in the catalog (reference §B.5), else its own ref only.
    pub fn ownership_of(&self, user_entity_ref: &str) -> Vec<String> {
        let mut refs = vec![user_entity_ref.to_owned()];
        if let Some(user) = self.catalog.read().parsed(&user_entity_ref.to_lowercase()) {
            let groups = user.get("relations").and_then(Value::as_array).into_iter().flatten().filter_map(
                |relation| {
                    let target = relation.get("targetRef")?.as_str()?;
                    (relation.get("type")?.as_str()? == "memberOf" && target.starts_with("group:"))
                        .then(|| target.to_owned())
                },
            );
            refs.extend(groups);
        }
        refs
    }

    /// Appends to the audit log. `source` is where the request came from.
    pub async fn record_audit(
        &self,
        identity: &Identity,
        action: &str,
        target: &str,
        source: &str,
        detail: &str,
    ) -> Result<(), Error> {
        self.store.record_audit(&identity.actor(), action, target, source, detail).await?;
        Ok(())
    }

    /// Audit records, newest first.
    pub async fn audit_records(
        &self,
        _identity: &Identity,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<portico_store::AuditRow>, Error> {
        Ok(self.store.audit_records(limit.clamp(1, 1000), before).await?)
    }

    /// The most recently changed entities, newest first.
    pub async fn recently_changed(&self, _identity: &Identity, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        let refs = self.store.recently_changed(limit).await?;
        let index = self.catalog.read();
        Ok(refs.iter().filter_map(|entity_ref| index.by_ref(entity_ref)).collect())
    }

    /// The entities an entity emits (for a Location: what its targets produced).
    pub async fn emitted_by(&self, _identity: &Identity, entity_ref: &str) -> Result<Vec<String>, Error> {
        Ok(self.store.children_of(entity_ref).await?)
    }

    pub async fn entity_ancestry(
        &self,
        _identity: &Identity,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(String, Vec<AncestryItem>), Error> {
        let entity_ref =
            format!("{}:{}/{}", kind.to_lowercase(), namespace.to_lowercase(), name.to_lowercase());
        if !self.catalog.read().contains_ref(&entity_ref) {
            return Err(Error::NotFound(format!("No such entity {entity_ref}")));
        }
        let steps = self.store.ancestry(&entity_ref).await?;
        let index = self.catalog.read();
        let items = steps
            .into_iter()
            .filter_map(|step| {
                let entity = index.by_ref(&step.entity_ref)?;
                Some(AncestryItem { entity, parent_entity_refs: step.parent_refs })
            })
            .collect();
        Ok((entity_ref, items))
    }

    // ----- permissions -----

    /// Refuses what the policy does not allow. Services (static tokens) and Portico itself are
    /// trusted, as Backstage trusts service principals; without a policy everything is allowed.
    pub fn check(
        &self,
        identity: &Identity,
        permission: permission::Permission,
        entity: Option<&Value>,
    ) -> Result<(), Error> {
        let Some(policy) = &self.options.policy else { return Ok(()) };
        if matches!(identity, Identity::Service { .. } | Identity::System)
            || policy.allows(permission, identity, &self.groups_of(identity), entity)
        {
            return Ok(());
        }
        let on = entity
            .and_then(canonical_ref_of)
            .map(|entity_ref| format!(" on {entity_ref}"))
            .unwrap_or_default();
        Err(Error::NotAllowed(format!("{} is not allowed to {}{on}", identity.actor(), permission.name)))
    }

    /// The caller's ownership refs plus every group they belong to through `childOf`, for
    /// matching policy rules by group (bounded, so a cyclic hierarchy ends).
    fn groups_of(&self, identity: &Identity) -> Vec<String> {
        let Identity::User { ownership_entity_refs, .. } = identity else { return Vec::new() };
        let mut groups: Vec<String> =
            ownership_entity_refs.iter().map(|owner| owner.to_lowercase()).collect();
        let index = self.catalog.read();
        let mut next = 0;
        while next < groups.len() && groups.len() < 1000 {
            if let Some(group) = index.parsed(&groups[next]) {
                let parents =
                    group.get("relations").and_then(Value::as_array).into_iter().flatten().filter_map(
                        |relation| {
                            (relation.get("type")?.as_str()? == "childOf")
                                .then(|| relation.get("targetRef")?.as_str().map(str::to_lowercase))?
                        },
                    );
                for parent in parents.collect::<Vec<_>>() {
                    if !groups.contains(&parent) {
                        groups.push(parent);
                    }
                }
            }
            next += 1;
        }
        groups
    }

    /// `POST /api/permission/authorize` for one item: `ALLOW` or `DENY`.
    pub fn authorize(
        &self,
        identity: &Identity,
        name: &str,
        resource_ref: Option<&str>,
    ) -> Result<bool, Error> {
        let known = [
            permission::ENTITY_READ,
            permission::ENTITY_DELETE,
            permission::ENTITY_REFRESH,
            permission::LOCATION_CREATE,
            permission::LOCATION_DELETE,
        ];
        let Some(permission) = known.into_iter().find(|known| known.name == name) else {
            // Permissions Portico does not enforce: allowed without a policy, denied with one
            // (the policy only names the permissions above).
            return Ok(self.options.policy.is_none());
        };
        let entity = match (permission.resource_type, resource_ref) {
            (Some(_), None) if matches!(identity, Identity::User { .. }) => {
                return Err(Error::Input(
                    "Resource permissions require a resourceRef to be set. Direct user requests without a resourceRef are not allowed.".into(),
                ))
            }
            (Some(_), Some(entity_ref)) => self.catalog.read().parsed(&entity_ref.to_lowercase()),
            _ => None,
        };
        Ok(self.check(identity, permission, entity.as_ref()).is_ok())
    }

    // ----- writes -----

    /// `POST /refresh`.
    pub async fn refresh_entity(&self, identity: &Identity, entity_ref: &str) -> Result<(), Error> {
        if self.options.policy.is_some() {
            if let Some(entity) = self.catalog.read().parsed(entity_ref) {
                self.check(identity, permission::ENTITY_REFRESH, Some(&entity))?;
            }
        }
        if !self.store.request_refresh(entity_ref).await? {
            return Err(Error::NotFound(format!("Entity {entity_ref} not found")));
        }
        self.engine.wake();
        Ok(())
    }

    /// `DELETE /entities/by-uid/{uid}`. Unknown uids succeed, as in Backstage.
    pub async fn delete_entity(&self, identity: &Identity, uid: &str) -> Result<(), Error> {
        if self.options.policy.is_some() {
            let entity: Option<Value> =
                self.catalog.read().by_uid(uid).and_then(|body| serde_json::from_str(&body).ok());
            if let Some(entity) = &entity {
                self.check(identity, permission::ENTITY_DELETE, Some(entity))?;
            }
        }
        if self.store.delete_entity_by_uid(uid).await? {
            self.catalog.sync(&self.store).await?;
            self.engine.wake();
        }
        Ok(())
    }

    pub async fn list_locations(&self, _identity: &Identity) -> Result<Vec<LocationRow>, Error> {
        Ok(self.store.list_locations().await?)
    }

    pub async fn location(&self, _identity: &Identity, id: &str) -> Result<LocationRow, Error> {
        self.store
            .location(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Found no location with ID {id}")))
    }

    /// `POST /locations`, real or dry run.
    pub async fn create_location(
        &self,
        identity: &Identity,
        kind: &str,
        target: &str,
        dry_run: bool,
        on_conflict_refresh: Option<bool>,
    ) -> Result<CreatedLocation, Error> {
        if !dry_run {
            self.check(identity, permission::LOCATION_CREATE, None)?;
        }
        if !self.options.allowed_location_types.iter().any(|allowed| allowed == kind) {
            return Err(Error::Input(format!(
                "Registered locations must be of an allowed type {}",
                serde_json::to_string(&self.options.allowed_location_types).unwrap_or_default()
            )));
        }
        let location =
            LocationRef::parse(&format!("{kind}:{target}")).map_err(|error| Error::Input(error.message))?;
        let entity = generated_location_entity(&location);
        let entity_ref = canonical_ref_of(&entity).unwrap_or_default();
        if dry_run {
            let exists = self.store.location_by_target(kind, target).await?.is_some();
            let entities = self.dry_run(entity.clone()).await?;
            return Ok(CreatedLocation {
                location: LocationRow {
                    id: format!("{kind}:{target}"),
                    kind: kind.into(),
                    target: target.into(),
                    entity_ref,
                },
                entities,
                exists: Some(exists),
            });
        }
        if self.options.readonly {
            return Err(Error::NotAllowed("This operation not allowed in readonly mode".into()));
        }
        if let Some(existing) = self.store.location_by_target(kind, target).await? {
            if on_conflict_refresh.unwrap_or(self.options.refresh_on_conflict) {
                self.store.make_due(&[&existing.entity_ref]).await?;
                self.engine.wake();
                return Ok(CreatedLocation { location: existing, entities: Vec::new(), exists: None });
            }
            return Err(Error::Conflict(format!("Location {kind}:{target} already exists")));
        }
        let row = LocationRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_owned(),
            target: target.to_owned(),
            entity_ref,
        };
        self.store.insert_location(&row).await.map_err(|error| match error {
            portico_store::Error::LocationExists { .. } => {
                Error::Conflict(format!("Location {kind}:{target} already exists"))
            }
            other => Error::Store(other),
        })?;
        self.locations
            .apply_mutation(Mutation::Delta {
                added: vec![registered_location_entity(kind, target)],
                removed: Vec::new(),
            })
            .await
            .map_err(provider_error)?;
        Ok(CreatedLocation { location: row, entities: Vec::new(), exists: None })
    }

    /// `PUT /locations/{id}`: points a registered location elsewhere. Its Location entity keeps
    /// its name (derived from the original target) and is processed again with the new spec.
    pub async fn update_location(
        &self,
        identity: &Identity,
        id: &str,
        kind: &str,
        target: &str,
    ) -> Result<LocationRow, Error> {
        self.check(identity, permission::LOCATION_CREATE, None)?;
        if !self.options.allowed_location_types.iter().any(|allowed| allowed == kind) {
            return Err(Error::Input(format!(
                "Registered locations must be of an allowed type {}",
                serde_json::to_string(&self.options.allowed_location_types).unwrap_or_default()
            )));
        }
        if self.options.readonly {
            return Err(Error::NotAllowed("This operation not allowed in readonly mode".into()));
        }
        let location =
            LocationRef::parse(&format!("{kind}:{target}")).map_err(|error| Error::Input(error.message))?;
        let row = self.store.update_location(id, kind, target).await.map_err(|error| match error {
            portico_store::Error::LocationNotFound { id } => {
                Error::NotFound(format!("Found no location with ID {id}"))
            }
            portico_store::Error::LocationExists { kind, target } => {
                Error::Conflict(format!("Location {kind}:{target} already exists"))
            }
            other => Error::Store(other),
        })?;
        // The entity keeps the name and annotations it was created with; only its spec moves.
        let Some(current) = self.catalog.read().parsed(&row.entity_ref) else {
            return Ok(row);
        };
        let mut entity = current;
        if let Some(object) = entity.as_object_mut() {
            object.remove("relations");
            object.remove("status");
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("uid");
                metadata.remove("etag");
            }
            object.insert(
                "spec".into(),
                serde_json::json!({ "type": location.kind, "target": location.target }),
            );
        }
        let original_key = entity
            .pointer("/metadata/annotations")
            .and_then(|annotations| annotations.get(MANAGED_BY_LOCATION))
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.locations
            .apply_mutation(Mutation::Delta {
                added: vec![ProvidedEntity { entity, location_key: original_key }],
                removed: Vec::new(),
            })
            .await
            .map_err(provider_error)?;
        Ok(row)
    }

    /// `DELETE /locations/{id}`: removes the location and everything only it kept alive.
    pub async fn delete_location(&self, identity: &Identity, id: &str) -> Result<(), Error> {
        self.check(identity, permission::LOCATION_DELETE, None)?;
        if self.options.readonly {
            return Err(Error::NotAllowed("This operation not allowed in readonly mode".into()));
        }
        let row = self.store.delete_location(id).await.map_err(|error| match error {
            portico_store::Error::LocationNotFound { id } => {
                Error::NotFound(format!("Found no location with ID {id}"))
            }
            other => Error::Store(other),
        })?;
        self.locations
            .apply_mutation(Mutation::Delta { added: Vec::new(), removed: vec![row.entity_ref] })
            .await
            .map_err(provider_error)?;
        self.catalog.sync(&self.store).await?;
        Ok(())
    }

    /// `GET /locations/by-entity`: the registered location the entity originated from.
    pub async fn location_by_entity(
        &self,
        identity: &Identity,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<LocationRow, Error> {
        let body = self.entity_by_name(identity, kind, namespace, name)?;
        let entity: Value = serde_json::from_str(&body).map_err(|error| Error::Input(error.to_string()))?;
        let origin = entity
            .pointer("/metadata/annotations")
            .and_then(|annotations| annotations.get(MANAGED_BY_ORIGIN_LOCATION))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::NotFound(format!("Entity {kind}:{namespace}/{name} has no origin location"))
            })?;
        let location = LocationRef::parse(origin).map_err(|error| Error::NotFound(error.message))?;
        self.store.location_by_target(&location.kind, &location.target).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "Found no location with type {} and target {}",
                location.kind, location.target
            ))
        })
    }

    /// Processes a Location entity and everything it leads to, without storing anything.
    async fn dry_run(&self, root: Value) -> Result<Vec<Value>, Error> {
        let mut output = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut queue = vec![root];
        let mut errors = Vec::new();
        while let Some(entity) = queue.pop() {
            let processed = self.processor.process(&entity).await;
            if !processed.errors.is_empty() {
                errors.extend(processed.errors.iter().map(|error| error.message.clone()));
                continue;
            }
            let Some(done) = processed.entity else { continue };
            let entity_ref = canonical_ref_of(&done).unwrap_or_default();
            if !seen.insert(entity_ref.clone()) {
                return Err(Error::Input(format!("Duplicate nested entity: {entity_ref}")));
            }
            output.push(done);
            if output.len() > 10_000 {
                return Err(Error::Input("Dry run found more than 10000 entities; stopping".into()));
            }
            let children: Vec<Child> = processed.children;
            queue.extend(children.into_iter().rev().map(|child| child.entity));
        }
        if !errors.is_empty() {
            return Err(Error::Input(errors.join(", ")));
        }
        Ok(output)
    }

    /// `POST /analyze-location`: the descriptor files at a URL (a file, or `catalogFilename` in a
    /// folder), or a suggested Component when there are none.
    pub async fn analyze_location(
        &self,
        _identity: &Identity,
        url: &url::Url,
        filename: &str,
    ) -> Result<Value, Error> {
        let path = url.path();
        let candidate = if path.ends_with(".yaml") || path.ends_with(".yml") {
            url.clone()
        } else {
            let mut folder = url.clone();
            if !folder.path().ends_with('/') {
                folder.set_path(&format!("{}/", folder.path()));
            }
            folder.join(filename).map_err(|error| Error::Input(error.to_string()))?
        };
        let origin = LocationRef { kind: "url".into(), target: candidate.to_string() };
        let registered = self.store.location_by_target("url", candidate.as_str()).await?.is_some();
        match self.processor.read_target("url", candidate.as_str(), &origin, true).await {
            Ok(children) if !children.is_empty() => {
                let existing: Vec<Value> = children
                    .into_iter()
                    .map(|child| {
                        serde_json::json!({
                            "entity": child.entity,
                            "isRegistered": registered,
                            "location": { "type": "url", "target": candidate.as_str() },
                        })
                    })
                    .collect();
                return Ok(serde_json::json!({ "existingEntityFiles": existing, "generateEntities": [] }));
            }
            Ok(_) => {}
            Err(errors) => {
                let not_found = errors.iter().all(|error| error.name == "NotFoundError");
                if !not_found {
                    return Err(Error::Input(
                        errors.iter().map(|error| error.message.clone()).collect::<Vec<_>>().join(", "),
                    ));
                }
            }
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|segments| segments.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let owner = segments.first().copied().unwrap_or("");
        let repo = segments.get(1).copied().unwrap_or(owner).trim_end_matches(".git");
        let host = url.host_str().unwrap_or("");
        let mut annotations = serde_json::Map::new();
        if !owner.is_empty() {
            annotations.insert(format!("{host}/project-slug"), Value::String(format!("{owner}/{repo}")));
        }
        let entity = serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": { "name": repo, "annotations": annotations },
            "spec": { "type": "other", "lifecycle": "unknown" },
        });
        Ok(
            serde_json::json!({ "existingEntityFiles": [], "generateEntities": [{ "entity": entity, "fields": [] }] }),
        )
    }

    /// `POST /validate-entity`: the full pipeline on one entity, nothing stored.
    pub async fn validate_entity(
        &self,
        _identity: &Identity,
        entity: Value,
        location: &str,
    ) -> Result<(), Error> {
        let location_ref = LocationRef::parse(location).map_err(|error| Error::Input(error.message))?;
        if location_ref.kind != "url" {
            return Err(Error::Input(format!("Invalid location ref {location}, only 'url:' is supported")));
        }
        let mut entity = entity;
        if !entity.is_object() {
            return Err(Error::Invalid(vec![processing::ProcessingError::new(
                "InputError",
                "Entity must be an object",
            )]));
        }
        if entity.get("metadata").is_some_and(Value::is_object) {
            let annotations_missing = |entity: &Value, key: &str| {
                entity.pointer("/metadata/annotations").and_then(|annotations| annotations.get(key)).is_none()
            };
            if annotations_missing(&entity, MANAGED_BY_LOCATION) {
                processing::set_annotation(&mut entity, MANAGED_BY_LOCATION, location);
            }
            if annotations_missing(&entity, MANAGED_BY_ORIGIN_LOCATION) {
                processing::set_annotation(&mut entity, MANAGED_BY_ORIGIN_LOCATION, location);
            }
        }
        let processed = self.processor.process(&entity).await;
        if processed.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(processed.errors))
        }
    }
}

/// Validates one entity the way the server would, without any IO (for `portico validate`,
/// which resolves placeholders itself). Returns every problem.
pub fn validate_offline(entity: &mut Value) -> Vec<portico_catalog::problem::Problem> {
    preprocess(entity);
    let mut problems = validate_entity(entity);
    if problems.is_empty() {
        if let Err(relation_problems) = portico_catalog::relations::relations_of(entity) {
            problems.extend(relation_problems);
        }
    }
    problems
}

fn registered_location_entity(kind: &str, target: &str) -> ProvidedEntity {
    let location = LocationRef { kind: kind.to_owned(), target: target.to_owned() };
    ProvidedEntity { entity: generated_location_entity(&location), location_key: Some(location.to_string()) }
}

fn provider_error(error: provider::ProviderError) -> Error {
    match error {
        provider::ProviderError::Malformed(message) => Error::Input(message),
        provider::ProviderError::Store(error) => Error::Store(error),
    }
}
