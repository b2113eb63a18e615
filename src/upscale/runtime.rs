//! Finding and loading ONNX Runtime's C library. `ort` is built with `load-dynamic`, so nothing is
//! linked at build time and a missing library is an error at run time, never a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::UpscaleError;

const LIBRARY_NAME: &str = "libonnxruntime.so";

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
static LOADED_FROM: OnceLock<PathBuf> = OnceLock::new();

/// Where the library is looked for, in order: the configured path, `ORT_DYLIB_PATH`, then
/// `.deps/lib/` in the working directory, beside the executable's ancestors, and in the source tree.
pub fn library_candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = configured.map(Path::to_path_buf).into_iter().collect();
    if let Some(env) = std::env::var_os("ORT_DYLIB_PATH") {
        candidates.push(PathBuf::from(env));
    }
    for base in crate::paths::deps_dirs() {
        candidates.push(base.join("lib").join(LIBRARY_NAME));
    }
    candidates
}

/// Loads ONNX Runtime once per process and returns its environment.
pub fn environment(configured: Option<&Path>) -> Result<&'static Environment, UpscaleError> {
    let loaded = ENVIRONMENT.get_or_init(|| load(configured));
    loaded
        .as_ref()
        .map_err(|message| UpscaleError::Runtime(message.clone()))
}

fn load(configured: Option<&Path>) -> Result<Environment, String> {
    let candidates = library_candidates(configured);
    let explicit = configured.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some();
    let library = if explicit {
        candidates.first().cloned()
    } else {
        candidates.iter().find(|p| p.is_file()).cloned()
    };
    let Some(library) = library.filter(|p| p.is_file()) else {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "ONNX Runtime library not found (tried: {}); run scripts/setup or set ORT_DYLIB_PATH",
            tried.join(", ")
        ));
    };
    preload_cuda_libraries(&library);
    let builder = ort::init_from(&library)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?;
    let environment = builder
        .with_name("liveup")
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
    tracing::debug!(library = %library.display(), "loaded ONNX Runtime");
    let _ = LOADED_FROM.set(library);
    Ok(environment)
}

/// The CUDA and cuDNN libraries ONNX Runtime's CUDA provider links to (1.31's GPU build: CUDA
/// 13, cuDNN 9), in the order they depend on each other.
pub const CUDA_LIBRARIES: [&str; 6] = [
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libcufft.so.12",
    "libcudnn.so.9",
];

/// `scripts/setup`'s GPU build keeps NVIDIA's runtime wheels in `.deps/nvidia`, beside the
/// library's folder: they are loaded here (globally, so the CUDA provider finds them by name),
/// as ONNX Runtime's own Python package does, instead of asking for LD_LIBRARY_PATH.
fn preload_cuda_libraries(library: &Path) {
    let Some(nvidia) = library
        .parent()
        .and_then(Path::parent)
        .map(|deps| deps.join("nvidia"))
        .filter(|dir| dir.is_dir())
    else {
        return;
    };
    let lib_dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&nvidia)
        .into_iter()
        .flatten()
        .flatten()
        .map(|wheel| wheel.path().join("lib"))
        .filter(|dir| dir.is_dir())
        .collect();
    for file in CUDA_LIBRARIES {
        let Some(path) = lib_dirs
            .iter()
            .map(|dir| dir.join(file))
            .find(|p| p.is_file())
        else {
            tracing::debug!(file, "not in {}", nvidia.display());
            continue;
        };
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: dlopen with a valid C string; the libraries stay loaded for the process.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            tracing::debug!(library = %path.display(), "not loaded");
        }
    }
}

/// The execution providers the loaded library was built with (CPU always; CUDA and TensorRT
/// in the GPU build), by liveup's names.
pub fn providers() -> Vec<&'static str> {
    use ort::ep::ExecutionProvider;
    let mut found = Vec::new();
    if ort::ep::CPU::is_available().unwrap_or(false) {
        found.push("CPU");
    }
    if ort::ep::CUDA::is_available().unwrap_or(false) {
        found.push("CUDA");
    }
    if ort::ep::TensorRT::is_available().unwrap_or(false) {
        found.push("TensorRT");
    }
    found
}

/// The loaded library's version, e.g. "1.31.1", read from its versioned file name (what
/// `libonnxruntime.so` links to); `None` before it is loaded.
pub fn version() -> Option<String> {
    let library = LOADED_FROM.get()?;
    let real = library.canonicalize().unwrap_or_else(|_| library.clone());
    let name = real.file_name()?.to_string_lossy().into_owned();
    Some(
        name.strip_prefix(LIBRARY_NAME)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|v| !v.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    )
}
