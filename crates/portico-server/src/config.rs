//! The typed view of the merged app-config that Portico uses. Keys Portico does not use are
//! ignored; keys it uses are checked here, and errors name the dotted key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use portico_app::engine::EngineOptions;
use portico_app::reader::AllowedHost;
use portico_app::rules::{LocationMatcher, Rule, Rules};
use portico_catalog::location_ref::LocationRef;
use portico_config::get;
use portico_store::DatabaseConfig;
use serde_json::Value;

#[derive(Debug)]
pub(crate) struct Config {
    /// `backend.listen`. Default 127.0.0.1:7007: unlike Backstage, which listens on every
    /// interface, a portal started for a try-out is not reachable from the network.
    pub(crate) listen: SocketAddr,
    /// `backend.baseUrl`, for messages.
    pub(crate) base_url: String,
    pub(crate) database: DatabaseConfig,
    pub(crate) reading_allow: Vec<AllowedHost>,
    pub(crate) locations: Vec<LocationRef>,
    pub(crate) rules: Rules,
    pub(crate) engine: EngineOptions,
    pub(crate) readonly: bool,
    pub(crate) refresh_on_conflict: bool,
    /// `app.title` and `organization.name`, for the UI.
    pub(crate) ui: portico_web::UiOptions,
    /// `auth.*` and `backend.auth.*`.
    pub(crate) auth: portico_auth::AuthOptions,
    /// `permission.enabled` with `permission.policy` (a YAML file) or the default policy.
    pub(crate) policy: Option<(portico_app::permission::Policy, String)>,
    /// `scaffolder.*`, `backend.workingDirectory` and `integrations.*` hosts. The secrets key
    /// is random here; `serve` replaces it with the configured or stored one.
    pub(crate) scaffolder: portico_app::scaffolder::ScaffolderOptions,
    /// `scaffolder.secretsKey`: 32 bytes, base64.
    pub(crate) secrets_key: Option<portico_app::scaffolder::SecretsKey>,
}

impl Config {
    /// Reads the typed configuration. `cwd` resolves relative file paths, as Backstage resolves
    /// them against the backend's working directory.
    pub(crate) fn from_value(root: &Value, cwd: &Path) -> anyhow::Result<Config> {
        let listen = listen_address(get(root, "backend.listen"))?;
        let base_url = string(root, "backend.baseUrl")?.unwrap_or_else(|| format!("http://{listen}"));
        let database = database(root, cwd)?;
        let reading_allow = reading_allow(root)?;
        let (locations, location_rules) = locations(root, cwd)?;
        let mut rules = match get(root, "catalog.rules") {
            None | Some(Value::Null) => Rules::backstage_default(),
            Some(value) => Rules::new(parse_rules(value, "catalog.rules")?),
        };
        for rule in location_rules {
            rules.push(rule);
        }
        let processing_interval = match get(root, "catalog.processingInterval") {
            None | Some(Value::Null) => Some(Duration::from_secs(100)),
            Some(Value::Bool(false)) => None,
            Some(value) => Some(
                portico_config::parse_duration(value)
                    .with_context(|| "catalog.processingInterval".to_string())?,
            ),
        };
        let delete_orphans = match string(root, "catalog.orphanStrategy")?.as_deref() {
            None | Some("delete") => true,
            Some("keep") => false,
            Some(other) => bail!("catalog.orphanStrategy: expected keep or delete, got {other:?}"),
        };
        let readonly = get(root, "catalog.readonly").and_then(Value::as_bool).unwrap_or(false);
        let refresh_on_conflict = match string(root, "catalog.defaultLocationConflictStrategy")?.as_deref() {
            None | Some("reject") => false,
            Some("refresh") => true,
            Some(other) => {
                bail!("catalog.defaultLocationConflictStrategy: expected reject or refresh, got {other:?}")
            }
        };
        let defaults = portico_web::UiOptions::default();
        let ui = portico_web::UiOptions {
            app_title: string(root, "app.title")?.unwrap_or(defaults.app_title),
            organization: string(root, "organization.name")?.unwrap_or(defaults.organization),
        };
        let auth = auth_options(root, &base_url)?;
        let policy = policy(root, cwd)?;
        let scaffolder = scaffolder_options(root, cwd)?;
        let secrets_key = match string(root, "scaffolder.secretsKey")? {
            None => None,
            Some(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .context("scaffolder.secretsKey: expected base64")?;
                let bytes: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("scaffolder.secretsKey: expected 32 bytes"))?;
                Some(portico_app::scaffolder::SecretsKey(bytes))
            }
        };
        Ok(Config {
            scaffolder,
            secrets_key,
            policy,
            auth,
            ui,
            listen,
            base_url,
            database,
            reading_allow,
            locations,
            rules,
            engine: EngineOptions {
                processing_interval,
                delete_orphans,
                release_memory: Some(crate::release_freed_memory),
                ..EngineOptions::default()
            },
            readonly,
            refresh_on_conflict,
        })
    }
}

/// `permission.enabled` and the policy. Backstage's policies are code; Portico reads them from
/// `permission.policy`, a YAML file of rules, and otherwise uses a default: everyone reads and
/// registers, owners refresh and delete their own entities, the groups in `permission.admins`
/// do everything and alone read the audit log and change the policy.
fn policy(root: &Value, cwd: &Path) -> anyhow::Result<Option<(portico_app::permission::Policy, String)>> {
    if get(root, "permission.enabled").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    match string(root, "permission.policy")? {
        Some(path) => {
            let path = cwd.join(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("permission.policy: reading {}", path.display()))?;
            let policy = portico_app::permission::parse_policy(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
            Ok(Some((policy, text)))
        }
        None => {
            let admins: Vec<String> = match get(root, "permission.admins") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .context("permission.admins: expected a list of group refs")?,
                Some(_) => bail!("permission.admins: expected a list of group refs"),
            };
            let text = portico_app::permission::default_policy_text(&admins);
            let policy = portico_app::permission::parse_policy(&text)
                .map_err(|error| anyhow::anyhow!("permission.admins: {error}"))?;
            Ok(Some((policy, text)))
        }
    }
}

/// Sign-in and external access, as Backstage reads them.
fn auth_options(root: &Value, base_url: &str) -> anyhow::Result<portico_auth::AuthOptions> {
    let token_lifetime = match get(root, "auth.backstageTokenExpiration") {
        None | Some(Value::Null) => Duration::from_secs(3600),
        Some(value) => {
            let lifetime = portico_config::parse_duration(value)
                .with_context(|| "auth.backstageTokenExpiration".to_string())?;
            // Backstage's bounds: at least 10 minutes, at most 24 hours.
            lifetime.clamp(Duration::from_secs(600), Duration::from_secs(24 * 3600))
        }
    };
    let guest = match get(root, "auth.providers.guest") {
        None => None,
        Some(value) => {
            let allowed_outside =
                value.get("dangerouslyAllowOutsideDevelopment").and_then(Value::as_bool) == Some(true);
            let development = std::env::var("NODE_ENV").is_ok_and(|env| env == "development");
            if !development && !allowed_outside {
                bail!(
                    "auth.providers.guest: the guest provider signs anyone in, so it only runs in development \
                     (NODE_ENV=development) unless auth.providers.guest.dangerouslyAllowOutsideDevelopment is true"
                );
            }
            let user_entity_ref = string(root, "auth.providers.guest.userEntityRef")?
                .unwrap_or_else(|| "user:development/guest".into());
            let ownership_entity_refs = match value.get("ownershipEntityRefs") {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned))
                        .collect::<Option<Vec<String>>>()
                        .context(
                            "auth.providers.guest.ownershipEntityRefs: expected a list of entity refs",
                        )?,
                ),
                Some(other) => {
                    bail!("auth.providers.guest.ownershipEntityRefs: expected a list, got {other}")
                }
            };
            Some(portico_auth::GuestOptions { user_entity_ref, ownership_entity_refs })
        }
    };
    let mut static_tokens = Vec::new();
    let mut legacy_keys = Vec::new();
    let mut jwks_access = Vec::new();
    if let Some(entries) = get(root, "backend.auth.externalAccess") {
        let Value::Array(entries) = entries else { bail!("backend.auth.externalAccess: expected a list") };
        for (index, entry) in entries.iter().enumerate() {
            let at = format!("backend.auth.externalAccess[{index}]");
            let kind = entry.get("type").and_then(Value::as_str).unwrap_or("");
            // Early docs spelled the block `config`; the schema says `options`. Accept both.
            let options = entry.get("options").or_else(|| entry.get("config")).unwrap_or(&Value::Null);
            let text = |key: &str| options.get(key).and_then(Value::as_str).unwrap_or("");
            let restrictions = access_restrictions(entry.get("accessRestrictions"), &at)?;
            match kind {
                "static" => {
                    let token = text("token");
                    if token.len() < 8 || token.chars().any(char::is_whitespace) {
                        bail!("{at}.options.token: a static token must be at least 8 characters without whitespace");
                    }
                    if text("subject").is_empty() {
                        bail!("{at}.options.subject: required for a static token");
                    }
                    static_tokens.push(portico_auth::StaticToken {
                        token: token.to_owned(),
                        subject: text("subject").to_owned(),
                        restrictions,
                    });
                }
                "legacy" => {
                    let secret = base64::engine::general_purpose::STANDARD
                        .decode(text("secret"))
                        .ok()
                        .filter(|secret| !secret.is_empty())
                        .with_context(|| format!("{at}.options.secret: required, a base64 string"))?;
                    if text("subject").is_empty() {
                        bail!("{at}.options.subject: required for a legacy secret");
                    }
                    legacy_keys.push(portico_auth::LegacyKey {
                        secret,
                        subject: text("subject").to_owned(),
                        restrictions,
                    });
                }
                "jwks" => {
                    let url = text("url");
                    url::Url::parse(url)
                        .with_context(|| format!("{at}.options.url: required, the JWKS URL"))?;
                    let list = |key: &str| string_list(options.get(key), &format!("{at}.options.{key}"));
                    let issuers = list("issuer")?;
                    if issuers.is_empty() {
                        bail!("{at}.options.issuer: required for jwks");
                    }
                    let algorithms = match list("algorithm")? {
                        names if names.is_empty() => {
                            vec![jsonwebtoken::Algorithm::RS256, jsonwebtoken::Algorithm::ES256]
                        }
                        names => names
                            .iter()
                            .map(|name| {
                                name.parse::<jsonwebtoken::Algorithm>()
                                    .ok()
                                    .filter(|algorithm| !matches!(algorithm, jsonwebtoken::Algorithm::HS256 | jsonwebtoken::Algorithm::HS384 | jsonwebtoken::Algorithm::HS512))
                                    .with_context(|| format!("{at}.options.algorithm: {name:?} is not an asymmetric JWS algorithm"))
                            })
                            .collect::<anyhow::Result<_>>()?,
                    };
                    jwks_access.push(portico_auth::JwksAccess {
                        url: url.to_owned(),
                        issuers,
                        algorithms,
                        audiences: list("audience")?,
                        subject_prefix: text("subjectPrefix").to_owned(),
                        restrictions,
                    });
                }
                other => bail!("{at}.type: expected static, legacy or jwks, got {other:?}"),
            }
        }
    }
    // The old form: `backend.auth.keys: [{secret}]`, every key verifies.
    if let Some(Value::Array(keys)) = get(root, "backend.auth.keys") {
        for (index, key) in keys.iter().enumerate() {
            let secret = key
                .get("secret")
                .and_then(Value::as_str)
                .and_then(|secret| base64::engine::general_purpose::STANDARD.decode(secret).ok())
                .with_context(|| format!("backend.auth.keys[{index}].secret: required, a base64 string"))?;
            legacy_keys.push(portico_auth::LegacyKey {
                secret,
                subject: "external:backstage-plugin".into(),
                restrictions: Vec::new(),
            });
        }
    }
    let disable_default_policy =
        get(root, "backend.auth.dangerouslyDisableDefaultAuthPolicy").and_then(Value::as_bool) == Some(true);
    let environment = string(root, "auth.environment")?.unwrap_or_else(|| "development".into());
    let issuer = format!("{}/api/auth", base_url.trim_end_matches('/'));
    let mut oauth = Vec::new();
    for id in ["oidc", "github"] {
        if let Some(provider) = oauth_provider(root, id, &environment, &issuer)? {
            oauth.push(provider);
        }
    }
    let mut allowed_origins = vec![origin_of(base_url)];
    if let Some(app) = string(root, "app.baseUrl")? {
        allowed_origins.push(origin_of(&app));
    }
    if let Some(extra) = get(root, "auth.experimentalExtraAllowedOrigins") {
        let Value::Array(items) = extra else {
            bail!("auth.experimentalExtraAllowedOrigins: expected a list")
        };
        for item in items {
            let origin = item.as_str().context("auth.experimentalExtraAllowedOrigins: expected strings")?;
            allowed_origins.push(origin.to_owned());
        }
    }
    Ok(portico_auth::AuthOptions {
        issuer,
        token_lifetime,
        guest,
        static_tokens,
        legacy_keys,
        jwks_access,
        disable_default_policy,
        environment,
        oauth,
        allowed_origins,
    })
}

/// `accessRestrictions: [{plugin, permission?, permissionAttribute?: {action}}]` of an
/// external-access entry.
fn access_restrictions(
    value: Option<&Value>,
    at: &str,
) -> anyhow::Result<Vec<portico_auth::AccessRestriction>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => bail!("{at}.accessRestrictions: expected a list, got {other}"),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let here = format!("{at}.accessRestrictions[{index}]");
            let plugin = item
                .get("plugin")
                .and_then(Value::as_str)
                .filter(|plugin| !plugin.is_empty())
                .with_context(|| format!("{here}.plugin: required"))?;
            Ok(portico_auth::AccessRestriction {
                plugin: plugin.to_owned(),
                permissions: string_list(item.get("permission"), &format!("{here}.permission"))?,
                actions: string_list(
                    item.get("permissionAttribute").and_then(|attribute| attribute.get("action")),
                    &format!("{here}.permissionAttribute.action"),
                )?,
            })
        })
        .collect()
}

/// A string or a list of strings (`field` names it in errors); absent is empty.
fn string_list(value: Option<&Value>, field: &str) -> anyhow::Result<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .with_context(|| format!("{field}: expected strings")),
        Some(other) => bail!("{field}: expected a string or a list, got {other}"),
    }
}

/// `scheme://host[:port]` of a URL (the URL itself when it does not parse).
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map_or_else(|_| url.trim_end_matches('/').to_owned(), |url| url.origin().ascii_serialization())
}

/// `auth.providers.<id>.<environment>` for the OAuth providers Portico speaks.
fn oauth_provider(
    root: &Value,
    id: &str,
    environment: &str,
    issuer: &str,
) -> anyhow::Result<Option<portico_auth::oauth::OAuthOptions>> {
    let Some(block) = get(root, &format!("auth.providers.{id}")) else { return Ok(None) };
    let at = format!("auth.providers.{id}.{environment}");
    let Some(config) = block.get(environment) else {
        bail!("{at}: the provider has no block for the environment {environment:?} (auth.environment)")
    };
    let text = |key: &str| -> anyhow::Result<Option<String>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => bail!("{at}.{key}: expected a string, got {other}"),
        }
    };
    let required = |key: &str| -> anyhow::Result<String> {
        text(key)?.filter(|value| !value.is_empty()).with_context(|| format!("{at}.{key}: required"))
    };
    let client_id = required("clientId")?;
    let client_secret = required("clientSecret")?;
    let (kind, mut scopes) = match id {
        "oidc" => {
            let metadata_url = required("metadataUrl")?;
            url::Url::parse(&metadata_url).with_context(|| format!("{at}.metadataUrl: not a URL"))?;
            let scope = text("scope")?.unwrap_or_else(|| "openid profile email".into());
            let scopes: Vec<String> =
                scope.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            (portico_auth::oauth::ProviderKind::Oidc { metadata_url }, scopes)
        }
        _ => {
            let enterprise_url = text("enterpriseInstanceUrl")?;
            (portico_auth::oauth::ProviderKind::Github { enterprise_url }, vec!["read:user".to_owned()])
        }
    };
    match config.get("additionalScopes") {
        None | Some(Value::Null) => {}
        Some(Value::String(more)) => {
            scopes.extend(more.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned))
        }
        Some(Value::Array(items)) => {
            for item in items {
                scopes.push(
                    item.as_str()
                        .with_context(|| format!("{at}.additionalScopes: expected strings"))?
                        .to_owned(),
                );
            }
        }
        Some(other) => bail!("{at}.additionalScopes: expected a list, got {other}"),
    }
    let session_duration = match config.get("sessionDuration") {
        None | Some(Value::Null) => Duration::from_secs(1000 * 24 * 3600),
        Some(value) => {
            portico_config::parse_duration(value).with_context(|| format!("{at}.sessionDuration"))?
        }
    };
    let resolvers = match config.pointer("/signIn/resolvers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if item.get("resolver").and_then(Value::as_str).is_none() {
                    bail!("{at}.signIn.resolvers[{index}].resolver: required");
                }
            }
            items.clone()
        }
        Some(other) => bail!("{at}.signIn.resolvers: expected a list, got {other}"),
    };
    Ok(Some(portico_auth::oauth::OAuthOptions {
        id: id.to_owned(),
        kind,
        client_id,
        client_secret,
        callback_url: text("callbackUrl")?.unwrap_or_else(|| format!("{issuer}/{id}/handler/frame")),
        scopes,
        prompt: text("prompt")?.filter(|prompt| prompt != "auto"),
        session_duration,
        resolvers,
    }))
}

/// `scaffolder.*` (reference scaffolder §9), plus where workspaces go and which SCM hosts are
/// configured (`integrations.<kind>[].host`).
fn scaffolder_options(
    root: &Value,
    cwd: &Path,
) -> anyhow::Result<portico_app::scaffolder::ScaffolderOptions> {
    use portico_scaffolder::render::{Integration, IntegrationKind};
    let defaults = portico_app::scaffolder::ScaffolderOptions::default();
    let duration = |key: &str, default: Duration| -> anyhow::Result<Duration> {
        match get(root, key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => portico_config::parse_duration(value).with_context(|| key.to_string()),
        }
    };
    let concurrency = match get(root, "scaffolder.concurrentTasksLimit") {
        None | Some(Value::Null) => defaults.concurrency,
        Some(value) => value.as_u64().and_then(|limit| usize::try_from(limit).ok()).ok_or_else(|| {
            anyhow::anyhow!("scaffolder.concurrentTasksLimit: expected a non-negative integer")
        })?,
    };
    let mut integrations = Vec::new();
    let mut scm = Vec::new();
    for (key, kind) in [
        ("github", IntegrationKind::Github),
        ("gitlab", IntegrationKind::Gitlab),
        ("bitbucket", IntegrationKind::Bitbucket),
        ("bitbucketCloud", IntegrationKind::BitbucketCloud),
        ("azure", IntegrationKind::Azure),
        ("gitea", IntegrationKind::Gitea),
        ("gerrit", IntegrationKind::Gerrit),
    ] {
        for (index, entry) in get(root, &format!("integrations.{key}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let host = entry
                .get("host")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow::anyhow!("integrations.{key}[{index}].host: expected a string"))?;
            integrations.push(Integration { host: host.to_owned(), kind });
            let text = |field: &str| entry.get(field).and_then(Value::as_str).map(str::to_owned);
            let api_base_url = text("apiBaseUrl").unwrap_or_else(|| match (kind, host) {
                (IntegrationKind::Github, "github.com") => "https://api.github.com".to_owned(),
                (IntegrationKind::Github, _) => format!("https://{host}/api/v3"),
                (IntegrationKind::Gitlab, _) => format!("https://{host}/api/v4"),
                _ => format!("https://{host}"),
            });
            scm.push(portico_scaffolder::action::ScmHost {
                kind,
                host: host.to_owned(),
                api_base_url,
                token: text("token"),
            });
        }
    }
    let path =
        |key: &str| -> anyhow::Result<Option<PathBuf>> { Ok(string(root, key)?.map(|text| cwd.join(text))) };
    let local_repositories = path("scaffolder.publish.git.localDirectory")?.map(|dir| normalize(&dir));
    let mut environment = get(root, "scaffolder.defaultEnvironment").cloned().unwrap_or(defaults.environment);
    // Templates name local remotes through this parameter: `file://` URLs must be absolute, and
    // a template cannot know where the server runs.
    if let (Some(dir), Some(environment)) = (&local_repositories, environment.as_object_mut()) {
        let parameters = environment.entry("parameters").or_insert_with(|| serde_json::json!({}));
        if let (Some(parameters), Ok(url)) = (parameters.as_object_mut(), url::Url::from_directory_path(dir))
        {
            parameters
                .entry("localRepositoriesUrl")
                .or_insert_with(|| Value::String(String::from(url).trim_end_matches('/').to_owned()));
        }
    }
    Ok(portico_app::scaffolder::ScaffolderOptions {
        concurrency,
        working_directory: path("backend.workingDirectory")?.unwrap_or(defaults.working_directory),
        environment,
        git_author: (
            string(root, "scaffolder.defaultAuthor.name")?.unwrap_or(defaults.git_author.0),
            string(root, "scaffolder.defaultAuthor.email")?.unwrap_or(defaults.git_author.1),
        ),
        commit_message: string(root, "scaffolder.defaultCommitMessage")?.unwrap_or(defaults.commit_message),
        integrations,
        scm,
        git_hosts: string_list(
            get(root, "scaffolder.publish.git.allowedHosts"),
            "scaffolder.publish.git.allowedHosts",
        )?,
        local_repositories,
        recovery: get(root, "scaffolder.taskRecovery.enabled").and_then(Value::as_bool).unwrap_or(false),
        stale_timeout: duration("scaffolder.taskRecovery.staleTimeout", defaults.stale_timeout)?,
        secrets_key: defaults.secrets_key,
        max_wait: duration("scaffolder.debugWaitMax", defaults.max_wait)?,
    })
}

/// `a/./b/../c` as `a/c`, without touching the file system (the directory may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn string(root: &Value, key: &str) -> anyhow::Result<Option<String>> {
    match get(root, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => bail!("{key}: expected a string, got {other}"),
    }
}

const DEFAULT_PORT: u16 = 7007;

fn listen_address(value: Option<&Value>) -> anyhow::Result<SocketAddr> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    match value {
        None | Some(Value::Null) => Ok(SocketAddr::new(loopback, DEFAULT_PORT)),
        Some(Value::String(text)) => {
            // ":7007", "0.0.0.0:7007", "7007"
            let (host, port) = match text.rsplit_once(':') {
                Some((host, port)) => (host, port),
                None => ("", text.as_str()),
            };
            let port: u16 =
                port.trim().parse().with_context(|| format!("backend.listen: {text:?} is not host:port"))?;
            let host = if host.is_empty() { loopback } else { parse_host(host, "backend.listen")? };
            Ok(SocketAddr::new(host, port))
        }
        Some(Value::Object(object)) => {
            let port = match object.get("port") {
                None | Some(Value::Null) => DEFAULT_PORT,
                Some(Value::Number(number)) => number
                    .as_u64()
                    .and_then(|port| u16::try_from(port).ok())
                    .context("backend.listen.port: not a valid port number")?,
                Some(Value::String(text)) => {
                    text.parse().context("backend.listen.port: not a valid port number")?
                }
                Some(other) => bail!("backend.listen.port: expected a number, got {other}"),
            };
            let host = match object.get("host") {
                None | Some(Value::Null) => loopback,
                Some(Value::String(host)) if host.is_empty() => loopback,
                Some(Value::String(host)) => parse_host(host, "backend.listen.host")?,
                Some(other) => bail!("backend.listen.host: expected a string, got {other}"),
            };
            Ok(SocketAddr::new(host, port))
        }
        Some(other) => bail!("backend.listen: expected an object or a host:port string, got {other}"),
    }
}

fn parse_host(host: &str, key: &str) -> anyhow::Result<IpAddr> {
    if host == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.trim_matches(['[', ']']).parse().with_context(|| format!("{key}: {host:?} is not an IP address"))
}

/// Every form of `backend.database` Backstage accepts, mapped onto SQLite or PostgreSQL.
fn database(root: &Value, cwd: &Path) -> anyhow::Result<DatabaseConfig> {
    let default_file = cwd.join("data").join("portico.sqlite");
    let Some(database) = get(root, "backend.database").filter(|value| !value.is_null()) else {
        return Ok(DatabaseConfig::Sqlite { path: Some(default_file) });
    };
    let client = string(database, "client")?.unwrap_or_else(|| "better-sqlite3".into());
    let connection = get(database, "connection");
    match client.as_str() {
        "better-sqlite3" | "sqlite3" | "sqlite" => match connection {
            None | Some(Value::Null) => Ok(DatabaseConfig::Sqlite { path: Some(default_file) }),
            Some(Value::String(text)) if text == ":memory:" => Ok(DatabaseConfig::Sqlite { path: None }),
            Some(Value::String(file)) => Ok(DatabaseConfig::Sqlite { path: Some(cwd.join(file)) }),
            Some(Value::Object(object)) => {
                if let Some(Value::String(file)) = object.get("filename") {
                    if file == ":memory:" {
                        return Ok(DatabaseConfig::Sqlite { path: None });
                    }
                    return Ok(DatabaseConfig::Sqlite { path: Some(cwd.join(file)) });
                }
                if let Some(Value::String(directory)) = object.get("directory") {
                    return Ok(DatabaseConfig::Sqlite {
                        path: Some(cwd.join(directory).join("portico.sqlite")),
                    });
                }
                bail!("backend.database.connection: expected :memory:, a file name, or an object with directory or filename")
            }
            Some(other) => bail!("backend.database.connection: unsupported value {other}"),
        },
        "pg" | "postgres" | "postgresql" => match connection {
            Some(Value::String(url)) => Ok(DatabaseConfig::Postgres { url: url.clone() }),
            Some(Value::Object(object)) => {
                let text = |key: &str| {
                    object.get(key).and_then(|value| match value {
                        Value::String(text) => Some(text.clone()),
                        Value::Number(number) => Some(number.to_string()),
                        _ => None,
                    })
                };
                if let Some(url) = text("connectionString") {
                    return Ok(DatabaseConfig::Postgres { url });
                }
                let host = text("host").unwrap_or_else(|| "localhost".into());
                let port = text("port").unwrap_or_else(|| "5432".into());
                let user = text("user").unwrap_or_else(|| "postgres".into());
                let database_name = text("database").unwrap_or_else(|| "portico".into());
                let mut url =
                    url::Url::parse("postgres://localhost/").context("building the PostgreSQL URL")?;
                url.set_host(Some(&host))
                    .with_context(|| format!("backend.database.connection.host: invalid host {host:?}"))?;
                let port: u16 =
                    port.parse().context("backend.database.connection.port: not a port number")?;
                let _ = url.set_port(Some(port));
                let _ = url.set_username(&user);
                if let Some(password) = text("password") {
                    let _ = url.set_password(Some(&password));
                }
                url.set_path(&database_name);
                Ok(DatabaseConfig::Postgres { url: url.to_string() })
            }
            _ => bail!("backend.database.connection: a PostgreSQL connection string or object is required"),
        },
        other => bail!("backend.database.client: unsupported client {other:?} (use better-sqlite3 or pg)"),
    }
}

fn reading_allow(root: &Value) -> anyhow::Result<Vec<AllowedHost>> {
    let Some(entries) = get(root, "backend.reading.allow").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let host = entry
                .get("host")
                .and_then(Value::as_str)
                .with_context(|| format!("backend.reading.allow[{index}].host: required"))?;
            let paths = entry
                .get("paths")
                .and_then(Value::as_array)
                .map(|paths| paths.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            Ok(AllowedHost { host: host.to_owned(), paths })
        })
        .collect()
}

/// `catalog.locations`: file targets resolved against the working directory, plus the rules
/// attached to single locations.
fn locations(root: &Value, cwd: &Path) -> anyhow::Result<(Vec<LocationRef>, Vec<Rule>)> {
    let Some(entries) = get(root, "catalog.locations").and_then(Value::as_array) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut locations = Vec::new();
    let mut rules = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let key = format!("catalog.locations[{index}]");
        let kind =
            entry.get("type").and_then(Value::as_str).with_context(|| format!("{key}.type: required"))?;
        let target =
            entry.get("target").and_then(Value::as_str).with_context(|| format!("{key}.target: required"))?;
        let target = if kind == "file" {
            portico_app::processing::normalize_path(&cwd.join(target)).display().to_string()
        } else {
            target.to_owned()
        };
        if let Some(location_rules) = entry.get("rules") {
            for mut rule in parse_rules(location_rules, &format!("{key}.rules"))? {
                rule.locations =
                    Some(vec![LocationMatcher::new(kind, Some(&target), None).map_err(anyhow::Error::msg)?]);
                rules.push(rule);
            }
        }
        locations.push(LocationRef { kind: kind.to_owned(), target });
    }
    Ok((locations, rules))
}

fn parse_rules(value: &Value, key: &str) -> anyhow::Result<Vec<Rule>> {
    let entries = value.as_array().with_context(|| format!("{key}: expected a list"))?;
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let allow = entry
                .get("allow")
                .and_then(Value::as_array)
                .with_context(|| format!("{key}[{index}].allow: expected a list of kinds"))?
                .iter()
                .map(|item| match item {
                    Value::String(kind) => Ok((kind.to_lowercase(), None)),
                    Value::Object(object) => {
                        let kind = object
                            .get("kind")
                            .and_then(Value::as_str)
                            .with_context(|| format!("{key}[{index}].allow: kind required"))?;
                        let spec_type =
                            object.get("spec.type").and_then(Value::as_str).map(str::to_lowercase);
                        Ok((kind.to_lowercase(), spec_type))
                    }
                    other => bail!("{key}[{index}].allow: unexpected entry {other}"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let locations = match entry.get("locations").and_then(Value::as_array) {
                None => None,
                Some(matchers) => Some(
                    matchers
                        .iter()
                        .map(|matcher| {
                            let kind = matcher.get("type").and_then(Value::as_str).unwrap_or("");
                            let exact = matcher
                                .get("exact")
                                .or_else(|| matcher.get("target"))
                                .and_then(Value::as_str);
                            let pattern = matcher.get("pattern").and_then(Value::as_str);
                            LocationMatcher::new(kind, exact, pattern).map_err(anyhow::Error::msg)
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?,
                ),
            };
            Ok(Rule { allow, locations })
        })
        .collect()
}

/// Where the demo files go: `./data/demo` under the working directory.
pub(crate) fn demo_dir(cwd: &Path) -> PathBuf {
    cwd.join("data").join("demo")
}

#[cfg(test)]
mod tests;
