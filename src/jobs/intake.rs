//! The one way a film becomes a job, whoever asks (a webhook, the API, the library watcher): the
//! path must lie inside a configured media root, both as written (`..` resolved) and after
//! following symlinks, and be a file; then its job is started or joined.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::{JobError, JobManager, Priority, Submitted};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{} is not an absolute path", .0.display())]
    Relative(PathBuf),
    /// Also what a missing file outside the roots gets: nothing is probed there.
    #[error("{} is outside the configured media roots", .0.display())]
    OutsideRoots(PathBuf),
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Checks `requested` and starts or joins its job. Touches the file system: call it off the
/// async workers.
pub fn admit(
    manager: &Arc<JobManager>,
    roots: &[PathBuf],
    requested: &Path,
    name: Option<String>,
    priority: Priority,
) -> Result<Submitted, IntakeError> {
    let source = authorize(requested, roots)?;
    Ok(manager.submit(&source, name, priority)?)
}

/// The canonical path of `requested` when it may be upscaled.
pub fn authorize(requested: &Path, roots: &[PathBuf]) -> Result<PathBuf, IntakeError> {
    let owned = || requested.to_path_buf();
    if !requested.is_absolute() {
        return Err(IntakeError::Relative(owned()));
    }
    let inside = |path: &Path| roots.iter().any(|root| path.starts_with(root));
    if !inside(&normalize(requested)) {
        return Err(IntakeError::OutsideRoots(owned()));
    }
    let canonical = requested
        .canonicalize()
        .map_err(|_| IntakeError::Missing(owned()))?;
    if !inside(&canonical) {
        return Err(IntakeError::OutsideRoots(owned()));
    }
    if !canonical.is_file() {
        return Err(IntakeError::NotAFile(owned()));
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
        let refusal = |p: PathBuf| authorize(&p, &roots).unwrap_err();
        assert!(matches!(
            refusal(root.join("../private/secret.mkv")),
            IntakeError::OutsideRoots(_)
        ));
        assert!(
            matches!(refusal(root.join("link.mkv")), IntakeError::OutsideRoots(_)),
            "symlink out of the root"
        );
        assert!(matches!(
            refusal(root.join("missing.mkv")),
            IntakeError::Missing(_)
        ));
        assert!(
            matches!(
                refusal(outside.join("missing.mkv")),
                IntakeError::OutsideRoots(_)
            ),
            "no probing outside the roots"
        );
        assert!(matches!(
            refusal(PathBuf::from("film.mkv")),
            IntakeError::Relative(_)
        ));
        assert!(
            matches!(refusal(root.clone()), IntakeError::NotAFile(_)),
            "a folder is not a film"
        );
    }
}
