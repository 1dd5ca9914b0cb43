//! `parseRepoUrl`: the `RepoUrlPicker` value format (`host?owner=..&repo=..`) taken apart.

use crate::render::{Integration, IntegrationKind};

/// The parts of a `RepoUrlPicker` value. Absent query parameters are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub host: String,
    pub owner: Option<String>,
    pub repo: Option<String>,
    pub organization: Option<String>,
    pub workspace: Option<String>,
    pub project: Option<String>,
}

/// Why a repo URL could not be parsed; the message is shown to template authors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RepoUrlError {
    pub message: String,
}

/// Hosts Backstage knows without any `integrations` config, so templates that target them work
/// on a fresh install.
const DEFAULT_HOSTS: [(&str, IntegrationKind); 4] = [
    ("github.com", IntegrationKind::Github),
    ("gitlab.com", IntegrationKind::Gitlab),
    ("bitbucket.org", IntegrationKind::BitbucketCloud),
    ("dev.azure.com", IntegrationKind::Azure),
];

/// Parses `repo_url` (a `RepoUrlPicker` value such as `github.com?owner=o&repo=r`) and checks the
/// query parameters the host's integration type needs.
///
/// Each parameter is trimmed of leading and trailing `/`. The host is looked up in
/// `integrations` first, then among the default hosts.
pub fn parse_repo_url(repo_url: &str, integrations: &[Integration]) -> Result<RepoSpec, RepoUrlError> {
    let url = url::Url::parse(&format!("https://{repo_url}")).map_err(|err| RepoUrlError {
        message: format!("Invalid repo URL passed to publisher, got {repo_url}, {err}"),
    })?;
    let host = host_of(&url);
    let Some(kind) = integration_kind(&host, integrations) else {
        return Err(RepoUrlError {
            message: format!(
                "No matching integration configuration for host {host}, please check your integrations config"
            ),
        });
    };
    let param = |name: &str| query_param(&url, name);
    let spec = RepoSpec {
        owner: param("owner"),
        repo: param("repo"),
        organization: param("organization"),
        workspace: param("workspace"),
        project: param("project"),
        host,
    };
    for required in required_params(kind, &spec) {
        if spec_param(&spec, required).is_none() {
            return Err(RepoUrlError {
                message: format!("Invalid repo URL passed to publisher: {url}, missing {required}"),
            });
        }
    }
    Ok(spec)
}

impl RepoSpec {
    /// The JSON object templates see: `{host, owner?, repo, organization?, workspace?, project?}`
    /// with absent keys left out.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("host".to_owned(), self.host.clone().into());
        let optional = [
            ("owner", &self.owner),
            ("repo", &self.repo),
            ("organization", &self.organization),
            ("workspace", &self.workspace),
            ("project", &self.project),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                object.insert(key.to_owned(), value.clone().into());
            }
        }
        serde_json::Value::Object(object)
    }
}

/// `host[:port]` as a browser's `URL.host` gives it (default port omitted).
fn host_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn integration_kind(host: &str, integrations: &[Integration]) -> Option<IntegrationKind> {
    let configured = integrations
        .iter()
        .find(|integration| integration.host.eq_ignore_ascii_case(host))
        .map(|integration| integration.kind);
    configured.or_else(|| {
        DEFAULT_HOSTS
            .iter()
            .find(|(default_host, _)| default_host.eq_ignore_ascii_case(host))
            .map(|(_, kind)| *kind)
    })
}

/// The first value of query parameter `name`, trimmed of `/`; empty counts as absent.
fn query_param(url: &url::Url, name: &str) -> Option<String> {
    let (_, value) = url.query_pairs().find(|(key, _)| key == name)?;
    let value = value.trim_matches('/');
    (!value.is_empty()).then(|| value.to_owned())
}

fn spec_param<'a>(spec: &'a RepoSpec, name: &str) -> Option<&'a str> {
    let value = match name {
        "owner" => &spec.owner,
        "repo" => &spec.repo,
        "organization" => &spec.organization,
        "workspace" => &spec.workspace,
        "project" => &spec.project,
        _ => return None,
    };
    value.as_deref()
}

/// Which parameters a host of this integration type cannot do without, in the order they are
/// reported.
fn required_params(kind: IntegrationKind, spec: &RepoSpec) -> &'static [&'static str] {
    let is_bitbucket_cloud_host = matches!(spec.host.as_str(), "bitbucket.org" | "www.bitbucket.org");
    match kind {
        IntegrationKind::Github | IntegrationKind::Other => &["owner", "repo"],
        // A numeric project id identifies a GitLab project on its own.
        IntegrationKind::Gitlab if spec.project.is_some() => &[],
        IntegrationKind::Gitlab => &["owner", "repo"],
        IntegrationKind::Bitbucket if is_bitbucket_cloud_host => &["workspace", "project", "repo"],
        IntegrationKind::Bitbucket => &["project", "repo"],
        IntegrationKind::BitbucketCloud => &["workspace", "project", "repo"],
        IntegrationKind::Azure => &["project", "repo"],
        IntegrationKind::Gitea | IntegrationKind::Gerrit => &["repo"],
    }
}
