//! The web UI in a real headless Chromium: browse, filter, follow relations, read an API
//! definition, view the graph, register a location, switch theme; and hostile entity content
//! stays inert. Screenshots of the main pages go to `ui-screenshots/` at the repository root.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use portico_testing::Browser;

use crate::support::{catalog_with, free_port, FileServer, Server, Workspace, PATIENCE};

const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: team-a, title: Team A }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: team-b }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: { name: ada }
spec: { profile: { displayName: Ada Lovelace, email: ada@example.com }, memberOf: [team-a] }
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata: { name: pets }
spec: { owner: team-a }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: { name: alpha, description: The alpha service, tags: [rust] }
spec: { type: service, lifecycle: production, owner: team-a, system: pets, providesApis: [pets-api], dependsOn: [resource:pets-db] }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: { name: beta, description: The beta website }
spec: { type: website, lifecycle: experimental, owner: team-b, consumesApis: [pets-api] }
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: { name: pets-db }
spec: { type: database, owner: team-a, system: pets }
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: { name: pets-api, description: Pets over HTTP }
spec:
  type: openapi
  lifecycle: production
  owner: team-a
  system: pets
  definition: |
    openapi: 3.0.0
    info: { title: Pets, version: '1.0' }
    paths:
      /pets:
        get:
          tags: [pets]
          summary: List every pet
          responses:
            '200': { description: The pets }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: evil
  title: "<img src=x onerror=window.__pwned=1>"
  description: "<script>window.__pwned=2</script>"
  annotations:
    backstage.io/view-url: "javascript:window.__pwned=3"
    backstage.io/edit-url: "  JavaScript:window.__pwned=4"
  links:
    - { url: "javascript:window.__pwned=5", title: click me }
    - { url: "https://example.com/docs", title: real docs }
spec: { type: service, lifecycle: production, owner: team-a }
"#;

const IMPORTED: &str = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: imported\n  description: Registered through the import page\nspec:\n  type: library\n  lifecycle: experimental\n  owner: team-b\n";

/// Starts `portico serve` in the workspace off the async runtime (the test client is blocking)
/// and runs `ready` on it before handing it back.
async fn serve(workspace: &Workspace, port: u16, ready: impl FnOnce(&Server) + Send + 'static) -> Server {
    let dir = workspace.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let server = Server::start(&dir, port, &[]);
        ready(&server);
        server
    })
    .await
    .expect("starting the server")
}

/// A Portico without sign-in serving the test catalog, `alpha` already in it.
fn plain_server() -> (Workspace, Server) {
    let workspace = Workspace::new();
    workspace.write("catalog.yaml", CATALOG);
    let port = free_port();
    workspace.config(port, &catalog_with("./catalog.yaml"));
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("component", "alpha");
    (workspace, server)
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui-screenshots")
}

async fn wait_for_url(client: &Client, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = client.current_url().await.expect("current url").to_string();
        if check(&url) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the first element matching `css`, retried while a navigation replaces the page.
async fn text_of(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let attempt = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match attempt {
            Ok(text) => return text,
            Err(error) => assert!(Instant::now() < deadline, "no text for {css}: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the page's text contains `needle`.
async fn wait_for_text(client: &Client, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !body_text(client).await.contains(needle) {
        assert!(Instant::now() < deadline, "the page never showed {needle:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn body_text(client: &Client) -> String {
    text_of(client, "body").await
}

#[test]
fn browsing_filtering_following_and_registering_in_a_real_browser() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let Some(browser) = Browser::start().await else { return };
        let workspace = Workspace::new();
        workspace.write("catalog.yaml", CATALOG);
        let remote = Workspace::new();
        remote.write("repo/catalog-info.yaml", IMPORTED);
        let files = FileServer::start(remote.path());
        let port = free_port();
        workspace.config(
            port,
            &format!(
                "  reading:\n    allow:\n      - host: 127.0.0.1:{}\napp:\n  title: Test Portal\norganization:\n  name: Acme\n{}",
                files.port,
                catalog_with("./catalog.yaml")
            ),
        );
        let server = serve(&workspace, port, |server| {
            server.wait_entity("component", "evil");
            server.wait_entity("api", "pets-api");
            server.settle();
        })
        .await;
        let base = server.base.clone();
        let client = &browser.client;
        let shots = screenshots();

        // The catalog table, Components by default.
        client.goto(&format!("{base}/catalog")).await.unwrap();
        assert_eq!(client.title().await.unwrap(), "Component entities | Test Portal");
        let table = text_of(client, "table.entities").await;
        assert!(table.contains("alpha") && table.contains("beta"), "{table}");
        assert!(body_text(client).await.contains("Acme"));
        browser.screenshot(&shots.join("catalog.png")).await;

        // Filter by kind (the select submits itself), then back to components and by owner.
        client.find(Locator::Css("#f-kind")).await.unwrap().select_by_value("api").await.unwrap();
        wait_for_url(client, "the API kind filter", |url| url.contains("kind=api")).await;
        assert!(text_of(client, "table.entities").await.contains("pets-api"));
        client.find(Locator::Css("#f-kind")).await.unwrap().select_by_value("component").await.unwrap();
        wait_for_url(client, "the component kind filter", |url| url.contains("kind=component")).await;
        client.find(Locator::Css("#f-owner")).await.unwrap().select_by_value("group:default/team-b").await.unwrap();
        wait_for_url(client, "the owner filter", |url| url.contains("owner=group%3Adefault%2Fteam-b")).await;
        let filtered = text_of(client, "table.entities tbody").await;
        assert!(filtered.contains("beta") && !filtered.contains("alpha"), "{filtered}");
        browser.screenshot(&shots.join("catalog-filtered.png")).await;

        // Open an entity, then follow a relation to its API.
        client.goto(&format!("{base}/catalog")).await.unwrap();
        client.find(Locator::LinkText("alpha")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the alpha page", |url| url.ends_with("/catalog/default/component/alpha")).await;
        assert_eq!(text_of(client, "h1").await, "alpha");
        let page = body_text(client).await;
        assert!(page.contains("The alpha service") && page.contains("Provided APIs"), "{page}");
        browser.screenshot(&shots.join("entity.png")).await;
        client.find(Locator::Css("section[aria-label='Provided APIs'] a")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the API page", |url| url.ends_with("/catalog/default/api/pets-api")).await;
        assert!(body_text(client).await.contains("Providers"));

        // The API definition tab.
        client.find(Locator::LinkText("Definition")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the definition tab", |url| url.ends_with("/definition")).await;
        let definition = body_text(client).await;
        assert!(definition.contains("List every pet") && definition.contains("OpenAPI 3.0.0"), "{definition}");
        browser.screenshot(&shots.join("api-definition.png")).await;

        // The relations graph, with nodes that link to entity pages.
        client.goto(&format!("{base}/catalog/default/component/alpha")).await.unwrap();
        client.find(Locator::LinkText("Relations graph")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the graph tab", |url| url.ends_with("/graph")).await;
        let nodes = client.find_all(Locator::Css("svg g.node a")).await.unwrap();
        assert!(nodes.len() >= 4, "alpha, its owner, system, API and database are drawn: {}", nodes.len());
        browser.screenshot(&shots.join("graph.png")).await;
        client.goto(&format!("{base}/catalog/default/component/alpha/graph?depth=1&relation=providesApi")).await.unwrap();
        let drawn = text_of(client, "section.graph svg").await;
        assert!(drawn.contains("pets-api") && !drawn.contains("pets-db"), "filtered by relation type: {drawn}");
        client.goto(&format!("{base}/catalog/default/component/alpha/graph?depth=2&kind=group&kind=user")).await.unwrap();
        let drawn = text_of(client, "section.graph svg").await;
        assert!(drawn.contains("Team A") && drawn.contains("ada") && !drawn.contains("pets-api"), "filtered by kind to depth 2: {drawn}");

        // Register a component through the import page: analyze, confirm, land on it.
        client.goto(&format!("{base}/catalog-import")).await.unwrap();
        client.find(Locator::Css("#import-url")).await.unwrap().send_keys(&files.url("repo")).await.unwrap();
        client.find(Locator::Css("form.import button")).await.unwrap().click().await.unwrap();
        wait_for_text(client, "component:default/imported").await;
        browser.screenshot(&shots.join("import.png")).await;
        client.find(Locator::XPath("//button[text()='Register']")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the registered entity", |url| url.ends_with("/catalog/default/component/imported")).await;
        assert_eq!(text_of(client, "h1").await, "imported");

        // Unregister it again: the confirmation removes its location and the entity with it.
        client.find(Locator::Css("details.unregister summary")).await.unwrap().click().await.unwrap();
        client.find(Locator::Css("details.unregister button.danger")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the catalog after unregistering", |url| url.contains("/catalog?notice=unregistered")).await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            client.goto(&format!("{base}/catalog/default/component/imported")).await.unwrap();
            if text_of(client, "h1").await == "Entity not found" {
                break;
            }
            assert!(Instant::now() < deadline, "the unregistered entity is still shown");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Keyboard: the first Tab lands on the skip link.
        client.goto(&format!("{base}/catalog")).await.unwrap();
        client.find(Locator::Css("body")).await.unwrap().send_keys(&char::from(fantoccini::key::Key::Tab).to_string()).await.unwrap();
        let focused = client.execute("return document.activeElement.className", vec![]).await.unwrap();
        assert_eq!(focused, serde_json::json!("skip"));

        // Switch theme; the choice survives a reload.
        client.goto(&format!("{base}/")).await.unwrap();
        client.find(Locator::Css("[data-theme-toggle]")).await.unwrap().click().await.unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            client.refresh().await.unwrap();
            let theme = client.execute("return document.documentElement.getAttribute('data-theme')", vec![]).await.unwrap();
            if theme == serde_json::json!("dark") {
                break;
            }
            assert!(Instant::now() < deadline, "the dark theme was not remembered: {theme}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        browser.screenshot(&shots.join("home-dark.png")).await;

        // Down to a phone: the navigation wraps above the content and the table scrolls.
        client.set_window_size(390, 844).await.unwrap();
        client.goto(&format!("{base}/catalog/default/component/alpha")).await.unwrap();
        browser.screenshot(&shots.join("entity-phone.png")).await;
        let overflow = client
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1", vec![])
            .await
            .unwrap();
        assert_eq!(overflow, serde_json::json!(true), "the page scrolls sideways on a phone");
        client.set_window_size(1280, 1000).await.unwrap();

        // Hostile content is shown as text and never runs or links.
        client.goto(&format!("{base}/catalog/default/component/evil")).await.unwrap();
        let page = body_text(client).await;
        assert!(page.contains("<script>window.__pwned=2</script>"), "shown literally: {page}");
        assert!(page.contains("<img src=x onerror=window.__pwned=1>"));
        for link in client.find_all(Locator::Css("a")).await.unwrap() {
            let href = link.attr("href").await.unwrap().unwrap_or_default();
            assert!(!href.trim().to_lowercase().starts_with("javascript:"), "a javascript: link was rendered: {href}");
        }
        assert!(client.find(Locator::LinkText("real docs")).await.is_ok());
        let pwned = client.execute("return window.__pwned === undefined", vec![]).await.unwrap();
        assert_eq!(pwned, serde_json::json!(true), "hostile content ran");
        browser.screenshot(&shots.join("hostile.png")).await;

        // Inspect shows the raw entity.
        client.goto(&format!("{base}/catalog/default/component/evil/inspect")).await.unwrap();
        assert!(body_text(client).await.contains("backstage.io/view-url"));
        let pwned = client.execute("return window.__pwned === undefined", vec![]).await.unwrap();
        assert_eq!(pwned, serde_json::json!(true));

        browser.close().await;
        drop(server);
        eprintln!("screenshots in {}", shots.display());
    });
}

#[test]
fn pages_answer_with_status_titles_and_security_headers() {
    let (_workspace, server) = plain_server();

    let page = server.get_raw("/catalog/default/component/alpha");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().unwrap();
    assert!(html.contains("<title>alpha (Component) | Portico</title>"), "{html}");
    assert!(html.contains(r#"<main id="main""#) && html.contains(r#"<nav class="side" aria-label="Main""#));

    // A system's overview draws its diagram: its parts and the APIs they provide.
    server.wait_entity("system", "pets");
    let system = server.get_raw("/catalog/default/system/pets").text().unwrap();
    assert!(system.contains("System diagram of system:pets") && system.contains("<svg"), "{system}");
    assert!(
        system.contains("/catalog/default/api/pets-api")
            && system.contains("/catalog/default/component/alpha")
    );

    // Missing entities and pages are 404 with a helpful page; names are case-insensitive.
    assert_eq!(server.get_raw("/catalog/default/component/nope").status(), 404);
    assert_eq!(server.get_raw("/no/such/page").status(), 404);
    assert_eq!(server.get_raw("/catalog/default/Component/ALPHA").status(), 200);

    // Hostile text is escaped in the HTML itself, not only inert in a browser.
    let evil = server.get_raw("/catalog/default/component/evil").text().unwrap();
    assert!(!evil.contains("<script>window") && evil.contains("&lt;script&gt;window.__pwned=2"));
    assert!(
        !evil.to_lowercase().contains("href=\"javascript:")
            && !evil.to_lowercase().contains("href=\"  javascript:")
    );

    // Bad query parameters never fail the page.
    assert_eq!(server.get_raw("/catalog?kind=component&cursor=not-a-cursor").status(), 400);
    assert_eq!(server.get_raw("/catalog?kind=%00&sort=nonsense&dir=sideways").status(), 200);

    // Static assets are cacheable forever under hashed names; pages are compressed.
    let css =
        html.split("href=\"/static/").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned();
    let asset = server.get_raw(&format!("/static/{css}"));
    assert_eq!(asset.status(), 200);
    assert!(asset.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let compressed = server
        .client
        .get(format!("{}/catalog", server.base))
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(compressed.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
}

/// The built-in demo renders everywhere: every entity's page and tabs answer 200, and every
/// demo API definition renders without a viewer error.
#[test]
fn every_page_of_the_demo_catalog_renders() {
    let workspace = Workspace::new();
    let server = Server::start_demo(workspace.path());
    server.wait_for("the demo catalog", |server| {
        let (status, body) = server.get("/api/catalog/entities/by-query?filter=kind=api&limit=1");
        (status == 200 && body["totalItems"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    server.settle();
    let (_, entities) = server.get("/api/catalog/entities");
    let entities = entities.as_array().expect("entities").clone();
    assert!(entities.len() > 20, "the demo has content: {}", entities.len());
    for path in
        ["/", "/catalog", "/api-docs", "/search?q=a", "/settings", "/create", "/docs", "/catalog-import"]
    {
        assert_eq!(server.get_raw(path).status(), 200, "{path}");
    }
    for entity in &entities {
        let kind = entity["kind"].as_str().unwrap().to_lowercase();
        let namespace = entity["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = entity["metadata"]["name"].as_str().unwrap();
        let base = format!("/catalog/{namespace}/{kind}/{name}");
        let mut tabs = vec![base.clone(), format!("{base}/inspect"), format!("{base}/graph?depth=3")];
        if kind == "api" {
            tabs.push(format!("{base}/definition"));
        }
        for path in tabs {
            let response = server.get_raw(&path);
            assert_eq!(response.status(), 200, "{path}");
            let html = response.text().unwrap();
            assert!(!html.contains("class=\"error-message\""), "{path} shows an error:\n{html}");
        }
        let (status, _) = server.get(&format!("/catalog?kind={kind}"));
        assert_eq!(status, 200);
    }
}

#[test]
fn signing_in_and_out_through_the_browser_with_the_guest_provider() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let Some(browser) = Browser::start().await else { return };
        let workspace = Workspace::new();
        workspace.write("catalog.yaml", CATALOG);
        let port = free_port();
        workspace.config(
            port,
            &format!(
                "auth:\n  providers:\n    guest:\n      userEntityRef: user:default/ada\n      dangerouslyAllowOutsideDevelopment: true\n{}",
                catalog_with("./catalog.yaml")
            ),
        );
        let server = serve(&workspace, port, |_| {}).await;
        let base = server.base.clone();
        let client = &browser.client;
        let shots = screenshots();

        client.goto(&format!("{base}/catalog")).await.unwrap();
        wait_for_url(client, "the sign-in page", |url| url.ends_with("/sign-in?next=%2Fcatalog")).await;
        browser.screenshot(&shots.join("sign-in.png")).await;
        client.find(Locator::XPath("//button[text()='Sign in as guest']")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the catalog after signing in", |url| url.ends_with("/catalog")).await;
        wait_for_text(client, "Signed in as user:default/ada").await;

        // Home lists what ada's group owns (ownership from the catalog at sign-in).
        let deadline = Instant::now() + PATIENCE;
        loop {
            client.goto(&format!("{base}/")).await.unwrap();
            let mine = text_of(client, "section[aria-labelledby='mine-heading']").await;
            if mine.contains("alpha") && !mine.contains("beta") {
                break;
            }
            assert!(Instant::now() < deadline, "home never listed ada's entities: {mine}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser.screenshot(&shots.join("home-signed-in.png")).await;

        client.find(Locator::XPath("//button[text()='Sign out']")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the sign-in page after signing out", |url| url.contains("/sign-in")).await;
        client.goto(&format!("{base}/catalog/default/component/alpha")).await.unwrap();
        wait_for_url(client, "sign-in again", |url| url.contains("/sign-in?next=")).await;

        browser.close().await;
        drop(server);
    });
}

/// The issue's "done when": with OIDC and a policy, a newcomer signs in through the browser at
/// a real OpenID provider, sees only what the policy allows, is refused with a clear message
/// when deleting an entity they do not own, and finds the refusal in the audit log.
#[test]
fn signing_in_with_openid_connect_in_the_browser_under_a_permission_policy() {
    let Some(modules) = crate::support::npm_package(crate::oidc::PACKAGE, "oidc-provider/package.json")
    else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let Some(browser) = Browser::start().await else { return };
        let workspace = Workspace::new();
        workspace.write("catalog.yaml", CATALOG);
        workspace.write(
            "policy.yaml",
            "rules:\n  - description: everyone reads the audit log\n    permissions: [portico.audit.read]\n    decision: allow\n  - description: owners change their own entities\n    permissions: [catalog.entity.delete, catalog.entity.refresh]\n    decision:\n      conditions: { rule: IS_ENTITY_OWNER }\n  - description: resources are not for everyone\n    permissions: [catalog.entity.read]\n    decision:\n      conditions:\n        not: { rule: IS_ENTITY_KIND, params: { kinds: [Resource] } }\n  - actions: [read, create]\n    decision: allow\n",
        );
        let port = free_port();
        let provider =
            crate::oidc::Provider::start(&modules, &format!("http://127.0.0.1:{port}/api/auth/oidc/handler/frame"));
        workspace.config(
            port,
            &format!(
                "  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: test-static-token, subject: test }}\nauth:\n  providers:\n    oidc:\n      development:\n        metadataUrl: {}/.well-known/openid-configuration\n        clientId: portico\n        clientSecret: portico-secret\n        signIn:\n          resolvers:\n            - resolver: emailMatchingUserEntityProfileEmail\npermission:\n  enabled: true\n  policy: policy.yaml\n{}",
                provider.issuer,
                catalog_with("./catalog.yaml")
            ),
        );
        let server = serve(&workspace, port, |server| {
            // ada must be in the catalog before the resolver can find her.
            server.wait_for("ada", |server| {
                let url = format!("{}/api/catalog/entities/by-name/user/default/ada", server.base);
                let response = server.client.get(url).bearer_auth("test-static-token").send().ok()?;
                (response.status().as_u16() == 200).then_some(())
            });
        })
        .await;
        let base = server.base.clone();
        let client = &browser.client;
        let shots = screenshots();

        // Sign in: Portico's sign-in page, the provider's login form, back to the catalog.
        {
            client.goto(&format!("{base}/catalog")).await.unwrap();
            wait_for_url(client, "the sign-in page", |url| url.contains("/sign-in?next=%2Fcatalog")).await;
            client
                .find(Locator::XPath("//a[text()='Sign in with OpenID Connect']"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_for_url(client, "the provider's login page", |url| url.starts_with(&provider.issuer)).await;
            let form = client.form(Locator::Css("form")).await.unwrap();
            form.set_by_name("login", "ada").await.unwrap();
            form.set_by_name("password", "correct horse").await.unwrap();
            form.submit().await.unwrap();
        }
        wait_for_url(client, "the catalog", |url| url.ends_with("/catalog")).await;
        wait_for_text(client, "Signed in as user:default/ada").await;
        browser.screenshot(&shots.join("oidc-signed-in.png")).await;

        // Only what the policy allows: no resources, in lists or by address.
        client.goto(&format!("{base}/catalog?kind=resource")).await.unwrap();
        assert!(!body_text(client).await.contains("pets-db"));
        client.goto(&format!("{base}/catalog/default/resource/pets-db")).await.unwrap();
        wait_for_text(client, "not found").await;
        // beta is team-b's: readable, but neither refresh nor unregister is offered.
        client.goto(&format!("{base}/catalog/default/component/beta")).await.unwrap();
        wait_for_text(client, "The beta website").await;
        assert!(client.find(Locator::XPath("//button[text()='Refresh']")).await.is_err());

        // Deleting it as Backstage's frontend would (a token from /refresh, then the API) is
        // refused with a clear message. Scripts run on a JSON page, which has no CSP.
        client.goto(&format!("{base}/api/auth/.well-known/openid-configuration")).await.unwrap();
        let outcome = client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                (async () => {
                  const refresh = await fetch('/api/auth/oidc/refresh?env=development', { headers: { 'X-Requested-With': 'XMLHttpRequest' } });
                  const token = (await refresh.json()).backstageIdentity.token;
                  const auth = { headers: { Authorization: 'Bearer ' + token } };
                  const beta = await (await fetch('/api/catalog/entities/by-name/component/default/beta', auth)).json();
                  const deleted = await fetch('/api/catalog/entities/by-uid/' + beta.metadata.uid, { method: 'DELETE', ...auth });
                  done({ status: deleted.status, body: await deleted.json() });
                })().catch((error) => done({ error: String(error) }));"#,
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(outcome["status"], 403, "{outcome}");
        assert_eq!(outcome["body"]["error"]["name"], "NotAllowedError");
        assert_eq!(
            outcome["body"]["error"]["message"],
            "user:default/ada is not allowed to catalog.entity.delete on component:default/beta"
        );

        // The refusal is in the audit log, in the UI.
        client.goto(&format!("{base}/settings/audit")).await.unwrap();
        let audit = text_of(client, "table").await;
        assert!(audit.contains("catalog.entity.delete") && audit.contains("denied"), "{audit}");
        assert!(audit.contains("auth.sign-in"), "the sign-in is recorded too: {audit}");
        browser.screenshot(&shots.join("oidc-audit.png")).await;

        browser.close().await;
        drop(server);
        drop(provider);
    });
}

#[test]
fn forms_without_the_anti_forgery_token_are_refused() {
    let (_workspace, server) = plain_server();
    let post = |cookie: Option<&str>, body: &str| {
        let mut request = server
            .client
            .post(format!("{}/catalog/default/component/alpha/refresh", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().unwrap().status().as_u16()
    };
    let token = "0123456789abcdef0123456789abcdef";
    assert_eq!(post(None, ""), 403, "no token at all");
    assert_eq!(post(None, &format!("_csrf={token}")), 403, "a token without the cookie");
    assert_eq!(post(Some(&format!("portico-csrf={token}")), "_csrf=0000000000000000000000000000000f"), 403);
    assert_eq!(
        post(Some(&format!("portico-csrf={token}")), &format!("_csrf={token}")),
        200,
        "the page's own form"
    );
    // Pages hand out the cookie with every form.
    let page = server.get_raw("/settings");
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("portico-csrf=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    assert!(page.text().unwrap().contains("name=\"_csrf\""));
}

#[test]
fn running_the_demo_template_from_the_browser() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let Some(browser) = Browser::start().await else { return };
        let workspace = Workspace::new();
        let dir = workspace.path().to_path_buf();
        let server = tokio::task::spawn_blocking(move || {
            let server = Server::start_demo(&dir);
            server.wait_entity("template", "demo-service");
            server.wait_entity("group", "platform-team");
            server
        })
        .await
        .expect("starting the demo");
        let base = server.base.clone();
        let client = &browser.client;
        let shots = screenshots();

        // The template list, then the template's form.
        client.goto(&format!("{base}/create")).await.unwrap();
        let cards = text_of(client, "main").await;
        assert!(cards.contains("New service") && cards.contains("platform-team"), "{cards}");
        browser.screenshot(&shots.join("create.png")).await;
        client.find(Locator::Css("a[aria-label='Choose New service']")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the template form", |url| {
            url.ends_with("/create/templates/default/demo-service")
        })
        .await;

        // A name the schema refuses and no owner: the page comes back with both problems.
        client.find(Locator::Css("#f-name")).await.unwrap().send_keys("Not Valid").await.unwrap();
        client.find(Locator::Css("button[value='next']")).await.unwrap().click().await.unwrap();
        wait_for_text(client, "This field is required.").await;
        let errors = text_of(client, "form.template-form").await;
        assert!(errors.contains("does not match"), "{errors}");

        // Fixed: on to the second page (its default is filled in), then the review.
        let name = client.find(Locator::Css("#f-name")).await.unwrap();
        name.clear().await.unwrap();
        name.send_keys("parcel-radar").await.unwrap();
        client
            .find(Locator::Css("#f-owner"))
            .await
            .unwrap()
            .send_keys("group:default/platform-team")
            .await
            .unwrap();
        client.find(Locator::Css("button[value='next']")).await.unwrap().click().await.unwrap();
        wait_for_text(client, "Lifecycle").await;
        let lifecycle = text_of(client, "#f-lifecycle option[selected]").await;
        assert_eq!(lifecycle, "experimental");
        client.find(Locator::Css("button[value='next']")).await.unwrap().click().await.unwrap();
        wait_for_text(client, "Review").await;
        let review = text_of(client, "table.review").await;
        assert!(
            review.contains("parcel-radar") && review.contains("group:default/platform-team"),
            "{review}"
        );
        browser.screenshot(&shots.join("create-review.png")).await;

        // Create: the task page follows the run until it completes.
        client.find(Locator::Css("button[value='create']")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the task page", |url| url.contains("/create/tasks/")).await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = text_of(client, "[data-task-status]").await;
            if status == "completed" {
                break;
            }
            assert!(
                status != "failed" && Instant::now() < deadline,
                "task {status}: {}",
                body_text(client).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let steps = text_of(client, "ol.task-steps").await;
        assert_eq!(steps.matches("completed").count(), 3, "{steps}");
        let log = text_of(client, "pre.task-log").await;
        assert!(
            log.contains("Starting up task with 3 steps")
                && log.contains("Finished step Register in the catalog"),
            "{log}"
        );
        browser.screenshot(&shots.join("create-task.png")).await;

        // The output links to the new component in the catalog.
        client.find(Locator::LinkText("Open in catalog")).await.unwrap().click().await.unwrap();
        wait_for_url(client, "the new component", |url| {
            url.ends_with("/catalog/default/component/parcel-radar")
        })
        .await;
        wait_for_text(client, "platform-team").await;
        let page = body_text(client).await;
        assert!(page.contains("parcel-radar"), "{page}");

        // The task list shows the run.
        client.goto(&format!("{base}/create/tasks")).await.unwrap();
        let tasks = text_of(client, "table").await;
        assert!(tasks.contains("template:default/demo-service") && tasks.contains("completed"), "{tasks}");
        drop(server);
    });
}

#[test]
fn a_running_task_page_follows_the_log_without_reloading() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let Some(browser) = Browser::start().await else { return };
        let workspace = Workspace::new();
        workspace.write(
            "slow.yaml",
            "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: slow\nspec:\n  type: service\n  steps:\n    - id: first\n      name: Say hello\n      action: debug:log\n      input: { message: hello }\n    - id: wait\n      name: Wait a moment\n      action: debug:wait\n      input: { seconds: 6 }\n    - id: last\n      name: Say goodbye\n      action: debug:log\n      input: { message: goodbye }\n",
        );
        let port = free_port();
        workspace.config(port, &catalog_with("./slow.yaml"));
        let server = serve(&workspace, port, |server| {
            server.wait_entity("template", "slow");
        })
        .await;
        let base = server.base.clone();
        let client = &browser.client;
        let id = {
            let base = base.clone();
            tokio::task::spawn_blocking(move || {
                let response = reqwest::blocking::Client::new()
                    .post(format!("{base}/api/scaffolder/v2/tasks"))
                    .json(&serde_json::json!({ "templateRef": "slow", "values": {} }))
                    .send()
                    .expect("create");
                response.json::<serde_json::Value>().expect("json")["id"].as_str().expect("id").to_owned()
            })
            .await
            .unwrap()
        };
        client.goto(&format!("{base}/create/tasks/{id}")).await.unwrap();
        // Mark this page; a reload would lose the mark.
        client.execute("window.__sameDocument = true; return true", vec![]).await.unwrap();
        let deadline = Instant::now() + PATIENCE;
        while !text_of(client, "pre.task-log").await.contains("Beginning step Wait a moment") {
            assert!(Instant::now() < deadline, "the log never showed the wait step");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let same = client.execute("return window.__sameDocument === true", vec![]).await.unwrap();
        assert_eq!(same, serde_json::json!(true), "the log grew without a reload");
        let status = client.find(Locator::Css("[data-step-id='wait'] .step-status")).await.unwrap().text().await.unwrap();
        assert_eq!(status, "processing");
        // When the run ends the page reloads once to show the result.
        let deadline = Instant::now() + PATIENCE;
        while text_of(client, "[data-task-status]").await != "completed" {
            assert!(Instant::now() < deadline, "the task page never showed completion");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(text_of(client, "pre.task-log").await.contains("Finished step Say goodbye"));
        drop(server);
    });
}

#[test]
fn a_secret_field_crosses_the_forms_pages_sealed_and_reaches_the_run() {
    let workspace = Workspace::new();
    let template = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: with-secret
spec:
  type: service
  parameters:
    - title: Credentials
      properties:
        token: { type: string, ui:field: Secret }
    - title: Name
      properties:
        name: { type: string }
  steps:
    - id: check
      if: ${{ secrets.token == 'hunter2-very-secret' }}
      action: debug:log
      input: { message: the secret arrived }
"#;
    workspace.write("catalog.yaml", &format!("{CATALOG}---\n{template}"));
    let port = free_port();
    workspace.config(port, &catalog_with("./catalog.yaml"));
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "with-secret");
    let csrf = "0123456789abcdef0123456789abcdef";
    let hidden = |page: &str, name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).map(|at| at + marker.len()).expect(name);
        page[start..].split('"').next().unwrap_or("").replace("&quot;", "\"").replace("&amp;", "&")
    };
    let submit = |fields: &[(&str, &str)]| {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let response = server
            .client
            .post(format!("{}/create/templates/default/with-secret", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("portico-csrf={csrf}"))
            .body(body)
            .send()
            .expect("POST");
        (response.url().path().to_owned(), response.text().unwrap_or_default())
    };
    let (_, second) = submit(&[
        ("_csrf", csrf),
        ("_values", "{}"),
        ("_page", "0"),
        ("_action", "next"),
        ("f.token", "hunter2-very-secret"),
    ]);
    assert!(second.contains("Name"), "on to the second page");
    assert!(!second.contains("hunter2"), "the secret is not in the page in the clear");
    let sealed = hidden(&second, "_secrets");
    assert!(!sealed.is_empty());
    let values = hidden(&second, "_values");
    let (_, review) = submit(&[
        ("_csrf", csrf),
        ("_values", &values),
        ("_secrets", &sealed),
        ("_page", "1"),
        ("_action", "next"),
        ("name", "svc"),
    ]);
    assert!(!review.contains("hunter2"), "nor in the review");
    let resealed = hidden(&review, "_secrets");
    let (task_page, _) = submit(&[
        ("_csrf", csrf),
        ("_values", &hidden(&review, "_values")),
        ("_secrets", &resealed),
        ("_page", "2"),
        ("_action", "create"),
    ]);
    let task_id = task_page.rsplit('/').next().expect("task id").to_owned();
    let events = server.wait_for("the run to end", |server| {
        let (_, events) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}/events"));
        let done = events.as_array()?.iter().any(|event| event["type"] == "completion");
        done.then(|| events.to_string())
    });
    assert!(events.contains("the secret arrived"), "{events}");
    assert!(!events.contains("hunter2"), "{events}");
}
