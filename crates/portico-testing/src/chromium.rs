//! Headless Chromium driven through ChromeDriver (WebDriver), for UI tests in a real browser.
//!
//! `Browser::start` finds `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver` packages), starts the driver on a free loopback port and opens a session
//! with a private profile. Missing binaries skip (or, under `PORTICO_TEST_REQUIRE=chromium`,
//! fail) like every other service here.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// A running ChromeDriver with one browser session.
#[allow(missing_debug_implementations)] // fantoccini's Client is not Debug
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/chromium")])
        {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session; `None` (test skipped, reason
    /// printed) when the binaries are missing and Chromium is not required.
    pub async fn start() -> Option<Browser> {
        let Some(chromium) = find(&["chromium", "chromium-browser", "google-chrome"]) else {
            return crate::unavailable(
                "chromium",
                "no chromium binary on PATH; install Debian's chromium package",
            );
        };
        let Some(chromedriver) = find(&["chromedriver"]) else {
            return crate::unavailable(
                "chromium",
                "no chromedriver on PATH; install Debian's chromium-driver package",
            );
        };
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free loopback port");
        // Its own process group, so that a test that panics still takes the browser down with
        // the driver (see `Drop`).
        let driver = Command::new(&chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", chromedriver.display()));
        let profile = tempfile::tempdir().expect("a profile directory");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        // The driver is on loopback: plain HTTP, no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|error| panic!("opening a Chromium session through {url}: {error}"));
        Some(Browser { client, driver, _profile: profile })
    }

    /// Saves a PNG screenshot of the current page.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the screenshot directory");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Ends the session and stops the driver (and with it the browser).
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the driver and every browser process it started. The `--` matters:
        // procps-ng 4.0's `kill -KILL -12345` signals the pid made of the first digit alone,
        // -1, which is every process on the machine (this test run, the shell, the CI job).
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.driver.id())]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
