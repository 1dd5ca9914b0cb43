use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portico_store::{DatabaseConfig, Store};
use serde_json::Value;

use super::*;

fn options() -> AuthOptions {
    AuthOptions {
        issuer: "http://localhost:7007/api/auth".into(),
        token_lifetime: Duration::from_secs(3600),
        guest: None,
        static_tokens: vec![StaticToken {
            token: "static-secret-token".into(),
            subject: "ci".into(),
            restrictions: Vec::new(),
        }],
        legacy_keys: Vec::new(),
        jwks_access: Vec::new(),
        disable_default_policy: false,
        environment: "development".into(),
        oauth: Vec::new(),
        allowed_origins: vec!["http://localhost:7007".into(), "https://*.preview.example.com".into()],
    }
}

async fn store() -> Store {
    Store::open(&DatabaseConfig::Sqlite { path: None }).await.unwrap()
}

fn part(token: &str, index: usize) -> Value {
    let text = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
}

#[tokio::test]
async fn issued_tokens_have_backstage_shape_and_verify() {
    let auth = Auth::start(store().await, options()).await.unwrap();
    let issued = auth
        .issue("user:default/jane", &["user:default/jane".into(), "group:default/team".into()])
        .await
        .unwrap();
    let header = part(&issued.token, 0);
    assert_eq!(header["typ"], "vnd.backstage.user");
    assert_eq!(header["alg"], "ES256");
    let claims = part(&issued.token, 1);
    assert_eq!(claims["aud"], "backstage");
    assert_eq!(claims["iss"], "http://localhost:7007/api/auth");
    assert_eq!(claims["sub"], "user:default/jane");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
    // The limited token rebuilt from the full one verifies with the same key (§B.6).
    let uip = claims["uip"].as_str().unwrap();
    let limited_header = format!(
        r#"{{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"{}"}}"#,
        header["kid"].as_str().unwrap()
    );
    let limited_payload =
        format!(r#"{{"sub":"user:default/jane","iat":{},"exp":{}}}"#, claims["iat"], claims["exp"]);
    let limited = format!(
        "{}.{}.{uip}",
        URL_SAFE_NO_PAD.encode(limited_header),
        URL_SAFE_NO_PAD.encode(limited_payload)
    );
    let jwk = &auth.jwks().await.unwrap()["keys"][0];
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(&limited, &key, &validation).expect("the uip proof verifies");

    assert_eq!(
        auth.authenticate(&issued.token).await.unwrap(),
        Principal::User {
            user_entity_ref: "user:default/jane".into(),
            ownership_entity_refs: vec!["user:default/jane".into(), "group:default/team".into()]
        }
    );
    assert_eq!(
        auth.authenticate("static-secret-token").await.unwrap(),
        Principal::Service { subject: "ci".into(), restrictions: Vec::new() }
    );
}

#[tokio::test]
async fn tampered_unsigned_and_limited_tokens_are_refused() {
    let auth = Auth::start(store().await, options()).await.unwrap();
    let token = auth.issue("user:default/jane", &[]).await.unwrap().token;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = part(&token, 1);
    claims["sub"] = "user:default/admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert!(auth.authenticate(&parts.join(".")).await.is_err(), "tampered payload");
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"vnd.backstage.user"}"#);
    assert!(auth.authenticate(&format!("{none_header}.{}.", parts[1])).await.is_err(), "alg none");
    assert!(auth.authenticate("static-secret-tokeN").await.is_err());
    assert!(auth.authenticate("").await.is_err());
}

#[tokio::test]
async fn keys_are_shared_through_the_store_and_survive_a_restart() {
    let store = store().await;
    let first = Auth::start(store.clone(), options()).await.unwrap();
    let token = first.issue("user:default/jane", &[]).await.unwrap().token;
    let second = Auth::start(store.clone(), options()).await.unwrap();
    assert!(second.authenticate(&token).await.is_ok(), "another instance verifies it");
    let again = second.issue("user:default/jane", &[]).await.unwrap().token;
    assert_eq!(part(&again, 0)["kid"], part(&token, 0)["kid"], "a fresh key is reused, not rotated");
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires() {
    let auth = Auth::start(store().await, options()).await.unwrap();
    let token = auth.issue("user:default/jane", &[]).await.unwrap().token;
    assert!(auth.authenticate(&token).await.is_ok());
    assert!(auth.verified.lock().contains_key(&token));
    // A remembered token past its expiry is verified again (and refused).
    auth.verified
        .lock()
        .insert(token.clone(), (Principal::Service { subject: "stale".into(), restrictions: Vec::new() }, 1));
    assert_eq!(
        auth.authenticate(&token).await.unwrap(),
        Principal::User { user_entity_ref: "user:default/jane".into(), ownership_entity_refs: vec![] }
    );
}

#[tokio::test]
async fn sign_ins_return_only_to_allowed_origins() {
    let auth = Auth::start(store().await, options()).await.unwrap();
    assert!(auth.origin_allowed("http://localhost:7007"));
    assert!(auth.origin_allowed("https://pr-12.preview.example.com"));
    assert!(!auth.origin_allowed("https://evil.example"));
    assert!(!auth.origin_allowed("http://localhost:7007.evil.example"));
    assert!(!auth.origin_allowed("https://preview.example.com.evil"));
    assert!(!auth.origin_allowed("https://evil.com#.preview.example.com"), "a fragment is no origin");
    assert!(!auth.origin_allowed("https://evil.com/.preview.example.com"));
    assert!(!auth.origin_allowed("https://x@evil.com/.preview.example.com"));
    assert!(!auth.origin_allowed("http://localhost:7007@evil.com"));
}

#[tokio::test]
async fn limited_tokens_prove_the_user_for_cookies_and_nothing_more() {
    let auth = Auth::start(store().await, options()).await.unwrap();
    let full = auth.issue("user:default/jane", &["group:default/team-a".into()]).await.unwrap();
    let limited = auth.limited_token(&full.token).await.unwrap();
    assert_eq!(part(&limited.token, 0)["typ"], "vnd.backstage.limited-user");
    assert_eq!(
        part(&limited.token, 1).as_object().unwrap().keys().collect::<Vec<_>>(),
        ["sub", "iat", "exp"]
    );
    assert_eq!(
        limited.token.rsplit('.').next(),
        part(&full.token, 1)["uip"].as_str(),
        "the limited token's signature is the full token's uip"
    );
    assert_eq!(auth.authenticate_limited(&limited.token).await.unwrap(), "user:default/jane");
    assert!(auth.authenticate(&limited.token).await.is_err(), "not an API credential");
    assert!(auth.authenticate_limited(&full.token).await.is_err());
    let forged = format!("{}.{}", limited.token.rsplit_once('.').unwrap().0, "AAAA");
    assert!(auth.authenticate_limited(&forged).await.is_err());
    assert!(auth.limited_token("static-secret-token").await.is_err(), "services have no limited token");
}
