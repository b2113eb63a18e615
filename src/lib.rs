//! liveup: watch an AI-upscaled film while it is still being upscaled.
//!
//! A source film flows through:
//! - [`media`]: ffprobe tells what the source holds; ffmpeg argument lists; the one child-process
//!   wrapper every ffmpeg goes through.
//! - [`pipeline`]: decode (ffmpeg → rgb24 frames) → upscale → encode (ffmpeg `-f tee` → live HLS
//!   playlist + final file), three threads joined by bounded channels with pooled frames.
//! - [`upscale`]: the [`upscale::Upscaler`] trait; a Real-ESRGAN network on ONNX Runtime (CPU or
//!   CUDA, chosen at run time) or OpenVINO (Intel's runtime, for CPUs), or ffmpeg's Lanczos
//!   scaler.
//! - [`hls`]: the playlist model, to read back and check what the encoder wrote.
//! - [`job_dir`]: what a job's folder holds and what each file is called.
//! - [`ladder`]: rendition ladders per kind of client; [`jobs::variants`] makes the lower rungs
//!   from the upscaled one.
//! - [`disk`]: free space where jobs write, so a nearly full disk pauses work.
//! - [`cpuinfo`]: the processor's name and whether it has bf16 arithmetic.
//! - [`cpu_budget`] and [`thread_plan`]: the CPUs this process may use (cores, cgroup quota), and
//!   how ONNX Runtime's and ffmpeg's threads share them between jobs.
//! - [`doctor`]: what this machine has for liveup, and whether the configured device works.
//! - [`cli`]: the subcommands of the `liveup` binary.

pub mod base_url;
pub mod cli;
pub mod config;
pub mod cpu_budget;
pub mod cpuinfo;
pub mod disk;
pub mod doctor;
pub mod hls;
pub mod jellyfin;
pub mod job_dir;
pub mod jobs;
pub mod ladder;
pub mod media;
pub mod path_map;
pub mod paths;
pub mod pipeline;
pub mod server;
pub mod thread_plan;
pub mod upscale;
pub mod watch;
