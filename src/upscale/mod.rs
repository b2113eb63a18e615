//! Super-resolution of single frames. The pipeline sees only the [`Upscaler`] trait; behind it
//! either a network ([`float_engine`] around ONNX Runtime's [`onnx`] or [`openvino`], or
//! [`bound`] for ONNX Runtime's uint8 graphs) or ffmpeg's Lanczos scaler ([`lanczos`]).

pub mod bound;
pub mod cpu_auto;
pub mod cpu_choice_cache;
pub mod float_engine;
pub mod gpu;
pub mod lanczos;
pub mod models;
pub mod onnx;
pub mod openvino;
pub mod openvino_runtime;
pub mod resize;
pub mod runtime;
pub mod sessions;
pub mod tiling;

use std::path::PathBuf;

pub use gpu::{DeviceChoice, OpenVinoTarget};

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

    /// What runs the model, for logs and `/health`: "CPU", "CUDA:0", "OpenVINO:CPU", "ffmpeg"
    /// (see [`runs_on_cpu`]).
    fn device(&self) -> String;

    /// An ffmpeg filter the decoder applies instead of in-process work (then `upscale` only
    /// passes frames on, already at output size).
    fn decoder_filter(&self) -> Option<String> {
        None
    }

    fn upscale(&mut self, input: &Frame, output: &mut Frame) -> Result<(), UpscaleError>;

    /// How many frames [`Upscaler::upscale_together`] works on at once.
    fn in_flight(&self) -> usize {
        1
    }

    /// Upscales each `(input, output)` pair; an engine with several sessions runs them at once.
    fn upscale_together(
        &mut self,
        frames: &mut [(&Frame, &mut Frame)],
    ) -> Result<(), UpscaleError> {
        frames
            .iter_mut()
            .try_for_each(|(input, output)| self.upscale(input, output))
    }
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
    /// Where TensorRT keeps its engines and timing cache between runs, and `auto` its choice
    /// between ONNX Runtime and OpenVINO on the CPU.
    pub cache_dir: Option<PathBuf>,
    pub precision: Precision,
    pub frames: FrameIo,
    /// Frames run at once, each on its own session (uint8 graphs only); 0: two on a GPU, one on
    /// the CPU.
    pub in_flight: u32,
    /// ONNX Runtime's threads inside each session on the CPU; 0: every usable CPU. (A session
    /// on a GPU keeps every usable CPU for the little it runs on the host.)
    pub intra_threads: usize,
}

/// How frames cross into the network: `Float` (the host pads, converts and rounds, as planar
/// floats), `Uint8` (the graph takes and returns the decoder's bytes), `Auto` (uint8 on a GPU,
/// where copies are the cost; float on the CPU, where the two are as fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameIo {
    Auto,
    Float,
    Uint8,
}

impl std::str::FromStr for FrameIo {
    type Err = String;

    fn from_str(text: &str) -> Result<FrameIo, String> {
        match text {
            "auto" => Ok(FrameIo::Auto),
            "float" => Ok(FrameIo::Float),
            "uint8" => Ok(FrameIo::Uint8),
            _ => Err(format!(
                "unknown frame_io {text:?}: use auto, float or uint8"
            )),
        }
    }
}

impl std::fmt::Display for FrameIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameIo::Auto => "auto",
            FrameIo::Float => "float",
            FrameIo::Uint8 => "uint8",
        })
    }
}

/// The network's arithmetic. `Auto`: the fp16 variant on CUDA (half the memory traffic, tensor
/// cores), fp32 on the CPU with ONNX Runtime (where fp16 is not faster), bf16 with OpenVINO where
/// the CPU has it; TensorRT builds its fp16 engine from the fp32 graph either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Auto,
    Fp32,
    Fp16,
    /// The quantized small networks, for CPUs (`x.int8.onnx`, models/quantize.py; with
    /// OpenVINO `x.openvino-int8.xml`, models/quantize_openvino.py).
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Precision, String> {
        match text {
            "auto" => Ok(Precision::Auto),
            "fp32" => Ok(Precision::Fp32),
            "fp16" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            _ => Err(format!(
                "unknown precision {text:?}: use auto, fp32, fp16 or int8"
            )),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        })
    }
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
            precision: Precision::Auto,
            frames: FrameIo::Auto,
            in_flight: 0,
            intra_threads: 0,
        }
    }
}

/// Whether the network behind `device` (an [`Upscaler::device`]) runs on the CPU.
pub fn runs_on_cpu(device: &str) -> bool {
    device.starts_with("CPU") || device.starts_with("OpenVINO:CPU")
}

pub fn build(model: &str, options: &EngineOptions) -> Result<Box<dyn Upscaler>, UpscaleError> {
    let spec = models::find(model)?;
    if spec.kind == ModelKind::Scaler {
        return Ok(Box::new(lanczos::Lanczos::new(spec.scale)));
    }
    let network = match &spec.network {
        Some(name) => models::find(name)?,
        None => spec.clone(),
    };
    match options.device {
        DeviceChoice::OpenVino(target) => Ok(Box::new(openvino::upscaler(
            &spec, &network, options, target,
        )?)),
        DeviceChoice::Auto => match gpu::cuda_device_count() {
            Ok(_) => onnx_runtime_upscaler(&spec, &network, options),
            Err(why) => cpu_auto::build(&spec, &network, options, &why),
        },
        _ => onnx_runtime_upscaler(&spec, &network, options),
    }
}

/// `spec`'s network on ONNX Runtime, on the device `options` asks for.
fn onnx_runtime_upscaler(
    spec: &ModelSpec,
    network: &ModelSpec,
    options: &EngineOptions,
) -> Result<Box<dyn Upscaler>, UpscaleError> {
    let opened = sessions::open(spec, network, options)?;
    if opened.variant.uint8_frames {
        return Ok(Box::new(bound::BoundUpscaler::new(
            spec.scale,
            options.tile_size,
            options.tile_overlap,
            opened,
        )?));
    }
    let sessions::Opened {
        mut sessions,
        device,
        ..
    } = opened;
    let session = onnx::OrtNetwork::new(sessions.remove(0));
    Ok(Box::new(float_engine::FloatUpscaler::new(
        spec,
        network.scale,
        options,
        Box::new(session),
        device,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openvino_on_the_cpu_counts_as_the_cpu() {
        for device in ["CPU", "CPU int8", "OpenVINO:CPU bf16", "OpenVINO:CPU int8"] {
            assert!(runs_on_cpu(device), "{device}");
        }
        for device in [
            "CUDA:0 fp16",
            "TensorRT:0 fp16 uint8",
            "OpenVINO:GPU",
            "ffmpeg",
        ] {
            assert!(!runs_on_cpu(device), "{device}");
        }
    }
}
