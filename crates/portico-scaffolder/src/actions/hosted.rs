//! `publish:github` and `publish:gitlab`: create the repository through the host's REST API,
//! push the workspace with git, and (GitHub) protect the default branch.
//!
//! The API base URL and token come from `integrations.github[]` / `integrations.gitlab[]`
//! (`apiBaseUrl`, `token`), or the step's `token` input. The repository's clone URL comes from
//! the API's answer, so only configured hosts are ever pushed to.

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError, ScmHost};
use crate::render::{parse_repo_url, IntegrationKind};

/// The configured host of a `repoUrl` (`github.com?owner=o&repo=r`) with its owner and repo.
fn target(
    context: &ActionContext<'_>,
    kind: IntegrationKind,
) -> Result<(ScmHost, String, String), ActionError> {
    let repo_url = context.required_text("repoUrl")?;
    let parsed = parse_repo_url(repo_url, &context.services.integrations)
        .map_err(|error| ActionError::Input(error.to_string()))?
        .to_json();
    let host = parsed["host"].as_str().unwrap_or_default().to_owned();
    let owner = parsed["owner"].as_str().unwrap_or_default().to_owned();
    let repo = parsed["repo"].as_str().unwrap_or_default().to_owned();
    if owner.is_empty() || repo.is_empty() {
        return Err(ActionError::Input(format!("repoUrl {repo_url} must name an owner and a repo")));
    }
    let mut scm = context
        .services
        .scm
        .iter()
        .find(|scm| scm.kind == kind && scm.host.eq_ignore_ascii_case(&host))
        .cloned()
        .ok_or_else(|| ActionError::Input(format!("No matching integration configuration for host {host}, please check your integrations config")))?;
    if let Some(token) = context.text("token") {
        scm.token = Some(token.to_owned());
    }
    if scm.token.is_none() {
        return Err(ActionError::Input(format!(
            "No token available for host {host}: set integrations token or the step's token input"
        )));
    }
    Ok((scm, owner, repo))
}

/// One call to the host's REST API; non-2xx answers are errors that quote the host's message.
async fn call(
    scm: &ScmHost,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ActionError> {
    let (client, url) = scm.api(path, std::time::Duration::from_secs(30))?;
    let mut request =
        client.request(method.clone(), &url).bearer_auth(scm.token.as_deref().unwrap_or_default());
    if scm.kind == IntegrationKind::Github {
        request = request
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response =
        request.send().await.map_err(|error| ActionError::failed(format!("{method} {url}: {error}")))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body.get("message").map(|message| message.to_string()))
            .unwrap_or(text);
        return Err(ActionError::failed(format!("{method} {url} answered {status}: {message}")));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The clone URL with the token in it, for https remotes (git never prompts).
fn authenticated(clone_url: &str, user: &str, token: &str) -> String {
    match url::Url::parse(clone_url) {
        Ok(mut url) if url.scheme() == "https" => {
            let _ = url.set_username(user);
            let _ = url.set_password(Some(token));
            url.into()
        }
        _ => clone_url.to_owned(),
    }
}

fn flag(context: &ActionContext<'_>, name: &str, default: bool) -> bool {
    context.input.get(name).and_then(Value::as_bool).unwrap_or(default)
}

fn common_schema(extra: Value) -> Value {
    let mut schema = json!({
        "type": "object",
        "required": ["repoUrl"],
        "properties": {
            "repoUrl": { "type": "string", "title": "Repository location (host?owner=&repo=)" },
            "description": { "type": "string" },
            "repoVisibility": { "type": "string", "enum": ["private", "internal", "public"] },
            "defaultBranch": { "type": "string" },
            "gitCommitMessage": { "type": "string" },
            "gitAuthorName": { "type": "string" },
            "gitAuthorEmail": { "type": "string" },
            "sourcePath": { "type": "string" },
            "token": { "type": "string" },
            "topics": { "type": "array", "items": { "type": "string" } }
        }
    });
    if let (Some(properties), Value::Object(extra)) = (schema["properties"].as_object_mut(), extra) {
        properties.extend(extra);
    }
    schema
}

fn publish_outputs() -> Value {
    json!({
        "type": "object",
        "properties": {
            "remoteUrl": { "type": "string" },
            "repoContentsUrl": { "type": "string" },
            "commitHash": { "type": "string" }
        }
    })
}

#[derive(Debug)]
pub(crate) struct Github;

#[async_trait::async_trait]
impl Action for Github {
    fn id(&self) -> &str {
        "publish:github"
    }
    fn description(&self) -> &str {
        "Creates a GitHub repository, pushes the workspace to it and protects its default branch."
    }
    fn input_schema(&self) -> Value {
        common_schema(json!({
            "homepage": { "type": "string" },
            "access": { "type": "string" },
            "protectDefaultBranch": { "type": "boolean" },
            "protectEnforceAdmins": { "type": "boolean" },
            "deleteBranchOnMerge": { "type": "boolean" },
            "allowMergeCommit": { "type": "boolean" },
            "allowSquashMerge": { "type": "boolean" },
            "allowRebaseMerge": { "type": "boolean" },
            "allowAutoMerge": { "type": "boolean" },
            "requireCodeOwnerReviews": { "type": "boolean" },
            "dismissStaleReviews": { "type": "boolean" },
            "requiredApprovingReviewCount": { "type": "number" },
            "requiredStatusCheckContexts": { "type": "array", "items": { "type": "string" } },
            "requireBranchesToBeUpToDate": { "type": "boolean" },
            "requiredConversationResolution": { "type": "boolean" },
            "hasProjects": { "type": "boolean" },
            "hasWiki": { "type": "boolean" },
            "hasIssues": { "type": "boolean" },
            "collaborators": { "type": "array", "items": { "type": "object" } }
        }))
    }
    fn output_schema(&self) -> Value {
        publish_outputs()
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let (scm, owner, repo) = target(context, IntegrationKind::Github)?;
        let visibility = context.text("repoVisibility").unwrap_or("private").to_owned();
        let branch = context.text("defaultBranch").unwrap_or("master").to_owned();
        let owner_info = call(&scm, reqwest::Method::GET, &format!("/users/{owner}"), None).await?;
        let organization = owner_info["type"] == "Organization";
        let mut body = json!({
            "name": repo,
            "private": visibility == "private",
            "description": context.text("description"),
            "homepage": context.text("homepage"),
            "delete_branch_on_merge": flag(context, "deleteBranchOnMerge", false),
            "allow_merge_commit": flag(context, "allowMergeCommit", true),
            "allow_squash_merge": flag(context, "allowSquashMerge", true),
            "allow_rebase_merge": flag(context, "allowRebaseMerge", true),
            "allow_auto_merge": flag(context, "allowAutoMerge", false),
            "has_projects": context.input.get("hasProjects"),
            "has_wiki": context.input.get("hasWiki"),
            "has_issues": context.input.get("hasIssues"),
        });
        if organization {
            body["visibility"] = json!(visibility);
        }
        let path = if organization { format!("/orgs/{owner}/repos") } else { "/user/repos".to_owned() };
        context.log.info(&format!("Creating repository {owner}/{repo} on {}", scm.host));
        let created = call(&scm, reqwest::Method::POST, &path, Some(&body)).await?;
        let clone_url = created["clone_url"]
            .as_str()
            .ok_or_else(|| ActionError::failed("the created repository has no clone_url"))?
            .to_owned();
        let html_url = created["html_url"].as_str().unwrap_or_default().to_owned();

        if let Some(access) = context.text("access").filter(|access| access.contains('/')) {
            let (org, team) = access.split_once('/').unwrap_or_default();
            call(
                &scm,
                reqwest::Method::PUT,
                &format!("/orgs/{org}/teams/{team}/repos/{owner}/{repo}"),
                Some(&json!({ "permission": "admin" })),
            )
            .await?;
        }
        for collaborator in
            context.input.get("collaborators").and_then(Value::as_array).cloned().unwrap_or_default()
        {
            let permission = collaborator.get("access").and_then(Value::as_str).unwrap_or("pull");
            if let Some(user) = collaborator.get("user").and_then(Value::as_str) {
                call(
                    &scm,
                    reqwest::Method::PUT,
                    &format!("/repos/{owner}/{repo}/collaborators/{user}"),
                    Some(&json!({ "permission": permission })),
                )
                .await?;
            } else if let Some(team) = collaborator.get("team").and_then(Value::as_str) {
                call(
                    &scm,
                    reqwest::Method::PUT,
                    &format!("/orgs/{owner}/teams/{team}/repos/{owner}/{repo}"),
                    Some(&json!({ "permission": permission })),
                )
                .await?;
            }
        }
        if let Some(topics) = context
            .input
            .get("topics")
            .filter(|topics| topics.as_array().is_some_and(|list| !list.is_empty()))
        {
            call(
                &scm,
                reqwest::Method::PUT,
                &format!("/repos/{owner}/{repo}/topics"),
                Some(&json!({ "names": topics })),
            )
            .await?;
        }

        let remote = authenticated(&clone_url, "x-access-token", scm.token.as_deref().unwrap_or_default());
        let commit = super::publish::commit_and_push(context, &remote, &branch).await?;
        context.log.info(&format!("Pushed commit {commit} to {clone_url}"));

        if flag(context, "protectDefaultBranch", true) {
            let checks =
                context.input.get("requiredStatusCheckContexts").cloned().unwrap_or_else(|| json!([]));
            let protection = json!({
                "required_status_checks": { "strict": flag(context, "requireBranchesToBeUpToDate", true), "contexts": checks },
                "enforce_admins": flag(context, "protectEnforceAdmins", true),
                "required_pull_request_reviews": {
                    "required_approving_review_count": context.input.get("requiredApprovingReviewCount").and_then(Value::as_u64).unwrap_or(1),
                    "require_code_owner_reviews": flag(context, "requireCodeOwnerReviews", false),
                    "dismiss_stale_reviews": flag(context, "dismissStaleReviews", false),
                },
                "restrictions": null,
                "required_conversation_resolution": flag(context, "requiredConversationResolution", false),
            });
            call(
                &scm,
                reqwest::Method::PUT,
                &format!("/repos/{owner}/{repo}/branches/{branch}/protection"),
                Some(&protection),
            )
            .await?;
        }
        context.output("remoteUrl", Value::String(clone_url));
        context.output("repoContentsUrl", Value::String(format!("{html_url}/blob/{branch}")));
        context.output("commitHash", Value::String(commit));
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct Gitlab;

#[async_trait::async_trait]
impl Action for Gitlab {
    fn id(&self) -> &str {
        "publish:gitlab"
    }
    fn description(&self) -> &str {
        "Creates a GitLab project and pushes the workspace to it."
    }
    fn input_schema(&self) -> Value {
        common_schema(json!({ "setUserAsOwner": { "type": "boolean" } }))
    }
    fn output_schema(&self) -> Value {
        let mut schema = publish_outputs();
        schema["properties"]["projectId"] = json!({ "type": "number" });
        schema["properties"]["created"] = json!({ "type": "boolean" });
        schema
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let (scm, owner, repo) = target(context, IntegrationKind::Gitlab)?;
        let visibility = context.text("repoVisibility").unwrap_or("private").to_owned();
        let branch = context.text("defaultBranch").unwrap_or("master").to_owned();
        let namespace =
            call(&scm, reqwest::Method::GET, &format!("/namespaces/{}", encode(&owner)), None).await?;
        let namespace_id = namespace["id"]
            .as_i64()
            .ok_or_else(|| ActionError::failed(format!("GitLab namespace {owner} has no id")))?;
        let mut body = json!({
            "name": repo,
            "path": repo,
            "namespace_id": namespace_id,
            "visibility": visibility,
            "description": context.text("description"),
        });
        if let Some(topics) = context.input.get("topics") {
            body["topics"] = topics.clone();
        }
        context.log.info(&format!("Creating project {owner}/{repo} on {}", scm.host));
        let created = call(&scm, reqwest::Method::POST, "/projects", Some(&body)).await?;
        let clone_url = created["http_url_to_repo"]
            .as_str()
            .ok_or_else(|| ActionError::failed("the created project has no http_url_to_repo"))?
            .to_owned();
        let web_url = created["web_url"].as_str().unwrap_or_default().to_owned();
        let remote = authenticated(&clone_url, "oauth2", scm.token.as_deref().unwrap_or_default());
        let commit = super::publish::commit_and_push(context, &remote, &branch).await?;
        context.log.info(&format!("Pushed commit {commit} to {clone_url}"));
        context.output("remoteUrl", Value::String(clone_url));
        context.output("repoContentsUrl", Value::String(format!("{web_url}/-/blob/{branch}")));
        context.output("commitHash", Value::String(commit));
        context.output("projectId", created["id"].clone());
        context.output("created", Value::Bool(true));
        Ok(())
    }
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
