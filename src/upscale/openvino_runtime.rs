//! Finding and loading OpenVINO's C library (`libopenvino_c.so`, from the `openvino` pip wheel,
//! which `scripts/setup` links to `.deps/openvino`). The `openvino` crate loads it at run time,
//! so a missing library is an error, never a panic, and the binary runs without it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use openvino::Core;

use super::UpscaleError;

const LIBRARY_STEM: &str = "libopenvino_c.so";
/// A file, or a folder holding the library.
pub const LIBRARY_ENV: &str = "LIVEUP_OPENVINO_LIBRARY";

static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Where the library is looked for, in order: `LIVEUP_OPENVINO_LIBRARY`, then `.deps/openvino/`
/// in the working directory, beside the executable's ancestors, and in the source tree.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os(LIBRARY_ENV)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend(
        crate::paths::deps_dirs()
            .into_iter()
            .map(|d| d.join("openvino")),
    );
    candidates
}

/// The library in `candidate`: the file itself, or in a folder `libopenvino_c.so` or the
/// versioned name the wheel ships (`libopenvino_c.so.2641`).
fn library_in(candidate: &Path) -> Option<PathBuf> {
    if candidate.is_file() {
        return Some(candidate.to_path_buf());
    }
    let plain = candidate.join(LIBRARY_STEM);
    if plain.is_file() {
        return Some(plain);
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(candidate)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{LIBRARY_STEM}.")))
        })
        .collect();
    versioned.sort();
    versioned.pop()
}

/// Loads the library once per process; the path it came from.
pub fn load() -> Result<&'static Path, UpscaleError> {
    LOADED
        .get_or_init(|| {
            let candidates = library_candidates();
            let Some(library) = candidates.iter().find_map(|c| library_in(c)) else {
                let tried: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                return Err(format!(
                    "OpenVINO library not found (tried: {}); run scripts/setup or set \
                     {LIBRARY_ENV}",
                    tried.join(", ")
                ));
            };
            openvino_sys::library::load_from(&library)
                .map_err(|e| format!("cannot load OpenVINO from {}: {e}", library.display()))?;
            tracing::debug!(library = %library.display(), "loaded OpenVINO");
            Ok(library)
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(|message| UpscaleError::Runtime(message.clone()))
}

/// A new OpenVINO core (each network compiles on its own, with its own settings).
pub fn core() -> Result<Core, UpscaleError> {
    load()?;
    Core::new().map_err(|e| UpscaleError::Runtime(format!("OpenVINO does not start: {e}")))
}

/// The loaded library's version, e.g. "2026.4.1"; `None` before it is loaded.
pub fn version() -> Option<String> {
    LOADED.get()?.as_ref().ok()?;
    let build = openvino::version().build_number;
    Some(build.split('-').next().unwrap_or(&build).to_string())
}

/// The devices OpenVINO can run on here, by its names ("CPU", "GPU", "GPU.1", "NPU").
pub fn devices(core: &Core) -> Result<Vec<String>, UpscaleError> {
    let devices = core
        .available_devices()
        .map_err(|e| UpscaleError::Runtime(format!("OpenVINO lists no devices: {e}")))?;
    Ok(devices.iter().map(|d| d.as_ref().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_found_in_a_folder_by_its_versioned_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        let versioned = dir.path().join("libopenvino_c.so.2641");
        std::fs::write(&versioned, b"").unwrap();
        std::fs::write(dir.path().join("libopenvino.so.2641"), b"").unwrap();
        assert_eq!(library_in(dir.path()), Some(versioned.clone()));
        assert_eq!(library_in(&versioned), Some(versioned));
        let plain = dir.path().join("libopenvino_c.so");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(library_in(dir.path()), Some(plain));
    }
}
