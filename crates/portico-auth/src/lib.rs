//! Authentication: Backstage user tokens (ES256 JWTs, reference §B.6), the signing keys behind
//! them (stored in the database, so they survive restarts and are shared by replicas), the keys'
//! publication as JWKS, and static external-access tokens (§B.7).
//!
//! This crate decides *who* a caller is; what they may do is the permission layer's business.
//! `oauth` speaks to OAuth sign-in providers (OpenID Connect, GitHub).

pub mod oauth;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::EncodePrivateKey;
use portico_store::{AuthKeyRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The `typ` of a full user token's header.
const USER_TOKEN_TYPE: &str = "vnd.backstage.user";
/// The `typ` of a limited user token (the `uip` proof).
const LIMITED_TOKEN_TYPE: &str = "vnd.backstage.limited-user";
/// Backstage caps tokens at this length.
const MAX_TOKEN_LENGTH: usize = 32_768;

/// How authentication is configured (`auth.*`, `backend.auth.*`).
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// `iss` of issued tokens: the external base URL of the auth plugin.
    pub issuer: String,
    /// `auth.backstageTokenExpiration` (one hour by default).
    pub token_lifetime: Duration,
    /// `auth.providers.guest`, when configured (and allowed to run).
    pub guest: Option<GuestOptions>,
    /// `backend.auth.externalAccess` entries of type `static`.
    pub static_tokens: Vec<StaticToken>,
    /// Entries of type `legacy` (and the old `backend.auth.keys`): HS256 shared secrets.
    pub legacy_keys: Vec<LegacyKey>,
    /// Entries of type `jwks`: tokens of a third-party issuer, verified against its keys.
    pub jwks_access: Vec<JwksAccess>,
    /// `backend.auth.dangerouslyDisableDefaultAuthPolicy`.
    pub disable_default_policy: bool,
    /// `auth.environment`: the per-environment provider blocks in use (`development` by default).
    pub environment: String,
    /// OAuth sign-in providers (`oidc`, `github`) of that environment.
    pub oauth: Vec<oauth::OAuthOptions>,
    /// Origins a sign-in may return to: `app.baseUrl`'s, the backend's, and
    /// `auth.experimentalExtraAllowedOrigins` (`*` matches any run of characters).
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GuestOptions {
    pub user_entity_ref: String,
    /// Configured ownership; `None` means the user's own ref (or its catalog groups).
    pub ownership_entity_refs: Option<Vec<String>>,
}

#[derive(Clone)]
pub struct StaticToken {
    pub token: String,
    pub subject: String,
    pub restrictions: Vec<AccessRestriction>,
}

/// `accessRestrictions` of an external-access entry (reference §B.7): the plugins the
/// credential may call and, per plugin, the permissions (by name or action) it may use; empty
/// lists allow every permission of that plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRestriction {
    pub plugin: String,
    pub permissions: Vec<String>,
    pub actions: Vec<String>,
}

/// A legacy shared secret: HS256 tokens `{sub: "backstage-server", exp}` signed with it.
#[derive(Clone)]
pub struct LegacyKey {
    /// The secret, base64-decoded.
    pub secret: Vec<u8>,
    pub subject: String,
    pub restrictions: Vec<AccessRestriction>,
}

impl std::fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyKey").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Tokens of an external issuer, verified against the JWKS at `url`.
#[derive(Debug, Clone)]
pub struct JwksAccess {
    pub url: String,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// Accepted algorithms (`RS256` and `ES256` unless configured).
    pub algorithms: Vec<Algorithm>,
    /// Accepted `aud` values; empty accepts any.
    pub audiences: Vec<String>,
    /// Prepended to the token's `sub` to make the service subject.
    pub subject_prefix: String,
    pub restrictions: Vec<AccessRestriction>,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Who a verified credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User { user_entity_ref: String, ownership_entity_refs: Vec<String> },
    Service { subject: String, restrictions: Vec<AccessRestriction> },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials where some are required.
    #[error("Missing credentials")]
    Missing,
    /// Credentials that do not verify; the reason is for logs and the error body.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] portico_store::Error),
    #[error("{0}")]
    Key(String),
}

/// A token issued at sign-in.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in_seconds: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserClaims {
    iss: String,
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ent: Option<Vec<String>>,
    aud: String,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uip: Option<String>,
}

/// The limited token's payload: exactly these members, in this order (§B.6).
#[derive(Debug, Serialize)]
struct LimitedClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

struct SigningKey {
    kid: String,
    created_at_ms: i64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

/// Issues and verifies credentials.
pub struct Auth {
    options: AuthOptions,
    store: Store,
    providers: Vec<oauth::OAuthProvider>,
    /// JWKS of external issuers by URL, with when they were fetched.
    external_keys:
        tokio::sync::Mutex<HashMap<String, (std::time::Instant, Option<jsonwebtoken::jwk::JwkSet>)>>,
    http: reqwest::Client,
    /// Newest first. Two replicas rotating at once each add a key, which is harmless.
    keys: parking_lot::RwLock<Vec<Arc<SigningKey>>>,
    /// Tokens already verified, with their expiry: an ES256 verification costs about as much
    /// as answering a lookup, so it is done once per token, not once per request. Safe because
    /// keys are never revoked before the tokens they signed expire.
    verified: parking_lot::Mutex<HashMap<String, (Principal, u64)>>,
}

/// Verified tokens remembered at most; the cache starts over when full.
const VERIFIED_CACHE: usize = 10_000;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("options", &self.options).finish_non_exhaustive()
    }
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn load_key(row: &AuthKeyRow) -> Result<SigningKey, AuthError> {
    let der = STANDARD
        .decode(&row.private_key)
        .map_err(|error| AuthError::Key(format!("key {}: {error}", row.kid)))?;
    let jwk: Value = serde_json::from_str(&row.public_jwk)
        .map_err(|error| AuthError::Key(format!("key {}: {error}", row.kid)))?;
    let (Some(x), Some(y)) = (jwk.get("x").and_then(Value::as_str), jwk.get("y").and_then(Value::as_str))
    else {
        return Err(AuthError::Key(format!("key {}: the public JWK has no x and y", row.kid)));
    };
    let decoding = DecodingKey::from_ec_components(x, y)
        .map_err(|error| AuthError::Key(format!("key {}: {error}", row.kid)))?;
    Ok(SigningKey {
        kid: row.kid.clone(),
        created_at_ms: row.created_at,
        encoding: EncodingKey::from_ec_der(&der),
        decoding,
        jwk,
    })
}

/// A fresh P-256 key as a stored row.
fn generate_key() -> Result<AuthKeyRow, AuthError> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = secret.to_pkcs8_der().map_err(|error| AuthError::Key(error.to_string()))?;
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(AuthError::Key("a generated key has no coordinates".into()));
    };
    let kid = uuid::Uuid::new_v4().to_string();
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    });
    Ok(AuthKeyRow {
        kid,
        private_key: STANDARD.encode(der.as_bytes()),
        public_jwk: jwk.to_string(),
        created_at: now_millis(),
    })
}

/// `*` matches any run of host-name characters (letters, digits, `-`, `.`); everything else
/// literally. So `https://*.example.com` can never match `https://evil.com#.example.com`.
fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else { return false };
            let run =
                tail.bytes().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')).count();
            (0..=run).any(|at| glob_match(rest, &tail[at..]))
        }
    }
}

/// `scheme://host[:port]` when `text` is exactly an origin (no path, query, fragment or user
/// part), else `None`.
pub fn normalized_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let origin = url.origin().ascii_serialization();
    (origin == text.trim_end_matches('/') && url.username().is_empty() && url.password().is_none())
        .then_some(origin)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Loads the stored signing keys.
    pub async fn start(store: Store, options: AuthOptions) -> Result<Arc<Auth>, AuthError> {
        let providers = options.oauth.iter().cloned().map(oauth::OAuthProvider::new).collect();
        let auth = Arc::new(Auth {
            options,
            store,
            providers,
            external_keys: tokio::sync::Mutex::new(HashMap::new()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
            keys: parking_lot::RwLock::new(Vec::new()),
            verified: parking_lot::Mutex::new(HashMap::new()),
        });
        auth.reload_keys().await?;
        Ok(auth)
    }

    pub fn options(&self) -> &AuthOptions {
        &self.options
    }

    /// True when every API request must carry credentials: some sign-in or external access is
    /// configured and the default policy is not disabled, as in Backstage.
    pub fn required(&self) -> bool {
        !self.options.disable_default_policy
            && (self.options.guest.is_some()
                || !self.options.static_tokens.is_empty()
                || !self.options.legacy_keys.is_empty()
                || !self.options.jwks_access.is_empty()
                || !self.providers.is_empty())
    }

    /// The OAuth provider with this id, if configured.
    pub fn provider(&self, id: &str) -> Option<&oauth::OAuthProvider> {
        self.providers.iter().find(|provider| provider.options().id == id)
    }

    /// Every configured OAuth provider, for sign-in pages.
    pub fn providers(&self) -> &[oauth::OAuthProvider] {
        &self.providers
    }

    /// Whether a sign-in may hand its result to this origin (`scheme://host[:port]`).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let Some(origin) = normalized_origin(origin) else { return false };
        self.options.allowed_origins.iter().any(|pattern| glob_match(pattern, &origin))
    }

    async fn reload_keys(&self) -> Result<(), AuthError> {
        let rows = self.store.auth_keys().await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            match load_key(row) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(error) => tracing::error!(%error, "a stored signing key cannot be used"),
            }
        }
        *self.keys.write() = keys;
        Ok(())
    }

    fn lifetime_ms(&self) -> i64 {
        i64::try_from(self.options.token_lifetime.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// The newest key, creating (and storing) one when there is none younger than a token's
    /// lifetime; keys older than three lifetimes are pruned.
    async fn signing_key(&self) -> Result<Arc<SigningKey>, AuthError> {
        let fresh = |keys: &[Arc<SigningKey>]| {
            keys.first().filter(|key| now_millis() - key.created_at_ms < self.lifetime_ms()).cloned()
        };
        if let Some(key) = fresh(&self.keys.read()) {
            return Ok(key);
        }
        // Another replica may have rotated already.
        self.reload_keys().await?;
        if let Some(key) = fresh(&self.keys.read()) {
            return Ok(key);
        }
        let row = generate_key()?;
        self.store.insert_auth_key(&row).await?;
        self.store.prune_auth_keys(now_millis() - 3 * self.lifetime_ms()).await?;
        self.reload_keys().await?;
        let key = Arc::new(load_key(&row)?);
        Ok(key)
    }

    /// Issues a user token for `sub` with ownership `ent`.
    pub async fn issue(&self, sub: &str, ent: &[String]) -> Result<IssuedToken, AuthError> {
        let key = self.signing_key().await?;
        let iat = now_seconds();
        let exp = iat + self.options.token_lifetime.as_secs();
        let mut limited_header = Header::new(Algorithm::ES256);
        limited_header.typ = Some(LIMITED_TOKEN_TYPE.into());
        limited_header.kid = Some(key.kid.clone());
        let limited = jsonwebtoken::encode(&limited_header, &LimitedClaims { sub, iat, exp }, &key.encoding)
            .map_err(|error| AuthError::Key(error.to_string()))?;
        let uip = limited.rsplit('.').next().unwrap_or_default().to_owned();
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(USER_TOKEN_TYPE.into());
        header.kid = Some(key.kid.clone());
        let claims = UserClaims {
            iss: self.options.issuer.clone(),
            sub: sub.to_owned(),
            ent: Some(ent.to_vec()),
            aud: "backstage".into(),
            iat,
            exp,
            uip: Some(uip),
        };
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|error| AuthError::Key(error.to_string()))?;
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(AuthError::Invalid(format!(
                "the token for {sub} would be longer than {MAX_TOKEN_LENGTH} characters (too many ownership refs)"
            )));
        }
        Ok(IssuedToken { token, expires_in_seconds: self.options.token_lifetime.as_secs() })
    }

    /// Verifies a bearer credential: a static external-access token or a user token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(entry) = self.options.static_tokens.iter().find(|entry| same_secret(&entry.token, token))
        {
            return Ok(Principal::Service {
                subject: entry.subject.clone(),
                restrictions: entry.restrictions.clone(),
            });
        }
        if let Some((principal, exp)) = self.verified.lock().get(token) {
            if *exp > now_seconds() {
                return Ok(principal.clone());
            }
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::Invalid(format!("Invalid token: {error}")))?;
        if header.typ.as_deref() != Some(USER_TOKEN_TYPE) {
            if let Some(principal) = self.external(token, &header).await? {
                return Ok(principal);
            }
        }
        let key = self.signing_key_of(token, USER_TOKEN_TYPE).await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["backstage"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<UserClaims>(token, &key.decoding, &validation)
            .map_err(|error| AuthError::Invalid(format!("Invalid token: {error}")))?;
        let claims = data.claims;
        let ownership = claims.ent.unwrap_or_else(|| vec![claims.sub.clone()]);
        let principal = Principal::User { user_entity_ref: claims.sub, ownership_entity_refs: ownership };
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_CACHE {
            verified.clear();
        }
        verified.insert(token.to_owned(), (principal.clone(), claims.exp));
        Ok(principal)
    }

    /// The limited user token of a full one (reference §B.6): the limited header and
    /// `{sub, iat, exp}` as signed at issue, with the full token's `uip` as signature. It proves
    /// who the user is and nothing more, so it can live in a browser cookie (`backstage-auth`)
    /// without being usable as an API credential.
    pub async fn limited_token(&self, token: &str) -> Result<IssuedToken, AuthError> {
        let Principal::User { .. } = self.authenticate(token).await? else {
            return Err(AuthError::Invalid("a limited token is made from a user token".into()));
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::Invalid(format!("Invalid token: {error}")))?;
        let payload = token.split('.').nth(1).unwrap_or_default();
        let claims: UserClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AuthError::Invalid("Invalid token: unreadable claims".into()))?;
        let uip = claims.uip.ok_or_else(|| AuthError::Invalid("Invalid token: no uip claim".into()))?;
        let mut limited_header = Header::new(Algorithm::ES256);
        limited_header.typ = Some(LIMITED_TOKEN_TYPE.into());
        limited_header.kid = header.kid;
        // Serialized exactly as `issue` signed them (same types, same field order).
        let header_json =
            serde_json::to_vec(&limited_header).map_err(|error| AuthError::Key(error.to_string()))?;
        let payload_json =
            serde_json::to_vec(&LimitedClaims { sub: &claims.sub, iat: claims.iat, exp: claims.exp })
                .map_err(|error| AuthError::Key(error.to_string()))?;
        let limited =
            format!("{}.{}.{uip}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(payload_json));
        self.authenticate_limited(&limited).await?;
        Ok(IssuedToken { token: limited, expires_in_seconds: claims.exp.saturating_sub(now_seconds()) })
    }

    /// A legacy shared-secret token or an external issuer's token, when `token` is one;
    /// `Ok(None)` leaves it to the user-token check.
    async fn external(&self, token: &str, header: &Header) -> Result<Option<Principal>, AuthError> {
        if header.alg == Algorithm::HS256 {
            #[derive(Deserialize)]
            struct Legacy {
                sub: String,
            }
            for key in &self.options.legacy_keys {
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_required_spec_claims(&["exp", "sub"]);
                validation.validate_aud = false;
                validation.leeway = 0;
                if let Ok(data) =
                    jsonwebtoken::decode::<Legacy>(token, &DecodingKey::from_secret(&key.secret), &validation)
                {
                    if data.claims.sub == "backstage-server" {
                        return Ok(Some(Principal::Service {
                            subject: key.subject.clone(),
                            restrictions: key.restrictions.clone(),
                        }));
                    }
                }
            }
            return Err(AuthError::Invalid("Invalid token: no legacy secret verifies it".into()));
        }
        if self.options.jwks_access.is_empty() {
            return Ok(None);
        }
        if let Some((principal, exp)) = self.verified.lock().get(token) {
            if *exp > now_seconds() {
                return Ok(Some(principal.clone()));
            }
        }
        #[derive(Deserialize)]
        struct External {
            sub: String,
            exp: u64,
        }
        for access in &self.options.jwks_access {
            if !access.algorithms.contains(&header.alg) {
                continue;
            }
            let Some(key) = self.external_key(access, header.kid.as_deref()).await else { continue };
            // Only the token's own algorithm (checked against the allowed ones above): the
            // decoder refuses a list mixing key families.
            let mut validation = Validation::new(header.alg);
            validation.set_issuer(&access.issuers);
            // Absent claims would otherwise not be compared at all.
            if access.audiences.is_empty() {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "sub", "iss"]);
            } else {
                validation.set_audience(&access.audiences);
                validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            }
            validation.leeway = 0;
            if let Ok(data) = jsonwebtoken::decode::<External>(token, &key, &validation) {
                let principal = Principal::Service {
                    subject: format!("{}{}", access.subject_prefix, data.claims.sub),
                    restrictions: access.restrictions.clone(),
                };
                let mut verified = self.verified.lock();
                if verified.len() >= VERIFIED_CACHE {
                    verified.clear();
                }
                verified.insert(token.to_owned(), (principal.clone(), data.claims.exp));
                return Ok(Some(principal));
            }
        }
        Ok(None)
    }

    /// The external issuer's key `kid` (its JWKS fetched once, and again, at most every 30 s,
    /// when a token names a key not seen yet).
    async fn external_key(&self, access: &JwksAccess, kid: Option<&str>) -> Option<DecodingKey> {
        let find = |set: &jsonwebtoken::jwk::JwkSet| -> Option<DecodingKey> {
            let jwk = match kid {
                Some(kid) => set.find(kid),
                None => set.keys.first(),
            }?;
            DecodingKey::from_jwk(jwk).ok()
        };
        let mut cache = self.external_keys.lock().await;
        if let Some((fetched, set)) = cache.get(&access.url) {
            if let Some(key) = set.as_ref().and_then(find) {
                return Some(key);
            }
            // Unknown key ids and unreachable issuers are asked again at most every 30 s.
            if fetched.elapsed() < Duration::from_secs(30) {
                return None;
            }
        }
        let fetched = async {
            self.http
                .get(&access.url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)?
                .json::<jsonwebtoken::jwk::JwkSet>()
                .await
        }
        .await;
        let set = match fetched {
            Ok(set) => Some(set),
            Err(error) => {
                tracing::warn!(url = %access.url, %error, "fetching an external issuer's keys failed");
                // Keep the keys we had, if any.
                cache.get(&access.url).and_then(|(_, set)| set.clone())
            }
        };
        let key = set.as_ref().and_then(find);
        cache.insert(access.url.clone(), (std::time::Instant::now(), set));
        key
    }

    /// The stored key that signed `token`, whose header must have `typ`.
    async fn signing_key_of(&self, token: &str, typ: &str) -> Result<Arc<SigningKey>, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::Invalid(format!("Invalid token: {error}")))?;
        if header.typ.as_deref() != Some(typ) {
            return Err(AuthError::Invalid(format!("Invalid token: not a {typ} token")));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("Invalid token: no key id".into()))?;
        let mut key = self.keys.read().iter().find(|key| key.kid == kid).cloned();
        if key.is_none() {
            // Signed by a key another replica created since we last looked.
            self.reload_keys().await?;
            key = self.keys.read().iter().find(|key| key.kid == kid).cloned();
        }
        key.ok_or_else(|| AuthError::Invalid("Invalid token: signed by an unknown key".into()))
    }

    /// Verifies a limited user token (from the `backstage-auth` cookie) and evaluates to the
    /// user entity ref it names.
    pub async fn authenticate_limited(&self, token: &str) -> Result<String, AuthError> {
        let key = self.signing_key_of(token, LIMITED_TOKEN_TYPE).await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        #[derive(Deserialize)]
        struct Limited {
            sub: String,
        }
        let data = jsonwebtoken::decode::<Limited>(token, &key.decoding, &validation)
            .map_err(|error| AuthError::Invalid(format!("Invalid token: {error}")))?;
        Ok(data.claims.sub)
    }

    /// `GET /api/auth/.well-known/jwks.json`: the public keys of the last three token lifetimes.
    pub async fn jwks(&self) -> Result<Value, AuthError> {
        self.reload_keys().await?;
        let keys: Vec<Value> = self.keys.read().iter().map(|key| key.jwk.clone()).collect();
        Ok(json!({ "keys": keys }))
    }

    /// `GET /api/auth/.well-known/openid-configuration`.
    pub fn openid_configuration(&self) -> Value {
        let issuer = &self.options.issuer;
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/v1/token"),
            "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid"],
            "token_endpoint_auth_methods_supported": [],
            "claims_supported": ["sub", "ent"],
            "grant_types_supported": [],
        })
    }
}

#[cfg(test)]
mod tests;
