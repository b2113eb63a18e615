//! Model-only fps against whole-pipeline fps on the same 640×360 frames.
//!
//! `cargo bench --bench pipeline` (env: LIVEUP_BENCH_FRAMES, default 8; LIVEUP_BENCH_ROUNDS,
//! default 3; LIVEUP_BENCH_MODEL, default the default model; LIVEUP_BENCH_DEVICES, default
//! `cpu,openvino` (ONNX Runtime and OpenVINO on the CPU; `auto` or `cuda` on a GPU machine);
//! LIVEUP_BENCH_PRECISIONS, default `fp32,int8`: one engine for each precision on each device,
//! measured side by side). The measurements alternate round by round and the medians are
//! compared, so a noisy machine disturbs all alike. Prints numbers only; nothing here is a
//! pass/fail test.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use liveup::media::Tools;
use liveup::pipeline::frames::Frame;
use liveup::pipeline::{self, EncoderSettings, PipelineSpec, Progress};
use liveup::upscale::{self, DeviceChoice, EngineOptions, Precision, DEFAULT_MODEL};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const RATE: u32 = 24;

fn main() {
    let frames: u32 = env_or("LIVEUP_BENCH_FRAMES", "8")
        .parse()
        .expect("a frame count");
    let model = env_or("LIVEUP_BENCH_MODEL", DEFAULT_MODEL);
    let devices: Vec<DeviceChoice> = env_or("LIVEUP_BENCH_DEVICES", "cpu,openvino")
        .split(',')
        .map(|d| d.trim().parse().expect("a device"))
        .collect();
    let rounds: usize = env_or("LIVEUP_BENCH_ROUNDS", "3")
        .parse()
        .expect("a round count");
    let precisions: Vec<Precision> = env_or("LIVEUP_BENCH_PRECISIONS", "fp32,int8")
        .split(',')
        .map(|p| p.trim().parse().expect("a precision"))
        .collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clip = dir.path().join("bench.mkv");
    make_clip(&clip, frames);
    let inputs = decode(&clip, frames);

    let engines = precisions
        .iter()
        .flat_map(|&precision| devices.iter().map(move |&device| (device, precision)));
    let mut variants: Vec<Variant> = engines
        .map(|(device, precision)| {
            let options = EngineOptions {
                device,
                precision,
                ..EngineOptions::default()
            };
            let upscaler = upscale::build(&model, &options).expect("the model loads");
            Variant {
                upscaler,
                model_only: Vec::new(),
                whole: Vec::new(),
                busy: Vec::new(),
            }
        })
        .collect();
    let scale = variants[0].upscaler.scale();
    let mut output = Frame::new(WIDTH * scale, HEIGHT * scale);
    for variant in &mut variants {
        variant
            .upscaler
            .upscale(&inputs[0], &mut output)
            .expect("warm-up");
    }

    let spec = PipelineSpec {
        input: clip.clone(),
        output: Some(dir.path().join("bench.upscaled.ts")),
        hls_dir: dir.path().join("hls"),
        segment_seconds: 6,
        start_segment: 0,
        end_segment: None,
        playlist_name: liveup::media::args::PLAYLIST_NAME.to_string(),
        encoder: EncoderSettings::default(),
        min_free_bytes: 0,
    };
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for index in order {
            let variant = &mut variants[index];
            // A-B then B-A, so a machine that drifts faster or slower favours neither side.
            for measure_model_first in [round % 2 == 1, round % 2 == 0] {
                if measure_model_first {
                    let started = Instant::now();
                    for input in &inputs {
                        variant
                            .upscaler
                            .upscale(input, &mut output)
                            .expect("inference");
                    }
                    variant
                        .model_only
                        .push(inputs.len() as f64 / started.elapsed().as_secs_f64());
                } else {
                    let summary = pipeline::run(
                        &Tools::from_env(),
                        &spec,
                        variant.upscaler.as_mut(),
                        &Progress::default(),
                        &liveup::pipeline::Control::default(),
                    )
                    .expect("the pipeline runs");
                    assert_eq!(summary.frames, u64::from(frames));
                    variant.whole.push(summary.fps);
                    variant.busy.push(summary.upscaler_busy);
                }
            }
            eprintln!(
                "round {round}, {}: model-only {:.3} fps, pipeline {:.3} fps (upscaler busy {:.1} %)",
                variant.upscaler.device(),
                variant.model_only[round - 1],
                variant.whole[round - 1],
                100.0 * variant.busy[round - 1]
            );
        }
    }

    println!(
        "model {model}: {WIDTH}x{HEIGHT} -> {}x{}, {frames} frames, medians of {rounds} rounds",
        WIDTH * scale,
        HEIGHT * scale
    );
    println!(
        "{:<20} {:>14} {:>14} {:>16} {:>16} {:>14}",
        "engine",
        "model-only fps",
        "pipeline fps",
        "pipeline/model",
        "model vs first",
        "upscaler busy"
    );
    let first = median(variants[0].model_only.clone());
    for variant in &variants {
        let (model_fps, pipeline_fps) = (
            median(variant.model_only.clone()),
            median(variant.whole.clone()),
        );
        println!(
            "{:<20} {:>14.3} {:>14.3} {:>16.3} {:>15.2}x {:>13.1}%",
            variant.upscaler.device(),
            model_fps,
            pipeline_fps,
            pipeline_fps / model_fps,
            model_fps / first,
            100.0 * median(variant.busy.clone())
        );
    }
    println!("peak memory (VmHWM): {}", peak_memory());
}

/// One engine under measurement and what it measured, round by round.
struct Variant {
    upscaler: Box<dyn liveup::upscale::Upscaler>,
    model_only: Vec<f64>,
    whole: Vec<f64>,
    busy: Vec<f64>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn make_clip(path: &Path, frames: u32) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={WIDTH}x{HEIGHT}:rate={RATE},trim=end_frame={frames}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:duration={}",
            f64::from(frames) / f64::from(RATE)
        ))
        .args(["-c:v", "libx264", "-c:a", "aac"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
}

fn decode(path: &Path, frames: u32) -> Vec<Frame> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let size = Frame::byte_len(WIDTH, HEIGHT);
    let decoded: Vec<Frame> = out
        .stdout
        .chunks_exact(size)
        .map(|chunk| Frame {
            width: WIDTH,
            height: HEIGHT,
            data: chunk.to_vec(),
        })
        .collect();
    assert_eq!(decoded.len(), frames as usize);
    decoded
}
