//! `device = "openvino"`: the network on OpenVINO through liveup's whole engine (padding, tiles,
//! shrink), against ONNX Runtime's fp32 on a photograph the int8 calibration never saw, and
//! the errors for what it cannot run.

mod common;

use common::{photo_frame, psnr, upscale_with};
use liveup::upscale::{
    self, openvino_runtime, DeviceChoice, EngineOptions, OpenVinoTarget, Precision,
};

fn openvino(precision: Precision, tile_size: u32) -> EngineOptions {
    EngineOptions {
        device: DeviceChoice::OpenVino(OpenVinoTarget::Cpu),
        precision,
        tile_size,
        ..EngineOptions::default()
    }
}

/// Each precision within its bound of ONNX Runtime's fp32, whole frames and 64-pixel tiles, for
/// the default model (the x4 network shrunk) and the bare x4 network; the device names the
/// arithmetic that ran (bf16 for `auto` where the CPU has it).
#[test]
fn openvino_matches_onnx_runtime_fp32_whole_and_tiled() {
    let input = photo_frame(320, 180);
    let bf16_here = liveup::cpuinfo::has_native_bf16();
    for model in [upscale::DEFAULT_MODEL, "realesr-animevideov3-x4"] {
        for tile_size in [0, 64] {
            let reference = upscale_with(
                model,
                &EngineOptions {
                    device: DeviceChoice::Cpu,
                    precision: Precision::Fp32,
                    tile_size,
                    ..EngineOptions::default()
                },
                &input,
            );
            for (precision, least_db, device) in [
                (Precision::Fp32, 45.0, "OpenVINO:CPU"),
                (
                    Precision::Auto,
                    45.0,
                    if bf16_here {
                        "OpenVINO:CPU bf16"
                    } else {
                        "OpenVINO:CPU"
                    },
                ),
                (Precision::Int8, 38.0, "OpenVINO:CPU int8"),
            ] {
                let options = openvino(precision, tile_size);
                let ours = upscale_with(model, &options, &input);
                let db = psnr(&reference, &ours);
                println!("{model}, tiles {tile_size}, OpenVINO {precision}: {db:.2} dB");
                assert!(
                    db >= least_db,
                    "{model} {precision} tiles {tile_size}: {db:.2} dB"
                );
                assert_eq!(upscale::build(model, &options).unwrap().device(), device);
            }
        }
    }
}

#[test]
fn what_openvino_cannot_run_is_a_clear_error() {
    let refused = |model: &str, options: &EngineOptions| {
        upscale::build(model, options)
            .err()
            .expect("refused")
            .to_string()
    };
    let fp16 = refused(upscale::DEFAULT_MODEL, &openvino(Precision::Fp16, 720));
    assert!(
        fp16.contains("openvino unavailable: precision fp16 is for CUDA"),
        "{fp16}"
    );
    let int8 = refused("realesrgan-x4plus", &openvino(Precision::Int8, 720));
    assert!(
        int8.contains("realesrgan-x4plus has no OpenVINO int8 variant"),
        "{int8}"
    );

    let core = openvino_runtime::core().expect("scripts/setup installed OpenVINO");
    let listed = openvino_runtime::devices(&core).unwrap();
    assert!(listed.iter().any(|d| d == "CPU"), "{listed:?}");
    let gpu = EngineOptions {
        device: "openvino:gpu".parse().unwrap(),
        ..EngineOptions::default()
    };
    if listed.iter().any(|d| d.starts_with("GPU")) {
        let device = upscale::build(upscale::DEFAULT_MODEL, &gpu)
            .unwrap()
            .device();
        assert!(device.starts_with("OpenVINO:GPU"), "{device}");
    } else {
        let error = refused(upscale::DEFAULT_MODEL, &gpu);
        assert!(
            error.contains("openvino:gpu unavailable: OpenVINO lists no GPU here (it lists: CPU"),
            "{error}"
        );
    }
}
