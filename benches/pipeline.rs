//! Model-only fps against whole-pipeline fps on the same 640×360 frames.
//!
//! `cargo bench --bench pipeline` (env: LIVEUP_BENCH_FRAMES, default 8; LIVEUP_BENCH_MODEL,
//! default the daemon's default model; LIVEUP_BENCH_DEVICE, default auto). Prints numbers only;
//! nothing here is a pass/fail test.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use liveup::media::Tools;
use liveup::pipeline::frames::Frame;
use liveup::pipeline::{self, EncoderSettings, PipelineSpec, Progress};
use liveup::upscale::{self, EngineOptions, DEFAULT_MODEL};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const RATE: u32 = 24;

fn main() {
    let frames: u32 = env_or("LIVEUP_BENCH_FRAMES", "8").parse().expect("a frame count");
    let model = env_or("LIVEUP_BENCH_MODEL", DEFAULT_MODEL);
    let device = env_or("LIVEUP_BENCH_DEVICE", "auto").parse().expect("a device");
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

    let started = Instant::now();
    for input in &inputs {
        upscaler.upscale(input, &mut output).expect("inference");
    }
    let model_fps = inputs.len() as f64 / started.elapsed().as_secs_f64();

    let spec = PipelineSpec {
        input: clip.clone(),
        output: dir.path().join("bench.upscaled.ts"),
        hls_dir: dir.path().join("hls"),
        segment_seconds: 6,
        encoder: EncoderSettings::default(),
    };
    let summary = pipeline::run(
        &Tools::from_env(),
        &spec,
        upscaler.as_mut(),
        &Progress::default(),
        &AtomicBool::new(false),
    )
    .expect("the pipeline runs");
    assert_eq!(summary.frames, u64::from(frames));

    println!(
        "model {model} on {}: {WIDTH}x{HEIGHT} -> {}x{}, {frames} frames",
        upscaler.device(),
        WIDTH * scale,
        HEIGHT * scale
    );
    println!("model-only fps:     {model_fps:.3}");
    println!("whole-pipeline fps: {:.3}", summary.fps);
    println!("pipeline / model:   {:.3}", summary.fps / model_fps);
    println!(
        "realtime multiplier at {RATE} fps: {:.4}x",
        summary.fps / f64::from(RATE)
    );
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
        .args(["-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
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
