//! Opening a network's ONNX Runtime sessions on the device asked for: which graph variant each
//! device takes (fp16 or fp32 inside, float or uint8 frames at its edges), the CUDA and TensorRT
//! providers' settings, and `auto`'s order (TensorRT, then CUDA, then the CPU).

use ort::ep;
use ort::ep::ExecutionProvider;
use ort::session::Session;

use super::gpu::{cuda_device_count, DeviceChoice};
use super::models::{self, Arithmetic, ModelSpec, Variant};
use super::{runtime, EngineOptions, FrameIo, Precision, UpscaleError};
use crate::cpu_budget;

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Cpu,
    Cuda(u32),
    TensorRt(u32),
}

impl Accel {
    pub fn is_gpu(self) -> bool {
        !matches!(self, Accel::Cpu)
    }

    /// The device as logs and the API name it.
    fn label(self) -> String {
        match self {
            Accel::Cpu => "CPU".into(),
            Accel::Cuda(id) => format!("CUDA:{id}"),
            Accel::TensorRt(id) => format!("TensorRT:{id}"),
        }
    }
}

/// The graph `accel` runs: fp16 where asked (or, by default, on CUDA); int8 where asked, on
/// the CPU only; uint8 frames where asked (or, by default, on a GPU, where the copies are what the
/// frame costs). TensorRT builds its own engine from the fp32 graph.
pub fn variant_for(precision: Precision, frames: FrameIo, accel: Accel) -> Result<Variant, String> {
    let arithmetic = match (precision, accel) {
        (Precision::Int8, Accel::Cpu) => Arithmetic::Int8,
        (Precision::Int8, _) => {
            return Err("precision int8 is for the CPU; a GPU runs fp16 (precision auto)".into())
        }
        (_, Accel::TensorRt(_)) => Arithmetic::Fp32,
        (Precision::Fp16, _) | (Precision::Auto, Accel::Cuda(_)) => Arithmetic::Fp16,
        (Precision::Fp32 | Precision::Auto, _) => Arithmetic::Fp32,
    };
    let uint8_frames = match frames {
        FrameIo::Uint8 if arithmetic == Arithmetic::Int8 => {
            return Err("the int8 graphs take float frames; use frame_io float or auto".into())
        }
        FrameIo::Uint8 => true,
        FrameIo::Float => false,
        FrameIo::Auto => accel.is_gpu(),
    };
    Ok(Variant {
        arithmetic,
        uint8_frames,
    })
}

/// How many frames run at once: two on a GPU (two sessions, so that one's copies overlap the
/// other's compute), one on the CPU (where both would share the same cores).
pub fn frames_in_flight(configured: u32, accel: Accel) -> usize {
    match configured {
        0 if accel.is_gpu() => 2,
        0 => 1,
        n => n as usize,
    }
}

/// Sessions of one graph, all on one device.
pub struct Opened {
    pub sessions: Vec<Session>,
    pub accel: Accel,
    pub variant: Variant,
    /// "CPU", "CUDA:0 fp16", "TensorRT:1 fp16", with " uint8" when frames cross as bytes.
    pub device: String,
    pub intra_op_threads: usize,
}

/// TensorRT builds an fp16 engine unless fp32 is asked for.
fn tensorrt_fp16(accel: Accel, precision: Precision) -> bool {
    matches!(accel, Accel::TensorRt(_)) && precision != Precision::Fp32
}

/// TensorRT in fp16 (unless `fp16` is false), its engines and timing cache kept in `cache` (built once per model, GPU
/// and size range), one optimisation profile for the tiles liveup feeds (up to `largest` pixels
/// a side, with their padding).
fn tensorrt_provider(
    id: u32,
    cache: &str,
    input: &str,
    largest: u32,
    uint8: bool,
    fp16: bool,
) -> ep::TensorRT {
    let typical = largest.min(720);
    let shape = |side: u32| {
        if uint8 {
            format!("{input}:1x{side}x{side}x3")
        } else {
            format!("{input}:1x3x{side}x{side}")
        }
    };
    ep::TensorRT::default()
        .with_device_id(id as i32)
        .with_fp16(fp16)
        .with_engine_cache(true)
        .with_engine_cache_path(cache)
        .with_timing_cache(true)
        .with_timing_cache_path(cache)
        .with_profile_min_shapes(shape(16))
        .with_profile_opt_shapes(shape(typical))
        .with_profile_max_shapes(shape(largest))
}

/// Opens the graph of `spec` (`network`: the network the float path runs, which may be larger
/// than `spec` when liveup shrinks its output itself) on the device `options` asks for.
pub fn open(
    spec: &ModelSpec,
    network: &ModelSpec,
    options: &EngineOptions,
) -> Result<Opened, UpscaleError> {
    let environment = runtime::environment(options.ort_library.as_deref())?;
    let every_cpu = cpu_budget::usable_cpus().count;
    let open_on = |accel: Accel| -> Result<Opened, ort::Error> {
        let threads = intra_threads(accel, options, every_cpu);
        let variant =
            variant_for(options.precision, options.frames, accel).map_err(ort::Error::new)?;
        // The uint8 graphs do the shrink themselves; the float path runs the bare network.
        let graph_of = if variant.uint8_frames { spec } else { network };
        if variant.arithmetic == Arithmetic::Int8 && !graph_of.int8 {
            return Err(ort::Error::new(format!(
                "{} has no int8 variant (the small realesr-animevideov3 networks have one)",
                spec.name
            )));
        }
        let path = models::onnx_variant(graph_of, options.models_dir.as_deref(), variant)
            .map_err(|e| ort::Error::new(e.to_string()))?;
        let count = if variant.uint8_frames {
            frames_in_flight(options.in_flight, accel)
        } else {
            1
        };
        let sessions = (0..count)
            .map(|_| session(environment, &path, accel, threads, spec, options, variant))
            .collect::<Result<Vec<_>, _>>()?;
        let mut device = accel.label();
        if variant.arithmetic == Arithmetic::Fp16 || tensorrt_fp16(accel, options.precision) {
            device.push_str(" fp16");
        }
        if variant.arithmetic == Arithmetic::Int8 {
            device.push_str(" int8");
        }
        if variant.uint8_frames {
            device.push_str(" uint8");
        }
        Ok(Opened {
            sessions,
            accel,
            variant,
            device,
            intra_op_threads: threads,
        })
    };
    let inference = |e: ort::Error| UpscaleError::Inference(format!("{}: {e}", spec.name));
    let gpu = |device: String, id: u32| {
        let unavailable = move |reason: String| UpscaleError::Device {
            device: device.clone(),
            reason,
        };
        let count = cuda_device_count().map_err(&unavailable)?;
        if id >= count {
            return Err(unavailable(format!("only {count} CUDA device(s)")));
        }
        Ok(unavailable)
    };
    let opened = match options.device {
        DeviceChoice::Cpu => open_on(Accel::Cpu).map_err(inference)?,
        DeviceChoice::OpenVino(_) => {
            return Err(UpscaleError::Runtime(
                "OpenVINO runs the network itself, without ONNX Runtime sessions".into(),
            ))
        }
        DeviceChoice::Cuda(id) => {
            let unavailable = gpu(format!("cuda:{id}"), id)?;
            open_on(Accel::Cuda(id)).map_err(|e| unavailable(e.to_string()))?
        }
        DeviceChoice::TensorRt(id) => {
            let unavailable = gpu(format!("tensorrt:{id}"), id)?;
            if !ep::TensorRT::is_available().unwrap_or(false) {
                return Err(unavailable(
                    "this ONNX Runtime has no TensorRT provider (scripts/setup installs the \
                     GPU build where an NVIDIA driver is)"
                        .into(),
                ));
            }
            open_on(Accel::TensorRt(id)).map_err(|e| {
                unavailable(format!(
                    "{e} (liveup doctor shows whether libnvinfer is found)"
                ))
            })?
        }
        DeviceChoice::Auto => match cuda_device_count() {
            Ok(_) => {
                let trt = ep::TensorRT::is_available().unwrap_or(false);
                match trt.then(|| open_on(Accel::TensorRt(0))) {
                    Some(Ok(opened)) => opened,
                    other => {
                        if let Some(Err(e)) = other {
                            tracing::info!("device auto: TensorRT failed ({e}); trying CUDA");
                        }
                        match open_on(Accel::Cuda(0)) {
                            Ok(opened) => opened,
                            Err(e) => {
                                tracing::info!(
                                    "device auto: CUDA execution provider failed ({e}); using CPU"
                                );
                                open_on(Accel::Cpu).map_err(inference)?
                            }
                        }
                    }
                }
            }
            Err(why) => {
                tracing::info!("device auto: {why}; using CPU");
                open_on(Accel::Cpu).map_err(inference)?
            }
        },
    };
    tracing::info!(
        model = %spec.name,
        device = %opened.device,
        intra_op_threads = opened.intra_op_threads,
        "model loaded"
    );
    Ok(opened)
}

/// ONNX Runtime's threads inside one operator. Its default, one per physical core, leaves
/// logical cores idle on small virtual machines, so every usable CPU (`every_cpu`) unless the
/// options share them out between CPU jobs.
pub(super) fn intra_threads(accel: Accel, options: &EngineOptions, every_cpu: usize) -> usize {
    match options.intra_threads {
        n if n > 0 && accel == Accel::Cpu => n,
        _ => every_cpu,
    }
}

fn session(
    environment: &ort::environment::Environment,
    path: &std::path::Path,
    accel: Accel,
    threads: usize,
    spec: &ModelSpec,
    options: &EngineOptions,
    variant: Variant,
) -> Result<Session, ort::Error> {
    let mut builder = Session::builder(environment)?
        .with_intra_threads(threads)?
        .with_config_entry("session.intra_op.allow_spinning", "0")?;
    match accel {
        Accel::Cpu => {}
        Accel::Cuda(id) => {
            let cuda = ep::CUDA::default()
                .with_device_id(id as i32)
                .build()
                .error_on_failure();
            builder = builder.with_execution_providers([cuda])?;
        }
        Accel::TensorRt(id) => {
            let cache = options
                .cache_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("liveup-tensorrt"))
                .join(&spec.name);
            let _ = std::fs::create_dir_all(&cache);
            let largest = options.tile_size.max(64) + 2 * (options.tile_overlap + spec.reflect_pad);
            let input = if variant.uint8_frames {
                "frame"
            } else {
                "input"
            };
            let trt = tensorrt_provider(
                id,
                &cache.display().to_string(),
                input,
                largest,
                variant.uint8_frames,
                tensorrt_fp16(accel, options.precision),
            )
            .build()
            .error_on_failure();
            // What TensorRT leaves runs on CUDA.
            let cuda = ep::CUDA::default().with_device_id(id as i32).build();
            builder = builder.with_execution_providers([trt, cuda])?;
        }
    }
    builder.commit_from_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_takes_the_graph_that_suits_it() {
        let auto = |accel| variant_for(Precision::Auto, FrameIo::Auto, accel).unwrap();
        let v = |arithmetic, uint8_frames| Variant {
            arithmetic,
            uint8_frames,
        };
        assert_eq!(auto(Accel::Cpu), v(Arithmetic::Fp32, false));
        assert_eq!(auto(Accel::Cuda(1)), v(Arithmetic::Fp16, true));
        assert_eq!(auto(Accel::TensorRt(0)), v(Arithmetic::Fp32, true));
        assert_eq!(
            variant_for(Precision::Fp32, FrameIo::Float, Accel::Cuda(0)),
            Ok(v(Arithmetic::Fp32, false))
        );
        assert_eq!(
            variant_for(Precision::Fp16, FrameIo::Uint8, Accel::Cpu),
            Ok(v(Arithmetic::Fp16, true))
        );
        assert_eq!(
            variant_for(Precision::Int8, FrameIo::Auto, Accel::Cpu),
            Ok(v(Arithmetic::Int8, false))
        );
        let gpu = variant_for(Precision::Int8, FrameIo::Auto, Accel::Cuda(0)).unwrap_err();
        assert!(gpu.contains("for the CPU"), "{gpu}");
        let bytes = variant_for(Precision::Int8, FrameIo::Uint8, Accel::Cpu).unwrap_err();
        assert!(bytes.contains("float frames"), "{bytes}");
    }

    #[test]
    fn the_planned_threads_go_to_cpu_sessions_only() {
        let every = cpu_budget::usable_cpus().count;
        let planned = |intra_threads| EngineOptions {
            intra_threads,
            ..EngineOptions::default()
        };
        assert_eq!(intra_threads(Accel::Cpu, &planned(3), every), 3);
        assert_eq!(intra_threads(Accel::Cpu, &planned(0), every), every);
        assert_eq!(intra_threads(Accel::Cuda(0), &planned(3), every), every);
    }

    #[test]
    fn two_frames_fly_on_a_gpu_one_on_the_cpu_unless_configured() {
        assert_eq!(frames_in_flight(0, Accel::Cuda(0)), 2);
        assert_eq!(frames_in_flight(0, Accel::TensorRt(1)), 2);
        assert_eq!(frames_in_flight(0, Accel::Cpu), 1);
        assert_eq!(frames_in_flight(3, Accel::Cpu), 3);
    }
}
