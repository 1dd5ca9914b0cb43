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
//! - `scaffolder`: software template tasks (creation, the worker pool, events, dry runs).
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
pub mod scaffolder;
pub mod stitcher;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use portico_catalog::entity_ref::canonical_ref_of;
use portico_catalog::location_ref::LocationRef;
use portico_catalog::validate::{preprocess, validate_entity};
use portico_store::{LocationRow, Store};
use roaring::RoaringBitmap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::engine::{Engine, EngineOptions};
use crate::identity::Identity;
use crate::index::Index;
use crate::permission::{Decision, Policy};
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
    /// The permission policy when `permission.enabled`, with its YAML text; `None` allows
    /// everything. A policy saved by an admin (in the database) takes precedence.
    pub policy: Option<(Arc<Policy>, String)>,
    /// Where to save the index between runs, so a restart reads it instead of parsing every
    /// stored entity (`None`: rebuild at every start).
    pub index_snapshot: Option<std::path::PathBuf>,
    /// `scaffolder.*`.
    pub scaffolder: scaffolder::ScaffolderOptions,
}

/// The policy in force: parsed, its text, and who saved it when (`None`: the configured one).
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    pub policy: Arc<Policy>,
    pub text: String,
    pub saved: Option<portico_store::StoredPolicy>,
}

/// Why a permission is allowed or denied for a user, for the policy page.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The rule that decided (0-based position and the rule), `None` when none matched.
    pub rule: Option<(usize, permission::Rule)>,
    /// The user's groups as rules see them (ownership refs and their parents).
    pub groups: Vec<String>,
    /// The final answer (a conditional decision evaluated against the entity).
    pub allowed: bool,
    /// For a conditional decision: whether the entity satisfies the conditions.
    pub conditions_met: Option<bool>,
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
    /// The permission policy (replaceable at run time by an admin); `None` allows everything.
    policy: RwLock<Option<ActivePolicy>>,
    /// Bumped whenever the policy changes, so cached read sets are recomputed.
    policy_version: AtomicU64,
    /// What each caller may read, per catalog generation and policy version.
    readable: Mutex<HashMap<String, ReadableSet>>,
    scaffolder: scaffolder::Scaffolder,
}

/// The answer of `POST /api/permission/authorize` for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorization {
    Allow,
    Deny,
    /// Conditions in Backstage's wire form, for the caller to apply.
    Conditional(Value),
}

/// A resolver's answer: a catalog user, or (with `dangerouslyAllowSignInWithoutUserInCatalog`)
/// a user ref that is in no catalog.
enum Resolved {
    Found(String),
    Fallback(String),
}

/// What a sign-in provider says about a person, for the sign-in resolvers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignInProfile<'a> {
    /// The provider id (`oidc`, `github`).
    pub provider: &'a str,
    pub email: Option<&'a str>,
    pub username: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

fn local_part(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}

/// A cached answer of `App::readable`.
#[derive(Debug, Clone)]
struct ReadableSet {
    generation: u64,
    policy_version: u64,
    set: Option<Arc<RoaringBitmap>>,
}

/// At most this many callers' read sets are cached.
const READABLE_CACHE: usize = 1024;

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
        let catalog = Arc::new(match &options.index_snapshot {
            Some(path) => Catalog::with_snapshot(path.clone()),
            None => Catalog::new(),
        });
        let count = catalog.load(&store).await?;
        tracing::info!(entities = count, "catalog index loaded");
        {
            // Keys a snapshot left unread are read on first use, and all of them right away.
            let catalog = catalog.clone();
            tokio::task::spawn_blocking(move || catalog.read_pending_keys());
        }
        let engine =
            Arc::new(Engine::new(store.clone(), catalog.clone(), processor.clone(), options.engine.clone()));
        let locations = ProviderConnection::new(LOCATION_STORE_PROVIDER, store.clone(), engine.clone());
        let mut active =
            options.policy.clone().map(|(policy, text)| ActivePolicy { policy, text, saved: None });
        if active.is_some() {
            if let Some(saved) = store.stored_policy().await? {
                match permission::parse_policy(&saved.document) {
                    Ok(policy) => {
                        active = Some(ActivePolicy {
                            policy: Arc::new(policy),
                            text: saved.document.clone(),
                            saved: Some(saved),
                        })
                    }
                    Err(error) => {
                        tracing::error!(%error, "the saved permission policy is invalid; using the configured one")
                    }
                }
            }
        }
        let policy = RwLock::new(active);
        let scaffolder = scaffolder::Scaffolder::new(options.scaffolder.clone());
        Ok(Arc::new(App {
            store,
            catalog,
            engine,
            processor,
            options,
            locations,
            ready: std::sync::atomic::AtomicBool::new(false),
            policy,
            policy_version: AtomicU64::new(0),
            readable: Mutex::new(HashMap::new()),
            scaffolder,
        }))
    }

    /// Saves the catalog index for the next start (at shutdown, after the engine stopped).
    pub async fn save_index(&self) {
        let catalog = self.catalog.clone();
        match tokio::task::spawn_blocking(move || catalog.save_snapshot(true)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "saving the catalog index snapshot failed"),
            Err(error) => tracing::warn!(%error, "saving the catalog index snapshot failed"),
        }
    }

    /// Connects the built-in providers and starts the engine loops.
    pub async fn start(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        self.connect_providers().await?;
        if self.options.policy.is_some() && self.store.is_postgres() {
            // Another replica may save a new policy: follow it within seconds. (SQLite has one
            // process, which installs a saved policy itself.)
            let app = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(std::time::Duration::from_secs(3)) => {}
                    }
                    if let Err(error) = app.reload_policy().await {
                        tracing::warn!(%error, "reading the saved permission policy failed");
                    }
                }
            });
        }
        tokio::spawn(self.clone().run_scaffolder(shutdown.clone()));
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

    pub fn list_entities(&self, identity: &Identity, request: &ListRequest) -> Result<ListPage, Error> {
        let index = self.catalog.read();
        let readable = self.readable(identity, &index);
        query::list_entities(&index, readable.as_deref(), request)
    }

    pub fn query_entities(&self, identity: &Identity, request: QueryRequest) -> Result<QueryPage, Error> {
        let index = self.catalog.read();
        let readable = self.readable(identity, &index);
        query::query_entities(&index, readable.as_deref(), request)
    }

    pub fn entity_by_uid(&self, identity: &Identity, uid: &str) -> Result<Arc<str>, Error> {
        let index = self.catalog.read();
        index
            .ref_of_uid(uid)
            .filter(|entity_ref| self.may_read(identity, &index, entity_ref))
            .and_then(|_| index.by_uid(uid))
            .ok_or_else(|| Error::NotFound(format!("No entity with uid {uid}")))
    }

    pub fn entity_by_name(
        &self,
        identity: &Identity,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<str>, Error> {
        let entity_ref =
            format!("{}:{}/{}", kind.to_lowercase(), namespace.to_lowercase(), name.to_lowercase());
        let index = self.catalog.read();
        let visible = self.may_read(identity, &index, &entity_ref);
        visible.then(|| index.by_ref(&entity_ref)).flatten().ok_or_else(|| {
            Error::NotFound(format!(
                "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
            ))
        })
    }

    pub fn entities_by_refs(
        &self,
        identity: &Identity,
        refs: &[String],
        filter: &QueryFilter,
        fields: &[String],
    ) -> Result<Vec<Option<Arc<str>>>, Error> {
        let index = self.catalog.read();
        let readable = self.readable(identity, &index);
        query::entities_by_refs(&index, readable.as_deref(), refs, filter, fields)
    }

    pub fn entity_facets(
        &self,
        identity: &Identity,
        filter: &QueryFilter,
        facets: &[String],
    ) -> Result<Vec<query::Facet>, Error> {
        self.entity_facets_within(identity, filter, false, usize::MAX, facets)
    }

    /// Facets for the UI, which can also restrict to entities failing processing and keep
    /// only the `limit` most common values of each.
    pub fn entity_facets_within(
        &self,
        identity: &Identity,
        filter: &QueryFilter,
        only_with_errors: bool,
        limit: usize,
        facets: &[String],
    ) -> Result<Vec<query::Facet>, Error> {
        let index = self.catalog.read();
        let readable = self.readable(identity, &index);
        query::facets_within(&index, readable.as_deref(), filter, only_with_errors, limit, facets)
    }

    /// Whether the caller may read the entity (a canonical ref); missing entities are not
    /// readable. For pages that show related entities.
    pub fn can_read(&self, identity: &Identity, entity_ref: &str) -> bool {
        let index = self.catalog.read();
        index.contains_ref(entity_ref) && self.may_read(identity, &index, entity_ref)
    }

    /// The entity as parsed JSON, when the caller may read it.
    pub fn readable_entity(&self, identity: &Identity, entity_ref: &str) -> Option<Value> {
        let index = self.catalog.read();
        self.may_read(identity, &index, entity_ref).then(|| index.parsed(entity_ref)).flatten()
    }

    fn may_read(&self, identity: &Identity, index: &Index, entity_ref: &str) -> bool {
        match self.readable(identity, index) {
            None => true,
            Some(set) => index.slot_of_ref(entity_ref).is_some_and(|slot| set.contains(slot)),
        }
    }

    /// The entities the caller may read (`catalog.entity.read`), `None` when that is all of
    /// them: no policy, a trusted service, or an unconditional allow. Conditional decisions
    /// become filters over the index, so totals, facets and pages count only readable
    /// entities. Cached per caller until the catalog or the policy changes.
    fn readable(&self, identity: &Identity, index: &Index) -> Option<Arc<RoaringBitmap>> {
        if !identity.restrictions_allow(permission::ENTITY_READ.name, permission::ENTITY_READ.action) {
            return Some(Arc::new(RoaringBitmap::new()));
        }
        // The version first: a policy saved after this read makes the cached set stale at once.
        let policy_version = self.policy_version.load(Ordering::Acquire);
        let policy = self.policy()?;
        let key = match identity {
            Identity::Service { .. } | Identity::System => return None,
            Identity::Anonymous => String::new(),
            Identity::User { user_entity_ref, ownership_entity_refs } => {
                format!("{user_entity_ref}\u{1}{}", ownership_entity_refs.join("\u{1}"))
            }
        };
        if let Some(cached) = self.readable.lock().get(&key) {
            if cached.generation == index.generation() && cached.policy_version == policy_version {
                return cached.set.clone();
            }
        }
        let groups = groups_in(index, identity);
        let set = match policy.rule_for(permission::ENTITY_READ, identity, &groups).map(|rule| &rule.decision)
        {
            Some(Decision::Allow) => None,
            Some(Decision::Conditional(criteria)) => {
                Some(Arc::new(index.eval(Some(&criteria.to_filter(identity)))))
            }
            Some(Decision::Deny) | None => Some(Arc::new(RoaringBitmap::new())),
        };
        let mut cache = self.readable.lock();
        if cache.len() >= READABLE_CACHE {
            cache.clear();
        }
        cache.insert(key, ReadableSet { generation: index.generation(), policy_version, set: set.clone() });
        set
    }

    /// The policy in force, `None` without `permission.enabled`.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.read().as_ref().map(|active| active.policy.clone())
    }

    /// The policy in force with its text, for the policy page (`portico.policy.manage`).
    pub fn active_policy(&self, identity: &Identity) -> Result<Option<ActivePolicy>, Error> {
        self.check(identity, permission::POLICY_MANAGE, None)?;
        Ok(self.policy.read().clone())
    }

    /// Replaces the policy with `text` (YAML) after validating it; it is kept in the database,
    /// so it survives restarts and reaches every replica.
    pub async fn save_policy(&self, identity: &Identity, text: &str) -> Result<(), Error> {
        self.check(identity, permission::POLICY_MANAGE, None)?;
        if self.policy.read().is_none() {
            return Err(Error::Input("permissions are not enabled (permission.enabled)".into()));
        }
        let policy = permission::parse_policy(text).map_err(Error::Input)?;
        self.store.save_policy(text, &identity.actor()).await?;
        let saved = self.store.stored_policy().await?;
        self.install_policy(ActivePolicy { policy: Arc::new(policy), text: text.to_owned(), saved });
        Ok(())
    }

    /// Drops the saved policy: the configured one applies again.
    pub async fn reset_policy(&self, identity: &Identity) -> Result<(), Error> {
        self.check(identity, permission::POLICY_MANAGE, None)?;
        self.store.clear_policy().await?;
        if let Some((policy, text)) = self.options.policy.clone() {
            self.install_policy(ActivePolicy { policy, text, saved: None });
        }
        Ok(())
    }

    /// Follows a policy saved by another replica (called periodically).
    pub async fn reload_policy(&self) -> Result<(), Error> {
        let Some((configured, configured_text)) = self.options.policy.clone() else { return Ok(()) };
        let saved = self.store.stored_policy().await?;
        let current = self.policy.read().as_ref().and_then(|active| active.saved.clone());
        if saved == current {
            return Ok(());
        }
        let active = match saved {
            Some(saved) => match permission::parse_policy(&saved.document) {
                Ok(policy) => ActivePolicy {
                    policy: Arc::new(policy),
                    text: saved.document.clone(),
                    saved: Some(saved),
                },
                Err(error) => {
                    tracing::error!(%error, "the saved permission policy is invalid; keeping the current one");
                    return Ok(());
                }
            },
            None => ActivePolicy { policy: configured, text: configured_text, saved: None },
        };
        self.install_policy(active);
        Ok(())
    }

    fn install_policy(&self, active: ActivePolicy) {
        *self.policy.write() = Some(active);
        self.policy_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Which rule decides `permission` for the user `user_entity_ref` (with the ownership it
    /// would have on sign-in) on the entity `entity_ref`, and why.
    pub fn explain(
        &self,
        identity: &Identity,
        user_entity_ref: &str,
        permission_name: &str,
        entity_ref: Option<&str>,
    ) -> Result<Explanation, Error> {
        self.check(identity, permission::POLICY_MANAGE, None)?;
        let policy = self.policy().ok_or_else(|| Error::Input("permissions are not enabled".into()))?;
        let permission = permission::by_name(permission_name)
            .ok_or_else(|| Error::Input(format!("unknown permission {permission_name:?}")))?;
        let user_entity_ref = portico_catalog::entity_ref::EntityRef::parse(
            user_entity_ref,
            portico_catalog::entity_ref::RefDefaults { kind: Some("user"), namespace: None },
        )
        .map_err(|error| Error::Input(format!("user: {error}")))?
        .canonical();
        let user =
            Identity::User { ownership_entity_refs: self.ownership_of(&user_entity_ref), user_entity_ref };
        let groups = self.groups_of(&user);
        let entity = match entity_ref.filter(|text| !text.trim().is_empty()) {
            Some(text) => {
                let entity_ref = portico_catalog::entity_ref::EntityRef::parse(
                    text,
                    portico_catalog::entity_ref::RefDefaults { kind: Some("component"), namespace: None },
                )
                .map_err(|error| Error::Input(format!("entity: {error}")))?
                .canonical();
                Some(
                    self.catalog
                        .read()
                        .parsed(&entity_ref)
                        .ok_or_else(|| Error::NotFound(format!("No entity {entity_ref}")))?,
                )
            }
            None => None,
        };
        let rule =
            policy.deciding(permission, &user, &groups).map(|(position, rule)| (position, rule.clone()));
        let conditions_met = match rule.as_ref().map(|(_, rule)| &rule.decision) {
            Some(Decision::Conditional(criteria)) => {
                entity.as_ref().map(|entity| permission::satisfies(criteria, entity, &user))
            }
            _ => None,
        };
        let allowed = policy.allows(permission, &user, &groups, entity.as_ref());
        Ok(Explanation { rule, groups, allowed, conditions_met })
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

    /// Runs the sign-in resolvers (`signIn.resolvers`, reference §B.5) in order for a person a
    /// provider vouched for, and evaluates to the catalog user and its ownership refs. The first
    /// resolver that finds a User entity decides; one with
    /// `dangerouslyAllowSignInWithoutUserInCatalog` signs in `user:default/<name>` when none is
    /// found. No resolver configured, or none matching, refuses the sign-in.
    pub fn resolve_sign_in(
        &self,
        profile: &SignInProfile<'_>,
        resolvers: &[Value],
    ) -> Result<(String, Vec<String>), Error> {
        if resolvers.is_empty() {
            return Err(Error::NotAllowed(
                "Sign-in is not configured for this provider (signIn.resolvers)".into(),
            ));
        }
        let mut reasons = Vec::new();
        for resolver in resolvers {
            let name = resolver.get("resolver").and_then(Value::as_str).unwrap_or("");
            match self.resolve_one(name, resolver, profile) {
                Ok(Some(Resolved::Found(user_entity_ref))) => {
                    let ownership = self.ownership_of(&user_entity_ref);
                    return Ok((user_entity_ref, ownership));
                }
                // Someone not in the catalog owns only themselves.
                Ok(Some(Resolved::Fallback(user_entity_ref))) => {
                    return Ok((user_entity_ref.clone(), vec![user_entity_ref]));
                }
                Ok(None) => reasons.push(format!("{name}: no matching user entity")),
                Err(reason) => reasons.push(format!("{name}: {reason}")),
            }
        }
        Err(Error::NotAllowed(format!(
            "Failed to sign-in, unable to resolve user identity ({})",
            reasons.join("; ")
        )))
    }

    /// One resolver: `Ok(Some(ref))` when it signs the person in, `Ok(None)` when no user
    /// matches, `Err` when it cannot apply (a profile without an email, a domain not allowed).
    fn resolve_one(
        &self,
        name: &str,
        options: &Value,
        profile: &SignInProfile<'_>,
    ) -> Result<Option<Resolved>, String> {
        let email = || profile.email.ok_or_else(|| "the profile has no email".to_owned());
        let index = self.catalog.read();
        let user_where = |key: &str, value: &str| -> Result<Option<String>, String> {
            let filter = portico_query::filter::Filter::All(vec![
                portico_query::filter::Filter::Key {
                    key: "kind".into(),
                    condition: portico_query::filter::Condition::In(vec!["user".into()]),
                },
                portico_query::filter::Filter::Key {
                    key: key.to_lowercase(),
                    condition: portico_query::filter::Condition::In(vec![value.to_lowercase()]),
                },
            ]);
            let matching = index.eval(Some(&filter));
            if matching.len() > 1 {
                // Backstage refuses an ambiguous match rather than pick one.
                return Err(format!("{} users have {key} = {value:?}", matching.len()));
            }
            Ok(matching.min().and_then(|slot| index.entity_ref(slot)).map(str::to_owned))
        };
        let user_named = |user: &str| -> Option<String> {
            let entity_ref = format!("user:default/{}", user.to_lowercase());
            index.contains_ref(&entity_ref).then_some(entity_ref)
        };
        let (found, fallback_name): (Option<String>, String) = match name {
            "emailMatchingUserEntityProfileEmail" => {
                let email = email()?;
                (user_where("spec.profile.email", email)?, email.to_owned())
            }
            "emailLocalPartMatchingUserEntityName" => {
                let email = email()?;
                let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
                if let Some(allowed) = options.get("allowedDomains").and_then(Value::as_array) {
                    if !allowed
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|allowed| allowed.eq_ignore_ascii_case(domain))
                    {
                        return Err(format!("the email domain {domain:?} is not allowed"));
                    }
                }
                (user_named(local_part(email)), local_part(email).to_owned())
            }
            "emailMatchingUserEntityAnnotation" => {
                let email = email()?;
                let annotations: Vec<String> = match options.get("annotation").and_then(Value::as_str) {
                    Some(annotation) => vec![annotation.to_owned()],
                    None => ["google.com/email", "microsoft.com/email", "okta.com/email"]
                        .map(str::to_owned)
                        .to_vec(),
                };
                let mut found = None;
                for annotation in &annotations {
                    found = user_where(&format!("metadata.annotations.{annotation}"), email)?;
                    if found.is_some() {
                        break;
                    }
                }
                (found, email.to_owned())
            }
            "usernameMatchingUserEntityName" => {
                let username = profile.username.ok_or_else(|| "the profile has no username".to_owned())?;
                (user_named(username), username.to_owned())
            }
            "userIdMatchingUserEntityAnnotation" => {
                let id = profile.user_id.ok_or_else(|| "the profile has no user id".to_owned())?;
                let annotation = options.get("annotation").and_then(Value::as_str).unwrap_or(
                    if profile.provider == "github" { "github.com/user-id" } else { "portico.io/user-id" },
                );
                (
                    user_where(&format!("metadata.annotations.{annotation}"), id)?,
                    profile.username.unwrap_or(id).to_owned(),
                )
            }
            other => return Err(format!("unknown resolver {other:?}")),
        };
        if let Some(found) = found {
            return Ok(Some(Resolved::Found(found)));
        }
        let without_user = options
            .get("dangerouslyAllowSignInWithoutUserInCatalog")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !without_user {
            return Ok(None);
        }
        // The name becomes part of an entity ref: letters, digits and `-_.@+` only (an email is
        // a name here, as in Backstage's fallback), and never an existing entity's ref, whose
        // identity a stranger must not take.
        let valid = !fallback_name.is_empty()
            && fallback_name.len() <= 254
            && !matches!(fallback_name.as_str(), "." | "..")
            && fallback_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'));
        if !valid {
            return Err(format!("{fallback_name:?} cannot name a user"));
        }
        let entity_ref = format!("user:default/{}", fallback_name.to_lowercase());
        if index.contains_ref(&entity_ref) {
            return Err(format!("{entity_ref} exists in the catalog and was not matched"));
        }
        Ok(Some(Resolved::Fallback(entity_ref)))
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
        identity: &Identity,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<portico_store::AuditRow>, Error> {
        self.check(identity, permission::AUDIT_READ, None)?;
        Ok(self.store.audit_records(limit.clamp(1, 1000), before).await?)
    }

    /// The most recently changed entities, newest first.
    pub async fn recently_changed(&self, identity: &Identity, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        // Ask for more when some may be unreadable, so the list is usually still full.
        let wanted = if self.policy().is_some() { limit * 4 } else { limit };
        let refs = self.store.recently_changed(wanted).await?;
        let index = self.catalog.read();
        Ok(refs
            .iter()
            .filter(|entity_ref| self.may_read(identity, &index, entity_ref))
            .filter_map(|entity_ref| index.by_ref(entity_ref))
            .take(limit)
            .collect())
    }

    /// The entities an entity emits (for a Location: what its targets produced).
    pub async fn emitted_by(&self, identity: &Identity, entity_ref: &str) -> Result<Vec<String>, Error> {
        self.catalog.until_stored(entity_ref).await;
        let children = self.store.children_of(entity_ref).await?;
        let index = self.catalog.read();
        Ok(children.into_iter().filter(|child| self.may_read(identity, &index, child)).collect())
    }

    pub async fn entity_ancestry(
        &self,
        identity: &Identity,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(String, Vec<AncestryItem>), Error> {
        let entity_ref =
            format!("{}:{}/{}", kind.to_lowercase(), namespace.to_lowercase(), name.to_lowercase());
        if !self.can_read(identity, &entity_ref) {
            return Err(Error::NotFound(format!("No such entity {entity_ref}")));
        }
        self.catalog.until_stored(&entity_ref).await;
        let steps = self.store.ancestry(&entity_ref).await?;
        let index = self.catalog.read();
        let items = steps
            .into_iter()
            .filter(|step| self.may_read(identity, &index, &step.entity_ref))
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
        let restricted = !identity.restrictions_allow(permission.name, permission.action);
        let allowed = match self.policy() {
            _ if restricted => false,
            None => true,
            Some(policy) => {
                matches!(identity, Identity::Service { .. } | Identity::System)
                    || policy.allows(permission, identity, &self.groups_of(identity), entity)
            }
        };
        if allowed {
            return Ok(());
        }
        let on = entity
            .and_then(canonical_ref_of)
            .map(|entity_ref| format!(" on {entity_ref}"))
            .unwrap_or_default();
        Err(Error::NotAllowed(format!("{} is not allowed to {}{on}", identity.actor(), permission.name)))
    }

    /// The policy's decision on a resource permission for the caller, for resources outside the
    /// catalog (template pages and steps, actions, tasks): `Allow` when there is no policy or
    /// the caller is trusted, `Deny` when a service's access restrictions refuse it.
    pub fn decision(&self, identity: &Identity, permission: permission::Permission) -> permission::Decision {
        if !identity.restrictions_allow(permission.name, permission.action) {
            return permission::Decision::Deny;
        }
        match self.policy() {
            None => permission::Decision::Allow,
            Some(_) if matches!(identity, Identity::Service { .. } | Identity::System) => {
                permission::Decision::Allow
            }
            Some(policy) => policy
                .rule_for(permission, identity, &self.groups_of(identity))
                .map_or(permission::Decision::Deny, |rule| rule.decision.clone())
                .for_resource_type(permission.resource_type),
        }
    }

    /// The caller's ownership refs plus every group they belong to through `childOf`, for
    /// matching policy rules by group (bounded, so a cyclic hierarchy ends).
    pub fn groups_of(&self, identity: &Identity) -> Vec<String> {
        groups_in(&self.catalog.read(), identity)
    }

    /// `POST /api/permission/authorize` for one item (reference §C.2). A user must name the
    /// resource of a resource permission; a service without one gets the conditions back, to
    /// turn into a query filter. Permissions Portico does not enforce are allowed without a
    /// policy and decided by the policy's rules (by name, action or anything) with one.
    pub fn authorize(
        &self,
        identity: &Identity,
        name: &str,
        action: Option<&str>,
        resource_type: Option<&str>,
        resource_ref: Option<&str>,
    ) -> Result<Authorization, Error> {
        let permission = permission::by_name(name).unwrap_or(permission::Permission {
            name: "",
            action: "",
            resource_type: None,
        });
        let is_resource = resource_type.is_some() || permission.resource_type.is_some();
        if is_resource && resource_ref.is_none() && matches!(identity, Identity::User { .. }) {
            return Err(Error::Input(
                "Resource permissions require a resourceRef to be set. Direct user requests without a resourceRef are not allowed.".into(),
            ));
        }
        let policy = match self.policy() {
            Some(policy) if !matches!(identity, Identity::Service { .. } | Identity::System) => policy,
            // No policy, or a trusted service: only a service's access restrictions limit it.
            _ => {
                let allowed = identity.restrictions_allow(name, action.unwrap_or(permission.action));
                return Ok(if allowed { Authorization::Allow } else { Authorization::Deny });
            }
        };
        let groups = self.groups_of(identity);
        let decision = if permission.name.is_empty() {
            // Unknown to Portico: rules match it by name, action or as a catch-all.
            policy
                .rules
                .iter()
                .find(|rule| rule.matches(name, action.unwrap_or(""), resource_type, identity, &groups))
                .map(|rule| rule.decision.clone())
        } else {
            policy.rule_for(permission, identity, &groups).map(|rule| rule.decision.clone())
        };
        Ok(match decision {
            Some(Decision::Allow) => Authorization::Allow,
            Some(Decision::Deny) | None => Authorization::Deny,
            Some(Decision::Conditional(criteria)) => match resource_ref {
                Some(entity_ref) => match self.catalog.read().parsed(&entity_ref.to_lowercase()) {
                    Some(entity) if permission::satisfies(&criteria, &entity, identity) => {
                        Authorization::Allow
                    }
                    _ => Authorization::Deny,
                },
                None => Authorization::Conditional(criteria.to_json()),
            },
        })
    }

    /// The plugin endpoint `apply-conditions` (reference §C.4): conditions evaluated against
    /// one entity; a missing entity is denied.
    pub fn apply_conditions(
        &self,
        identity: &Identity,
        resource_ref: &str,
        conditions: &Value,
    ) -> Result<bool, Error> {
        let criteria = permission::criteria(conditions, "conditions").map_err(Error::Input)?;
        let entity = self.catalog.read().parsed(&resource_ref.to_lowercase());
        Ok(entity.is_some_and(|entity| permission::satisfies(&criteria, &entity, identity)))
    }

    // ----- writes -----

    /// `POST /refresh`.
    pub async fn refresh_entity(&self, identity: &Identity, entity_ref: &str) -> Result<(), Error> {
        // An entity not in the index yet (still being processed) has nothing to meet a
        // conditional decision with: refused then, as Backstage's apply-conditions does.
        let entity = if self.policy().is_some() { self.catalog.read().parsed(entity_ref) } else { None };
        self.check(identity, permission::ENTITY_REFRESH, entity.as_ref())?;
        // An entity the API shows ahead of its write is refreshed once stored.
        self.catalog.until_stored(entity_ref).await;
        if !self.store.request_refresh(entity_ref).await? {
            return Err(Error::NotFound(format!("Entity {entity_ref} not found")));
        }
        self.engine.wake();
        Ok(())
    }

    /// `DELETE /entities/by-uid/{uid}`. Unknown uids succeed, as in Backstage.
    pub async fn delete_entity(&self, identity: &Identity, uid: &str) -> Result<(), Error> {
        let entity: Option<Value> = if self.policy().is_some() {
            self.catalog.read().by_uid(uid).and_then(|body| serde_json::from_str(&body).ok())
        } else {
            None
        };
        // Unknown uids succeed (nothing is deleted), except for a restricted service, whose
        // restrictions need no entity.
        if entity.is_some() || identity.is_restricted() {
            self.check(identity, permission::ENTITY_DELETE, entity.as_ref())?;
        }
        // An entity the API shows ahead of its write is deleted once stored, not missed.
        let shown = self.catalog.read().ref_of_uid(uid).map(str::to_owned);
        if let Some(entity_ref) = shown {
            self.catalog.until_stored(&entity_ref).await;
        }
        if self.store.delete_entity_by_uid(uid).await? {
            self.catalog.sync(&self.store).await?;
            self.engine.wake();
        }
        Ok(())
    }

    pub async fn list_locations(&self, identity: &Identity) -> Result<Vec<LocationRow>, Error> {
        self.check(identity, permission::LOCATION_READ, None)?;
        Ok(self.store.list_locations().await?)
    }

    pub async fn location(&self, identity: &Identity, id: &str) -> Result<LocationRow, Error> {
        self.check(identity, permission::LOCATION_READ, None)?;
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
        self.register_location(identity, kind, target, dry_run, on_conflict_refresh, false).await
    }

    /// `create_location` for the scaffolder, which may also register a `file` location (what
    /// `publish:git` published locally) whatever types the API accepts.
    pub(crate) async fn create_location_of_any_type(
        &self,
        identity: &Identity,
        kind: &str,
        target: &str,
        dry_run: bool,
        any_type: bool,
    ) -> Result<CreatedLocation, Error> {
        self.register_location(identity, kind, target, dry_run, Some(false), any_type).await
    }

    async fn register_location(
        &self,
        identity: &Identity,
        kind: &str,
        target: &str,
        dry_run: bool,
        on_conflict_refresh: Option<bool>,
        any_type: bool,
    ) -> Result<CreatedLocation, Error> {
        if !dry_run {
            self.check(identity, permission::LOCATION_CREATE, None)?;
        }
        if !any_type && !self.options.allowed_location_types.iter().any(|allowed| allowed == kind) {
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
        self.check(identity, permission::LOCATION_READ, None)?;
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
        identity: &Identity,
        url: &url::Url,
        filename: &str,
    ) -> Result<Value, Error> {
        self.check(identity, permission::LOCATION_ANALYZE, None)?;
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
        identity: &Identity,
        entity: Value,
        location: &str,
    ) -> Result<(), Error> {
        self.check(identity, permission::ENTITY_VALIDATE, None)?;
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

/// The caller's ownership refs plus every group they belong to through `childOf`, for
/// matching policy rules by group (bounded, so a cyclic hierarchy ends).
fn groups_in(index: &Index, identity: &Identity) -> Vec<String> {
    let Identity::User { ownership_entity_refs, .. } = identity else { return Vec::new() };
    let mut groups: Vec<String> = ownership_entity_refs.iter().map(|owner| owner.to_lowercase()).collect();
    let mut next = 0;

    while next < groups.len() && groups.len() < 1000 {
        if let Some(group) = index.parsed(&groups[next]) {
            let parents = group.get("relations").and_then(Value::as_array).into_iter().flatten().filter_map(
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
