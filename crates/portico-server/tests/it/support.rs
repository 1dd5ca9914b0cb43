//! Test support: a workspace directory, the server process, an HTTP client, and a tiny static
//! file server for `url` locations.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long to wait for something that should happen within a second or two. Generous so a
/// loaded CI machine does not flake; this is a deadline for waiting, not a performance check.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A temporary directory holding config and catalog files.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Writes `app-config.yaml` with the given catalog section (YAML), listening on a free port
    /// and storing the database under `./db`.
    pub fn config(&self, port: u16, extra: &str) -> PathBuf {
        self.config_on(&Database::Sqlite, port, extra)
    }

    /// Like `config`, on the given database.
    pub fn config_on(&self, database: &Database, port: u16, extra: &str) -> PathBuf {
        let database = match database {
            Database::Sqlite => {
                "    client: better-sqlite3\n    connection:\n      directory: ./db\n".to_owned()
            }
            Database::Postgres(url) => format!("    client: pg\n    connection: {url}\n"),
        };
        let text = format!(
            "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  database:\n{database}{extra}"
        );
        self.write("app-config.yaml", &text)
    }
}

/// The database a test server runs on.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite,
    Postgres(String),
}

impl Database {
    /// A fresh PostgreSQL database, or `None` (test skipped, reason printed) where PostgreSQL is
    /// not installed and not required.
    pub fn postgres() -> Option<Database> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(portico_testing::fresh_database()).map(Database::Postgres)
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident => $body:path;)*) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                $body(&$crate::support::Database::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(database) = $crate::support::Database::postgres() {
                    $body(&database);
                }
            })*
        }
    };
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A running `portico serve`. Killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub client: reqwest::blocking::Client,
    pub log: PathBuf,
}

impl Server {
    /// Starts `portico serve` in `dir` with the given arguments and waits for readiness.
    pub fn start(dir: &Path, port: u16, args: &[&str]) -> Server {
        Server::start_with_env(dir, port, args, &[])
    }

    /// Like `start`, with extra environment variables (e.g. `APP_CONFIG_*` overrides).
    pub fn start_with_env(dir: &Path, port: u16, args: &[&str], env: &[(&str, String)]) -> Server {
        let log = dir.join(format!("server-{}.log", Instant::now().elapsed().as_nanos()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env("PORTICO_LOG", "info,sqlx=warn")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start portico");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            log,
        };
        server.wait_ready();
        server
    }

    /// Starts `portico serve` without configuration (the built-in demo) in `dir`, moved off
    /// its default port 7007 with an `APP_CONFIG_*` override so tests can run beside a portal.
    pub fn start_demo(dir: &Path) -> Server {
        let port = free_port();
        Server::start_with_env(dir, port, &[], &[("APP_CONFIG_backend_listen_port", port.to_string())])
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(response) =
                self.client.get(format!("{}/.backstage/health/v1/readiness", self.base)).send()
            {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server did not become ready; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(format!("{}{path}", self.base)).send().expect("GET");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn get_raw(&self, path: &str) -> reqwest::blocking::Response {
        self.client.get(format!("{}{path}", self.base)).send().expect("GET")
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.base)).json(body).send().expect("POST");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn delete(&self, path: &str) -> u16 {
        self.client.delete(format!("{}{path}", self.base)).send().expect("DELETE").status().as_u16()
    }

    /// Polls `probe` until it returns `Some`, failing after `PATIENCE`.
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut(&Server) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the entity exists and returns it.
    pub fn wait_entity(&self, kind: &str, name: &str) -> Value {
        self.wait_for(&format!("{kind} {name}"), |server| {
            let (status, body) = server.get(&format!("/api/catalog/entities/by-name/{kind}/default/{name}"));
            (status == 200).then_some(body)
        })
    }

    /// Waits until the engine has nothing left to do: two equal snapshots of all entities.
    pub fn settle(&self) {
        let mut last = String::new();
        self.wait_for("the catalog to settle", |server| {
            std::thread::sleep(Duration::from_millis(150));
            let (_, body) = server.get("/api/catalog/entities");
            let text = body.to_string();
            let settled = text == last;
            last = text;
            settled.then_some(())
        });
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "server did not stop; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Serves the files of a directory over HTTP on loopback, for `url` locations.
pub struct FileServer {
    pub port: u16,
}

impl FileServer {
    pub fn start(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let root = Arc::new(root.to_path_buf());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || serve_file(stream, &root));
            }
        });
        FileServer { port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

fn serve_file(mut stream: TcpStream, root: &Path) {
    let mut buffer = [0u8; 8192];
    let Ok(read) = stream.read(&mut buffer) else { return };
    let request = String::from_utf8_lossy(&buffer[..read]);
    let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
    let response = match std::fs::read(root.join(&path)) {
        Ok(body) if !path.contains("..") => {
            let mut response =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                    .into_bytes();
            response.extend(body);
            response
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&response);
}

/// A catalog section allowing every kind from the given file location.
pub fn catalog_with(target: &str) -> String {
    format!(
        "catalog:\n  rules:\n    - allow: [Component, System, API, Resource, Location, Domain, Group, User, Template]\n  locations:\n    - type: file\n      target: {target}\n"
    )
}

/// Installs an npm package (`name@version`) once into `~/.cache/portico-node/<spec>` and
/// evaluates to its `node_modules` (for `NODE_PATH`); `None`, with the reason printed, where Node
/// or the package cannot be had, unless `PORTICO_TEST_REQUIRE` names `node`, which fails instead.
/// `probe` is a file under `node_modules` that exists once installed.
pub fn npm_package(spec: &str, probe: &str) -> Option<PathBuf> {
    let unavailable = |reason: String| -> Option<PathBuf> {
        if portico_testing::require("node") {
            panic!("node is required by PORTICO_TEST_REQUIRE but not usable: {reason}");
        }
        eprintln!("skipping: {spec} for Node.js not available ({reason})");
        None
    };
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return unavailable("no `node` on PATH".into());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let prefix = home.join(".cache").join("portico-node").join(spec.replace(['@', '/'], "_"));
    let modules = prefix.join("node_modules");
    if modules.join(probe).exists() {
        return Some(modules);
    }
    std::fs::create_dir_all(&prefix).ok()?;
    let output = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(&prefix)
        .arg(spec)
        .output();
    match output {
        Ok(output) if output.status.success() => Some(modules),
        Ok(output) => unavailable(format!("npm install failed: {}", String::from_utf8_lossy(&output.stderr))),
        Err(error) => unavailable(format!("cannot run npm: {error}")),
    }
}

/// Reads one HTTP/1.1 request from a stand-in server's connection: the head (request line and
/// headers) and the body, complete per `Content-Length`. `None` when the client hung up first.
pub fn read_http_request(stream: &mut std::net::TcpStream) -> Option<(String, String)> {
    use std::io::Read;
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        request.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&request).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned())
                })
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some((head.to_owned(), body.to_owned()));
            }
        }
    }
}
