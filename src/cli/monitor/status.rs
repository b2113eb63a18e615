//! One reading of a job's progress, from its folder alone or from the daemon's job JSON, in the
//! shape of `/hls-status` so that scripts can read either.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::cli::job_folder::JobFolder;

/// How many of the newest segments the folder-only rate is measured over: enough to smooth one
/// slow segment, few enough to follow a change of speed.
const RATE_WINDOW: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// `starting`, `streaming`, `throttled`, `complete`, `failed`, `cancelled`, `queued`,
    /// `waiting_for_space`, `stopped`: the values of `/hls-status`.
    pub status: String,
    pub segments: usize,
    /// Seconds of upscaled film ready to play from the start.
    pub duration_seconds: f64,
    pub source_duration_seconds: Option<f64>,
    /// 0–1.
    pub progress: f64,
    /// Seconds of film made per second; ≥ 1.0 streams without stalling.
    pub rate: f64,
    pub eta_seconds: Option<f64>,
    pub job_id: Option<String>,
}

impl Status {
    /// Nothing will change any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "complete" | "failed" | "cancelled" | "stopped"
        )
    }

    /// Progress and ETA again from a source length found elsewhere (`--input-file`).
    pub fn with_source_duration(mut self, seconds: f64) -> Status {
        self.source_duration_seconds = Some(seconds);
        if self.status == "complete" {
            self.progress = 1.0;
            self.eta_seconds = Some(0.0);
        } else if seconds > 0.0 {
            self.progress = (self.duration_seconds / seconds).clamp(0.0, 1.0);
            self.eta_seconds =
                (self.rate > 0.0).then(|| ((seconds - self.duration_seconds) / self.rate).max(0.0));
        }
        self
    }
}

/// A reading from the files alone: works on a daemon job's folder and on one `liveup upscale`
/// wrote, with no daemon running. The rate is measured from when the newest segments appeared.
pub fn from_folder(folder: &JobFolder) -> Status {
    let segments = folder.segments();
    let playlist = folder.playlist();
    let segment_seconds = folder
        .field_f64("segment_seconds")
        .or_else(|| playlist.as_ref().map(|p| p.target_duration as f64))
        .filter(|s| *s > 0.0)
        .unwrap_or(6.0);
    let source = folder.field_f64("source_duration_seconds");
    let ended = playlist.as_ref().is_some_and(|p| p.ended);
    let status = match folder.state() {
        Some("running") if folder.flag("throttled") => "throttled",
        Some("running") | None if segments.is_empty() && !ended => "starting",
        Some("running") => "streaming",
        Some(other) => other,
        None if ended => "complete",
        None => "streaming",
    }
    .to_string();
    let contiguous = segments
        .iter()
        .enumerate()
        .take_while(|(i, s)| *i as u32 == **s)
        .count();
    let mut duration = match (&playlist, folder.record.is_some()) {
        (Some(playlist), false) => playlist.total_duration(),
        _ => contiguous as f64 * segment_seconds,
    };
    if status == "complete" {
        duration = source.unwrap_or(duration);
    }
    if let Some(source) = source {
        duration = duration.min(source);
    }
    let active = matches!(status.as_str(), "streaming" | "throttled" | "starting");
    let rate = if active {
        rate_from_times(folder, segment_seconds)
    } else {
        0.0
    };
    let reading = Status {
        status,
        segments: segments.len(),
        duration_seconds: duration,
        source_duration_seconds: None,
        progress: 0.0,
        rate,
        eta_seconds: None,
        job_id: folder
            .record
            .as_ref()
            .and_then(|r| r.get("id")?.as_str().map(str::to_string)),
    };
    match source {
        Some(seconds) => reading.with_source_duration(seconds),
        None if reading.status == "complete" => Status {
            progress: 1.0,
            eta_seconds: Some(0.0),
            ..reading
        },
        None => reading,
    }
}

/// Film seconds per wall second over the newest segments, by their modification times. Needs
/// two segments; the time since the newest one counts too, so a stalled encoder shows its rate
/// falling instead of the last good one.
fn rate_from_times(folder: &JobFolder, segment_seconds: f64) -> f64 {
    let mut times: Vec<SystemTime> = folder.segment_times().into_iter().map(|(_, t)| t).collect();
    times.sort();
    let window = &times[times.len().saturating_sub(RATE_WINDOW)..];
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return 0.0;
    };
    let span = last
        .duration_since(*first)
        .unwrap_or_default()
        .as_secs_f64();
    if window.len() < 2 || span <= 0.0 {
        return 0.0;
    }
    let made = (window.len() - 1) as f64 * segment_seconds;
    let rate = made / span;
    let since_last = SystemTime::now()
        .duration_since(*last)
        .unwrap_or_default()
        .as_secs_f64();
    // Waiting longer than the current rate predicts for the next segment: that segment is
    // slower, at most segment_seconds / since_last.
    if since_last > segment_seconds / rate {
        (made + segment_seconds) / (span + since_last)
    } else {
        rate
    }
}

/// A reading from the daemon's `/api/jobs/{id}` JSON.
pub fn from_job_json(job: &Value) -> Status {
    let number = |key: &str| job.get(key).and_then(Value::as_f64);
    let state = job
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let throttled = job.get("throttled").and_then(Value::as_bool) == Some(true);
    let segments = job.get("segments").and_then(Value::as_u64).unwrap_or(0) as usize;
    let waiting_for_space = job.get("waiting_for_space").is_some_and(Value::is_string);
    let status = match state {
        "queued" if waiting_for_space => "waiting_for_space",
        "running" if throttled => "throttled",
        "running" if segments == 0 => "starting",
        "running" => "streaming",
        other => other,
    };
    Status {
        status: status.to_string(),
        segments,
        duration_seconds: number("duration_seconds").unwrap_or(0.0),
        source_duration_seconds: number("source_duration_seconds"),
        progress: number("progress").unwrap_or(0.0),
        rate: number("rate").unwrap_or(0.0),
        eta_seconds: number("eta_seconds"),
        job_id: job.get("id").and_then(Value::as_str).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn throttled_is_shown_only_when_the_job_says_so() {
        let mut job = json!({"id": "j", "state": "running", "segments": 3,
            "duration_seconds": 18.0, "source_duration_seconds": 60.0, "progress": 0.3,
            "rate": 1.2, "eta_seconds": 35.0});
        assert_eq!(from_job_json(&job).status, "streaming");
        job["throttled"] = json!(false);
        assert_eq!(from_job_json(&job).status, "streaming");
        job["throttled"] = json!(true);
        assert_eq!(from_job_json(&job).status, "throttled");
        job["state"] = json!("complete");
        assert_eq!(from_job_json(&job).status, "complete");
    }

    #[test]
    fn an_input_file_length_gives_progress_and_eta() {
        let reading = Status {
            status: "streaming".into(),
            segments: 5,
            duration_seconds: 30.0,
            source_duration_seconds: None,
            progress: 0.0,
            rate: 2.0,
            eta_seconds: None,
            job_id: None,
        }
        .with_source_duration(120.0);
        assert_eq!(reading.progress, 0.25);
        assert_eq!(reading.eta_seconds, Some(45.0));
    }
}
