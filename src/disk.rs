//! Free space on the file systems liveup writes to, so that a nearly full disk pauses new work
//! instead of leaving half-written files behind.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const MIB: u64 = 1024 * 1024;

/// Bytes an unprivileged process may still write on the file system that holds `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `name` is a valid C string and `stats` a writable statvfs the call fills in.
    let result = unsafe { libc::statvfs(name.as_ptr(), stats.as_mut_ptr()) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `stats`.
    let stats = unsafe { stats.assume_init() };
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stats.f_bavail) * u64::from(stats.f_frsize))
}

/// Too little room left where a job writes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "only {} MiB free on the disk that holds {}, {} MiB needed (what is being written plus \
     min_free_space_mb): free some space or lower min_free_space_mb",
    free / MIB,
    path.display(),
    needed.div_ceil(MIB)
)]
pub struct LowSpace {
    pub path: std::path::PathBuf,
    pub free: u64,
    pub needed: u64,
}

/// `Err` when the file system holding `path` has fewer than `needed` bytes free. A file system
/// that cannot be asked passes: the writes themselves will then say what is wrong.
pub fn ensure_free(path: &Path, needed: u64) -> Result<(), LowSpace> {
    if needed == 0 {
        return Ok(());
    }
    match free_bytes(path) {
        Ok(free) if free < needed => Err(LowSpace {
            path: path.to_path_buf(),
            free,
            needed,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_folder_has_some_free_space_and_a_missing_one_is_an_error() {
        assert!(free_bytes(Path::new(".")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent/liveup")).is_err());
    }

    #[test]
    fn asking_for_more_than_the_disk_holds_is_low_space() {
        let free = free_bytes(Path::new(".")).unwrap();
        let err = ensure_free(Path::new("."), free + 1024 * MIB).unwrap_err();
        assert!(err.free <= free + MIB && err.needed > err.free);
        assert!(err.to_string().contains("min_free_space_mb"), "{err}");
        assert!(ensure_free(Path::new("."), 1).is_ok());
        assert!(ensure_free(Path::new("."), 0).is_ok());
    }
}
