use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::UpscaleArgs;
use crate::cpu_budget::usable_cpus;
use crate::media::Tools;
use crate::pipeline::{self, Control, EncoderSettings, PipelineSpec, Progress};
use crate::thread_plan::ThreadPlan;
use crate::upscale::{self, EngineOptions};

pub fn run(args: UpscaleArgs) -> anyhow::Result<()> {
    let options = EngineOptions {
        device: args.device,
        precision: args.precision,
        frames: args.frame_io,
        in_flight: args.in_flight,
        ort_library: args.ort_library.clone(),
        models_dir: args.models_dir.clone(),
        tile_size: args.tile_size,
        intra_threads: args.threads as usize,
        ..EngineOptions::default()
    };
    let mut upscaler = upscale::build(&args.model, &options)?;
    let network_on_cpu = upscale::runs_on_cpu(&upscaler.device());
    let plan = ThreadPlan::new(usable_cpus(), network_on_cpu.into(), args.threads, 0);
    tracing::info!("threads: {plan}");
    let spec = PipelineSpec {
        input: args.input.clone(),
        output: Some(args.output.clone()),
        hls_dir: args.hls_dir.clone(),
        segment_seconds: args.segment_seconds,
        start_segment: 0,
        end_segment: None,
        playlist_name: crate::media::args::PLAYLIST_NAME.to_string(),
        encoder: EncoderSettings::for_codec(&args.encoder),
        min_free_bytes: 0,
    };
    let tools = Tools::from_env();
    let progress = Progress::default();
    let control = Control::default();
    let bar = progress_bar(args.quiet);

    let result = std::thread::scope(|scope| {
        let job =
            scope.spawn(|| pipeline::run(&tools, &spec, upscaler.as_mut(), &progress, &control));
        while !job.is_finished() {
            let now = progress.snapshot();
            bar.set_length(now.frames_total);
            bar.set_position(now.frames_done);
            bar.set_message(format!(
                "{:.2} fps, {:.3}x realtime, ETA {}",
                now.fps,
                now.realtime,
                now.eta_seconds
                    .map(|s| format!("{}s", s.round()))
                    .unwrap_or_else(|| "-".into())
            ));
            std::thread::sleep(Duration::from_millis(200));
        }
        job.join().expect("the pipeline thread does not panic")
    });
    bar.finish_and_clear();
    let summary = result.with_context(|| format!("upscaling {}", args.input.display()))?;
    println!(
        "upscaled {} frames ({}x{} -> {}x{}, {}) in {:.1} s: {:.2} fps, {:.3}x realtime",
        summary.frames,
        summary.source.width,
        summary.source.height,
        summary.output_width,
        summary.output_height,
        args.model,
        summary.seconds,
        summary.fps,
        summary.fps / summary.source.frame_rate.as_f64(),
    );
    println!("playlist: {}", summary.playlist.display());
    println!("final file: {}", args.output.display());
    Ok(())
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} frames  {msg}")
            .expect("valid template"),
    );
    bar
}
