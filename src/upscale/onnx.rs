//! A super-resolution network run by ONNX Runtime: input `[1, 3, H, W]` float RGB in [0, 1],
//! output `[1, 3, sH, sW]`. Frames are reflect-padded like the reference implementation, split
//! into overlapping tiles when large, and clamped to [0, 1] before going back to 8 bits.

use ort::ep;
use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::value::TensorRef;

use super::gpu::{cuda_device_count, DeviceChoice};
use super::models::{self, ModelSpec};
use super::resize;
use super::tiling::{self, Tile};
use super::{runtime, EngineOptions, Precision, UpscaleError, Upscaler};
use crate::pipeline::frames::Frame;

fn uses_fp16(precision: Precision, accel: Accel) -> bool {
    match (precision, accel) {
        (Precision::Fp16, _) | (Precision::Auto, Accel::Cuda(_)) => true,
        (Precision::Fp32 | Precision::Auto, _) => false,
    }
}

/// Where a session runs.
#[derive(Debug, Clone, Copy)]
enum Accel {
    Cpu,
    Cuda(u32),
    TensorRt(u32),
}

/// TensorRT in fp16, its engines and timing cache kept in `cache` (built once per model, GPU
/// and size range), one optimisation profile for the tiles liveup feeds (up to `largest` pixels
/// a side, with their padding).
fn tensorrt_provider(id: u32, cache: &str, largest: u32) -> ep::TensorRT {
    let typical = largest.min(720);
    ep::TensorRT::default()
        .with_device_id(id as i32)
        .with_fp16(true)
        .with_engine_cache(true)
        .with_engine_cache_path(cache)
        .with_timing_cache(true)
        .with_timing_cache_path(cache)
        .with_profile_min_shapes("input:1x3x16x16")
        .with_profile_opt_shapes(format!("input:1x3x{typical}x{typical}"))
        .with_profile_max_shapes(format!("input:1x3x{largest}x{largest}"))
}

pub struct OnnxUpscaler {
    session: Session,
    scale: u32,
    /// The network's own scale; larger than `scale` when its output is shrunk afterwards.
    network_scale: u32,
    pad: u32,
    tile_size: u32,
    tile_overlap: u32,
    device: String,
    /// The padded frame as planar floats, reused from frame to frame.
    padded: Vec<f32>,
    /// One tile's network input, reused likewise.
    window: Vec<f32>,
    /// For each column of the padded frame, the source column it mirrors; rebuilt only when
    /// the frame width changes.
    padded_columns: Vec<usize>,
    shrink_scratch: Vec<f32>,
    shrunk: Vec<f32>,
}

impl OnnxUpscaler {
    pub fn new(spec: &ModelSpec, options: &EngineOptions) -> Result<OnnxUpscaler, UpscaleError> {
        let network = match &spec.network {
            Some(name) => models::find(name)?,
            None => spec.clone(),
        };
        let full = models::onnx_file(&network, options.models_dir.as_deref())?;
        let half = || models::onnx_file_fp16(&network, options.models_dir.as_deref());
        let environment = runtime::environment(options.ort_library.as_deref())?;
        let trt_cache = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("liveup-tensorrt"))
            .join(&network.name);
        let largest = options.tile_size.max(64) + 2 * (options.tile_overlap + spec.reflect_pad);
        let precision = options.precision;
        let open = |accel: Accel| -> Result<Session, ort::Error> {
            let path = if uses_fp16(precision, accel) {
                half().map_err(|e| ort::Error::new(e.to_string()))?
            } else {
                full.clone()
            };
            // ONNX Runtime defaults to one thread per physical core, which on small virtual
            // machines leaves logical cores idle; use them all.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
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
                    let _ = std::fs::create_dir_all(&trt_cache);
                    let cache = trt_cache.display().to_string();
                    let trt = tensorrt_provider(id, &cache, largest)
                        .build()
                        .error_on_failure();
                    // What TensorRT leaves runs on CUDA.
                    let cuda = ep::CUDA::default().with_device_id(id as i32).build();
                    builder = builder.with_execution_providers([trt, cuda])?;
                }
            }
            builder.commit_from_file(&path)
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
        let (session, device) = match options.device {
            DeviceChoice::Cpu => (open(Accel::Cpu).map_err(inference)?, "CPU".to_string()),
            DeviceChoice::Cuda(id) => {
                let unavailable = gpu(format!("cuda:{id}"), id)?;
                let session = open(Accel::Cuda(id)).map_err(|e| unavailable(e.to_string()))?;
                (session, format!("CUDA:{id}"))
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
                let session = open(Accel::TensorRt(id)).map_err(|e| {
                    unavailable(format!(
                        "{e} (liveup doctor shows whether libnvinfer is found)"
                    ))
                })?;
                (session, format!("TensorRT:{id}"))
            }
            DeviceChoice::Auto => match cuda_device_count() {
                Ok(_) => {
                    let trt = ep::TensorRT::is_available().unwrap_or(false);
                    let tried = trt.then(|| open(Accel::TensorRt(0)));
                    match tried {
                        Some(Ok(session)) => (session, "TensorRT:0".to_string()),
                        other => {
                            if let Some(Err(e)) = other {
                                tracing::info!("device auto: TensorRT failed ({e}); trying CUDA");
                            }
                            match open(Accel::Cuda(0)) {
                                Ok(session) => (session, "CUDA:0".to_string()),
                                Err(e) => {
                                    tracing::info!(
                                        "device auto: CUDA execution provider failed ({e}); using CPU"
                                    );
                                    (open(Accel::Cpu).map_err(inference)?, "CPU".to_string())
                                }
                            }
                        }
                    }
                }
                Err(why) => {
                    tracing::info!("device auto: {why}; using CPU");
                    (open(Accel::Cpu).map_err(inference)?, "CPU".to_string())
                }
            },
        };
        let accel = match device.split_once(':') {
            Some(("CUDA", id)) => Accel::Cuda(id.parse().unwrap_or(0)),
            Some(("TensorRT", id)) => Accel::TensorRt(id.parse().unwrap_or(0)),
            _ => Accel::Cpu,
        };
        let device = if uses_fp16(precision, accel) {
            format!("{device} fp16")
        } else {
            device
        };
        tracing::info!(model = %spec.name, %device, "model loaded");
        Ok(OnnxUpscaler {
            session,
            scale: spec.scale,
            network_scale: network.scale,
            pad: spec.reflect_pad,
            tile_size: options.tile_size,
            tile_overlap: options.tile_overlap,
            device,
            padded: Vec::new(),
            window: Vec::new(),
            padded_columns: Vec::new(),
            shrink_scratch: Vec::new(),
            shrunk: Vec::new(),
        })
    }

    fn fill_padded(&mut self, frame: &Frame) {
        let pad = i64::from(self.pad);
        let (width, height) = (frame.width, frame.height);
        let padded_w = (width + 2 * self.pad) as usize;
        let padded_h = (height + 2 * self.pad) as usize;
        let plane = padded_w * padded_h;
        self.padded.resize(plane * 3, 0.0);
        // The padding is fixed per model, so the padded width determines the frame width.
        if self.padded_columns.len() != padded_w {
            self.padded_columns = (0..padded_w as i64)
                .map(|x| tiling::reflect(x - pad, width))
                .collect();
        }
        let columns = &self.padded_columns;
        for py in 0..padded_h {
            let sy = tiling::reflect(py as i64 - pad, height);
            let row = &frame.data[sy * width as usize * 3..][..width as usize * 3];
            for (px, &sx) in columns.iter().enumerate() {
                let at = py * padded_w + px;
                for channel in 0..3 {
                    self.padded[channel * plane + at] = f32::from(row[sx * 3 + channel]) / 255.0;
                }
            }
        }
    }

    fn run_tile(
        &mut self,
        tile: &Tile,
        padded_w: usize,
        padded_h: usize,
        output: &mut Frame,
    ) -> Result<(), UpscaleError> {
        let window = tile.window;
        let (ww, wh) = (window.width() as usize, window.height() as usize);
        let plane = padded_w * padded_h;
        self.window.resize(3 * ww * wh, 0.0);
        for channel in 0..3 {
            for y in 0..wh {
                let src =
                    channel * plane + (window.y0 as usize + y) * padded_w + window.x0 as usize;
                let dst = (channel * wh + y) * ww;
                self.window[dst..dst + ww].copy_from_slice(&self.padded[src..src + ww]);
            }
        }
        let input = TensorRef::from_array_view(([1usize, 3, wh, ww], &self.window[..]))
            .map_err(|e| UpscaleError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| UpscaleError::Inference(e.to_string()))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| UpscaleError::Inference(e.to_string()))?;
        let network_scale = self.network_scale as usize;
        let (nw, nh) = (ww * network_scale, wh * network_scale);
        if shape.len() != 4 || shape[1] != 3 || shape[2] as usize != nh || shape[3] as usize != nw {
            return Err(UpscaleError::Inference(format!(
                "model gave shape {shape:?} for a {ww}x{wh} input at scale {network_scale}"
            )));
        }
        let scale = self.scale as usize;
        let (ow, oh) = (ww * scale, wh * scale);
        let data = if network_scale == scale {
            data
        } else {
            resize::resize_planes(
                data,
                3,
                (nw, nh),
                (ow, oh),
                &mut self.shrink_scratch,
                &mut self.shrunk,
            );
            &self.shrunk[..]
        };
        let out_plane = ow * oh;
        let core = tile.core;
        // Output pixel (x, y) of the frame comes from this tile's output at (x - left, y - top).
        let left = (window.x0 as isize - self.pad as isize) * scale as isize;
        let top = (window.y0 as isize - self.pad as isize) * scale as isize;
        let frame_w = output.width as usize;
        for y in core.y0 as usize * scale..core.y1 as usize * scale {
            let ty = (y as isize - top) as usize;
            let row = &mut output.data[y * frame_w * 3..(y + 1) * frame_w * 3];
            for x in core.x0 as usize * scale..core.x1 as usize * scale {
                let tx = (x as isize - left) as usize;
                let at = ty * ow + tx;
                for channel in 0..3 {
                    let value = data[channel * out_plane + at].clamp(0.0, 1.0);
                    row[x * 3 + channel] = (value * 255.0).round() as u8;
                }
            }
        }
        Ok(())
    }
}

impl Upscaler for OnnxUpscaler {
    fn scale(&self) -> u32 {
        self.scale
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn upscale(&mut self, input: &Frame, output: &mut Frame) -> Result<(), UpscaleError> {
        debug_assert_eq!(
            (output.width, output.height),
            (input.width * self.scale, input.height * self.scale)
        );
        self.fill_padded(input);
        let padded_w = (input.width + 2 * self.pad) as usize;
        let padded_h = (input.height + 2 * self.pad) as usize;
        let tiles = tiling::plan(
            input.width,
            input.height,
            self.pad,
            self.tile_size,
            self.tile_overlap,
        );
        for tile in &tiles {
            self.run_tile(tile, padded_w, padded_h, output)?;
        }
        Ok(())
    }
}
