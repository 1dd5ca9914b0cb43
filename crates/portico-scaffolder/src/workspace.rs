//! Paths inside a task's workspace. Every path an action reads or writes goes through
//! `resolve_inside`, so no template can reach outside the directory it was given.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Backstage's wording, which templates' authors know.
    #[error("Relative path is not allowed to refer to a directory outside its parent: {path}")]
    Outside { path: String },
    #[error("path {path} leads outside the workspace through a symbolic link")]
    Symlink { path: String },
}

/// Joins `relative` to `base`, refusing absolute paths, `..` that climbs out of `base`, and
/// existing symbolic links on the way that point outside `base`.
pub fn resolve_inside(base: &Path, relative: &str) -> Result<PathBuf, PathError> {
    let outside = || PathError::Outside { path: relative.to_owned() };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop().ok_or_else(outside)?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    let mut path = base.to_path_buf();
    path.extend(parts);
    // The longest part of the path that exists, with links resolved, must stay inside.
    let canonical_base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    let mut existing = path.as_path();
    loop {
        if existing.symlink_metadata().is_ok() {
            if let Ok(resolved) = existing.canonicalize() {
                if !resolved.starts_with(&canonical_base) {
                    return Err(PathError::Symlink { path: relative.to_owned() });
                }
            }
            break;
        }
        match existing.parent() {
            Some(parent) if parent.starts_with(base) => existing = parent,
            _ => break,
        }
    }
    Ok(path)
}

/// Every entry under `root`, without following symbolic links, as `(relative path, is a
/// directory)`, sorted by path. Unreadable directories are skipped.
pub fn entries(root: &Path) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(listing) = std::fs::read_dir(&dir) else { continue };
        for entry in listing.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if let Ok(relative) = path.strip_prefix(root) {
                out.push((relative.to_string_lossy().into_owned(), is_dir));
            }
            if is_dir {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::{resolve_inside, PathError};

    #[test]
    fn paths_stay_inside_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        assert_eq!(resolve_inside(base, "./a/b.txt").unwrap(), base.join("a/b.txt"));
        assert_eq!(resolve_inside(base, "a/../c").unwrap(), base.join("c"));
        assert_eq!(resolve_inside(base, "").unwrap(), base.to_path_buf());
        for escaping in ["../x", "a/../../x", "/etc/passwd"] {
            assert!(matches!(resolve_inside(base, escaping), Err(PathError::Outside { .. })), "{escaping}");
        }
    }

    #[test]
    fn links_out_of_the_base_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("in-target"), dir.path().join("in")).unwrap();
        std::fs::create_dir(dir.path().join("in-target")).unwrap();
        assert!(matches!(resolve_inside(dir.path(), "out/file"), Err(PathError::Symlink { .. })));
        assert!(resolve_inside(dir.path(), "in/file").is_ok());
    }
}
