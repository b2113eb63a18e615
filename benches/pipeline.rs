//! Model-only fps against whole-pipeline fps on the same 640×360 frames.
//!
//! `cargo bench --bench pipeline` (env: LIVEUP_BENCH_FRAMES, default 8; LIVEUP_BENCH_ROUNDS,
//! default 3; LIVEUP_BENCH_MODEL, default the default model; LIVEUP_BENCH_DEVICE, default auto).
//! The two measurements alternate round by round and the medians are compared, so a noisy
//! machine disturbs both alike. Prints numbers only; nothing here is a pass/fail test.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use liveup::media::Tools;
use liveup::pipeline::frames::Frame;
use liveup::pipeline::{self, EncoderSettings, PipelineSpec, Progress};
use liveup::upscale::{self, EngineOptions, DEFAULT_MODEL};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const RATE: u32 = 24;

fn main() {
    let frames: u32 = env_or("LIVEUP_BENCH_FRAMES", "8")
        .parse()
        .expect("a frame count");
    let model = env_or("LIVEUP_BENCH_MODEL", DEFAULT_MODEL);
    let device = env_or("LIVEUP_BENCH_DEVICE", "auto")
        .parse()
        .expect("a device");
    let rounds: usize = env_or("LIVEUP_BENCH_ROUNDS", "3")
        .parse()
        .expect("a round count");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clip = dir.path().join("bench.mkv");
    make_clip(&clip, frames);

    let options = EngineOptions {
        device,
        ..EngineOptions::default()
    };
    let mut upscaler = upscale::build(&model, &options).expect("the model loads");
    let scale = upscaler.scale();
    let inputs = decode(&clip, frames);
    let mut output = Frame::new(WIDTH * scale, HEIGHT * scale);
    upscaler.upscale(&inputs[0], &mut output).expect("warm-up");

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
    let (mut model_only, mut whole, mut busy) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        // A-B then B-A, so a machine that drifts faster or slower favours neither side.
        for measure_model_first in [round % 2 == 1, round % 2 == 0] {
            if measure_model_first {
                let started = Instant::now();
                for input in &inputs {
                    upscaler.upscale(input, &mut output).expect("inference");
                }
                model_only.push(inputs.len() as f64 / started.elapsed().as_secs_f64());
            } else {
                let summary = pipeline::run(
                    &Tools::from_env(),
                    &spec,
                    upscaler.as_mut(),
                    &Progress::default(),
                    &liveup::pipeline::Control::default(),
                )
                .expect("the pipeline runs");
                assert_eq!(summary.frames, u64::from(frames));
                whole.push(summary.fps);
                busy.push(summary.upscaler_busy);
            }
        }
        eprintln!(
            "round {round}: model-only {:.3} fps, pipeline {:.3} fps (upscaler busy {:.1} %)",
            model_only[round - 1],
            whole[round - 1],
            100.0 * busy[round - 1]
        );
    }
    let (model_fps, pipeline_fps) = (median(model_only), median(whole));

    println!(
        "model {model} on {}: {WIDTH}x{HEIGHT} -> {}x{}, {frames} frames",
        upscaler.device(),
        WIDTH * scale,
        HEIGHT * scale
    );
    println!("model-only fps:     {model_fps:.3}");
    println!("whole-pipeline fps: {pipeline_fps:.3}  (medians of {rounds} rounds)");
    println!("pipeline / model:   {:.3}", pipeline_fps / model_fps);
    println!(
        "upscaler busy during the pipeline: {:.1} % (median)",
        100.0 * median(busy)
    );
    println!(
        "realtime multiplier at {RATE} fps: {:.4}x",
        pipeline_fps / f64::from(RATE)
    );
    println!("peak memory (VmHWM): {}", peak_memory());
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
