//! A job as the API shows it, built from what the manager holds in memory (no file is read).

use super::entry::Entry;
use super::{JobState, JobView};
use crate::disk::LowSpace;

/// What a run makes before its rate says whether it keeps up (starting ffmpeg, loading the model
/// and the first frames are slower than the rest).
const RATE_MEASURED_AFTER_FRAMES: u64 = 8;
const RATE_MEASURED_AFTER_SECONDS: f64 = 3.0;

pub(super) fn view(entry: &Entry, low_space: Option<&LowSpace>) -> JobView {
    let record = &entry.record;
    let within = ..record.segment_count.unwrap_or(u32::MAX);
    let segments = entry.made.range(within).count();
    let complete = record.state == JobState::Complete;
    let total = record.source_duration_seconds;
    let ready = ready_seconds(entry);
    let measured = entry.progress.snapshot();
    let running = record.state == JobState::Running;
    let progress = match total {
        _ if complete => 1.0,
        Some(total) if total > 0.0 => (ready / total).min(1.0),
        _ => 0.0,
    };
    let rate = if running { measured.realtime } else { 0.0 };
    let eta_seconds = match total {
        _ if complete => Some(0.0),
        Some(total) if running && rate > 0.0 => Some(((total - ready) / rate).max(0.0)),
        _ => None,
    };
    let live = keeps_up(entry);
    JobView {
        id: record.id.clone(),
        name: record.name.clone(),
        source: record.source.clone(),
        state: record.state,
        priority: record.priority,
        model: record.model.clone(),
        output: record.output.clone(),
        // The final file gets its name only when whole, just before the job completes.
        output_ready: complete && record.stand_in_for.is_none(),
        segments,
        segment_count: record.segment_count,
        duration_seconds: ready,
        throttled: running && entry.throttled_since.is_some(),
        device: entry.device.as_ref().map(|(_, name)| name.clone()),
        source_duration_seconds: total,
        progress,
        fps: if running { measured.fps } else { 0.0 },
        rate,
        eta_seconds,
        live,
        ready_at: eta_seconds.map(|eta| super::now_seconds() + eta.ceil() as u64),
        stand_in_for: record.stand_in_for.clone(),
        stand_in: record.stand_in.clone(),
        host: entry.holder.clone().or_else(|| record.host.clone()),
        resumes: record.resumes,
        error: record.error.clone(),
        waiting_for_space: low_space
            .filter(|_| record.state == JobState::Queued)
            .map(LowSpace::to_string),
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// Seconds of film ready to play from the start without a gap.
fn ready_seconds(entry: &Entry) -> f64 {
    let record = &entry.record;
    let within = ..record.segment_count.unwrap_or(u32::MAX);
    let contiguous = entry
        .made
        .range(within)
        .zip(0..)
        .take_while(|(made, expected)| *made == expected)
        .count() as u32;
    match (record.source_duration_seconds, record.segment_count) {
        (Some(total), Some(count)) if contiguous >= count => total,
        _ => f64::from(contiguous) * f64::from(record.segment_seconds),
    }
}

/// Whether a viewer starting the film now would reach its end without catching up with the
/// upscaler: the rest takes no longer to make, at the measured rate, than the whole film to
/// watch. `None` until the run has measured its rate.
pub(super) fn keeps_up(entry: &Entry) -> Option<bool> {
    let record = &entry.record;
    let running = record.state == JobState::Running;
    let measured = entry.progress.snapshot();
    let rate_known = measured.frames_done >= RATE_MEASURED_AFTER_FRAMES
        && measured.elapsed_seconds >= RATE_MEASURED_AFTER_SECONDS;
    match record.source_duration_seconds {
        _ if record.state == JobState::Complete => Some(true),
        _ if running && entry.throttled_since.is_some() => Some(true),
        Some(total) if running && rate_known && measured.realtime > 0.0 => {
            Some((total - ready_seconds(entry)) / measured.realtime <= total)
        }
        _ => None,
    }
}
