//! Whether a requested file may be upscaled: it must lie inside a configured media root, both as
//! written (`..` resolved) and after following symlinks.

use std::path::{Component, Path, PathBuf};

use super::errors::ApiError;

/// The canonical path of `requested`, or the refusal to send: 400 for a relative path, 403
/// outside every root, 404 for a file that is not there.
pub fn authorize(requested: &Path, roots: &[PathBuf]) -> Result<PathBuf, ApiError> {
    if !requested.is_absolute() {
        return Err(ApiError::bad_request(
            "relative_path",
            format!("{} is not an absolute path", requested.display()),
        ));
    }
    let outside = || {
        ApiError::forbidden(format!(
            "{} is outside the configured media roots",
            requested.display()
        ))
    };
    let written = normalize(requested);
    if !roots.iter().any(|root| written.starts_with(root)) {
        return Err(outside());
    }
    let canonical = requested
        .canonicalize()
        .map_err(|_| ApiError::not_found(format!("{} does not exist", requested.display())))?;
    if !roots.iter().any(|root| canonical.starts_with(root)) {
        return Err(outside());
    }
    if !canonical.is_file() {
        return Err(ApiError::bad_request(
            "not_a_file",
            format!("{} is not a file", requested.display()),
        ));
    }
    Ok(canonical)
}

/// `..` and `.` resolved without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_a_root_pass() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        let outside = dir.path().join("private");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("film.mkv"), b"x").unwrap();
        std::fs::write(outside.join("secret.mkv"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.mkv"), root.join("link.mkv")).unwrap();
        let roots = [root.canonicalize().unwrap()];
        let root = &roots[0];

        assert_eq!(
            authorize(&root.join("film.mkv"), &roots).unwrap(),
            root.join("film.mkv")
        );
        let status = |p: PathBuf| authorize(&p, &roots).unwrap_err().status.as_u16();
        assert_eq!(status(root.join("../private/secret.mkv")), 403);
        assert_eq!(
            status(root.join("link.mkv")),
            403,
            "symlink out of the root"
        );
        assert_eq!(status(root.join("missing.mkv")), 404);
        assert_eq!(
            status(outside.join("missing.mkv")),
            403,
            "no probing outside the roots"
        );
        assert_eq!(status(PathBuf::from("film.mkv")), 400);
        assert_eq!(status(root.clone()), 400, "a folder is not a film");
    }
}
