//! Reading skeletons from URLs: files and directory trees on a configured GitHub or GitLab host
//! through its REST API (with the integration's token), and single files from any host the
//! reading allowlist (`backend.reading.allow`, asked through `UrlReader`) lets through.
//!
//! Trees arrive as the host's `.tar.gz` archive of the ref and are unpacked below a directory:
//! only regular files and directories under the wanted path, never outside it (links are
//! skipped), within limits on entries and bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use url::Url;

use crate::action::{ActionError, ScmHost, Services};
use crate::render::IntegrationKind;
use crate::workspace::resolve_inside;

/// The most a tree may unpack to: entries and bytes.
const MAX_ENTRIES: usize = 50_000;
/// The most entries an archive may hold (GitHub's is the whole repository).
const MAX_SCANNED: usize = 2_000_000;
const MAX_BYTES: u64 = 512 * 1024 * 1024;
/// The largest single file read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads plain URLs for actions, under the server's reading allowlist.
#[async_trait::async_trait]
pub trait UrlReader: Send + Sync + std::fmt::Debug {
    /// The bytes at `url`, or why they cannot be read (not allowed, not found, …).
    async fn read(&self, url: &Url) -> Result<Vec<u8>, String>;
}

/// A reader that reads nothing (no allowlist).
#[derive(Debug, Default)]
pub struct NoReader;

#[async_trait::async_trait]
impl UrlReader for NoReader {
    async fn read(&self, url: &Url) -> Result<Vec<u8>, String> {
        Err(format!("Reading from {url} is not allowed: no hosts are allowed in backend.reading.allow"))
    }
}

/// A URL on a configured GitHub or GitLab host, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepoPath {
    /// `owner/repo` on GitHub, the project's full path on GitLab.
    project: String,
    reference: String,
    /// The path inside the repository, without leading or trailing slashes.
    path: String,
}

/// `/<owner>/<repo>/(blob|tree|raw)/<ref>/<path>` (GitHub) or
/// `/<group…>/<project>/-/(blob|tree|raw)/<ref>/<path>` (GitLab).
fn repo_path(kind: IntegrationKind, url: &Url) -> Option<RepoPath> {
    let segments: Vec<String> = url
        .path_segments()?
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    // Decoded segments go back into API paths: none may climb or split (`..`, `%2F`, `%3F`).
    let unsafe_segment =
        |segment: &String| matches!(segment.as_str(), "." | "..") || segment.contains(['/', '\\', '?', '#']);
    if segments.iter().any(unsafe_segment) {
        return None;
    }
    let (project, rest) = match kind {
        IntegrationKind::Github => {
            if segments.len() < 4 {
                return None;
            }
            (segments[..2].join("/"), &segments[2..])
        }
        IntegrationKind::Gitlab => {
            let dash = segments.iter().position(|segment| segment == "-")?;
            if dash == 0 {
                return None;
            }
            (segments[..dash].join("/"), &segments[dash + 1..])
        }
        _ => return None,
    };
    let [mode, reference, path @ ..] = rest else { return None };
    if !matches!(mode.as_str(), "blob" | "tree" | "raw") {
        return None;
    }
    Some(RepoPath { project, reference: reference.clone(), path: path.join("/") })
}

fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// The configured GitHub or GitLab host serving `url`, with the repository path in it.
fn integration_for(services: &Services, url: &Url) -> Option<(ScmHost, RepoPath)> {
    let host = host_of(url);
    services
        .scm
        .iter()
        .filter(|scm| scm.host.eq_ignore_ascii_case(&host))
        .find_map(|scm| Some((scm.clone(), repo_path(scm.kind, url)?)))
}

/// What a path segment or query value may not hold as it is (GitLab's project ids and file
/// paths are single segments, so `/` is encoded too).
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

/// Each `/`-separated part of `path` encoded, the separators kept.
fn encode_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// One GET to the host's API, the body as bytes (at most `limit`).
async fn api_get(
    scm: &ScmHost,
    path_and_query: &str,
    accept: &str,
    limit: u64,
) -> Result<Vec<u8>, ActionError> {
    let (client, url) = scm.api(path_and_query, std::time::Duration::from_secs(120))?;
    let mut request = client.get(&url).header("accept", accept);
    if let Some(token) = &scm.token {
        request = request.bearer_auth(token);
    }
    let response =
        request.send().await.map_err(|error| ActionError::failed(format!("GET {url}: {error}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ActionError::failed(format!("GET {url} answered {status}")));
    }
    let too_large = || ActionError::failed(format!("GET {url}: the answer is larger than {limit} bytes"));
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    // Read piece by piece: a chunked answer announces no length.
    let mut response = response;
    let mut bytes = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|error| ActionError::failed(format!("GET {url}: {error}")))?
    {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The file at `url`: through the API of a configured GitHub or GitLab host, else a plain read
/// under the reading allowlist.
pub async fn read_file(services: &Services, url: &Url) -> Result<Vec<u8>, ActionError> {
    let Some((scm, at)) = integration_for(services, url) else {
        return services.reader.read(url).await.map_err(ActionError::Input);
    };
    let path_and_query = match scm.kind {
        IntegrationKind::Github => format!(
            "/repos/{}/contents/{}?ref={}",
            encode_path(&at.project),
            encode_path(&at.path),
            encode(&at.reference)
        ),
        _ => format!(
            "/projects/{}/repository/files/{}/raw?ref={}",
            encode(&at.project),
            encode(&at.path),
            encode(&at.reference)
        ),
    };
    api_get(&scm, &path_and_query, "application/vnd.github.raw", MAX_FILE_BYTES).await
}

/// Unpacks the directory tree at `url` (a tree URL on a configured GitHub or GitLab host)
/// into `target`. Evaluates to the number of files written.
pub async fn read_tree(services: &Services, url: &Url, target: &Path) -> Result<usize, ActionError> {
    let Some((scm, at)) = integration_for(services, url) else {
        return Err(ActionError::Input(format!(
            "cannot fetch the directory {url}: directories can be read only from configured GitHub or GitLab integrations (integrations.github, integrations.gitlab)"
        )));
    };
    let path_and_query = match scm.kind {
        IntegrationKind::Github => {
            format!("/repos/{}/tarball/{}", encode_path(&at.project), encode(&at.reference))
        }
        _ => format!(
            "/projects/{}/repository/archive.tar.gz?sha={}&path={}",
            encode(&at.project),
            encode(&at.reference),
            encode(&at.path)
        ),
    };
    let archive = api_get(&scm, &path_and_query, "application/octet-stream", MAX_BYTES).await?;
    let target = target.to_path_buf();
    let wanted = at.path.clone();
    tokio::task::spawn_blocking(move || unpack(&archive, &wanted, &target))
        .await
        .map_err(|error| ActionError::failed(format!("unpacking stopped: {error}")))?
}

/// Unpacks the entries of a `.tar.gz` that lie under `<top>/<wanted>/` into `target`, where
/// `<top>` is the archive's single top directory (GitHub's `owner-repo-sha`, GitLab's
/// `repo-ref-sha`).
fn unpack(archive: &[u8], wanted: &str, target: &Path) -> Result<usize, ActionError> {
    let bad = |error: std::io::Error| ActionError::failed(format!("reading the archive: {error}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    std::fs::create_dir_all(target)
        .map_err(|error| ActionError::failed(format!("creating {}: {error}", target.display())))?;
    let (mut scanned, mut entries, mut bytes, mut files) = (0usize, 0usize, 0u64, 0usize);
    let mut found = wanted.is_empty();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        // A repository's archive holds all of it: entries outside the wanted path only count here.
        scanned += 1;
        if scanned > MAX_SCANNED {
            return Err(ActionError::failed(format!("the archive has more than {MAX_SCANNED} entries")));
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        // Drop the top directory, then keep what lies under the wanted path.
        let Some((_, inside)) = path.split_once('/') else { continue };
        let relative = if wanted.is_empty() {
            inside.to_owned()
        } else if let Some(rest) = inside.strip_prefix(wanted).and_then(|rest| rest.strip_prefix('/')) {
            found = true;
            rest.to_owned()
        } else {
            continue;
        };
        let relative = relative.trim_end_matches('/');
        if relative.is_empty() {
            continue;
        }
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(ActionError::failed(format!("the directory has more than {MAX_ENTRIES} entries")));
        }
        let destination: PathBuf = resolve_inside(target, relative)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&destination)
                .map_err(|error| ActionError::failed(format!("creating {relative}: {error}")))?;
        } else if kind.is_file() {
            // The size the reader delivers (a PAX record may override the header's).
            bytes += entry.size();
            if bytes > MAX_BYTES {
                return Err(ActionError::failed(format!(
                    "the archive unpacks to more than {MAX_BYTES} bytes"
                )));
            }
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| ActionError::failed(format!("creating {relative}: {error}")))?;
            }
            let mut file = std::fs::File::create(&destination)
                .map_err(|error| ActionError::failed(format!("writing {relative}: {error}")))?;
            let size = entry.size();
            std::io::copy(&mut (&mut entry).take(size), &mut file)
                .map_err(|error| ActionError::failed(format!("writing {relative}: {error}")))?;
            #[cfg(unix)]
            if entry.header().mode().is_ok_and(|mode| mode & 0o111 != 0) {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&destination, std::fs::Permissions::from_mode(0o755));
            }
            files += 1;
        }
        // Links and special files are skipped: a skeleton from a repository gets its files.
    }
    if !found {
        return Err(ActionError::Input(format!("the repository has no directory {wanted}")));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_are_taken_apart_per_host_kind() {
        let url = |text: &str| Url::parse(text).unwrap();
        assert_eq!(
            repo_path(
                IntegrationKind::Github,
                &url("https://github.com/acme/skeletons/tree/main/service/base")
            ),
            Some(RepoPath {
                project: "acme/skeletons".into(),
                reference: "main".into(),
                path: "service/base".into()
            })
        );
        assert_eq!(
            repo_path(IntegrationKind::Github, &url("https://github.com/acme/skeletons/blob/v1/README.md")),
            Some(RepoPath {
                project: "acme/skeletons".into(),
                reference: "v1".into(),
                path: "README.md".into()
            })
        );
        assert_eq!(
            repo_path(
                IntegrationKind::Gitlab,
                &url("https://gitlab.com/acme/platform/skeletons/-/tree/main/svc")
            ),
            Some(RepoPath {
                project: "acme/platform/skeletons".into(),
                reference: "main".into(),
                path: "svc".into()
            })
        );
        assert_eq!(repo_path(IntegrationKind::Github, &url("https://github.com/acme")), None);
        // Encoded separators and dot segments never reach an API path.
        for hostile in [
            "https://github.com/a/r/blob/main/x%2F..%2F..%2F..%2Fuser",
            "https://github.com/a/r%3Fx=1/blob/main/f",
        ] {
            assert_eq!(repo_path(IntegrationKind::Github, &url(hostile)), None, "{hostile}");
        }
        assert_eq!(repo_path(IntegrationKind::Github, &url("https://github.com/acme/r/pulls/1/x")), None);
        assert_eq!(repo_path(IntegrationKind::Gitlab, &url("https://gitlab.com/acme/r/tree/main")), None);
    }

    fn archive(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut builder =
            tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, contents, mode) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(*mode);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append_data(&mut header, path, *contents).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn only_the_wanted_directory_is_unpacked_with_modes() {
        let bytes = archive(&[
            ("acme-skeletons-abc/README.md", b"top", 0o644),
            ("acme-skeletons-abc/service/app.py", b"print(1)", 0o644),
            ("acme-skeletons-abc/service/run.sh", b"#!/bin/sh", 0o755),
            ("acme-skeletons-abc/service-other/x", b"no", 0o644),
        ]);
        let target = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&bytes, "service", target.path()).unwrap(), 2);
        assert_eq!(std::fs::read(target.path().join("app.py")).unwrap(), b"print(1)");
        assert!(!target.path().join("x").exists() && !target.path().join("README.md").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(target.path().join("run.sh")).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111);
        }
        let error = unpack(&bytes, "missing", tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(error.to_string().contains("no directory missing"), "{error}");
    }

    #[test]
    fn entries_cannot_climb_out_of_the_target() {
        // `tar::Builder` refuses `..` itself, so the hostile name is written into the header.
        let mut builder =
            tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..22].copy_from_slice(b"top/service/../../evil");
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("t");
        assert!(unpack(&bytes, "service", &target).is_err());
        assert!(!root.path().join("evil").exists());
    }
}
