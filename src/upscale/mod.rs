//! Super-resolution of single frames. The pipeline sees only the [`Upscaler`] trait; behind it
//! either a network run by ONNX Runtime ([`onnx`]) or ffmpeg's Lanczos scaler ([`lanczos`]).

pub mod gpu;
pub mod lanczos;
pub mod models;
pub mod onnx;
pub mod resize;
pub mod runtime;
pub mod tiling;

use std::path::PathBuf;

pub use gpu::DeviceChoice;
pub use models::{ModelKind, ModelSpec, DEFAULT_MODEL};

use crate::pipeline::frames::Frame;

#[derive(Debug, thiserror::Error)]
pub enum UpscaleError {
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("model {name} is not converted yet (looked in {searched}); run scripts/setup")]
    ModelMissing { name: String, searched: String },
    #[error("{0}")]
    Runtime(String),
    #[error("device {device} unavailable: {reason}")]
    Device { device: String, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Turns each frame into one `scale()` times larger in both dimensions.
pub trait Upscaler: Send {
    fn scale(&self) -> u32;

    /// What runs the model, for logs and `/health`: "CPU", "CUDA:0", "ffmpeg".
    fn device(&self) -> String;

    /// An ffmpeg filter the decoder applies instead of in-process work (then `upscale` only
    /// passes frames on, already at output size).
    fn decoder_filter(&self) -> Option<String> {
        None
    }

    fn upscale(&mut self, input: &Frame, output: &mut Frame) -> Result<(), UpscaleError>;
}

/// How an upscaler is set up; every field has a default that works after `scripts/setup`.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub device: DeviceChoice,
    pub ort_library: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    /// Frames with a side longer than this (input pixels) are run in tiles; 0 never tiles.
    pub tile_size: u32,
    /// Context each tile sees beyond its own area, so seams do not show.
    pub tile_overlap: u32,
    /// Where TensorRT keeps its engines and timing cache between runs.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            device: DeviceChoice::Auto,
            ort_library: None,
            models_dir: None,
            tile_size: 720,
            tile_overlap: 24,
            cache_dir: None,
        }
    }
}

pub fn build(model: &str, options: &EngineOptions) -> Result<Box<dyn Upscaler>, UpscaleError> {
    let spec = models::find(model)?;
    Ok(match spec.kind {
        ModelKind::Scaler => Box::new(lanczos::Lanczos::new(spec.scale)),
        ModelKind::Onnx => Box::new(onnx::OnnxUpscaler::new(&spec, options)?),
    })
}
