//! Reading descriptor files and placeholder targets from the file system and from URLs.
//!
//! URLs are read only from hosts listed in `backend.reading.allow` (reference §6.6, §6.15): the
//! catalog never fetches an address an administrator did not allow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

/// The largest descriptor or placeholder file read, in bytes. Backstage has no limit; a runaway
/// file (a log committed as `catalog-info.yaml`) would otherwise be held in memory whole.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// One `backend.reading.allow` entry: a host (`example.com`, `*.example.com`, `host:port`) and
/// optional path prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    pub host: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Failed(String),
}

impl ReadError {
    /// Backstage's error name for this failure.
    pub fn name(&self) -> &'static str {
        match self {
            ReadError::NotFound(_) => "NotFoundError",
            ReadError::NotAllowed(_) => "NotAllowedError",
            ReadError::Failed(_) => "Error",
        }
    }
}

/// Reads files and allowed URLs.
#[derive(Debug, Clone)]
pub struct Reader {
    allow: Vec<AllowedHost>,
    http: reqwest::Client,
}

impl Reader {
    pub fn new(allow: Vec<AllowedHost>) -> Reader {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap_or_default();
        Reader { allow, http }
    }

    /// True when `url` may be read under `backend.reading.allow`.
    pub fn is_allowed(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let host_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        self.allow.iter().any(|entry| {
            let host_matches = match entry.host.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => entry.host.eq_ignore_ascii_case(&host_port) || entry.host.eq_ignore_ascii_case(host),
            };
            host_matches
                && (entry.paths.is_empty()
                    || entry.paths.iter().any(|prefix| url.path().starts_with(prefix.as_str())))
        })
    }

    /// Reads one URL as text.
    pub async fn read_url(&self, target: &str) -> Result<String, ReadError> {
        let bytes = self.read_url_bytes(target).await?;
        String::from_utf8(bytes)
            .map_err(|_| ReadError::Failed(format!("Unable to read url, {target} is not UTF-8 text")))
    }

    /// Reads one URL as bytes (at most `MAX_FILE_BYTES`).
    pub async fn read_url_bytes(&self, target: &str) -> Result<Vec<u8>, ReadError> {
        let url = Url::parse(target)
            .map_err(|error| ReadError::Failed(format!("Invalid URL {target}: {error}")))?;
        if !self.is_allowed(&url) {
            return Err(ReadError::NotAllowed(format!(
                "Reading from {target} is not allowed. You may need to configure an integration for the target host, or add it to the configured list of allowed hosts at 'backend.reading.allow'"
            )));
        }
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| ReadError::Failed(format!("Unable to read url, {error}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ReadError::NotFound(format!(
                "{target} could not be read as {target}, 404 Not Found"
            )));
        }
        if !status.is_success() {
            return Err(ReadError::Failed(format!(
                "Unable to read url, {target} could not be read, {status}"
            )));
        }
        if response.content_length().is_some_and(|length| length > MAX_FILE_BYTES) {
            return Err(too_large(target));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ReadError::Failed(format!("Unable to read url, {error}")))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(target));
        }
        Ok(bytes.to_vec())
    }

    /// Reads one file as text.
    pub async fn read_file(&self, path: &Path) -> Result<String, ReadError> {
        let shown = path.display();
        let metadata = tokio::fs::metadata(path).await.map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound(format!("file {shown} does not exist")),
            _ => ReadError::Failed(format!("Unable to read {shown}, {error}")),
        })?;
        if metadata.len() > MAX_FILE_BYTES {
            return Err(too_large(&shown.to_string()));
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|error| ReadError::Failed(format!("Unable to read {shown}, {error}")))?;
        String::from_utf8(bytes)
            .map_err(|_| ReadError::Failed(format!("Unable to read {shown}, the file is not UTF-8 text")))
    }

    /// Expands a file target that may be a glob into the matching files, sorted.
    pub fn expand_file_target(&self, target: &str) -> Result<Vec<PathBuf>, ReadError> {
        if !target.contains(['*', '?', '[']) {
            return Ok(vec![PathBuf::from(target)]);
        }
        let paths = glob::glob(target)
            .map_err(|error| ReadError::Failed(format!("Invalid glob pattern {target}: {error}")))?;
        let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|path| path.is_file()).collect();
        files.sort();
        Ok(files)
    }
}

fn too_large(target: &str) -> ReadError {
    ReadError::Failed(format!(
        "{target} is larger than the limit of {} MiB for descriptor files",
        MAX_FILE_BYTES / 1024 / 1024
    ))
}
