//! `audit --bench`: what this machine sustains. Each model alone on synthetic frames at the
//! usual film sizes, and the whole pipeline once on a generated clip, within a time budget.
//!
//! A heavy network on a CPU needs minutes per HD frame, so a size is measured whole only when
//! the estimate says its runs fit in what is left of the model's share of the budget; otherwise
//! its figure is extrapolated by (padded) pixel count from the largest size measured and marked
//! as such. Network cost grows with pixels, so this is close, but it leaves out tiling overlap
//! and favours nothing else.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::media::Tools;
use crate::pipeline::{self, frames::Frame, Control, EncoderSettings, PipelineSpec, Progress};
use crate::upscale::{self, models, EngineOptions, ModelKind, Upscaler};

/// The frame every network is first timed on: small enough for the heaviest model on a CPU.
const CALIBRATION: (u32, u32) = (96, 54);
/// A second, larger calibration frame, measured when it fits the budget.
const CALIBRATION_LARGER: (u32, u32) = (192, 108);
/// Share of the budget kept for the pipeline runs.
const PIPELINE_SHARE: f64 = 0.25;

#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub models: Vec<String>,
    /// Input heights; widths are 16:9.
    pub heights: Vec<u32>,
    pub budget: Duration,
    /// Timed runs per measurement (the median is kept), after one warm-up.
    pub runs: usize,
    /// The film frame rate real time is measured against.
    pub film_fps: f64,
    pub engine: EngineOptions,
    /// The model the daemon is configured with: the one run through the pipeline.
    pub pipeline_model: String,
    pub clip_height: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelFigure {
    pub model: String,
    pub width: u32,
    pub height: u32,
    /// None when the model could not run here (`note` says why).
    pub fps: Option<f64>,
    /// Estimated from a smaller frame by pixel count rather than measured at this size.
    pub extrapolated: bool,
    pub runs: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineFigure {
    pub model: String,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub fps: f64,
    /// The model alone at the clip's size (measured or extrapolated like the table).
    pub model_fps: Option<f64>,
    /// `fps / model_fps`: the share of the model's speed the whole pipeline keeps.
    pub efficiency: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BenchResults {
    pub device: String,
    pub film_fps: f64,
    pub budget_seconds: f64,
    pub spent_seconds: f64,
    pub models: Vec<ModelFigure>,
    pub pipeline: Vec<PipelineFigure>,
}

/// Measured seconds per frame by padded pixel count, to estimate other sizes: a line through
/// the two largest measurements (a run has a fixed cost besides its per-pixel one, which a
/// small frame alone would spread over too few pixels), or proportional to the one there is.
#[derive(Debug, Clone, Default)]
struct Calibration {
    pad: u32,
    /// (padded pixels, seconds), in the order measured (ascending size).
    points: Vec<(f64, f64)>,
}

impl Calibration {
    fn padded(pad: u32, width: u32, height: u32) -> f64 {
        f64::from(width + 2 * pad) * f64::from(height + 2 * pad)
    }

    fn add(&mut self, width: u32, height: u32, seconds: f64) {
        self.points
            .push((Calibration::padded(self.pad, width, height), seconds));
    }

    fn estimate(&self, width: u32, height: u32) -> f64 {
        let pixels = Calibration::padded(self.pad, width, height);
        match self.points.as_slice() {
            [.., (p1, t1), (p2, t2)] if p2 > p1 && t2 > t1 => {
                let per_pixel = (t2 - t1) / (p2 - p1);
                let fixed = (t1 - per_pixel * p1).max(0.0);
                fixed + per_pixel * pixels
            }
            [.., (p, t)] => t * pixels / p,
            [] => f64::INFINITY,
        }
    }
}

/// 16:9 and even: 360 → 640, 480 → 854, 1080 → 1920.
pub fn width_for(height: u32) -> u32 {
    (((f64::from(height) * 16.0 / 9.0) / 2.0).round() as u32) * 2
}

pub fn run(tools: &Tools, settings: &BenchSettings) -> Result<BenchResults, String> {
    let started = Instant::now();
    let mut heights = settings.heights.clone();
    heights.sort_unstable();
    heights.dedup();
    let model_budget =
        settings.budget.mul_f64(1.0 - PIPELINE_SHARE) / settings.models.len().max(1) as u32;
    let mut figures = Vec::new();
    let mut calibrations = Vec::new();
    let mut device = "CPU".to_string();
    for name in &settings.models {
        let spec = models::find(name).map_err(|e| e.to_string())?;
        match spec.kind {
            ModelKind::Scaler => figures.extend(bench_scaler(
                tools,
                name,
                spec.scale,
                &heights,
                settings,
                model_budget,
            )),
            ModelKind::Onnx => match upscale::build(name, &settings.engine) {
                Ok(mut upscaler) => {
                    device = upscaler.device();
                    let (found, calibration) = bench_network(
                        upscaler.as_mut(),
                        name,
                        spec.reflect_pad,
                        &heights,
                        settings,
                        model_budget,
                    );
                    figures.extend(found);
                    calibrations.push((name.clone(), calibration));
                }
                Err(error) => figures.extend(heights.iter().map(|&h| ModelFigure {
                    model: name.clone(),
                    width: width_for(h),
                    height: h,
                    fps: None,
                    extrapolated: false,
                    runs: 0,
                    note: Some(error.to_string()),
                })),
            },
        }
    }
    let pipeline_budget = settings
        .budget
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(2));
    let pipeline = bench_pipelines(tools, settings, &calibrations, pipeline_budget)?;
    Ok(BenchResults {
        device,
        film_fps: settings.film_fps,
        budget_seconds: settings.budget.as_secs_f64(),
        spent_seconds: started.elapsed().as_secs_f64(),
        models: figures,
        pipeline,
    })
}

/// A textured synthetic picture: flat frames would flatter nothing (the network's cost does
/// not depend on content), but a pattern keeps the work honest if that ever changes.
fn test_frame(width: u32, height: u32) -> Frame {
    let mut frame = Frame::new(width, height);
    for (i, pixel) in frame.data.chunks_exact_mut(3).enumerate() {
        let (x, y) = ((i as u32 % width), (i as u32 / width));
        pixel[0] = (x * 255 / width.max(1)) as u8;
        pixel[1] = (y * 255 / height.max(1)) as u8;
        pixel[2] = ((x ^ y) & 0xff) as u8;
    }
    frame
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median seconds per frame of `runs` timed runs after one warm-up; an engine with several
/// frames in flight gets that many at once, and the time is shared between them.
fn time_network(
    upscaler: &mut dyn Upscaler,
    width: u32,
    height: u32,
    runs: usize,
) -> Result<f64, String> {
    let together = upscaler.in_flight().max(1);
    let input = test_frame(width, height);
    let scale = upscaler.scale();
    let mut outputs: Vec<Frame> = (0..together)
        .map(|_| Frame::new(width * scale, height * scale))
        .collect();
    let mut run = |upscaler: &mut dyn Upscaler| {
        let mut pairs: Vec<(&Frame, &mut Frame)> =
            outputs.iter_mut().map(|output| (&input, output)).collect();
        upscaler
            .upscale_together(&mut pairs)
            .map_err(|e| e.to_string())
    };
    run(upscaler)?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        run(upscaler)?;
        times.push(started.elapsed().as_secs_f64() / together as f64);
    }
    Ok(median(times))
}

fn bench_network(
    upscaler: &mut dyn Upscaler,
    name: &str,
    pad: u32,
    heights: &[u32],
    settings: &BenchSettings,
    budget: Duration,
) -> (Vec<ModelFigure>, Option<Calibration>) {
    let started = Instant::now();
    let (cw, ch) = CALIBRATION;
    let mut calibration = Calibration {
        pad,
        points: Vec::new(),
    };
    match time_network(upscaler, cw, ch, settings.runs) {
        Ok(seconds) => calibration.add(cw, ch, seconds),
        Err(error) => {
            let figures = heights.iter().map(|&h| failed(name, h, &error)).collect();
            return (figures, None);
        }
    }
    let (lw, lh) = CALIBRATION_LARGER;
    let left = budget.saturating_sub(started.elapsed()).as_secs_f64();
    if calibration.estimate(lw, lh) * (settings.runs as f64 + 1.0) <= left / 2.0 {
        if let Ok(seconds) = time_network(upscaler, lw, lh, settings.runs) {
            calibration.add(lw, lh, seconds);
        }
    }
    let mut figures = Vec::new();
    for &height in heights {
        let width = width_for(height);
        let estimate = calibration.estimate(width, height);
        let left = budget.saturating_sub(started.elapsed()).as_secs_f64();
        let mut figure = ModelFigure {
            model: name.to_string(),
            width,
            height,
            fps: Some(1.0 / estimate),
            extrapolated: true,
            runs: 0,
            note: None,
        };
        if estimate * (settings.runs as f64 + 1.0) <= left {
            match time_network(upscaler, width, height, settings.runs) {
                Ok(seconds) => {
                    calibration.add(width, height, seconds);
                    figure.fps = Some(1.0 / seconds);
                    figure.extrapolated = false;
                    figure.runs = settings.runs.max(1);
                }
                Err(error) => figure = failed(name, height, &error),
            }
        }
        figures.push(figure);
    }
    (figures, Some(calibration))
}

fn failed(name: &str, height: u32, error: &str) -> ModelFigure {
    ModelFigure {
        model: name.to_string(),
        width: width_for(height),
        height,
        fps: None,
        extrapolated: false,
        runs: 0,
        note: Some(error.to_string()),
    }
}

/// Lanczos runs inside ffmpeg's decoder, so it is timed there: a generated pattern scaled and
/// discarded. Its figures include generating the pattern, and are therefore slightly low.
fn bench_scaler(
    tools: &Tools,
    name: &str,
    scale: u32,
    heights: &[u32],
    settings: &BenchSettings,
    budget: Duration,
) -> Vec<ModelFigure> {
    let filter = upscale::lanczos::Lanczos::new(scale)
        .decoder_filter()
        .unwrap_or_default();
    let started = Instant::now();
    let mut frames = 12u64;
    heights
        .iter()
        .map(|&height| {
            let width = width_for(height);
            let mut times = Vec::new();
            for _ in 0..settings.runs.max(1) {
                if !times.is_empty() && started.elapsed() > budget {
                    break;
                }
                match time_ffmpeg_scaler(tools, width, height, frames, &filter) {
                    Ok(seconds) => times.push(frames as f64 / seconds),
                    Err(error) => return failed(name, height, &error),
                }
            }
            let runs = times.len();
            let fps = median(times);
            // About a second of work per run at the next size.
            frames = ((fps / 2.0) as u64).clamp(6, 96);
            ModelFigure {
                model: name.to_string(),
                width,
                height,
                fps: Some(fps),
                extrapolated: false,
                runs,
                note: Some("ffmpeg's scaler, in the decoder".into()),
            }
        })
        .collect()
}

fn time_ffmpeg_scaler(
    tools: &Tools,
    width: u32,
    height: u32,
    frames: u64,
    filter: &str,
) -> Result<f64, String> {
    let mut command = tools.ffmpeg_command();
    command
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate=24"))
        .args([
            "-frames:v",
            &frames.to_string(),
            "-vf",
            filter,
            "-pix_fmt",
            "rgb24",
        ])
        .args(["-f", "null", "-"]);
    let started = Instant::now();
    crate::media::process::output("ffmpeg", command).map_err(|e| e.to_string())?;
    Ok(started.elapsed().as_secs_f64())
}

/// The configured model (and lanczos, when benched) through decode → upscale → encode on a
/// generated clip, the same code path a job takes.
fn bench_pipelines(
    tools: &Tools,
    settings: &BenchSettings,
    calibrations: &[(String, Option<Calibration>)],
    budget: Duration,
) -> Result<Vec<PipelineFigure>, String> {
    let height = settings.clip_height.max(2) & !1;
    let width = width_for(height);
    let mut chosen: Vec<String> = vec![settings.pipeline_model.clone()];
    if settings.models.iter().any(|m| m == "lanczos") && settings.pipeline_model != "lanczos" {
        chosen.push("lanczos".into());
    }
    let dir = Scratch::new()?;
    let mut figures = Vec::new();
    for model in chosen {
        let calibration = calibrations
            .iter()
            .find(|(name, _)| *name == model)
            .and_then(|(_, c)| c.as_ref());
        let model_fps = calibration.map(|c| 1.0 / c.estimate(width, height));
        // As many frames as fit in the share of the budget, 4 to 48.
        let share = budget.as_secs_f64() / 2.0;
        let frames = match model_fps {
            Some(fps) => ((share * fps * 0.8) as u64).clamp(4, 48),
            // lanczos: enough frames that starting two ffmpegs is not most of the time.
            None => 120,
        };
        let clip = dir.path().join(format!("clip-{model}.mp4"));
        make_clip(tools, &clip, width, height, settings.film_fps, frames)?;
        let mut upscaler = match upscale::build(&model, &settings.engine) {
            Ok(upscaler) => upscaler,
            Err(_) => continue,
        };
        let spec = PipelineSpec {
            input: clip.clone(),
            output: None,
            hls_dir: dir.path().join(format!("hls-{model}")),
            segment_seconds: 1,
            start_segment: 0,
            end_segment: None,
            playlist_name: crate::media::args::PLAYLIST_NAME.to_string(),
            encoder: EncoderSettings::default(),
            min_free_bytes: 0,
        };
        let summary = pipeline::run(
            tools,
            &spec,
            upscaler.as_mut(),
            &Progress::default(),
            &Control::default(),
        )
        .map_err(|e| format!("pipeline run with {model}: {e}"))?;
        figures.push(PipelineFigure {
            model,
            width,
            height,
            frames: summary.frames,
            fps: summary.fps,
            model_fps,
            efficiency: model_fps.map(|m| summary.fps / m),
        });
    }
    Ok(figures)
}

/// A folder of its own under the system's temporary folder, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let path = std::env::temp_dir().join(format!(
            "liveup-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot make a scratch folder {}: {e}", path.display()))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_clip(
    tools: &Tools,
    path: &Path,
    width: u32,
    height: u32,
    fps: f64,
    frames: u64,
) -> Result<(), String> {
    let mut command: Command = tools.ffmpeg_command();
    command
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate={fps}"))
        .args(["-frames:v", &frames.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path);
    crate::media::process::output("ffmpeg", command)
        .map(|_| ())
        .map_err(|e| format!("cannot generate the bench clip: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_sixteen_by_nine_and_even() {
        assert_eq!(width_for(360), 640);
        assert_eq!(width_for(480), 854);
        assert_eq!(width_for(720), 1280);
        assert_eq!(width_for(1080), 1920);
    }

    #[test]
    fn extrapolation_scales_by_padded_pixels() {
        let mut c = Calibration {
            pad: 10,
            points: Vec::new(),
        };
        c.add(100, 100, 1.0);
        assert!((c.estimate(100, 100) - 1.0).abs() < 1e-12);
        let bigger = c.estimate(230, 230) / c.estimate(100, 100);
        assert!((bigger - 250.0 * 250.0 / (120.0 * 120.0)).abs() < 1e-9);
    }

    #[test]
    fn two_sizes_separate_the_fixed_cost_from_the_per_pixel_one() {
        let mut c = Calibration::default();
        c.add(100, 100, 0.5 + 1e-4 * 10_000.0);
        c.add(200, 200, 0.5 + 1e-4 * 40_000.0);
        assert!((c.estimate(400, 400) - (0.5 + 1e-4 * 160_000.0)).abs() < 1e-9);
    }
}
