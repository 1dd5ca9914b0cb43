//! OAuth 2.0 sign-in providers (reference §B.2): a generic OpenID Connect provider (discovery,
//! authorization code flow with PKCE, ID token verified against the issuer's published keys)
//! and GitHub OAuth apps (github.com or an Enterprise instance).
//!
//! This module speaks to the provider only; the HTTP routes, cookies and state live in the web
//! crate and the sign-in resolvers (who the person is in the catalog) in the app crate.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;

use crate::AuthError;

/// Which protocol a provider speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any standards-compliant OpenID provider, found through its discovery document.
    Oidc { metadata_url: String },
    /// GitHub OAuth apps; `enterprise_url` is a GitHub Enterprise Server's base URL.
    Github { enterprise_url: Option<String> },
}

/// One configured OAuth provider (`auth.providers.<id>.<environment>`).
#[derive(Clone)]
pub struct OAuthOptions {
    /// The provider id in routes and cookies: `oidc`, `github`.
    pub id: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: String,
    /// Where the provider sends the browser back: `callbackUrl`, or
    /// `<auth base URL>/<id>/handler/frame`.
    pub callback_url: String,
    /// Scopes always requested (the provider's own plus `additionalScopes` / `scope`).
    pub scopes: Vec<String>,
    /// OIDC `prompt` (for example `login` or `consent`); `None` sends none.
    pub prompt: Option<String>,
    /// Lifetime of the refresh cookie (`sessionDuration`; Backstage's default is 1000 days).
    pub session_duration: Duration,
    /// `signIn.resolvers`, as configured (evaluated by the app against the catalog).
    pub resolvers: Vec<Value>,
}

impl std::fmt::Debug for OAuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthOptions")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

/// What a provider says about the person signing in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub picture: Option<String>,
    /// The provider's user name (GitHub login, OIDC `preferred_username`).
    pub username: Option<String>,
    /// The provider's stable user id (OIDC `sub`, GitHub's numeric id).
    pub user_id: Option<String>,
}

/// The outcome of a code exchange or a refresh.
#[derive(Clone, Default)]
pub struct ProviderSession {
    pub profile: Profile,
    pub access_token: String,
    pub id_token: Option<String>,
    /// What to keep in the refresh cookie: the provider's refresh token, or for GitHub OAuth
    /// apps (which issue none) the long-lived access token itself, as Backstage does.
    pub refresh_token: Option<String>,
    pub scope: String,
    pub expires_in_seconds: Option<u64>,
}

impl std::fmt::Debug for ProviderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSession").field("profile", &self.profile).finish_non_exhaustive()
    }
}

/// The parts of an OpenID discovery document Portico uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A provider and its cached discovery document and keys.
#[derive(Debug)]
pub struct OAuthProvider {
    options: OAuthOptions,
    http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
    keys: tokio::sync::Mutex<Option<JwkSet>>,
}

/// A fresh random value (16 bytes, base64), for nonces.
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// A PKCE pair (RFC 7636): the verifier (43 URL-safe characters) and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn failed(what: &str, error: impl std::fmt::Display) -> AuthError {
    AuthError::Invalid(format!("{what}: {error}"))
}

impl OAuthProvider {
    pub fn new(options: OAuthOptions) -> OAuthProvider {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent("portico")
            .build()
            .unwrap_or_default();
        OAuthProvider {
            options,
            http,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(None),
        }
    }

    pub fn options(&self) -> &OAuthOptions {
        &self.options
    }

    /// The path of the provider's cookies: the callback URL's path minus `/handler/frame`
    /// (`/api/auth/<id>`), and whether they are `Secure` (an https callback).
    pub fn cookie_scope(&self) -> (String, bool) {
        let callback = url::Url::parse(&self.options.callback_url).ok();
        let path = callback
            .as_ref()
            .map(|url| url.path().trim_end_matches("/handler/frame").to_owned())
            .unwrap_or_else(|| format!("/api/auth/{}", self.options.id));
        (path, callback.is_some_and(|url| url.scheme() == "https"))
    }

    /// The provider's display name for sign-in pages.
    pub fn title(&self) -> &'static str {
        match self.options.kind {
            ProviderKind::Oidc { .. } => "OpenID Connect",
            ProviderKind::Github { .. } => "GitHub",
        }
    }

    async fn discovery(&self) -> Result<Discovery, AuthError> {
        let mut cached = self.discovery.lock().await;
        if let Some(discovery) = cached.as_ref() {
            return Ok(discovery.clone());
        }
        let discovery = match &self.options.kind {
            ProviderKind::Oidc { metadata_url } => {
                let response = self
                    .http
                    .get(metadata_url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|error| failed(&format!("OIDC discovery at {metadata_url}"), error))?;
                response
                    .json::<Discovery>()
                    .await
                    .map_err(|error| failed(&format!("OIDC discovery at {metadata_url}"), error))?
            }
            ProviderKind::Github { enterprise_url } => {
                let base = enterprise_url.as_deref().unwrap_or("https://github.com").trim_end_matches('/');
                Discovery {
                    issuer: base.to_owned(),
                    authorization_endpoint: format!("{base}/login/oauth/authorize"),
                    token_endpoint: format!("{base}/login/oauth/access_token"),
                    jwks_uri: String::new(),
                    userinfo_endpoint: Some(match enterprise_url {
                        Some(_) => format!("{base}/api/v3/user"),
                        None => "https://api.github.com/user".to_owned(),
                    }),
                    token_endpoint_auth_methods_supported: vec!["client_secret_post".into()],
                }
            }
        };
        *cached = Some(discovery.clone());
        Ok(discovery)
    }

    /// Where `/start` sends the browser: the provider's authorization endpoint with the state,
    /// the PKCE challenge, the nonce (OIDC) and the scopes.
    pub async fn authorize_url(
        &self,
        state: &str,
        nonce: &str,
        challenge: &str,
        scope: &str,
    ) -> Result<String, AuthError> {
        let discovery = self.discovery().await?;
        let mut url = url::Url::parse(&discovery.authorization_endpoint)
            .map_err(|error| failed("the authorization endpoint", error))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.options.client_id)
                .append_pair("redirect_uri", &self.options.callback_url)
                .append_pair("scope", scope)
                .append_pair("state", state)
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
            if matches!(self.options.kind, ProviderKind::Oidc { .. }) {
                query.append_pair("nonce", nonce);
            }
            if let Some(prompt) = &self.options.prompt {
                query.append_pair("prompt", prompt);
            }
        }
        Ok(url.to_string())
    }

    /// The scopes to request: the configured ones plus those the caller asked for.
    pub fn scope(&self, requested: &str) -> String {
        let mut scopes: Vec<&str> = self.options.scopes.iter().map(String::as_str).collect();
        for scope in requested.split([' ', ',']).filter(|scope| !scope.is_empty()) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.join(" ")
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, AuthError> {
        let discovery = self.discovery().await?;
        let basic = matches!(self.options.kind, ProviderKind::Oidc { .. })
            && (discovery.token_endpoint_auth_methods_supported.is_empty()
                || discovery
                    .token_endpoint_auth_methods_supported
                    .iter()
                    .any(|m| m == "client_secret_basic"));
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let request = self.http.post(&discovery.token_endpoint).header("accept", "application/json");
        let request = if basic {
            // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
            let encode =
                |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
            request.basic_auth(encode(&self.options.client_id), Some(encode(&self.options.client_secret)))
        } else {
            fields.push(("client_id", &self.options.client_id));
            fields.push(("client_secret", &self.options.client_secret));
            request
        };
        let response =
            request.form(&fields).send().await.map_err(|error| failed("the token request", error))?;
        let status = response.status();
        let text = response.text().await.map_err(|error| failed("the token response", error))?;
        if !status.is_success() {
            return Err(AuthError::Invalid(format!("the token endpoint answered {status}: {text}")));
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|error| failed("the token response", error))?;
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            // GitHub answers errors with 200.
            let description = value.get("error_description").and_then(Value::as_str).unwrap_or("");
            return Err(AuthError::Invalid(format!("the provider refused: {error} {description}")));
        }
        serde_json::from_value(value).map_err(|error| failed("the token response", error))
    }

    /// Exchanges the authorization code (with the PKCE verifier) and reads the profile; for
    /// OIDC the ID token must verify against the issuer's keys, name this client as audience,
    /// and carry the nonce of this sign-in.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<ProviderSession, AuthError> {
        let tokens = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.options.callback_url),
                ("code_verifier", verifier),
            ])
            .await?;
        self.session(tokens, Some(nonce)).await
    }

    /// Renews the session from the refresh cookie's token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<ProviderSession, AuthError> {
        match self.options.kind {
            ProviderKind::Github { .. } => {
                // OAuth apps' access tokens do not expire; the cookie holds the access token.
                let profile = self.userinfo(refresh_token).await?;
                Ok(ProviderSession {
                    profile,
                    access_token: refresh_token.to_owned(),
                    refresh_token: Some(refresh_token.to_owned()),
                    ..ProviderSession::default()
                })
            }
            ProviderKind::Oidc { .. } => {
                let tokens = self
                    .token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
                    .await?;
                let mut session = self.session(tokens, None).await?;
                // Providers that do not rotate refresh tokens keep the old one valid.
                session.refresh_token.get_or_insert_with(|| refresh_token.to_owned());
                Ok(session)
            }
        }
    }

    async fn session(
        &self,
        tokens: TokenResponse,
        nonce: Option<&str>,
    ) -> Result<ProviderSession, AuthError> {
        let mut profile = Profile::default();
        if matches!(self.options.kind, ProviderKind::Oidc { .. }) {
            match &tokens.id_token {
                Some(id_token) => {
                    let claims = self.verify_id_token(id_token, nonce).await?;
                    profile = profile_of(&claims);
                }
                None if nonce.is_some() => {
                    return Err(AuthError::Invalid("the provider returned no ID token".into()));
                }
                None => {}
            }
        }
        if profile.email.is_none() || profile.username.is_none() {
            if let Ok(info) = self.userinfo(&tokens.access_token).await {
                profile = merge(profile, info);
            }
        }
        let refresh_token = match self.options.kind {
            ProviderKind::Github { .. } => {
                tokens.refresh_token.clone().or_else(|| Some(tokens.access_token.clone()))
            }
            ProviderKind::Oidc { .. } => tokens.refresh_token.clone(),
        };
        Ok(ProviderSession {
            profile,
            access_token: tokens.access_token,
            id_token: tokens.id_token,
            refresh_token,
            scope: tokens.scope.unwrap_or_default(),
            expires_in_seconds: tokens.expires_in,
        })
    }

    async fn userinfo(&self, access_token: &str) -> Result<Profile, AuthError> {
        let discovery = self.discovery().await?;
        let Some(endpoint) = discovery.userinfo_endpoint else {
            return Err(AuthError::Invalid("the provider has no userinfo endpoint".into()));
        };
        let claims: Value = self
            .http
            .get(&endpoint)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| failed("the userinfo request", error))?
            .json()
            .await
            .map_err(|error| failed("the userinfo response", error))?;
        Ok(match self.options.kind {
            ProviderKind::Oidc { .. } => profile_of(&claims),
            ProviderKind::Github { .. } => Profile {
                email: claims.get("email").and_then(Value::as_str).map(str::to_owned),
                display_name: claims.get("name").and_then(Value::as_str).map(str::to_owned),
                picture: claims.get("avatar_url").and_then(Value::as_str).map(str::to_owned),
                username: claims.get("login").and_then(Value::as_str).map(str::to_owned),
                user_id: claims.get("id").map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned)),
            },
        })
    }

    /// Verifies an ID token: signature by a key of the issuer's JWKS (fetched again once when
    /// the `kid` is unknown, for rotation), `iss`, `aud` containing our client id, `exp`, and
    /// the `nonce` of this sign-in when there is one.
    async fn verify_id_token(&self, token: &str, nonce: Option<&str>) -> Result<Value, AuthError> {
        let discovery = self.discovery().await?;
        let header = jsonwebtoken::decode_header(token).map_err(|error| failed("the ID token", error))?;
        let key = match self.key_for(&discovery, header.kid.as_deref(), false).await? {
            Some(key) => key,
            None => self
                .key_for(&discovery, header.kid.as_deref(), true)
                .await?
                .ok_or_else(|| AuthError::Invalid("the ID token's signing key is not published".into()))?,
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.options.client_id]);
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|error| failed("the ID token", error))?
            .claims;
        if let Some(nonce) = nonce {
            if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
                return Err(AuthError::Invalid("the ID token's nonce does not match this sign-in".into()));
            }
        }
        Ok(claims)
    }

    async fn key_for(
        &self,
        discovery: &Discovery,
        kid: Option<&str>,
        reload: bool,
    ) -> Result<Option<DecodingKey>, AuthError> {
        let mut keys = self.keys.lock().await;
        if reload || keys.is_none() {
            let set: JwkSet = self
                .http
                .get(&discovery.jwks_uri)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| failed("the provider's keys", error))?
                .json()
                .await
                .map_err(|error| failed("the provider's keys", error))?;
            *keys = Some(set);
        }
        let Some(set) = keys.as_ref() else { return Ok(None) };
        let jwk = match kid {
            Some(kid) => set.find(kid),
            None => set.keys.first(),
        };
        jwk.map(|jwk| DecodingKey::from_jwk(jwk).map_err(|error| failed("the provider's key", error)))
            .transpose()
    }
}

fn profile_of(claims: &Value) -> Profile {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    // An address the provider says it has not verified proves nothing about who signs in.
    let verified = claims.get("email_verified").and_then(Value::as_bool) != Some(false);
    Profile {
        email: text("email").filter(|_| verified),
        display_name: text("name"),
        picture: text("picture"),
        username: text("preferred_username"),
        user_id: text("sub"),
    }
}

fn merge(first: Profile, second: Profile) -> Profile {
    Profile {
        email: first.email.or(second.email),
        display_name: first.display_name.or(second.display_name),
        picture: first.picture.or(second.picture),
        username: first.username.or(second.username),
        user_id: first.user_id.or(second.user_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenges_follow_rfc_7636() {
        let (verifier, challenge) = pkce_pair();
        assert_eq!(verifier.len(), 43);
        assert_eq!(challenge, URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())));
        // The RFC's own example (appendix B).
        let example =
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(example, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn scopes_join_configured_and_requested_without_repeats() {
        let provider = OAuthProvider::new(OAuthOptions {
            id: "oidc".into(),
            kind: ProviderKind::Oidc { metadata_url: "http://127.0.0.1/x".into() },
            client_id: "c".into(),
            client_secret: "s".into(),
            callback_url: "http://127.0.0.1/cb".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            prompt: None,
            session_duration: Duration::from_secs(60),
            resolvers: Vec::new(),
        });
        assert_eq!(provider.scope("email offline_access"), "openid profile email offline_access");
    }
}
