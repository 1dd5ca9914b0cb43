//! Sign-in through a real OpenID provider: panva's `oidc-provider` (OpenID Certified, from the
//! npm registry) started on loopback by the test, driven like a browser from Portico's sign-in
//! page through the provider's login form and back, in the redirect flow (the UI's) and the
//! popup flow (Backstage's frontend).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::{catalog_with, free_port, npm_package, Server, Workspace};

pub const PACKAGE: &str = "oidc-provider@9.13.3";

const CATALOG: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: { name: team-a }\nspec: { type: team, children: [] }\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: { name: jane }\nspec: { memberOf: [team-a], profile: { email: jane@example.com } }\n";

/// The provider process, killed on drop.
pub struct Provider {
    child: Child,
    pub issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider for the client `portico` (secret `portico-secret`) calling back to
    /// `redirect_uri`; its login form takes any login name and password.
    pub fn start(modules: &Path, redirect_uri: &str) -> Provider {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/oidc/provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .arg(redirect_uri)
            .env("NODE_PATH", modules)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the OpenID provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the provider's first line");
        assert_eq!(line.trim(), "ready", "the OpenID provider did not start");
        Provider { child, issuer: format!("http://127.0.0.1:{port}") }
    }
}

/// A browser's cookie jar for one host (paths ignored: the test talks to one app per jar).
#[derive(Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn take(&mut self, response: &reqwest::blocking::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("cookie");
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attributes.contains("Max-Age=0") || value.is_empty() {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn get(client: &reqwest::blocking::Client, jar: &mut Jar, url: &str) -> reqwest::blocking::Response {
    let response = client.get(url).header("cookie", jar.header()).send().expect("GET");
    jar.take(&response);
    response
}

/// `GET /api/auth/<provider>/refresh` as Backstage's frontend sends it, with the jar's cookies.
fn refresh(
    browser: &reqwest::blocking::Client,
    server: &Server,
    jar: &Jar,
    provider: &str,
) -> reqwest::blocking::Response {
    browser
        .get(format!("{}/api/auth/{provider}/refresh?env=development", server.base))
        .header("cookie", jar.header())
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .expect("refresh")
}

fn location(response: &reqwest::blocking::Response) -> String {
    response.headers().get("location").expect("a redirect").to_str().expect("text").to_owned()
}

/// From the authorization URL through the provider's login form to the callback URL at
/// Portico, as a person at a browser would go, signing in as `login`.
fn through_the_provider(provider: &Provider, authorize: &str, login: &str) -> String {
    let client = client();
    let mut jar = Jar::default();
    let response = get(&client, &mut jar, authorize);
    assert_eq!(response.status().as_u16(), 303, "the provider asks who is signing in");
    let interaction = format!("{}{}", provider.issuer, location(&response));
    let form = get(&client, &mut jar, &interaction).text().expect("login page");
    let action = form
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form")
        .to_owned();
    let response = client
        .post(&action)
        .header("cookie", jar.header())
        .form(&[("prompt", "login"), ("login", login), ("password", "any")])
        .send()
        .expect("log in");
    jar.take(&response);
    let resume = location(&response);
    let response = get(&client, &mut jar, &resume);
    assert_eq!(response.status().as_u16(), 303);
    location(&response)
}

const RESOLVERS: &str = "            - resolver: emailMatchingUserEntityProfileEmail\n            - resolver: emailLocalPartMatchingUserEntityName\n              allowedDomains: [example.com]\n";

fn setup() -> Option<(Workspace, Server, Provider)> {
    setup_with(RESOLVERS)
}

/// A Portico signing in through a fresh OpenID provider, with these `signIn.resolvers` items.
fn setup_with(resolvers: &str) -> Option<(Workspace, Server, Provider)> {
    let modules = npm_package(PACKAGE, "oidc-provider/package.json")?;
    let workspace = Workspace::new();
    let port = free_port();
    let provider = Provider::start(&modules, &format!("http://127.0.0.1:{port}/api/auth/oidc/handler/frame"));
    workspace.write("catalog.yaml", CATALOG);
    workspace.config(
        port,
        &format!(
            "auth:\n  providers:\n    oidc:\n      development:\n        metadataUrl: {}/.well-known/openid-configuration\n        clientId: portico\n        clientSecret: portico-secret\n        signIn:\n          resolvers:\n{resolvers}{}",
            provider.issuer,
            catalog_with("./catalog.yaml")
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    Some((workspace, server, provider))
}

#[test]
fn signing_in_through_a_real_openid_provider_with_pkce() {
    let Some((_workspace, server, provider)) = setup() else { return };
    let browser = client();
    let mut jar = Jar::default();
    // jane must be in the catalog before the resolver can find her.
    server.wait_for("jane", |server| {
        let path = "/api/catalog/entities/by-name/user/default/jane";
        let response = server.client.get(format!("{}{path}", server.base)).send().ok()?;
        (response.status().as_u16() == 401).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));

    // The sign-in page offers the provider; its form starts the redirect flow.
    let page =
        get(&browser, &mut jar, &format!("{}/sign-in?next=/catalog", server.base)).text().expect("page");
    assert!(page.contains("Sign in with OpenID Connect"), "{page}");
    assert!(
        page.contains("href=\"/api/auth/oidc/start?env=development&amp;flow=redirect&amp;redirectUrl="),
        "{page}"
    );
    let done = format!("{}/sign-in/done?next=%2Fcatalog", server.base);
    let start = format!(
        "{}/api/auth/oidc/start?env=development&flow=redirect&redirectUrl={}",
        server.base,
        url::form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
    );
    let response = get(&browser, &mut jar, &start);
    assert_eq!(response.status().as_u16(), 302);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("text").to_owned())
        .collect();
    assert!(
        cookies.iter().any(|cookie| cookie.starts_with("oidc-nonce=")
            && cookie.contains("Path=/api/auth/oidc/handler")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")),
        "{cookies:?}"
    );
    let authorize = location(&response);
    assert!(authorize.starts_with(&format!("{}/auth?", provider.issuer)), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("code_challenge="));

    // Through the provider's login form and back: the UI session is open.
    let callback = through_the_provider(&provider, &authorize, "jane");
    assert!(
        callback.starts_with(&format!("{}/api/auth/oidc/handler/frame?code=", server.base)),
        "{callback}"
    );
    let response = get(&browser, &mut jar, &callback);
    assert_eq!(response.status().as_u16(), 302, "{}", response.text().unwrap_or_default());
    assert_eq!(location(&response), done);
    assert!(jar.0.contains_key("backstage-auth") && jar.0.contains_key("oidc-refresh-token"));
    let response = get(&browser, &mut jar, &done);
    assert_eq!(location(&response), "/catalog");
    let page = get(&browser, &mut jar, &format!("{}/catalog", server.base)).text().expect("page");
    assert!(page.contains("Signed in as") && page.contains("user:default/jane"), "{page}");

    // Backstage's frontend refreshes from the refresh cookie and gets a Backstage token.
    let refreshed = refresh(&browser, &server, &jar, "oidc");
    assert_eq!(refreshed.status().as_u16(), 200);
    let body: Value = refreshed.json().expect("json");
    assert_eq!(body["profile"]["email"], "jane@example.com");
    assert_eq!(body["backstageIdentity"]["identity"]["userEntityRef"], "user:default/jane");
    let ownership = body["backstageIdentity"]["identity"]["ownershipEntityRefs"].to_string();
    assert!(ownership.contains("group:default/team-a"), "{ownership}");
    assert!(body["providerInfo"]["idToken"].is_string() && body["providerInfo"]["accessToken"].is_string());
    let token = body["backstageIdentity"]["token"].as_str().expect("token");
    let api = server
        .client
        .get(format!("{}/api/catalog/entities/by-name/user/default/jane", server.base))
        .bearer_auth(token)
        .send()
        .expect("GET");
    assert_eq!(api.status().as_u16(), 200, "the token opens the API");
    let without_header = browser
        .get(format!("{}/api/auth/oidc/refresh", server.base))
        .header("cookie", jar.header())
        .send()
        .expect("refresh");
    assert_eq!(without_header.status().as_u16(), 401, "refresh needs X-Requested-With");

    // The popup flow answers with a page that posts the result to the app's origin only.
    let mut popup_jar = Jar::default();
    let response = get(
        &browser,
        &mut popup_jar,
        &format!("{}/api/auth/oidc/start?env=development&origin={}", server.base, server.base),
    );
    let callback = through_the_provider(&provider, &location(&response), "jane");
    let response = get(&browser, &mut popup_jar, &callback);
    assert_eq!(response.status().as_u16(), 200);
    let csp = response.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.starts_with("script-src 'sha256-"), "{csp}");
    assert_eq!(response.headers()["x-frame-options"], "sameorigin");
    let page = response.text().expect("page");
    // The result is URI-encoded inside the script, never raw JSON.
    assert!(page.contains("authorization%5Fresponse") && page.contains("postMessage"), "{page}");
    assert!(!page.contains("\"backstageIdentity\""), "{page}");

    // Logging out clears the provider's cookies.
    let response = browser
        .post(format!("{}/api/auth/oidc/logout", server.base))
        .header("cookie", jar.header())
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .expect("logout");
    assert_eq!(response.status().as_u16(), 200);
    jar.take(&response);
    assert!(!jar.0.contains_key("oidc-refresh-token"));
}

#[test]
fn the_sign_in_flow_refuses_forgery_open_redirects_and_unknown_people() {
    let Some((_workspace, server, provider)) = setup() else { return };
    let browser = client();
    std::thread::sleep(std::time::Duration::from_millis(300));

    // No env, a foreign origin, a redirect off site: refused before the provider is involved.
    let status = |url: String| browser.get(url).send().expect("GET").status().as_u16();
    assert_eq!(status(format!("{}/api/auth/oidc/start", server.base)), 400);
    assert_eq!(
        status(format!("{}/api/auth/oidc/start?env=development&origin=https://evil.example", server.base)),
        403
    );
    assert_eq!(
        status(format!(
            "{}/api/auth/oidc/start?env=development&flow=redirect&redirectUrl=https%3A%2F%2Fevil.example%2F",
            server.base
        )),
        403
    );

    // A callback whose state does not match the browser's nonce cookie is refused.
    let mut jar = Jar::default();
    let done = format!("{}/sign-in/done?next=%2F", server.base);
    let start = format!(
        "{}/api/auth/oidc/start?env=development&flow=redirect&redirectUrl={}",
        server.base,
        url::form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
    );
    let response = get(&browser, &mut jar, &start);
    let callback = through_the_provider(&provider, &location(&response), "jane");
    let mut forged = Jar::default();
    forged.0.insert("oidc-nonce".into(), "bm90IHRoZSBub25jZQ==".into());
    forged.0.insert("oidc-pkce".into(), jar.0["oidc-pkce"].clone());
    let response = get(&browser, &mut forged, &callback);
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().expect("body").contains("Invalid nonce"));

    // Someone the provider knows but the catalog does not: back to the sign-in page, told why.
    let mut jar = Jar::default();
    let response = get(&browser, &mut jar, &start);
    let callback = through_the_provider(&provider, &location(&response), "mallory");
    let response = get(&browser, &mut jar, &callback);
    assert_eq!(response.status().as_u16(), 302);
    let back = location(&response);
    assert!(back.starts_with(&done) && back.contains("error="), "{back}");
    assert!(!jar.0.contains_key("backstage-auth"));
    let response = get(&browser, &mut jar, &back);
    assert_eq!(response.status().as_u16(), 401);
    let page = response.text().expect("page");
    assert!(page.contains("Sign-in failed") && page.contains("unable to resolve user identity"), "{page}");
}

/// GitHub cannot be reached from here, so its side of the OAuth app flow is played by a
/// stand-in answering as GitHub's documented endpoints do (an Enterprise instance's paths):
/// `/login/oauth/authorize` sends the browser back with a code, `/login/oauth/access_token`
/// checks the client secret and the PKCE verifier, `/api/v3/user` names the user.
struct GithubStandIn {
    port: u16,
}

impl GithubStandIn {
    fn start() -> GithubStandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let challenge = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                github_answer(stream, &challenge);
            }
        });
        GithubStandIn { port }
    }
}

fn github_answer(mut stream: std::net::TcpStream, challenge: &std::sync::Mutex<String>) {
    use base64::Engine as _;
    use std::io::Write;
    let Some((head, body)) = crate::support::read_http_request(&mut stream) else { return };
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let url = url::Url::parse(&format!("http://stand-in{target}")).expect("url");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let json = |body: String| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    };
    let response = match url.path() {
        "/login/oauth/authorize" => {
            *challenge.lock().expect("lock") = query.get("code_challenge").cloned().unwrap_or_default();
            let back = format!("{}?code=gh-code&state={}", query["redirect_uri"], query["state"]);
            format!("HTTP/1.1 302 Found\r\nLocation: {back}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        "/login/oauth/access_token" => {
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
            let good = form.get("client_secret").map(String::as_str) == Some("gh-secret")
                && form.get("code").map(String::as_str) == Some("gh-code")
                && *challenge.lock().expect("lock") == expected;
            json(if good {
                r#"{"access_token":"gho_standin","token_type":"bearer","scope":"read:user"}"#.to_owned()
            } else {
                r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#.to_owned()
            })
        }
        "/api/v3/user" if head.to_ascii_lowercase().contains("authorization: bearer gho_standin") => json(
            r#"{"login":"jane","id":4242,"name":"Jane","email":null,"avatar_url":"https://avatars.example/jane"}"#.to_owned(),
        ),
        _ => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
    };
    let _ = stream.write_all(response.as_bytes());
}

/// A Portico signing in through the GitHub stand-in with these `signIn.resolvers` items.
fn github_setup(resolvers: &str) -> (GithubStandIn, Workspace, Server) {
    let github = GithubStandIn::start();
    let workspace = Workspace::new();
    let port = free_port();
    workspace.write("catalog.yaml", CATALOG);
    workspace.config(
        port,
        &format!(
            "auth:\n  providers:\n    github:\n      development:\n        clientId: gh-client\n        clientSecret: gh-secret\n        enterpriseInstanceUrl: http://127.0.0.1:{}\n        signIn:\n          resolvers:\n{resolvers}{}",
            github.port,
            catalog_with("./catalog.yaml")
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    (github, workspace, server)
}

/// `/start` of the redirect flow back to `/sign-in/done?next=/`: the landing URL and the
/// authorization URL Portico sends the browser to.
fn redirect_start(
    browser: &reqwest::blocking::Client,
    jar: &mut Jar,
    server: &Server,
    provider: &str,
) -> (String, String) {
    let done = format!("{}/sign-in/done?next=%2F", server.base);
    let start = format!(
        "{}/api/auth/{provider}/start?env=development&flow=redirect&redirectUrl={}",
        server.base,
        url::form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
    );
    let response = get(browser, jar, &start);
    (done, location(&response))
}

#[test]
fn github_sign_in_resolves_the_login_to_a_catalog_user() {
    let (github, _workspace, server) =
        github_setup("            - resolver: usernameMatchingUserEntityName\n");
    let browser = client();
    let mut jar = Jar::default();
    let page = get(&browser, &mut jar, &format!("{}/sign-in", server.base)).text().expect("page");
    assert!(page.contains("Sign in with GitHub"), "{page}");
    let (done, authorize) = redirect_start(&browser, &mut jar, &server, "github");
    assert!(authorize.starts_with(&format!("http://127.0.0.1:{}/login/oauth/authorize?", github.port)));
    assert!(authorize.contains("scope=read%3Auser"), "{authorize}");
    let callback = location(&browser.get(&authorize).send().expect("authorize"));
    let response = get(&browser, &mut jar, &callback);
    assert_eq!(response.status().as_u16(), 302, "{}", response.text().unwrap_or_default());
    assert_eq!(location(&response), done);
    assert!(jar.0.contains_key("backstage-auth"));
    let refreshed: Value = refresh(&browser, &server, &jar, "github").json().expect("json");
    assert_eq!(
        refreshed["backstageIdentity"]["identity"]["userEntityRef"], "user:default/jane",
        "{refreshed}"
    );
    assert_eq!(refreshed["profile"]["picture"], "https://avatars.example/jane");
}

#[test]
fn a_resolver_may_sign_in_people_missing_from_the_catalog_when_told_to() {
    let resolvers = "            - resolver: usernameMatchingUserEntityName\n              dangerouslyAllowSignInWithoutUserInCatalog: true\n";
    let Some((_workspace, server, provider)) = setup_with(resolvers) else { return };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let browser = client();
    let mut jar = Jar::default();
    let start = format!("{}/api/auth/oidc/start?env=development&origin={}", server.base, server.base);
    let response = get(&browser, &mut jar, &start);
    let callback = through_the_provider(&provider, &location(&response), "mallory");
    let page = get(&browser, &mut jar, &callback).text().expect("page");
    // The popup page carries the identity, URI-encoded: user:default/mallory, owning itself.
    assert!(page.contains("user%3Adefault%2Fmallory"), "{page}");
    let refreshed: Value = refresh(&browser, &server, &jar, "oidc").json().expect("json");
    assert_eq!(
        refreshed["backstageIdentity"]["identity"]["ownershipEntityRefs"],
        serde_json::json!(["user:default/mallory"])
    );
}

/// The fallback of `dangerouslyAllowSignInWithoutUserInCatalog` never lands on an existing
/// catalog user: a GitHub account whose id no User carries, but whose login names one (a
/// recycled login, say), is refused rather than signed in as that user.
#[test]
fn a_fallback_sign_in_never_takes_an_existing_users_identity() {
    let (_github, _workspace, server) = github_setup(
        "            - resolver: userIdMatchingUserEntityAnnotation\n              dangerouslyAllowSignInWithoutUserInCatalog: true\n",
    );
    let browser = client();
    let mut jar = Jar::default();
    let (_, authorize) = redirect_start(&browser, &mut jar, &server, "github");
    let callback = location(&browser.get(authorize).send().expect("authorize"));
    let response = get(&browser, &mut jar, &callback);
    let back = location(&response);
    assert!(back.contains("error=") && back.contains("exists+in+the+catalog"), "{back}");
    assert!(!jar.0.contains_key("backstage-auth"));
}
