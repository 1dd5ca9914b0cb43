//! Sign-in and credentials: once a provider or external access is configured, the API needs a
//! valid token; forged, expired, tampered and foreign tokens are refused.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::{catalog_with, free_port, Database, Server, Workspace};

crate::on_both_databases! {
    a_token_from_one_replica_verifies_on_another => super::a_token_from_one_replica_verifies_on_another;
}

const STATIC_TOKEN: &str = "ci-static-token-0123456789";

const CATALOG: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: { name: team-a }\nspec: { type: team, children: [] }\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: { name: jane }\nspec: { memberOf: [team-a] }\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: { name: alpha }\nspec: { type: service, lifecycle: production, owner: team-a }\n";

fn config(workspace: &Workspace, port: u16) {
    workspace.write("catalog.yaml", CATALOG);
    write_config(workspace, port, "");
}

/// The app-config of these tests: a static token, guest sign-in as jane, `extra` top-level
/// sections, and `./catalog.yaml`.
fn write_config(workspace: &Workspace, port: u16, extra: &str) {
    workspace.config(
        port,
        &format!(
            "  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: {STATIC_TOKEN}, subject: ci }}\nauth:\n  providers:\n    guest:\n      userEntityRef: user:default/jane\n      dangerouslyAllowOutsideDevelopment: true\n{extra}{}",
            catalog_with("./catalog.yaml")
        ),
    );
}

fn get_with(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = server.client.get(format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("GET");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn guest_token(server: &Server) -> (u16, Value) {
    let response = server
        .client
        .get(format!("{}/api/auth/guest/refresh", server.base))
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .expect("refresh");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// A browser-like client (no redirects followed) signed in to the UI as the guest, with its
/// session cookie (`name=value`). Its anti-forgery cookie value is `CSRF`.
fn signed_in_browser(server: &Server) -> (reqwest::blocking::Client, String) {
    let browser = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = browser
        .post(format!("{}/sign-in/guest", server.base))
        .header("cookie", format!("portico-csrf={CSRF}"))
        .form(&[("_csrf", CSRF), ("next", "/")])
        .send()
        .expect("sign-in");
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    (browser, session)
}

const CSRF: &str = "0123456789abcdef0123456789abcdef";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970").as_secs()
}

/// Signs a user token with the given PKCS#8 key, as a forger holding that key would.
fn sign(der: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("vnd.backstage.user".into());
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(der)).expect("signing")
}

#[test]
fn the_api_needs_valid_credentials_once_sign_in_is_configured() {
    let workspace = Workspace::new();
    let port = free_port();
    config(&workspace, port);
    let mut server = Server::start(workspace.path(), port, &[]);

    // No credentials: 401 with Backstage's error body, for reads and writes; health stays open.
    let (status, body) = server.get("/api/catalog/entities");
    assert_eq!(status, 401);
    assert_eq!(body["error"]["name"], "AuthenticationError");
    let (status, _) = server
        .post("/api/catalog/locations", &json!({ "type": "url", "target": "https://x.example/a.yaml" }));
    assert_eq!(status, 401);
    assert_eq!(server.get_raw("/.backstage/health/v1/readiness").status(), 200);
    // UI pages send visitors without a session to the sign-in page; forms need one.
    let page = server.get_raw("/catalog");
    assert_eq!(page.url().path(), "/sign-in");
    assert_eq!(page.url().query(), Some("next=%2Fcatalog"));
    assert!(page.text().unwrap().contains("Sign in as guest"));

    // A static external-access token works.
    let (status, _) = get_with(&server, "/api/catalog/entities", Some(STATIC_TOKEN));
    assert_eq!(status, 200);
    server.wait_for("jane in the catalog", |server| {
        let (status, _) =
            get_with(server, "/api/catalog/entities/by-name/user/default/jane", Some(STATIC_TOKEN));
        (status == 200).then_some(())
    });

    // Guest sign-in needs the X-Requested-With header, then yields a user token with ownership
    // from the catalog.
    let (status, _) = get_with(&server, "/api/auth/guest/refresh", None);
    assert_eq!(status, 401);
    let (status, refreshed) = guest_token(&server);
    assert_eq!(status, 200, "{refreshed}");
    let identity = &refreshed["backstageIdentity"]["identity"];
    assert_eq!(identity["userEntityRef"], "user:default/jane");
    assert_eq!(identity["ownershipEntityRefs"], json!(["user:default/jane", "group:default/team-a"]));
    let token = refreshed["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    let (status, _) =
        get_with(&server, "/api/catalog/entities/by-name/component/default/alpha", Some(&token));
    assert_eq!(status, 200);
    let (status, info) = get_with(&server, "/api/auth/v1/userinfo", Some(&token));
    assert_eq!((status, info["claims"]["sub"].clone()), (200, json!("user:default/jane")));
    assert_eq!(get_with(&server, "/api/auth/v1/userinfo", Some(STATIC_TOKEN)).0, 401);

    // Writes and sign-ins are in the audit log, with who and from where; reading it needs
    // credentials too.
    let refresh = server
        .client
        .post(format!("{}/api/catalog/refresh", server.base))
        .bearer_auth(&token)
        .json(&json!({ "entityRef": "component:default/alpha" }))
        .send()
        .unwrap();
    assert_eq!(refresh.status(), 200);
    assert_eq!(get_with(&server, "/api/audit/events", None).0, 401);
    let (_, audit) = get_with(&server, "/api/audit/events", Some(STATIC_TOKEN));
    let items = audit["items"].as_array().unwrap();
    let find =
        |action: &str| items.iter().find(|item| item["action"] == action).cloned().unwrap_or(Value::Null);
    assert_eq!(find("catalog.entity.refresh")["actor"], "user:default/jane", "{audit}");
    assert!(find("catalog.entity.refresh")["detail"].as_str().unwrap().contains("component:default/alpha"));
    assert_eq!(find("auth.sign-in")["actor"], "user:default/jane");
    assert_eq!(find("auth.sign-in")["source"], "127.0.0.1");

    // The published keys and discovery.
    let (_, jwks) = get_with(&server, "/api/auth/.well-known/jwks.json", None);
    let kid = token.split('.').next().map(|header| {
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    });
    assert!(jwks["keys"].as_array().unwrap().iter().any(|key| key["kid"].as_str() == kid.as_deref()));
    let (_, discovery) = get_with(&server, "/api/auth/.well-known/openid-configuration", None);
    assert_eq!(discovery["issuer"], format!("http://127.0.0.1:{port}/api/auth"));

    // Tampered, unsigned, expired, wrong-audience and wrong-key tokens are refused.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("user:default/admin");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let unsigned =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"vnd.backstage.user"}"#), parts[1]);
    let stored =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            let store = portico_store::Store::connect(&portico_store::DatabaseConfig::Sqlite {
                path: Some(workspace.path().join("db/portico.sqlite")),
            })
            .await
            .unwrap();
            store.auth_keys().await.unwrap()
        });
    let der = STANDARD.decode(&stored[0].private_key).unwrap();
    let kid = stored[0].kid.clone();
    let base = json!({ "iss": "x", "sub": "user:default/jane", "aud": "backstage", "iat": now(), "exp": now() + 600 });
    let mut expired = base.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut foreign = base.clone();
    foreign["aud"] = json!("someone-else");
    let forged_key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let forged_der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&forged_key).unwrap();
    assert_eq!(
        get_with(&server, "/api/catalog/entities", Some(&sign(&der, &kid, &base))).0,
        200,
        "the control token works"
    );
    for (what, bad) in [
        ("tampered", tampered),
        ("unsigned", unsigned),
        ("expired", sign(&der, &kid, &expired)),
        ("wrong audience", sign(&der, &kid, &foreign)),
        ("wrong key", sign(forged_der.as_bytes(), &kid, &base)),
        ("garbage", "not-a-token".to_owned()),
    ] {
        let (status, body) = get_with(&server, "/api/catalog/entities", Some(&bad));
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["name"], "AuthenticationError", "{what}");
    }

    // Keys are in the database: a token survives a restart.
    server.kill();
    let server = Server::start(workspace.path(), port, &[]);
    assert_eq!(
        get_with(&server, "/api/catalog/entities/by-name/component/default/alpha", Some(&token)).0,
        200
    );
}

/// Two servers on one database (replicas): keys are shared, so a token issued by one is
/// accepted by the other, and a key created by either is published by both.
fn a_token_from_one_replica_verifies_on_another(database: &Database) {
    let (first_dir, second_dir) = (Workspace::new(), Workspace::new());
    let (first_port, second_port) = (free_port(), free_port());
    let auth = format!(
        "auth:\n  providers:\n    guest:\n      userEntityRef: user:default/jane\n      dangerouslyAllowOutsideDevelopment: true\n{}",
        catalog_with("./catalog.yaml")
    );
    for (workspace, port) in [(&first_dir, first_port), (&second_dir, second_port)] {
        workspace.write("catalog.yaml", CATALOG);
        workspace.config_on(database, port, &auth);
    }
    // SQLite replicas share one file: point the second at the first's database directory.
    if matches!(database, Database::Sqlite) {
        let shared = first_dir.path().join("db");
        std::fs::create_dir_all(&shared).expect("the shared database directory");
        let text =
            std::fs::read_to_string(second_dir.path().join("app-config.yaml")).expect("the second config");
        second_dir.write(
            "app-config.yaml",
            &text.replace("directory: ./db", &format!("directory: {}", shared.display())),
        );
    }
    let first = Server::start(first_dir.path(), first_port, &[]);
    let second = Server::start(second_dir.path(), second_port, &[]);
    let (status, refreshed) = guest_token(&first);
    assert_eq!(status, 200, "{refreshed}");
    let token = refreshed["backstageIdentity"]["token"].as_str().expect("a token");
    assert_eq!(get_with(&second, "/api/catalog/entities", Some(token)).0, 200);
    let (_, first_keys) = get_with(&first, "/api/auth/.well-known/jwks.json", None);
    let (_, second_keys) = get_with(&second, "/api/auth/.well-known/jwks.json", None);
    assert_eq!(first_keys, second_keys);
}

#[test]
fn sign_in_attempts_are_rate_limited_per_address() {
    let workspace = Workspace::new();
    let port = free_port();
    config(&workspace, port);
    let server = Server::start(workspace.path(), port, &[]);
    let statuses: Vec<u16> = (0..25).map(|_| guest_token(&server).0).collect();
    assert!(statuses[..20].iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(statuses[24], 429, "{statuses:?}");
    let response = server
        .client
        .get(format!("{}/api/auth/guest/refresh", server.base))
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .unwrap();
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["name"], "TooManyRequestsError");
    // Other routes are not limited.
    assert_eq!(get_with(&server, "/api/catalog/entities", Some(STATIC_TOKEN)).0, 200);
}

#[test]
fn the_ui_session_cookie_is_http_only_and_sign_in_never_redirects_off_site() {
    let workspace = Workspace::new();
    let port = free_port();
    config(&workspace, port);
    let server = Server::start(workspace.path(), port, &[]);
    let client =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf = "0123456789abcdef0123456789abcdef";
    let sign_in = |next: &str| {
        client
            .post(format!("{}/sign-in/guest", server.base))
            .header("cookie", format!("portico-csrf={csrf}"))
            .form(&[("_csrf", csrf), ("next", next)])
            .send()
            .unwrap()
    };
    let response = sign_in("/catalog?kind=api");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/catalog?kind=api");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("backstage-auth=ey"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    for hostile in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"] {
        let response = sign_in(hostile);
        assert_eq!(response.headers()["location"], "/", "{hostile}");
    }
    // The session cookie holds a limited user token: it opens UI pages but never the API, not
    // even as a bearer token.
    let session = cookie.split(';').next().unwrap().to_owned();
    let limited = session.trim_start_matches("backstage-auth=");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(limited.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "vnd.backstage.limited-user");
    let as_bearer =
        client.get(format!("{}/api/catalog/entities", server.base)).bearer_auth(limited).send().unwrap();
    assert_eq!(as_bearer.status(), 401);

    // A plugin's cookie endpoint turns a user token into the same kind of cookie, for its path.
    let token = guest_token(&server).1["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    let issued = client
        .get(format!("{}/api/catalog/.backstage/auth/v1/cookie", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(issued.status(), 200);
    let cookie = issued.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("backstage-auth=ey")
            && cookie.contains("Path=/api/catalog")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let body: Value = issued.json().unwrap();
    assert!(body["expiresAt"].as_str().unwrap().ends_with(".000Z"), "{body}");
    let without_token =
        client.get(format!("{}/api/catalog/.backstage/auth/v1/cookie", server.base)).send().unwrap();
    assert_eq!(without_token.status(), 401);
    let cleared = client
        .delete(format!("{}/api/catalog/.backstage/auth/v1/cookie", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(cleared.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let page = client.get(format!("{}/catalog", server.base)).header("cookie", &session).send().unwrap();
    assert_eq!(page.status(), 200);
    let api = client
        .get(format!("{}/api/catalog/entities", server.base))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(api.status(), 401);
}

#[test]
fn the_permission_policy_refuses_what_it_does_not_allow_and_the_attempt_is_audited() {
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write(
        "catalog.yaml",
        &format!("{CATALOG}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {{ name: beta }}\nspec: {{ type: service, lifecycle: production, owner: team-b }}\n"),
    );
    write_config(&workspace, port, "permission:\n  enabled: true\n  admins: [group:default/admins]\n");
    let server = Server::start(workspace.path(), port, &[]);
    let beta = server.wait_for("beta", |server| {
        let (status, body) =
            get_with(server, "/api/catalog/entities/by-name/component/default/beta", Some(STATIC_TOKEN));
        (status == 200).then_some(body)
    });
    server.wait_for("jane", |server| {
        (get_with(server, "/api/catalog/entities/by-name/user/default/jane", Some(STATIC_TOKEN)).0 == 200)
            .then_some(())
    });
    let token = guest_token(&server).1["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = server.client.request(method, format!("{}{path}", server.base)).bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };

    // jane (team-a) may refresh what team-a owns, not team-b's beta; deleting beta is refused
    // with a clear message.
    assert_eq!(
        send(
            reqwest::Method::POST,
            "/api/catalog/refresh",
            Some(json!({ "entityRef": "component:default/alpha" }))
        )
        .0,
        200
    );
    let (status, body) = send(
        reqwest::Method::POST,
        "/api/catalog/refresh",
        Some(json!({ "entityRef": "component:default/beta" })),
    );
    assert_eq!((status, body["error"]["name"].clone()), (403, json!("NotAllowedError")), "{body}");
    // An `authorizationToken` in the body stands in for the request's credentials.
    let (status, _) = send(
        reqwest::Method::POST,
        "/api/catalog/refresh",
        Some(json!({ "entityRef": "component:default/beta", "authorizationToken": STATIC_TOKEN })),
    );
    assert_eq!(status, 200, "a service's token in the body");
    let (status, body) = send(
        reqwest::Method::POST,
        "/api/catalog/refresh",
        Some(json!({ "entityRef": "component:default/beta", "authorizationToken": "not-a-token" })),
    );
    assert_eq!((status, body["error"]["name"].clone()), (401, json!("AuthenticationError")), "{body}");
    let uid = beta["metadata"]["uid"].as_str().unwrap();
    let (status, body) = send(reqwest::Method::DELETE, &format!("/api/catalog/entities/by-uid/{uid}"), None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "user:default/jane is not allowed to catalog.entity.delete on component:default/beta"
    );
    assert_eq!(
        get_with(&server, "/api/catalog/entities/by-name/component/default/beta", Some(STATIC_TOKEN)).0,
        200
    );

    // The refused attempt is in the audit log.
    let (_, audit) = get_with(&server, "/api/audit/events", Some(STATIC_TOKEN));
    let denied = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["action"] == "catalog.entity.delete")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(denied["actor"], "user:default/jane", "{audit}");
    assert!(denied["detail"].as_str().unwrap().starts_with("denied"));

    // The UI offers only what the policy allows: Refresh on alpha, not on beta.
    let (browser, session) = signed_in_browser(&server);
    let page = |name: &str| {
        browser
            .get(format!("{}/catalog/default/component/{name}", server.base))
            .header("cookie", &session)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert!(page("alpha").contains("action=\"/catalog/default/component/alpha/refresh\""));
    assert!(!page("beta").contains("action=\"/catalog/default/component/beta/refresh\""));

    // "Owned by me" in the catalog table: what jane's groups own, not the rest.
    let mine = |query: &str| {
        browser
            .get(format!("{}/catalog?kind=component{query}", server.base))
            .header("cookie", &session)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let owned = mine("&owned=me");
    assert!(owned.contains(">alpha<") && !owned.contains(">beta<"), "{owned}");
    assert!(owned.contains("Owned by me and my groups"));
    let everyone = mine("");
    assert!(everyone.contains(">alpha<") && everyone.contains(">beta<"));

    // The same decisions through Backstage's permission endpoint.
    let item = |id: &str, name: &str, resource: Option<&str>| {
        let mut item = json!({ "id": id, "permission": { "type": if resource.is_some() { "resource" } else { "basic" }, "name": name, "attributes": {} } });
        if let Some(resource) = resource {
            item["resourceRef"] = json!(resource);
            item["permission"]["resourceType"] = json!("catalog-entity");
        }
        item
    };
    let (status, answer) = send(
        reqwest::Method::POST,
        "/api/permission/authorize",
        Some(json!({ "items": [
            item("1", "catalog.entity.delete", Some("component:default/alpha")),
            item("2", "catalog.entity.delete", Some("component:default/beta")),
            item("3", "catalog.location.delete", None),
            item("4", "catalog.location.create", None),
        ] })),
    );
    assert_eq!(status, 200, "{answer}");
    let results: Vec<&str> =
        answer["items"].as_array().unwrap().iter().map(|item| item["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["ALLOW", "DENY", "DENY", "ALLOW"]);
    let (status, _) = send(
        reqwest::Method::POST,
        "/api/permission/authorize",
        Some(
            json!({ "items": [{ "id": "x", "permission": { "type": "resource", "name": "catalog.entity.delete", "resourceType": "catalog-entity" } }] }),
        ),
    );
    assert_eq!(status, 400, "a resource permission without resourceRef");
}

#[test]
fn reads_are_filtered_inside_queries_so_no_count_or_facet_reveals_a_hidden_entity() {
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write(
        "catalog.yaml",
        &format!("{CATALOG}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {{ name: beta }}\nspec: {{ type: service, lifecycle: production, owner: team-b }}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {{ name: gamma }}\nspec: {{ type: website, lifecycle: production, owner: team-b, subcomponentOf: alpha }}\n"),
    );
    // Components only for their owners; everything else for everyone.
    workspace.write(
        "policy.yaml",
        "rules:\n  - permissions: [catalog.entity.read]\n    decision:\n      conditions:\n        anyOf:\n          - rule: IS_ENTITY_OWNER\n          - not: { rule: IS_ENTITY_KIND, params: { kinds: [Component] } }\n  - actions: [read]\n    decision: allow\n",
    );
    write_config(&workspace, port, "permission:\n  enabled: true\n  policy: policy.yaml\n");
    let server = Server::start(workspace.path(), port, &[]);
    let gamma = server.wait_for("every entity", |server| {
        let (status, body) =
            get_with(server, "/api/catalog/entities/by-name/component/default/gamma", Some(STATIC_TOKEN));
        let (_, jane) =
            get_with(server, "/api/catalog/entities/by-name/user/default/jane", Some(STATIC_TOKEN));
        (status == 200 && jane["relations"].to_string().contains("team-a")).then_some(body)
    });
    let token = guest_token(&server).1["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    let jane = |path: &str| get_with(&server, path, Some(&token));

    // jane (team-a) reads alpha, and neither beta nor gamma, in every form of read.
    assert_eq!(jane("/api/catalog/entities/by-name/component/default/alpha").0, 200);
    assert_eq!(jane("/api/catalog/entities/by-name/component/default/beta").0, 404);
    let uid = gamma["metadata"]["uid"].as_str().unwrap();
    assert_eq!(jane(&format!("/api/catalog/entities/by-uid/{uid}")).0, 404);
    assert_eq!(jane("/api/catalog/entities/by-name/component/default/gamma/ancestry").0, 404);
    let (status, page) = jane("/api/catalog/entities/by-query?filter=kind=component&limit=1");
    assert_eq!((status, page["totalItems"].clone()), (200, json!(1)), "{page}");
    assert_eq!(page["pageInfo"].get("nextCursor"), None, "no second page of hidden entities");
    let (_, list) = jane("/api/catalog/entities?filter=kind=component");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, facets) = jane("/api/catalog/entity-facets?facet=spec.type&facet=kind");
    let types = facets["facets"]["spec.type"].to_string();
    assert!(types.contains(r#"{"value":"service","count":1}"#) && !types.contains("website"), "{facets}");
    assert!(
        facets["facets"]["kind"].to_string().contains("\"Group\""),
        "other kinds stay readable: {facets}"
    );
    let (_, refs) = get_with(&server, "/api/catalog/entities/by-query?fullTextFilterTerm=gam", Some(&token));
    assert_eq!(refs["totalItems"], 0, "full text does not find it either: {refs}");
    let by_refs = server
        .client
        .post(format!("{}/api/catalog/entities/by-refs", server.base))
        .bearer_auth(&token)
        .json(&json!({ "entityRefs": ["component:default/alpha", "component:default/beta"] }))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(by_refs["items"][0]["metadata"]["name"], "alpha");
    assert_eq!(by_refs["items"][1], Value::Null, "{by_refs}");

    // The UI hides them the same way: gamma is a 404 page, the table counts one component.
    let (browser, session) = signed_in_browser(&server);
    let page = |path: &str| {
        let response =
            browser.get(format!("{}{path}", server.base)).header("cookie", &session).send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(page("/catalog/default/component/gamma").0, 404);
    let (_, alpha) = page("/catalog/default/component/alpha");
    assert!(
        alpha.contains("alpha") && !alpha.contains("website"),
        "the hidden subcomponent shows no details"
    );
    let (_, table) = page("/catalog?kind=component");
    assert!(!table.contains(">beta<") && !table.contains(">gamma<"), "{table}");

    // A service reads everything.
    let (_, all) =
        get_with(&server, "/api/catalog/entities/by-query?filter=kind=component", Some(STATIC_TOKEN));
    assert_eq!(all["totalItems"], 3);

    // The plugin endpoints, for services: conditions applied to one entity, and the metadata.
    let apply = |token: &str, resource_ref: &str| {
        let response = server
            .client
            .post(format!("{}/api/catalog/.well-known/backstage/permissions/apply-conditions", server.base))
            .bearer_auth(token)
            .json(&json!({ "items": [{ "id": "a", "resourceRef": resource_ref, "resourceType": "catalog-entity",
                "conditions": { "rule": "IS_ENTITY_OWNER", "resourceType": "catalog-entity", "params": { "claims": ["group:default/team-b"] } } }] }))
            .send()
            .unwrap();
        (response.status().as_u16(), response.json::<Value>().unwrap_or(Value::Null))
    };
    assert_eq!(
        apply(STATIC_TOKEN, "component:default/beta").1,
        json!({ "items": [{ "id": "a", "result": "ALLOW" }] })
    );
    assert_eq!(apply(STATIC_TOKEN, "component:default/alpha").1["items"][0]["result"], "DENY");
    assert_eq!(apply(STATIC_TOKEN, "component:default/missing").1["items"][0]["result"], "DENY");
    assert_eq!(apply(&token, "component:default/beta").0, 403, "users may not call it");
    let (status, metadata) =
        get_with(&server, "/api/catalog/.well-known/backstage/permissions/metadata", Some(STATIC_TOKEN));
    assert_eq!(status, 200);
    assert!(metadata["permissions"].as_array().unwrap().iter().any(|permission| permission
        == &json!({ "type": "resource", "name": "catalog.entity.read", "attributes": { "action": "read" }, "resourceType": "catalog-entity" })));
    let owner_rule =
        metadata["rules"].as_array().unwrap().iter().find(|rule| rule["name"] == "IS_ENTITY_OWNER").unwrap();
    assert_eq!(owner_rule["paramsSchema"]["required"], json!(["claims"]));
}

#[test]
fn admins_edit_the_policy_in_the_ui_and_see_which_rule_decides() {
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write(
        "catalog.yaml",
        &format!("{CATALOG}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {{ name: beta }}\nspec: {{ type: service, lifecycle: production, owner: team-b }}\n"),
    );
    write_config(&workspace, port, "permission:\n  enabled: true\n  admins: [group:default/team-a]\n");
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_for("jane and beta", |server| {
        let (status, jane) =
            get_with(server, "/api/catalog/entities/by-name/user/default/jane", Some(STATIC_TOKEN));
        let beta =
            get_with(server, "/api/catalog/entities/by-name/component/default/beta", Some(STATIC_TOKEN)).0;
        (status == 200 && beta == 200 && jane["relations"].to_string().contains("team-a")).then_some(())
    });
    let (browser, session) = signed_in_browser(&server);
    let cookies = format!("{session}; portico-csrf={CSRF}");
    let get = |path: &str| {
        let response =
            browser.get(format!("{}{path}", server.base)).header("cookie", &cookies).send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let post = |path: &str, form: &[(&str, &str)]| {
        let mut fields = vec![("_csrf", CSRF)];
        fields.extend_from_slice(form);
        let response = browser
            .post(format!("{}{path}", server.base))
            .header("cookie", &cookies)
            .form(&fields)
            .send()
            .unwrap();
        let location = response.headers().get("location").map(|value| value.to_str().unwrap().to_owned());
        (response.status().as_u16(), location, response.text().unwrap())
    };

    // jane is an admin (team-a): she sees the rules and why a decision is what it is.
    let (status, page) = get("/settings/policy");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("admins do everything") && page.contains("IS_ENTITY_OWNER"), "{page}");
    let (_, explained) = get("/settings/policy?user=user%3Adefault%2Fjane&permission=catalog.entity.delete&entity=component%3Adefault%2Fbeta");
    assert!(explained.contains("Rule 1 (admins do everything) matched"), "{explained}");
    assert!(explained.contains("<strong>ALLOW</strong>"), "{explained}");

    // An invalid policy is refused with the line and field, and the text is kept for fixing.
    let invalid = "rules:\n  - decision: allow\n    actions: [read]\n  - permissions: [catalog.entity.delete]\n    decision: perhaps\n";
    let (status, _, page) = post("/settings/policy", &[("policy", invalid)]);
    assert_eq!(status, 400);
    assert!(page.contains("line 5: rules[1].decision: expected allow, deny"), "{page}");
    assert!(page.contains("decision: perhaps"), "the rejected text stays in the editor");

    // A valid one applies at once: components are hidden from everyone, nobody manages the policy.
    let hide = "rules:\n  - description: no components\n    permissions: [catalog.entity.read]\n    decision:\n      conditions:\n        not: { rule: IS_ENTITY_KIND, params: { kinds: [Component] } }\n  - actions: [read]\n    decision: allow\n";
    let (status, location, _) = post("/settings/policy", &[("policy", hide)]);
    assert_eq!((status, location.as_deref()), (303, Some("/settings/policy?notice=saved")));
    let token = guest_token(&server).1["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_with(&server, "/api/catalog/entities/by-name/component/default/beta", Some(&token)).0,
        404
    );
    assert_eq!(get("/settings/policy").0, 403, "jane is no admin under the new policy");
    let (status, _) = get_with(&server, "/api/permission/policy", Some(&token));
    assert_eq!(status, 403);

    // The change is audited, and the API shows and removes it (a service is trusted).
    let (_, audit) = get_with(&server, "/api/audit/events", Some(STATIC_TOKEN));
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["action"] == "portico.policy.update" && item["actor"] == "user:default/jane"),
        "{audit}"
    );
    let (status, policy) = get_with(&server, "/api/permission/policy", Some(STATIC_TOKEN));
    assert_eq!(
        (status, policy["source"].clone(), policy["savedBy"].clone()),
        (200, json!("saved"), json!("user:default/jane"))
    );
    assert_eq!(policy["policy"], hide);

    // It survives a restart.
    drop(server);
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_for("the catalog", |server| {
        (get_with(server, "/api/catalog/entities/by-name/component/default/beta", Some(STATIC_TOKEN)).0
            == 200)
            .then_some(())
    });
    let token = guest_token(&server).1["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_with(&server, "/api/catalog/entities/by-name/component/default/beta", Some(&token)).0,
        404
    );
    let removed = server
        .client
        .delete(format!("{}/api/permission/policy", server.base))
        .bearer_auth(STATIC_TOKEN)
        .send()
        .unwrap();
    assert_eq!(removed.status().as_u16(), 204);
    assert_eq!(
        get_with(&server, "/api/catalog/entities/by-name/component/default/beta", Some(&token)).0,
        200
    );
}

#[test]
fn external_callers_with_legacy_secrets_external_jwks_and_access_restrictions() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    // The external issuer's key, published as a JWKS by a file server.
    let issuer_key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&issuer_key).unwrap();
    let point = issuer_key.public_key().to_encoded_point(false);
    let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "ext-1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()) }] });
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("jwks.json"), jwks.to_string()).unwrap();
    let file_server = crate::support::FileServer::start(files.path());
    let legacy_secret = b"a-shared-legacy-secret-of-32-bytes";
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write("catalog.yaml", CATALOG);
    workspace.config(
        port,
        &format!(
            "  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: restricted-token-1234, subject: reader }}\n        accessRestrictions:\n          - plugin: catalog\n            permissionAttribute: {{ action: [read] }}\n      - type: legacy\n        options: {{ secret: {}, subject: legacy-caller }}\n      - type: jwks\n        options: {{ url: '{}', issuer: https://issuer.example, audience: portico, subjectPrefix: 'external:' }}\n{}",
            STANDARD.encode(legacy_secret),
            file_server.url("jwks.json"),
            catalog_with("./catalog.yaml")
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    let status =
        |token: &str| get_with(&server, "/api/catalog/entities?filter=kind=component", Some(token)).0;
    let hs256 = |secret: &[u8], claims: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let later = now() + 600;

    // Legacy shared secret: HS256 `{sub: backstage-server, exp}`.
    assert_eq!(status(&hs256(legacy_secret, &json!({ "sub": "backstage-server", "exp": later }))), 200);
    assert_eq!(
        status(&hs256(
            b"another-secret-entirely-32-bytes!",
            &json!({ "sub": "backstage-server", "exp": later })
        )),
        401
    );
    assert_eq!(status(&hs256(legacy_secret, &json!({ "sub": "someone-else", "exp": later }))), 401);
    assert_eq!(status(&hs256(legacy_secret, &json!({ "sub": "backstage-server", "exp": now() - 60 }))), 401);

    // External issuer: signature from its JWKS, issuer, audience and expiry checked.
    let external = |claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("ext-1".into());
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()))
            .unwrap()
    };
    let good = json!({ "iss": "https://issuer.example", "aud": "portico", "sub": "deployer", "exp": later });
    assert_eq!(status(&external(good.clone())), 200);
    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://other.example");
    assert_eq!(status(&external(wrong_issuer)), 401);
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("someone-else");
    assert_eq!(status(&external(wrong_audience)), 401);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 60);
    assert_eq!(status(&external(expired)), 401);
    // The audit log names the external caller with its prefix.
    let refreshed = server
        .client
        .post(format!("{}/api/catalog/refresh", server.base))
        .bearer_auth(external(good))
        .json(&json!({ "entityRef": "component:default/alpha" }))
        .send()
        .unwrap();
    assert_eq!(refreshed.status().as_u16(), 200);
    let (_, audit) = get_with(
        &server,
        "/api/audit/events",
        Some(&hs256(legacy_secret, &json!({ "sub": "backstage-server", "exp": later }))),
    );
    assert!(audit.to_string().contains("external:deployer"), "{audit}");

    // A restricted credential: the catalog only, and there only reads.
    assert_eq!(status("restricted-token-1234"), 200);
    let refused = server
        .client
        .post(format!("{}/api/catalog/refresh", server.base))
        .bearer_auth("restricted-token-1234")
        .json(&json!({ "entityRef": "component:default/alpha" }))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403, "a write is outside its read-only restriction");
    let (status, body) = get_with(&server, "/api/audit/events", Some("restricted-token-1234"));
    assert_eq!(status, 403, "another plugin: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("restricted to the plugin(s) 'catalog'"));
}

#[test]
fn admin_rights_reach_members_of_child_groups() {
    let workspace = Workspace::new();
    let port = free_port();
    // jane is in team-a, whose parent is admins: the admins rule applies to her.
    workspace.write(
        "catalog.yaml",
        &format!("{}---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {{ name: admins }}\nspec: {{ type: team, children: [team-a] }}\n", CATALOG.replace("spec: { type: team, children: [] }\n---\napiVersion: backstage.io/v1alpha1\nkind: User", "spec: { type: team, parent: admins, children: [] }\n---\napiVersion: backstage.io/v1alpha1\nkind: User")),
    );
    write_config(&workspace, port, "permission:\n  enabled: true\n  admins: [group:default/admins]\n");
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_for("the group hierarchy", |server| {
        let (status, group) =
            get_with(server, "/api/catalog/entities/by-name/group/default/team-a", Some(STATIC_TOKEN));
        (status == 200 && group["relations"].to_string().contains("group:default/admins")).then_some(())
    });
    server.wait_for("jane", |server| {
        (get_with(server, "/api/catalog/entities/by-name/user/default/jane", Some(STATIC_TOKEN)).0 == 200)
            .then_some(())
    });
    let token = guest_token(&server).1["backstageIdentity"]["token"].as_str().unwrap().to_owned();
    let answer = server
        .client
        .post(format!("{}/api/permission/authorize", server.base))
        .bearer_auth(&token)
        .json(&json!({ "items": [{ "id": "1", "permission": { "type": "basic", "name": "catalog.location.delete", "attributes": {} } }] }))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(answer["items"][0]["result"], "ALLOW", "{answer}");
}

#[test]
fn an_invalid_policy_file_stops_the_server_with_the_field_named() {
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write("catalog.yaml", CATALOG);
    workspace.write(
        "policy.yaml",
        "rules:\n  - decision: allow\n  - permissions: [catalog.entity.delete]\n    decision: perhaps\n",
    );
    workspace.config(
        port,
        &format!("permission:\n  enabled: true\n  policy: policy.yaml\n{}", catalog_with("./catalog.yaml")),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("serve")
        .current_dir(workspace.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("policy.yaml: line 4: rules[1].decision: expected allow, deny or {conditions: …}"),
        "{stderr}"
    );
}

#[test]
fn the_guest_provider_refuses_to_run_outside_development() {
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write("catalog.yaml", CATALOG);
    workspace
        .config(port, &format!("auth:\n  providers:\n    guest: {{}}\n{}", catalog_with("./catalog.yaml")));
    let output = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("serve")
        .current_dir(workspace.path())
        .env_remove("NODE_ENV")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.providers.guest") && stderr.contains("NODE_ENV=development"), "{stderr}");
}

#[test]
fn software_templates_run_only_as_far_as_the_policy_allows() {
    let workspace = Workspace::new();
    let template = "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: hello\nspec:\n  type: service\n  steps:\n    - id: say\n      action: debug:log\n      input:\n        message: hi\n";
    workspace.write("catalog.yaml", &format!("{CATALOG}---\n{template}"));
    // Jane may read and create tasks, but no rule lets anyone run actions.
    workspace.write(
        "policy.yaml",
        "rules:\n  - description: reads\n    actions: [read]\n    decision: allow\n  - description: tasks\n    permissions: [scaffolder.task.create]\n    decision: allow\n",
    );
    let port = free_port();
    write_config(&workspace, port, "permission:\n  enabled: true\n  policy: policy.yaml\n");
    let server = Server::start(workspace.path(), port, &[]);
    let (_, session) = guest_token(&server);
    let token = session["backstageIdentity"]["token"].as_str().expect("token").to_owned();
    server.wait_for("the template", |server| {
        let (status, _) =
            get_with(server, "/api/catalog/entities/by-name/template/default/hello", Some(&token));
        (status == 200).then_some(())
    });

    let body = json!({ "templateRef": "template:default/hello", "values": {} });
    let anonymous =
        server.client.post(format!("{}/api/scaffolder/v2/tasks", server.base)).json(&body).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let created = server
        .client
        .post(format!("{}/api/scaffolder/v2/tasks", server.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let task = server.wait_for("the run to end", |server| {
        let (_, task) = get_with(server, &format!("/api/scaffolder/v2/tasks/{id}"), Some(&token));
        (task["status"] == "failed").then_some(task)
    });
    assert_eq!(task["createdBy"], "user:default/jane");
    let (_, events) = get_with(&server, &format!("/api/scaffolder/v2/tasks/{id}/events"), Some(&token));
    let completion = events.as_array().unwrap().last().unwrap().clone();
    let message = completion["body"]["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("Unauthorized action: debug:log"), "{message}");
    assert!(message.contains("user:default/jane is not allowed to scaffolder.action.execute"), "{message}");
    // Cancelling is not allowed either (no rule).
    let cancel = server
        .client
        .post(format!("{}/api/scaffolder/v2/tasks/{id}/cancel", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(cancel.status(), 403);
}

#[test]
fn template_pages_steps_actions_and_tasks_follow_the_policys_conditions() {
    let workspace = Workspace::new();
    let template = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: tagged
spec:
  type: service
  parameters:
    - title: Everyone
      properties:
        message: { type: string }
    - title: Admins
      backstage:permissions: { tags: [admin] }
      required: [budget]
      properties:
        budget: { type: number }
  steps:
    - id: say
      action: debug:log
      input: { message: "${{ parameters.message }}" }
    - id: audit
      action: debug:log
      backstage:permissions: { tags: [admin] }
      input: { message: only for admins }
"#;
    workspace.write("catalog.yaml", &format!("{CATALOG}---\n{template}"));
    workspace.write(
        "policy.yaml",
        r#"rules:
  - description: pages and steps tagged admin are for admins only
    permissions: [scaffolder.template.parameter.read, scaffolder.template.step.read]
    decision: { conditions: { not: { rule: HAS_TAG, params: { tag: admin } } } }
  - description: people see and cancel their own tasks
    permissions: [scaffolder.task.read, scaffolder.task.cancel]
    decision: { conditions: { rule: IS_TASK_OWNER, params: { createdBy: [user:default/jane] } } }
  - description: only debug:log, and never with the message "forbidden"
    permissions: [scaffolder.action.execute]
    decision:
      conditions:
        allOf:
          - { rule: HAS_ACTION_ID, params: { actionId: "debug:log" } }
          - not: { rule: HAS_STRING_PROPERTY, params: { key: message, value: forbidden } }
  - description: reads
    actions: [read]
    decision: allow
  - description: tasks
    permissions: [scaffolder.task.create]
    decision: allow
"#,
    );
    let port = free_port();
    write_config(&workspace, port, "permission:\n  enabled: true\n  policy: policy.yaml\n");
    let server = Server::start(workspace.path(), port, &[]);
    let (_, session) = guest_token(&server);
    let token = session["backstageIdentity"]["token"].as_str().expect("token").to_owned();
    server.wait_for("the template", |server| {
        let (status, _) =
            get_with(server, "/api/catalog/entities/by-name/template/default/tagged", Some(&token));
        (status == 200).then_some(())
    });

    // The admins' page is not asked for, and its required field is not required of jane.
    let (status, schema) = get_with(
        &server,
        "/api/scaffolder/v2/templates/default/template/tagged/parameter-schema",
        Some(&token),
    );
    assert_eq!(status, 200);
    let titles: Vec<&str> =
        schema["steps"].as_array().expect("pages").iter().filter_map(|page| page["title"].as_str()).collect();
    assert_eq!(titles, ["Everyone"]);
    let create = |values: Value, bearer: &str| {
        let body = json!({ "templateRef": "template:default/tagged", "values": values });
        let response = server
            .client
            .post(format!("{}/api/scaffolder/v2/tasks", server.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .expect("create");
        assert_eq!(response.status(), 201);
        response.json::<Value>().expect("json")["id"].as_str().expect("id").to_owned()
    };
    let ended = |id: &str| {
        server.wait_for("the run to end", |server| {
            let (_, task) = get_with(server, &format!("/api/scaffolder/v2/tasks/{id}"), Some(STATIC_TOKEN));
            matches!(task["status"].as_str(), Some("completed" | "failed")).then_some(task)
        })
    };

    // The admins' step is not stored with the task and does not run.
    let allowed = create(json!({ "message": "hello" }), &token);
    let task = ended(&allowed);
    assert_eq!(task["status"], "completed", "{task}");
    let steps: Vec<&str> =
        task["spec"]["steps"].as_array().expect("steps").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(steps, ["say"]);

    // An input the conditions refuse fails the step, naming the action.
    let refused = create(json!({ "message": "forbidden" }), &token);
    assert_eq!(ended(&refused)["status"], "failed");
    let (_, events) = get_with(&server, &format!("/api/scaffolder/v2/tasks/{refused}/events"), Some(&token));
    let last = events.as_array().expect("events").last().expect("completion").clone();
    let message = last["body"]["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("Unauthorized action: debug:log."), "{message}");

    // A trusted service is asked for every page (the budget is required there), and a task
    // jane did not create is neither listed nor found for her.
    let foreign = create(json!({ "message": "from a service", "budget": 5 }), STATIC_TOKEN);
    ended(&foreign);
    let (status, _) = get_with(&server, &format!("/api/scaffolder/v2/tasks/{foreign}"), Some(&token));
    assert_eq!(status, 404);
    let (_, list) = get_with(&server, "/api/scaffolder/v2/tasks?limit=1", Some(&token));
    assert_eq!(list["totalTasks"], 2, "{list}");
    assert_eq!(list["tasks"].as_array().expect("tasks").len(), 1);
    let (_, all) = get_with(&server, "/api/scaffolder/v2/tasks", Some(STATIC_TOKEN));
    assert_eq!(all["totalTasks"], 3);

    // The scaffolder's permissions and rules are listed for permission backends.
    let (_, metadata) =
        get_with(&server, "/api/scaffolder/.well-known/backstage/permissions/metadata", Some(STATIC_TOKEN));
    let rules: Vec<&str> =
        metadata["rules"].as_array().expect("rules").iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(rules.contains(&"HAS_TAG") && rules.contains(&"IS_TASK_OWNER"), "{metadata}");
}
