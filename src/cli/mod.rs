//! The `liveup` subcommands: flags in, a validated request out, then the library does the work.

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
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Length of each HLS segment in seconds.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub segment_time: u32,
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

pub fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Upscale(args) => upscale::run(args),
        Command::Serve(args) => serve::run(args),
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
