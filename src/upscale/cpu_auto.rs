//! `device = "auto"` without a usable GPU: the network runs on the CPU, with ONNX Runtime or,
//! when it is installed and clearly faster on this machine, OpenVINO. The first start races the
//! two on one small frame at the same precision and remembers the winner
//! ([`cpu_choice_cache`](super::cpu_choice_cache)); later starts reuse it without measuring.

use std::time::Instant;

use super::cpu_choice_cache::{self, ChoiceKey, CpuRuntime, Timings};
use super::gpu::OpenVinoTarget;
use super::models::ModelSpec;
use super::{
    openvino, openvino_runtime, runtime, sessions, DeviceChoice, EngineOptions, FrameIo, Precision,
    UpscaleError, Upscaler,
};
use crate::pipeline::frames::Frame;
use crate::{cpu_budget, cpuinfo};

/// The frame the race runs: small, so that the first start is not held up for long.
const PROBE: (u32, u32) = (160, 90);
/// Timed runs of each runtime, alternating, after one warm-up each.
const ROUNDS: usize = 3;

/// `spec`'s network on the CPU, with the runtime chosen as above; `no_gpu` says why not a GPU.
pub fn build(
    spec: &ModelSpec,
    network: &ModelSpec,
    options: &EngineOptions,
    no_gpu: &str,
) -> Result<Box<dyn Upscaler>, UpscaleError> {
    let on_cpu = EngineOptions {
        device: DeviceChoice::Cpu,
        ..options.clone()
    };
    let onnx_runtime = || super::onnx_runtime_upscaler(spec, network, &on_cpu);
    let openvino = || -> Result<Box<dyn Upscaler>, UpscaleError> {
        Ok(Box::new(openvino::upscaler(
            spec,
            network,
            options,
            OpenVinoTarget::Cpu,
        )?))
    };
    if let Some(reason) = onnx_runtime_only(network, options) {
        tracing::info!("device auto: {no_gpu}; using the CPU with ONNX Runtime ({reason})");
        return onnx_runtime();
    }
    let openvino_version = match openvino_runtime::load() {
        Ok(_) => openvino_runtime::version().unwrap_or_default(),
        Err(e) => {
            tracing::info!("device auto: {no_gpu}; using the CPU with ONNX Runtime ({e})");
            return onnx_runtime();
        }
    };
    runtime::environment(options.ort_library.as_deref())?;
    let key = ChoiceKey {
        cpu: cpuinfo::model_name().unwrap_or_else(|| "unknown CPU".into()),
        cpu_extensions: cpuinfo::vector_extensions(),
        usable_cpus: cpu_budget::usable_cpus().count,
        threads: sessions::intra_threads(
            sessions::Accel::Cpu,
            options,
            cpu_budget::usable_cpus().count,
        ),
        model: spec.name.clone(),
        precision: options.precision.to_string(),
        onnx_runtime: runtime::version().unwrap_or_default(),
        openvino: openvino_version,
    };
    let file = cpu_choice_cache::file_in(options.cache_dir.as_deref());
    let mut raced = None;
    let choice = cpu_choice_cache::choose(&file, &key, || {
        let mut ours = onnx_runtime().map_err(|e| e.to_string())?;
        let mut theirs = openvino().map_err(|e| e.to_string())?;
        let timings = race(ours.as_mut(), theirs.as_mut()).map_err(|e| e.to_string())?;
        raced = Some((ours, theirs));
        Ok(timings)
    });
    let (choice, measured) = match choice {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(
                "device auto: {no_gpu}; using the CPU with ONNX Runtime (OpenVINO failed: {e})"
            );
            return onnx_runtime();
        }
    };
    let Timings {
        onnx_runtime_ms,
        openvino_ms,
    } = choice.timings;
    tracing::info!(
        "device auto: {no_gpu}; using the CPU with {} (a {}x{} frame took {onnx_runtime_ms:.0} ms \
         with ONNX Runtime, {openvino_ms:.0} ms with OpenVINO; {} {})",
        choice.runtime,
        PROBE.0,
        PROBE.1,
        if measured {
            "measured now, kept in"
        } else {
            "as measured before, in"
        },
        file.display()
    );
    match (choice.runtime, raced) {
        (CpuRuntime::OnnxRuntime, Some((ours, _))) => Ok(ours),
        (CpuRuntime::OpenVino, Some((_, theirs))) => Ok(theirs),
        (CpuRuntime::OnnxRuntime, None) => onnx_runtime(),
        (CpuRuntime::OpenVino, None) => openvino().or_else(|e| {
            tracing::info!("device auto: OpenVINO failed ({e}); using ONNX Runtime");
            onnx_runtime()
        }),
    }
}

/// Why only ONNX Runtime can run what `options` ask for, if so.
fn onnx_runtime_only(network: &ModelSpec, options: &EngineOptions) -> Option<String> {
    match (options.frames, options.precision) {
        (FrameIo::Uint8, _) => Some("OpenVINO takes float frames, not frame_io uint8".into()),
        (_, Precision::Fp16) => Some("OpenVINO does not run precision fp16".into()),
        (_, Precision::Int8) if !network.openvino_int8 => {
            Some(format!("{} has no OpenVINO int8 variant", network.name))
        }
        _ => None,
    }
}

/// Milliseconds per [`PROBE`] frame of each, the median of [`ROUNDS`] alternating runs, so that
/// a machine busy with something else slows both alike.
fn race(
    onnx_runtime: &mut dyn Upscaler,
    openvino: &mut dyn Upscaler,
) -> Result<Timings, UpscaleError> {
    let (width, height) = PROBE;
    let mut input = Frame::new(width, height);
    for (i, value) in input.data.iter_mut().enumerate() {
        *value = (i * 7 % 251) as u8;
    }
    let scale = onnx_runtime.scale();
    let mut output = Frame::new(width * scale, height * scale);
    let mut time = |upscaler: &mut dyn Upscaler| -> Result<f64, UpscaleError> {
        let started = Instant::now();
        upscaler.upscale(&input, &mut output)?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    time(onnx_runtime)?;
    time(openvino)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(time(onnx_runtime)?);
        theirs.push(time(openvino)?);
    }
    let median = |mut runs: Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    Ok(Timings {
        onnx_runtime_ms: median(ours),
        openvino_ms: median(theirs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upscale::models;

    #[test]
    fn what_openvino_cannot_run_stays_on_onnx_runtime() {
        let small = models::find("realesr-animevideov3-x4").unwrap();
        let large = models::find("realesrgan-x4plus").unwrap();
        let asking = |frames, precision| EngineOptions {
            frames,
            precision,
            ..EngineOptions::default()
        };
        assert_eq!(
            onnx_runtime_only(&small, &asking(FrameIo::Auto, Precision::Auto)),
            None
        );
        assert_eq!(
            onnx_runtime_only(&small, &asking(FrameIo::Float, Precision::Int8)),
            None
        );
        assert_eq!(
            onnx_runtime_only(&large, &asking(FrameIo::Auto, Precision::Fp32)),
            None
        );
        for (network, options) in [
            (&small, asking(FrameIo::Uint8, Precision::Auto)),
            (&small, asking(FrameIo::Auto, Precision::Fp16)),
            (&large, asking(FrameIo::Auto, Precision::Int8)),
        ] {
            assert!(
                onnx_runtime_only(network, &options).is_some(),
                "{options:?}"
            );
        }
    }
}
