//! The `liveup` subcommands: flags in, a validated request out, then the library does the work.

mod audit;
mod cleanup;
mod doctor;
mod job_folder;
mod monitor;
mod serve;
mod upscale;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::upscale::{DeviceChoice, DEFAULT_MODEL};

#[derive(Debug, Parser)]
#[command(
    name = "liveup",
    version,
    about = "Watch an AI-upscaled film while it is still being upscaled"
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upscale one file into a live HLS playlist and a final file.
    Upscale(UpscaleArgs),
    /// Run the daemon: Jellyfin webhooks in, live HLS out.
    Serve(ServeArgs),
    /// Show a job's progress live: segments, duration, progress, rate, ETA, state.
    Monitor(MonitorArgs),
    /// Delete the HLS folders of completed jobs (final file present) and of abandoned ones.
    Cleanup(CleanupArgs),
    /// Say whether this machine streams live: time an output file, or benchmark the models.
    Audit(AuditArgs),
    /// Check every prerequisite (ffmpeg, ONNX Runtime, OpenVINO, GPU, CUDA libraries, models,
    /// folders) and whether the configured device works; exits non-zero when it cannot.
    Doctor(DoctorArgs),
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The configuration file `serve` reads (each key can also be set as LIVEUP_<KEY>).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// A job id (a folder of hls_root) or any HLS folder; default: the running or newest job.
    pub target: Option<String>,
    /// The source film, to know its length (ffprobe) when the job does not say.
    #[arg(long)]
    pub input_file: Option<PathBuf>,
    /// Ask this daemon (e.g. http://127.0.0.1:8765) instead of reading the folder.
    #[arg(long)]
    pub server: Option<String>,
    /// Print one reading and exit.
    #[arg(long)]
    pub once: bool,
    /// One JSON object per reading, with the keys of /hls-status.
    #[arg(long)]
    pub json: bool,
    /// Seconds between readings.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// The configuration file `serve` reads (for hls_root and token).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Abandoned folders (failed, cancelled, stopped, no job) unchanged for this many hours go.
    #[arg(long, default_value_t = cleanup::DEFAULT_MAX_AGE_HOURS)]
    pub max_age: f64,
    /// Only completed jobs whose final file exists; keep every abandoned folder.
    #[arg(long)]
    pub completed_only: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The configuration file `serve` reads (for hls_root and output_root).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Time a finished output file, or a growing one (FILE.partial while it is written).
    #[arg(long, conflicts_with = "bench")]
    pub output: Option<PathBuf>,
    /// Seconds to watch a growing file for its sampled rate (0: do not sample).
    #[arg(long, default_value_t = 10.0)]
    pub sample_seconds: f64,
    /// Measure this machine: each model alone, the pipeline, and what streams live.
    #[arg(long)]
    pub bench: bool,
    /// Models to bench, comma-separated (default: every model).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Input heights to bench, comma-separated (16:9 frames).
    #[arg(long, value_delimiter = ',', default_value = "360,480,720,1080")]
    pub resolutions: Vec<u32>,
    /// Roughly how long the bench may take; sizes that would not fit are extrapolated.
    #[arg(long, default_value_t = 90.0)]
    pub budget_seconds: f64,
    /// Timed runs per measurement (the median is kept), after one warm-up.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The film frame rate that real time means.
    #[arg(long, default_value_t = 24.0)]
    pub film_fps: f64,
    /// Height of the generated clip the pipeline is timed on.
    #[arg(long, default_value_t = 180)]
    pub clip_height: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The configuration file `serve` reads (model, device, ONNX Runtime, models_dir).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The network's arithmetic to bench, instead of the configuration's: auto, fp32, fp16 or
    /// int8 (the CPU's quantized small networks).
    #[arg(long)]
    pub precision: Option<crate::upscale::Precision>,
    /// The device to bench, instead of the configuration's: auto, cpu, cuda, cuda:N, tensorrt,
    /// tensorrt:N, openvino or openvino:gpu.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The TOML configuration file (each key can also be set as LIVEUP_<KEY>).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct UpscaleArgs {
    /// The source video.
    pub input: PathBuf,
    /// The final file (MPEG-TS), written as FILE.partial until whole.
    #[arg(long)]
    pub output: PathBuf,
    /// Folder for the live playlist (stream.m3u8) and its segments.
    #[arg(long)]
    pub hls_dir: PathBuf,
    /// A model from models/manifest.json, or `lanczos` (no AI).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// auto, cpu, cuda, cuda:N, tensorrt, tensorrt:N, openvino or openvino:gpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// The network's arithmetic: auto (fp16 on CUDA, fp32 on the CPU), fp32, fp16 or int8 (the
    /// small networks quantized, CPU only).
    #[arg(long, default_value = "auto")]
    pub precision: crate::upscale::Precision,
    /// How frames cross into the network: auto (bytes on a GPU, floats on the CPU), float or
    /// uint8.
    #[arg(long, default_value = "auto")]
    pub frame_io: crate::upscale::FrameIo,
    /// Frames run at once, each on its own session (uint8 frames only); 0: two on a GPU, one on
    /// the CPU.
    #[arg(long, default_value_t = 0)]
    pub in_flight: u32,
    /// ONNX Runtime's threads when the network runs on the CPU (0: every usable CPU, the
    /// cgroup's CPU quota counted).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::thread_plan::MAX_THREADS)))]
    pub threads: u32,
    /// The video encoder: libx264, h264_nvenc or hevc_nvenc (NVENC decodes with NVDEC too).
    #[arg(long, default_value = "libx264", value_parser = clap::builder::PossibleValuesParser::new(crate::pipeline::ENCODERS))]
    pub encoder: String,
    /// Length of each HLS segment in seconds.
    #[arg(long, alias = "segment-time", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub segment_seconds: u32,
    /// Frames with a side longer than this many pixels are upscaled in tiles (0: never).
    #[arg(long, default_value_t = 720)]
    pub tile_size: u32,
    /// ONNX Runtime's library (default: ORT_DYLIB_PATH, then .deps/lib).
    #[arg(long, env = "LIVEUP_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
    /// Folder of converted .onnx models (default: LIVEUP_MODELS_DIR, then .deps/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// No progress bar (for logs and scripts).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Upscale(args) => upscale::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Monitor(args) => monitor::run(args),
        Command::Cleanup(args) => cleanup::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "liveup=info",
        1 => "liveup=debug",
        _ => "liveup=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIVEUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
