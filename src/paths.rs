//! Where liveup looks for what `scripts/setup` installs (`.deps/`: ONNX Runtime and the models).

use std::path::PathBuf;

/// Candidate `.deps` folders, best first: `LIVEUP_DEPS_DIR`, the working directory, the
/// executable's ancestors (a `target/release/liveup` inside a checkout), the source tree.
pub fn deps_dirs() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("LIVEUP_DEPS_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(".deps"));
    }
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|a| a.join(".deps")));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps"));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in candidates {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}
