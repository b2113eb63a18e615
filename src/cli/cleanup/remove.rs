//! The only code in liveup that deletes folders, so every check lives here: a folder is removed
//! only when it is a real directory directly inside `hls_root` (after resolving every link), when
//! it neither is nor holds `output_root` or any job's final file, and its contents are removed
//! without ever following a symbolic link (a link is unlinked, its target left alone).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What may never be deleted, whatever a folder's job says.
pub struct Protected {
    /// `hls_root`, canonical.
    pub hls_root: PathBuf,
    /// `output_root`, canonical.
    pub output_root: PathBuf,
    /// Every final file any job names, canonical where it exists.
    pub finals: HashSet<PathBuf>,
}

/// Size and newest modification time of everything under `dir`, links counted as themselves.
pub fn tree_facts(dir: &Path) -> io::Result<(u64, SystemTime)> {
    let mut bytes = 0;
    let mut newest = fs::symlink_metadata(dir)?.modified()?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = fs::symlink_metadata(entry.path())?;
        if metadata.is_dir() {
            let (inner, when) = tree_facts(&entry.path())?;
            bytes += inner;
            newest = newest.max(when);
        } else {
            bytes += metadata.len();
            newest = newest.max(metadata.modified()?);
        }
    }
    Ok((bytes, newest))
}

/// Why `folder` must not be deleted, or `Ok` when it may be.
pub fn check(folder: &Path, protected: &Protected) -> Result<(), String> {
    let metadata = fs::symlink_metadata(folder)
        .map_err(|e| format!("cannot inspect {}: {e}", folder.display()))?;
    if metadata.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link", folder.display()));
    }
    if !metadata.is_dir() {
        return Err(format!("{} is not a folder", folder.display()));
    }
    let canonical = folder
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", folder.display()))?;
    if canonical.parent() != Some(protected.hls_root.as_path()) {
        return Err(format!(
            "{} is outside hls_root {}",
            canonical.display(),
            protected.hls_root.display()
        ));
    }
    if protected.output_root.starts_with(&canonical) {
        return Err(format!(
            "{} holds output_root {}",
            canonical.display(),
            protected.output_root.display()
        ));
    }
    if let Some(final_file) = protected.finals.iter().find(|f| f.starts_with(&canonical)) {
        return Err(format!(
            "{} holds the final file {}",
            canonical.display(),
            final_file.display()
        ));
    }
    Ok(())
}

/// Deletes `folder` after [`check`]; returns the bytes freed.
pub fn remove(folder: &Path, protected: &Protected) -> Result<u64, String> {
    check(folder, protected)?;
    remove_tree(folder, protected).map_err(|e| format!("removing {}: {e}", folder.display()))
}

fn remove_tree(dir: &Path, protected: &Protected) -> io::Result<u64> {
    let mut freed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        // DirEntry::file_type does not follow links: a link to a folder is a link here.
        if entry.file_type()?.is_dir() {
            freed += remove_tree(&path, protected)?;
            continue;
        }
        if protected.finals.contains(&path) {
            return Err(io::Error::other(format!(
                "{} is a final file; stopped",
                path.display()
            )));
        }
        let length = fs::symlink_metadata(&path)?.len();
        fs::remove_file(&path)?;
        freed += length;
    }
    fs::remove_dir(dir)?;
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(root: &Path, output_root: &Path) -> Protected {
        Protected {
            hls_root: root.canonicalize().unwrap(),
            output_root: output_root.canonicalize().unwrap(),
            finals: HashSet::new(),
        }
    }

    #[test]
    fn a_link_inside_is_unlinked_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hls");
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir_all(root.join("job/sub")).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(elsewhere.join("precious"), b"keep").unwrap();
        fs::write(root.join("job/sub/segment_00000.ts"), b"12345").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("job/link")).unwrap();
        let freed = remove(&root.join("job"), &protected(&root, &elsewhere)).unwrap();
        assert!(freed >= 5);
        assert!(!root.join("job").exists());
        assert_eq!(fs::read(elsewhere.join("precious")).unwrap(), b"keep");
    }

    #[test]
    fn refuses_links_folders_elsewhere_and_homes_of_final_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hls");
        let out = dir.path().join("out");
        fs::create_dir_all(root.join("real")).unwrap();
        fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&out, root.join("link")).unwrap();
        let mut guard = protected(&root, &out);
        assert!(check(&root.join("link"), &guard)
            .unwrap_err()
            .contains("symbolic link"));
        assert!(check(&out, &guard)
            .unwrap_err()
            .contains("outside hls_root"));
        assert!(check(&root.join("real/.."), &guard).is_err());
        let final_file = root.join("real/film.upscaled.ts");
        fs::write(&final_file, b"film").unwrap();
        guard.finals.insert(final_file.canonicalize().unwrap());
        assert!(remove(&root.join("real"), &guard)
            .unwrap_err()
            .contains("final file"));
        assert!(final_file.exists());
    }
}
