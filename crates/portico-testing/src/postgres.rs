//! A real PostgreSQL server for tests, one per test process.
//!
//! # Which server
//!
//! When `PORTICO_TEST_POSTGRES_URL` is set, that server is used (CI, or a developer's own server);
//! the URL must name a user allowed to `CREATE DATABASE`. Otherwise the first call starts a
//! private server from the PostgreSQL binaries found on `PATH` or under
//! `/usr/lib/postgresql/<version>/bin` (highest version wins): `initdb` (trust authentication,
//! UTF-8, C locale, no fsync) into a fresh temporary directory, then `postgres` listening on
//! 127.0.0.1 on a free port, with its unix socket in the same directory and durability switched
//! off (`fsync`, `synchronous_commit`, `full_page_writes`). PostgreSQL refuses to run as root, so
//! as root both run as the `postgres` user through `runuser`.
//!
//! Every test then gets its own database (`CREATE DATABASE test_<n>`), so tests run in parallel
//! without seeing each other's rows.
//!
//! # Stopping the server
//!
//! Unsafe code is forbidden, so there is no `atexit` hook, and statics are never dropped. The
//! server is therefore tied to the test process through a pipe: `postgres` runs under a small
//! shell script whose standard input is a pipe whose only write end lives in this process (held
//! by the global `Child`; Rust opens it close-on-exec, so no other child inherits it). A
//! background watchdog in the script blocks reading that pipe; when the test process exits for
//! any reason, including `SIGKILL` or a panic, the kernel closes the write end, the read sees
//! end-of-file, and the watchdog sends `SIGINT` (fast shutdown) to `postgres`. Once it has
//! stopped cleanly the script removes the whole temporary directory. A server that failed to
//! start keeps its directory and `postgres.log` so the failure can be read.
//!
//! Starting takes about a second on a small machine, almost all of it `initdb`; each database
//! after that takes a few milliseconds. The startup time is printed once per process.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

const COMPONENT: &str = "postgres";
const URL_VARIABLE: &str = "PORTICO_TEST_POSTGRES_URL";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;

/// Runs `postgres` in the background and a watchdog that stops it when our stdin reaches end of
/// file (the test process has exited), then removes the directory after a clean stop.
/// Arguments: `$1` the `postgres` binary, `$2` the directory, `$3` the port.
const SUPERVISOR: &str = r#"
exec 3<&0
"$1" -D "$2/data" -p "$3" -h 127.0.0.1 -k "$2" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=300 -c shared_buffers=32MB \
    </dev/null >>"$2/postgres.log" 2>&1 3<&- &
pg=$!
( cat <&3 >/dev/null; kill -INT "$pg" 2>/dev/null ) &
watchdog=$!
exec 3<&-
wait "$pg"
status=$?
kill "$watchdog" 2>/dev/null
if [ "$status" -eq 0 ]; then rm -rf "$2"; fi
exit "$status"
"#;

/// The PostgreSQL server this test process uses: started on first use, shared by every test.
#[derive(Debug)]
pub struct PostgresServer {
    /// Connection string for the maintenance database, used to create test databases.
    admin_url: String,
    /// `None` when the server comes from `PORTICO_TEST_POSTGRES_URL`.
    owned: Option<OwnedServer>,
    next_database: AtomicU64,
}

#[derive(Debug)]
struct OwnedServer {
    port: u16,
    dir: PathBuf,
    /// Holds the write end of the supervisor's stdin; see the module docs.
    _supervisor: Child,
}

/// Why there is no server.
#[derive(Debug)]
enum StartError {
    /// The machine lacks PostgreSQL: skip unless required.
    Unavailable(String),
    /// PostgreSQL is there but did not work: always a failure.
    Failed(String),
}

static SERVER: OnceLock<Result<PostgresServer, StartError>> = OnceLock::new();

/// Creates a new, empty database and returns its URL
/// (`postgres://postgres@127.0.0.1:<port>/test_<n>` for the private server).
///
/// Evaluates to `None`, after printing `skipping: PostgreSQL not available (<reason>)`, when the
/// machine has no PostgreSQL and `PORTICO_TEST_REQUIRE` does not name `postgres`. Panics when it
/// does, and whenever a server exists but does not work.
pub async fn fresh_database() -> Option<String> {
    let server = PostgresServer::shared()?;
    match server.create_database().await {
        Ok(url) => Some(url),
        Err(error) => panic!("creating a test database on {} failed: {error}", server.admin_url),
    }
}

impl PostgresServer {
    /// The server for this process, starting it on first use. `None` (after printing why) when
    /// PostgreSQL is unavailable and not required; panics when it is required or broken.
    pub fn shared() -> Option<&'static PostgresServer> {
        match SERVER.get_or_init(PostgresServer::start) {
            Ok(server) => Some(server),
            Err(StartError::Unavailable(reason)) => crate::unavailable(COMPONENT, reason),
            Err(StartError::Failed(reason)) => panic!("PostgreSQL for tests failed to start: {reason}"),
        }
    }

    /// The URL of the maintenance database (`postgres`), for tests that manage databases.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The port of the private server; `None` when using `PORTICO_TEST_POSTGRES_URL`.
    pub fn port(&self) -> Option<u16> {
        self.owned.as_ref().map(|owned| owned.port)
    }

    /// The private server's directory (data directory and `postgres.log`).
    pub fn dir(&self) -> Option<&Path> {
        self.owned.as_ref().map(|owned| owned.dir.as_path())
    }

    /// Creates a uniquely named empty database and returns its URL.
    pub async fn create_database(&self) -> Result<String, sqlx::Error> {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let mut conn = admin_options(&self.admin_url)?.connect().await?;
        let name = if self.owned.is_some() {
            format!("test_{n}")
        } else {
            // A shared server outlives us: qualify by process, and clear what a previous process
            // with the same id left behind.
            let name = format!("test_{}_{n}", std::process::id());
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn).await?;
            name
        };
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        conn.close().await?;
        Ok(database_url(&self.admin_url, &name))
    }

    fn start() -> Result<PostgresServer, StartError> {
        if let Ok(url) = std::env::var(URL_VARIABLE) {
            if !url.trim().is_empty() {
                return Ok(PostgresServer {
                    admin_url: url.trim().to_owned(),
                    owned: None,
                    next_database: AtomicU64::new(0),
                });
            }
        }
        let started = Instant::now();
        let bin = find_bindir().ok_or_else(|| {
            StartError::Unavailable(format!(
                "no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin, and {URL_VARIABLE} is not set"
            ))
        })?;
        let runner = Runner::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("portico-postgres-")
            .tempdir()
            .map_err(|error| StartError::Failed(format!("creating a temporary directory: {error}")))?
            .keep();
        let server = start_in(&bin, &runner, &dir);
        if server.is_err() {
            // Best effort: as root this removes everything; otherwise what we own.
            let _ = std::fs::remove_dir_all(&dir);
        }
        let server = server?;
        let version = Command::new(bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default();
        eprintln!(
            "portico-testing: started {version} on 127.0.0.1:{} in {} ms ({})",
            server.port().unwrap_or_default(),
            started.elapsed().as_millis(),
            dir.display()
        );
        Ok(server)
    }
}

fn start_in(bin: &Path, runner: &Runner, dir: &Path) -> Result<PostgresServer, StartError> {
    runner.give_away(dir)?;
    let data = dir.join("data");
    let output = runner
        .command(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| StartError::Failed(format!("running initdb: {error}")))?;
    if !output.status.success() {
        return Err(StartError::Failed(format!(
            "initdb exited with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }

    // The port is free when we look but someone may take it before postgres binds: retry.
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let supervisor = runner
            .command(Path::new("sh"))
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("portico-postgres")
            .arg(bin.join("postgres"))
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| StartError::Failed(format!("starting postgres: {error}")))?;
        match wait_ready(bin, port, supervisor, dir) {
            Ok(supervisor) => {
                return Ok(PostgresServer {
                    admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    owned: Some(OwnedServer { port, dir: dir.to_owned(), _supervisor: supervisor }),
                    next_database: AtomicU64::new(0),
                });
            }
            Err(error) => last_error = error,
        }
    }
    Err(StartError::Failed(last_error))
}

/// Polls `pg_isready` until the server accepts connections. Gives the supervisor back on success.
fn wait_ready(bin: &Path, port: u16, mut supervisor: Child, dir: &Path) -> Result<Child, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let port_text = port.to_string();
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port_text, "-U", "postgres", "-d", "postgres"])
            .stdin(Stdio::null())
            .status()
            .map_err(|error| format!("running pg_isready: {error}"))?;
        if ready.success() {
            return Ok(supervisor);
        }
        if let Ok(Some(status)) = supervisor.try_wait() {
            return Err(format!(
                "postgres on port {port} exited with {status}; postgres.log:\n{}",
                log_tail(dir)
            ));
        }
        if Instant::now() > deadline {
            // Dropping our end of the pipe makes the watchdog stop the server.
            drop(supervisor.stdin.take());
            let _ = supervisor.wait();
            return Err(format!(
                "postgres on port {port} was not ready after {READY_TIMEOUT:?}; postgres.log:\n{}",
                log_tail(dir)
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn free_port() -> Result<u16, StartError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| StartError::Failed(format!("finding a free port: {error}")))
}

/// How to run PostgreSQL binaries: directly, or as the `postgres` user when we are root.
#[derive(Debug)]
enum Runner {
    Direct,
    AsPostgres { runuser: PathBuf },
}

impl Runner {
    fn detect() -> Result<Runner, StartError> {
        // The owner of /proc/self is our effective user id (Linux; elsewhere we are not root).
        let root = std::fs::metadata("/proc/self").map(|meta| meta.uid() == 0).unwrap_or(false);
        if !root {
            return Ok(Runner::Direct);
        }
        let runuser =
            find_program("runuser", &["/usr/sbin", "/sbin", "/usr/bin", "/bin"]).ok_or_else(|| {
                StartError::Unavailable(
                    "running as root, and there is no runuser to run postgres as another user".into(),
                )
            })?;
        let has_user = Command::new("id")
            .args(["-u", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        if !has_user {
            return Err(StartError::Unavailable(
                "running as root, and there is no `postgres` user to run the server as".into(),
            ));
        }
        Ok(Runner::AsPostgres { runuser })
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            Runner::Direct => Command::new(program),
            Runner::AsPostgres { runuser } => {
                let mut command = Command::new(runuser);
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
        }
    }

    /// Hands the directory to the user the server runs as.
    fn give_away(&self, dir: &Path) -> Result<(), StartError> {
        let Runner::AsPostgres { .. } = self else { return Ok(()) };
        let status = Command::new("chown")
            .arg("postgres:")
            .arg(dir)
            .status()
            .map_err(|error| StartError::Failed(format!("running chown: {error}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(StartError::Failed(format!("chown postgres: {} exited with {status}", dir.display())))
        }
    }
}

/// A directory holding `initdb`, `postgres` and `pg_isready`: from `PATH` first, then the newest
/// Debian/Ubuntu (`/usr/lib/postgresql/<v>/bin`) or RHEL (`/usr/pgsql-<v>/bin`) installation.
fn find_bindir() -> Option<PathBuf> {
    let complete =
        |dir: &Path| ["initdb", "postgres", "pg_isready"].iter().all(|name| dir.join(name).is_file());
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| complete(dir)) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = Vec::new();
    for (parent, prefix, suffix) in [("/usr/lib/postgresql", "", "bin"), ("/usr", "pgsql-", "bin")] {
        let Ok(entries) = std::fs::read_dir(parent) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(|name| name.strip_prefix(prefix)) else { continue };
            let major = version.split('.').next().and_then(|major| u32::from_str(major).ok());
            if let Some(major) = major {
                let dir = entry.path().join(suffix);
                if complete(&dir) {
                    candidates.push((major, dir));
                }
            }
        }
    }
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir)
}

fn find_program(name: &str, fallback: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(fallback.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn admin_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    // Statement logging would drown test output in CREATE DATABASE lines.
    Ok(PgConnectOptions::from_str(url)?.disable_statement_logging())
}

/// `url` with its database replaced by `name`, keeping credentials, host and parameters.
fn database_url(url: &str, name: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{name}"));
            parsed.to_string()
        }
        // Not a URL (a key/value connection string): append the database.
        Err(_) => format!("{url} dbname={name}"),
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{ConnectOptions, Connection};

    use super::{admin_options, database_url, fresh_database};

    #[tokio::test]
    async fn fresh_databases_are_distinct_and_connectable() {
        let Some(first) = fresh_database().await else { return };
        let Some(second) = fresh_database().await else { return };
        assert_ne!(first, second);
        for url in [first, second] {
            let mut conn = admin_options(&url).unwrap().connect().await.unwrap();
            let (name,): (String,) =
                sqlx::query_as("SELECT current_database()").fetch_one(&mut conn).await.unwrap();
            assert!(url.ends_with(&format!("/{name}")), "{url} is connected to {name}");
            let (tables,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(tables, 0);
            conn.close().await.unwrap();
        }
    }

    #[test]
    fn database_url_replaces_only_the_database() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/test_1"),
            (
                "postgres://u:p%40ss@db:5432/ci?sslmode=disable",
                "postgres://u:p%40ss@db:5432/test_1?sslmode=disable",
            ),
            ("postgresql://u@db", "postgresql://u@db/test_1"),
        ];
        for (url, expected) in cases {
            assert_eq!(database_url(url, "test_1"), expected, "{url}");
        }
    }
}
