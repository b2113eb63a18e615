//! `audit --output`: how fast a finished or growing output file was (or is being) made, from
//! ffprobe's frame count and the file's own times; a growing file is also sampled live.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::cli::job_folder::JobFolder;
use crate::job_dir::partial_path;
use crate::media::{process, Rational, Tools};

#[derive(Debug, Serialize)]
pub struct OutputAudit {
    /// The file read: the output, or its `.partial` while it is still being written.
    pub file: PathBuf,
    pub growing: bool,
    pub frames: u64,
    /// The film's frame rate, what real time means.
    pub frame_rate: f64,
    /// Frames over the time the file took to write (from its creation to its last change).
    pub average_fps: Option<f64>,
    /// Frames made during the sampling window (growing files only).
    pub sampled_fps: Option<f64>,
    /// `sampled_fps` (else `average_fps`) over the frame rate; ≥ 1.0 streams smoothly.
    pub multiplier: Option<f64>,
    /// `STABLE`, `TOO SLOW`, or `UNKNOWN` when no rate could be measured.
    pub verdict: String,
}

/// `job_folder`: the daemon job that made `output`, if known; its final file is assembled from
/// the segments in one go, so the segments' times say how fast it was made.
pub fn audit(
    tools: &Tools,
    output: &Path,
    sample: Duration,
    job_folder: Option<&JobFolder>,
) -> Result<OutputAudit, String> {
    let partial = partial_path(output);
    let (file, growing) = if partial.is_file() {
        (partial, true)
    } else if output.is_file() {
        (output.to_path_buf(), false)
    } else {
        return Err(format!(
            "neither {} nor {} exists",
            output.display(),
            partial.display()
        ));
    };
    // A file only just started may not hold a whole packet yet: that is 0 frames so far.
    let (frames, mut frame_rate) = match count(tools, &file) {
        Err(_) if growing => (0, 0.0),
        other => other?,
    };
    let mut sampled_fps = None;
    let mut last_frames = frames;
    if growing && !sample.is_zero() {
        let started = Instant::now();
        std::thread::sleep(sample);
        let (later, rate) = count(tools, &file).unwrap_or((frames, frame_rate));
        sampled_fps = Some(later.saturating_sub(frames) as f64 / started.elapsed().as_secs_f64());
        last_frames = later;
        frame_rate = rate;
    }
    let average_fps = match job_folder.and_then(segment_span) {
        Some((share, seconds)) => Some(last_frames as f64 * share / seconds),
        None => writing_seconds(&file, growing).map(|s| last_frames as f64 / s),
    };
    let multiplier = sampled_fps
        .or(average_fps)
        .filter(|_| frame_rate > 0.0)
        .map(|fps| fps / frame_rate);
    let verdict = match multiplier {
        Some(m) if m >= 1.0 => "STABLE",
        Some(_) => "TOO SLOW",
        None => "UNKNOWN",
    };
    Ok(OutputAudit {
        file,
        growing,
        frames: last_frames,
        frame_rate,
        average_fps,
        sampled_fps,
        multiplier,
        verdict: verdict.to_string(),
    })
}

/// Video frames (packets: no decoding needed) and the stream's frame rate.
fn count(tools: &Tools, file: &Path) -> Result<(u64, f64), String> {
    let mut command = Command::new(&tools.ffprobe);
    command
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=nb_read_packets,avg_frame_rate,r_frame_rate",
        ])
        .args(["-of", "json"])
        .arg(file);
    let bytes = process::output("ffprobe", command).map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("ffprobe gave invalid JSON: {e}"))?;
    let stream = json["streams"]
        .get(0)
        .ok_or_else(|| format!("{} has no video stream", file.display()))?;
    let frames = stream["nb_read_packets"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let rate = |key: &str| {
        stream[key]
            .as_str()
            .and_then(|r| r.parse::<Rational>().ok())
            .filter(|r| r.is_valid())
            .map(Rational::as_f64)
    };
    let frame_rate = rate("avg_frame_rate")
        .or_else(|| rate("r_frame_rate"))
        .unwrap_or(0.0);
    Ok((frames, frame_rate))
}

/// How long the file has been written for: its birth time to its last change (or now while
/// it grows). None when the filesystem keeps no birth time, or the file was written at once
/// (a daemon's final file is assembled from its segments in one go: time those instead).
fn writing_seconds(file: &Path, growing: bool) -> Option<f64> {
    let metadata = std::fs::metadata(file).ok()?;
    let born = metadata.created().ok()?;
    let until = if growing {
        SystemTime::now()
    } else {
        metadata.modified().ok()?
    };
    let seconds = until.duration_since(born).ok()?.as_secs_f64();
    (seconds >= 0.1).then_some(seconds)
}

/// The share of the film made between the first and last segment, and that time in seconds.
fn segment_span(folder: &JobFolder) -> Option<(f64, f64)> {
    let mut times: Vec<SystemTime> = folder.segment_times().into_iter().map(|(_, t)| t).collect();
    times.sort();
    let (first, last) = (times.first()?, times.last()?);
    let seconds = last.duration_since(*first).ok()?.as_secs_f64();
    let share = (times.len() - 1) as f64 / times.len() as f64;
    (seconds > 0.0 && times.len() > 1).then_some((share, seconds))
}

/// The job folder under `hls_root` whose job.json names `output` as its final file.
pub fn job_folder_for(hls_root: &Path, output: &Path) -> Option<JobFolder> {
    let wanted = output.canonicalize().ok()?;
    std::fs::read_dir(hls_root)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| JobFolder::read(&e.path()))
        .find(|f| f.output().and_then(|o| o.canonicalize().ok()) == Some(wanted.clone()))
}
