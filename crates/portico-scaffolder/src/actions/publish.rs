//! `publish:git`: commits the workspace and pushes it to any git remote, with the `git` command.
//!
//! Backstage has one publisher per SCM host; this one speaks plain git, so it works with any
//! server (and offline, with a local directory of repositories). Remotes are allowlisted:
//! network remotes by host (`scaffolder.publish.git.allowedHosts`), `file://` remotes only inside
//! `scaffolder.publish.git.localDirectory`, where missing bare repositories are created and the
//! pushed branch is also checked out beside them, so the catalog can read what was published.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError};
use crate::workspace::resolve_inside;

#[derive(Debug)]
pub(crate) struct Git;

#[async_trait::async_trait]
impl Action for Git {
    fn id(&self) -> &str {
        "publish:git"
    }
    fn description(&self) -> &str {
        "Initializes a git repository in the workspace, commits everything and pushes it to a git remote."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["remoteUrl"],
            "properties": {
                "remoteUrl": { "type": "string", "title": "Remote to push to (file://, git://, http(s)://)" },
                "defaultBranch": { "type": "string", "title": "Branch to push (default master)" },
                "gitCommitMessage": { "type": "string" },
                "gitAuthorName": { "type": "string" },
                "gitAuthorEmail": { "type": "string" },
                "sourcePath": { "type": "string", "title": "Workspace subdirectory to publish" }
            }
        })
    }
    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "remoteUrl": { "type": "string" },
                "repoContentsUrl": { "type": "string" },
                "commitHash": { "type": "string" }
            }
        })
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let remote = context.required_text("remoteUrl")?.to_owned();
        let branch = context.text("defaultBranch").unwrap_or("master").to_owned();
        if !is_safe_branch(&branch) {
            return Err(ActionError::Input(format!("defaultBranch {branch} is not a valid branch name")));
        }
        let local = allowed_remote(&remote, context.services)?;

        if let Some(bare) = &local {
            if !bare.join("HEAD").exists() {
                tokio::fs::create_dir_all(bare)
                    .await
                    .map_err(|error| ActionError::failed(format!("creating {}: {error}", bare.display())))?;
                git(bare, &["init", "--bare", "--quiet"], &[]).await?;
            }
        }
        context.log.info(&format!("Publishing to {remote} ({branch})"));
        let commit = commit_and_push(context, &remote, &branch).await?;
        context.log.info(&format!("Pushed commit {commit}"));

        context.output("remoteUrl", Value::String(remote.clone()));
        context.output("commitHash", Value::String(commit));
        if let Some(bare) = local {
            // Check the branch out beside the bare repository: `<name>.git` -> `<name>`.
            let contents = checkout_dir(&bare);
            tokio::fs::create_dir_all(&contents)
                .await
                .map_err(|error| ActionError::failed(format!("creating {}: {error}", contents.display())))?;
            let git_dir = format!("--git-dir={}", bare.display());
            let work_tree = format!("--work-tree={}", contents.display());
            git(&bare, &[&git_dir, &work_tree, "checkout", "--force", "--quiet", &branch, "--", "."], &[])
                .await?;
            let url = url::Url::from_directory_path(&contents).map(String::from).map_err(|()| {
                ActionError::failed(format!("{} is not an absolute path", contents.display()))
            })?;
            context.output("repoContentsUrl", Value::String(url.trim_end_matches('/').to_owned()));
        }
        Ok(())
    }
}

/// Commits the workspace (or its `sourcePath`) as one commit on `branch`, with the step's
/// `gitCommitMessage`, `gitAuthorName` and `gitAuthorEmail` (or the configured defaults), and
/// pushes it to `remote`. Evaluates to the commit hash.
pub(crate) async fn commit_and_push(
    context: &ActionContext<'_>,
    remote: &str,
    branch: &str,
) -> Result<String, ActionError> {
    if !is_safe_branch(branch) {
        return Err(ActionError::Input(format!("defaultBranch {branch} is not a valid branch name")));
    }
    let services = context.services;
    let message = context.text("gitCommitMessage").unwrap_or(&services.commit_message).to_owned();
    let author_name = context.text("gitAuthorName").unwrap_or(&services.git_author.0).to_owned();
    let author_email = context.text("gitAuthorEmail").unwrap_or(&services.git_author.1).to_owned();
    let source = resolve_inside(context.workspace, context.text("sourcePath").unwrap_or("./"))?;
    let identity = [
        ("GIT_AUTHOR_NAME", author_name.as_str()),
        ("GIT_AUTHOR_EMAIL", author_email.as_str()),
        ("GIT_COMMITTER_NAME", author_name.as_str()),
        ("GIT_COMMITTER_EMAIL", author_email.as_str()),
    ];
    git(&source, &["init", "--quiet", &format!("--initial-branch={branch}")], &[]).await?;
    git(&source, &["add", "--all"], &[]).await?;
    git(&source, &["commit", "--quiet", "--allow-empty", "-m", &message], &identity).await?;
    let commit = git(&source, &["rev-parse", "HEAD"], &[]).await?.trim().to_owned();
    git(&source, &["push", "--quiet", remote, &format!("HEAD:refs/heads/{branch}")], &[]).await?;
    Ok(commit)
}

fn is_safe_branch(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with('-')
        && !branch.contains("..")
        && branch.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Checks the remote against the allowlists; evaluates to the bare repository's path for a
/// `file://` remote.
fn allowed_remote(remote: &str, services: &crate::action::Services) -> Result<Option<PathBuf>, ActionError> {
    let refused = |why: String| ActionError::Input(format!("remote {remote} is not allowed: {why}"));
    let parsed = url::Url::parse(remote).map_err(|error| refused(format!("not a URL ({error})")))?;
    match parsed.scheme() {
        "file" => {
            let root = services.local_repositories.as_ref().ok_or_else(|| {
                refused("no scaffolder.publish.git.localDirectory is configured".to_owned())
            })?;
            let path = parsed.to_file_path().map_err(|()| refused("not a local path".to_owned()))?;
            let relative =
                path.strip_prefix(root).map_err(|_| refused(format!("it is outside {}", root.display())))?;
            let inside = resolve_inside(root, &relative.to_string_lossy())?;
            if !inside.to_string_lossy().ends_with(".git") || inside == *root {
                return Err(refused("a local repository's name must end with .git".to_owned()));
            }
            Ok(Some(inside))
        }
        "git" | "http" | "https" | "ssh" => {
            let host = parsed.host_str().unwrap_or_default();
            let with_port = parsed.port().map(|port| format!("{host}:{port}"));
            let allowed = services
                .git_hosts
                .iter()
                .any(|allowed| allowed == host || Some(allowed) == with_port.as_ref());
            if allowed {
                Ok(None)
            } else {
                Err(refused(format!(
                    "host {} is not in scaffolder.publish.git.allowedHosts",
                    with_port.as_deref().unwrap_or(host)
                )))
            }
        }
        other => Err(refused(format!("the {other} scheme is not supported"))),
    }
}

fn checkout_dir(bare: &Path) -> PathBuf {
    let text = bare.to_string_lossy();
    PathBuf::from(text.strip_suffix(".git").unwrap_or(&text).to_owned())
}

/// Runs git in `dir`, isolated from the machine's git configuration and never prompting;
/// evaluates to its standard output.
async fn git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, ActionError> {
    let output = tokio::process::Command::new("git")
        .args(["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| ActionError::failed(format!("running git: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ActionError::failed(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
