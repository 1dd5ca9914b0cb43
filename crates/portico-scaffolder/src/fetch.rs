//! `fetch:plain` and `fetch:template` over a local directory (reference §5.2, §5.3).
//!
//! The skeleton has already been fetched into a local directory; this module walks it and writes
//! the result under a target directory. Everything here is synchronous file IO: callers run it on
//! a blocking thread.
//!
//! The skeleton is untrusted, so besides Backstage's algorithm we refuse what could write outside
//! the target or read outside the skeleton: symlinks in the skeleton whose target leaves it,
//! rendered paths with `..` segments, and existing symlinks inside the target that a write would
//! follow. Errors carry their cause in the message, because callers show only the message.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use serde_json::Value as Json;

use crate::render::{FileOptions, FileTemplates, Integration, RenderError};

/// How much of a file is searched for a NUL byte when deciding whether it is binary; the same
/// window git and most `isbinaryfile` heuristics use.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// Why fetching or templating a directory failed. Messages name the offending path or input.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The `fetch:template` input is inconsistent (§5.3 step 2).
    #[error("invalid fetch:template input: {message}")]
    InvalidInput { message: String },
    /// A `copyWithoutTemplating`/`copyWithoutRender` pattern is not a valid glob.
    #[error("invalid glob pattern {pattern:?}: {error}")]
    InvalidGlob { pattern: String, error: globset::Error },
    /// Reading or writing the file system failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io { action: &'static str, path: PathBuf, error: io::Error },
    /// A skeleton symlink points outside the skeleton (or would, once written to the target).
    #[error("symlink {path} points outside the template directory (to {link_target}); refusing to copy it")]
    SymlinkEscapes { path: String, link_target: String },
    /// A rendered path would leave the target directory.
    #[error("path {path} renders to {rendered:?}, which leaves the target directory")]
    PathEscapes { path: String, rendered: String },
    /// Writing would follow a symlink that already exists inside the target directory.
    #[error("refusing to write {path}: {} is a symlink", link.display())]
    SymlinkInTarget { path: String, link: PathBuf },
    /// A file's path or contents could not be rendered.
    #[error("cannot render {path}: {error}")]
    Render { path: String, error: RenderError },
    /// A file that must be text is not UTF-8.
    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    /// A skeleton file name is not UTF-8, so it cannot be rendered.
    #[error("file name {} is not UTF-8", path.display())]
    NonUtf8Name { path: PathBuf },
    /// The source is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// The target lies inside the source, which would copy the output into itself.
    #[error("target {} must not be inside the template directory {}", target.display(), source_dir.display())]
    TargetInsideSource { target: PathBuf, source_dir: PathBuf },
}

/// The `fetch:template` / `fetch:template:file` inputs that shape the copy.
#[derive(Debug, Clone, Default)]
pub struct TemplateOptions {
    pub values: Json,
    pub copy_without_templating: Vec<String>,
    pub copy_without_render: Vec<String>,
    pub cookiecutter_compat: bool,
    /// Already normalised: `.njk` for `true`, leading dot added.
    pub template_file_extension: Option<String>,
    pub replace: bool,
    pub trim_blocks: bool,
    pub lstrip_blocks: bool,
}

impl TemplateOptions {
    /// From a rendered `fetch:template` input object; applies the validation of §5.3 step 2.
    ///
    /// Presence is what counts, as in Backstage where an empty array is truthy: giving both copy
    /// lists is an error even when both are empty. A missing or `null` `values` is `{}`.
    pub fn from_input(input: &Json) -> Result<TemplateOptions, FetchError> {
        let present = |key: &str| input.get(key).is_some_and(|value| !value.is_null());
        if present("copyWithoutRender") && present("copyWithoutTemplating") {
            return Err(invalid_input(
                "copyWithoutRender and copyWithoutTemplating cannot be used at the same time",
            ));
        }
        let copy_without_render = glob_list(input, "copyWithoutRender")?;
        let copy_without_templating = glob_list(input, "copyWithoutTemplating")?;
        let cookiecutter_compat = flag(input, "cookiecutterCompat")?;
        let template_file_extension = extension(input)?;
        if template_file_extension.is_some()
            && (present("copyWithoutRender") || present("copyWithoutTemplating") || cookiecutter_compat)
        {
            return Err(invalid_input(
                "templateFileExtension cannot be combined with copyWithoutRender, copyWithoutTemplating or cookiecutterCompat",
            ));
        }
        let values = match input.get("values") {
            None | Some(Json::Null) => Json::Object(serde_json::Map::new()),
            Some(values) => values.clone(),
        };
        Ok(TemplateOptions {
            values,
            copy_without_templating,
            copy_without_render,
            cookiecutter_compat,
            template_file_extension,
            replace: flag(input, "replace")?,
            trim_blocks: flag(input, "trimBlocks")?,
            lstrip_blocks: flag(input, "lstripBlocks")?,
        })
    }

    /// The variables templates see: `{values}`, or `{cookiecutter}` in cookiecutter mode.
    fn context(&self) -> Json {
        let key = if self.cookiecutter_compat { "cookiecutter" } else { "values" };
        let values = match &self.values {
            Json::Null => Json::Object(serde_json::Map::new()),
            values => values.clone(),
        };
        let mut context = serde_json::Map::new();
        context.insert(key.to_owned(), values);
        Json::Object(context)
    }

    fn file_templates(&self, integrations: &[Integration]) -> FileTemplates {
        let options = FileOptions {
            cookiecutter: self.cookiecutter_compat,
            trim_blocks: self.trim_blocks,
            lstrip_blocks: self.lstrip_blocks,
        };
        FileTemplates::new(options, integrations.to_vec())
    }
}

/// fetch:plain: copies a whole local directory tree (dot-files included, symlinks copied as
/// symlinks, modes kept) into `target`, which is created. Existing files are overwritten.
///
/// Symlinks pointing outside `source` are refused, as in [`template_tree`].
pub fn copy_tree(source: &Path, target: &Path) -> Result<(), FetchError> {
    ensure_target_outside_source(source, target)?;
    let entries = list_entries(source)?;
    create_dir_all(target)?;
    let mut directories = Vec::new();
    for entry in &entries {
        let from = source.join(&entry.relative);
        let to = target.join(&entry.relative);
        ensure_no_symlinked_parent(target, &entry.relative)?;
        match entry.kind {
            EntryKind::Directory => {
                ensure_not_symlink(&to, &entry.relative)?;
                create_dir_all(&to)?;
                directories.push((to, entry.mode));
            }
            EntryKind::File => {
                let contents = read(&from)?;
                write_file(&to, &contents, entry.mode, true)?;
            }
            EntryKind::Symlink => {
                let link_target = checked_link_target(source, &entry.relative)?;
                write_symlink(&to, &link_target, true)?;
            }
        }
    }
    // Directory modes go on last, deepest first, so a read-only directory is filled before it
    // becomes read-only.
    for (directory, mode) in directories.iter().rev() {
        set_mode(directory, *mode)?;
    }
    Ok(())
}

/// fetch:template over a local skeleton directory per §5.3 steps 4-7.
///
/// Returns the target-relative paths of the files and symlinks written (not directories), sorted.
pub fn template_tree(
    source: &Path,
    target: &Path,
    options: &TemplateOptions,
    integrations: &[Integration],
) -> Result<Vec<String>, FetchError> {
    ensure_target_outside_source(source, target)?;
    let copy_only = CopyOnlyPatterns::new(copy_only_patterns(options))?;
    let renderer = TreeRenderer {
        templates: options.file_templates(integrations),
        context: options.context(),
        options,
        copy_only,
    };
    let entries = list_entries(source)?;
    create_dir_all(target)?;
    let mut written = Vec::new();
    for entry in &entries {
        let location = entry_location(entry)?;
        let Some(plan) = renderer.plan(entry, &location)? else {
            continue;
        };
        if write_entry(source, target, entry, &location, &plan, &renderer)? {
            written.push(plan.output);
        }
    }
    written.sort();
    written.dedup();
    Ok(written)
}

/// fetch:template:file: renders one file to `target` (a file path); honours `replace`.
///
/// An existing target is left alone unless `replace` is set. The source's mode bits are kept.
pub fn template_file(
    source: &Path,
    target: &Path,
    options: &TemplateOptions,
    integrations: &[Integration],
) -> Result<(), FetchError> {
    if exists_no_follow(target) && !options.replace {
        return Ok(());
    }
    let contents = read(source)?;
    let text = String::from_utf8(contents).map_err(|_| FetchError::NotText { path: source.to_owned() })?;
    let rendered = options
        .file_templates(integrations)
        .render(&text, &options.context())
        .map_err(|error| FetchError::Render { path: source.display().to_string(), error })?;
    let mode = metadata(source)?.permissions().mode();
    if let Some(parent) = target.parent() {
        create_dir_all(parent)?;
    }
    write_file(target, rendered.as_bytes(), mode, true)
}

fn invalid_input(message: &str) -> FetchError {
    FetchError::InvalidInput { message: message.to_owned() }
}

fn glob_list(input: &Json, key: &str) -> Result<Vec<String>, FetchError> {
    match input.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::String(pattern) => Ok(pattern.clone()),
                _ => Err(invalid_input(&format!("{key} must be an array of glob pattern strings"))),
            })
            .collect(),
        Some(_) => Err(invalid_input(&format!("{key} must be an array"))),
    }
}

fn flag(input: &Json, key: &str) -> Result<bool, FetchError> {
    match input.get(key) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(value)) => Ok(*value),
        Some(_) => Err(invalid_input(&format!("{key} must be a boolean"))),
    }
}

/// `templateFileExtension`: `true` is `.njk`, a string gets a leading dot; `false` and `""` are
/// off (Backstage tests truthiness).
fn extension(input: &Json) -> Result<Option<String>, FetchError> {
    match input.get("templateFileExtension") {
        None | Some(Json::Null) | Some(Json::Bool(false)) => Ok(None),
        Some(Json::Bool(true)) => Ok(Some(".njk".to_owned())),
        Some(Json::String(text)) if text.is_empty() => Ok(None),
        Some(Json::String(text)) if text.starts_with('.') => Ok(Some(text.clone())),
        Some(Json::String(text)) => Ok(Some(format!(".{text}"))),
        Some(_) => Err(invalid_input("templateFileExtension must be a string or a boolean")),
    }
}

/// The copy-only list in force and whether matched entries still get their path rendered
/// (`copyWithoutTemplating`) or keep it raw (the deprecated `copyWithoutRender`).
fn copy_only_patterns(options: &TemplateOptions) -> (&[String], bool) {
    if options.copy_without_render.is_empty() {
        (&options.copy_without_templating, true)
    } else {
        (&options.copy_without_render, false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Directory,
    File,
    Symlink,
}

/// One skeleton entry, relative to the skeleton root.
#[derive(Debug)]
struct Entry {
    relative: PathBuf,
    kind: EntryKind,
    mode: u32,
}

/// Every directory, regular file and symlink under `root`, dot-files included, symlinks not
/// followed, sorted so that a directory comes before its contents.
///
/// Sockets, FIFOs and devices are skipped: reading a FIFO would block forever.
fn list_entries(root: &Path) -> Result<Vec<Entry>, FetchError> {
    if !metadata(root)?.is_dir() {
        return Err(FetchError::NotADirectory { path: root.to_owned() });
    }
    let mut entries = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(directory) = pending.pop() {
        let absolute = root.join(&directory);
        let listing = fs::read_dir(&absolute).map_err(io_error("list", &absolute))?;
        for child in listing {
            let child = child.map_err(io_error("list", &absolute))?;
            let relative = directory.join(child.file_name());
            let child_metadata =
                fs::symlink_metadata(child.path()).map_err(io_error("inspect", &child.path()))?;
            let file_type = child_metadata.file_type();
            let kind = if file_type.is_symlink() {
                EntryKind::Symlink
            } else if file_type.is_dir() {
                pending.push(relative.clone());
                EntryKind::Directory
            } else if file_type.is_file() {
                EntryKind::File
            } else {
                continue;
            };
            entries.push(Entry { relative, kind, mode: child_metadata.permissions().mode() });
        }
    }
    entries.sort_by(|left, right| left.relative.cmp(&right.relative));
    Ok(entries)
}

/// The entry's path as templates and globs see it: `/`-separated, directories ending in `/`.
fn entry_location(entry: &Entry) -> Result<String, FetchError> {
    let Some(text) = entry.relative.to_str() else {
        return Err(FetchError::NonUtf8Name { path: entry.relative.clone() });
    };
    Ok(match entry.kind {
        EntryKind::Directory => format!("{text}/"),
        _ => text.to_owned(),
    })
}

/// The compiled `copyWithoutTemplating` / `copyWithoutRender` globs.
///
/// Globs match paths relative to the skeleton root as minimatch does: `*` stays within one path
/// segment, dot-files match, and `**/` matches zero or more directories, so `**/*.png` matches
/// a top-level `logo.png` too. A pattern ending in `/` only matches directories, a leading `./`
/// is ignored, and a leading `!` excludes what the other patterns matched.
#[derive(Debug)]
struct CopyOnlyPatterns {
    include: Vec<(GlobMatcher, bool)>,
    exclude: Vec<(GlobMatcher, bool)>,
    render_matched_paths: bool,
}

impl CopyOnlyPatterns {
    fn new((patterns, render_matched_paths): (&[String], bool)) -> Result<CopyOnlyPatterns, FetchError> {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for pattern in patterns {
            let (negated, body) = match pattern.strip_prefix('!') {
                Some(body) => (true, body),
                None => (false, pattern.as_str()),
            };
            let body = body.strip_prefix("./").unwrap_or(body);
            let (directories_only, body) = match body.strip_suffix('/') {
                Some(body) => (true, body),
                None => (false, body),
            };
            let glob = GlobBuilder::new(body)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|error| FetchError::InvalidGlob { pattern: pattern.clone(), error })?;
            let compiled = (glob.compile_matcher(), directories_only);
            if negated {
                exclude.push(compiled);
            } else {
                include.push(compiled);
            }
        }
        Ok(CopyOnlyPatterns { include, exclude, render_matched_paths })
    }

    /// Whether the entry at `location` (directories with a trailing `/`) is copy-only.
    fn matches(&self, location: &str) -> bool {
        let is_directory = location.ends_with('/');
        let path = location.trim_end_matches('/');
        let hit = |patterns: &[(GlobMatcher, bool)]| {
            patterns.iter().any(|(matcher, directories_only)| {
                (!directories_only || is_directory) && matcher.is_match(path)
            })
        };
        hit(&self.include) && !hit(&self.exclude)
    }
}

/// What to do with one entry: where it goes and whether its contents are rendered.
#[derive(Debug)]
struct Plan {
    /// Target-relative, normalised, `/`-separated, no trailing `/`.
    output: String,
    render_contents: bool,
}

/// Everything needed to render the entries of one skeleton.
#[derive(Debug)]
struct TreeRenderer<'a> {
    templates: FileTemplates,
    context: Json,
    options: &'a TemplateOptions,
    copy_only: CopyOnlyPatterns,
}

impl TreeRenderer<'_> {
    /// §5.3 step 6: decides the output path; `None` when the entry is skipped.
    fn plan(&self, entry: &Entry, location: &str) -> Result<Option<Plan>, FetchError> {
        let (render_contents, rendered) = match &self.options.template_file_extension {
            Some(extension) => {
                // Directories are never template files, whatever their name.
                let is_template = entry.kind != EntryKind::Directory && extname(location) == extension;
                let path = if is_template { &location[..location.len() - extension.len()] } else { location };
                (is_template, self.render_path(location, path)?)
            }
            None => {
                let copy_only = self.copy_only.matches(location);
                let rendered = if copy_only && !self.copy_only.render_matched_paths {
                    location.to_owned()
                } else {
                    self.render_path(location, location)?
                };
                (!copy_only, rendered)
            }
        };
        if rendered.is_empty() || rendered.starts_with('/') || rendered.contains("//") {
            return Ok(None);
        }
        let output = normalize_output(location, &rendered)?;
        if output.is_empty() {
            return Ok(None);
        }
        Ok(Some(Plan { output, render_contents }))
    }

    fn render_path(&self, location: &str, path: &str) -> Result<String, FetchError> {
        self.templates
            .render(path, &self.context)
            .map_err(|error| FetchError::Render { path: location.to_owned(), error })
    }

    fn render_contents(&self, location: &str, text: &str) -> Result<String, FetchError> {
        self.templates
            .render(text, &self.context)
            .map_err(|error| FetchError::Render { path: location.to_owned(), error })
    }
}

/// Node's `path.extname`: the last `.` suffix of the final segment, not counting a leading dot.
fn extname(location: &str) -> &str {
    let name = location.rsplit('/').next().unwrap_or(location);
    match name.rfind('.') {
        Some(dot) if dot > 0 => &name[dot..],
        _ => "",
    }
}

/// Drops `.` segments and a trailing `/`; a `..` segment is an error because it could leave the
/// target directory.
fn normalize_output(location: &str, rendered: &str) -> Result<String, FetchError> {
    let mut segments = Vec::new();
    for segment in rendered.trim_end_matches('/').split('/') {
        match segment {
            "." => {}
            ".." => {
                return Err(FetchError::PathEscapes {
                    path: location.to_owned(),
                    rendered: rendered.to_owned(),
                });
            }
            segment => segments.push(segment),
        }
    }
    Ok(segments.join("/"))
}

/// Writes one planned entry; `false` when it was skipped because its target exists.
fn write_entry(
    source: &Path,
    target: &Path,
    entry: &Entry,
    location: &str,
    plan: &Plan,
    renderer: &TreeRenderer<'_>,
) -> Result<bool, FetchError> {
    let to = target.join(&plan.output);
    ensure_no_symlinked_parent(target, Path::new(&plan.output))?;
    let replace = renderer.options.replace;
    if exists_no_follow(&to) && !replace {
        return Ok(false);
    }
    if let Some(parent) = to.parent() {
        create_dir_all(parent)?;
    }
    let from = source.join(&entry.relative);
    match entry.kind {
        EntryKind::Directory => {
            create_dir_all(&to)?;
            return Ok(false);
        }
        EntryKind::Symlink => {
            let link_target = checked_link_target(source, &entry.relative)?;
            ensure_link_stays_inside(&plan.output, &link_target, location)?;
            write_symlink(&to, &link_target, replace)?;
        }
        EntryKind::File => {
            let contents = read(&from)?;
            let contents = match (plan.render_contents, as_text(&contents)) {
                (true, Some(text)) => renderer.render_contents(location, text)?.into_bytes(),
                // Binary files and copy-only files are written byte for byte.
                _ => contents,
            };
            write_file(&to, &contents, entry.mode, replace)?;
        }
    }
    Ok(true)
}

/// The contents as text, or `None` when they look binary: a NUL byte near the start, or not
/// UTF-8 at all.
fn as_text(contents: &[u8]) -> Option<&str> {
    let window = &contents[..contents.len().min(BINARY_SNIFF_BYTES)];
    if window.contains(&0) {
        return None;
    }
    std::str::from_utf8(contents).ok()
}

/// The symlink's target, refused when it is absolute or climbs out of `root`.
///
/// The check is lexical: the link's parent directories inside the skeleton are real directories
/// (the walk does not follow symlinks), and a chain through another symlink is caught when that
/// other symlink is checked.
fn checked_link_target(root: &Path, relative: &Path) -> Result<PathBuf, FetchError> {
    let absolute = root.join(relative);
    let link_target = fs::read_link(&absolute).map_err(io_error("read symlink", &absolute))?;
    let parent = relative.parent().unwrap_or(Path::new(""));
    if !stays_inside(parent, &link_target) {
        return Err(FetchError::SymlinkEscapes {
            path: relative.display().to_string(),
            link_target: link_target.display().to_string(),
        });
    }
    Ok(link_target)
}

/// The same check from the link's new place: rendering may move a link to a shallower
/// directory, where the same relative target would reach further up.
fn ensure_link_stays_inside(output: &str, link_target: &Path, location: &str) -> Result<(), FetchError> {
    let parent = Path::new(output).parent().unwrap_or(Path::new(""));
    if stays_inside(parent, link_target) {
        return Ok(());
    }
    Err(FetchError::SymlinkEscapes {
        path: location.to_owned(),
        link_target: link_target.display().to_string(),
    })
}

/// Whether `link_target`, relative to the root-relative directory `parent`, stays under the root.
fn stays_inside(parent: &Path, link_target: &Path) -> bool {
    let mut depth: usize =
        parent.components().filter(|component| matches!(component, Component::Normal(_))).count();
    for component in link_target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Refuses to write through a symlink that already sits in the target (left by an earlier step,
/// say): following it could write anywhere on the host.
fn ensure_no_symlinked_parent(target: &Path, relative: &Path) -> Result<(), FetchError> {
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    let mut current = target.to_path_buf();
    for component in parent.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(found) if found.file_type().is_symlink() => {
                return Err(FetchError::SymlinkInTarget {
                    path: relative.display().to_string(),
                    link: current,
                });
            }
            Ok(_) => {}
            // Not there yet: nothing below it can be a symlink either.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// A directory about to receive a mode must not be a symlink: the mode would land on whatever
/// it points to.
fn ensure_not_symlink(path: &Path, relative: &Path) -> Result<(), FetchError> {
    match fs::symlink_metadata(path) {
        Ok(found) if found.file_type().is_symlink() => {
            Err(FetchError::SymlinkInTarget { path: relative.display().to_string(), link: path.to_owned() })
        }
        _ => Ok(()),
    }
}

/// Refuses a target inside the source: the copy would read its own output.
fn ensure_target_outside_source(source: &Path, target: &Path) -> Result<(), FetchError> {
    let source_dir = fs::canonicalize(source).map_err(io_error("resolve", source))?;
    let resolved_target = resolve_lenient(target);
    if resolved_target.starts_with(&source_dir) {
        return Err(FetchError::TargetInsideSource {
            target: target.to_owned(),
            source_dir: source.to_owned(),
        });
    }
    Ok(())
}

/// `path` with its longest existing prefix canonicalized; the rest is appended as written.
fn resolve_lenient(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path.to_path_buf();
    loop {
        if let Ok(resolved) = fs::canonicalize(&existing) {
            return missing
                .iter()
                .rev()
                .fold(resolved, |resolved, name: &std::ffi::OsString| resolved.join(name));
        }
        match (existing.file_name().map(|name| name.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn exists_no_follow(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Writes `contents` with `mode`. With `replace`, an existing file or symlink is removed first,
/// so a read-only file can be replaced and a symlink is never written through.
fn write_file(path: &Path, contents: &[u8], mode: u32, replace: bool) -> Result<(), FetchError> {
    if replace {
        remove_existing_file(path)?;
    }
    fs::write(path, contents).map_err(io_error("write", path))?;
    set_mode(path, mode)
}

fn write_symlink(path: &Path, link_target: &Path, replace: bool) -> Result<(), FetchError> {
    if replace {
        remove_existing_file(path)?;
    }
    std::os::unix::fs::symlink(link_target, path).map_err(io_error("create symlink", path))
}

/// Removes a file or symlink at `path`; a directory there is left for the write to fail on.
fn remove_existing_file(path: &Path) -> Result<(), FetchError> {
    match fs::symlink_metadata(path) {
        Ok(found) if !found.is_dir() => fs::remove_file(path).map_err(io_error("replace", path)),
        _ => Ok(()),
    }
}

/// Keeps permission bits as they were (umask not applied); file-type bits are not ours to set.
fn set_mode(path: &Path, mode: u32) -> Result<(), FetchError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io_error("set permissions of", path))
}

fn create_dir_all(path: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(path).map_err(io_error("create directory", path))
}

fn read(path: &Path) -> Result<Vec<u8>, FetchError> {
    fs::read(path).map_err(io_error("read", path))
}

fn metadata(path: &Path) -> Result<fs::Metadata, FetchError> {
    fs::metadata(path).map_err(io_error("read", path))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_owned();
    move |error| FetchError::Io { action, path, error }
}

#[cfg(test)]
mod tests;
