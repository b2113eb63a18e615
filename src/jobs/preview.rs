//! A job's before/after picture: one frame of the source beside the same frame upscaled, made
//! once with ffmpeg + `image` and kept in the job's folder.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::JobView;
use crate::job_dir::{JobDir, PREVIEW_FILE};
use crate::media::process::Process;
use crate::media::Tools;

/// Dark band between the two halves of the picture.
const PREVIEW_GAP: u32 = 8;
/// One frame out of a local file takes well under a second; this only stops a stuck ffmpeg.
const FFMPEG_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub enum PreviewError {
    /// Nothing upscaled on disk yet.
    NotYet,
    Failed(String),
}

/// The job's before/after picture as PNG: made once, then read from `<job dir>/preview.png`.
///
/// The upscaled frame comes from the job's first segment made (`first_made`), or its final
/// file, half a segment in; the original frame is the source's frame at the same film time,
/// scaled to the upscaled size with ffmpeg's default (bicubic) scaler, as a player would show it.
pub fn preview(
    tools: &Tools,
    job: &JobView,
    dir: &JobDir,
    first_made: Option<u32>,
    segment_seconds: u32,
) -> Result<Vec<u8>, PreviewError> {
    let cached = dir.preview();
    if let Ok(png) = std::fs::read(&cached) {
        return Ok(png);
    }
    let seconds = f64::from(segment_seconds.max(1));
    let film_left = |start: f64| {
        job.source_duration_seconds
            .map_or(seconds, |d| (d - start).clamp(0.0, seconds))
    };
    let (upscaled, start) = match first_made {
        Some(index) => (dir.segment(index), f64::from(index) * seconds),
        None if job.output_ready => (job.output.clone(), 0.0),
        None => return Err(PreviewError::NotYet),
    };
    let offset = film_left(start) / 2.0;
    let after = decode_png(&run_ffmpeg(one_frame(tools, &upscaled, offset, None))?)?;
    let (width, height) = after.dimensions();
    let raw = run_ffmpeg(one_frame(
        tools,
        &job.source,
        start + offset,
        Some((width, height)),
    ))?;
    let before = image::RgbImage::from_raw(width, height, raw)
        .ok_or_else(|| PreviewError::Failed("ffmpeg gave a short source frame".to_string()))?;
    let png = side_by_side(&before, &after)?;
    let temp = dir
        .path()
        .join(format!(".{PREVIEW_FILE}.{}.tmp", std::process::id()));
    if std::fs::write(&temp, &png).is_ok() && std::fs::rename(&temp, &cached).is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    Ok(png)
}

/// An ffmpeg that writes one frame `at` seconds into `input`: the source, scaled to `size`, as
/// raw RGB; or an upscaled file as PNG.
///
/// The source is seeked in the demuxer (fast, exact since ffmpeg decodes from the keyframe
/// before). liveup's MPEG-TS files are read from their start and the frames before `at` dropped:
/// ffmpeg 5.1's input seek in a one-second segment whose only keyframe is its first frame finds
/// nothing past 0.2 s. `at` is at most half a segment, so that reads little.
fn one_frame(tools: &Tools, input: &Path, at: f64, size: Option<(u32, u32)>) -> Command {
    let mut command = tools.ffmpeg_command();
    let at = format!("{at:.3}");
    match size {
        Some(_) => command.arg("-ss").arg(&at).arg("-i").arg(input),
        None => command.arg("-i").arg(input).arg("-ss").arg(&at),
    };
    command.args(["-map", "0:v:0", "-frames:v", "1", "-an", "-sn"]);
    match size {
        Some((width, height)) => command
            .arg("-vf")
            .arg(format!("scale={width}:{height}:flags=bicubic,setsar=1"))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        None => command.args(["-f", "image2pipe", "-c:v", "png", "-"]),
    };
    command
}

/// Runs a short ffmpeg and returns its stdout; kills it past [`FFMPEG_LIMIT`].
fn run_ffmpeg(command: Command) -> Result<Vec<u8>, PreviewError> {
    let failed = |e: &dyn std::fmt::Display| PreviewError::Failed(e.to_string());
    let mut spawned = Process::spawn("ffmpeg", command, false, true).map_err(|e| failed(&e))?;
    let process = Arc::clone(&spawned.process);
    let (finished, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(FFMPEG_LIMIT) {
            process.kill();
        }
    });
    let mut out = Vec::new();
    if let Some(mut stdout) = spawned.stdout.take() {
        let _ = stdout.read_to_end(&mut out);
    }
    let waited = spawned.process.wait();
    drop(finished);
    let _ = watchdog.join();
    waited.map_err(|e| failed(&e))?;
    if out.is_empty() {
        return Err(PreviewError::Failed(
            "ffmpeg gave no frame at that time".to_string(),
        ));
    }
    Ok(out)
}

fn decode_png(bytes: &[u8]) -> Result<image::RgbImage, PreviewError> {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map(|picture| picture.to_rgb8())
        .map_err(|e| PreviewError::Failed(format!("ffmpeg's frame is not a PNG: {e}")))
}

/// `before` and `after` (the same size) side by side, as PNG.
pub fn side_by_side(
    before: &image::RgbImage,
    after: &image::RgbImage,
) -> Result<Vec<u8>, PreviewError> {
    let (width, height) = after.dimensions();
    let mut canvas =
        image::RgbImage::from_pixel(width * 2 + PREVIEW_GAP, height, image::Rgb([24, 24, 24]));
    image::imageops::replace(&mut canvas, before, 0, 0);
    image::imageops::replace(&mut canvas, after, i64::from(width + PREVIEW_GAP), 0);
    let mut png = Vec::new();
    canvas
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| PreviewError::Failed(e.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_puts_before_left_and_after_right() {
        let before = image::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 0]));
        let after = image::RgbImage::from_pixel(4, 2, image::Rgb([0, 0, 255]));
        let png = side_by_side(&before, &after).unwrap();
        let picture = decode_png(&png).unwrap();
        assert_eq!(picture.dimensions(), (4 * 2 + PREVIEW_GAP, 2));
        assert_eq!(picture.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(picture.get_pixel(4 + PREVIEW_GAP, 1).0, [0, 0, 255]);
        assert_eq!(picture.get_pixel(4, 0).0, [24, 24, 24]);
    }
}
