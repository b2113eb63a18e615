//! A float network run by OpenVINO ([`device = "openvino"`](super::DeviceChoice::OpenVino)), for
//! [`FloatUpscaler`](super::float_engine): the fp32 ONNX graph read by OpenVINO's ONNX frontend,
//! or the NNCF int8 IR (models/quantize_openvino.py). One compiled model with dynamic height and
//! width serves every tile size (as fast as one reshaped per size, measured), one request at a
//! time, on the threads the thread plan gives the network.

use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey, Shape,
    Tensor,
};

use super::float_engine::{FloatNetwork, FloatUpscaler, OutputUse};
use super::gpu::OpenVinoTarget;
use super::models::{self, ModelSpec};
use super::{openvino_runtime, sessions, EngineOptions, Precision, UpscaleError};
use crate::{cpu_budget, cpuinfo};

pub struct OpenVinoNetwork {
    request: InferRequest,
    /// The input tensor, kept while tiles keep their size.
    input: Option<((usize, usize), Tensor)>,
    _compiled: CompiledModel,
    _core: Core,
}

/// The floating-point arithmetic OpenVINO is asked for (`INFERENCE_PRECISION_HINT`): bf16 where
/// the CPU has it natively (AVX-512 BF16, AMX), unless fp32 is asked for; OpenVINO would pick
/// bf16 there itself, so fp32 is asked for explicitly. A GPU keeps its own default (f16).
fn precision_hint(
    target: OpenVinoTarget,
    precision: Precision,
    native_bf16: bool,
) -> Option<&'static str> {
    match (target, precision) {
        (_, Precision::Fp32) => Some("f32"),
        (OpenVinoTarget::Cpu, _) if native_bf16 => Some("bf16"),
        (OpenVinoTarget::Cpu, _) => Some("f32"),
        (OpenVinoTarget::Gpu, _) => None,
    }
}

/// The device as logs and the API name it: "OpenVINO:CPU", "OpenVINO:CPU bf16",
/// "OpenVINO:CPU int8", from the arithmetic the compiled model reports.
fn label(target: OpenVinoTarget, int8: bool, compiled_precision: &str) -> String {
    let arithmetic = match compiled_precision {
        _ if int8 => " int8",
        "bf16" => " bf16",
        "f16" => " fp16",
        _ => "",
    };
    format!("OpenVINO:{}{arithmetic}", target.name())
}

/// The network of `spec` (`network`: the one the float path runs, larger when liveup shrinks its
/// output) compiled by OpenVINO on `target`, inside the engine that pads, tiles and shrinks.
pub fn upscaler(
    spec: &ModelSpec,
    network: &ModelSpec,
    options: &EngineOptions,
    target: OpenVinoTarget,
) -> Result<FloatUpscaler, UpscaleError> {
    let (opened, device) = open(network, options, target)?;
    tracing::info!(model = %spec.name, device = %device, "model loaded");
    Ok(FloatUpscaler::new(
        spec,
        network.scale,
        options,
        Box::new(opened),
        device,
    ))
}

fn open(
    network: &ModelSpec,
    options: &EngineOptions,
    target: OpenVinoTarget,
) -> Result<(OpenVinoNetwork, String), UpscaleError> {
    let unavailable = |reason: String| UpscaleError::Device {
        device: super::DeviceChoice::OpenVino(target).to_string(),
        reason,
    };
    let int8 = match options.precision {
        Precision::Fp16 => {
            return Err(unavailable(
                "precision fp16 is for CUDA; OpenVINO runs auto (bf16 where the CPU has it, \
                 else fp32), fp32 or int8"
                    .into(),
            ))
        }
        Precision::Int8 if !network.openvino_int8 => {
            return Err(unavailable(format!(
                "{} has no OpenVINO int8 variant (the small realesr-animevideov3 networks have \
                 one)",
                network.name
            )))
        }
        precision => precision == Precision::Int8,
    };
    let graph = if int8 {
        models::openvino_int8_file(network, options.models_dir.as_deref())?
    } else {
        models::onnx_file(network, options.models_dir.as_deref())?
    };
    let mut core = openvino_runtime::core().map_err(|e| unavailable(e.to_string()))?;
    let listed = openvino_runtime::devices(&core).map_err(|e| unavailable(e.to_string()))?;
    if !listed
        .iter()
        .any(|d| d.split('.').next() == Some(target.name()))
    {
        return Err(unavailable(format!(
            "OpenVINO lists no {} here (it lists: {})",
            target.name(),
            listed.join(", ")
        )));
    }
    let device = match target {
        OpenVinoTarget::Cpu => DeviceType::CPU,
        OpenVinoTarget::Gpu => DeviceType::GPU,
    };
    let threads = sessions::intra_threads(
        sessions::Accel::Cpu,
        options,
        cpu_budget::usable_cpus().count,
    );
    let native_bf16 = cpuinfo::has_native_bf16();
    let mut settings = vec![
        (RwPropertyKey::HintPerformanceMode, "LATENCY".to_string()),
        (RwPropertyKey::NumStreams, "1".to_string()),
    ];
    if target == OpenVinoTarget::Cpu {
        settings.push((RwPropertyKey::InferenceNumThreads, threads.to_string()));
        // Pinned threads would fight the decoder's, the encoder's and other jobs' for cores.
        settings.push((RwPropertyKey::HintEnableCpuPinning, "NO".to_string()));
    }
    if let Some(hint) = precision_hint(target, options.precision, native_bf16) {
        settings.push((RwPropertyKey::HintInferencePrecision, hint.to_string()));
    }
    let failed = |what: &str, e: openvino::InferenceError| unavailable(format!("{what}: {e}"));
    for (key, value) in &settings {
        core.set_property(&device, key, value)
            .map_err(|e| failed(&format!("{} = {value}", key.as_ref()), e))?;
    }
    let graph_text = graph.display().to_string();
    let weights = if int8 {
        graph.with_extension("bin").display().to_string()
    } else {
        String::new()
    };
    let model = core
        .read_model_from_file(&graph_text, &weights)
        .map_err(|e| failed(&format!("reading {graph_text}"), e))?;
    let mut compiled = core.compile_model(&model, device).map_err(|e| {
        unavailable(format!(
            "OpenVINO declines to compile {} for its {}: {e}",
            network.name,
            target.name()
        ))
    })?;
    let compiled_precision = compiled
        .get_property(&PropertyKey::Rw(RwPropertyKey::HintInferencePrecision))
        .map(|p| p.into_owned())
        .unwrap_or_default();
    let request = compiled
        .create_infer_request()
        .map_err(|e| failed("creating an inference request", e))?;
    let device = label(target, int8, &compiled_precision);
    tracing::info!(
        network = %network.name,
        device = %device,
        inference_precision = %compiled_precision,
        native_bf16,
        threads,
        version = %openvino_runtime::version().unwrap_or_default(),
        "OpenVINO compiled"
    );
    Ok((
        OpenVinoNetwork {
            request,
            input: None,
            _compiled: compiled,
            _core: core,
        },
        device,
    ))
}

fn inference(e: openvino::InferenceError) -> UpscaleError {
    UpscaleError::Inference(format!("OpenVINO: {e}"))
}

impl FloatNetwork for OpenVinoNetwork {
    fn input(&mut self, width: usize, height: usize) -> Result<&mut [f32], UpscaleError> {
        if self.input.as_ref().map(|(size, _)| *size) != Some((width, height)) {
            let shape = Shape::new(&[1, 3, height as i64, width as i64]).map_err(inference)?;
            let tensor = Tensor::new(ElementType::F32, &shape).map_err(inference)?;
            self.request.set_input_tensor(&tensor).map_err(inference)?;
            self.input = Some(((width, height), tensor));
        }
        let (_, tensor) = self.input.as_mut().expect("made above");
        tensor.get_data_mut::<f32>().map_err(inference)
    }

    fn run(&mut self, use_output: &mut OutputUse<'_>) -> Result<(), UpscaleError> {
        self.request.infer().map_err(inference)?;
        let output = self.request.get_output_tensor().map_err(inference)?;
        let shape = output.get_shape().map_err(inference)?;
        use_output(
            shape.get_dimensions(),
            output.get_data::<f32>().map_err(inference)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_only_where_the_cpu_has_it_and_fp32_is_not_asked_for() {
        let cpu = OpenVinoTarget::Cpu;
        assert_eq!(precision_hint(cpu, Precision::Auto, true), Some("bf16"));
        assert_eq!(precision_hint(cpu, Precision::Int8, true), Some("bf16"));
        assert_eq!(precision_hint(cpu, Precision::Fp32, true), Some("f32"));
        assert_eq!(precision_hint(cpu, Precision::Auto, false), Some("f32"));
        assert_eq!(
            precision_hint(OpenVinoTarget::Gpu, Precision::Auto, false),
            None
        );
        assert_eq!(
            precision_hint(OpenVinoTarget::Gpu, Precision::Fp32, false),
            Some("f32")
        );
    }

    #[test]
    fn the_label_says_runtime_device_and_arithmetic() {
        assert_eq!(label(OpenVinoTarget::Cpu, false, "f32"), "OpenVINO:CPU");
        assert_eq!(
            label(OpenVinoTarget::Cpu, false, "bf16"),
            "OpenVINO:CPU bf16"
        );
        assert_eq!(
            label(OpenVinoTarget::Cpu, true, "bf16"),
            "OpenVINO:CPU int8"
        );
        assert_eq!(
            label(OpenVinoTarget::Gpu, false, "f16"),
            "OpenVINO:GPU fp16"
        );
    }
}
